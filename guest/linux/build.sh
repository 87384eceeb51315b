#!/usr/bin/env bash
# guest/linux/build.sh [OUTDIR]: builds Swiftlet's minimal Linux guest (see guest/linux/README.md).
#
# From Debian's linux-source package (installed if missing and root), tinyconfig + swiftlet.config:
#   OUTDIR/bzImage          the kernel for the 64-bit Linux boot protocol (LZ4 inside)
#   OUTDIR/vmlinux          the uncompressed ELF, with the PVH note XEN_ELFNOTE_PHYS32_ENTRY
#   OUTDIR/initramfs.cpio   uncompressed newc cpio: the busybox rootfs (guest/rootfs/build.sh, or the
#                           directory ROOTFS_DIR names) + ./init (init.c, built against the kernel
#                           source's nolibc)
#   OUTDIR/config           the kernel's final .config
# The kernel carries Swiftlet's own small changes, patches/*.patch (each inert unless a kernel parameter
# turns it on; patches/README.md says why), applied in name order right after extraction.
# OUTDIR defaults to guest/linux/out. The source tarball is extracted once, into guest/linux/out/src
# (LINUX_SRC_CACHE overrides), and built out of tree in OUTDIR/build. Reproducible: fixed build
# timestamp, user, host and version; cpio with sorted names, mtime 0, owner root. Cached: when OUTDIR
# holds outputs built from the same inputs (fragment, this script, source version, compiler; init and
# rootfs for the cpio), it prints them and exits at once. Progress goes to stderr, the output paths to
# stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(mkdir -p "${1:-$here/out}" && cd "${1:-$here/out}" && pwd)
cache=${LINUX_SRC_CACHE:-$here/out/src}
fragment=$here/swiftlet.config
init=$here/init.c
patches=("$here"/patches/*.patch)
jobs=${JOBS:-$(nproc)}
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970"
export KBUILD_BUILD_USER=swiftlet KBUILD_BUILD_HOST=swiftlet KBUILD_BUILD_VERSION=1
export LC_ALL=C TZ=UTC
t0=$SECONDS
say() { printf 'linux: [%3ds] %s\n' "$((SECONDS - t0))" "$*" >&2; }
die() { printf 'linux: error: %s\n' "$*" >&2; exit 1; }
hash() { for f; do sha256sum < "$f"; done | sha256sum | cut -c1-16; }   # contents only, not paths
# progress SECONDS COMMAND... : while the current phase's background job ($!) runs, print every SECONDS what
# COMMAND says about it (files extracted, objects compiled), so a phase that takes minutes is visibly alive.
progress() {
    local pid=$! every=$1; shift
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq "$every"); do sleep 1; kill -0 "$pid" 2>/dev/null || break 2; done
        say "  ... $("$@")"
    done
    wait "$pid"
}
outputs() { for f in bzImage vmlinux initramfs.cpio; do echo "$out/$f"; done; }

# One build per OUTDIR at a time (another waits here).
exec 9>"$out/.lock"; flock 9

# --- the source: Debian's linux-source tarball ---------------------------------------------------------
find_tarball() { ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n 1; }
tarball=$(find_tarball)
if [ -z "$tarball" ]; then
    [ "$(id -u)" = 0 ] || die "no /usr/src/linux-source-*.tar.xz: apt-get install linux-source"
    say "installing linux-source (waits for the dpkg lock)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq linux-source >/dev/null
    tarball=$(find_tarball)
    [ -n "$tarball" ] || die "linux-source installed no /usr/src/linux-source-*.tar.xz"
fi
srcname=$(basename "$tarball" .tar.xz)               # linux-source-6.1
pkgversion=$(dpkg-query -W -f '${Version}' "$srcname" 2>/dev/null || stat -c '%s-%Y' "$tarball")
srcversion="$srcname $pkgversion"
missing=()
for tool in bc flex bison make gcc cpio; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -e /usr/include/libelf.h ] || [ -e /usr/include/gelf.h ] || missing+=(libelf-dev)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing build tools: ${missing[*]} (apt-get install bc flex bison libelf-dev make gcc cpio)"
    say "installing build tools (missing: ${missing[*]})"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        bc flex bison libelf-dev make gcc cpio >/dev/null
fi

# --- the cache keys -------------------------------------------------------------------------------------
patch_key=$(hash "${patches[@]}")
kernel_key=$( { hash "$fragment" "$0"; echo "$srcversion $patch_key"; gcc --version | head -n 1; } | sha256sum | cut -c1-16)
# The busybox rootfs directory: guest/rootfs/build.sh (cached by that script), or ROOTFS_DIR if set.
if [ -n "${ROOTFS_DIR:-}" ]; then rootfs=$(cd "$ROOTFS_DIR" && pwd)
else rootfs=$("$repo/guest/rootfs/build.sh" | tail -n 1) || die "guest/rootfs/build.sh failed"; fi
[ -x "$rootfs/bin/busybox" ] || die "guest/rootfs/build.sh gave no rootfs with bin/busybox ($rootfs)"
rootfs_key=$(cd "$rootfs" && { find . -printf '%p %m %y %l\n' | sort; find . -type f -print0 | sort -z | xargs -0 sha256sum; } \
    | sha256sum | cut -c1-16)
cpio_key=$( { hash "$init" "$0"; echo "$rootfs_key $srcversion"; gcc --version | head -n 1; } | sha256sum | cut -c1-16)
stamp_ok() { [ -f "$out/.$1.stamp" ] && [ "$(cat "$out/.$1.stamp")" = "$2" ]; }

kernel_done=false cpio_done=false
stamp_ok kernel "$kernel_key" && [ -s "$out/bzImage" ] && [ -s "$out/vmlinux" ] && kernel_done=true
stamp_ok cpio "$cpio_key" && [ -s "$out/initramfs.cpio" ] && cpio_done=true
if $kernel_done && $cpio_done; then
    say "up to date ($srcversion, kernel $kernel_key, initramfs $cpio_key)"
    outputs; exit 0
fi

# --- the kernel -------------------------------------------------------------------------------------------
if ! $kernel_done; then
    src=$cache/$srcname
    mkdir -p "$cache"
    (
        flock 8
        # Extracted files keep the tarball's mtimes, so a re-extraction (other patches) rebuilds only what
        # the patches touch.
        if [ "$(cat "$src/.swiftlet-extracted" 2>/dev/null)" != "$srcversion $patch_key" ]; then
            say "extracting $tarball ($srcversion) into $cache"
            rm -rf "$src"
            tar -xf "$tarball" -C "$cache" &
            progress 10 sh -c "echo \$(find '$src' -type f 2>/dev/null | wc -l) files extracted"
            [ -f "$src/Makefile" ] || die "$tarball did not extract to $src"
            for p in "${patches[@]}"; do
                say "applying $(basename "$p")"
                patch -p1 -s -d "$src" < "$p" || die "$(basename "$p") does not apply to $srcversion"
            done
            echo "$srcversion $patch_key" > "$src/.swiftlet-extracted"
        fi
    ) 8>"$cache/.lock"
    build=$out/build
    log=$out/build.log
    mkdir -p "$build"
    : > "$log"
    kmake() { make -C "$src" O="$build" "$@" >>"$log" 2>&1 || { tail -n 40 "$log" >&2; die "make $* failed (log: $log)"; }; }

    say "configuring: tinyconfig + $(basename "$fragment") (allnoconfig: nothing else on)"
    # tinyconfig is allnoconfig with kernel/configs/tiny-base.config (EMBEDDED, so EXPERT: options
    # that are "default y if !EXPERT" get off), then kernel/configs/tiny.config and
    # arch/x86/configs/tiny.config; the fragment goes on top (its lines win: tiny lines naming the same
    # options are left out).
    allconfig=$build/swiftlet.allconfig
    names=$(grep -oE 'CONFIG_[A-Za-z0-9_]+' "$fragment" | sort -u)
    cat "$src/kernel/configs/tiny-base.config" "$src/kernel/configs/tiny.config" "$src/arch/x86/configs/tiny.config" \
        | grep -vwF -f <(echo "$names") > "$allconfig" || true
    cat "$fragment" >> "$allconfig"
    kmake KCONFIG_ALLCONFIG="$allconfig" allnoconfig
    kmake olddefconfig

    # Every line of the fragment must hold in the final .config.
    dropped=()
    while IFS= read -r line; do
        case "$line" in
            CONFIG_*=*)
                grep -qxF "$line" "$build/.config" || dropped+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$build/.config" || echo absent))") ;;
            "# CONFIG_"*" is not set")
                name=${line#\# }; name=${name%% *}
                if grep -qE "^$name=" "$build/.config"; then dropped+=("$line (got: $(grep -E "^$name=" "$build/.config"))"); fi ;;
        esac
    done < "$fragment"
    if [ ${#dropped[@]} -gt 0 ]; then
        printf 'linux: error: the final .config does not have:\n' >&2
        printf '  %s\n' "${dropped[@]}" >&2
        die "${#dropped[@]} option(s) of $(basename "$fragment") did not take (dependencies? see $build/.config)"
    fi
    say "config checked: all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$fragment") lines of the fragment hold"

    say "building bzImage and vmlinux (make -j$jobs; log: $log)"
    kmake -j"$jobs" bzImage vmlinux &
    progress 15 sh -c "echo \$(grep -cE '^  (CC|AS|LD|AR)' '$log') files compiled or linked, last: \$(grep -E '^  (CC|AS|LD|AR)' '$log' | tail -n 1 | sed 's/^ *//')"
    release=$(cat "$build/include/config/kernel.release")
    cp "$build/arch/x86/boot/bzImage" "$out/bzImage.tmp" && mv "$out/bzImage.tmp" "$out/bzImage"
    cp "$build/vmlinux" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
    cp "$build/.config" "$out/config"
    # The PVH entry note (Xen ELF note type 18, XEN_ELFNOTE_PHYS32_ENTRY) must be in vmlinux.
    if command -v readelf >/dev/null; then
        readelf -n "$out/vmlinux" | grep -q 'Xen.*0x00000012\|Xen.*PHYS32_ENTRY\|Xen.*Unknown note type: (0x00000012)' \
            || die "vmlinux has no Xen PHYS32_ENTRY (PVH) note"
    fi
    echo "$kernel_key" > "$out/.kernel.stamp"
    say "kernel $release built"
fi

# --- the initramfs ----------------------------------------------------------------------------------------
if ! $cpio_done; then
    say "packing initramfs.cpio from $rootfs + init"
    stage=$(mktemp -d "$out/.stage.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    cp -a "$rootfs/." "$stage/"
    # /init: a static program without a C library (the kernel source's tools/include/nolibc).
    nolibc=$cache/$srcname/tools/include/nolibc
    [ -f "$nolibc/nolibc.h" ] || die "no $nolibc/nolibc.h: extract the kernel source first (rm $out/.kernel.stamp)"
    gcc -Os -static -nostdlib -Wall -Werror -fno-asynchronous-unwind-tables -fno-ident -fno-stack-protector \
        -Wl,--build-id=none -s -include "$nolibc/nolibc.h" -I "$nolibc" -o "$stage/init" "$init" \
        || die "cannot build init from $init"
    chmod 0755 "$stage/init"
    find "$stage" -exec touch -h -d @0 {} +
    (cd "$stage" && find . -mindepth 1 | sed 's|^\./||' | sort \
        | cpio -o -H newc -R 0:0 --reproducible --quiet) > "$out/initramfs.cpio.tmp"
    mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
    echo "$cpio_key" > "$out/.cpio.stamp"
fi

say "done: bzImage $(stat -c %s "$out/bzImage") B, vmlinux $(stat -c %s "$out/vmlinux") B, initramfs.cpio $(stat -c %s "$out/initramfs.cpio") B"
outputs
