// Tests for the PVH loader: finding XEN_ELFNOTE_PHYS32_ENTRY among other notes, loading a synthetic
// ELF64 vmlinux at its physical addresses, and hvm_start_info with its module list and memory map.
import GuestMemory
import Testing
@testable import X86Boot

@Suite struct PVHNoteTests {
    typealias F = LinuxFixtures

    @Test func findsTheEntryAmongOtherNotes() throws {
        let elf = F.vmlinux(notes: [
            ("GNU", 3, [UInt8](repeating: 0xAB, count: 20)),      // a build id
            ("Xen", 1, F.le64(0xFFFF_FFFF_8100_0000)),           // XEN_ELFNOTE_ENTRY: not ours
            ("Linux", 18, F.le64(0xDEAD)),                       // type 18 with another owner
            F.pvhNote(0x100_0010),
        ], code: [UInt8](repeating: 0x90, count: 64))
        let kernel = try PVHKernel(elf)
        #expect(kernel.entry == GuestAddress(0x100_0010))
    }

    @Test func acceptsAFourByteEntry() throws {
        let elf = F.vmlinux(notes: [("Xen", 18, F.le32(0x100_0004))], code: [UInt8](repeating: 0x90, count: 16))
        #expect(try PVHKernel(elf).entry == GuestAddress(0x100_0004))
    }

    @Test func refusesAnELFWithoutAPVHNote() {
        let elf = F.vmlinux(notes: [("GNU", 3, [1, 2, 3, 4])], code: [0x90])
        #expect(throws: LinuxBootError.noPVHNote) { try PVHKernel(elf) }
        #expect(LinuxBootError.noPVHNote.description == "ELF without a PVH note: use the bzImage, or build with CONFIG_PVH=y")
    }

    @Test func refusesAnEntryAbove4GiB() {
        let elf = F.vmlinux(notes: [F.pvhNote(0x1_0000_0000)], code: [0x90])
        #expect(throws: LinuxBootError.badPVHNote("the entry 0x100000000 is above 4 GiB, out of reach of 32-bit code")) { try PVHKernel(elf) }
    }

    @Test func passesELFErrorsThrough() {
        #expect(throws: LinuxBootError.elf(.notELF)) { try PVHKernel(Array("MZ not an ELF".utf8)) }
    }
}

@Suite struct PVHLoadTests {
    typealias F = LinuxFixtures
    static let code = (0..<0x1800).map { UInt8(truncatingIfNeeded: $0 * 5 + 1) }

    @Test func loadsSegmentsCommandLineInitrdAndStartInfo() throws {
        let memory = try F.memory(megabytes: 64)
        // Dirty the BSS first: the loader must zero it.
        try memory.write(bytes: [UInt8](repeating: 0xEE, count: 0x3000), at: GuestAddress(0x100_1800))
        let kernel = try PVHKernel(F.vmlinux(notes: [F.pvhNote(0x100_0020)], code: Self.code))
        let initrd = [UInt8](repeating: 0x42, count: 12_345)
        let layout = try kernel.load(into: memory, commandLine: "console=ttyS0", initrd: initrd)

        #expect(layout.entry == GuestAddress(0x100_0020))
        #expect(layout.segments == [AddressRange(base: GuestAddress(0x100_0000), length: 0x1800 + 0x3000)!])
        #expect(try memory.readBytes(at: GuestAddress(0x100_0000), count: Self.code.count) == Self.code)
        #expect(try memory.readBytes(at: GuestAddress(0x100_1800), count: 0x3000).allSatisfy { $0 == 0 })
        #expect(try memory.readBytes(at: X86Layout.commandLine, count: 14) == Array("console=ttyS0".utf8) + [0])
        let range = try #require(layout.initrd)
        #expect(range.base.rawValue == ((64 << 20) - 12_345) & ~0xFFF)
        #expect(try memory.readBytes(at: range.base, count: initrd.count) == initrd)

        // hvm_start_info at 0x3000.
        #expect(layout.startInfo == X86Layout.pvhStartInfo)
        let info = try memory.readBytes(at: X86Layout.pvhStartInfo, count: 4096)
        #expect(F.u32(info, 0) == 0x336E_C578)            // magic "xEn3"
        #expect(F.u32(info, 4) == 1)                      // version
        #expect(F.u32(info, 8) == 0)                      // flags
        #expect(F.u32(info, 12) == 1)                     // nr_modules
        #expect(F.u64(info, 16) == 0x3040)                // modlist_paddr
        #expect(F.u64(info, 24) == 0x4000)                // cmdline_paddr
        #expect(F.u64(info, 32) == 0)                     // rsdp_paddr
        #expect(F.u64(info, 40) == 0x3060)                // memmap_paddr
        #expect(F.u32(info, 48) == 3)                     // memmap_entries
        #expect(F.u32(info, 52) == 0)                     // reserved
        // hvm_modlist_entry for the initrd.
        #expect(F.u64(info, 0x40) == range.base.rawValue)
        #expect(F.u64(info, 0x48) == 12_345)
        #expect(F.u64(info, 0x50) == 0 && F.u64(info, 0x58) == 0)
        // hvm_memmap_table_entry × 3, the same map as the zero page's e820.
        let entries = (0..<3).map { i in (F.u64(info, 0x60 + 24 * i), F.u64(info, 0x68 + 24 * i), F.u32(info, 0x70 + 24 * i), F.u32(info, 0x74 + 24 * i)) }
        #expect(entries[0] == (0, 0x9_FC00, 1, 0))
        #expect(entries[1] == (0x9_FC00, 0x6_0400, 2, 0))
        #expect(entries[2] == (0x10_0000, (64 << 20) - 0x10_0000, 1, 0))

        #expect(layout.placements.map(\.range.base) == layout.placements.map(\.range.base).sorted())
        #expect(layout.placements.contains { $0.what.contains("PVH entry 0x1000020") })
    }

    @Test func withoutAnInitrdThereAreNoModules() throws {
        let memory = try F.memory(megabytes: 32)
        let layout = try PVHKernel(F.vmlinux(notes: [F.pvhNote(0x100_0000)], code: Self.code)).load(into: memory, commandLine: "")
        #expect(layout.initrd == nil)
        #expect(try memory.read(UInt32.self, at: GuestAddress(0x300C)) == 0)   // nr_modules
        #expect(try memory.read(UInt64.self, at: GuestAddress(0x3010)) == 0)   // modlist_paddr
        #expect(try memory.read(UInt64.self, at: GuestAddress(0x3028)) == 0x3040) // memmap right after the header
    }

    @Test func refusesSegmentsOutsideMemory() throws {
        let memory = try F.memory(megabytes: 16)
        let kernel = try PVHKernel(F.vmlinux(notes: [F.pvhNote(0x100_0000)], code: Self.code, bss: 0))
        #expect(throws: LinuxBootError.memoryTooSmall(needed: 0x100_1800, available: 16 << 20, what: "vmlinux segment 1 at 0x1000000")) {
            try kernel.load(into: memory, commandLine: "")
        }
    }

    @Test func refusesSegmentsOverTheBootStructures() throws {
        let memory = try F.memory(megabytes: 16)
        let kernel = try PVHKernel(F.vmlinux(notes: [F.pvhNote(0x8000)], code: Self.code, loadAddress: 0x8000, bss: 0))
        #expect(throws: LinuxBootError.segmentOverlapsBootArea(index: 1, start: 0x8000, end: 0x9800)) {
            try kernel.load(into: memory, commandLine: "")
        }
    }

    @Test func refusesAnEntryOutsideTheSegments() throws {
        let memory = try F.memory(megabytes: 32)
        let kernel = try PVHKernel(F.vmlinux(notes: [F.pvhNote(0x180_0000)], code: Self.code))
        #expect(throws: LinuxBootError.elf(.entryNotLoaded(0x180_0000))) { try kernel.load(into: memory, commandLine: "") }
    }

    @Test func refusesAnInitrdTooLargeAndALongCommandLine() throws {
        let memory = try F.memory(megabytes: 32)
        let kernel = try PVHKernel(F.vmlinux(notes: [F.pvhNote(0x100_0000)], code: Self.code))
        #expect(throws: LinuxBootError.initrdTooLarge(size: 31 << 20, kernelEnd: 0x100_4800, ceiling: 32 << 20)) {
            try kernel.load(into: memory, commandLine: "", initrd: [UInt8](repeating: 0, count: 31 << 20))
        }
        #expect(throws: LinuxBootError.commandLineTooLong(length: 2048, limit: 2047, limitSource: "Linux's COMMAND_LINE_SIZE on x86")) {
            try kernel.load(into: memory, commandLine: String(repeating: "x", count: 2048))
        }
    }

    @Test func encodesStartInfoWithSeveralModules() {
        let modules = [AddressRange(base: GuestAddress(0x200_0000), length: 0x1000)!, AddressRange(base: GuestAddress(0x300_0000), length: 0x2000)!]
        let block = HVMStartInfo.encode(at: GuestAddress(0x3000), commandLine: nil, modules: modules, memoryMap: [])
        #expect(block.count == 64 + 2 * 32)
        #expect(F.u32(block, 12) == 2)
        #expect(F.u64(block, 24) == 0)                    // no command line
        #expect(F.u64(block, 40) == 0 && F.u32(block, 48) == 0)
        #expect(F.u64(block, 0x60) == 0x300_0000 && F.u64(block, 0x68) == 0x2000)
    }
}
