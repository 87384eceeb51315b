// LinuxBootError: every way loading a Linux kernel (bzImage through the 64-bit boot protocol, or a vmlinux
// through its PVH entry) can fail, each as the one-line sentence a user reads: what is wrong with the file
// or the machine, and what to do about it. Documentation/arch/x86/boot.rst names the header fields quoted.
import GuestMemory

public enum LinuxBootError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `what` lies past the end of the file.
    case truncated(String)
    /// The file is not a bzImage; the associated text says which check failed.
    case notBzImage(String)
    /// The setup header's `version` is below what Swiftlet needs.
    case protocolTooOld(found: UInt16, required: UInt16)
    /// `xloadflags` lacks XLF_KERNEL_64: no 64-bit entry point at startup_64.
    case not64Bit
    /// `loadflags` lacks LOADED_HIGH: a zImage that wants to load at 0x10000.
    case notLoadedHigh
    /// The command line (without its NUL) is longer than the kernel or the command-line area accepts.
    case commandLineTooLong(length: Int, limit: Int, limitSource: String)
    /// No room for the initrd between the kernel's end and `ceiling`.
    case initrdTooLarge(size: UInt64, kernelEnd: UInt64, ceiling: UInt64)
    /// The kernel itself needs RAM up to `needed`; RAM below 4 GiB ends at `available`.
    case memoryTooSmall(needed: UInt64, available: UInt64, what: String)
    /// The vmlinux is not a usable ELF executable.
    case elf(KernelImageError)
    /// The ELF has no Xen note of type XEN_ELFNOTE_PHYS32_ENTRY.
    case noPVHNote
    /// The PVH note is there but unusable.
    case badPVHNote(String)
    /// A vmlinux segment would overwrite the boot structures below 1 MiB.
    case segmentOverlapsBootArea(index: Int, start: UInt64, end: UInt64)
    /// The memory map does not fit where the boot structure carries it.
    case tooManyMemoryMapEntries(Int)
    /// Writing guest memory failed (a bug: placement is checked before anything is written).
    case memory(GuestMemoryError)
    /// `--decompress`: the payload cannot be unpacked on the host.
    case payload(String)

    public var description: String {
        switch self {
        case let .truncated(what):
            "the kernel file is truncated: \(what) lies past its end"
        case let .notBzImage(why):
            "not a Linux bzImage: \(why)"
        case let .protocolTooOld(found, required):
            "the kernel speaks boot protocol \(Self.version(found)); Swiftlet needs \(Self.version(required)) or later (Linux 3.8+), the first that says whether a kernel has a 64-bit entry point"
        case .not64Bit:
            "the kernel has no 64-bit entry point (XLF_KERNEL_64 is clear in xloadflags): Swiftlet boots x86-64 kernels (CONFIG_X86_64=y)"
        case .notLoadedHigh:
            "the kernel is a zImage that loads below 1 MiB (LOADED_HIGH is clear in loadflags): build a bzImage"
        case let .commandLineTooLong(length, limit, source):
            "the kernel command line is \(length) bytes; at most \(limit) are accepted (\(source))"
        case let .initrdTooLarge(size, kernelEnd, ceiling):
            "the initrd (\(Self.mebibytes(size))) does not fit in guest RAM: from the kernel's end at 0x\(hex(kernelEnd)) to 0x\(hex(ceiling)) (the lower of the kernel's initrd limit and the end of RAM below 4 GiB) there \(ceiling > kernelEnd ? "are only " + Self.mebibytes(ceiling - kernelEnd) : "is no room"); give the VM more --memory or use a smaller initrd"
        case let .memoryTooSmall(needed, available, what):
            "guest memory is too small: \(what) needs RAM up to 0x\(hex(needed)) (\(Self.mebibytes(needed))) and the VM's RAM below 4 GiB ends at \(Self.mebibytes(available)); give it more --memory"
        case let .elf(error):
            "\(error)"
        case .noPVHNote:
            "ELF without a PVH note: use the bzImage, or build with CONFIG_PVH=y"
        case let .badPVHNote(why):
            "the ELF's PVH note (Xen, XEN_ELFNOTE_PHYS32_ENTRY) is unusable: \(why)"
        case let .segmentOverlapsBootArea(index, start, end):
            "segment \(index) \(rangeText(base: start, length: end &- start)) overlaps the boot structures below 1 MiB"
        case let .tooManyMemoryMapEntries(count):
            "the memory map has \(count) entries, more than the boot information page holds"
        case let .memory(error):
            "\(error)"
        case let .payload(why):
            "cannot unpack the bzImage's kernel on the host (--decompress): \(why)"
        }
    }

    /// "2.12" for 0x020C.
    /// As Documentation/arch/x86/boot.rst writes them: 2.04, 2.12.
    static func version(_ v: UInt16) -> String { let minor = v & 0xFF; return "\(v >> 8).\(minor < 10 ? "0" : "")\(minor)" }

    /// A size in MiB, rounded up, or in KiB below 1 MiB.
    static func mebibytes(_ bytes: UInt64) -> String {
        bytes < 1 << 20 ? "\((bytes + 1023) >> 10) KiB" : "\((bytes + (1 << 20) - 1) >> 20) MiB"
    }
}
