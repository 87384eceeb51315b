// I8042: the PC keyboard controller, reduced to what a VMM needs: the CPU-reset line.
//
// Linux's `reboot=k` (and many firmwares) reset the machine by writing command 0xFE ("pulse output line
// 0", wired to the CPU's RESET#) to the command port 0x64. The device answers status reads with 0 (no
// data, input buffer empty) so the kernel's wait loops end at once, and reports the reset to the VMM.
// Placed at ports 0x60-0x64 (offset 0 = data port 0x60, offset 4 = status/command port 0x64).

public final class I8042: BusDevice, Sendable {
    public static let basePort: UInt64 = 0x60
    public static let commandOffset: UInt64 = 4
    public static let resetCommand: UInt64 = 0xFE
    private let onReset: @Sendable () -> Void

    public init(onReset: @escaping @Sendable () -> Void) { self.onReset = onReset }

    public func read(offset: UInt64, size: Int) -> UInt64 { 0 }

    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        switch offset {
        case 0: BusRegister("DATA", meaning: "i8042 data port (0x60)")
        case Self.commandOffset where isWrite: BusRegister("CMD", meaning: "i8042 command register (0x64): 0xFE pulses the CPU's reset line")
        case Self.commandOffset: BusRegister("STATUS", meaning: "i8042 status register (0x64): 0, nothing to read and room to write")
        default: nil // 0x61-0x63: not the i8042's (port 0x61 is the PC's system control port B)
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        if offset == Self.commandOffset && value & 0xFF == Self.resetCommand { onReset() }
    }
}
