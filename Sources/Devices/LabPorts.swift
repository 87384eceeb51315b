// LabPorts: Swiftlet's learning-lab ports, a tiny paravirtual device for measurements.
//
// Port 0x440 (write, 4 bytes): a marker; the VMM timestamps it (the doctor's loops and the Linux init's
// boot-phase markers use it). Ports 0x441 and 0x442 (read, 4 bytes): parameters the VMM hands the guest
// (the doctor guest reads its CPL0 and CPL3 loop counts there). Nothing else is behind these ports.

public final class LabPorts: BusDevice, Sendable {
    public static let basePort: UInt64 = 0x440
    public static let length: UInt64 = 3
    private let parameters: [UInt32]
    private let onMarker: @Sendable (UInt32) -> Void

    public init(parameters: [UInt32], onMarker: @escaping @Sendable (UInt32) -> Void) {
        self.parameters = parameters
        self.onMarker = onMarker
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        guard offset >= 1, Int(offset - 1) < parameters.count else { return 0 }
        return UInt64(parameters[Int(offset - 1)])
    }

    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        offset == 0 ? BusRegister("MARKER", meaning: "lab marker: the VMM timestamps the value written")
            : BusRegister("PARAM\(offset - 1)", meaning: "lab parameter the VMM hands the guest")
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        if offset == 0 { onMarker(UInt32(truncatingIfNeeded: value)) }
    }
}
