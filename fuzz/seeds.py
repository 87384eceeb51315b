#!/usr/bin/env python3
# fuzz/seeds.py: writes the synthetic seed inputs of every fuzz target into fuzz/corpus/TARGET (run it from
# anywhere; the files are small and kept in git). Each seed is an honest input the target should accept, so
# the fuzzer starts from the paths that matter: a queue with a chain, a driver's bring-up, a multiboot ELF,
# a PVH vmlinux, a bzImage whose LZ4 payload holds an ELF, LZ4 frames and blocks, a crun-style config.json.
import json, os, struct, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def write(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# --- virtqueue (the layout VirqueueFuzzer.swift reads; these were fuzz/run.sh's seeds) ---
hdr = bytes([0, 4, 3, 0]) + struct.pack("<HHH", 0x1000, 0x2000, 0x3000)
hdr = hdr.ljust(17, b"\0")
ram = bytearray(0x4000)
struct.pack_into("<QIHH", ram, 0x1000, 0x3800, 16, 1, 1)
struct.pack_into("<QIHH", ram, 0x1010, 0x8100, 16, 2, 0)
struct.pack_into("<HHH", ram, 0x2000, 0, 1, 0)
write("virtqueue", "seed-queue", hdr + bytes(ram))
ops = []
def w(off, val): ops.append(bytes([0x08, off >> 2]) + struct.pack("<I", val))
w(0x70, 0); w(0x70, 1); w(0x70, 3); w(0x24, 1); w(0x20, 1); w(0x70, 0xb); w(0x30, 1); w(0x38, 16)
w(0x80, 0x1000); w(0x90, 0x2000); w(0xa0, 0x3000); w(0x44, 1); w(0x70, 0xf); w(0x50, 1)
write("virtqueue", "seed-device", bytes([1]) + b"".join(ops))

# --- virtio-pci: enable memory decoding, bring the console up with queue 1 at 0x1000/0x2000/0x3000, kick ---
SIZE = {1: 0, 2: 1, 4: 2, 8: 3}
ops = bytearray()
# Each operation: opcode, access-size index, then its operands (VirtioPCIFuzzer.swift reads them so).
def config_write(reg, size, value):
    ops.extend(bytes([0x00, SIZE[4], reg & 0xFC]))                     # CONFIG_ADDRESS, slot 1
    ops.extend(bytes([0x01 | ((reg & 3) << 6), SIZE[size]]) + struct.pack("<I", value))
def common(off, size, value):
    ops.extend(bytes([0x03, SIZE[size]]) + struct.pack("<H", off) + struct.pack("<Q", value))
config_write(0x04, 2, 0x6)
for status in (0, 1, 3): common(0x14, 1, status)
common(0x08, 4, 1); common(0x0C, 4, 1); common(0x14, 1, 0xB)
common(0x16, 2, 1); common(0x18, 2, 16); common(0x1A, 2, 0)
common(0x20, 8, 0x1000); common(0x28, 8, 0x2000); common(0x30, 8, 0x3000); common(0x1C, 2, 1)
common(0x14, 1, 0xF)
# MSI-X: entry 1 (queue 1) at 0xfee00000 data 0x41, unmasked; queue 1 on vector 1; MSI-X enabled (op 0x1f).
ops.extend(bytes([0x05, SIZE[4]]) + struct.pack("<H", 16) + struct.pack("<Q", 0xFEE00000))
ops.extend(bytes([0x05, SIZE[4]]) + struct.pack("<H", 24) + struct.pack("<Q", 0x41))
ops.extend(bytes([0x05, SIZE[4]]) + struct.pack("<H", 28) + struct.pack("<Q", 0))
ops.extend(bytes([0x1F, 0]))
common(0x16, 2, 1); common(0x1A, 2, 1)
ops.extend(bytes([0x00, SIZE[4], 0x40]) + bytes([0x82, SIZE[4]]))                      # read config 0x40 back
ops.extend(bytes([0x03, SIZE[2]]) + struct.pack("<H", 0x3004) + struct.pack("<Q", 1))   # notify queue 1
ops.extend(bytes([0x04, SIZE[1]]) + struct.pack("<H", 0x1000))                          # read ISR
split = 2 + len(ops)
write("virtio-pci", "seed-bringup", struct.pack("<H", split) + bytes(ops) + bytes(ram))

# --- serial8250: set the divisor, 8N1, FIFO, OUT2 and every interrupt; transmit, receive, read status ---
def uw(off, value, size=1): return bytes([off, [1, 2, 4, 8].index(size)]) + struct.pack("<I", value)
def ur(off): return bytes([0x10 | off, 0])
def ui(n): return bytes([0x18, 0, n])
seq = (uw(3, 0x80) + uw(0, 1) + uw(1, 0) + uw(3, 0x03) + uw(2, 0x07) + uw(4, 0x0B) + uw(1, 0x0F) + uw(0, 0x41)
       + ur(2) + ui(20) + ur(5) + ur(0) + ur(0) + ur(2) + uw(4, 0x1B) + uw(0, 0x42) + ur(0) + ur(6) + uw(7, 0x55) + ur(7))
write("serial8250", "seed-uart", seq)

# --- ELF helpers ---
def elf32_multiboot(code, load=0x100000):
    ehdr_size, phdr_size = 52, 32
    mb = struct.pack("<III", 0x1BADB002, 0x3, (-(0x1BADB002 + 3)) & 0xFFFFFFFF)
    body = mb + code
    total = ehdr_size + phdr_size + len(body)
    entry = load + ehdr_size + phdr_size + len(mb)
    ehdr = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8) + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, ehdr_size, 0, 0,
                                                                      ehdr_size, phdr_size, 1, 40, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, load, load, total, total + 0x1000, 7, 0x1000)
    return ehdr + phdr + body

def elf64(segments, entry, notes=b""):
    """segments: [(paddr, bytes, memsz)]; notes: raw PT_NOTE content."""
    ehdr_size, phdr_size = 64, 56
    count = len(segments) + (1 if notes else 0)
    offset = ehdr_size + phdr_size * count
    phdrs, data = b"", b""
    if notes:
        phdrs += struct.pack("<IIQQQQQQ", 4, 4, offset, 0, 0, len(notes), len(notes), 4)
        data += notes
    for paddr, content, memsz in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, 7, offset + len(data), 0xFFFFFFFF80000000 + paddr, paddr, len(content), memsz, 0x1000)
        data += content
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, ehdr_size, 0, 0,
                                                                      ehdr_size, phdr_size, count, 64, 0, 0)
    return ehdr + phdrs + data

def note(name, type_, desc):
    n = name.encode() + b"\0"
    pad = lambda b: b + bytes((-len(b)) % 4)
    return struct.pack("<III", len(n), len(desc), type_) + pad(n) + pad(desc)

write("elf-multiboot", "seed-hello", elf32_multiboot(bytes([0xB0, 0x41, 0xE6, 0xE9, 0xF4])))
write("elf-multiboot", "seed-bss", elf32_multiboot(bytes([0xF4]) * 64, load=0x200000))


def aout_kludge(code, load=0x100000, bss=0x1000):
    """A flat (not ELF) multiboot kernel: the header at offset 0 with flag 16 and its five address fields."""
    flags = 0x00010002
    header = struct.pack("<III", 0x1BADB002, flags, (-(0x1BADB002 + flags)) & 0xFFFFFFFF)
    size = 32 + len(code)
    return header + struct.pack("<IIIII", load, load, load + size, load + size + bss, load + 32) + code


def multiboot2_raw(code, load=0x100000, extra_tags=b""):
    """A flat Multiboot2 kernel: header at offset 0 with address, entry, an optional EFI tag and the end tag."""
    tags = struct.pack("<HHIIIII", 2, 0, 24, load, load, 0, 0) + extra_tags
    length = 16 + len(tags) + 16 + 8
    tags += struct.pack("<HHIII", 3, 0, 16, load + length, 0) + struct.pack("<HHI", 0, 0, 8)
    header = struct.pack("<IIII", 0xE85250D6, 0, length, (-(0xE85250D6 + length)) & 0xFFFFFFFF)
    return header + tags + code


write("elf-multiboot", "seed-aout-kludge", aout_kludge(bytes([0xF4])))
write("elf-multiboot", "seed-multiboot2", multiboot2_raw(bytes([0xF4]), extra_tags=struct.pack("<HHI", 7, 1, 8)))

pvh_code = bytes([0xB8, 0, 0, 0, 0, 0xE7, 0xF4, 0xF4])
write("pvh", "seed-pvh", elf64([(0x100000, pvh_code, 0x3000)], 0xFFFFFFFF80100000,
                               note("Xen", 18, struct.pack("<Q", 0x100000)) + note("GNU", 3, b"abcd")))
write("pvh", "seed-pvh4", elf64([(0x1000000, pvh_code, 0x100), (0x1200000, b"\0" * 32, 0x1000)], 0xFFFFFFFF81000000,
                                note("Xen", 18, struct.pack("<I", 0x1000000))))

# --- LZ4 ---
def lz4_literals(data):
    """One LZ4 block holding `data` as literals only."""
    n = len(data)
    if n < 15:
        return bytes([n << 4]) + data
    rest, extra = n - 15, b""
    while rest >= 255:
        extra += b"\xff"; rest -= 255
    return bytes([0xF0]) + extra + bytes([rest]) + data

def lz4_frame(blocks, size):
    return struct.pack("<I", 0x184C2102) + b"".join(struct.pack("<I", len(b)) + b for b in blocks) + struct.pack("<I", size)

block = bytes([0x4A]) + b"abcd" + struct.pack("<H", 4) + bytes([0x30]) + b"xyz"   # "abcd", a 14-byte match 4 back, "xyz"
write("lz4", "seed-frame", bytes([0]) + lz4_frame([lz4_literals(b"hello, kernel" * 3), block], 60))
write("lz4", "seed-block", bytes([1, 8]) + bytes([0x1F, 0x61, 0x01, 0x00, 0x05, 0x20, 0x62, 0x63]))

# --- bzImage: the 2.15 header of LinuxFixtures.BzImage; payload an LZ4 frame of an x86-64 ELF ---
def bzimage(payload, pref=0x1000000, init_size=0x800000, relocatable=1, align=0x200000, pm_size=0x2000):
    sectors = 4
    b = bytearray((sectors + 1) * 512)
    b[0x1F1] = 0
    pm = bytearray(max(pm_size, 0x400 + len(payload)))
    pm[0x400:0x400 + len(payload)] = payload
    struct.pack_into("<I", b, 0x1F4, len(pm) // 16)
    struct.pack_into("<H", b, 0x1FA, 0xFFFF)
    struct.pack_into("<H", b, 0x1FE, 0xAA55)
    b[0x200] = 0xEB; b[0x201] = 0x6C - 0x02
    struct.pack_into("<I", b, 0x202, 0x53726448)
    struct.pack_into("<H", b, 0x206, 0x020F)
    b[0x211] = 1
    struct.pack_into("<I", b, 0x214, 0x100000)
    struct.pack_into("<I", b, 0x22C, 0x7FFFFFFF)
    struct.pack_into("<I", b, 0x230, align)
    b[0x234] = relocatable; b[0x235] = 21
    struct.pack_into("<H", b, 0x236, 0x0B)
    struct.pack_into("<I", b, 0x238, 2047)
    struct.pack_into("<I", b, 0x248, 0x400)           # payload_offset (from the protected-mode start)
    struct.pack_into("<I", b, 0x24C, len(payload))    # payload_length
    struct.pack_into("<Q", b, 0x258, pref)
    struct.pack_into("<I", b, 0x260, init_size)
    struct.pack_into("<I", b, 0x264, 0x190)
    return bytes(b) + bytes(pm)

kernel_elf = elf64([(0x1000000, bytes([0xF4]) * 64, 0x2000)], 0x1000000)
write("bzimage", "seed-lz4-elf", bzimage(lz4_frame([lz4_literals(kernel_elf)], len(kernel_elf))))
write("bzimage", "seed-gzip", bzimage(b"\x1f\x8b\x08\x00" + bytes(60)))
write("bzimage", "seed-not-relocatable", bzimage(b"", pref=0x200000, relocatable=0, align=2047))

# --- oci-config: what `crun spec` writes, with device rules and a few of everything Swiftlet reads ---
config = {
    "ociVersion": "1.0.0",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0, "additionalGids": [5]},
                "args": ["sh", "-c", "echo hi"], "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_KILL", "CAP_MKNOD"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": True},
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "swiftlet",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
               {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]}],
    "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
                            "memory": {"limit": 67108864}, "pids": {"limit": 64}, "cpu": {"quota": 50000, "period": 100000}},
              "namespaces": [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"]],
              "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
}
write("oci-config", "seed-config.json", json.dumps(config, indent="\t").encode())
write("oci-config", "seed-minimal.json", b'{"root": {"path": "/r"}, "process": {"args": ["true"], "cwd": "/"}}')
print(f"seeds written under {root}", file=sys.stderr)
