#!/usr/bin/env bash
# bench/multiboot-kernels.sh KVM_UNIT_TESTS_DIR [TEST...]: boots kvm-unit-tests' x86 multiboot test kernels
# (built from the source directory given; its sources stay outside this repository) under Swiftlet and under
# QEMU with KVM (-M microvm and the default pc), and prints one line per test and machine: the test's
# SUMMARY line (or the last line it printed) and the exit status.
#
# kvm-unit-tests reads QEMU's fw_cfg for the CPU count and memory size unless module 0 (QEMU's -initrd) holds
# an environment that overrides them: NR_CPUS, MEMSIZE (MiB) and TEST_DEVICE=0 (QEMU's other test ports are absent); Swiftlet
# passes the same file as --initrd, its multiboot module 0. A test exits through isa-debug-exit at 0xf4, so
# status 1 is a pass on all three ((0 << 1) | 1; Swiftlet runs with --qemu-exit-status for that). QEMU gets -device pc-testdev, as kvm-unit-tests' own x86/run gives it;
# Swiftlet's PC has its interrupt lines (ports 0x2000-0x2017, Sources/Devices/IRQTestDevice.swift).
# Build first: (cd DIR && ./configure --arch=x86_64 && make x86/smptest.flat x86/ioapic.flat x86/apic.flat ...).
set -uo pipefail
dir=${1:?usage: bench/multiboot-kernels.sh KVM_UNIT_TESTS_DIR [TEST...]}
shift
tests=("${@:-smptest apic ioapic tsc}")
read -r -a tests <<< "${tests[*]}"
cd "$(dirname "$0")/.."
swiftlet=${SWIFTLET:-.build/release/swiftlet}
cpus=${CPUS:-2}
env=$(mktemp)
trap 'rm -f "$env"' EXIT
printf 'NR_CPUS=%s\nMEMSIZE=64\nTEST_DEVICE=0\n' "$cpus" > "$env"
summary() { grep -aE '^SUMMARY' "$1" | tail -1 || true; }
run() {   # run TEST NAME CMD...
    local test=$1 name=$2; shift 2
    local out status line
    out=$(mktemp)
    timeout 320 "$@" >"$out" 2>&1 </dev/null
    status=$?
    line=$(summary "$out")
    [ -n "$line" ] || line="(no SUMMARY) $(grep -av '^\s*$' "$out" | tail -1 | cut -c1-80)"
    printf '%-10s %-26s status %3s  %s\n' "$test" "$name" "$status" "$line"
    rm -f "$out"
}
for t in "${tests[@]}"; do
    k=$dir/x86/$t.flat
    [ -f "$k" ] || { echo "$k: not built" >&2; continue; }
    run "$t" "swiftlet (pc)" "$swiftlet" boot --kernel "$k" --cpus "$cpus" --memory 64M --initrd "$env" --timeout 300 --qemu-exit-status
    run "$t" "qemu -M microvm" qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -m 64M -smp "$cpus" \
        -nodefaults -no-user-config -nographic -no-reboot -display none -monitor none -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=4 -device pc-testdev -kernel "$k" -initrd "$env"
    run "$t" "qemu (pc)" qemu-system-x86_64 -accel kvm -m 64M -smp "$cpus" -nographic -no-reboot -display none \
        -monitor none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 -device pc-testdev -kernel "$k" -initrd "$env"
done
