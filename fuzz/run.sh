#!/usr/bin/env bash
# fuzz/run.sh [RUNS] [libFuzzer options...]: builds fuzz/VirtqueueFuzzer.swift with libFuzzer
# (swiftc -sanitize=fuzzer; ASAN=1 adds AddressSanitizer, about 3x slower and of little use here: Swift
# code is bounds-checked and guest RAM is an mmap ASan does not track) against the real Sources/Virtio,
# Sources/Devices and Sources/GuestMemory, and runs it for RUNS executions (default 1000000) from a seed
# corpus it writes.
# Not part of `swift build` or CI: a fuzzing run takes minutes. Output in fuzz/out/ (git-ignored): the
# binary, the corpus, and any crash-* reproducer (rerun one with: fuzz/out/virtqueue-fuzzer CRASHFILE).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
runs=${1:-1000000}
shift || true
out=fuzz/out
mkdir -p "$out/modules" "$out/corpus"
swiftc=${SWIFTC:-swiftc}
clang=${CLANG:-clang}
sanitizers=fuzzer
c_sanitizers=fuzzer-no-link
if [ "${ASAN:-0}" = 1 ]; then sanitizers=fuzzer,address; c_sanitizers=fuzzer-no-link,address; fi
flags=(-O -sanitize=$sanitizers -parse-as-library -I "$out/modules" -module-cache-path "$out/module-cache")

# CKVM (GuestMemory maps its RAM through ckvm_mmap): the C file and a module map for its header.
cat > "$out/modules/module.modulemap" <<MAP
module CKVM {
    header "$root/Sources/CKVM/include/ckvm.h"
    export *
}
MAP
"$clang" -O1 -fsanitize=$c_sanitizers -c Sources/CKVM/ckvm.c -I Sources/CKVM/include -o "$out/ckvm.o"
build_module() {   # build_module NAME SOURCES...
    local name=$1; shift
    "$swiftc" "${flags[@]}" -module-name "$name" -emit-module -emit-module-path "$out/modules/$name.swiftmodule" \
        -c "$@" -o "$out/$name.o" -wmo
}
build_module GuestMemory Sources/GuestMemory/*.swift
build_module Devices Sources/Devices/*.swift Sources/Devices/PCI/*.swift
build_module Virtio Sources/Virtio/*.swift
"$swiftc" "${flags[@]}" -module-name VirtqueueFuzzer fuzz/VirtqueueFuzzer.swift \
    "$out/ckvm.o" "$out/GuestMemory.o" "$out/Devices.o" "$out/Virtio.o" -o "$out/virtqueue-fuzzer"

# Seeds: an honest queue (mode 0) and an honest MMIO bring-up (mode 1).
python3 - "$out/corpus" <<'PY'
import struct, sys, os
d = sys.argv[1]
# mode 0: size 2^4, both features, table 0x1000, avail 0x2000, used 0x3000 (RAM from the header's end at 0):
# one chain, a readable then a writable buffer.
hdr = bytes([0, 4, 3, 0]) + struct.pack("<HHH", 0x1000, 0x2000, 0x3000)
hdr = hdr.ljust(17, b"\0")
ram = bytearray(0x4000)
struct.pack_into("<QIHH", ram, 0x1000, 0x3800, 16, 1, 1)
struct.pack_into("<QIHH", ram, 0x1010, 0x8100, 16, 2, 0)
struct.pack_into("<HHH", ram, 0x2000, 0, 1, 0)
open(os.path.join(d, "seed-queue"), "wb").write(hdr + bytes(ram))
# mode 1: status 0, 1, 3, features page 1 = 1, status 0xb, queue 1 setup, ready, status 0xf, notify 1.
ops = []
def w(off, val): ops.append(bytes([0x08, off >> 2]) + struct.pack("<I", val))
w(0x70, 0); w(0x70, 1); w(0x70, 3); w(0x24, 1); w(0x20, 1); w(0x70, 0xb); w(0x30, 1); w(0x38, 16)
w(0x80, 0x1000); w(0x90, 0x2000); w(0xa0, 0x3000); w(0x44, 1); w(0x70, 0xf); w(0x50, 1)
open(os.path.join(d, "seed-device"), "wb").write(bytes([1]) + b"".join(ops))
PY
echo "fuzz/run.sh: running $runs executions"
"$out/virtqueue-fuzzer" -runs="$runs" -max_len=8192 -print_final_stats=1 "$@" "$out/corpus"
