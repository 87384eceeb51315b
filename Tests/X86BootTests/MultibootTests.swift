// Tests for ELF validation, the multiboot header search, the multiboot information encoding and GDT
// descriptors, using synthetic images and the real embedded tiny guests.
import CGuestImages
import GuestMemory
import Testing
import TestSupport
@testable import X86Boot

func embedded(_ name: String) -> [UInt8] {
    var size = 0
    guard let p = swiftlet_guest_image(name, &size) else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: size))
}

@Suite struct ELFValidationTests {
    @Test func acceptsTheEmbeddedHelloGuest() throws {
        let elf = try ELFImage(embedded("hello"))
        #expect(!elf.is64Bit)
        #expect(elf.machine == 3)
        #expect(elf.loadSegments.first?.physicalAddress == 0x10_0000)
    }

    static let malformed: [([UInt8], KernelImageError)] = {
        let header: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
        let padding = [UInt8](repeating: 0, count: 60)
        var cases: [([UInt8], KernelImageError)] = []
        cases.append(([], .empty))
        cases.append((Array("#!/bin/sh\necho not a kernel\n".utf8), .notELF))
        cases.append((header + [3, 1, 1, 0] + padding, .unsupportedClass(3)))
        cases.append((header + [1, 2, 1, 0] + padding, .notLittleEndian))
        cases.append((header + [1, 1, 1, 0] + Array(padding.prefix(20)), .truncated("the ELF header")))
        return cases
    }()

    @Test(arguments: malformed)
    func rejectsMalformedFiles(bytes: [UInt8], expected: KernelImageError) {
        #expect(throws: expected) { try ELFImage(bytes) }
    }

    @Test func rejectsOtherMachines() {
        let arm = SyntheticELF.multiboot(code: [0xF4], machine: 40)
        #expect(throws: KernelImageError.wrongMachine(40)) { try ELFImage(arm) }
    }

    @Test func rejectsATruncatedSegment() {
        let image = embedded("hello")
        #expect(throws: KernelImageError.truncated("segment 0's data")) { try ELFImage(Array(image.prefix(0x2000))) }
    }
}

@Suite struct MultibootHeaderTests {
    @Test func findsTheHeaderOfEveryEmbeddedGuest() throws {
        for name in ["hello", "triple-fault", "unmapped", "loop", "doctor", "probe", "syscalls"] {
            let header = try Multiboot.findHeader(in: embedded(name))
            #expect(header.flags & 0x2 != 0, "\(name) asks for memory information")
        }
    }

    @Test func reportsMissingHeaderAndBadChecksum() {
        #expect(throws: KernelImageError.noMultibootHeader) { try Multiboot.findHeader(in: SyntheticELF.multiboot(code: [0xF4], multibootHeader: false)) }
        #expect(throws: KernelImageError.badMultibootChecksum) { try Multiboot.findHeader(in: SyntheticELF.multiboot(code: [0xF4], badChecksum: true)) }
    }

    @Test func refusesVideoModeRequests() {
        #expect(throws: KernelImageError.unsupportedMultibootFlags(0x6)) {
            try Multiboot.findHeader(in: SyntheticELF.multiboot(code: [0xF4], multibootFlags: 0x6))
        }
    }

    @Test func validatesSegmentsAgainstMemoryAndReservedAreas() throws {
        let memory = try GuestMemory(layout: X86Layout.ramLayout(size: 4 << 20))
        let big = SyntheticELF.multiboot(code: [0xF4], extraMemory: 8 << 20)
        #expect(throws: KernelImageError.self) { try Multiboot.validate(image: big, memory: memory, reserved: []) }
        let low = SyntheticELF.multiboot(code: [0xF4], loadAddress: 0x7000)
        let reserved = [(range: AddressRange(base: GuestAddress(0), length: 0x8000)!, what: "the boot area")]
        #expect(throws: KernelImageError.segmentOverlapsReserved(index: 0, start: 0x7000, end: 0x7000 + UInt64(low.count), what: "the boot area")) {
            try Multiboot.validate(image: low, memory: memory, reserved: reserved)
        }
        let ok = try Multiboot.validate(image: SyntheticELF.multiboot(code: [0xF4]), memory: memory, reserved: reserved)
        #expect(ok.entry == 0x10_0000 + 84 + 12)
    }

    @Test func loadsSegmentsAndZeroesBSS() throws {
        let memory = try GuestMemory(layout: X86Layout.ramLayout(size: 4 << 20))
        try memory.write(bytes: [UInt8](repeating: 0xEE, count: 0x2000), at: GuestAddress(0x10_0000))
        let image = SyntheticELF.multiboot(code: [0x90, 0xF4], extraMemory: 0x100)
        let kernel = try Multiboot.validate(image: image, memory: memory, reserved: [])
        try Multiboot.load(kernel, image: image, into: memory)
        #expect(try memory.readBytes(at: GuestAddress(0x10_0000), count: image.count) == image)
        #expect(try memory.readBytes(at: GuestAddress(0x10_0000 + UInt64(image.count)), count: 0x100).allSatisfy { $0 == 0 })
        #expect(try memory.read(UInt8.self, at: GuestAddress(0x10_0000 + UInt64(image.count) + 0x100)) == 0xEE)
    }
}

@Suite struct MultibootInfoTests {
    @Test func encodesMemoryMapCommandLineAndLoaderName() throws {
        let memory = try GuestMemory(layout: X86Layout.ramLayout(size: 64 << 20))
        let map = Multiboot.memoryMap(for: memory)
        #expect(map == [.init(base: 0, length: 0xA0000, type: 1), .init(base: 0xA0000, length: 0x60000, type: 2),
                        .init(base: 0x10_0000, length: (64 << 20) - 0x10_0000, type: 1)])
        let base = GuestAddress(0x6000)
        let info = Multiboot.encodeInfo(base: base, memoryMap: map, commandLine: "quiet")
        let r = ByteReader(info)
        #expect(r.u32(0) == 0x245) // mem, cmdline, mmap, loader name
        #expect(r.u32(4) == 640)
        #expect(r.u32(8) == 64512)
        #expect(r.u32(44) == 72) // three 24-byte entries
        let mapAt = Int(r.u32(48) - 0x6000)
        #expect(r.u32(mapAt) == 20 && r.u64(mapAt + 4) == 0 && r.u64(mapAt + 12) == 0xA0000 && r.u32(mapAt + 20) == 1)
        let cmdAt = Int(r.u32(16) - 0x6000)
        #expect(Array(info[cmdAt..<cmdAt + 6]) == Array("quiet".utf8) + [0])
        let nameAt = Int(r.u32(64) - 0x6000)
        #expect(Array(info[nameAt..<nameAt + 9]) == Array("swiftlet".utf8) + [0])
    }

    @Test func splitsLargeMemoryAroundTheMMIOHole() {
        let layout = X86Layout.ramLayout(size: 4 << 30)
        #expect(layout.count == 2)
        #expect(layout[0].size == 0xC000_0000)
        #expect(layout[1].base == X86Layout.fourGiB && layout[1].size == 0x4000_0000)
    }
}

@Suite struct GDTTests {
    @Test func encodesTheClassicFlatDescriptors() {
        #expect(SegmentDescriptor.flatCode32.encoded == 0x00CF_9B00_0000_FFFF)
        #expect(SegmentDescriptor.flatData32.encoded == 0x00CF_9300_0000_FFFF)
        #expect(SegmentDescriptor.flatCode64.encoded == 0x00AF_9B00_0000_FFFF)
        #expect(SegmentDescriptor.null.encoded == 0)
    }

    @Test func decodingInvertsEncoding() {
        let tss = SegmentDescriptor(base: 0x1234_5678, limit: 0x67, type: 0xB, codeOrData: false, defaultBig: false, granularity: false)
        #expect(SegmentDescriptor(encoded: tss.encoded) == tss)
        #expect(SegmentDescriptor(encoded: 0x00CF_9B00_0000_FFFF).byteLimit == 0xFFFF_FFFF)
    }

    /// The boot GDT as the CPU reads it (Intel SDM vol. 3A §3.4.5, §7.2.2): six 8-byte descriptors, GDTR.limit
    /// one less than the table's 48 bytes, and at each selector the descriptor it names, written out here.
    @Test func bootGDTSelectorsMatchTheirEntries() {
        let bytes = BootGDT.bytes
        #expect(bytes.count == 48)
        #expect(BootGDT.limit == 0x2F)
        func descriptor(_ selector: UInt16) -> UInt64 {
            let at = Int(selector & ~7)
            return (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        }
        #expect(descriptor(0) == 0, "the null descriptor")
        #expect(BootGDT.code32Selector == 0x08 && descriptor(0x08) == 0x00CF_9B00_0000_FFFF, "flat 32-bit code, execute/read, accessed")
        #expect(BootGDT.data32Selector == 0x10 && descriptor(0x10) == 0x00CF_9300_0000_FFFF, "flat data, read/write, accessed")
        #expect(BootGDT.code64Selector == 0x18 && descriptor(0x18) == 0x00AF_9B00_0000_FFFF, "64-bit code: L set, D clear")
        #expect(BootGDT.data64Selector == 0x20 && descriptor(0x20) == 0x00CF_9300_0000_FFFF)
        #expect(BootGDT.tssSelector == 0x28 && descriptor(0x28) == 0x0000_8B00_0000_0067, "busy 32-bit TSS, base 0, limit 0x67")
    }
}
