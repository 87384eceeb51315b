#!/usr/bin/env python3
"""bench/boot_breakdown.py: where a VMM's boot time goes, measured from the kernel's side with perf.

For each command (a VMM booting a guest that ends by itself) this runs it under `perf record` with four
tracepoints and splits the wall time, from execve to the moment the parent's wait4 returns, into:
  start-up      execve -> the first KVM_RUN ioctl (process start, the VMM's set-up, KVM_CREATE_VM/VCPU...)
  in KVM_RUN    time inside KVM_RUN on the vCPU threads: the guest running, plus, on a software KVM
                (kvm_pvm), KVM's instruction emulator running the guest's kernel-mode code
  VMM exits     time between a KVM_RUN returning and the next one: the VMM handling the exit
  teardown      the last KVM_RUN returning -> wait4 returning (threads, VM destruction, process exit)
start-up + VMM exits + teardown is the VMM's own cost; "in KVM_RUN" is what the guest and the KVM backend
cost, the same guest code for every VMM. On hardware KVM (kvm_intel/kvm_amd) the guest runs natively and
"in KVM_RUN" shrinks to microseconds per exit; on kvm_pvm it is dominated by the emulator.
Runs alternate between the commands; medians are printed. Needs root (tracepoints) and perf.
Usage: boot_breakdown.py --runs N NAME -- CMD ARGS... ::: NAME -- CMD ARGS...
"""
import os, statistics, subprocess, sys, tempfile

KVM_RUN = "cmd: 0x0000ae80"
EVENTS = ["sched:sched_process_exec", "syscalls:sys_enter_ioctl", "syscalls:sys_exit_ioctl",
          "syscalls:sys_exit_wait4"]


def parse(argv):
    runs = 5
    if argv[:1] == ["--runs"]:
        runs, argv = int(argv[1]), argv[2:]
    peers, cur = [], []
    for a in argv + [":::"]:
        if a == ":::":
            name, sep, cmd = cur[0], cur[1], cur[2:]
            assert sep == "--", "format: NAME -- CMD ..."
            peers.append((name, cmd)); cur = []
        else:
            cur.append(a)
    return runs, peers


def one_run(cmd):
    """Runs cmd once under perf (through a tiny waiter, so the parent's wait4 is traced); returns the phases in ms."""
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "perf.data")
        waiter = [sys.executable, "-c",
                  "import os,sys; p=os.fork()\n"
                  "if p==0:\n"
                  " fd=os.open(os.devnull,os.O_RDWR); [os.dup2(fd,i) for i in (0,1,2)]; os.execvp(sys.argv[1],sys.argv[1:])\n"
                  "os.waitpid(p,0)", *cmd]
        subprocess.run(["perf", "record", "-q", "-o", data] + sum((["-e", e] for e in EVENTS), []) + waiter,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        text = subprocess.run(["perf", "script", "-i", data, "-F", "pid,tid,time,event,trace"],
                              capture_output=True, text=True, check=True).stdout
    execed, first_run, last_exit, waited = None, None, None, None
    vmm_pid, inside, between, entered, runs = None, 0.0, 0.0, {}, 0
    for line in text.splitlines():
        parts = line.split(None, 3)     # "PID/TID TIME: EVENT: FIELDS"
        if len(parts) < 3 or "/" not in parts[0]:
            continue
        (pid, tid), t, event = parts[0].split("/"), float(parts[1].rstrip(":")), parts[2].rstrip(":")
        rest = parts[3] if len(parts) > 3 else ""
        if event == "sched:sched_process_exec" and cmd[0].split("/")[-1] in rest and execed is None:
            execed, vmm_pid = t, pid
        elif pid != vmm_pid:
            if event == "syscalls:sys_exit_wait4" and execed is not None and waited is None:
                waited = t
        elif event == "syscalls:sys_enter_ioctl" and KVM_RUN in rest:
            if first_run is None:
                first_run = t
            elif tid in last_exit_by_tid:
                between += t - last_exit_by_tid[tid]
            entered[tid] = t; runs += 1
        elif event == "syscalls:sys_exit_ioctl" and tid in entered:
            start = entered.pop(tid)
            inside += t - start
            last_exit = t
            last_exit_by_tid[tid] = t
    if None in (execed, first_run, last_exit, waited):
        raise SystemExit(f"boot_breakdown: incomplete trace for {' '.join(cmd)}")
    return {"start-up": (first_run - execed) * 1e3, "in KVM_RUN": inside * 1e3, "VMM exits": between * 1e3,
            "teardown": (waited - last_exit) * 1e3, "total": (waited - execed) * 1e3, "KVM_RUNs": runs}


last_exit_by_tid = {}


def main():
    runs, peers = parse(sys.argv[1:])
    results = {name: [] for name, _ in peers}
    for _ in range(runs):
        for name, cmd in peers:
            last_exit_by_tid.clear()
            results[name].append(one_run(cmd))
    cols = ["start-up", "in KVM_RUN", "VMM exits", "teardown", "total"]
    print(f"{'median ms':<28}" + "".join(f"{c:>12}" for c in cols) + f"{'KVM_RUNs':>10}{'VMM own':>10}")
    own = {}
    for name, rs in results.items():
        med = {c: statistics.median(r[c] for r in rs) for c in cols + ["KVM_RUNs"]}
        own[name] = statistics.median(r["start-up"] + r["VMM exits"] + r["teardown"] for r in rs)
        print(f"{name:<28}" + "".join(f"{med[c]:>12.2f}" for c in cols) + f"{med['KVM_RUNs']:>10.0f}{own[name]:>10.2f}")
    first = next(iter(own))
    for name in own:
        if name != first:
            print(f"VMM own time (start-up + exits + teardown), {name} / {first}: {own[name] / own[first]:.1f}x")


if __name__ == "__main__":
    main()
