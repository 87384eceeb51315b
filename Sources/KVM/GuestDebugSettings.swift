// GuestDebugSettings: what KVM_SET_GUEST_DEBUG asks of KVM for one vCPU, as a value.
//
// `control` is the KVM_GUESTDBG_* bit set (Documentation/virt/kvm/api.rst §4.57 "KVM_SET_GUEST_DEBUG"):
// ENABLE turns guest debugging on; SINGLESTEP makes KVM_RUN return KVM_EXIT_DEBUG after each instruction;
// USE_SW_BP intercepts #BP (int3) into the VMM instead of the guest; USE_HW_BP arms DR0-DR3 as DR7 says.
// The debug registers are the debugger's, not the guest's (x86: struct kvm_guest_debug_arch, DR0-DR7 with
// DR4/DR5 unused). DR7's layout is Intel SDM Vol. 3B §18.2.4.
import CKVM

public struct GuestDebugSettings: Sendable, Equatable {
    public var control: UInt32
    /// DR0-DR3 (addresses), DR4, DR5 (unused), DR6, DR7 (enables, conditions, lengths).
    public var debugRegisters: [UInt64]

    public init(control: UInt32 = 0, debugRegisters: [UInt64] = [UInt64](repeating: 0, count: 8)) {
        self.control = control
        self.debugRegisters = debugRegisters
    }

    /// Guest debugging off: what a vCPU has until a debugger asks for more.
    public static let off = GuestDebugSettings()

    /// KVM_GUESTDBG_ENABLE.
    public static let enable = UInt32(KVM_GUESTDBG_ENABLE)
    /// KVM_GUESTDBG_SINGLESTEP.
    public static let singleStep = UInt32(KVM_GUESTDBG_SINGLESTEP)
    /// KVM_GUESTDBG_USE_SW_BP.
    public static let useSoftwareBreakpoints = UInt32(KVM_GUESTDBG_USE_SW_BP)
    /// KVM_GUESTDBG_USE_HW_BP.
    public static let useHardwareBreakpoints = UInt32(KVM_GUESTDBG_USE_HW_BP)
    /// KVM_GUESTDBG_BLOCKIRQ: no interrupt is injected while single-stepping (Linux 5.15+; listed by
    /// KVM_CAP_SET_GUEST_DEBUG2), so a step does not land in an interrupt handler.
    public static let blockInterrupts = UInt32(KVM_GUESTDBG_BLOCKIRQ)
}
