// Fixtures for the Linux boot tests: a synthetic bzImage (boot sector + setup header + setup sectors +
// a patterned protected-mode kernel), a synthetic ELF64 vmlinux with PT_NOTE and PT_LOAD segments,
// little-endian readers, and guest memory laid out like the VMM's.
import Glibc
import GuestMemory
@testable import X86Boot

enum LinuxFixtures {
    static func le16(_ v: UInt16) -> [UInt8] { (0..<2).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    static func set<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ at: Int, _ value: T) {
        for i in 0..<MemoryLayout<T>.size { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    static func u8(_ b: [UInt8], _ at: Int) -> UInt8 { b[at] }
    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(u16(b, at)) | UInt32(u16(b, at + 2)) << 16 }
    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(u32(b, at)) | UInt64(u32(b, at + 4)) << 32 }

    /// Guest RAM as the VMM maps it for `megabytes` MiB.
    static func memory(megabytes: UInt64) throws -> GuestMemory {
        try GuestMemory(layout: X86Layout.ramLayout(size: megabytes << 20))
    }

    /// A bzImage header with the fields a 6.1 x86-64 kernel has, and a knob for each check.
    struct BzImage {
        var setupSects: UInt8 = 0          // 0 means 4
        var bootFlag: UInt16 = 0xAA55
        var magic: UInt32 = 0x5372_6448    // "HdrS"
        var version: UInt16 = 0x020F
        var headerEnd = 0x26C              // 2.15's header
        var loadflags: UInt8 = 0x01        // LOADED_HIGH
        var xloadflags: UInt16 = 0x0B      // KERNEL_64 | CAN_BE_LOADED_ABOVE_4G | EFI_HANDOVER_64
        var relocatable: UInt8 = 1
        var kernelAlignment: UInt32 = 0x20_0000
        var prefAddress: UInt64 = 0x100_0000
        var initSize: UInt32 = 0x80_0000
        var initrdAddrMax: UInt32 = 0x7FFF_FFFF
        var cmdlineSize: UInt32 = 2047
        var payloadSize = 0x2000

        /// The byte at offset `i` of the protected-mode kernel.
        static func payloadByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 7 &+ 3) }

        var bytes: [UInt8] {
            let sectors = setupSects == 0 ? 4 : Int(setupSects)
            var b = [UInt8](repeating: 0, count: (sectors + 1) * 512)
            b[0x1F1] = setupSects
            set(&b, 0x1F4, UInt32(payloadSize / 16))       // syssize
            set(&b, 0x1FA, UInt16(0xFFFF))                 // vid_mode: normal
            set(&b, 0x1FE, bootFlag)
            b[0x200] = 0xEB                                // jmp short
            b[0x201] = UInt8(headerEnd - 0x202)
            set(&b, 0x202, magic)
            set(&b, 0x206, version)
            set(&b, 0x20E, UInt16(0x3C0))                  // kernel_version string offset
            b[0x211] = loadflags
            set(&b, 0x214, UInt32(0x10_0000))              // code32_start
            set(&b, 0x22C, initrdAddrMax)
            set(&b, 0x230, kernelAlignment)
            b[0x234] = relocatable
            b[0x235] = 21                                  // min_alignment
            set(&b, 0x236, xloadflags)
            set(&b, 0x238, cmdlineSize)
            set(&b, 0x258, prefAddress)
            set(&b, 0x260, initSize)
            set(&b, 0x264, UInt32(0x190))                  // handover_offset
            return b + (0..<payloadSize).map(Self.payloadByte)
        }
    }

    /// An ELF64 x86-64 executable: PT_NOTE segment with `notes`, then one PT_LOAD of `code` at `loadAddress`
    /// (plus `bss` zeroed bytes), e_entry at the start of the code.
    static func vmlinux(notes: [(name: String, type: UInt32, descriptor: [UInt8])], code: [UInt8],
                        loadAddress: UInt64 = 0x100_0000, bss: UInt64 = 0x3000) -> [UInt8] {
        var noteBytes: [UInt8] = []
        for note in notes {
            let name = Array(note.name.utf8) + [0]
            noteBytes += le32(UInt32(name.count)) + le32(UInt32(note.descriptor.count)) + le32(note.type)
            noteBytes += name + [UInt8](repeating: 0, count: (4 - name.count % 4) % 4)
            noteBytes += note.descriptor + [UInt8](repeating: 0, count: (4 - note.descriptor.count % 4) % 4)
        }
        let phnum = 2
        let notesOffset = 64 + 56 * phnum
        let codeOffset = (notesOffset + noteBytes.count + 15) & ~15
        var elf: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        elf += le16(2) + le16(62) + le32(1)
        elf += le64(0xFFFF_FFFF_8100_0000)                 // e_entry: the virtual startup_64, unused by PVH
        elf += le64(64) + le64(0) + le32(0)                // e_phoff, e_shoff, e_flags
        elf += le16(64) + le16(56) + le16(UInt16(phnum)) + le16(64) + le16(0) + le16(0)
        // PT_NOTE
        elf += le32(4) + le32(4) + le64(UInt64(notesOffset)) + le64(0) + le64(0)
            + le64(UInt64(noteBytes.count)) + le64(UInt64(noteBytes.count)) + le64(4)
        // PT_LOAD: virtual address in the kernel map, physical at loadAddress.
        elf += le32(1) + le32(7) + le64(UInt64(codeOffset)) + le64(0xFFFF_FFFF_8000_0000 + loadAddress) + le64(loadAddress)
            + le64(UInt64(code.count)) + le64(UInt64(code.count) + bss) + le64(0x20_0000)
        elf += noteBytes
        elf += [UInt8](repeating: 0, count: codeOffset - elf.count)
        return elf + code
    }

    static func pvhNote(_ entry: UInt64) -> (name: String, type: UInt32, descriptor: [UInt8]) {
        ("Xen", 18, le64(entry))
    }
}
