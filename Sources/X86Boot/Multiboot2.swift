// Multiboot2: the Multiboot2 Specification (version 2.0, GNU GRUB's "multiboot2"), as Swiftlet loads it.
//
// The header (§3.1.1): magic 0xE85250D6, architecture 0 (i386, 32-bit protected mode), header_length and a
// checksum that makes the four fields sum to 0, 8-byte aligned within the first 32 KiB; then tags, each
// type (u16), flags (u16, bit 0 = optional), size (u32), 8-byte aligned, ending with type 0. Honoured:
// information request (1: every requested type must be one this loader provides unless the tag is optional),
// address (2: the a.out-kludge fields, Multiboot.kludgeSegment), entry address (3), console flags (4),
// module alignment (6: modules are page-aligned anyway), relocatable (10: loaded where linked). Refused
// unless optional, with a one-line error naming the tag: framebuffer (5; no display), EFI boot services (7),
// EFI i386 and amd64 entry addresses (8, 9): they need EFI, which Swiftlet does not have.
//
// The boot information (§3.6): total_size, reserved, then 8-byte aligned tags: command line (1), boot loader
// name (2), one module tag per module (3), basic memory information (4), memory map (6, 24-byte entries),
// ACPI old RSDP (14) and new RSDP (15) when the machine has ACPI tables, end (0). The machine state at entry
// (§3.3): EAX = 0x36D76289, EBX = the information's physical address, 32-bit protected mode, paging off.
import GuestMemory

public enum Multiboot2 {
    public static let headerMagic: UInt32 = 0xE852_50D6
    public static let bootloaderMagic: UInt32 = 0x36D7_6289
    public static let searchLength = 32768

    /// Header tag types (§3.1.3 - §3.1.12).
    public enum HeaderTag {
        public static let end: UInt16 = 0, informationRequest: UInt16 = 1, address: UInt16 = 2, entryAddress: UInt16 = 3
        public static let consoleFlags: UInt16 = 4, framebuffer: UInt16 = 5, moduleAlignment: UInt16 = 6
        public static let efiBootServices: UInt16 = 7, efiI386Entry: UInt16 = 8, efiAMD64Entry: UInt16 = 9, relocatable: UInt16 = 10
    }

    /// Boot information tag types (§3.6).
    public enum InfoTag {
        public static let end: UInt32 = 0, commandLine: UInt32 = 1, bootLoaderName: UInt32 = 2, module: UInt32 = 3
        public static let basicMemory: UInt32 = 4, memoryMap: UInt32 = 6, acpiOld: UInt32 = 14, acpiNew: UInt32 = 15
        /// The types this loader provides (what an information request may ask for).
        public static let provided: Set<UInt32> = [commandLine, bootLoaderName, module, basicMemory, memoryMap, acpiOld, acpiNew]
    }

    static func tagName(_ type: UInt16) -> String {
        switch type {
        case HeaderTag.framebuffer: "framebuffer (type 5): Swiftlet has no display"
        case HeaderTag.efiBootServices: "EFI boot services (type 7): Swiftlet boots without EFI"
        case HeaderTag.efiI386Entry: "EFI i386 entry address (type 8): Swiftlet boots without EFI"
        case HeaderTag.efiAMD64Entry: "EFI amd64 entry address (type 9): Swiftlet boots without EFI"
        default: "type \(type)"
        }
    }

    public struct Header: Sendable, Equatable {
        public var offset: Int
        public var length: Int
        /// The address tag's fields (header_addr, load_addr, load_end_addr, bss_end_addr), if present.
        public var address: (UInt32, UInt32, UInt32, UInt32)?
        public var entry: UInt32?

        public static func == (a: Header, b: Header) -> Bool {
            a.offset == b.offset && a.length == b.length && a.entry == b.entry && a.address.map { [$0.0, $0.1, $0.2, $0.3] } == b.address.map { [$0.0, $0.1, $0.2, $0.3] }
        }
    }

    /// Whether `image` has a Multiboot2 header magic at an 8-byte boundary in its first 32 KiB.
    public static func hasHeader(_ image: [UInt8]) -> Bool {
        let r = ByteReader(image)
        var offset = 0
        while offset + 16 <= min(image.count, searchLength) {
            if r.u32(offset) == headerMagic { return true }
            offset += 8
        }
        return false
    }

    /// Finds and checks the header and its tags.
    public static func findHeader(in image: [UInt8]) throws(KernelImageError) -> Header {
        let r = ByteReader(image)
        var offset = 0
        var sawMagic = false
        while offset + 16 <= min(image.count, searchLength) {
            defer { offset += 8 }
            guard r.u32(offset) == headerMagic else { continue }
            sawMagic = true
            let architecture = r.u32(offset + 4), length = r.u32(offset + 8), checksum = r.u32(offset + 12)
            guard headerMagic &+ architecture &+ length &+ checksum == 0 else { continue }
            guard architecture == 0 else { throw .multiboot2("header architecture \(architecture) is not 0 (i386 protected mode); Swiftlet boots only that") }
            guard length >= 24, UInt64(offset) + UInt64(length) <= UInt64(image.count) else {
                throw .multiboot2("header_length \(length) runs past the end of the file or leaves no room for the end tag")
            }
            return try parseTags(r, offset: offset, length: Int(length))
        }
        throw sawMagic ? .multiboot2("the header's checksum is wrong (magic + architecture + header_length + checksum must be 0)") : .noMultibootHeader
    }

    static func parseTags(_ r: ByteReader, offset: Int, length: Int) throws(KernelImageError) -> Header {
        var header = Header(offset: offset, length: length, address: nil, entry: nil)
        var at = offset + 16
        let end = offset + length
        while true {
            guard at + 8 <= end else { throw .multiboot2("the header's tags run past header_length without an end tag (type 0)") }
            let type = r.u16(at), flags = r.u16(at + 2), size = Int(r.u32(at + 4))
            let optional = flags & 1 != 0
            guard size >= 8, at + size <= end else { throw .multiboot2("header tag type \(type) at offset 0x\(String(at, radix: 16)) has size \(size), outside the header") }
            switch type {
            case HeaderTag.end:
                return header
            case HeaderTag.informationRequest:
                var i = at + 8
                while i + 4 <= at + size {
                    let requested = r.u32(i)
                    if !optional && !InfoTag.provided.contains(requested) {
                        throw .multiboot2("the kernel requires boot information tag type \(requested), which Swiftlet does not provide (it gives \(InfoTag.provided.sorted().map(String.init).joined(separator: ", ")))")
                    }
                    i += 4
                }
            case HeaderTag.address:
                guard size >= 24 else { throw .multiboot2("the address tag is \(size) bytes, not 24") }
                header.address = (r.u32(at + 8), r.u32(at + 12), r.u32(at + 16), r.u32(at + 20))
            case HeaderTag.entryAddress:
                guard size >= 12 else { throw .multiboot2("the entry address tag is \(size) bytes, not 12") }
                header.entry = r.u32(at + 8)
            case HeaderTag.consoleFlags, HeaderTag.moduleAlignment, HeaderTag.relocatable:
                break
            case HeaderTag.framebuffer, HeaderTag.efiBootServices, HeaderTag.efiI386Entry, HeaderTag.efiAMD64Entry:
                if !optional { throw .multiboot2("header tag \(tagName(type)); mark it optional or build the kernel without it") }
            default:
                if !optional { throw .multiboot2("unknown required header tag type \(type)") }
            }
            at += (size + 7) & ~7
        }
    }

    /// Validates a Multiboot2 kernel: the address tag's segment, or the ELF's; the entry tag's entry, or the ELF's.
    public static func validate(image: [UInt8], memory: GuestMemory,
                                reserved: [(range: AddressRange, what: String)]) throws(KernelImageError) -> (header: Header, kernel: Multiboot.Kernel) {
        let header = try findHeader(in: image)
        let segments: [Multiboot.LoadSegment]
        var entry: UInt64
        if let a = header.address {
            segments = [try Multiboot.kludgeSegment(image: image, headerOffset: header.offset, headerAddress: a.0, loadAddress: a.1,
                                                    loadEndAddress: a.2, bssEndAddress: a.3)]
            guard let e = header.entry else { throw .multiboot2("an address tag needs an entry address tag (type 3) beside it") }
            entry = UInt64(e)
        } else {
            (segments, entry) = try Multiboot.elfSegments(image)
            if let e = header.entry { entry = UInt64(e) }
        }
        let ranges = try Multiboot.check(segments, memory: memory, reserved: reserved)
        guard ranges.contains(where: { entry >= $0.start && entry < $0.end }), entry <= UInt64(UInt32.max) else {
            throw .entryNotLoaded(entry)
        }
        let v1 = Multiboot.Header(offset: header.offset, flags: 0)
        return (header, Multiboot.Kernel(header: v1, entry: UInt32(entry), segments: segments, loadedRanges: ranges))
    }

    /// The boot information block for placement at `base`. `acpiRSDP` is the 36-byte ACPI 2.0 RSDP (its first
    /// 20 bytes are the ACPI 1.0 structure), nil without ACPI tables.
    public static func encodeInfo(base: GuestAddress, memoryMap: [Multiboot.MemoryMapEntry], commandLine: String,
                                  bootLoaderName: String = "swiftlet", modules: [Multiboot.Module] = [], acpiRSDP: [UInt8]? = nil) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 8)
        func tag(_ type: UInt32, _ payload: [UInt8]) {
            block += le(type) + le(UInt32(8 + payload.count)) + payload
            while block.count % 8 != 0 { block.append(0) }
        }
        tag(InfoTag.commandLine, Array(commandLine.utf8) + [0])
        tag(InfoTag.bootLoaderName, Array(bootLoaderName.utf8) + [0])
        for m in modules {
            tag(InfoTag.module, le(UInt32(truncatingIfNeeded: m.start)) + le(UInt32(truncatingIfNeeded: m.end)) + Array(m.commandLine.utf8) + [0])
        }
        let lowerKiB = memoryMap.first { $0.type == 1 && $0.base == 0 }.map { $0.length / 1024 } ?? 0
        let upperKiB = memoryMap.first { $0.type == 1 && $0.base == X86Layout.highMemory.rawValue }.map { $0.length / 1024 } ?? 0
        tag(InfoTag.basicMemory, le(UInt32(truncatingIfNeeded: lowerKiB)) + le(UInt32(truncatingIfNeeded: upperKiB)))
        var map = le(UInt32(24)) + le(UInt32(0))
        for e in memoryMap { map += le(e.base) + le(e.length) + le(e.type) + le(UInt32(0)) }
        tag(InfoTag.memoryMap, map)
        if let rsdp = acpiRSDP, rsdp.count >= 36 {
            tag(InfoTag.acpiOld, Array(rsdp[0..<20]))
            tag(InfoTag.acpiNew, Array(rsdp[0..<36]))
        }
        tag(InfoTag.end, [])
        put(&block, 0, UInt32(block.count))
        return block
    }
}
