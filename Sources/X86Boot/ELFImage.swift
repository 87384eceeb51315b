// ELFImage: validation and the loadable segments of an ELF32 or ELF64 executable for x86.
//
// Implements the parts of the System V ABI (ELF header, program headers, PT_LOAD and PT_NOTE) that
// loaders need; everything is bounds-checked against the file, and each failure is a sentence naming the
// file's problem, never a trap.

public enum KernelImageError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case notELF
    case unsupportedClass(UInt8)
    case notLittleEndian
    case wrongMachine(UInt16)
    case notExecutable(UInt16)
    case truncated(String)
    case noLoadableSegments
    case segmentFileSizeExceedsMemorySize(index: Int)
    case noMultibootHeader
    case badMultibootChecksum
    case unsupportedMultibootFlags(UInt32)
    case segmentOutsideMemory(index: Int, start: UInt64, end: UInt64, ramSize: UInt64)
    case segmentOverlapsReserved(index: Int, start: UInt64, end: UInt64, what: String)
    case entryNotLoaded(UInt64)
    case badAddressFields(String)
    case moduleDoesNotFit(name: String, size: UInt64, start: UInt64, ramSize: UInt64)
    case moduleOverlapsReserved(name: String, start: UInt64, end: UInt64, what: String)
    case multiboot2(String)

    public var description: String {
        switch self {
        case .empty: "the file is empty"
        case .notELF: "not an ELF file (no \\x7fELF magic); Swiftlet boots multiboot ELF kernels here"
        case let .unsupportedClass(c): "unsupported ELF class \(c) (expected 1 for ELF32 or 2 for ELF64)"
        case .notLittleEndian: "ELF file is big-endian; x86 kernels are little-endian"
        case let .wrongMachine(m): "ELF machine is \(m), not x86 (3 for i386 or 62 for x86-64)"
        case let .notExecutable(t): "ELF type is \(t), not an executable (2)"
        case let .truncated(what): "the file is truncated: \(what) lies past its end"
        case .noLoadableSegments: "the ELF file has no loadable (PT_LOAD) segments"
        case let .segmentFileSizeExceedsMemorySize(i): "segment \(i) has a file size larger than its memory size"
        case .noMultibootHeader: "no multiboot header (magic 0x1BADB002) in the first 8 KiB"
        case .badMultibootChecksum: "the multiboot header's checksum is wrong (magic + flags + checksum must be 0)"
        case let .unsupportedMultibootFlags(f): "the multiboot header asks for unsupported features (flags 0x\(String(f, radix: 16)); Swiftlet has no video mode (bit 2))"
        case let .segmentOutsideMemory(i, start, end, ram):
            "segment \(i) [0x\(String(start, radix: 16)), 0x\(String(end, radix: 16))) lies outside guest RAM (\(ram >> 20) MiB); give the VM more --memory"
        case let .segmentOverlapsReserved(i, start, end, what):
            "segment \(i) [0x\(String(start, radix: 16)), 0x\(String(end, radix: 16))) overlaps \(what)"
        case let .entryNotLoaded(e): "the entry point 0x\(String(e, radix: 16)) is not inside a loaded segment"
        case let .badAddressFields(why): "the multiboot header's address fields are inconsistent: \(why)"
        case let .moduleDoesNotFit(name, size, start, ram):
            "module \(name) (\(size) bytes) does not fit in guest RAM (\(ram >> 20) MiB) at 0x\(String(start, radix: 16)), after the kernel and the modules before it; give the VM more --memory"
        case let .moduleOverlapsReserved(name, start, end, what):
            "module \(name) at [0x\(String(start, radix: 16)), 0x\(String(end, radix: 16))) would overlap \(what)"
        case let .multiboot2(why): "multiboot2: \(why)"
        }
    }
}

public struct ELFImage: Sendable {
    public struct Segment: Sendable, Equatable {
        public var type: UInt32
        public var fileOffset: UInt64
        public var virtualAddress: UInt64
        public var physicalAddress: UInt64
        public var fileSize: UInt64
        public var memorySize: UInt64
    }

    public static let ptLoad: UInt32 = 1
    public static let ptNote: UInt32 = 4

    public let is64Bit: Bool
    public let machine: UInt16
    public let entry: UInt64
    public let segments: [Segment]
    public var loadSegments: [Segment] { segments.filter { $0.type == Self.ptLoad } }

    public init(_ bytes: [UInt8]) throws(KernelImageError) {
        if bytes.isEmpty { throw .empty }
        guard bytes.count >= 16, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else { throw .notELF }
        let elfClass = bytes[4]
        guard elfClass == 1 || elfClass == 2 else { throw .unsupportedClass(elfClass) }
        guard bytes[5] == 1 else { throw .notLittleEndian }
        is64Bit = elfClass == 2
        let reader = ByteReader(bytes)
        let headerSize = is64Bit ? 64 : 52
        guard bytes.count >= headerSize else { throw .truncated("the ELF header") }
        let type = reader.u16(16)
        machine = reader.u16(18)
        guard machine == 3 || machine == 62 else { throw .wrongMachine(machine) }
        guard type == 2 else { throw .notExecutable(type) }
        let phoff: UInt64, phentsize: Int, phnum: Int
        if is64Bit {
            entry = reader.u64(24); phoff = reader.u64(32)
            phentsize = Int(reader.u16(54)); phnum = Int(reader.u16(56))
        } else {
            entry = UInt64(reader.u32(24)); phoff = UInt64(reader.u32(28))
            phentsize = Int(reader.u16(42)); phnum = Int(reader.u16(44))
        }
        let minimumEntry = is64Bit ? 56 : 32
        guard phnum > 0 else { throw .noLoadableSegments }
        guard phentsize >= minimumEntry, phoff < UInt64(bytes.count),
              UInt64(bytes.count) - phoff >= UInt64(phentsize * phnum) else { throw .truncated("the program header table") }
        var segments: [Segment] = []
        for i in 0..<phnum {
            let at = Int(phoff) + i * phentsize
            let s: Segment
            if is64Bit {
                s = Segment(type: reader.u32(at), fileOffset: reader.u64(at + 8), virtualAddress: reader.u64(at + 16),
                            physicalAddress: reader.u64(at + 24), fileSize: reader.u64(at + 32), memorySize: reader.u64(at + 40))
            } else {
                s = Segment(type: reader.u32(at), fileOffset: UInt64(reader.u32(at + 4)), virtualAddress: UInt64(reader.u32(at + 8)),
                            physicalAddress: UInt64(reader.u32(at + 12)), fileSize: UInt64(reader.u32(at + 16)), memorySize: UInt64(reader.u32(at + 20)))
            }
            if s.type == Self.ptLoad || s.type == Self.ptNote {
                guard s.fileOffset <= UInt64(bytes.count), UInt64(bytes.count) - s.fileOffset >= s.fileSize else {
                    throw .truncated("segment \(i)'s data")
                }
            }
            if s.type == Self.ptLoad && s.fileSize > s.memorySize { throw .segmentFileSizeExceedsMemorySize(index: i) }
            segments.append(s)
        }
        guard segments.contains(where: { $0.type == Self.ptLoad }) else { throw .noLoadableSegments }
        self.segments = segments
    }
}

/// Little-endian reads from a byte array at offsets the caller has bounds-checked.
struct ByteReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u8(_ at: Int) -> UInt8 { at < bytes.count ? bytes[at] : 0 }
    func u16(_ at: Int) -> UInt16 { UInt16(u8(at)) | UInt16(u8(at + 1)) << 8 }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
}
