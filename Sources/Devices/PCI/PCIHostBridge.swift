// PCIHostBridge: bus 0 of a PCI hierarchy as the CPU sees it — configuration mechanism #1 on I/O ports
// 0xCF8-0xCFF, the host bridge function itself at 00:00.0, up to 31 device slots, and the memory window
// through which BAR accesses reach the devices (PCIMemoryWindow).
//
// Configuration mechanism #1 (PCI Local Bus Specification 3.0 §3.2.2.3.2): software writes a dword to
// CONFIG_ADDRESS (0xCF8) naming bus, device, function and dword, then reads or writes CONFIG_DATA
// (0xCFC-0xCFF) with a 1-, 2- or 4-byte access at the byte it wants within that dword:
//   outl(0x80000000 | bus << 16 | device << 11 | function << 8 | (offset & 0xFC), 0xCF8)
//   inw(0xCFC + (offset & 3))                  // the 16 bits at `offset`
// Rules kept here: only 32-bit accesses at 0xCF8 reach CONFIG_ADDRESS (other sizes are not configuration
// accesses: reads return all ones, writes are dropped); with the enable bit clear, or for a bus other than 0,
// a function other than 0 or an empty slot, CONFIG_DATA reads return all ones (a master abort) and writes are
// dropped; an access that crosses the dword reads all ones, and so does one past the 256 bytes a function has
// (reachable through AMD's extended CONFIG_ADDRESS bits 27:24: Linux then finds no extended space). Linux probes exactly this (pci_check_type1 in
// arch/x86/pci/direct.c: CONFIG_ADDRESS must read back 0x80000000, then a host bridge or VGA class must
// answer), so the host bridge reports class 0x0600.
//
// The host bridge's IDs are 0x8086:0x0D57, the pair Cloud Hypervisor gives its virtual host bridge (EDK2's
// Cloud Hypervisor platform code knows it by that device ID). The function has no BARs and needs no driver.
//
// BAR moves: devices decode their BARs wherever the guest puts them; after every configuration write the
// bridge compares what each function decodes and reports each change (`PCIBARChange`) to the VMM, which
// re-registers what depends on an address (ioeventfds on a notification BAR). The MMIO bus itself never
// changes: one PCIMemoryWindow covers the whole window and looks BARs up here.
import Synchronization

/// A BAR appearing, disappearing or moving: `old` and `new` are where it was and is decoded (nil: not decoded).
public struct PCIBARChange: Equatable, Sendable, CustomStringConvertible {
    public let address: PCIAddress
    public let bar: Int
    public let old: PCIMemoryRange?
    public let new: PCIMemoryRange?

    public init(address: PCIAddress, bar: Int, old: PCIMemoryRange?, new: PCIMemoryRange?) {
        self.address = address; self.bar = bar; self.old = old; self.new = new
    }

    public var description: String {
        "\(address) BAR \(bar): \(old.map { "\($0)" } ?? "off") → \(new.map { "\($0)" } ?? "off")"
    }
}

public final class PCIHostBridge: BusDevice, Sendable {
    /// CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC; the bridge takes the 8 ports 0xCF8-0xCFF.
    public static let configAddressPort: UInt64 = 0xCF8
    public static let configDataPort: UInt64 = 0xCFC
    public static let portCount: UInt64 = 8
    public static let vendorID: UInt16 = 0x8086
    public static let deviceID: UInt16 = 0x0D57
    /// Where the host bridge function sits.
    public static let hostBridgeAddress = PCIAddress(bus: 0, device: 0, function: 0)!

    /// The guest-physical range BARs are placed in and decoded from (PCIMemoryWindow covers it).
    public let window: PCIMemoryRange

    private struct Slot: Sendable {
        let address: PCIAddress
        let device: any PCIDevice
        /// What the function decoded after the last configuration write, to report changes.
        var mappings: [PCIBARMapping]
    }

    private struct State: Sendable {
        var configAddress = PCIConfigAddress(rawValue: 0)
        /// Indexed by device number; slot 0 is the host bridge.
        var slots: [Slot?] = Array(repeating: nil, count: 32)
        /// Every decoded BAR of every slot, for the MMIO window's lookups.
        var decoded: [(range: PCIMemoryRange, slot: Int, bar: Int)] = []
    }

    private let state: Mutex<State>
    private let onBARChange: @Sendable (PCIBARChange) -> Void

    /// - Parameters:
    ///   - window: where BARs are assigned (`assignBARs`) and where the MMIO window decodes them.
    ///   - onBARChange: told of every BAR mapping change, while configuration cycles are held off: it must
    ///     not make configuration accesses itself.
    public init(window: PCIMemoryRange, onBARChange: @escaping @Sendable (PCIBARChange) -> Void = { _ in }) {
        self.window = window
        self.onBARChange = onBARChange
        let bridge = try! PCIFunction(PCIFunctionDefinition(vendorID: Self.vendorID, deviceID: Self.deviceID,
                                                             classCode: .hostBridge))
        var s = State()
        s.slots[0] = Slot(address: Self.hostBridgeAddress, device: HostBridgeDevice(function: bridge), mappings: [])
        state = Mutex(s)
    }

    /// Plugs `device` into slot `slot` (1-31) of bus 0. Call while the machine is built.
    public func attach(_ device: any PCIDevice, slot: UInt8) throws(PCIError) {
        guard slot >= 1, slot < 32, let address = PCIAddress(bus: 0, device: slot) else { throw .slot(slot) }
        try state.withLock { (s: inout State) throws(PCIError) in
            guard s.slots[Int(slot)] == nil else { throw .slotTaken(address) }
            s.slots[Int(slot)] = Slot(address: address, device: device, mappings: [])
            refreshMappings(&s, slot: Int(slot))
        }
    }

    /// The devices plugged in, by address (the host bridge included).
    public var devices: [(address: PCIAddress, device: any PCIDevice)] {
        state.withLock { $0.slots.compactMap { $0.map { ($0.address, $0.device) } } }
    }

    /// The function at `address`, if any.
    public func function(at address: PCIAddress) -> PCIFunction? {
        guard address.bus == 0, address.function == 0 else { return nil }
        return state.withLock { $0.slots[Int(address.device)]?.device.pciFunction }
    }

    /// Places every BAR of every device in the window, the way firmware would before the OS starts:
    /// largest first, each naturally aligned. Memory decoding stays off until the guest enables it.
    public func assignBARs() throws(PCIError) {
        let plugged = devices
        var requests: [(PCIAddress, PCIFunction, PCIBARDefinition)] = []
        for (address, device) in plugged {
            for bar in device.pciFunction.definition.bars { requests.append((address, device.pciFunction, bar)) }
        }
        requests.sort { $0.2.sizeInBytes != $1.2.sizeInBytes ? $0.2.sizeInBytes > $1.2.sizeInBytes : ($0.0, $0.2.index) < ($1.0, $1.2.index) }
        var next = window.base
        for (address, function, bar) in requests {
            let size = bar.sizeInBytes
            let base = (next &+ (size - 1)) & ~(size - 1)
            guard base >= next, let range = PCIMemoryRange(base: base, length: size), range.last <= window.last,
                  bar.width == .bits64 || range.last <= 0xFFFF_FFFF else {
                throw .windowFull(device: address, bar: bar.index, size: size, window: window)
            }
            function.setBARAddress(bar.index, base)
            next = range.last &+ 1
        }
        state.withLock { s in for slot in 0..<32 where s.slots[slot] != nil { refreshMappings(&s, slot: slot) } }
    }

    /// Resets every function (as a machine reset does) and CONFIG_ADDRESS; BARs the guest had enabled are
    /// reported as gone. The VMM places them again with `assignBARs` before the guest restarts.
    public func reset() {
        state.withLock { s in
            s.configAddress = PCIConfigAddress(rawValue: 0)
            for slot in 0..<32 {
                guard let entry = s.slots[slot] else { continue }
                entry.device.pciFunction.reset()
                refreshMappings(&s, slot: slot)
            }
        }
    }

    // MARK: BusDevice: ports 0xCF8-0xCFF

    public func read(offset: UInt64, size: Int) -> UInt64 {
        let allOnes = UInt64(PCIConfigSpace.allOnes(size))
        if offset < 4 {
            guard offset == 0, size == 4 else { return allOnes }
            return UInt64(state.withLock { $0.configAddress.rawValue })
        }
        return state.withLock { s in
            guard let (device, register) = target(s, dataOffset: Int(offset - 4), size: size) else { return allOnes }
            if let value = device.interceptConfigRead(offset: register, size: size) { return UInt64(value) }
            return UInt64(device.pciFunction.readConfig(offset: register, size: size))
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        if offset < 4 {
            guard offset == 0, size == 4 else { return }
            state.withLock { $0.configAddress = PCIConfigAddress(rawValue: UInt32(truncatingIfNeeded: value)) }
            return
        }
        state.withLock { s in
            guard let (device, register) = target(s, dataOffset: Int(offset - 4), size: size) else { return }
            let v = UInt32(truncatingIfNeeded: value)
            device.pciFunction.writeConfig(offset: register, size: size, value: v)
            device.didWriteConfig(offset: register, size: size, value: v)
            refreshMappings(&s, slot: Int(s.configAddress.device))
        }
    }

    /// CONFIG_ADDRESS, or CONFIG_DATA with the function and register the latched CONFIG_ADDRESS selects.
    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        let (a, present) = state.withLock { s in (s.configAddress, s.slots[Int(s.configAddress.device)] != nil) }
        let byte = a.register + Int(offset >= 4 ? offset - 4 : 0)
        var selected = "\(a.address) register 0x\(String(byte, radix: 16))"
        if !a.isEnabled { selected += " (enable bit clear: not a configuration access)" }
        else if a.bus != 0 || a.function != 0 || !present { selected += " (no function there: all ones)" }
        if offset < 4 {
            return BusRegister("CONFIG_ADDRESS", meaning: "selects bus, device, function and register for CONFIG_DATA (PCI 3.0 §3.2.2.3.2)",
                               detail: offset == 0 && size == 4 && isWrite ? "selects \(selected)" : nil)
        }
        return BusRegister("CONFIG_DATA", meaning: "the configuration register CONFIG_ADDRESS selects, plus the port's offset", detail: selected)
    }

    /// The device and configuration offset a CONFIG_DATA access at byte `dataOffset` (0-3) reaches, if any.
    private func target(_ s: State, dataOffset: Int, size: Int) -> (any PCIDevice, Int)? {
        let a = s.configAddress
        guard a.isEnabled, a.bus == 0, a.function == 0, dataOffset + size <= 4, a.register < PCIConfigSpace.size,
              let slot = s.slots[Int(a.device)] else { return nil }
        return (slot.device, a.register + dataOffset)
    }

    /// Re-reads what slot `slot` decodes, reports the differences and rebuilds the lookup list.
    private func refreshMappings(_ s: inout State, slot: Int) {
        guard var entry = s.slots[slot] else { return }
        let now = entry.device.pciFunction.memoryMappings
        guard now != entry.mappings else { return }
        for bar in Set(now.map(\.bar) + entry.mappings.map(\.bar)).sorted() {
            let old = entry.mappings.first { $0.bar == bar }?.range, new = now.first { $0.bar == bar }?.range
            if old != new { onBARChange(PCIBARChange(address: entry.address, bar: bar, old: old, new: new)) }
        }
        entry.mappings = now
        s.slots[slot] = entry
        s.decoded = s.slots.enumerated().flatMap { index, slot in
            (slot?.mappings ?? []).map { (range: $0.range, slot: index, bar: $0.bar) }
        }
    }

    // MARK: BAR accesses (PCIMemoryWindow)

    /// The device and BAR decoding guest-physical `address`, and the offset into that BAR. When BARs
    /// overlap (the guest's doing), the lowest slot wins.
    func decode(_ address: UInt64) -> (device: any PCIDevice, bar: Int, offset: UInt64)? {
        decodeWithAddress(address).map { ($0.device, $0.bar, $0.offset) }
    }

    func decodeWithAddress(_ address: UInt64) -> (function: PCIAddress, device: any PCIDevice, bar: Int, offset: UInt64)? {
        state.withLock { s in
            guard let hit = s.decoded.first(where: { $0.range.contains(address) }), let slot = s.slots[hit.slot] else { return nil }
            return (slot.address, slot.device, hit.bar, address - hit.range.base)
        }
    }

    /// Every BAR decoded now, by device.
    public var decodedBARs: [(address: PCIAddress, mapping: PCIBARMapping)] {
        state.withLock { s in s.decoded.map { (s.slots[$0.slot]!.address, PCIBARMapping(bar: $0.bar, range: $0.range)) } }
    }

    /// Makes the BusDevice the VMM puts on its MMIO bus over `window`.
    public func memoryWindow() -> PCIMemoryWindow { PCIMemoryWindow(bridge: self) }
}

/// The host bridge function at 00:00.0: identity only, no BARs.
private final class HostBridgeDevice: PCIDevice {
    let pciFunction: PCIFunction
    init(function: PCIFunction) { pciFunction = function }
    func readBAR(_ bar: Int, offset: UInt64, size: Int) -> UInt64 { 0 }
    func writeBAR(_ bar: Int, offset: UInt64, size: Int, value: UInt64) {}
}
