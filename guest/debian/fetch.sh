#!/usr/bin/env bash
# guest/debian/fetch.sh [OUTDIR]: Debian's stock cloud kernel, unmodified, as a Swiftlet guest.
#
# Downloads the package that linux-image-cloud-amd64 depends on (linux-image-<version>-cloud-amd64) with
# `apt-get download` (no install: nothing lands in the host's /boot) and unpacks it with `dpkg-deb -x`.
# Output (default guest/debian/out/, git-ignored): vmlinuz (the bzImage), config, System.map, version,
# and virtio-initramfs.cpio: the minimal guest's initramfs (guest/linux/out/initramfs.cpio, or
# $BASE_INITRAMFS) with a second cpio archive appended that holds the package's virtio_pci and
# virtio_console modules and /etc/swiftlet/modules, the list guest/linux/init.c loads in order (Debian
# builds virtio as modules, and its kernel finds the console over PCI: --console virtio
# --virtio-transport pci). Cached: a second run with the same inputs does nothing. Prints the vmlinuz path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-$here/out}" && cd "${1:-$here/out}" && pwd)
say() { echo "debian-kernel: $*" >&2; }
die() { echo "debian-kernel: error: $*" >&2; exit 1; }
exec 9>"$out/.lock"; flock 9
command -v modinfo >/dev/null || die "modinfo is needed to order the virtio modules (apt-get install kmod; ./setup.sh --deps does)"

package=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)
if [ -z "$package" ]; then
    [ "$(id -u)" = 0 ] || die "apt-cache knows no linux-image-cloud-amd64 (run apt-get update as root)"
    say "apt-get update (the package lists do not name linux-image-cloud-amd64)"
    apt-get update -qq >/dev/null
    package=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)
    [ -n "$package" ] || die "linux-image-cloud-amd64 depends on no linux-image-*-cloud-amd64 package"
fi
version=$(apt-cache policy "$package" | sed -n 's/^ *Candidate: //p')
stamp="$package $version"
base=${BASE_INITRAMFS:-$here/../linux/out/initramfs.cpio}
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console"
initrd_stamp() { [ -s "$base" ] && { sha256sum < "$base"; echo "$stamp $modules"; } | sha256sum | cut -c1-16; }
if [ "$(cat "$out/version" 2>/dev/null)" = "$stamp" ] && [ -s "$out/vmlinuz" ] && [ -d "$out/modules" ] \
   && { [ ! -s "$base" ] || [ "$(cat "$out/.initrd.stamp" 2>/dev/null)" = "$(initrd_stamp)" ]; }; then
    echo "$out/vmlinuz"; exit 0
fi
work=$(mktemp -d "$out/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0777 "$work"   # apt-get download drops to the _apt user when it can write here
say "downloading $package $version"
(cd "$work" && apt-get download -qq "$package=$version" >/dev/null) || die "apt-get download $package failed"
deb=$(ls "$work"/*.deb | head -n 1)
dpkg-deb -x "$deb" "$work/x"
release=${package#linux-image-}
[ -s "$work/x/boot/vmlinuz-$release" ] || die "$deb has no boot/vmlinuz-$release"
install -m 0644 "$work/x/boot/vmlinuz-$release" "$out/vmlinuz"
install -m 0644 "$work/x/boot/config-$release" "$out/config"
install -m 0644 "$work/x/boot/System.map-$release" "$out/System.map"
# The virtio modules, in load order (each one's dependencies come before it: checked with modinfo).
rm -rf "$out/modules"; mkdir -p "$out/modules"
tree="$work/x/lib/modules/$release/kernel"
loaded=" "
for m in $modules; do
    ko=$(find "$tree" -name "$m.ko" | head -n 1)
    [ -n "$ko" ] || die "$deb has no $m.ko"
    for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
        case $loaded in *" $dep "*) ;; *) die "$m.ko needs $dep, which is not loaded before it" ;; esac
    done
    install -m 0644 "$ko" "$out/modules/$m.ko"
    loaded="$loaded$m "
done
echo "$stamp" > "$out/version"
say "$package $version: $(stat -c %s "$out/vmlinuz") bytes, modules:$loaded"

if [ -s "$base" ]; then
    stage="$work/initrd"
    mkdir -p "$stage/lib/modules/$release" "$stage/etc/swiftlet"
    : > "$stage/etc/swiftlet/modules"
    for m in $modules; do
        cp "$out/modules/$m.ko" "$stage/lib/modules/$release/"
        echo "/lib/modules/$release/$m.ko" >> "$stage/etc/swiftlet/modules"
    done
    find "$stage" -exec touch -h -d @0 {} +
    { cat "$base"; (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet); } > "$out/.virtio-initramfs.cpio"
    mv "$out/.virtio-initramfs.cpio" "$out/virtio-initramfs.cpio"
    initrd_stamp > "$out/.initrd.stamp"
    say "virtio-initramfs.cpio: $(stat -c %s "$out/virtio-initramfs.cpio") bytes ($(basename "$base") + the modules)"
else
    say "no $base: run guest/linux/build.sh first for virtio-initramfs.cpio"
fi
echo "$out/vmlinuz"
