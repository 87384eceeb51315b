// Tests for configuration-space bytes and rules, and for the CONFIG_ADDRESS encoding.
import Devices
import Testing

@Suite struct PCIConfigSpaceTests {
    @Test func readOnlyBitsIgnoreWritesAndWritableBitsTakeThem() {
        var c = PCIConfigSpace()
        c.set32(0x40, 0x1234_5678)
        c.setWritable(offset: 0x40, size: 4, mask: 0x0000_FF00)
        c.write(offset: 0x40, size: 4, value: 0xFFFF_FFFF)
        #expect(c.read(offset: 0x40, size: 4) == 0x1234_FF78)
        c.write(offset: 0x41, size: 1, value: 0x00)
        #expect(c.read(offset: 0x40, size: 4) == 0x1234_0078)
    }

    @Test func writeOneClearsAndWriteZeroLeavesStatusBits() {
        var c = PCIConfigSpace()
        c.set16(PCIHeader.status, 0xF910)
        c.setWriteOneToClear(offset: PCIHeader.status, size: 2, mask: UInt64(PCIStatus.writeOneToClear.rawValue))
        c.write(offset: PCIHeader.status, size: 2, value: 0x0000)
        #expect(c.read(offset: PCIHeader.status, size: 2) == 0xF910)
        c.write(offset: PCIHeader.status, size: 2, value: 0x2000) // clear received master abort only
        #expect(c.read(offset: PCIHeader.status, size: 2) == 0xD910)
        c.write(offset: PCIHeader.status, size: 2, value: 0xFFFF) // bit 4 is read-only, not W1C
        #expect(c.read(offset: PCIHeader.status, size: 2) == 0x0010)
    }

    @Test func accessesAreLittleEndianAtAnyByteOfADword() {
        var c = PCIConfigSpace()
        c.set32(0x08, 0x0680_0001)
        #expect(c.read(offset: 0x08, size: 1) == 0x01)
        #expect(c.read(offset: 0x0A, size: 2) == 0x0680)
        #expect(c.read(offset: 0x0B, size: 1) == 0x06)
        #expect(c.read(offset: 0x09, size: 2) == 0x8000)
    }

    @Test func invalidAccessesReadAllOnesAndDropWrites() {
        var c = PCIConfigSpace()
        c.setWritable(offset: 0x3C, size: 4, mask: 0xFFFF_FFFF)
        #expect(c.read(offset: 0x3E, size: 4) == 0xFFFF_FFFF)  // crosses a dword
        #expect(c.read(offset: 0xFF, size: 2) == 0xFFFF)       // past the end
        #expect(c.read(offset: 0x3C, size: 3) == 0xFF_FFFF)    // no 3-byte cycles
        c.write(offset: 0x3E, size: 4, value: 0x1234_5678)
        #expect(c.read(offset: 0x3C, size: 4) == 0)
        #expect(!PCIConfigSpace.isValidAccess(offset: -1, size: 1))
        #expect(PCIConfigSpace.isValidAccess(offset: 0xFC, size: 4))
    }
}

@Suite struct PCIConfigAddressTests {
    @Test func encodesBusDeviceFunctionAndRegister() {
        let a = PCIConfigAddress(address: PCIAddress(bus: 0, device: 3, function: 0)!, register: 0x0A)
        #expect(a.rawValue == 0x8000_1808) // enable | device 3 << 11 | dword 0x08
        #expect(a.register == 0x08)
        let b = PCIConfigAddress(rawValue: 0x8012_3D44)
        #expect(b.isEnabled && b.bus == 0x12 && b.device == 7 && b.function == 5 && b.register == 0x44)
        #expect(b.address.description == "12:07.5")
    }

    @Test func reservedAndLowBitsReadAsZero() {
        #expect(PCIConfigAddress(rawValue: 0xFFFF_FFFF).rawValue == 0x8FFF_FFFC)
        #expect(PCIConfigAddress(rawValue: 0x7000_0003).rawValue == 0)
        #expect(!PCIConfigAddress(rawValue: 0x7FFF_FFFF).isEnabled)
    }

    @Test func carriesAMDsExtendedRegisterBits() {
        // Linux's PCI_CONF1_EXT_ADDRESS: register bits 11:8 go to CONFIG_ADDRESS bits 27:24.
        let a = PCIConfigAddress(address: PCIAddress(device: 1)!, register: 0x104)
        #expect(a.rawValue == 0x8100_0804)
        #expect(a.register == 0x104)
    }

    @Test func refusesImpossibleDeviceAndFunctionNumbers() {
        #expect(PCIAddress(device: 32) == nil)
        #expect(PCIAddress(device: 1, function: 8) == nil)
        #expect(PCIAddress(device: 31, function: 7)?.deviceFunction == 0xFF)
    }
}
