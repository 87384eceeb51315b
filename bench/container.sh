#!/usr/bin/env bash
# bench/container.sh [RUNS]: how long `swiftlet container run -- /bin/true` takes next to crun, runc
# and unshare, on the same busybox rootfs and the same OCI bundle, in one interleaved run.
#
# Prints, per launcher: median, p10 and p90 wall time over RUNS runs (default 50), its ratio to
# crun, and the launcher's max RSS. The goal for swiftlet is <= 0.6x crun.
#
# How it measures: a small C harness (built here) posix_spawns each command and waits for it, so no
# shell or Python start-up is counted; the launchers take turns, round by round, so load changes on
# the machine hit all of them alike. Every run starts PAUSE_MS (default 50) after the previous one
# ended: moving a process into a cgroup waits for an RCU grace period unless another move happened in
# the last ~20 ms, so without the pause a runtime would inherit the warm state its neighbour left
# (measured here: crun at 14 ms right after a cgroup-using run, 23 ms on its own). With it, each run
# costs what a lone container start costs ("cold"). A second table runs each launcher's runs back to
# back without a pause ("warm"), as a loop of container starts would, where crun's own previous run
# keeps the state warm for the next. Max RSS is wait4()'s ru_maxrss: the launcher, or the largest of
# its descendants it waited for.
#
# crun 1.8.1 refuses a hybrid cgroup layout (v1 controllers plus cgroup2 at /sys/fs/cgroup/unified),
# so the whole harness runs inside `unshare -m` with /sys/fs/cgroup/unified unmounted there: every
# launcher sees the same v1-only view, and crun is exec'd directly, not through a wrapper.
#
# SWIFTLET_COMPARE=/path/to/another/swiftlet adds a line for a second build (swiftlet*).
#
# "swiftlet run --rootfs" writes to a temporary overlay upper layer (docs/05-containers.md); "--read-only"
# needs none, so the difference is the overlay's cost.
#
# "swiftlet --pids 512" is the same run with a limit, so with a cgroup: without a limit Swiftlet
# creates none (docs/05-containers.md explains why), while crun and runc always do.
#
# Needs root, a C compiler, busybox-static (guest/rootfs/build.sh), crun and runc (installed with
# apt-get when missing, waiting for another apt to finish). Builds the release swiftlet (one static
# executable, as Package.swift links it) unless SWIFTLET names a binary.
set -euo pipefail
runs=${1:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/swiftlet-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

[ "$(id -u)" = 0 ] || { echo "bench: needs root (crun, runc and cgroups)" >&2; exit 1; }

install_if_missing() {
    command -v "$1" >/dev/null && return
    echo "bench: installing $2" >&2
    while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1; do sleep 2; done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
install_if_missing crun crun
install_if_missing runc runc
install_if_missing cc gcc

swiftlet=${SWIFTLET:-}
if [ -z "$swiftlet" ]; then
    (cd "$here" && swift build -c release --product swiftlet >&2)
    swiftlet=$here/.build/release/swiftlet
fi
"$swiftlet" container run --help >/dev/null 2>&1 || { echo "bench: $swiftlet has no 'container run' command" >&2; exit 1; }

# The bundle: `crun spec`'s config.json with /bin/true and no terminal, around the project's rootfs.
rootfs=$("$here/guest/rootfs/build.sh" | tail -1)
bundle=$work/bundle
mkdir -p "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
(cd "$bundle" && crun spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"\/bin\/true"/' "$bundle/config.json"
grep -q '"/bin/true"' "$bundle/config.json" || { echo "bench: could not edit $bundle/config.json" >&2; exit 1; }

cc -O2 -o "$work/harness" "$here/bench/harness.c"

cat > "$work/launchers" <<EOF
swiftlet run --rootfs	$swiftlet container run --rootfs $bundle/rootfs -- /bin/true
swiftlet run --rootfs --read-only	$swiftlet container run --rootfs $bundle/rootfs --read-only -- /bin/true
swiftlet run --bundle	$swiftlet container run --bundle $bundle
swiftlet --pids 512 (cgroup)	$swiftlet container run --pids 512 --rootfs $bundle/rootfs -- /bin/true
crun run	$(command -v crun) run -b $bundle bench-crun
runc run	$(command -v runc) run -b $bundle bench-runc
unshare -muinpfC + chroot	$(command -v unshare) -muinpfC chroot $bundle/rootfs /bin/true
EOF
if [ -n "${SWIFTLET_COMPARE:-}" ]; then
    printf 'swiftlet* run --rootfs\t%s container run --rootfs %s -- /bin/true\n' "$SWIFTLET_COMPARE" "$bundle/rootfs" >> "$work/launchers"
fi

echo "# $(uname -r), $(nproc) CPUs; crun $(crun --version | head -1 | cut -d' ' -f3), runc $(runc --version | head -1 | cut -d' ' -f3); swiftlet: $swiftlet"
echo
echo "## cold: interleaved, ${PAUSE_MS:-50} ms apart, $runs runs each (load $(cut -d' ' -f1-3 /proc/loadavg))"
unshare -m sh -c "umount /sys/fs/cgroup/unified 2>/dev/null; exec '$work/harness' '$runs' '$work/launchers' '${PAUSE_MS:-50}' interleaved"
echo
echo "## warm: each launcher's runs back to back, no pause, $runs runs each (load $(cut -d' ' -f1-3 /proc/loadavg))"
unshare -m sh -c "umount /sys/fs/cgroup/unified 2>/dev/null; exec '$work/harness' '$runs' '$work/launchers' 0 grouped"
