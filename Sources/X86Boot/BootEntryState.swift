// BootEntryState: the register state a direct boot promises the kernel at its first instruction, as plain
// values the VMM converts to kvm_regs/kvm_sregs (X86Boot never imports KVM). Two protocols:
//
// - 64-bit Linux boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"): long mode with
//   paging on (CR0 = PE|ET|PG, CR4 = PAE, EFER = LME|LMA, CR3 = identity page tables from PageTables),
//   a GDT with flat 4 GiB code and data descriptors, interrupts off, RSI = the zero page, RIP = startup_64.
//   boot.rst names selectors __BOOT_CS 0x10 and __BOOT_DS 0x18; Swiftlet's BootGDT has its 64-bit code
//   at 0x18 and data at 0x20 instead. That is harmless: startup_64 loads zero into DS/ES/SS/FS/GS and
//   its own GDT and CS before using any selector (arch/x86/boot/compressed/head_64.S), which is also why
//   Firecracker's CS 0x08 works.
// - PVH (xen/include/public/arch-x86/hvm/start_info.h): 32-bit protected mode, paging off, CR0 = PE (ET
//   reads as 1 on every CPU since the i486), CR4 = 0, EFER = 0, flat 32-bit CS and DS/ES/SS, TR a 32-bit
//   TSS of limit 0x67, EFLAGS.IF/TF/VM clear, EBX = hvm_start_info, EIP = the PVH entry.
//
// Both use the BootGDT the VMM writes at X86Layout.gdt; segment registers carry the same descriptors, so
// the cached state and the GDT in memory agree.
import GuestMemory

public struct BootEntryState: Sendable, Equatable {
    /// A segment register: its selector and the descriptor the processor caches for it.
    public struct SegmentRegister: Sendable, Equatable {
        public var selector: UInt16
        public var descriptor: SegmentDescriptor
        public init(selector: UInt16, descriptor: SegmentDescriptor) {
            self.selector = selector; self.descriptor = descriptor
        }
    }

    public enum Mode: Sendable, Equatable {
        /// 64-bit long mode, paging on.
        case long64
        /// 32-bit protected mode, paging off.
        case protected32
    }

    // Control-register and EFER bits (Intel SDM Vol. 3A §2.5, §2.2.1).
    public static let cr0PE: UInt64 = 1 << 0
    public static let cr0ET: UInt64 = 1 << 4
    public static let cr0PG: UInt64 = 1 << 31
    public static let cr4PAE: UInt64 = 1 << 5
    public static let eferLME: UInt64 = 1 << 8
    public static let eferLMA: UInt64 = 1 << 10
    /// RFLAGS with only the always-one bit 1 set: interrupts off, no trap flag.
    public static let rflagsReserved: UInt64 = 1 << 1

    public var mode: Mode
    public var cs: SegmentRegister
    /// DS, ES, FS, GS and SS all hold this one.
    public var data: SegmentRegister
    public var tr: SegmentRegister
    public var gdtBase: GuestAddress
    public var gdtLimit: UInt16
    public var cr0: UInt64
    public var cr3: UInt64
    public var cr4: UInt64
    public var efer: UInt64
    public var rip: UInt64
    public var rsi: UInt64
    public var rbx: UInt64
    public var rflags: UInt64

    static func gdtEntry(_ selector: UInt16) -> SegmentRegister {
        SegmentRegister(selector: selector, descriptor: BootGDT.entries[Int(selector >> 3)])
    }

    /// Long-mode entry at startup_64 of a bzImage: RSI = zero page, CR3 = identity page tables.
    public static func linux64(entry: GuestAddress, zeroPage: GuestAddress, pageTableRoot cr3: UInt64) -> BootEntryState {
        BootEntryState(mode: .long64,
                       cs: gdtEntry(BootGDT.code64Selector), data: gdtEntry(BootGDT.data64Selector), tr: gdtEntry(BootGDT.tssSelector),
                       gdtBase: X86Layout.gdt, gdtLimit: BootGDT.limit,
                       cr0: cr0PE | cr0ET | cr0PG, cr3: cr3, cr4: cr4PAE, efer: eferLME | eferLMA,
                       rip: entry.rawValue, rsi: zeroPage.rawValue, rbx: 0, rflags: rflagsReserved)
    }

    /// 32-bit entry at a vmlinux's PVH entry: EBX = hvm_start_info, paging off.
    public static func pvh(entry: GuestAddress, startInfo: GuestAddress) -> BootEntryState {
        BootEntryState(mode: .protected32,
                       cs: gdtEntry(BootGDT.code32Selector), data: gdtEntry(BootGDT.data32Selector), tr: gdtEntry(BootGDT.tssSelector),
                       gdtBase: X86Layout.gdt, gdtLimit: BootGDT.limit,
                       cr0: cr0PE | cr0ET, cr3: 0, cr4: 0, efer: 0,
                       rip: entry.rawValue, rsi: 0, rbx: startInfo.rawValue, rflags: rflagsReserved)
    }

    /// One line for --verbose and `explain`.
    public var summary: String {
        switch mode {
        case .long64:
            "64-bit long mode, paging on (CR0=0x\(hex(cr0)) CR3=0x\(hex(cr3)) CR4=0x\(hex(cr4)) EFER=0x\(hex(efer))), CS=0x\(hex(cs.selector)) DS=0x\(hex(data.selector)), RIP=0x\(hex(rip)), RSI=0x\(hex(rsi)) (zero page), interrupts off (Linux boot.rst, 64-bit boot protocol)"
        case .protected32:
            "32-bit protected mode, paging off (CR0=0x\(hex(cr0))), CS=0x\(hex(cs.selector)) DS=0x\(hex(data.selector)), EIP=0x\(hex(rip)), EBX=0x\(hex(rbx)) (hvm_start_info), interrupts off (PVH, start_info.h)"
        }
    }
}
