#!/usr/bin/env bash
# bench/linux-boot.sh [RUNS]: time from process start to the command's output (`uname -r` in the
# guest's busybox user space) for Swiftlet and QEMU microvm (`-accel kvm`) booting the same minimal kernel,
# initramfs, memory (64 MiB, Swiftlet's default), one vCPU and kernel command line, side by side in one run
# (bench/linux_boot.py: per-milestone min/median/max, ratios). Three peers:
#   swiftlet (bzImage)   the default recipe: `swiftlet boot --kernel bzImage --initrd ... -- echo ...`; on
#                        kvm_pvm the profile unpacks the LZ4 kernel on the host and hands it a random seed
#   swiftlet (vmlinux)   the PVH entry of the same kernel, as QEMU gets it
#   qemu microvm         `-kernel vmlinux` (PVH), the command after `--` on its command line (init reads its
#                        arguments when there is no /swiftlet/argv); `-cpu qemu64,+xsaveerptr` as Swiftlet's CPUID
#                        has it (without it AMD's FXSAVE-leak workaround runs FNCLEX, which KVM's emulator lacks).
#                        On kvm_pvm QEMU then stops at the first FWAIT after /init (an emulation failure Swiftlet
#                        finishes itself, docs/07): the script records where each run stopped.
#
# QEMU gets the int3-removed variant of the kernel (guest/linux/README.md, "Variant"): on kvm_pvm Linux's
# boot-time int3 self-test is an emulation failure that stops QEMU, while Swiftlet finishes the int3 in
# the VMM. The variant is built once into guest/linux/out/noint3 from its own copy of the source.
# On kvm_pvm the command line also carries Swiftlet's kvm_pvm profile (the same words for both VMMs).
# A benchmark, not a test: it prints numbers and never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
timeout=${BENCH_TIMEOUT:-600}
command -v qemu-system-x86_64 >/dev/null || ./setup.sh --deps
swift build -c release --product swiftlet 2>&1 | tail -1
bin=.build/release/swiftlet
out=guest/linux/out
guest/linux/build.sh >/dev/null
variant=$out/noint3
if [ ! -s "$variant/vmlinux" ]; then
    src=${NOINT3_SRC:-/tmp/swiftlet-linux-noint3-src}
    if [ ! -d "$src" ]; then cp -a "$out/src" "$src"; fi
    alt=$(ls -d "$src"/linux-source-*/arch/x86/kernel/alternative.c | head -n 1)
    sed -i 's/^\tint3_selftest();$/\t\/\* int3_selftest(); removed: kvm_pvm cannot run int3 at CPL0 \*\//' "$alt"
    if grep -q '^	int3_selftest();$' "$alt"; then echo "could not remove int3_selftest() from $alt" >&2; exit 1; fi
    LINUX_SRC_CACHE=$src guest/linux/build.sh "$variant" >/dev/null
fi
backend=$( (ls -d /sys/module/kvm_intel /sys/module/kvm_amd /sys/module/kvm_pvm 2>/dev/null || true) | xargs -n1 basename | tr "\n" " ")
profile=""
case $backend in *kvm_pvm*)
    # The profile's words as Swiftlet adds them (its -v notes name the final command line).
    notes=$($bin boot --kernel "$out/vmlinux" --initrd "$out/initramfs.cpio" -v --timeout 0.001 2>&1 || true)
    # (the VMM's own pci=off is among the words: QEMU's microvm has no PCI bus either)
    profile=$(printf '%s\n' "$notes" | sed -n 's/^swiftlet: kernel command line: console=ttyS0 reboot=k panic=-1 //p' | head -n 1) ;;
esac
echo "backend: $backend; runs: $runs each, alternating; kernel: $out/bzImage and $out/vmlinux (QEMU: $variant/vmlinux)"
echo "command line: console=ttyS0 reboot=k panic=-1 $profile (+ QEMU: -- uname -r)"
release=$(cat "$out/build/include/config/kernel.release")
python3 bench/linux_boot.py --runs "$runs" --timeout "$timeout" --output "$release" \
    "swiftlet (bzImage)" -- $bin boot --kernel "$out/bzImage" --initrd "$out/initramfs.cpio" --memory 64M --cpus 1 -- uname -r ::: \
    "swiftlet (vmlinux, PVH)" -- $bin boot --kernel "$out/vmlinux" --initrd "$out/initramfs.cpio" --memory 64M --cpus 1 -- uname -r ::: \
    "qemu microvm -accel kvm" -- qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -cpu qemu64,+xsaveerptr -m 64M -smp 1 \
        -nodefaults -no-user-config -nographic -no-reboot -display none -monitor none -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$variant/vmlinux" -initrd "$variant/initramfs.cpio" \
        -append "console=ttyS0 reboot=k panic=-1 $profile -- uname -r"
