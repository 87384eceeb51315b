// ProtectedModeIRET: the state a 32-bit IRET to the same privilege level leaves, computed without KVM so the
// VMM can finish the instruction when KVM's emulator cannot.
//
// Why: Linux's x86 instruction emulator implements IRET in real mode only (em_iret in
// arch/x86/kvm/emulate.c returns X86EMUL_UNHANDLEABLE for every protected mode). On kvm_pvm a guest's ring-0
// code runs in that emulator, so every interrupt handler of a 32-bit protected-mode kernel (a multiboot
// teaching kernel's `iret`) ends KVM_RUN with an emulation failure; QEMU stops there too. Long-mode IRETQ
// is not affected (kvm_pvm handles it itself).
//
// What is finished (Intel SDM Vol. 2A, "IRET/IRETD", protected-mode RETURN-TO-SAME-PRIVILEGE-LEVEL):
// 32-bit operand size, EFLAGS.NT = 0 and VM = 0 before, pop EIP, CS, EFLAGS from SS:ESP; the popped CS must
// name a present code segment with RPL = CPL (non-conforming: DPL = RPL; conforming: DPL <= RPL), the popped
// EFLAGS must not set VM. Which EFLAGS bits change depends on the privilege: IOPL, VIF and VIP only at CPL 0,
// IF only when CPL <= IOPL. Everything else (task return, return to virtual-8086 mode or to an outer
// privilege level, a selector that would fault) is refused: the VM then stops with the emulation failure,
// as before.
import X86Boot

public enum ProtectedModeIRET {
    /// What the processor holds when the IRET starts.
    public struct Before: Sendable, Equatable {
        public var cpl: UInt8
        public var eflags: UInt32
        public var esp: UInt32
        /// CS.D: 32-bit default operand size.
        public var codeIs32Bit: Bool
        public init(cpl: UInt8, eflags: UInt32, esp: UInt32, codeIs32Bit: Bool) {
            self.cpl = cpl; self.eflags = eflags; self.esp = esp; self.codeIs32Bit = codeIs32Bit
        }
    }

    /// What the processor holds after it.
    public struct After: Sendable, Equatable {
        public var eip: UInt32
        public var cs: UInt16
        public var csDescriptor: SegmentDescriptor
        public var eflags: UInt32
        public var esp: UInt32
    }

    // EFLAGS bits (SDM Vol. 1 §3.4.3).
    static let nt: UInt32 = 1 << 14
    static let vm: UInt32 = 1 << 17
    static let `if`: UInt32 = 1 << 9
    static let iopl: UInt32 = 3 << 12
    static let vifVIP: UInt32 = 3 << 19
    /// CF PF AF ZF SF TF DF OF NT RF AC ID: what a 32-bit IRET loads at any privilege level.
    static let alwaysLoaded: UInt32 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | nt | 1 << 16 | 1 << 18 | 1 << 21

    /// The state after `iret` (opcode CF, no operand-size prefix), or nil when it is not a 32-bit
    /// same-privilege return this finisher may complete. `stack(offset)` reads the dword at SS:ESP+offset
    /// (nil: not readable); `descriptor(selector)` reads the GDT or LDT entry the selector names.
    public static func returnState(_ before: Before, stack: (UInt32) -> UInt32?,
                                   descriptor: (UInt16) -> SegmentDescriptor?) -> After? {
        guard before.codeIs32Bit, before.eflags & (nt | vm) == 0,
              let eip = stack(0), let csWord = stack(4), let popped = stack(8) else { return nil }
        let cs = UInt16(truncatingIfNeeded: csWord)
        let rpl = UInt8(cs & 3)
        guard popped & vm == 0, rpl == before.cpl, cs & ~7 != 0 || cs & 4 != 0,
              let d = descriptor(cs), d.present, d.codeOrData, d.type & 0x8 != 0 else { return nil }
        let conforming = d.type & 0x4 != 0
        guard conforming ? d.privilegeLevel <= rpl : d.privilegeLevel == rpl, eip <= d.byteLimit else { return nil }
        var mask = alwaysLoaded
        if before.cpl == 0 { mask |= iopl | vifVIP }
        if UInt32(before.cpl) <= (before.eflags & iopl) >> 12 { mask |= `if` }
        let eflags = (before.eflags & ~mask) | (popped & mask) | 0x2
        return After(eip: eip, cs: cs, csDescriptor: d, eflags: eflags, esp: before.esp &+ 12)
    }
}
