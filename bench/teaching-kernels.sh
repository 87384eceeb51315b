#!/usr/bin/env bash
# bench/teaching-kernels.sh JMOLLOY_TUTORIAL_DIR [CHAPTER...]: builds chapters of James Molloy's kernel
# development tutorial (the 32-bit original and its 64-bit port, as collected in
# github.com/jachermocilla/jmolloy-osdev-tutorial; the sources stay outside this repository) and boots each
# under Swiftlet and under QEMU with KVM (-M microvm and the default pc), printing per chapter and machine how
# the run ended and the last lines the kernel printed.
#
# The kernels are multiboot (v1) ELF32 files made for QEMU's -kernel: they program the PIT and the 8259 PICs,
# take interrupts, read their initrd as multiboot module 0 (QEMU's -initrd; Swiftlet's --initrd), switch tasks
# on the timer and (10, 11) enter ring 3. They print only to VGA text memory, which Swiftlet does not have, so
# the script builds a copy of each chapter with one line added at the top of monitor_put() (monitor.c):
# `outb(0x3f8, c);`, every character also to COM1, which all three machines have. Nothing else is changed.
# None of them ends by itself (they loop or spin forever), so every run is stopped after $SECONDS_PER_RUN
# (default 60) and judged by what it printed: QEMU ends early only on a KVM internal error (emulation failure).
#
# Needs nasm, gcc with -m32 (gcc-multilib) and qemu-system-x86.
set -uo pipefail
dir=${1:?usage: bench/teaching-kernels.sh JMOLLOY_TUTORIAL_DIR [CHAPTER...]}
shift
chapters=("${@:-05_irq_ipt 09_multitasking_initrd 64-bit/05_irq_ipt_64 64-bit/09_multitasking_64 64-bit/11_fork_64}")
read -r -a chapters <<< "${chapters[*]}"
cd "$(dirname "$0")/.."
swiftlet=$(realpath "${SWIFTLET:-.build/release/swiftlet}")
seconds=${SECONDS_PER_RUN:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {   # build CHAPTER: a patched copy under $work; prints the kernel's path, and the initrd's if any
    local chapter=$1 copy
    copy=$work/$(basename "$chapter")
    cp -r "$dir/$chapter" "$copy" || return 1
    sed -i '/^void monitor_put(char c)$/{n;s/^{$/{ outb(0x3f8, c);  \/\/ added by bench\/teaching-kernels.sh: copy to COM1/}' "$copy/src/monitor.c"
    grep -q 'outb(0x3f8, c)' "$copy/src/monitor.c" || { echo "$chapter: monitor_put() not found to patch" >&2; return 1; }
    make -C "$copy/src" >"$copy/build.log" 2>&1 || { tail -5 "$copy/build.log" >&2; return 1; }
    echo "$copy/src/kernel"
    if [ -f "$copy/make_initrd.c" ]; then
        (cd "$copy" && gcc -w -o make_initrd make_initrd.c && ./make_initrd test.txt test.txt test2.txt test2.txt >/dev/null) || return 1
        echo "$copy/initrd.img"
    fi
}
run() {   # run CHAPTER NAME CMD...
    local chapter=$1 name=$2; shift 2
    local out status how
    out=$(mktemp)
    timeout "$((seconds + 20))" "$@" >"$out" 2>&1 </dev/null
    status=$?
    how="ran $seconds s"
    grep -aq "KVM internal error" "$out" && how="KVM internal error at $(grep -aoE '^(EIP|RIP)=[0-9a-f]+' "$out" | head -1), $(grep -aoE 'Code=.*' "$out" | grep -aoE '<[0-9a-f]+> [0-9a-f]+' | head -1)"
    grep -aq "KVM_EXIT_INTERNAL_ERROR" "$out" && how="$(grep -a '^swiftlet: vCPU' "$out" | head -1 | cut -c1-160)"
    grep -aq "Swiftlet finished:" "$out" && how="$how; finished by the VMM: $(grep -a 'Swiftlet finished:' "$out" | sed 's/.*finished: //')"
    printf '%-28s %-16s status %3s  %s\n' "$chapter" "$name" "$status" "$how"
    # The kernel's own lines: without QEMU's register dump, SeaBIOS/iPXE banners and Swiftlet's closing lines.
    sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g; s/\r//g; s/^Booting from ROM\.\.//; s/swiftlet: .*//' "$out" | grep -av '^\s*$' \
        | grep -avE 'warning: host doesn|^(extra data|[A-Z][A-Z0-9 ]{1,3}=|Code=|emulation failure|KVM internal error|qemu-system-x86_64: )' \
        | grep -avE '^(SeaBIOS|iPXE|Press Ctrl-B)|^ +(rip|rax|rsi|r8 |cr0|cs |hint)' | tail -3 | cut -c1-110 | sed 's/^/      | /'
    rm -f "$out"
}
for c in "${chapters[@]}"; do
    mapfile -t files < <(build "$c") || true
    kernel=${files[0]:-}
    [ -n "$kernel" ] && [ -f "$kernel" ] || { echo "$c: not built" >&2; continue; }
    initrd=${files[1]:-}
    sw_initrd=(); qemu_initrd=()
    [ -n "$initrd" ] && { sw_initrd=(--initrd "$initrd"); qemu_initrd=(-initrd "$initrd"); }
    run "$c" "swiftlet (pc)" "$swiftlet" boot --kernel "$kernel" "${sw_initrd[@]}" --memory 64M --timeout "$seconds"
    run "$c" "qemu -M microvm" timeout "$seconds" qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel kvm -m 64M \
        -nodefaults -no-user-config -nographic -no-reboot -display none -monitor none -serial stdio -kernel "$kernel" "${qemu_initrd[@]}"
    run "$c" "qemu (pc)" timeout "$seconds" qemu-system-x86_64 -accel kvm -m 64M -nographic -no-reboot -display none \
        -monitor none -serial stdio -kernel "$kernel" "${qemu_initrd[@]}"
done
