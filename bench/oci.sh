#!/usr/bin/env bash
# bench/oci.sh [RUNS] [PODMAN_RUNS]: swiftlet as an OCI runtime next to crun and runc, on one bundle
# (`crun spec` with /bin/true around the project's busybox rootfs), measured by bench/harness.c
# (posix_spawn + wait4, launchers taking turns, 50 ms apart):
#   1. the lifecycle podman drives: `create`, `start`, `delete --force` (one small sh script per runtime,
#      so each line includes the same three execs plus one sh);
#   2. `RUNTIME run` (create + start + wait + delete in one process);
#   3. `podman run --rm IMAGE true` with each runtime (PODMAN_RUNS runs, default 20; private podman storage).
# Like bench/container.sh it runs inside `unshare -m` with /sys/fs/cgroup/unified unmounted (crun 1.8.1
# refuses the hybrid layout). podman needs --ulimit nofile/nproc under this sandbox's limits, and
# --security-opt seccomp=unconfined for swiftlet (a linux.seccomp profile is refused until it can be
# compiled), given to every runtime alike so they run the same config.
# Needs root, cc, crun, runc, podman; builds the release swiftlet unless SWIFTLET names a binary.
set -euo pipefail
runs=${1:-50}
podman_runs=${2:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/swiftlet-bench-oci.XXXXXX)
cleanup() {
    podman $podman_flags rm -af -t 0 >/dev/null 2>&1 || true
    grep -o " $work[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}
podman_flags="--root $work/podman --runroot $work/podman-run --tmpdir $work/podman-tmp --cgroup-manager cgroupfs --events-backend file"
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 1; }
for tool in crun runc podman cc; do command -v $tool >/dev/null || { echo "bench: needs $tool (setup.sh --deps)" >&2; exit 1; }; done

swiftlet=${SWIFTLET:-}
if [ -z "$swiftlet" ]; then
    (cd "$here" && swift build -c release --product swiftlet >&2)
    swiftlet=$here/.build/release/swiftlet
fi
ln -s "$swiftlet" "$work/swiftlet-runtime"
runtime=$work/swiftlet-runtime
cc -O2 -o "$work/harness" "$here/bench/harness.c"

rootfs=$("$here/guest/rootfs/build.sh" | tail -1)
bundle=$work/bundle
mkdir -p "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
(cd "$bundle" && crun spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"\/bin\/true"/' "$bundle/config.json"

lifecycle() { # NAME RUNTIME [GLOBAL OPTIONS]: create, start, delete --force as podman's conmon does it
    printf '%s create --bundle %s bench-%s && %s start bench-%s && %s delete --force bench-%s\n' \
        "$2 ${3:-}" "$bundle" "$1" "$2 ${3:-}" "$1" "$2 ${3:-}" "$1" > "$work/lifecycle-$1.sh"
    printf '%s create+start+delete\t/bin/sh %s\n' "$1" "$work/lifecycle-$1.sh"
}
{
    lifecycle swiftlet "$runtime" "--root $work/state"
    lifecycle crun "$(command -v crun)"
    lifecycle runc "$(command -v runc)"
    printf 'swiftlet run\t%s --root %s run --bundle %s bench-swiftlet-run\n' "$runtime" "$work/state" "$bundle"
    printf 'crun run\t%s run --bundle %s bench-crun-run\n' "$(command -v crun)" "$bundle"
    printf 'runc run\t%s run --bundle %s bench-runc-run\n' "$(command -v runc)" "$bundle"
} > "$work/launchers"

echo "# $(uname -r), $(nproc) CPUs; crun $(crun --version | head -1 | cut -d' ' -f3), runc $(runc --version | head -1 | cut -d' ' -f3), $(podman --version); swiftlet: $swiftlet"
echo
echo "## the OCI lifecycle and run: interleaved, 50 ms apart, $runs runs each (load $(cut -d' ' -f1-3 /proc/loadavg))"
HARNESS_BASE="crun create+start+delete" unshare -m sh -c "umount /sys/fs/cgroup/unified 2>/dev/null; exec '$work/harness' '$runs' '$work/launchers' 50 interleaved"

tar -C "$rootfs" -c . | podman $podman_flags import - localhost/swiftlet-bench >/dev/null
run_flags="--rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --security-opt seccomp=unconfined localhost/swiftlet-bench true"
for name in swiftlet crun runc; do
    path=$runtime; [ $name = swiftlet ] || path=$(command -v $name)
    printf 'podman --runtime %s\t%s %s --runtime %s run %s\n' "$name" "$(command -v podman)" "$podman_flags" "$path" "$run_flags"
done > "$work/podman-launchers"
echo
echo "## podman run --rm IMAGE true: interleaved, 50 ms apart, $podman_runs runs each (load $(cut -d' ' -f1-3 /proc/loadavg))"
HARNESS_BASE="podman --runtime crun" unshare -m sh -c "umount /sys/fs/cgroup/unified 2>/dev/null; exec '$work/harness' '$podman_runs' '$work/podman-launchers' 50 interleaved"
