#!/usr/bin/env bash
# guest/rootfs/build.sh [OUTDIR]: builds the busybox root filesystem shared by the VM and the container.
#
# The same directory is packed into the Linux guest's initramfs (guest/linux/build.sh) and used as the
# container's root (swiftlet container run --rootfs). It holds busybox-static and its applet links,
# the mount points a Linux userspace expects, and a minimal /etc. Output: OUTDIR/rootfs (default
# guest/rootfs/out/rootfs). Needs Debian's busybox-static package (installed if missing and root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
root=$out/rootfs
busybox=/bin/busybox   # Debian's busybox-static installs a static binary here
# ldd exits 1 for a static binary; with pipefail a pipe into grep would fail, so capture first.
is_static() {
    [ -x "$1" ] || return 1
    local out
    out=$(LC_ALL=C ldd "$1" 2>&1 || true)
    case $out in *"not a dynamic executable"*|*"statically linked"*) return 0 ;; *) return 1 ;; esac
}
if ! is_static "$busybox"; then
    if [ "$(id -u)" = 0 ]; then
        echo "rootfs: installing busybox-static" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
    fi
    is_static "$busybox" || { echo "rootfs: a static busybox is needed at $busybox (apt-get install busybox-static)" >&2; exit 1; }
fi
# The stamp hashes contents only (not the path this script was called by), so every caller agrees.
stamp="$(cat "$busybox" "$0" | sha256sum | cut -c1-16)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -x "$root/bin/busybox" ]; then
    echo "$root"; exit 0
fi
# Build beside the old tree and swap it in, so a container or an initramfs build reading the old
# tree at the same moment never sees a half-built one.
mkdir -p "$out"
stage=$(mktemp -d "$out/.rootfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run,var/tmp,mnt}
chmod 0755 "$stage"
chmod 1777 "$stage/tmp" "$stage/var/tmp"
install -m 0755 "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list-full); do
    [ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
cat > "$stage/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
PW
cat > "$stage/etc/group" <<'GR'
root:x:0:
tty:x:5:
nogroup:x:65534:
GR
echo swiftlet > "$stage/etc/hostname"
if [ -e "$root" ]; then
    old=$(mktemp -d "$out/.rootfs-old.XXXXXX")
    mv "$root" "$old/"
    mv "$stage" "$root"
    rm -rf "$old"
else
    mv "$stage" "$root"
fi
trap - EXIT
echo "$stamp" > "$out/.stamp"
echo "$root"
