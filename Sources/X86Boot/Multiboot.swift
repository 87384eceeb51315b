// Multiboot: the Multiboot Specification version 0.6.96 (GNU GRUB's "multiboot 1"), as Swiftlet loads it.
//
// What is here: finding and validating the multiboot header (§3.1.1, first 8 KiB, 4-byte aligned,
// magic + flags + checksum == 0), loading the kernel — an ELF's PT_LOAD segments at their physical
// addresses, or, when header flag 16 is set, the a.out kludge's address fields (§3.1.3: header_addr,
// load_addr, load_end_addr, bss_end_addr, entry_addr; GRUB and QEMU use them whenever the flag is set, ELF
// or not) — placing modules page-aligned after the kernel (§3.3 mods_*), and encoding the multiboot
// information structure (§3.3) with mem_lower/mem_upper, the modules, a memory map, the command line and
// the boot loader name. The machine state at entry (§3.2: EAX = 0x2BADB002, EBX = the information's
// address, 32-bit protected mode, paging off) is set by the VMM or by the firmware. Multiboot2.swift reuses
// the load plan, the checks and the module placement for Multiboot2 kernels.
import GuestMemory

public enum Multiboot {
    public static let headerMagic: UInt32 = 0x1BAD_B002
    public static let bootloaderMagic: UInt32 = 0x2BAD_B002
    public static let searchLength = 8192

    /// Header flags this loader honours: bit 0 (page-align modules: they always are), bit 1 (memory info),
    /// bit 16 (the a.out kludge's address fields). Bit 2 (video mode) is refused.
    static let supportedFlags: UInt32 = 0x0001_0003
    public static let flagAddressFields: UInt32 = 1 << 16

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

    /// One piece of the kernel to copy: `fileSize` bytes from `fileOffset` to guest-physical `address`, then
    /// zeroes up to `memorySize`.
    public struct LoadSegment: Sendable, Equatable {
        public var fileOffset: Int
        public var fileSize: UInt64
        public var address: UInt64
        public var memorySize: UInt64
        public init(fileOffset: Int, fileSize: UInt64, address: UInt64, memorySize: UInt64) {
            self.fileOffset = fileOffset; self.fileSize = fileSize; self.address = address; self.memorySize = memorySize
        }
    }

    /// A kernel validated and ready to copy into guest memory.
    public struct Kernel: Sendable {
        public var header: Header
        public var entry: UInt32
        public var segments: [LoadSegment]
        /// [start, end) of every loaded segment, in guest-physical addresses.
        public var loadedRanges: [(start: UInt64, end: UInt64)]
        /// Where the kernel's last byte ends: modules go after it.
        public var end: UInt64 { loadedRanges.map(\.end).max() ?? 0 }
    }

    /// The a.out kludge (§3.1.3): the five address fields after the checksum, turned into one segment.
    /// Also used for Multiboot2's address tag, whose fields mean the same (`headerOffset` = the header's
    /// offset in the file, `headerAddress` = where it must land).
    public static func kludgeSegment(image: [UInt8], headerOffset: Int, headerAddress: UInt32, loadAddress: UInt32,
                                     loadEndAddress: UInt32, bssEndAddress: UInt32) throws(KernelImageError) -> LoadSegment {
        guard loadAddress <= headerAddress, UInt64(headerAddress - loadAddress) <= UInt64(headerOffset) else {
            throw .badAddressFields("load_addr 0x\(String(loadAddress, radix: 16)) must not lie above header_addr 0x\(String(headerAddress, radix: 16)) by more than the header's file offset 0x\(String(headerOffset, radix: 16))")
        }
        let fileOffset = headerOffset - Int(headerAddress - loadAddress)
        let available = UInt64(image.count - fileOffset)
        var fileSize = available
        if loadEndAddress != 0 {
            guard loadEndAddress >= loadAddress else { throw .badAddressFields("load_end_addr 0x\(String(loadEndAddress, radix: 16)) lies below load_addr 0x\(String(loadAddress, radix: 16))") }
            fileSize = UInt64(loadEndAddress - loadAddress)
            guard fileSize <= available else { throw .truncated("the a.out kludge's text and data (load_end_addr 0x\(String(loadEndAddress, radix: 16)))") }
        }
        var memorySize = fileSize
        if bssEndAddress != 0 {
            guard UInt64(bssEndAddress) >= UInt64(loadAddress) + fileSize else { throw .badAddressFields("bss_end_addr 0x\(String(bssEndAddress, radix: 16)) lies below the end of the loaded data") }
            memorySize = UInt64(bssEndAddress - loadAddress)
        }
        return LoadSegment(fileOffset: fileOffset, fileSize: fileSize, address: UInt64(loadAddress), memorySize: memorySize)
    }

    /// Validates `image` as a multiboot kernel (ELF, or any file with the a.out kludge) whose segments fit
    /// in `memory` and avoid `reserved`.
    public static func validate(image: [UInt8], memory: GuestMemory,
                                reserved: [(range: AddressRange, what: String)]) throws(KernelImageError) -> Kernel {
        let header = try findHeader(in: image)
        let segments: [LoadSegment]
        var entry: UInt64
        if header.flags & flagAddressFields != 0 {
            let r = ByteReader(image)
            let at = header.offset + 12
            guard at + 20 <= image.count else { throw .truncated("the multiboot header's address fields") }
            segments = [try kludgeSegment(image: image, headerOffset: header.offset, headerAddress: r.u32(at), loadAddress: r.u32(at + 4),
                                          loadEndAddress: r.u32(at + 8), bssEndAddress: r.u32(at + 12))]
            entry = UInt64(r.u32(at + 16))
        } else {
            (segments, entry) = try elfSegments(image)
        }
        let ranges = try check(segments, memory: memory, reserved: reserved)
        guard ranges.contains(where: { entry >= $0.start && entry < $0.end }), entry <= UInt64(UInt32.max) else {
            throw .entryNotLoaded(entry)
        }
        return Kernel(header: header, entry: UInt32(entry), segments: segments, loadedRanges: ranges)
    }

    /// An ELF's loadable segments and entry point.
    static func elfSegments(_ image: [UInt8]) throws(KernelImageError) -> ([LoadSegment], UInt64) {
        let elf = try ELFImage(image)
        let segments = elf.segments.filter { $0.type == ELFImage.ptLoad && $0.memorySize > 0 }.map {
            LoadSegment(fileOffset: Int($0.fileOffset), fileSize: $0.fileSize, address: $0.physicalAddress, memorySize: $0.memorySize)
        }
        return (segments, elf.entry)
    }

    /// Checks that every segment lies in RAM and clear of `reserved`; returns their ranges.
    public static func check(_ segments: [LoadSegment], memory: GuestMemory,
                             reserved: [(range: AddressRange, what: String)]) throws(KernelImageError) -> [(start: UInt64, end: UInt64)] {
        var ranges: [(start: UInt64, end: UInt64)] = []
        for (index, segment) in segments.enumerated() where segment.memorySize > 0 {
            let start = segment.address
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
        return ranges
    }

    /// Copies the kernel's segments into guest memory and zeroes their BSS parts.
    public static func load(_ kernel: Kernel, image: [UInt8], into memory: GuestMemory) throws(GuestMemoryError) {
        for segment in kernel.segments where segment.memorySize > 0 {
            let base = GuestAddress(segment.address)
            try memory.write(bytes: image[segment.fileOffset..<segment.fileOffset + Int(segment.fileSize)], at: base)
            if segment.memorySize > segment.fileSize {
                try memory.zero(at: GuestAddress(segment.address + segment.fileSize), count: segment.memorySize - segment.fileSize)
            }
        }
    }

    // MARK: Modules (§3.3 mods_addr)

    /// A module as placed in guest memory: [start, end) and its string.
    public struct Module: Sendable, Equatable {
        public var start: UInt64
        public var end: UInt64
        public var commandLine: String
        public init(start: UInt64, end: UInt64, commandLine: String) { self.start = start; self.end = end; self.commandLine = commandLine }
    }

    /// Places modules of `sizes` bytes one after another, each page-aligned, from the first page after
    /// `kernelEnd`, inside the RAM below the MMIO hole and clear of `reserved`; the first that does not fit
    /// is an error naming it.
    public static func placeModules(sizes: [(name: String, size: UInt64, commandLine: String)], after kernelEnd: UInt64,
                                    memory: GuestMemory, reserved: [(range: AddressRange, what: String)]) throws(KernelImageError) -> [Module] {
        var next = (kernelEnd + 0xFFF) & ~0xFFF
        var modules: [Module] = []
        for m in sizes {
            let (end, overflow) = next.addingReportingOverflow(m.size)
            guard !overflow, end <= UInt64(UInt32.max), m.size == 0 || memory.contains(GuestAddress(next), length: m.size) else {
                throw .moduleDoesNotFit(name: m.name, size: m.size, start: next, ramSize: memory.totalSize)
            }
            if m.size > 0, let range = AddressRange(base: GuestAddress(next), length: m.size),
               let clash = reserved.first(where: { $0.range.overlaps(range) }) {
                throw .moduleOverlapsReserved(name: m.name, start: next, end: end, what: clash.what)
            }
            modules.append(Module(start: next, end: end, commandLine: m.commandLine))
            next = (end + 0xFFF) & ~0xFFF
        }
        return modules
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
    public static let infoFlagModules: UInt32 = 1 << 3
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
    /// Layout: info (116 bytes) | module list (16 bytes each) | memory map (24 bytes per entry) | command
    /// line NUL | loader name NUL | module strings NUL each.
    public static func encodeInfo(base: GuestAddress, memoryMap: [MemoryMapEntry], commandLine: String,
                                  bootLoaderName: String = "swiftlet", modules: [Module] = []) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: infoSize + 16 * modules.count)
        let mapOffset = block.count
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
        let address = UInt32(truncatingIfNeeded: base.rawValue)
        for (i, module) in modules.enumerated() {
            let entry = infoSize + 16 * i
            put(&block, entry, UInt32(truncatingIfNeeded: module.start))
            put(&block, entry + 4, UInt32(truncatingIfNeeded: module.end))
            put(&block, entry + 8, address &+ UInt32(block.count))
            block.append(contentsOf: Array(module.commandLine.utf8) + [0])
        }

        let lowerKiB = memoryMap.filter { $0.type == 1 && $0.base == 0 }.map { $0.length / 1024 }.first ?? 0
        let upperKiB = memoryMap.filter { $0.type == 1 && $0.base == X86Layout.highMemory.rawValue }.map { $0.length / 1024 }.first ?? 0
        let flags = infoFlagMemory | infoFlagCommandLine | infoFlagMemoryMap | infoFlagBootLoaderName | (modules.isEmpty ? 0 : infoFlagModules)
        put(&block, 0, flags)
        put(&block, 4, UInt32(truncatingIfNeeded: lowerKiB))
        put(&block, 8, UInt32(truncatingIfNeeded: upperKiB))
        put(&block, 16, UInt32(truncatingIfNeeded: base.rawValue) &+ UInt32(commandLineOffset))
        if !modules.isEmpty {
            put(&block, 20, UInt32(modules.count))
            put(&block, 24, address &+ UInt32(infoSize))
        }
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
