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

cat > "$work/harness.c" <<'EOF'
/* harness RUNS FILE PAUSE_MS [interleaved|grouped]: FILE has one launcher per line, "label<TAB>argv
 * words separated by spaces". Runs each RUNS times (after one warm-up round), taking turns round by
 * round (interleaved) or each launcher's runs back to back (grouped), PAUSE_MS apart; prints median,
 * p10, p90 and max RSS. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
#define MAXL 16
static char *labels[MAXL]; static char **argvs[MAXL]; static int n;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static int pause_ms = 50;
static double run(int i, long *rss, int *status) {
    usleep(pause_ms * 1000);
    posix_spawn_file_actions_t fa; posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    double t = now(); pid_t pid;
    if (posix_spawn(&pid, argvs[i][0], &fa, NULL, argvs[i], environ) != 0) { perror(argvs[i][0]); exit(1); }
    struct rusage ru; wait4(pid, status, 0, &ru);
    double elapsed = now() - t;
    posix_spawn_file_actions_destroy(&fa);
    if (ru.ru_maxrss > *rss) *rss = ru.ru_maxrss;
    return elapsed;
}
int main(int argc, char **argv) {
    int runs = atoi(argv[1]); FILE *f = fopen(argv[2], "r"); char line[4096];
    if (argc > 3) pause_ms = atoi(argv[3]);
    int grouped = argc > 4 && !strcmp(argv[4], "grouped");
    while (n < MAXL && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0; char *tab = strchr(line, '\t'); if (!tab) continue; *tab = 0;
        labels[n] = strdup(line); char **av = calloc(64, sizeof *av); int k = 0;
        for (char *w = strtok(tab + 1, " "); w && k < 63; w = strtok(NULL, " ")) av[k++] = strdup(w);
        argvs[n++] = av;
    }
    double *times[MAXL]; long rss[MAXL] = {0}; int failures[MAXL] = {0};
    for (int i = 0; i < n; i++) { times[i] = calloc(runs, sizeof(double)); int s; long r = 0; run(i, &r, &s); }
    if (grouped) {
        for (int i = 0; i < n; i++) for (int r = 0; r < runs; r++) {
            int s; times[i][r] = run(i, &rss[i], &s); if (s != 0) failures[i]++;
        }
    } else {
        for (int r = 0; r < runs; r++) for (int i = 0; i < n; i++) {
            int s; times[i][r] = run(i, &rss[i], &s); if (s != 0) failures[i]++;
        }
    }
    double base = 0;
    for (int i = 0; i < n; i++) { qsort(times[i], runs, sizeof(double), cmp); if (!strcmp(labels[i], "crun run")) base = times[i][runs / 2]; }
    printf("%-30s %9s %9s %9s %8s %10s %s\n", "launcher", "median", "p10", "p90", "x crun", "max RSS", "failed");
    for (int i = 0; i < n; i++) {
        double m = times[i][runs / 2];
        printf("%-30s %6.2f ms %6.2f ms %6.2f ms %7.2fx %7.1f MiB %d\n", labels[i], m, times[i][runs / 10],
               times[i][runs * 9 / 10], base > 0 ? m / base : 0, rss[i] / 1024.0, failures[i]);
    }
    return 0;
}
EOF
cc -O2 -o "$work/harness" "$work/harness.c"

cat > "$work/launchers" <<EOF
swiftlet run --rootfs	$swiftlet container run --rootfs $bundle/rootfs -- /bin/true
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
