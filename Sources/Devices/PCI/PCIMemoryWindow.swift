// PCIMemoryWindow: the MMIO side of the PCI host bridge — one BusDevice over the whole BAR window
// (X86Layout.pciMemoryWindow), which sends each access to the device whose BAR decodes that address now.
//
// Real host bridges work the same way: the chipset claims a window of physical addresses for PCI and the
// devices on the bus decode their BARs inside it. Because the window is one fixed Bus entry, the guest can
// move BARs while vCPUs run without the MMIO bus changing. Accesses inside the window that no BAR decodes
// read all ones and drop writes, as a master abort does; accesses to a BAR's MSI-X table or pending-bit
// array are served by its PCIFunction, the rest by the device.

public final class PCIMemoryWindow: BusDevice, Sendable {
    public let bridge: PCIHostBridge

    init(bridge: PCIHostBridge) { self.bridge = bridge }

    /// The guest-physical base to insert this device at on the MMIO bus, and its length.
    public var base: UInt64 { bridge.window.base }
    public var length: UInt64 { bridge.window.length }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        guard let (device, bar, barOffset) = bridge.decode(base &+ offset) else {
            return size >= 8 ? UInt64.max : (UInt64(1) << (8 * UInt64(size))) - 1
        }
        if let value = device.pciFunction.readMSIX(bar: bar, offset: barOffset, size: size) { return value }
        return device.readBAR(bar, offset: barOffset, size: size)
    }

    /// The function and BAR the address decodes to now, with the device's own name for the register there.
    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        guard let (function, device, bar, barOffset) = bridge.decodeWithAddress(base &+ offset) else {
            return BusRegister("no BAR", detail: "master abort: reads all ones")
        }
        let place = "\(function) BAR \(bar) +0x\(String(barOffset, radix: 16))"
        if let msix = device.pciFunction.msixRegisterName(bar: bar, offset: barOffset) { return BusRegister(msix, detail: place) }
        guard let own = device.barRegister(bar, offset: barOffset, size: size, isWrite: isWrite) else { return BusRegister(place) }
        return BusRegister(own.name, meaning: own.meaning, detail: own.detail.map { "\(place) \($0)" } ?? place)
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        guard let (device, bar, barOffset) = bridge.decode(base &+ offset) else { return }
        if device.pciFunction.writeMSIX(bar: bar, offset: barOffset, size: size, value: value) { return }
        device.writeBAR(bar, offset: barOffset, size: size, value: value)
    }
}
