#!/usr/bin/env bash
# bench/virtio.sh [SERIAL_KIB] [VIRTIO_KIB] [RUNS]: guest → host console throughput of the tiny guest
# `console-bench` through the 8250 UART and through virtio-console (virtio-mmio, ioeventfd + irqfd), in one
# run: MB/s, the ratio, and VM exits per KiB for each.
#
# Method: each console is timed at two sizes, N and 2N KiB (defaults: 64 KiB for the 8250, whose every byte
# costs two port I/O exits; 256 MiB for virtio), RUNS times each (default 3), alternating. Throughput is the
# marginal one, N KiB / (median time at 2N - median time at N), so VM start-up, the guest's own set-up and
# process exit cancel out; exits per KiB likewise come from the difference of the VMM's exit counts
# (`swiftlet boot -v` prints them). The guest's output goes to a pipe that counts it: every byte must arrive.
# SWIFTLET=path uses that binary instead of building the release one. A benchmark: it never fails on numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
serial_kib=${1:-64}
virtio_kib=${2:-262144}
runs=${3:-3}
bin=${SWIFTLET:-.build/release/swiftlet}
if [ -z "${SWIFTLET:-}" ]; then swift build -c release --product swiftlet 2>&1 | tail -1; fi
echo "backend: $(ls -d /sys/module/kvm_intel /sys/module/kvm_amd /sys/module/kvm_pvm 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"
python3 - "$bin" "$serial_kib" "$virtio_kib" "$runs" <<'PY'
import os, re, statistics, subprocess, sys, time
binary, serial_kib, virtio_kib, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def run(console, kib):
    args = [binary, "boot", "--guest", "console-bench", "--cmdline", f"kib={kib}", "--memory", "64M", "-v", "--timeout", "3600"]
    if console == "virtio": args += ["--console", "virtio"]
    start = time.perf_counter()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received = 0
    while True:
        chunk = p.stdout.read(1 << 20)
        if not chunk: break
        received += len(chunk)
    err = p.stderr.read().decode()
    status = p.wait()
    elapsed = time.perf_counter() - start
    if status != 0 or received != kib * 1024:
        sys.exit(f"{console} {kib} KiB: status {status}, received {received} of {kib * 1024} bytes\n{err}")
    exits = int(re.search(r"swiftlet: (\d+) VM exits", err).group(1))
    kicks = re.search(r"(\d+) kicks?", err)
    return elapsed, exits, int(kicks.group(1)) if kicks else 0

results = {}
plan = [("serial", serial_kib), ("serial", 2 * serial_kib), ("virtio", virtio_kib), ("virtio", 2 * virtio_kib)]
samples = {key: [] for key in plan}
for r in range(runs):
    for key in plan:
        samples[key].append(run(*key))
rows = []
for console, kib in [("serial", serial_kib), ("virtio", virtio_kib)]:
    small, large = samples[(console, kib)], samples[(console, 2 * kib)]
    t1, t2 = statistics.median(s[0] for s in small), statistics.median(s[0] for s in large)
    e1, e2 = statistics.median(s[1] for s in small), statistics.median(s[1] for s in large)
    k1, k2 = statistics.median(s[2] for s in small), statistics.median(s[2] for s in large)
    mbps = kib * 1024 / (t2 - t1) / 1e6
    rows.append((console, kib, t1, t2, mbps, (e2 - e1) / kib, (k2 - k1) / kib))
print(f"runs: {runs} per size, alternating; times are medians; MB = 10^6 bytes")
print(f"{'console':<28}{'N KiB':>10}{'t(N) s':>10}{'t(2N) s':>10}{'MB/s':>12}{'exits/KiB':>12}{'kicks/KiB':>12}")
names = {"serial": "8250 UART (COM1)", "virtio": "virtio-console (mmio)"}
for console, kib, t1, t2, mbps, epk, kpk in rows:
    print(f"{names[console]:<28}{kib:>10}{t1:>10.3f}{t2:>10.3f}{mbps:>12.3f}{epk:>12.4f}{kpk:>12.4f}")
print(f"virtio / 8250 throughput: {rows[1][4] / rows[0][4]:.0f}x")
PY
