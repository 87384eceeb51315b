// InstructionHint: names the x86 instructions that KVM's emulator is known to refuse, from their bytes.
//
// Not a disassembler: a table of opcode patterns (Intel SDM Vol. 2) for the instructions a VMM meets in
// emulation-failure reports, so the message can say "int3" instead of only "cc".
import GuestMemory

public enum InstructionHint {
    public static func mnemonic(_ bytes: [UInt8]) -> String? {
        var i = 0
        var rep = false
        // Skip legacy prefixes (operand size, address size, segment, lock); remember REP (F3).
        while i < bytes.count, [0x66, 0x67, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65, 0xF0, 0xF2, 0xF3].contains(bytes[i]) {
            if bytes[i] == 0xF3 { rep = true }
            i += 1
        }
        if i < bytes.count, bytes[i] & 0xF0 == 0x40 { i += 1 } // REX
        guard i < bytes.count else { return nil }
        let b = bytes[i]
        let next = i + 1 < bytes.count ? bytes[i + 1] : nil
        let third = i + 2 < bytes.count ? bytes[i + 2] : nil
        switch (b, next, third) {
        case (0xCC, _, _): return "int3"
        case (0xCD, let n?, _): return "int 0x\(hex(n, width: 2))"
        case (0xF4, _, _): return "hlt"
        case (0xCF, _, _): return "iret"
        case (0xFA, _, _): return "cli"
        case (0xFB, _, _): return "sti"
        case (0x0F, 0x0B, _): return "ud2"
        case (0x0F, 0x01, 0xCA): return "clac"
        case (0x0F, 0x01, 0xCB): return "stac"
        case (0x0F, 0x01, 0xD0): return "xgetbv"
        case (0x0F, 0x01, 0xD1): return "xsetbv"
        case (0x0F, 0xA2, _): return "cpuid"
        case (0x0F, 0x30, _): return "wrmsr"
        case (0x0F, 0x32, _): return "rdmsr"
        case (0x0F, 0x31, _): return "rdtsc"
        case (0x0F, 0x05, _): return "syscall"
        case (0x0F, 0xB8, _) where rep: return "popcnt"
        case (0x0F, 0xC7, let m?) where (m >> 3) & 7 == 1: return bytes.contains(where: { $0 & 0xF8 == 0x48 }) ? "cmpxchg16b" : "cmpxchg8b"
        case (0x0F, 0xAE, let m?) where m >> 6 != 3:
            switch (m >> 3) & 7 {
            case 0: return "fxsave"
            case 1: return "fxrstor"
            case 4: return "xsave"
            case 5: return "xrstor"
            case 6: return "xsaveopt"
            default: return nil
            }
        case (0xDB, 0xE2, _): return "fnclex"
        case (0xDB, 0xE3, _): return "fninit"
        default: return nil
        }
    }
}
