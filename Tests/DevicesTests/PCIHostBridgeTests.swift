// Tests for configuration mechanism #1, slots, BAR assignment, BAR-move reports and the MMIO window.
import Devices
import Synchronization
import Testing

@Suite struct PCIHostBridgeTests {
    static let window = PCIMemoryRange(base: 0xE000_0000, length: 0x1000_0000)!

    /// A port bus with the bridge at 0xCF8, as the VMM builds it.
    func makeBus(onBARChange: @escaping @Sendable (PCIBARChange) -> Void = { _ in }) throws -> (Bus, PCIHostBridge) {
        let bridge = PCIHostBridge(window: Self.window, onBARChange: onBARChange)
        let ports = Bus(name: "port I/O")
        try ports.insert(bridge, name: "PCI host bridge", base: PCIHostBridge.configAddressPort, length: PCIHostBridge.portCount)
        return (ports, bridge)
    }

    /// outl(address, 0xCF8); in(0xCFC + (offset & 3)).
    func configRead(_ ports: Bus, device: UInt8, offset: Int, size: Int, bus: UInt8 = 0, function: UInt8 = 0) -> UInt64? {
        let a = PCIConfigAddress(address: PCIAddress(bus: bus, device: device, function: function)!, register: offset & ~3)
        ports.write(0xCF8, size: 4, value: UInt64(a.rawValue))
        return ports.read(0xCFC + UInt64(offset & 3), size: size)
    }

    func configWrite(_ ports: Bus, device: UInt8, offset: Int, size: Int, value: UInt32) {
        let a = PCIConfigAddress(address: PCIAddress(device: device)!, register: offset & ~3)
        ports.write(0xCF8, size: 4, value: UInt64(a.rawValue))
        ports.write(0xCFC + UInt64(offset & 3), size: size, value: UInt64(value))
    }

    @Test func passesLinuxsType1Probe() throws {
        // arch/x86/pci/direct.c pci_check_type1: outb(0x01, 0xCFB); save inl(0xCF8); outl(0x80000000, 0xCF8);
        // inl(0xCF8) must be 0x80000000; then some function must be a host bridge (class 0x0600).
        let (ports, _) = try makeBus()
        ports.write(0xCFB, size: 1, value: 0x01)
        let saved = ports.read(0xCF8, size: 4)
        #expect(saved == 0)
        ports.write(0xCF8, size: 4, value: 0x8000_0000)
        #expect(ports.read(0xCF8, size: 4) == 0x8000_0000)
        #expect(configRead(ports, device: 0, offset: PCIHeader.subclass, size: 2) == 0x0600)
    }

    @Test func readsTheHostBridgeIdentity() throws {
        let (ports, _) = try makeBus()
        ports.write(0xCF8, size: 4, value: 0x8000_0000)   // enable, bus 0, device 0, function 0, register 0
        #expect(ports.read(0xCFC, size: 4) == 0x0D57_8086)
        #expect(ports.read(0xCFC, size: 2) == 0x8086)      // vendor ID alone
        #expect(ports.read(0xCFE, size: 2) == 0x0D57)      // device ID: CONFIG_DATA + 2
        ports.write(0xCF8, size: 4, value: 0x8000_0008)   // register 8: revision, class code
        #expect(ports.read(0xCFC, size: 4) == 0x0600_0000)
        #expect(ports.read(0xCFF, size: 1) == 0x06)
    }

    @Test func absentFunctionsReadAllOnes() throws {
        let (ports, bridge) = try makeBus()
        try bridge.attach(TestPCIDevice(), slot: 3)
        #expect(configRead(ports, device: 5, offset: 0, size: 4) == 0xFFFF_FFFF)              // empty slot
        #expect(configRead(ports, device: 3, offset: 0, size: 4, function: 1) == 0xFFFF_FFFF) // single-function device
        #expect(configRead(ports, device: 3, offset: 0, size: 4, bus: 1) == 0xFFFF_FFFF)      // bus 0 only
        #expect(configRead(ports, device: 5, offset: 2, size: 2) == 0xFFFF)
        #expect(configRead(ports, device: 5, offset: 3, size: 1) == 0xFF)
        #expect(configRead(ports, device: 3, offset: 0, size: 4) == 0x1043_1AF4)
    }

    @Test func configDataIsDeadWhileTheEnableBitIsClear() throws {
        let (ports, bridge) = try makeBus()
        let device = try TestPCIDevice()
        try bridge.attach(device, slot: 1)
        ports.write(0xCF8, size: 4, value: 0x0000_083C)  // device 1, register 0x3C, not enabled
        #expect(ports.read(0xCFC, size: 4) == 0xFFFF_FFFF)
        ports.write(0xCFC, size: 1, value: 0x0B)
        #expect(device.pciFunction.readConfig(offset: PCIHeader.interruptLine, size: 1) == 0)
    }

    @Test func narrowAccessesToConfigAddressAreNotConfigAccesses() throws {
        let (ports, _) = try makeBus()
        ports.write(0xCF8, size: 4, value: 0x8000_0008)
        ports.write(0xCF8, size: 2, value: 0)
        ports.write(0xCFA, size: 1, value: 0xFF)
        #expect(ports.read(0xCF8, size: 4) == 0x8000_0008)
        #expect(ports.read(0xCF8, size: 2) == 0xFFFF)
        #expect(ports.read(0xCF9, size: 1) == 0xFF)
    }

    @Test func theExtendedSpaceReadsAllOnesInsteadOfAliasing() throws {
        // Linux on an AMD host reads 0x100 through CONFIG_ADDRESS bits 27:24; a 256-byte function has nothing there.
        let (ports, bridge) = try makeBus()
        let device = try TestPCIDevice()
        try bridge.attach(device, slot: 1)
        #expect(configRead(ports, device: 1, offset: 0x100, size: 4) == 0xFFFF_FFFF)
        #expect(configRead(ports, device: 0, offset: 0x100, size: 4) == 0xFFFF_FFFF)
        configWrite(ports, device: 1, offset: 0x104, size: 4, value: 0x0000_0006) // would be the command register if aliased
        #expect(device.pciFunction.command == [])
        #expect(configRead(ports, device: 1, offset: 0x04, size: 2) == 0)
    }

    @Test func anAccessCrossingTheDataDwordReadsAllOnes() throws {
        let (ports, _) = try makeBus()
        ports.write(0xCF8, size: 4, value: 0x8000_0000)
        #expect(ports.read(0xCFE, size: 4) == 0xFFFF_FFFF)
        #expect(ports.read(0xCFF, size: 2) == 0xFFFF)
    }

    @Test func writesReachTheSelectedFunctionByteByByte() throws {
        let (ports, bridge) = try makeBus()
        let device = try TestPCIDevice()
        try bridge.attach(device, slot: 4)
        configWrite(ports, device: 4, offset: PCIHeader.interruptLine, size: 1, value: 0x10)
        #expect(configRead(ports, device: 4, offset: PCIHeader.interruptLine, size: 2) == 0x0110) // pin INTA, line 16
        configWrite(ports, device: 4, offset: PCIHeader.command, size: 2, value: 0x0006)
        #expect(device.pciFunction.command == [.memorySpace, .busMaster])
    }

    @Test func refusesBadSlots() throws {
        let (_, bridge) = try makeBus()
        #expect(throws: PCIError.slot(0)) { try bridge.attach(TestPCIDevice(), slot: 0) }
        #expect(throws: PCIError.slot(32)) { try bridge.attach(TestPCIDevice(), slot: 32) }
        try bridge.attach(TestPCIDevice(), slot: 31)
        #expect(throws: PCIError.slotTaken(PCIAddress(device: 31)!)) { try bridge.attach(TestPCIDevice(), slot: 31) }
        #expect(bridge.devices.map(\.address.description) == ["00:00.0", "00:1f.0"])
    }

    @Test func assignsEveryBARNaturallyAlignedInTheWindow() throws {
        let (_, bridge) = try makeBus()
        let a = try TestPCIDevice(), b = try TestPCIDevice()
        try bridge.attach(a, slot: 1)
        try bridge.attach(b, slot: 2)
        try bridge.assignBARs()
        let ranges = [a, b].flatMap { d in d.pciFunction.definition.bars.map { PCIMemoryRange(base: d.pciFunction.barAddress($0.index)!, length: $0.sizeInBytes)! } }
        for r in ranges {
            #expect(Self.window.contains(r.base) && Self.window.contains(r.last))
            #expect(r.base % r.length == 0)
        }
        for i in ranges.indices { for j in ranges.indices where i < j { #expect(!ranges[i].overlaps(ranges[j])) } }
        // Largest first: the two 16 KiB BARs, then the two 4 KiB ones.
        #expect(a.pciFunction.barAddress(2) == 0xE000_0000 && b.pciFunction.barAddress(2) == 0xE000_4000)
        #expect(a.pciFunction.barAddress(0) == 0xE000_8000 && b.pciFunction.barAddress(0) == 0xE000_9000)
        #expect(bridge.decodedBARs.isEmpty) // decoding waits for the guest to enable memory space
    }

    @Test func refusesBARsThatDoNotFitTheWindow() throws {
        let bridge = PCIHostBridge(window: PCIMemoryRange(base: 0xE000_0000, length: 0x8000)!)
        try bridge.attach(TestPCIDevice(), slot: 1)
        try bridge.attach(TestPCIDevice(), slot: 2)
        // The two 16 KiB BARs fill the 32 KiB window; the first 4 KiB BAR finds no room.
        #expect(throws: PCIError.windowFull(device: PCIAddress(device: 1)!, bar: 0, size: 0x1000,
                                            window: PCIMemoryRange(base: 0xE000_0000, length: 0x8000)!)) {
            try bridge.assignBARs()
        }
    }

    @Test func reportsBARsAppearingMovingAndDisappearing() throws {
        let changes = Mutex<[PCIBARChange]>([])
        let (ports, bridge) = try makeBus { c in changes.withLock { $0.append(c) } }
        let device = try TestPCIDevice()
        try bridge.attach(device, slot: 1)
        try bridge.assignBARs()
        #expect(changes.withLock { $0.isEmpty })
        configWrite(ports, device: 1, offset: PCIHeader.command, size: 2, value: 0x0002)
        let slot1 = PCIAddress(device: 1)!
        #expect(changes.withLock { $0 } == [
            PCIBARChange(address: slot1, bar: 0, old: nil, new: PCIMemoryRange(base: 0xE000_4000, length: 0x1000)),
            PCIBARChange(address: slot1, bar: 2, old: nil, new: PCIMemoryRange(base: 0xE000_0000, length: 0x4000)),
        ])
        // Linux's sizing dance with decoding off, then a move of BAR 0 and decoding back on.
        changes.withLock { $0 = [] }
        configWrite(ports, device: 1, offset: PCIHeader.command, size: 2, value: 0)
        configWrite(ports, device: 1, offset: PCIHeader.bar(0), size: 4, value: 0xFFFF_FFFF)
        #expect(configRead(ports, device: 1, offset: PCIHeader.bar(0), size: 4) == 0xFFFF_F000)
        configWrite(ports, device: 1, offset: PCIHeader.bar(0), size: 4, value: 0xE100_0000)
        configWrite(ports, device: 1, offset: PCIHeader.command, size: 2, value: 0x0002)
        #expect(changes.withLock { $0 } == [
            PCIBARChange(address: slot1, bar: 0, old: PCIMemoryRange(base: 0xE000_4000, length: 0x1000), new: nil),
            PCIBARChange(address: slot1, bar: 2, old: PCIMemoryRange(base: 0xE000_0000, length: 0x4000), new: nil),
            PCIBARChange(address: slot1, bar: 0, old: nil, new: PCIMemoryRange(base: 0xE100_0000, length: 0x1000)),
            PCIBARChange(address: slot1, bar: 2, old: nil, new: PCIMemoryRange(base: 0xE000_0000, length: 0x4000)),
        ])
        // A move while decoding is on is one change.
        changes.withLock { $0 = [] }
        configWrite(ports, device: 1, offset: PCIHeader.bar(0), size: 4, value: 0xE200_0000)
        #expect(changes.withLock { $0 } == [
            PCIBARChange(address: slot1, bar: 0, old: PCIMemoryRange(base: 0xE100_0000, length: 0x1000), new: PCIMemoryRange(base: 0xE200_0000, length: 0x1000)),
        ])
        #expect(changes.withLock { $0[0].description } == "00:01.0 BAR 0: 0xe1000000-0xe1000fff → 0xe2000000-0xe2000fff")
    }

    @Test func resetTurnsDecodingOffAndForgetsTheConfigAddress() throws {
        let changes = Mutex<[PCIBARChange]>([])
        let (ports, bridge) = try makeBus { c in changes.withLock { $0.append(c) } }
        let device = try TestPCIDevice()
        try bridge.attach(device, slot: 1)
        try bridge.assignBARs()
        configWrite(ports, device: 1, offset: PCIHeader.command, size: 2, value: 0x0002)
        #expect(bridge.decodedBARs.count == 2)
        bridge.reset()
        #expect(bridge.decodedBARs.isEmpty)
        #expect(changes.withLock { $0.suffix(2).allSatisfy { $0.new == nil } })
        #expect(ports.read(0xCF8, size: 4) == 0)
        #expect(device.pciFunction.barAddress(0) == 0 && device.pciFunction.command == [])
    }

    @Test func theMemoryWindowSendsBARAccessesToTheDevice() throws {
        let (ports, bridge) = try makeBus()
        let device = try TestPCIDevice(TestPCIDevice.definition(msixVectors: 2))
        try bridge.attach(device, slot: 1)
        try bridge.assignBARs()
        let mmio = Bus(name: "MMIO")
        let window = bridge.memoryWindow()
        try mmio.insert(window, name: "PCI memory window", base: window.base, length: window.length)
        // Decoding off: nothing answers.
        #expect(mmio.read(0xE000_4010, size: 4) == 0xFFFF_FFFF)
        configWrite(ports, device: 1, offset: PCIHeader.command, size: 2, value: 0x0002)
        #expect(mmio.write(0xE000_4010, size: 4, value: 0x1234))          // BAR 0 + 0x10
        #expect(mmio.read(0xE000_4010, size: 4) == 0x1234)
        #expect(device.barAccesses.withLock { $0 } == ["w0+10/4", "r0+10/4"])
        // BAR 2 + 0x2000 is the MSI-X table: the function answers, the device never sees it.
        #expect(mmio.read(0xE000_200C, size: 4) == 1)
        mmio.write(0xE000_2000, size: 8, value: 0xFEE0_0000)
        #expect(device.pciFunction.msixEntry(0)?.messageAddress == 0xFEE0_0000)
        #expect(device.barAccesses.withLock { $0.count } == 2)
        // Inside the window, outside every BAR: all ones, of the access size.
        #expect(mmio.read(0xEFFF_0000, size: 2) == 0xFFFF)
        #expect(mmio.read(0xEFFF_0000, size: 8) == UInt64.max)
    }

    @Test func aDeviceMayAnswerConfigurationCyclesItself() throws {
        final class Windowed: PCIDevice, @unchecked Sendable {
            let pciFunction: PCIFunction
            let written = Mutex<[Int]>([])
            init() throws { pciFunction = try PCIFunction(TestPCIDevice.definition()) }
            func readBAR(_ bar: Int, offset: UInt64, size: Int) -> UInt64 { 0 }
            func writeBAR(_ bar: Int, offset: UInt64, size: Int, value: UInt64) {}
            func interceptConfigRead(offset: Int, size: Int) -> UInt32? { offset == 0x80 ? 0xCAFE : nil }
            func didWriteConfig(offset: Int, size: Int, value: UInt32) { written.withLock { $0.append(offset) } }
        }
        let (ports, bridge) = try makeBus()
        let device = try Windowed()
        try bridge.attach(device, slot: 2)
        #expect(configRead(ports, device: 2, offset: 0x80, size: 4) == 0xCAFE)
        #expect(configRead(ports, device: 2, offset: 0x00, size: 2) == 0x1AF4)
        configWrite(ports, device: 2, offset: 0x84, size: 4, value: 7)
        #expect(device.written.withLock { $0 } == [0x84])
    }
}
