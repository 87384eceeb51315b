#!/usr/bin/env python3
"""bench/run_peers.py: times commands side by side, in one run, and prints min/median/max and ratios.

Each command is started with fork/exec and timed from fork to reaping (wait4). Max RSS is measured in
separate runs through GNU time (/usr/bin/time -f %M): a child forked from this Python process would
inherit Python's RSS in ru_maxrss, which survives execve. Runs alternate between the commands so drift
(CPU frequency, page cache) hits them equally. Usage:
  run_peers.py --runs N [--json OUT] [--runs-of NAME=M] NAME -- CMD ARGS... ::: NAME -- CMD ARGS...
--runs-of caps one peer at M runs (for a peer that takes seconds where the others take milliseconds); its
runs still alternate with the others'. The name column is 26 characters wide.
"""
import json, os, statistics, sys, time

def parse(argv):
    runs, out, peers, caps = 20, None, [], {}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        if argv[i] == "--runs": runs = int(argv[i + 1]); i += 2
        elif argv[i] == "--json": out = argv[i + 1]; i += 2
        elif argv[i] == "--runs-of":
            name, _, count = argv[i + 1].rpartition("="); caps[name] = int(count); i += 2
        else: sys.exit(f"unknown option {argv[i]}")
    rest = argv[i:]
    groups, cur = [], []
    for a in rest:
        if a == ":::": groups.append(cur); cur = []
        else: cur.append(a)
    groups.append(cur)
    for g in groups:
        name, sep, cmd = g[0], g[1], g[2:]
        assert sep == "--", "format: NAME -- CMD ..."
        peers.append((name, cmd))
    return runs, out, peers, caps

def run_once(cmd):
    devnull = os.open(os.devnull, os.O_RDWR)
    start = time.perf_counter_ns()
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 0); os.dup2(devnull, 1); os.dup2(devnull, 2)
        try: os.execvp(cmd[0], cmd)
        finally: os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    os.close(devnull)
    return elapsed, usage.ru_maxrss, os.waitstatus_to_exitcode(status)

def max_rss_kib(cmd, runs=3):
    import subprocess, tempfile
    best = 0
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r") as f:
            subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            text = f.read().strip().splitlines()
            if text and text[-1].isdigit(): best = max(best, int(text[-1]))
    return best

def main():
    runs, out, peers, caps = parse(sys.argv[1:])
    results = {name: {"ms": [], "kib": [], "status": set()} for name, _ in peers}
    for name, cmd in peers:
        if caps.get(name, runs) >= runs: run_once(cmd)  # warm the page cache
    for _ in range(runs):
        for name, cmd in peers:
            if len(results[name]["ms"]) >= caps.get(name, runs): continue
            ms, kib, status = run_once(cmd)
            r = results[name]; r["ms"].append(ms); r["kib"].append(kib); r["status"].add(status)
    base = peers[0][0]
    base_median = statistics.median(results[base]["ms"])
    print(f"{'':26} {'min ms':>9} {'median ms':>10} {'max ms':>9} {'max RSS MiB':>12} {'status':>7} {'median ratio':>13}")
    summary = {}
    for name, _ in peers:
        r = results[name]; med = statistics.median(r["ms"])
        ratio = med / base_median
        rss = max_rss_kib(dict(peers)[name], runs=min(3, len(r["ms"]))) / 1024
        print(f"{name:26} {min(r['ms']):9.2f} {med:10.2f} {max(r['ms']):9.2f} {rss:12.2f} {','.join(map(str, sorted(r['status']))):>7} {ratio:12.2f}x")
        summary[name] = {"runs": len(r["ms"]), "min_ms": min(r["ms"]), "median_ms": med, "max_ms": max(r["ms"]),
                         "max_rss_mib": rss, "exit_statuses": sorted(r["status"]), "ratio_to_first": ratio}
    if out:
        with open(out, "w") as f: json.dump(summary, f, indent=2)

main()
