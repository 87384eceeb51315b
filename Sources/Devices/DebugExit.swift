// DebugExit: QEMU's isa-debug-exit device, the guest's way to end the VM with a status.
//
// Writing value v to the port ends the VM with exit status (v << 1) | 1, exactly as QEMU's
// `-device isa-debug-exit,iobase=0xf4,iosize=4` does, so one guest binary reports its result under both.
// Swiftlet puts it at port 0xf4, four bytes wide. Reads return 0.

public final class DebugExit: BusDevice, Sendable {
    public static let defaultPort: UInt64 = 0xF4
    private let onExit: @Sendable (_ value: UInt32, _ status: Int32) -> Void

    public init(onExit: @escaping @Sendable (_ value: UInt32, _ status: Int32) -> Void) { self.onExit = onExit }

    /// The process exit status QEMU derives from a written value: (value << 1) | 1, truncated to 8 bits by the OS.
    public static func status(forValue value: UInt32) -> Int32 { Int32(truncatingIfNeeded: (value << 1) | 1) & 0xFF }

    public func read(offset: UInt64, size: Int) -> UInt64 { 0 }

    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        BusRegister("EXIT", meaning: "isa-debug-exit: a value written here ends the VM")
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        let v = UInt32(truncatingIfNeeded: value)
        onExit(v, Self.status(forValue: v))
    }
}
