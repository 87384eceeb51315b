// The register file's g-packet layout and target.xml agree with gdb's amd64 numbering.
import GDBRemote
import Testing

struct X86RegistersTests {
    @Test func theFirst57RegistersAreGDBsAMD64Numbering() {
        let names = X86Registers.layout.map(\.name)
        #expect(names[0..<8] == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"])
        #expect(names[16] == "rip" && names[17] == "eflags" && names[18] == "cs" && names[23] == "gs")
        #expect(names[24] == "st0" && names[32] == "fctrl" && names[39] == "fop" && names[40] == "xmm0" && names[56] == "mxcsr")
        #expect(names[57...] == ["fs_base", "gs_base", "k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"])
        #expect(X86Registers.packetBytes == 16 * 8 + 8 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 2 * 8 + 7 * 8)
    }

    @Test func encodingRoundTrips() {
        var r = X86Registers()
        r.generalPurpose[7] = 0x7FFF_F000
        r.rip = 0xFFFF_FFFF_82F6_B3E0
        r.rflags = 0x246
        r.segmentSelectors = [0x10, 0x18, 0x18, 0x18, 0, 0]
        r.cr3 = 0x1000
        r.xmm[3] = Array(0..<16)
        r.x87[7] = Array(repeating: 0xAB, count: 10)
        let bytes = r.encoded()
        #expect(bytes.count == X86Registers.packetBytes)
        #expect(X86Registers.decode(bytes) == r)
        #expect(X86Registers.decode(Array(bytes.dropLast())) == nil)
        #expect(r.value(of: X86Registers.Number.rip) == [0xE0, 0xB3, 0xF6, 0x82, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(r.value(of: 66) == nil)
    }

    @Test func settingEflagsKeepsTheUpperHalfOfRFLAGS() {
        var r = X86Registers()
        r.rflags = 0xFFFF_FFFF_0000_0002
        let set = r.set(X86Registers.Number.eflags, to: [0x46, 0x02, 0, 0])
        #expect(set)
        #expect(r.rflags == 0xFFFF_FFFF_0000_0246)
        let short = r.set(X86Registers.Number.eflags, to: [0x46])
        let unknown = r.set(-1, to: [])
        #expect(!short && !unknown)
    }

    @Test func theTargetDescriptionNamesEveryRegisterOnceInOrder() {
        let xml = X86Registers.targetDescription
        #expect(xml.contains("<architecture>i386:x86-64</architecture>"))
        for feature in ["org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.segments", "org.swiftlet.x86.system"] {
            #expect(xml.contains("<feature name=\"\(feature)\">"))
        }
        for (number, info) in X86Registers.layout.enumerated() {
            #expect(xml.contains("<reg name=\"\(info.name)\" bitsize=\"\(info.bits)\" type=\"\(info.type)\" regnum=\"\(number)\""))
        }
        // Every type a register names is gdb's own or defined in the document.
        let builtin: Set = ["int", "int32", "int64", "data_ptr", "code_ptr", "i387_ext"]
        for type in Set(X86Registers.layout.map(\.type)).subtracting(builtin) {
            #expect(xml.contains("id=\"\(type)\""), "type \(type) is not defined")
        }
    }
}
