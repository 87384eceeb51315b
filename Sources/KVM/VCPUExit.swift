// VCPUExit: why KVM_RUN returned, decoded from the kvm_run area into a Swift enum.
//
// Each case corresponds to a KVM_EXIT_* reason (Documentation/virt/kvm/api.rst §5, "The kvm_run
// structure"). The I/O and MMIO cases carry a view of the data bytes inside the kvm_run page: for a guest
// read ("in", MMIO read) the VMM writes the answer there before the next KVM_RUN.

/// Port I/O exit (KVM_EXIT_IO).
public struct PortIOExit {
    public var port: UInt16
    public var isWrite: Bool
    /// Access size in bytes (1, 2 or 4).
    public var size: Int
    /// Repetitions for string instructions (`rep outsb`); usually 1.
    public var count: Int
    /// `size * count` bytes in the kvm_run page.
    public var data: UnsafeMutableRawBufferPointer
}

/// Memory-mapped I/O exit (KVM_EXIT_MMIO): the guest touched a guest-physical address with no RAM behind it.
public struct MMIOExit {
    public var address: UInt64
    public var isWrite: Bool
    public var data: UnsafeMutableRawBufferPointer
}

/// A debug exit (KVM_EXIT_DEBUG) while KVM_SET_GUEST_DEBUG is on: the guest hit a breakpoint KVM
/// intercepted, or finished a single step (struct kvm_debug_exit_arch).
public struct GuestDebugExit: Sendable, Equatable {
    /// The exception vector: 1 (#DB: single step, hardware breakpoint or watchpoint) or 3 (#BP: int3).
    public var exception: UInt32
    /// The guest's linear RIP when it stopped.
    public var pc: UInt64
    /// DR6 as KVM reports it: BS (bit 14) for a single step, B0-B3 (bits 0-3) for a debug register match.
    public var dr6: UInt64
    public var dr7: UInt64

    public init(exception: UInt32, pc: UInt64, dr6: UInt64, dr7: UInt64) {
        self.exception = exception; self.pc = pc; self.dr6 = dr6; self.dr7 = dr7
    }

    /// DR6.BS: the exit ends a single step.
    public var singleStep: Bool { dr6 & (1 << 14) != 0 }
    /// The debug registers (0-3) whose condition matched, from DR6.B0-B3.
    public var matchedDebugRegisters: [Int] { (0..<4).filter { dr6 & (1 << UInt64($0)) != 0 } }
}

public enum VCPUExit {
    case io(PortIOExit)
    case mmio(MMIOExit)
    /// The guest executed HLT (KVM_EXIT_HLT; only without an in-kernel irqchip).
    case halt
    /// Triple fault or other shutdown condition (KVM_EXIT_SHUTDOWN).
    case shutdown
    /// VM entry failed (KVM_EXIT_FAIL_ENTRY) with the hardware's reason code.
    case failEntry(reason: UInt64, cpu: UInt32)
    /// KVM could not continue (KVM_EXIT_INTERNAL_ERROR); suberror 1 is an emulation failure.
    case internalError(suberror: UInt32, data: [UInt64])
    /// Reset, shutdown or crash requested through PSCI/ACPI-like paths (KVM_EXIT_SYSTEM_EVENT).
    case systemEvent(type: UInt32)
    /// The exit reason could not be mapped by KVM (KVM_EXIT_UNKNOWN) with the hardware reason.
    case unknownHardware(reason: UInt64)
    /// KVM_SET_GUEST_DEBUG is on and the guest stopped for the debugger (KVM_EXIT_DEBUG).
    case debug(GuestDebugExit)
    /// KVM_RUN returned EINTR or EAGAIN (a signal or immediate_exit): check for pause or stop, then run again.
    case interrupted
    /// An exit reason Swiftlet does not handle.
    case unhandled(reason: UInt32)

    /// The KVM_EXIT_* name, for traces and reports.
    public var reasonName: String {
        switch self {
        case .io: "IO"
        case .mmio: "MMIO"
        case .halt: "HLT"
        case .shutdown: "SHUTDOWN"
        case .failEntry: "FAIL_ENTRY"
        case .internalError: "INTERNAL_ERROR"
        case .systemEvent: "SYSTEM_EVENT"
        case .unknownHardware: "UNKNOWN"
        case .debug: "DEBUG"
        case .interrupted: "INTR"
        case let .unhandled(reason): "exit \(reason)"
        }
    }
}

/// Emulation-failure suberror of KVM_EXIT_INTERNAL_ERROR (KVM_INTERNAL_ERROR_EMULATION).
public let internalErrorEmulation: UInt32 = 1
