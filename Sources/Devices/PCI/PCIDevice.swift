// PCIDevice: what a device plugged into the PCI host bridge provides — the PCIFunction holding its
// configuration space, MSI-X table and INTx pin, and the registers behind its BARs.
//
// The host bridge sends configuration cycles to `pciFunction` (after offering them to the two optional
// hooks, for devices with configuration registers of their own, such as virtio's VIRTIO_PCI_CAP_PCI_CFG
// window) and BAR accesses through the MMIO window to `readBAR`/`writeBAR`, except those that fall in the
// MSI-X table or pending-bit array, which the function serves itself. Offsets are relative to the BAR's
// start, the way Bus devices see offsets into their range.

public protocol PCIDevice: AnyObject, Sendable {
    /// The generic PCI state of this device.
    var pciFunction: PCIFunction { get }

    /// A read of `size` (1, 2, 4, 8) bytes at `offset` into BAR `bar`.
    func readBAR(_ bar: Int, offset: UInt64, size: Int) -> UInt64
    /// A write of `size` bytes at `offset` into BAR `bar`.
    func writeBAR(_ bar: Int, offset: UInt64, size: Int, value: UInt64)

    /// Answers a configuration read instead of the function, or returns nil to let the function answer.
    /// Called before every configuration read that reaches this device; the default returns nil.
    func interceptConfigRead(offset: Int, size: Int) -> UInt32?
    /// Told after the function has applied a configuration write (`value` as the guest wrote it).
    /// The default does nothing.
    func didWriteConfig(offset: Int, size: Int, value: UInt32)
    /// The register at `offset` into BAR `bar`, for `--trace-exits` (see BusDevice.register); the default is nil.
    func barRegister(_ bar: Int, offset: UInt64, size: Int, isWrite: Bool) -> BusRegister?
}

extension PCIDevice {
    public func interceptConfigRead(offset: Int, size: Int) -> UInt32? { nil }
    public func didWriteConfig(offset: Int, size: Int, value: UInt32) {}
    public func barRegister(_ bar: Int, offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? { nil }
}
