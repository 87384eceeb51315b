// Tests that each device names its own registers for --trace-exits (BusDevice.register(at:)), in the words of
// its datasheet or specification, decoded from the device's state the way the access was: the 8250's DLAB,
// the PCI function CONFIG_ADDRESS selects.
import Devices
import Testing

@Suite struct BusRegisterTests {
    /// COM1 on a port bus, as the VMM places it.
    func uart() throws -> (Bus, Serial8250) {
        let serial = Serial8250(output: { _ in })
        let ports = Bus(name: "port I/O")
        try ports.insert(serial, name: "COM1", base: 0x3F8, length: 8)
        return (ports, serial)
    }

    func name(_ bus: Bus, _ port: UInt64, size: Int = 1, write: Bool) -> String? {
        guard let entry = bus.entry(containing: port) else { return nil }
        return entry.device.register(at: port - entry.base, size: size, isWrite: write)?.text
    }

    @Test func the8250NamesEachRegisterByDirectionAsPC16550DDoes() throws {
        let (ports, _) = try uart()
        // PC16550D datasheet, table II: offset 0 is RBR when read and THR when written, 2 is IIR / FCR.
        #expect(name(ports, 0x3F8, write: true) == "THR")
        #expect(name(ports, 0x3F8, write: false) == "RBR")
        #expect(name(ports, 0x3F9, write: true) == "IER")
        #expect(name(ports, 0x3FA, write: true) == "FCR")
        #expect(name(ports, 0x3FA, write: false) == "IIR")
        #expect(name(ports, 0x3FB, write: true) == "LCR")
        #expect(name(ports, 0x3FC, write: true) == "MCR")
        #expect(name(ports, 0x3FD, write: false) == "LSR")
        #expect(name(ports, 0x3FE, write: false) == "MSR")
        #expect(name(ports, 0x3FF, write: true) == "SCR")
    }

    @Test func withDLABSetOffsetsZeroAndOneAreTheDivisorLatch() throws {
        let (ports, _) = try uart()
        ports.write(0x3FB, size: 1, value: 0x83) // LCR: DLAB | 8 data bits
        #expect(name(ports, 0x3F8, write: true) == "DLL")
        #expect(name(ports, 0x3F8, write: false) == "DLL")
        #expect(name(ports, 0x3F9, write: true) == "DLM")
        #expect(name(ports, 0x3FA, write: false) == "IIR", "offset 2 does not depend on DLAB")
        ports.write(0x3FB, size: 1, value: 0x03)
        #expect(name(ports, 0x3F8, write: true) == "THR")
        #expect(name(ports, 0x3F9, write: true) == "IER")
    }

    @Test func everyNamedUARTRegisterSaysWhatItIs() throws {
        let (_, serial) = try uart()
        for offset: UInt64 in 0..<8 {
            for write in [false, true] {
                let register = try #require(serial.register(at: offset, size: 1, isWrite: write))
                #expect(register.meaning?.isEmpty == false, "\(register.name) has a meaning for the legend")
            }
        }
    }

    @Test func thePCIHostBridgeNamesTheFunctionAndRegisterConfigAddressSelects() throws {
        let bridge = PCIHostBridge(window: PCIMemoryRange(base: 0xE000_0000, length: 0x1000_0000)!)
        let ports = Bus(name: "port I/O")
        try ports.insert(bridge, name: "PCI host bridge", base: PCIHostBridge.configAddressPort, length: PCIHostBridge.portCount)
        // PCI 3.0 §3.2.2.3.2: enable | device 0 | register 0x08 (revision and class).
        ports.write(0xCF8, size: 4, value: 0x8000_0008)
        #expect(name(ports, 0xCF8, size: 4, write: true) == "CONFIG_ADDRESS (selects 00:00.0 register 0x8)")
        #expect(name(ports, 0xCF8, size: 4, write: false) == "CONFIG_ADDRESS")
        #expect(name(ports, 0xCFC, size: 4, write: false) == "CONFIG_DATA (00:00.0 register 0x8)")
        #expect(name(ports, 0xCFE, size: 2, write: false) == "CONFIG_DATA (00:00.0 register 0xa)", "CONFIG_DATA + 2 is byte 2 of the dword")
        // Device 5: an empty slot answers all ones.
        ports.write(0xCF8, size: 4, value: 0x8000_2800)
        #expect(name(ports, 0xCFC, size: 4, write: false) == "CONFIG_DATA (00:05.0 register 0x0 (no function there: all ones))")
        ports.write(0xCF8, size: 4, value: 0x0000_0000)
        #expect(name(ports, 0xCFC, size: 4, write: false) == "CONFIG_DATA (00:00.0 register 0x0 (enable bit clear: not a configuration access))")
    }

    @Test func theSmallDevicesNameTheirPorts() {
        let exit = DebugExit { _ in }
        #expect(exit.register(at: 0, size: 4, isWrite: true)?.name == "EXIT")
        let i8042 = I8042 {}
        #expect(i8042.register(at: 0, size: 1, isWrite: false)?.name == "DATA")
        #expect(i8042.register(at: 4, size: 1, isWrite: true)?.name == "CMD")
        #expect(i8042.register(at: 4, size: 1, isWrite: false)?.name == "STATUS")
        #expect(i8042.register(at: 1, size: 1, isWrite: false) == nil, "port 0x61 is not the i8042's")
        let lab = LabPorts(parameters: [7, 8]) { _ in }
        #expect(lab.register(at: 0, size: 4, isWrite: true)?.name == "MARKER")
        #expect(lab.register(at: 2, size: 4, isWrite: false)?.name == "PARAM1")
    }
}
