#!/usr/bin/env bash
# bench/snapshot.sh [RUNS]: what a snapshot buys. Boots the minimal Linux once to its init's snapshot point
# (`swiftlet boot --snapshot`), then restores that file RUNS times with a command (`swiftlet restore FILE -v
# -- /bin/true`) and reports, median (min-max) over the runs: the restore itself (file checked, VM built, RAM
# mapped, state set), restore → the command's first instruction (init's lab marker 4, written right before
# execve), restore → exit (whole process, wall clock), and the restored VMM's max RSS; against one cold
# `swiftlet boot -- /bin/true`. The same for the counter tiny guest (boot vs restore, to its exit).
# Release build. A benchmark, not a test: it prints numbers and never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
swift build -c release --product swiftlet 2>&1 | tail -1
bin=.build/release/swiftlet
linux=${SWIFTLET_LINUX_DIR:-guest/linux/out}
work=$(mktemp -d /tmp/swiftlet-bench-snapshot.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "backend: $(ls -d /sys/module/kvm_intel /sys/module/kvm_amd /sys/module/kvm_pvm 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"
python3 - "$bin" "$linux" "$work" "$runs" <<'PY'
import os, re, subprocess, sys, time, statistics
bin, linux, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def run_rss(args):
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        os.dup2(fd, 0)
        log = os.open(os.path.join(work, "stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        out = os.open(os.path.join(work, "stdout"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1); os.dup2(log, 2)
        os.execv(bin, [bin] + args)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    err = open(os.path.join(work, "stderr")).read()
    return os.waitstatus_to_exitcode(status), err, wall, usage.ru_maxrss

def ms(x): return f"{x:.1f}"
def summary(values):
    return f"{ms(statistics.median(values))} ms (min {ms(min(values))}, max {ms(max(values))})"

kernel = [f"--kernel", f"{linux}/bzImage", "--initrd", f"{linux}/initramfs.cpio", "--memory", "128M", "--timeout", "600"]
snap = os.path.join(work, "linux.snap")
status, err, wall, rss = run_rss(["boot"] + kernel + ["-v", "--", "/bin/true"])
cold_marker = re.search(r"([\d.]+) ms  command starts", err)
print(f"cold boot -- /bin/true: status {status}, to the command's first instruction {cold_marker.group(1) if cold_marker else '?'} ms, total {ms(wall * 1000)} ms, max RSS {rss} KiB")
status, err, wall, rss = run_rss(["boot"] + kernel + ["--snapshot", snap])
print(f"boot --snapshot: status {status}, {ms(wall * 1000)} ms; {err.strip().splitlines()[-1] if err.strip() else ''}")
restore, to_command, total, rsses = [], [], [], []
for _ in range(runs):
    status, err, wall, rss = run_rss(["restore", snap, "-v", "--", "/bin/true"])
    r = re.search(r"restored in ([\d.]+) ms", err)
    m = re.search(r"([\d.]+) ms  command starts", err)
    if status != 0 or not r or not m:
        print(f"restore failed: status {status}\n{err}"); continue
    restore.append(float(r.group(1))); to_command.append(float(m.group(1))); total.append(wall * 1000); rsses.append(rss)
if restore:
    print(f"restore -- /bin/true ({len(restore)} runs):")
    print(f"  restore (checked, built, mapped, set)   {summary(restore)}")
    print(f"  restore -> command's first instruction  {summary(to_command)}")
    print(f"  restore -> exit (process wall clock)    {summary(total)}")
    print(f"  max RSS of the restored VMM             {int(statistics.median(rsses))} KiB (min {min(rsses)}, max {max(rsses)})")

counter = os.path.join(work, "counter.snap")
run_rss(["boot", "--guest", "counter", "--snapshot", counter])
boots = [run_rss(["boot", "--guest", "counter"])[2] * 1000 for _ in range(runs)]
restores = [run_rss(["restore", counter])[2] * 1000 for _ in range(runs)]
print(f"counter tiny guest, process start -> exit ({runs} runs): boot {summary(boots)}; restore (counts 6-10) {summary(restores)}")
PY
