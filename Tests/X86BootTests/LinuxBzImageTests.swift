// Tests for the 64-bit Linux boot protocol loader: header validation on synthetic bzImages, placement of
// kernel, command line and initrd, the zero page's fields and e820 table, and every refusal.
import GuestMemory
import Testing
@testable import X86Boot

@Suite struct BzImageHeaderTests {
    typealias F = LinuxFixtures

    @Test func readsTheSetupHeaderFields() throws {
        let image = try LinuxBzImage(F.BzImage().bytes)
        #expect(image.setupSectors == 4)                  // a 0 in setup_sects means 4
        #expect(image.protectedModeOffset == 5 * 512)
        #expect(image.protectedModeSize == 0x2000)
        #expect(image.protocolVersion == 0x020F)
        #expect(image.isRelocatable)
        #expect(image.kernelAlignment == 0x20_0000)
        #expect(image.preferredAddress == 0x100_0000)
        #expect(image.initSize == 0x80_0000)
        #expect(image.initrdAddressMax == 0x7FFF_FFFF)
        #expect(image.commandLineSize == 2047)
        #expect(image.setupHeaderEnd == 0x26C)
        #expect(image.entry == GuestAddress(0x10_0200))   // startup_64 = 1 MiB + 0x200
    }

    @Test func honoursAnExplicitSetupSectorCount() throws {
        var fixture = F.BzImage()
        fixture.setupSects = 27
        let image = try LinuxBzImage(fixture.bytes)
        #expect(image.protectedModeOffset == 28 * 512)
    }

    @Test func aRelocatableKernelRunsAtPrefAddressWhenLoadedBelowIt() throws {
        let image = try LinuxBzImage(F.BzImage().bytes)
        #expect(image.runAddress == 0x100_0000)
        #expect(image.kernelEnd == 0x100_0000 + 0x80_0000)
    }

    @Test func aNonRelocatableKernelRunsAtPrefAddress() throws {
        var fixture = F.BzImage()
        fixture.relocatable = 0
        fixture.prefAddress = 0x20_0000
        let image = try LinuxBzImage(fixture.bytes)
        #expect(image.runAddress == 0x20_0000)
    }

    /// One bad image, named for the test log (its bytes would drown it).
    struct Refusal: Sendable, CustomTestStringConvertible {
        var what: String
        var bytes: [UInt8]
        var expected: LinuxBootError
        var testDescription: String { what }
    }

    static let refusals: [Refusal] = {
        var cases: [Refusal] = []
        let good = F.BzImage().bytes
        cases.append(Refusal(what: "a tiny file", bytes: Array("hello".utf8), expected: .notBzImage("the file is 5 bytes, shorter than a boot sector")))
        var fixture = F.BzImage(); fixture.bootFlag = 0
        cases.append(Refusal(what: "no boot flag", bytes: fixture.bytes, expected: .notBzImage("no boot flag 0xAA55 at offset 0x1fe")))
        fixture = F.BzImage(); fixture.magic = 0x1234_5678
        cases.append(Refusal(what: "no HdrS", bytes: fixture.bytes, expected: .notBzImage("no \"HdrS\" setup-header magic at offset 0x202")))
        cases.append(Refusal(what: "cut inside the header", bytes: Array(good.prefix(0x204)), expected: .truncated("the setup header at 0x1f1")))
        cases.append(Refusal(what: "cut after the header", bytes: Array(good.prefix(0x240)), expected: .truncated("the setup header (up to 0x26c)")))
        cases.append(Refusal(what: "cut inside the kernel", bytes: Array(good.prefix(good.count - 16)),
                             expected: .truncated("the protected-mode kernel (8192 bytes at offset 0xa00, by syssize)")))
        cases.append(Refusal(what: "no protected-mode kernel", bytes: Array(good.prefix(5 * 512)),
                             expected: .truncated("the protected-mode kernel (8192 bytes at offset 0xa00, by syssize)")))
        fixture = F.BzImage(); fixture.version = 0x0206
        cases.append(Refusal(what: "protocol 2.06", bytes: fixture.bytes, expected: .protocolTooOld(found: 0x0206, required: 0x020C)))
        fixture = F.BzImage(); fixture.version = 0x020B
        cases.append(Refusal(what: "protocol 2.11", bytes: fixture.bytes, expected: .protocolTooOld(found: 0x020B, required: 0x020C)))
        fixture = F.BzImage(); fixture.xloadflags = 0x2
        cases.append(Refusal(what: "no 64-bit entry", bytes: fixture.bytes, expected: .not64Bit))
        fixture = F.BzImage(); fixture.loadflags = 0
        cases.append(Refusal(what: "a zImage", bytes: fixture.bytes, expected: .notLoadedHigh))
        fixture = F.BzImage(); fixture.headerEnd = 0x250
        cases.append(Refusal(what: "a short header", bytes: fixture.bytes, expected: .notBzImage("the setup header ends at 0x250, before the fields its version promises")))
        // Issue 14: pref_address + init_size past 2^64 trapped in kernelEnd (SIGILL in `boot` and `explain`).
        fixture = F.BzImage(); fixture.relocatable = 0; fixture.prefAddress = 0xFFFF_FFFF_FFFF_F000; fixture.initSize = 0x10_0000
        cases.append(Refusal(what: "a run area that wraps past 2^64", bytes: fixture.bytes,
                             expected: .notBzImage("its run area (pref_address 0xfffffffffffff000 + init_size 0x100000) wraps past the end of the address space")))
        fixture = F.BzImage(); fixture.prefAddress = UInt64.max; fixture.kernelAlignment = 2047
        cases.append(Refusal(what: "a relocatable kernel whose pref_address wraps", bytes: fixture.bytes,
                             expected: .notBzImage("its run area (pref_address 0xffffffffffffffff + init_size 0x800000) wraps past the end of the address space")))
        return cases
    }()

    @Test(arguments: refusals)
    func refusesBadImages(_ refusal: Refusal) {
        #expect(throws: refusal.expected, "\(refusal.what)") { try LinuxBzImage(refusal.bytes) }
    }

    @Test func refusesAnELFFileAsNotABzImage() {
        let elf = LinuxFixtures.vmlinux(notes: [], code: [0x90], bss: 0)
        #expect(throws: LinuxBootError.self) { try LinuxBzImage(elf) }
    }

    @Test func errorsAreOneLineSentences() {
        let errors: [LinuxBootError] = [
            .truncated("x"), .notBzImage("y"), .protocolTooOld(found: 0x203, required: 0x20C), .not64Bit, .notLoadedHigh,
            .commandLineTooLong(length: 3000, limit: 2047, limitSource: "this kernel's cmdline_size"),
            .initrdTooLarge(size: 100 << 20, kernelEnd: 0x180_0000, ceiling: 0x400_0000),
            .memoryTooSmall(needed: 0x300_0000, available: 0x200_0000, what: "the kernel"),
            .noPVHNote, .badPVHNote("z"), .segmentOverlapsBootArea(index: 1, start: 0, end: 0x1000), .tooManyMemoryMapEntries(200),
        ]
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains("\n"))
        }
        #expect(LinuxBootError.protocolTooOld(found: 0x203, required: 0x20C).description.contains("2.03; Swiftlet needs 2.12"))
        #expect(LinuxBootError.initrdTooLarge(size: 100 << 20, kernelEnd: 0x180_0000, ceiling: 0x400_0000).description
            .contains("the initrd (100 MiB) does not fit"))
    }
}

@Suite struct BzImageLoadTests {
    typealias F = LinuxFixtures

    @Test func loadsKernelCommandLineAndInitrdAndBuildsTheZeroPage() throws {
        let memory = try F.memory(megabytes: 64)
        let image = try LinuxBzImage(F.BzImage().bytes)
        let initrd = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 13) }
        let layout = try image.load(into: memory, commandLine: "console=ttyS0 panic=-1", initrd: initrd)

        // The protected-mode kernel at 1 MiB, byte for byte.
        #expect(layout.kernel == AddressRange(base: GuestAddress(0x10_0000), length: 0x2000))
        let kernel = try memory.readBytes(at: GuestAddress(0x10_0000), count: 0x2000)
        #expect(kernel == (0..<0x2000).map(F.BzImage.payloadByte))
        #expect(layout.entry == GuestAddress(0x10_0200))

        // The command line, NUL-terminated, at its fixed address.
        #expect(layout.commandLine == X86Layout.commandLine)
        #expect(try memory.readBytes(at: X86Layout.commandLine, count: 23) == Array("console=ttyS0 panic=-1".utf8) + [0])

        // The initrd as high as possible below min(initrd_addr_max + 1, 64 MiB), page-aligned.
        let range = try #require(layout.initrd)
        #expect(range.base.rawValue == ((64 << 20) - 10_000) & ~0xFFF)
        #expect(range.base.rawValue >= layout.kernelEnd)
        #expect(try memory.readBytes(at: range.base, count: initrd.count) == initrd)

        // The zero page.
        #expect(layout.zeroPage == X86Layout.zeroPage)
        let page = try memory.readBytes(at: X86Layout.zeroPage, count: 4096)
        let header = F.BzImage().bytes
        #expect(page[0x1F1] == header[0x1F1])
        #expect(F.u16(page, 0x1FE) == 0xAA55)
        #expect(F.u32(page, 0x202) == 0x5372_6448)
        #expect(F.u16(page, 0x206) == 0x020F)
        #expect(F.u32(page, 0x238) == 2047)              // cmdline_size copied with the header
        #expect(F.u64(page, 0x258) == 0x100_0000)        // pref_address copied
        #expect(page[0x210] == 0xFF)                     // type_of_loader
        #expect(page[0x211] == 0x81)                     // LOADED_HIGH | CAN_USE_HEAP
        #expect(F.u16(page, 0x224) == 0xFE00)            // heap_end_ptr
        #expect(F.u32(page, 0x214) == 0x10_0000)         // code32_start
        #expect(F.u32(page, 0x228) == 0x4000)            // cmd_line_ptr
        #expect(F.u32(page, 0x0C8) == 0)                 // ext_cmd_line_ptr
        #expect(F.u32(page, 0x218) == UInt32(range.base.rawValue)) // ramdisk_image
        #expect(F.u32(page, 0x21C) == 10_000)            // ramdisk_size
        #expect(F.u32(page, 0x0C0) == 0)                 // ext_ramdisk_image
        #expect(F.u32(page, 0x0C4) == 0)                 // ext_ramdisk_size
        #expect(page[0x1EF] == 0)                        // sentinel
        #expect(page[0x26C..<0x2D0].allSatisfy { $0 == 0 })  // nothing between the header and the e820 table

        // e820: three entries, 20 bytes each at 0x2D0.
        #expect(page[0x1E8] == 3)
        let e820 = (0..<3).map { i in (F.u64(page, 0x2D0 + 20 * i), F.u64(page, 0x2D8 + 20 * i), F.u32(page, 0x2E0 + 20 * i)) }
        #expect(e820[0] == (0, 0x9_FC00, 1))
        #expect(e820[1] == (0x9_FC00, 0x6_0400, 2))
        #expect(e820[2] == (0x10_0000, (64 << 20) - 0x10_0000, 1))

        // And a description of all of it, in address order.
        #expect(layout.placements.map(\.range.base) == layout.placements.map(\.range.base).sorted())
        #expect(layout.placements.contains { $0.what.hasPrefix("zero page") && $0.range.base == X86Layout.zeroPage })
        #expect(layout.placements.contains { $0.what.hasPrefix("initrd") })
    }

    @Test func withoutAnInitrdTheRamdiskFieldsAreZero() throws {
        let memory = try F.memory(megabytes: 32)
        let layout = try LinuxBzImage(F.BzImage().bytes).load(into: memory, commandLine: "")
        #expect(layout.initrd == nil)
        let page = try memory.readBytes(at: X86Layout.zeroPage, count: 4096)
        #expect(F.u32(page, 0x218) == 0 && F.u32(page, 0x21C) == 0)
        #expect(try memory.read(UInt8.self, at: X86Layout.commandLine) == 0)
    }

    @Test func keepsTheInitrdBelowInitrdAddrMax() throws {
        var fixture = F.BzImage()
        fixture.initrdAddrMax = 0x1FF_FFFF                // 32 MiB - 1
        let memory = try F.memory(megabytes: 64)
        let layout = try LinuxBzImage(fixture.bytes).load(into: memory, commandLine: "x", initrd: [UInt8](repeating: 1, count: 5000))
        let range = try #require(layout.initrd)
        #expect(range.end <= 0x200_0000)
        #expect(range.base.rawValue == (0x200_0000 - 5000) & ~0xFFF)
    }

    @Test func refusesACommandLineLongerThanCmdlineSize() throws {
        var fixture = F.BzImage()
        fixture.cmdlineSize = 16
        let memory = try F.memory(megabytes: 32)
        let image = try LinuxBzImage(fixture.bytes)
        #expect(throws: LinuxBootError.commandLineTooLong(length: 17, limit: 16, limitSource: "this kernel's cmdline_size")) {
            try image.load(into: memory, commandLine: String(repeating: "a", count: 17))
        }
        _ = try image.load(into: memory, commandLine: String(repeating: "a", count: 16))
    }

    @Test func refusesAnInitrdTooLargeForMemory() throws {
        let memory = try F.memory(megabytes: 32)
        let image = try LinuxBzImage(F.BzImage().bytes)
        // The kernel occupies up to 24 MiB (runs at 16 MiB, init_size 8 MiB): 8 MiB remain.
        #expect(throws: LinuxBootError.initrdTooLarge(size: 9 << 20, kernelEnd: 0x180_0000, ceiling: 0x200_0000)) {
            try image.load(into: memory, commandLine: "", initrd: [UInt8](repeating: 0, count: 9 << 20))
        }
        // Nothing was written: the zero page is still blank.
        #expect(try memory.read(UInt32.self, at: GuestAddress(0x2202)) == 0)
        _ = try image.load(into: memory, commandLine: "", initrd: [UInt8](repeating: 0, count: 8 << 20))
    }

    @Test func refusesMemoryTooSmallForTheKernel() throws {
        let memory = try F.memory(megabytes: 20)
        let image = try LinuxBzImage(F.BzImage().bytes)
        #expect(throws: LinuxBootError.memoryTooSmall(needed: 0x180_0000, available: 20 << 20,
                                                      what: "the kernel (run at 0x1000000, init_size 8 MiB)")) {
            try image.load(into: memory, commandLine: "")
        }
    }

    @Test func placesTheInitrdBelow3GiBWhenMemoryGoesAbove4GiB() throws {
        let image = try LinuxBzImage(F.BzImage().bytes)
        let map = E820.map(ramRegions: X86Layout.ramLayout(size: 5 << 30).map { AddressRange(base: $0.base, length: $0.size)! })
        let layout = try image.plan(commandLineLength: 10, initrdSize: 1 << 20, memoryMap: map)
        // initrd_addr_max 0x7fffffff wins over the 3 GiB end of low RAM.
        #expect(layout.initrd == AddressRange(base: GuestAddress(0x8000_0000 - (1 << 20)), length: 1 << 20))
    }
}
