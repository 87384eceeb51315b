#!/usr/bin/env bash
# bench/public-kernels.sh KVM_UNIT_TESTS_DIR [TEST[:CPUS] ...]: boots multiboot kernels that nobody on this
# project wrote — the x86 tests of kvm-unit-tests (KVM's own test kernels: multiboot ELFs that use the LAPIC,
# the IOAPIC, INIT/SIPI to start application processors, the TSC, MSRs and interrupts, and read their
# environment from a multiboot module) — under Swiftlet and under QEMU with KVM (the pc and microvm
# machines), one after the other on this machine, and prints the outcomes side by side.
#
# The sources stay outside this repository: fetch them (e.g. git clone of kvm-unit-tests) and give the
# directory; the script runs ./configure && make there if x86/*.flat are not built yet. Every kernel gets
# 64 MiB, the serial console and the isa-debug-exit port; Swiftlet runs with --qemu-exit-status so that the
# three statuses read alike: 1 = every test passed, 3 = some failed, 77 = skipped (kvm-unit-tests' exit
# codes through QEMU's (v << 1) | 1). QEMU also gets kvm-unit-tests' pc-testdev where the machine has it
# (the ioapic test raises interrupts through it; Swiftlet has no such device: those checks fail there and
# the table says so). TIMEOUT (default 240 s) bounds each run: on kvm_pvm guest kernel code is emulated.
#   SWIFTLET=.build/release/swiftlet bench/public-kernels.sh /work/ext/kvm-unit-tests smptest:2 apic:2
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/public-kernels.sh KVM_UNIT_TESTS_DIR [TEST[:CPUS] ...]" >&2; exit 2; }
src=$(cd "$1" && pwd) || exit 2
shift
swiftlet=${SWIFTLET:-.build/release/swiftlet}
timeout=${TIMEOUT:-240}
[ -x "$swiftlet" ] || { echo "public-kernels: no $swiftlet (swift build -c release, or SWIFTLET=...)" >&2; exit 2; }
if ! ls "$src"/x86/*.flat >/dev/null 2>&1; then
    echo "public-kernels: building kvm-unit-tests in $src" >&2
    (cd "$src" && ./configure --arch=x86_64 >/dev/null && make -j"$(nproc)" >/dev/null) || { echo "public-kernels: the build failed" >&2; exit 1; }
fi
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(smptest:2 setjmp:1 idt_test:1 tsc:1 ioapic:1 apic:2 msr:1)
log=${LOG_DIR:-$(mktemp -d /tmp/swiftlet-public-kernels.XXXXXX)}
echo "public-kernels: kvm-unit-tests $(git -C "$src" log -1 --format='%h %cs' 2>/dev/null), logs in $log" >&2
echo "backend: $(ls -d /sys/module/kvm_intel /sys/module/kvm_amd /sys/module/kvm_pvm 2>/dev/null | xargs -n1 basename | tr '\n' ' ')" >&2

qemu_common=(-accel kvm -cpu qemu64,+xsaveerptr -m 64 -nodefaults -nographic -serial stdio -monitor none
             -device isa-debug-exit,iobase=0xf4,iosize=4)

# outcome LOG STATUS: "status S, N tests, F failures" from the log's SUMMARY line.
outcome() {
    local summary
    summary=$(grep -aE '^SUMMARY:' "$1" | tail -n 1 | sed 's/^SUMMARY: //')
    [ "$2" = 124 ] && { echo "timeout ${timeout}s${summary:+ ($summary)}"; return; }
    echo "status $2${summary:+: $summary}"
}

printf '%-12s %-5s | %-42s | %-42s | %-42s\n' test cpus swiftlet "qemu -M pc" "qemu -M microvm"
for spec in "${tests[@]}"; do
    name=${spec%%:*}; cpus=${spec#*:}; [ "$cpus" = "$spec" ] && cpus=1
    kernel=$src/x86/$name.flat
    [ -f "$kernel" ] || { printf '%-12s not built (%s)\n' "$name" "$kernel"; continue; }
    timeout "$timeout" "$swiftlet" boot --kernel "$kernel" --cpus "$cpus" --memory 64 --qemu-exit-status >"$log/$name.swiftlet" 2>&1 </dev/null
    s=$(outcome "$log/$name.swiftlet" $?)
    timeout "$timeout" qemu-system-x86_64 -M pc "${qemu_common[@]}" -device pc-testdev -smp "$cpus" -kernel "$kernel" >"$log/$name.pc" 2>&1 </dev/null
    p=$(outcome "$log/$name.pc" $?)
    timeout "$timeout" qemu-system-x86_64 -M microvm,x-option-roms=off "${qemu_common[@]}" -smp "$cpus" -kernel "$kernel" >"$log/$name.microvm" 2>&1 </dev/null
    m=$(outcome "$log/$name.microvm" $?)
    printf '%-12s %-5s | %-42s | %-42s | %-42s\n' "$name" "$cpus" "$s" "$p" "$m"
done
