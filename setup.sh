#!/usr/bin/env bash
# setup.sh: the newcomer's first command. Installs what Swiftlet needs from Debian's packages, builds the
# release binary (static Swift stdlib), and boots the embedded tiny guest.
#   ./setup.sh            install + build + boot
#   ./setup.sh --deps     install only (what .ci/run uses)
set -euo pipefail
cd "$(dirname "$0")"

packages=(time busybox-static cpio bc flex bison libelf-dev libssl-dev linux-source qemu-system-x86 crun runc podman uidmap iproute2 strace kmod linux-perf acpica-tools gdb socat)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ "${1:-}" = "--deps" ] && exit 0

command -v swift >/dev/null || { echo "setup: Swift 6 is needed (https://www.swift.org/install/linux/)" >&2; exit 1; }
echo "setup: building swiftlet (release, one static executable)"
swift build -c release --product swiftlet 2>&1 | tail -1
swift build -c release --product swiftlet-cli 2>&1 | tail -1   # the full CLI the front end hands other subcommands to
# The OCI runtime names podman and conmon call (docs/05-containers.md): the same binary, chosen by argv[0].
ln -sf swiftlet .build/release/swiftlet-runtime
ln -sf swiftlet .build/release/swiftlet-vm
echo "setup: booting the embedded tiny guest: .build/release/swiftlet boot"
status=0
.build/release/swiftlet boot || status=$?
# The tiny guest reports success by writing 0 to the debug-exit port: status (0 << 1) | 1 = 1.
if [ "$status" = 1 ]; then echo "setup: ok (guest exit status 1 = debug-exit value 0: success)"; else echo "setup: boot ended with status $status" >&2; exit "$status"; fi
