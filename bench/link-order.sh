#!/usr/bin/env bash
# bench/link-order.sh: measures which functions and data of the lean `swiftlet` binary its start-up paths
# touch, and writes them to Sources/SwiftletLauncher/link-order.txt, the symbol ordering file the release
# link passes to lld (--symbol-ordering-file), so that they end up next to each other.
#
# Why: the binary is one static executable of ~9 MB (Swift stdlib, libc, the VMM, the container launcher).
# A `swiftlet boot` touches a few hundred of its pages, scattered over all of it, and the kernel maps 16
# pages around every page fault on a file (fault-around), so ~4.5 MB of text ended up resident: most of
# the VMM's max RSS. With the touched symbols packed together the same run maps a fraction of that.
#
# How: a copy of the binary is dropped from the page cache and run with the disk's read-ahead at 0, so
# every page of it that gets into the page cache is one that a run touched; mincore(2) on the file then
# lists them, and bench/link_order.py maps them to the input sections of the link map. Runs: the embedded hello guest, hello.elf
# from a file, the loop guest stopped by --timeout, a bad kernel path, `doctor`, and `container run`.
# Needs root (read-ahead, containers) and a built rootfs (guest/rootfs/build.sh). Rerun it after large
# changes to the start-up paths; a stale file only costs locality (lld ignores names it cannot find).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "link-order: needs root (read-ahead setting, container run)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/swiftlet-link-order.XXXXXX)
# The link map names every input section (an object file's .text, or one function's own section) with
# its address, size and symbols; --no-demangle keeps the names that the ordering file must use.
swift build -c release --product swiftlet -Xlinker -Map="$work/map" -Xlinker --no-demangle 2>&1 | tail -1
bin=$work/swiftlet
cp .build/release/swiftlet "$bin"
sync

dev=$(stat -c %d "$bin"); major=$((dev >> 8)); minor=$((dev & 0xff))
ra=/sys/dev/block/$major:$minor/queue/read_ahead_kb
[ -e "$ra" ] || ra=/sys/dev/block/$major:$minor/../queue/read_ahead_kb
old_ra=$(cat "$ra")
restore() { echo "$old_ra" > "$ra"; rm -rf "$work"; }
trap restore EXIT
echo 0 > "$ra"
python3 -c "import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)" "$bin"

rootfs=guest/rootfs/out/rootfs
"$bin" boot >/dev/null || true
"$bin" boot --kernel guest/tiny/out/hello.elf --memory 64M >/dev/null || true
"$bin" boot --guest loop --timeout 0.2 >/dev/null 2>&1 || true
"$bin" boot --kernel /nonexistent >/dev/null 2>&1 || true
"$bin" doctor >/dev/null 2>&1 || true
python3 bench/link_order.py snapshot "$bin" "$work/vm"
if [ -d "$rootfs" ]; then
    "$bin" container run --rootfs "$rootfs" -- /bin/true || true
    "$bin" container run --rootfs "$rootfs" --pids 64 --memory 64M -- /bin/sh -c 'exit 3' || true
else
    echo "link-order: no $rootfs (run guest/rootfs/build.sh); container paths not measured" >&2
fi

python3 bench/link_order.py snapshot "$bin" "$work/all"
python3 bench/link_order.py order "$bin" "$work/map" Sources/SwiftletLauncher/link-order.txt "$work/vm" "$work/all"
