#!/usr/bin/env bash
# setup.sh: the newcomer's first command. Installs what Swiftlet needs from Debian's packages, builds the
# release binaries (static Swift stdlib), installs them with the man page and shell completion, builds the
# busybox root filesystem the containers and `swiftlet compare` use, and boots the embedded tiny guest.
#   ./setup.sh                    everything; installs into /usr/local (bin/swiftlet and bin/swiftlet-cli side
#                                 by side, share/man/man1/swiftlet.1, share/bash-completion/completions/swiftlet)
#   ./setup.sh --prefix DIR       install under DIR instead
#   ./setup.sh --no-install       build only; run .build/release/swiftlet
#   ./setup.sh --deps             install the Debian packages only (what .ci/run uses)
set -euo pipefail
cd "$(dirname "$0")"

prefix=/usr/local install=true deps_only=false
while [ $# -gt 0 ]; do
    case $1 in
        --deps) deps_only=true ;;
        --prefix) [ $# -ge 2 ] || { echo "setup: --prefix needs a directory" >&2; exit 2; }; prefix=$2; shift ;;
        --prefix=*) prefix=${1#--prefix=} ;;
        --no-install) install=false ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup: unknown option $1 (use --prefix DIR, --no-install or --deps)" >&2; exit 2 ;;
    esac
    shift
done

step() { printf '\nsetup: %s\n' "$*"; }
packages=(time busybox-static cpio bc flex bison libelf-dev libssl-dev linux-source qemu-system-x86 crun runc podman uidmap iproute2 strace kmod linux-perf acpica-tools gdb socat)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    step "installing ${#missing[@]} Debian packages: ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" | grep -E '^(Setting up|Get:)' || true
fi
$deps_only && exit 0

command -v swift >/dev/null || { echo "setup: Swift 6 is needed (https://www.swift.org/install/linux/)" >&2; exit 1; }
step "building swiftlet and swiftlet-cli (release, static executables; a first build takes a few minutes)"
swift build -c release --product swiftlet
swift build -c release --product swiftlet-cli   # the full CLI the front end hands other subcommands to
bin=.build/release
# The OCI runtime names podman and conmon call (docs/05-containers.md): the same binary, chosen by argv[0].
ln -sf swiftlet "$bin/swiftlet-runtime"
ln -sf swiftlet "$bin/swiftlet-vm"

if $install; then
    sudo=""; [ -w "$prefix" ] || [ "$(id -u)" = 0 ] || sudo=sudo
    step "installing into $prefix"
    $sudo install -d "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" "$prefix/share/swiftlet"
    $sudo install -m 0755 "$bin/swiftlet" "$bin/swiftlet-cli" "$prefix/bin/"
    $sudo ln -sf swiftlet "$prefix/bin/swiftlet-runtime"
    $sudo ln -sf swiftlet "$prefix/bin/swiftlet-vm"
    "$bin/swiftlet-cli" manual | $sudo tee "$prefix/share/man/man1/swiftlet.1" >/dev/null
    # compare finds the guest kernels and the rootfs of this checkout from anywhere through this link.
    $sudo ln -sfn "$(pwd)/guest" "$prefix/share/swiftlet/guest"
    "$bin/swiftlet-cli" --generate-completion-script bash | $sudo tee "$prefix/share/bash-completion/completions/swiftlet" >/dev/null
    echo "  $prefix/bin/swiftlet, $prefix/bin/swiftlet-cli (keep the two side by side), the OCI runtime names swiftlet-runtime and swiftlet-vm, man swiftlet, bash completion"
    swiftlet=$prefix/bin/swiftlet
    case ":$PATH:" in
        *":$prefix/bin:"*) ;;
        *) echo "  note: $prefix/bin is not on your PATH: export PATH=\"$prefix/bin:\$PATH\"" ;;
    esac
else
    swiftlet=$bin/swiftlet
fi

step "building the busybox root filesystem (guest/rootfs/out/rootfs) for containers and swiftlet compare"
guest/rootfs/build.sh >/dev/null

step "booting the embedded tiny guest: $swiftlet boot"
status=0
"$swiftlet" boot || status=$?
if [ "$status" != 0 ]; then echo "setup: the tiny guest's boot ended with status $status (swiftlet doctor says why)" >&2; exit "$status"; fi
step "ok. Next:"
echo "  swiftlet compare --probe                 the same questions asked of a VM and of a container"
echo "  swiftlet container run -- uname -a       the busybox rootfs as a container"
echo "  guest/linux/build.sh                     build the minimal Linux guest (a few minutes), then"
echo "  swiftlet boot --kernel guest/linux/out/bzImage --initrd guest/linux/out/initramfs.cpio -- uname -r"
echo "  docs/README.md                           the learning lab, from open(\"/dev/kvm\") to a Linux shell"
