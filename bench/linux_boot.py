#!/usr/bin/env python3
"""bench/linux_boot.py: time to the command's output for Swiftlet and QEMU microvm, side by side.

Each run starts the VMM, reads the guest's serial console from the VMM's stdout as it arrives, and
timestamps (host monotonic clock, from fork) the first line containing each milestone:
  "Linux version"            the kernel banner (first console line)
  "smpboot: Total of"        all CPUs up
  "Unpacking initramfs"      initramfs unpacking starts
  "is a 16550A"              the 8250 driver probed COM1
  "Run /init as init process"  the kernel hands over to user space
  "swiftlet-init: started"   Swiftlet's init (guest/linux/init.c) runs
  "=RELEASE"                 the command's output: a line that is exactly the release `uname -r` prints
                             (given with --output; a whole-line match, so the kernel's banner and its
                             echo of the command line do not count)
The run is ended once the command's output arrived (or at the timeout); the VMM is killed then, so what
follows (init's exit, the VM's teardown) is not in the numbers. Runs alternate between the VMMs; the
script prints min/median/max per milestone and the ratio of medians to the first VMM. A benchmark, not a
test. Usage: linux_boot.py --runs N --timeout S NAME -- CMD ... ::: NAME -- CMD ...
"""
import os, select, signal, statistics, sys, time

MILESTONES = ["Linux version", "smpboot: Total of", "Unpacking initramfs", "is a 16550A", "Run /init as init process",
              "swiftlet-init: started"]

def parse(argv):
    runs, timeout, i = 3, 600, 0
    while i < len(argv) and argv[i].startswith("--"):
        if argv[i] == "--runs": runs = int(argv[i + 1]); i += 2
        elif argv[i] == "--timeout": timeout = float(argv[i + 1]); i += 2
        elif argv[i] == "--output": MILESTONES.append("=" + argv[i + 1]); i += 2
        else: sys.exit(f"unknown option {argv[i]}")
    groups, cur = [], []
    for a in argv[i:]:
        if a == ":::": groups.append(cur); cur = []
        else: cur.append(a)
    groups.append(cur)
    return runs, timeout, [(g[0], g[2:]) for g in groups if len(g) > 2 and g[1] == "--"]

# A VMM that stops the guest without exiting (QEMU after "KVM internal error", an emulation failure it does
# not handle) would otherwise hold the run until the timeout.
STOPS = ["KVM internal error"]

def run_once(cmd, timeout):
    r, w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0); os.dup2(w, 1); os.dup2(devnull, 2)
        try: os.execvp(cmd[0], cmd)
        finally: os._exit(127)
    os.close(w)
    seen, buf = {}, b""
    while time.monotonic() - start < timeout:
        ready, _, _ = select.select([r], [], [], 1.0)
        if not ready: continue
        chunk = os.read(r, 65536)
        if not chunk: break
        now = time.monotonic() - start
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines + [buf]:
            text = line.decode("utf-8", "replace")
            for m in MILESTONES:
                if m in seen: continue
                if m.startswith("="):
                    if text.strip("\r\n ") == m[1:]: seen[m] = now
                elif m in text: seen[m] = now
            for stop in STOPS:
                if stop in text and "stopped" not in seen: seen["stopped"] = now; seen["why"] = text.strip()
        if MILESTONES[-1] in seen or "stopped" in seen: break
    try: os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError: pass
    os.waitpid(pid, 0)
    os.close(r)
    return seen

def main():
    runs, timeout, peers = parse(sys.argv[1:])
    results = {name: [] for name, _ in peers}
    for i in range(runs):
        for name, cmd in peers:
            seen = run_once(cmd, timeout)
            results[name].append(seen)
            got = ", ".join(f"{m.split(':')[0].split(' as ')[0]} {t:.1f}s" for m, t in seen.items() if m != "why")
            if "why" in seen: got += f" ({seen['why']})"
            print(f"run {i + 1} {name}: {got or 'no milestone'}", flush=True)
    print()
    base = peers[0][0]
    print(f"{'milestone':28} " + " ".join(f"{n[:26]:>28}" for n, _ in peers) + "   ratio (median, vs first)")
    for m in MILESTONES:
        cells, medians = [], []
        for name, _ in peers:
            times = [s[m] for s in results[name] if m in s]
            if times:
                med = statistics.median(times); medians.append(med)
                cells.append(f"{med:8.2f}s ({len(times)}/{runs}, {min(times):.1f}-{max(times):.1f})")
            else:
                medians.append(None); cells.append("not reached")
        ratios = [f"{mm / medians[0]:.2f}x" if mm and medians[0] else "-" for mm in medians[1:]]
        print(f"{m[:28]:28} " + " ".join(f"{c:>28}" for c in cells) + "   " + " ".join(ratios))

main()
