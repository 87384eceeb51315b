// DebugExit: QEMU's isa-debug-exit device, the guest's way to end the VM with a status.
//
// Swiftlet puts it where QEMU's `-device isa-debug-exit,iobase=0xf4,iosize=4` sits: port 0xf4, four bytes
// wide; reads return 0. The written value v becomes the process's exit status by a rule (DebugExitRule):
// by default v itself, so a guest that writes 0 ends with 0 as a shell user expects (Firecracker and lkvm
// exit 0 too); `--qemu-exit-status` selects QEMU's (v << 1) | 1 for harnesses written for QEMU, where
// every guest-made status is odd and 0 never comes from the guest.

/// How a debug-exit value becomes the process exit status.
public enum DebugExitRule: String, Sendable {
    /// v itself; values above 255 end with 255 (a status is 8 bits, and 256 must not read as success).
    case value
    /// QEMU's isa-debug-exit: (v << 1) | 1, truncated to 8 bits by the OS.
    case qemu

    public func status(for value: UInt32) -> Int32 {
        switch self {
        case .value: value > 255 ? 255 : Int32(value)
        case .qemu: Int32(truncatingIfNeeded: (value << 1) | 1) & 0xFF
        }
    }
}

public final class DebugExit: BusDevice, Sendable {
    public static let defaultPort: UInt64 = 0xF4
    private let onExit: @Sendable (_ value: UInt32) -> Void

    public init(onExit: @escaping @Sendable (_ value: UInt32) -> Void) { self.onExit = onExit }

    public func read(offset: UInt64, size: Int) -> UInt64 { 0 }

    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        BusRegister("EXIT", meaning: "isa-debug-exit: a value written here ends the VM")
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        onExit(UInt32(truncatingIfNeeded: value))
    }
}
