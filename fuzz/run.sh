#!/usr/bin/env bash
# fuzz/run.sh [TARGET|all|smoke] [RUNS] [libFuzzer options...]: builds libFuzzer targets (swiftc
# -sanitize=fuzzer) against the real Sources/ modules and runs them. Issue 14's promise, "nothing a user, a
# file or a guest gives the VMM can crash it", is what they look for: a trap (a Swift runtime failure, an
# overflow, an index out of range) or a broken invariant (a precondition in the target) is a crash
# libFuzzer reports and keeps as fuzz/out/crash-*.
#
# Targets, one file each in fuzz/ (with FuzzInput.swift, the shared byte reader):
#   virtqueue      VirtqueueFuzzer.swift     split virtqueues and a virtio-mmio console, driven by a guest
#   virtio-pci     VirtioPCIFuzzer.swift     virtio-pci: config mechanism #1, config space, BARs, MSI-X, common cfg
#   serial8250     Serial8250Fuzzer.swift    the 8250 UART's registers and receive FIFO
#   elf-multiboot  ELFMultibootFuzzer.swift  ELF program headers, the multiboot header, loading a kernel
#   bzimage        BzImageFuzzer.swift       bzImage header, placement, zero page; its LZ4 payload unpacked and loaded
#   pvh            PVHFuzzer.swift           a vmlinux's PVH note, segments, initrd, hvm_start_info
#   lz4            LZ4Fuzzer.swift           LZ4 frames and blocks, checked against a reference decoder
#   oci-config     OCIConfigFuzzer.swift     a bundle's config.json: JSON, ContainerSpec(oci:), what derives from it
# TARGET "all" runs each for RUNS executions in turn; "smoke" builds all and runs each for a few seconds
# (SMOKE_SECONDS, default 3): the check CI can afford.
#
# RUNS defaults to 1000000; libFuzzer options follow (e.g. -max_total_time=60 -jobs=1). A first argument
# that is a number keeps the old form `fuzz/run.sh RUNS` (the virtqueue target).
# Seeds: fuzz/corpus/TARGET (small, in git; fuzz/seeds.py writes the synthetic ones). What a run adds goes to
# fuzz/out/corpus/TARGET (git-ignored), with the binaries and any crash-* reproducer (rerun one with:
# fuzz/out/TARGET-fuzzer CRASHFILE). ASAN=1 adds AddressSanitizer (about 3x slower and of little use here:
# Swift code is bounds-checked and guest RAM is an mmap ASan does not track).
#
# Not part of `swift build`. oci-config links swift-system's SystemPackage as `swift build` built it
# (.build/debug), so it runs `swift build --target SystemPackage` first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

all_targets=(virtqueue virtio-pci serial8250 elf-multiboot bzimage pvh lz4 oci-config)
target=virtqueue
case ${1:-} in
    ""|[0-9]*) ;;
    *) target=$1; shift ;;
esac
runs=${1:-1000000}
shift || true

out=fuzz/out
# libFuzzer, not the Swift runtime's backtracer, must see the trap (SIGILL), so it saves the input as crash-*.
export SWIFT_BACKTRACE=enable=no
mkdir -p "$out/modules"
swiftc=${SWIFTC:-swiftc}
clang=${CLANG:-clang}
sanitizers=fuzzer
c_sanitizers=fuzzer-no-link
if [ "${ASAN:-0}" = 1 ]; then sanitizers=fuzzer,address; c_sanitizers=fuzzer-no-link,address; fi
flags=(-O -sanitize=$sanitizers -parse-as-library -I "$out/modules" -module-cache-path "$out/module-cache")

declare -A built=()
build_module() {   # build_module NAME SOURCES... (once per invocation)
    local name=$1; shift
    [ -n "${built[$name]:-}" ] && return 0
    echo "fuzz/run.sh: building $name" >&2
    "$swiftc" "${flags[@]}" -enable-testing -module-name "$name" -emit-module -emit-module-path "$out/modules/$name.swiftmodule" \
        -c "$@" -o "$out/$name.o" -wmo
    built[$name]=1
}
build_c() {        # build_c NAME OUTPUT.o SOURCE FLAGS...
    local name=$1 object=$2 source=$3; shift 3
    "$clang" -O1 -fsanitize=$c_sanitizers -c "$source" "$@" -o "$object"
}

# C modules: CKVM (GuestMemory maps its RAM through ckvm_mmap) and CLinux (the container launcher's C side).
cat > "$out/modules/module.modulemap" <<MAP
module CKVM {
    header "$root/Sources/CKVM/include/ckvm.h"
    export *
}
module CLinux {
    header "$root/Sources/CLinux/include/CLinux.h"
    export *
}
MAP

guest_memory() {
    [ -n "${built[GuestMemory]:-}" ] && return 0
    build_c CKVM "$out/ckvm.o" Sources/CKVM/ckvm.c -I Sources/CKVM/include
    build_module GuestMemory Sources/GuestMemory/*.swift
}
devices() { build_module Devices Sources/Devices/*.swift Sources/Devices/PCI/*.swift; }
virtio() { guest_memory; devices; build_module Virtio Sources/Virtio/*.swift; }
x86boot() { guest_memory; build_module X86Boot Sources/X86Boot/*.swift; }
container() {
    [ -n "${built[Container]:-}" ] && return 0
    swift build --target SystemPackage >&2
    local bin
    bin=$(swift build --show-bin-path)
    system_flags=(-I "$bin/Modules" -I "$root/.build/checkouts/swift-system/Sources/CSystem/include")
    system_objects=("$bin"/SystemPackage.build/*.o "$bin"/CSystem.build/*.o)
    for file in Sources/CLinux/*.c; do
        build_c CLinux "$out/clinux-$(basename "$file" .c).o" "$file" -I Sources/CLinux/include -I Sources/CLinux -D_GNU_SOURCE
    done
    flags+=("${system_flags[@]}")
    build_module Container Sources/Container/*.swift
}

link() {           # link TARGET SOURCE OBJECTS...
    local name=$1 source=$2; shift 2
    echo "fuzz/run.sh: linking $name-fuzzer" >&2
    "$swiftc" "${flags[@]}" -module-name "$(basename "$source" .swift)" fuzz/FuzzInput.swift "$source" "$@" -o "$out/$name-fuzzer"
}

build_target() {
    case $1 in
        virtqueue) virtio; "$swiftc" "${flags[@]}" -module-name VirtqueueFuzzer fuzz/VirtqueueFuzzer.swift \
                       "$out/ckvm.o" "$out/GuestMemory.o" "$out/Devices.o" "$out/Virtio.o" -o "$out/virtqueue-fuzzer" ;;
        virtio-pci) virtio; link virtio-pci fuzz/VirtioPCIFuzzer.swift "$out/ckvm.o" "$out/GuestMemory.o" "$out/Devices.o" "$out/Virtio.o" ;;
        serial8250) devices; link serial8250 fuzz/Serial8250Fuzzer.swift "$out/Devices.o" ;;
        elf-multiboot) x86boot; link elf-multiboot fuzz/ELFMultibootFuzzer.swift "$out/ckvm.o" "$out/GuestMemory.o" "$out/X86Boot.o" ;;
        bzimage) x86boot; link bzimage fuzz/BzImageFuzzer.swift "$out/ckvm.o" "$out/GuestMemory.o" "$out/X86Boot.o" ;;
        pvh) x86boot; link pvh fuzz/PVHFuzzer.swift "$out/ckvm.o" "$out/GuestMemory.o" "$out/X86Boot.o" ;;
        lz4) x86boot; link lz4 fuzz/LZ4Fuzzer.swift "$out/ckvm.o" "$out/GuestMemory.o" "$out/X86Boot.o" ;;
        oci-config) container; link oci-config fuzz/OCIConfigFuzzer.swift "$out/Container.o" "$out"/clinux-*.o "${system_objects[@]}" ;;
        *) echo "fuzz/run.sh: unknown target '$1' (${all_targets[*]}, all, smoke)" >&2; exit 2 ;;
    esac
}

# The longest input each target takes: a kernel header with room to move; a guest's operations and RAM.
max_len() {
    case $1 in
        virtqueue|virtio-pci) echo 8192 ;;
        serial8250) echo 4096 ;;
        bzimage|elf-multiboot|pvh) echo 16384 ;;
        lz4|oci-config) echo 16384 ;;
    esac
}

run_target() {     # run_target TARGET libFuzzer-options...
    local name=$1; shift
    mkdir -p "$out/corpus/$name" "fuzz/corpus/$name"
    echo "fuzz/run.sh: $name: $*" >&2
    # New units go to the first directory (fuzz/out, git-ignored); the seeds in git are only read.
    "$out/$name-fuzzer" -max_len="$(max_len "$name")" -print_final_stats=1 -artifact_prefix="$out/$name-" "$@" \
        "$out/corpus/$name" "fuzz/corpus/$name"
}

case $target in
    all)
        for t in "${all_targets[@]}"; do build_target "$t"; done
        for t in "${all_targets[@]}"; do run_target "$t" -runs="$runs" "$@"; done ;;
    smoke)
        for t in "${all_targets[@]}"; do build_target "$t"; done
        for t in "${all_targets[@]}"; do
            status=0
            run_target "$t" -max_total_time="${SMOKE_SECONDS:-3}" "$@" > "$out/smoke-$t.log" 2>&1 || status=$?
            echo "fuzz/run.sh: smoke: $t: $(grep -o 'number_of_executed_units: *[0-9]*' "$out/smoke-$t.log" | grep -o '[0-9]*$' || echo '?') executions, status $status"
            if [ "$status" != 0 ]; then tail -n 40 "$out/smoke-$t.log" >&2; echo "fuzz/run.sh: smoke: $t FAILED" >&2; exit 1; fi
        done ;;
    *)
        build_target "$target"
        run_target "$target" -runs="$runs" "$@" ;;
esac
