// IRQTestDevice: the interrupt-line part of QEMU's pc-testdev (hw/misc/pc-testdev.c), so test kernels written
// for QEMU can drive the IOAPIC's pins from the guest: a one-byte write of V to port 0x2000 + N sets ISA/GSI
// line N (0-23) to level V != 0. kvm-unit-tests' x86 ioapic test raises and lowers its lines this way
// (lib/x86/apic.c, set_irq_line). Reads return 0. The device holds no state: the level lives in the irqchip.

public final class IRQTestDevice: BusDevice, Sendable {
    public static let basePort: UInt64 = 0x2000
    /// One port per IOAPIC pin (KVM_IOAPIC_NUM_PINS).
    public static let length: UInt64 = 24
    private let setLine: @Sendable (UInt32, Bool) -> Void

    /// `setLine(gsi, level)` raises or lowers a line (the VMM: KVM_IRQ_LINE).
    public init(setLine: @escaping @Sendable (UInt32, Bool) -> Void) { self.setLine = setLine }

    public func read(offset: UInt64, size: Int) -> UInt64 { 0 }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        guard offset < Self.length else { return }
        setLine(UInt32(offset), value & 0xFF != 0)
    }
}
