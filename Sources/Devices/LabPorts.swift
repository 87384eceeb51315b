// LabPorts: Swiftlet's learning-lab ports, a tiny paravirtual device for measurements.
//
// Port 0x440 (write, 4 bytes): a marker; the VMM timestamps it (the doctor's loops and the Linux init's
// boot-phase markers use it). Ports 0x441 and 0x442 (read, 4 bytes): parameters the VMM hands the guest
// (the doctor guest reads its CPL0 and CPL3 loop counts there). Port 0x443 (read): the signal mailbox, the
// number of a signal the VMM was sent for the guest's command (`--forward-signals`), 0 when none; reading
// takes it. The minimal Linux's init polls it while the command runs and sends the command that signal
// (guest/linux/init.c), which is how `swiftlet-vm kill` reaches a process inside a VM. Nothing else is
// behind these ports.
import Synchronization

public final class LabPorts: BusDevice, Sendable {
    public static let basePort: UInt64 = 0x440
    public static let length: UInt64 = 4
    public static let signalMailboxOffset: UInt64 = 3
    private let parameters: [UInt32]
    private let onMarker: @Sendable (UInt32) -> Void
    private let pendingSignal = Mutex<UInt8>(0)

    /// Leaves `signal` for the guest; false while an earlier one is still there (the guest is not taking them).
    public func post(signal: Int32) -> Bool {
        pendingSignal.withLock { pending in
            guard pending == 0, signal > 0, signal < 65 else { return false }
            pending = UInt8(signal)
            return true
        }
    }

    /// The signal waiting for the guest, 0 when none.
    public var waitingSignal: UInt8 { pendingSignal.withLock { $0 } }

    public init(parameters: [UInt32], onMarker: @escaping @Sendable (UInt32) -> Void) {
        self.parameters = parameters
        self.onMarker = onMarker
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        if offset == Self.signalMailboxOffset {
            return UInt64(pendingSignal.withLock { pending in defer { pending = 0 }; return pending })
        }
        guard offset >= 1, Int(offset - 1) < parameters.count else { return 0 }
        return UInt64(parameters[Int(offset - 1)])
    }

    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        switch offset {
        case 0: BusRegister("MARKER", meaning: "lab marker: the VMM timestamps the value written")
        case Self.signalMailboxOffset: BusRegister("SIGNAL", meaning: "signal mailbox: a signal the VMM was sent for the guest's command (0: none); reading takes it")
        default: BusRegister("PARAM\(offset - 1)", meaning: "lab parameter the VMM hands the guest")
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        if offset == 0 { onMarker(UInt32(truncatingIfNeeded: value)) }
    }
}
