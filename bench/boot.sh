#!/usr/bin/env bash
# bench/boot.sh [RUNS]: `swiftlet boot` (process start → exit) against QEMU booting the same multiboot ELF
# with KVM, side by side in one run: min/median/max wall time, max RSS and the ratio. The peers are
# `qemu-system-x86_64 -M microvm -accel kvm -kernel` (QEMU's fastest machine) and the plain
# `qemu-system-x86_64 -accel kvm -kernel` (the default `pc` machine, whose SeaBIOS takes seconds on a
# software KVM, so it gets 3 runs). Every guest gets 64 MiB and exits through isa-debug-exit (QEMU: status 1; Swiftlet: 0).
# Then, where perf works (root, tracepoints), bench/boot_breakdown.py splits Swiftlet's and QEMU microvm's
# time into start-up, time inside KVM_RUN, exit handling and teardown.
# A benchmark, not a test: it prints numbers and never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
command -v qemu-system-x86_64 >/dev/null || ./setup.sh --deps
bin=.build/release/swiftlet
swift build -c release --product swiftlet 2>&1 | tail -1
guest/build.sh >/dev/null   # guest/tiny/out/hello.elf: the same bytes swiftlet embeds
elf=guest/tiny/out/hello.elf
echo "swiftlet: $($bin boot --kernel $elf >/dev/null 2>&1; echo "status $?"), backend: $(ls -d /sys/module/kvm_intel /sys/module/kvm_amd /sys/module/kvm_pvm 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"
echo "runs: $runs each, alternating"
microvm=(qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -m 64M
    -nodefaults -no-user-config -nographic -no-reboot -display none -monitor none -serial stdio
    -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel $elf)
python3 bench/run_peers.py --runs "$runs" --json "${BENCH_JSON:-/dev/null}" --runs-of "qemu -accel kvm (pc)=3" \
    "swiftlet boot" -- $bin boot --kernel $elf --memory 64M ::: \
    "swiftlet boot (embedded)" -- $bin boot --memory 64M ::: \
    "qemu microvm -accel kvm" -- "${microvm[@]}" ::: \
    "qemu -accel kvm (pc)" -- qemu-system-x86_64 -accel kvm -m 64M -nographic -no-reboot -display none \
        -monitor none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel $elf
if command -v perf >/dev/null && perf record -q -o /dev/null -e syscalls:sys_enter_ioctl true 2>/dev/null; then
    echo
    echo "where the time goes (perf tracepoints, 5 runs each; tracing adds a little to every phase):"
    python3 bench/boot_breakdown.py --runs 5 "swiftlet boot" -- $bin boot --kernel $elf --memory 64M ::: \
        "qemu microvm -accel kvm" -- "${microvm[@]}"
else
    echo "(no breakdown: perf with syscall tracepoints is not available here)"
fi
