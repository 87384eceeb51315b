#!/usr/bin/env python3
"""bench/link_order.py: the measuring half of bench/link-order.sh.

  link_order.py snapshot BINARY FILE          pages of BINARY now in the page cache (mincore(2)) -> FILE
  link_order.py order BINARY LINKMAP OUT SNAPSHOT...

The caller evicted BINARY from the page cache and turned read-ahead off before running it, so the pages
in the cache are exactly the ones the runs touched; one snapshot is taken after each group of runs (VM
paths first, then containers). `order` maps the pages to the input sections of lld's link map LINKMAP
(-Map, --no-demangle) and writes one symbol name per touched section to OUT, the --symbol-ordering-file of
the next release link: the first group's sections first, then what the next group added. Moving one symbol moves its whole input
section, so one name per section is enough. Sections of 64 KiB and more (the Swift standard library and a
few other libraries come as one .text section each) are not listed: pulling one of them forward would
push everything else apart.
"""
import bisect, ctypes, mmap, os, re, subprocess, sys

LARGE = 65536


def resident_pages(binary):
    size = os.path.getsize(binary)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    pages = (size + 4095) // 4096
    vec = (ctypes.c_ubyte * pages)()
    with open(binary, "rb") as f:
        mapped = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        if libc.mincore(mapped, size, vec) != 0:
            sys.exit(f"link-order: mincore failed: errno {ctypes.get_errno()}")
    return [i for i in range(pages) if vec[i] & 1], pages


def address_ranges(binary, pages):
    """File pages -> virtual address ranges, through the LOAD program headers."""
    wanted, ranges = set(pages), []
    for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        p = line.split()
        if p and p[0] == "LOAD":
            off, vaddr, filesz = int(p[1], 16), int(p[2], 16), int(p[4], 16)
            for page in range(off // 4096, (off + filesz + 4095) // 4096):
                if page in wanted:
                    lo, hi = max(page * 4096, off), min(page * 4096 + 4096, off + filesz)
                    ranges.append((vaddr + lo - off, vaddr + hi - off))
    return sorted(ranges)


def input_sections(linkmap):
    """[address, size, shortest symbol name] for every input section in the map (columns: VMA LMA Size Align, then
    the output section at indent 0, the input section at 8, its symbols at 16)."""
    sections, current = [], None
    for line in open(linkmap):
        m = re.match(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (.*)$", line.rstrip("\n"))
        if not m:
            continue
        vma, length, rest = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        if rest.startswith(" " * 16):
            name = rest.strip()
            if current is not None and name and (current[2] is None or len(name) < len(current[2])):
                current[2] = name     # any of the section's symbols moves it: keep the shortest name
        elif rest.startswith(" " * 8):
            current = [vma, length, None]
            sections.append(current)
    return sections


def touched_sections(sections, ranges):
    starts = [lo for lo, _ in ranges]
    for vma, length, name in sections:
        if name is None or length == 0 or length >= LARGE:
            continue
        i = bisect.bisect_left(starts, vma + length) - 1     # the last range starting before the section ends
        while i >= 0 and ranges[i][1] > vma - 4096:
            if ranges[i][1] > vma:
                yield name
                break
            i -= 1


def main():
    if sys.argv[1:2] == ["snapshot"]:
        binary, snapshot = sys.argv[2:4]
        pages, total = resident_pages(binary)
        with open(snapshot, "w") as f:
            f.write(" ".join(map(str, pages)))
        print(f"link-order: {len(pages)} of {total} file pages touched so far")
        return
    binary, linkmap, out, *snapshots = sys.argv[2:]
    sections = input_sections(linkmap)
    names = {}
    for snapshot in snapshots:
        pages = [int(p) for p in open(snapshot).read().split()]
        for name in touched_sections(sections, address_ranges(binary, pages)):
            names.setdefault(name, None)
    with open(out, "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"link-order: {len(names)} sections listed in {out}")


if __name__ == "__main__":
    main()
