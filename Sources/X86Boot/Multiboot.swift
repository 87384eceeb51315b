// Multiboot: the Multiboot Specification version 0.6.96 (GNU GRUB's "multiboot 1"), as Swiftlet loads it.
//
// What is here: finding and validating the multiboot header (§3.1.1, first 8 KiB, 4-byte aligned,
// magic + flags + checksum == 0), loading an ELF kernel's PT_LOAD segments at their physical addresses,
// and encoding the multiboot information structure (§3.3) with mem_lower/mem_upper, a memory map, the
// command line and the boot loader name. The machine state at entry (§3.2: EAX = 0x2BADB002, EBX = the
// information's address, 32-bit protected mode, paging off) is set by the VMM or by the firmware.
import GuestMemory

public enum Multiboot {
    public static let headerMagic: UInt32 = 0x1BAD_B002
    public static let bootloaderMagic: UInt32 = 0x2BAD_B002
    public static let searchLength = 8192

    /// Header flags this loader honours: bit 0 (page-align modules; we load none), bit 1 (memory info).
    /// Bit 2 (video mode) is refused; bit 16 (address fields) is ignored for ELF kernels, as GRUB and QEMU do.
    static let supportedFlags: UInt32 = 0x0001_0003

    public struct Header: Sendable, Equatable {
        public var offset: Int
        public var flags: UInt32
    }

    /// Finds the multiboot header in the first 8 KiB of `image`.
    public static func findHeader(in image: [UInt8]) throws(KernelImageError) -> Header {
        let reader = ByteReader(image)
        let limit = min(image.count, searchLength) - 12
        var offset = 0
        var sawMagic = false
        while offset <= limit {
            if reader.u32(offset) == headerMagic {
                sawMagic = true
                let flags = reader.u32(offset + 4), checksum = reader.u32(offset + 8)
                if headerMagic &+ flags &+ checksum == 0 {
                    guard flags & ~supportedFlags == 0 else { throw .unsupportedMultibootFlags(flags) }
                    return Header(offset: offset, flags: flags)
                }
            }
            offset += 4
        }
        throw sawMagic ? .badMultibootChecksum : .noMultibootHeader
    }

    /// A kernel validated and ready to copy into guest memory.
    public struct Kernel: Sendable {
        public var elf: ELFImage
        public var header: Header
        public var entry: UInt32
        /// [start, end) of every loaded segment, in guest-physical addresses.
        public var loadedRanges: [(start: UInt64, end: UInt64)]
    }

    /// Validates `image` as a multiboot ELF kernel whose segments fit in `memory` and avoid `reserved`.
    public static func validate(image: [UInt8], memory: GuestMemory,
                                reserved: [(range: AddressRange, what: String)]) throws(KernelImageError) -> Kernel {
        let elf = try ELFImage(image)
        let header = try findHeader(in: image)
        var ranges: [(start: UInt64, end: UInt64)] = []
        for (index, segment) in elf.segments.enumerated() where segment.type == ELFImage.ptLoad && segment.memorySize > 0 {
            let start = segment.physicalAddress
            let (end, overflow) = start.addingReportingOverflow(segment.memorySize)
            guard !overflow, memory.contains(GuestAddress(start), length: segment.memorySize) else {
                throw .segmentOutsideMemory(index: index, start: start, end: overflow ? UInt64.max : end, ramSize: memory.totalSize)
            }
            if let segmentRange = AddressRange(base: GuestAddress(start), length: segment.memorySize),
               let clash = reserved.first(where: { $0.range.overlaps(segmentRange) }) {
                throw .segmentOverlapsReserved(index: index, start: start, end: end, what: clash.what)
            }
            ranges.append((start, end))
        }
        guard !ranges.isEmpty else { throw .noLoadableSegments }
        let entry = elf.entry
        guard ranges.contains(where: { entry >= $0.start && entry < $0.end }), entry <= UInt64(UInt32.max) else {
            throw .entryNotLoaded(entry)
        }
        return Kernel(elf: elf, header: header, entry: UInt32(entry), loadedRanges: ranges)
    }

    /// Copies the kernel's segments into guest memory and zeroes their BSS parts.
    public static func load(_ kernel: Kernel, image: [UInt8], into memory: GuestMemory) throws(GuestMemoryError) {
        for segment in kernel.elf.loadSegments where segment.memorySize > 0 {
            let base = GuestAddress(segment.physicalAddress)
            let from = Int(segment.fileOffset)
            try memory.write(bytes: image[from..<from + Int(segment.fileSize)], at: base)
            if segment.memorySize > segment.fileSize {
                try memory.zero(at: GuestAddress(segment.physicalAddress + segment.fileSize), count: segment.memorySize - segment.fileSize)
            }
        }
    }

    // MARK: The multiboot information structure (§3.3)

    public struct MemoryMapEntry: Sendable, Equatable {
        public var base: UInt64
        public var length: UInt64
        /// 1 = available RAM, 2 = reserved.
        public var type: UInt32
        public init(base: UInt64, length: UInt64, type: UInt32) { self.base = base; self.length = length; self.type = type }
    }

    public static let infoFlagMemory: UInt32 = 1 << 0
    public static let infoFlagCommandLine: UInt32 = 1 << 2
    public static let infoFlagMemoryMap: UInt32 = 1 << 6
    public static let infoFlagBootLoaderName: UInt32 = 1 << 9
    public static let infoSize = 116

    /// The memory map for RAM laid out by `X86Layout.ramLayout`: conventional memory, the ROM hole, extended memory.
    public static func memoryMap(for memory: GuestMemory) -> [MemoryMapEntry] {
        var map: [MemoryMapEntry] = []
        for region in memory.regions {
            let start = region.range.base.rawValue, end = region.range.end
            if start == 0 {
                map.append(.init(base: 0, length: min(end, X86Layout.conventionalMemoryEnd.rawValue), type: 1))
                map.append(.init(base: X86Layout.conventionalMemoryEnd.rawValue,
                                 length: X86Layout.highMemory.rawValue - X86Layout.conventionalMemoryEnd.rawValue, type: 2))
                if end > X86Layout.highMemory.rawValue {
                    map.append(.init(base: X86Layout.highMemory.rawValue, length: end - X86Layout.highMemory.rawValue, type: 1))
                }
            } else if start == X86Layout.firmwareBase.rawValue {
                map.append(.init(base: start, length: region.range.length, type: 2))
            } else {
                map.append(.init(base: start, length: region.range.length, type: 1))
            }
        }
        return map
    }

    /// Encodes the information structure, its memory map and strings into a block that starts at `base`.
    /// Layout: info (116 bytes) | memory map (24 bytes per entry) | command line NUL | loader name NUL.
    public static func encodeInfo(base: GuestAddress, memoryMap: [MemoryMapEntry], commandLine: String,
                                  bootLoaderName: String = "swiftlet") -> [UInt8] {
        var block = [UInt8](repeating: 0, count: infoSize)
        let mapOffset = infoSize
        var map: [UInt8] = []
        for entry in memoryMap {
            map.append(contentsOf: le(UInt32(20)))
            map.append(contentsOf: le(entry.base))
            map.append(contentsOf: le(entry.length))
            map.append(contentsOf: le(entry.type))
        }
        let commandLineOffset = mapOffset + map.count
        let nameOffset = commandLineOffset + commandLine.utf8.count + 1
        block.append(contentsOf: map)
        block.append(contentsOf: Array(commandLine.utf8) + [0])
        block.append(contentsOf: Array(bootLoaderName.utf8) + [0])

        let lowerKiB = memoryMap.filter { $0.type == 1 && $0.base == 0 }.map { $0.length / 1024 }.first ?? 0
        let upperKiB = memoryMap.filter { $0.type == 1 && $0.base == X86Layout.highMemory.rawValue }.map { $0.length / 1024 }.first ?? 0
        let flags = infoFlagMemory | infoFlagCommandLine | infoFlagMemoryMap | infoFlagBootLoaderName
        put(&block, 0, flags)
        put(&block, 4, UInt32(truncatingIfNeeded: lowerKiB))
        put(&block, 8, UInt32(truncatingIfNeeded: upperKiB))
        put(&block, 16, UInt32(truncatingIfNeeded: base.rawValue) &+ UInt32(commandLineOffset))
        put(&block, 44, UInt32(map.count))
        put(&block, 48, UInt32(truncatingIfNeeded: base.rawValue) &+ UInt32(mapOffset))
        put(&block, 64, UInt32(truncatingIfNeeded: base.rawValue) &+ UInt32(nameOffset))
        return block
    }
}

func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

func put<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ offset: Int, _ value: T) {
    for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}
