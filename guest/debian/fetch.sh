#!/usr/bin/env bash
# guest/debian/fetch.sh [OUTDIR]: Debian's stock cloud kernel, unmodified, as a Swiftlet guest.
#
# Downloads the package that linux-image-cloud-amd64 depends on (linux-image-<version>-cloud-amd64) with
# `apt-get download` (no install: nothing lands in the host's /boot) and unpacks it with `dpkg-deb -x`.
# Output (default guest/debian/out/, git-ignored): vmlinuz (the bzImage), config, System.map and
# version. Cached: a second run with the same package version does nothing. Prints the vmlinuz path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-$here/out}" && cd "${1:-$here/out}" && pwd)
say() { echo "debian-kernel: $*" >&2; }
die() { echo "debian-kernel: error: $*" >&2; exit 1; }
exec 9>"$out/.lock"; flock 9

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
if [ "$(cat "$out/version" 2>/dev/null)" = "$stamp" ] && [ -s "$out/vmlinuz" ]; then
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
echo "$stamp" > "$out/version"
say "$package $version: $(stat -c %s "$out/vmlinuz") bytes"
echo "$out/vmlinuz"
