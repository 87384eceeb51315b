#!/usr/bin/env bash
# guest/build.sh [--check]: builds the tiny guests, the probe helper and the reset-vector firmware, and embeds them.
#
# Builds guest/tiny/*.c (+ entry.S, lib.c, virtio.c, tiny.ld) into multiboot v1 ELF32 kernels guest/tiny/out/NAME.elf
# (compiled as 64-bit code, linked as ELF64 at 1 MiB, converted with objcopy -O elf32-i386 as
# kvm-unit-tests does, debug information stripped), keeps the ELF64 with its symbols and DWARF as
# guest/tiny/out/debug/NAME.elf for gdb (`swiftlet boot --gdb`, docs/09-gdb.md; -g does not change the code,
# so the embedded images are the same bytes as without it), guest/probe/helper.c into the static x86-64 Linux program guest/tiny/out/probe-helper
# (the container side of `swiftlet compare --probe`) and firmware/firmware.S into the 65536-byte ROM
# firmware/out/firmware.bin, then
# writes Sources/CGuestImages/guest_images.c: one byte array per image and the lookup functions declared in
# Sources/CGuestImages/include/guest_images.h. The output is reproducible (no timestamps, no build ids,
# relative file names), so the generated file is committed and the Swift build needs no cross toolchain.
# --check rebuilds into a temporary directory and fails if the committed guest_images.c differs.
# Tools: clang, ld.lld and llvm-objcopy (the Swift toolchain ships all three; GNU objcopy also works).
# Set CLANG, LLD or OBJCOPY to override. Byte-identical output needs the same clang/lld versions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

check=0
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    *) echo "usage: guest/build.sh [--check]" >&2; exit 2 ;;
esac

# The guests and their order in the embedded table (the header documents these names).
guests=(hello triple-fault unmapped loop doctor probe console-bench virtio-hostile syscalls counter timer smp echo)
# The guests that drive the PC's interrupt hardware: linked with pc.c and interrupts.S (IDT, LAPIC, IOAPIC,
# the AP trampoline) as well.
pc_guests=" timer smp echo "
generated=Sources/CGuestImages/guest_images.c

find_tool() {   # find_tool VAR NAME...: the first NAME next to swift, in /opt/swift/usr/bin, or on PATH
    local var=$1; shift
    if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
    local swift_bin="" name
    if command -v swift >/dev/null 2>&1; then swift_bin=$(dirname "$(readlink -f "$(command -v swift)")"); fi
    for name in "$@"; do
        for candidate in ${swift_bin:+"$swift_bin/$name"} "/opt/swift/usr/bin/$name"; do
            if [ -x "$candidate" ]; then echo "$candidate"; return; fi
        done
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    done
    echo "guest/build.sh: cannot find $* (install the Swift toolchain or set $var)" >&2
    exit 1
}
cc=$(find_tool CLANG clang)
ld=$(find_tool LLD ld.lld)
objcopy=$(find_tool OBJCOPY llvm-objcopy objcopy)

if [ "$check" = 1 ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    guest_out=$work/guest
    firmware_out=$work/firmware
    c_out=$work/guest_images.c
else
    guest_out=guest/tiny/out
    firmware_out=firmware/out
    c_out=$generated
fi
mkdir -p "$guest_out/obj" "$guest_out/debug" "$firmware_out"

# Freestanding 64-bit kernel code without SSE/x87 (the KVM instruction emulator on kvm_pvm hosts cannot run
# them), no red zone (no interrupts are taken, but be safe), no stack protector, no unwind tables; with
# DWARF (-g) for the debug copies, stripped from the embedded images.
cflags=(-target x86_64-unknown-none-elf -ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie
        -mcmodel=small -mno-red-zone -mno-sse -mno-mmx -mgeneral-regs-only -fno-stack-protector
        -fno-asynchronous-unwind-tables -fno-unwind-tables -fomit-frame-pointer -falign-loops=1 -fno-ident -O2 -g -std=c11 -Wall -Wextra -Werror
        "-ffile-prefix-map=$root/=" -Iguest/tiny)
ldflags=(-m elf_x86_64 -static -nostdlib --build-id=none -z max-page-size=4096 -z norelro --no-rosegment
         -T guest/tiny/tiny.ld)

"$cc" "${cflags[@]}" -c guest/tiny/entry.S -o "$guest_out/obj/entry.o"
"$cc" "${cflags[@]}" -c guest/tiny/lib.c -o "$guest_out/obj/lib.o"
"$cc" "${cflags[@]}" -c guest/tiny/virtio.c -o "$guest_out/obj/virtio.o"
"$cc" "${cflags[@]}" -c guest/tiny/pc.c -o "$guest_out/obj/pc.o"
"$cc" "${cflags[@]}" -c guest/tiny/interrupts.S -o "$guest_out/obj/interrupts.o"
for guest in "${guests[@]}"; do
    "$cc" "${cflags[@]}" -c "guest/tiny/$guest.c" -o "$guest_out/obj/$guest.o"
    extra=()
    case "$pc_guests" in *" $guest "*) extra=("$guest_out/obj/pc.o" "$guest_out/obj/interrupts.o") ;; esac
    "$ld" "${ldflags[@]}" -o "$guest_out/obj/$guest.elf64" \
        "$guest_out/obj/entry.o" "$guest_out/obj/lib.o" "$guest_out/obj/virtio.o" "$guest_out/obj/$guest.o" ${extra[@]+"${extra[@]}"}
    "$objcopy" -O elf32-i386 --strip-debug "$guest_out/obj/$guest.elf64" "$guest_out/$guest.elf"
    cp "$guest_out/obj/$guest.elf64" "$guest_out/debug/$guest.elf"
done

# The probe helper: a freestanding static Linux executable (no libc, no PIE, no build id).
"$cc" -target x86_64-unknown-linux-gnu -ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie -mgeneral-regs-only \
    -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-ident -O2 -g0 -std=c11 \
    -Wall -Wextra -Werror "-ffile-prefix-map=$root/=" -c guest/probe/helper.c -o "$guest_out/obj/probe-helper.o"
"$ld" -m elf_x86_64 -static -nostdlib --build-id=none -z noexecstack -z norelro -e _start \
    -o "$guest_out/obj/probe-helper.elf" "$guest_out/obj/probe-helper.o"
"$objcopy" --strip-all "$guest_out/obj/probe-helper.elf" "$guest_out/probe-helper"

"$cc" -target i386-unknown-none-elf "-ffile-prefix-map=$root/=" -c firmware/firmware.S -o "$guest_out/obj/firmware.o"
"$ld" -m elf_i386 -static -nostdlib --build-id=none -T firmware/firmware.ld \
    -o "$guest_out/obj/firmware.elf" "$guest_out/obj/firmware.o"
"$objcopy" -O binary "$guest_out/obj/firmware.elf" "$firmware_out/firmware.bin"

# Sanity checks on what a loader will see.
hexwords() { od -An -v -tx4 -N "$2" "$1" | tr -s ' \n' '\n\n'; }
for guest in "${guests[@]}"; do
    image=$guest_out/$guest.elf
    [ "$(od -An -tx1 -j4 -N1 "$image" | tr -d ' ')" = 01 ] || { echo "$image: not ELF32" >&2; exit 1; }
    hexwords "$image" 8192 | grep -x 1badb002 >/dev/null || { echo "$image: no multiboot header in the first 8 KiB" >&2; exit 1; }
done
firmware=$firmware_out/firmware.bin
[ "$(stat -c %s "$firmware")" = 65536 ] || { echo "$firmware: not 65536 bytes" >&2; exit 1; }
[ "$(od -An -tx1 -j $((0xfff0)) -N1 "$firmware" | tr -d ' ')" = e9 ] || { echo "$firmware: no jmp at the reset vector" >&2; exit 1; }

# The embedded table. Runs of 64 or more zero bytes are left to C's implicit zero fill (designated
# initializers), which keeps the firmware's padding and the empty page-table slots out of the source.
emit_array() {   # emit_array IDENTIFIER FILE
    local size
    size=$(stat -c %s "$2")
    echo "static const unsigned char $1[$size] = {"
    od -An -v -tx1 "$2" | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        END {
            line = ""; count = 0; pending = 0
            for (i = 0; i < n; ) {
                if (b[i] == "00") {
                    for (j = i; j < n && b[j] == "00"; j++) ;
                    if (j - i >= 64) { i = j; pending = 1; continue }
                }
                if (pending) {
                    if (line != "") print line
                    line = sprintf("    [0x%x] =", i); count = 0; pending = 0
                } else if (count == 12 || line == "") {
                    if (line != "") print line
                    line = "   "; count = 0
                }
                line = line " 0x" b[i] ","; count++; i++
            }
            if (line != "") print line
        }'
    echo "};"
}
identifier() { echo "image_${1//-/_}"; }
{
    echo "/*"
    echo " * guest_images.c: GENERATED by guest/build.sh from guest/tiny/, guest/probe/ and firmware/; do not edit."
    echo " *"
    echo " * The tiny multiboot guests (ELF32), the probe helper (a static Linux program) and the 64 KiB"
    echo " * reset-vector firmware, as byte arrays, and the lookup declared in include/guest_images.h."
    echo " * Rebuild with guest/build.sh; CI runs guest/build.sh --check."
    echo " * Built with: $("$cc" --version | head -n1)"
    echo " *             $("$ld" --version | head -n1)"
    echo " *"
    for guest in "${guests[@]}"; do
        printf ' * %-13s %6s bytes  sha256 %s\n' "$guest" "$(stat -c %s "$guest_out/$guest.elf")" \
            "$(sha256sum "$guest_out/$guest.elf" | cut -c1-64)"
    done
    printf ' * %-13s %6s bytes  sha256 %s\n' probe-helper "$(stat -c %s "$guest_out/probe-helper")" \
        "$(sha256sum "$guest_out/probe-helper" | cut -c1-64)"
    printf ' * %-13s %6s bytes  sha256 %s\n' firmware "$(stat -c %s "$firmware")" "$(sha256sum "$firmware" | cut -c1-64)"
    echo " */"
    echo '#include "guest_images.h"'
    echo '#include <string.h>'
    echo
    for guest in "${guests[@]}"; do
        emit_array "$(identifier "$guest")" "$guest_out/$guest.elf"
        echo
    done
    emit_array "$(identifier probe-helper)" "$guest_out/probe-helper"
    echo
    emit_array "$(identifier firmware)" "$firmware"
    echo
    echo "static const struct {"
    echo "    const char *name;"
    echo "    const unsigned char *bytes;"
    echo "    size_t size;"
    echo "} images[] = {"
    for name in "${guests[@]}" probe-helper firmware; do
        echo "    { \"$name\", $(identifier "$name"), sizeof $(identifier "$name") },"
    done
    echo "};"
    cat <<'C'

const unsigned char *swiftlet_guest_image(const char *name, size_t *size)
{
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) {
        if (strcmp(images[i].name, name) == 0) {
            if (size)
                *size = images[i].size;
            return images[i].bytes;
        }
    }
    if (size)
        *size = 0;
    return NULL;
}

const char *swiftlet_guest_image_name(size_t index)
{
    return index < sizeof images / sizeof images[0] ? images[index].name : NULL;
}
C
} > "$c_out.tmp"
mv "$c_out.tmp" "$c_out"

if [ "$check" = 1 ]; then
    if ! cmp -s "$c_out" "$generated"; then
        echo "guest/build.sh --check: $generated is out of date with guest/tiny/ and firmware/ (or was built" >&2
        echo "with other tool versions); run guest/build.sh and commit the result. First differences:" >&2
        diff "$generated" "$c_out" | head -n 20 >&2 || true
        exit 1
    fi
    echo "guest/build.sh --check: $generated is up to date"
else
    for guest in "${guests[@]}"; do echo "$guest_out/$guest.elf $(stat -c %s "$guest_out/$guest.elf") bytes"; done
    echo "$guest_out/probe-helper $(stat -c %s "$guest_out/probe-helper") bytes"
    echo "$firmware $(stat -c %s "$firmware") bytes"
    echo "$generated written"
fi
