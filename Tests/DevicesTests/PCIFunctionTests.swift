// Tests for PCIFunction: the type-0 header rules, BAR sizing and decoding, the capability list, INTx.
import Devices
import Synchronization
import Testing

// MARK: Fixtures shared by the PCI test files

/// What a function's interrupt wiring saw.
final class InterruptLog: @unchecked Sendable {
    let messages = Mutex<[(Int, MSIMessage)]>([])
    let intx = Mutex<[Bool]>([])
    let msixChanges = Mutex<[PCIInterruptWiring.MSIXChange]>([])

    var wiring: PCIInterruptWiring {
        PCIInterruptWiring(msi: { v, m in self.messages.withLock { $0.append((v, m)) } },
                           intx: { l in self.intx.withLock { $0.append(l) } },
                           msixChanged: { c in self.msixChanges.withLock { $0.append(c) } })
    }
    var sentVectors: [Int] { messages.withLock { $0.map(\.0) } }
    var intxLevels: [Bool] { intx.withLock { $0 } }
}

/// BAR 0: 4 KiB of registers that read back what was written; BAR 2: 16 KiB, 64-bit, prefetchable,
/// holding the MSI-X table at 0x2000 and the pending bits at 0x3000 when there is MSI-X.
final class TestPCIDevice: PCIDevice, @unchecked Sendable {
    let pciFunction: PCIFunction
    let registers = Mutex<[UInt64: UInt64]>([:])
    let barAccesses = Mutex<[String]>([])

    static func definition(msixVectors: Int? = nil, capabilities: [PCICapability] = [],
                           pin: PCIInterruptPin? = .intA) -> PCIFunctionDefinition {
        PCIFunctionDefinition(
            vendorID: 0x1AF4, deviceID: 0x1043, revisionID: 1, classCode: .otherCommunicationController,
            subsystemVendorID: 0x1AF4, subsystemID: 0x0003, interruptPin: pin,
            bars: [PCIBARDefinition(index: 0, sizeInBytes: 0x1000),
                   PCIBARDefinition(index: 2, sizeInBytes: 0x4000, width: .bits64, prefetchable: true)],
            capabilities: capabilities,
            msix: msixVectors.map { PCIMSIXDefinition(vectorCount: $0, tableBAR: 2, tableOffset: 0x2000,
                                                      pendingBitArrayBAR: 2, pendingBitArrayOffset: 0x3000) })
    }

    init(_ definition: PCIFunctionDefinition = TestPCIDevice.definition(), interrupts: PCIInterruptWiring = PCIInterruptWiring()) throws {
        pciFunction = try PCIFunction(definition, interrupts: interrupts)
    }

    func readBAR(_ bar: Int, offset: UInt64, size: Int) -> UInt64 {
        barAccesses.withLock { $0.append("r\(bar)+\(String(offset, radix: 16))/\(size)") }
        return registers.withLock { $0[UInt64(bar) << 32 | offset] ?? 0 }
    }

    func writeBAR(_ bar: Int, offset: UInt64, size: Int, value: UInt64) {
        barAccesses.withLock { $0.append("w\(bar)+\(String(offset, radix: 16))/\(size)") }
        registers.withLock { $0[UInt64(bar) << 32 | offset] = value }
    }
}

/// Walks a function's capability list the way an OS does: (offset, id) pairs.
func capabilityList(_ f: PCIFunction) -> [(Int, UInt8)] {
    guard PCIStatus(rawValue: UInt16(f.readConfig(offset: PCIHeader.status, size: 2))).contains(.capabilitiesList) else { return [] }
    var list: [(Int, UInt8)] = []
    var at = Int(f.readConfig(offset: PCIHeader.capabilitiesPointer, size: 1))
    while at != 0, list.count < 48 {
        list.append((at, UInt8(f.readConfig(offset: at, size: 1))))
        at = Int(f.readConfig(offset: at + 1, size: 1))
    }
    return list
}

// MARK: Tests

@Suite struct PCIFunctionTests {
    @Test func identityRegistersAreReadOnly() throws {
        let f = try TestPCIDevice().pciFunction
        for offset in [0x00, 0x08, 0x2C] { f.writeConfig(offset: offset, size: 4, value: 0xFFFF_FFFF) }
        #expect(f.readConfig(offset: PCIHeader.vendorID, size: 4) == 0x1043_1AF4)
        #expect(f.readConfig(offset: PCIHeader.revisionID, size: 4) == 0x0780_0001)
        #expect(f.readConfig(offset: PCIHeader.subsystemVendorID, size: 4) == 0x0003_1AF4)
        #expect(f.readConfig(offset: PCIHeader.headerType, size: 1) == 0)
    }

    @Test func commandTakesOnlyItsImplementedBits() throws {
        let f = try TestPCIDevice().pciFunction
        f.writeConfig(offset: PCIHeader.command, size: 2, value: 0xFFFF)
        #expect(f.command == [.memorySpace, .busMaster, .parityErrorResponse, .serrEnable, .interruptDisable])
        #expect(!f.command.contains(.ioSpace)) // no I/O BARs: hardwired to 0
        f.writeConfig(offset: PCIHeader.command, size: 2, value: 0)
        #expect(f.command == [])
    }

    @Test func statusErrorBitsAreWriteOneToClear() throws {
        let f = try TestPCIDevice().pciFunction
        f.reportStatus([.receivedMasterAbort, .signaledTargetAbort, .interruptStatus])
        #expect(f.status == [.receivedMasterAbort, .signaledTargetAbort]) // interrupt status is not the device's to set
        f.writeConfig(offset: PCIHeader.status, size: 2, value: 0)
        #expect(f.status == [.receivedMasterAbort, .signaledTargetAbort])
        f.writeConfig(offset: PCIHeader.status, size: 2, value: UInt32(PCIStatus.receivedMasterAbort.rawValue))
        #expect(f.status == [.signaledTargetAbort])
        // A dword write to the command register with zero status bits leaves status alone.
        f.writeConfig(offset: PCIHeader.command, size: 4, value: 0x0000_0002)
        #expect(f.status == [.signaledTargetAbort] && f.command == .memorySpace)
    }

    @Test func interruptLineIsWritableAndPinReadOnly() throws {
        let f = try TestPCIDevice().pciFunction
        f.writeConfig(offset: PCIHeader.interruptLine, size: 2, value: 0x0410)
        #expect(f.readConfig(offset: PCIHeader.interruptLine, size: 1) == 0x10)
        #expect(f.readConfig(offset: PCIHeader.interruptPin, size: 1) == 1) // INTA#
        let none = try TestPCIDevice(TestPCIDevice.definition(pin: nil)).pciFunction
        #expect(none.readConfig(offset: PCIHeader.interruptPin, size: 1) == 0)
    }

    @Test func sizingA32BitBARReturnsItsSizeMask() throws {
        let f = try TestPCIDevice().pciFunction
        f.writeConfig(offset: PCIHeader.bar(0), size: 4, value: 0xFFFF_FFFF)
        let mask = f.readConfig(offset: PCIHeader.bar(0), size: 4)
        #expect(mask == 0xFFFF_F000)
        #expect(~(mask & 0xFFFF_FFF0) &+ 1 == 0x1000) // the size, the way an OS computes it
        f.writeConfig(offset: PCIHeader.bar(0), size: 4, value: 0xE000_0123)
        #expect(f.readConfig(offset: PCIHeader.bar(0), size: 4) == 0xE000_0000)
        #expect(f.barAddress(0) == 0xE000_0000)
    }

    @Test func sizingA64BitBARUsesBothRegisters() throws {
        let f = try TestPCIDevice().pciFunction
        #expect(f.readConfig(offset: PCIHeader.bar(2), size: 4) == 0xC) // prefetchable, 64-bit, memory
        f.writeConfig(offset: PCIHeader.bar(2), size: 4, value: 0xFFFF_FFFF)
        f.writeConfig(offset: PCIHeader.bar(3), size: 4, value: 0xFFFF_FFFF)
        #expect(f.readConfig(offset: PCIHeader.bar(2), size: 4) == 0xFFFF_C00C)
        #expect(f.readConfig(offset: PCIHeader.bar(3), size: 4) == 0xFFFF_FFFF)
        f.writeConfig(offset: PCIHeader.bar(2), size: 4, value: 0xE010_0000)
        f.writeConfig(offset: PCIHeader.bar(3), size: 4, value: 0x0000_0001)
        #expect(f.barAddress(2) == 0x1_E010_0000)
    }

    @Test func unimplementedBARsAndTheROMReadZeroAfterSizing() throws {
        let f = try TestPCIDevice().pciFunction
        for offset in [PCIHeader.bar(1), PCIHeader.bar(4), PCIHeader.bar(5), PCIHeader.expansionROM, PCIHeader.cardbusCIS] {
            f.writeConfig(offset: offset, size: 4, value: 0xFFFF_FFFF)
            #expect(f.readConfig(offset: offset, size: 4) == 0)
        }
        #expect(f.barAddress(1) == nil)
    }

    @Test func decodesBARsOnlyWhileMemorySpaceIsEnabled() throws {
        let f = try TestPCIDevice().pciFunction
        f.setBARAddress(0, 0xE000_0000)
        f.setBARAddress(2, 0x1_0000_4000)
        #expect(f.memoryMappings.isEmpty)
        f.writeConfig(offset: PCIHeader.command, size: 2, value: UInt32(PCICommand.memorySpace.rawValue))
        #expect(f.memoryMappings == [PCIBARMapping(bar: 0, range: PCIMemoryRange(base: 0xE000_0000, length: 0x1000)!),
                                     PCIBARMapping(bar: 2, range: PCIMemoryRange(base: 0x1_0000_4000, length: 0x4000)!)])
    }

    @Test func buildsTheCapabilityListWithVendorPayloads() throws {
        let a = PCICapability.vendorSpecific(payload: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])  // 16 bytes with the header
        let b = PCICapability.vendorSpecific(payload: [2, 4, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0, 4, 0, 0, 0])  // 20 bytes
        let f = try TestPCIDevice(TestPCIDevice.definition(capabilities: [a, b])).pciFunction
        #expect(f.capabilityOffsets == [0x40, 0x50])
        #expect(capabilityList(f).map(\.0) == [0x40, 0x50])
        #expect(capabilityList(f).map(\.1) == [0x09, 0x09])
        #expect(f.readConfig(offset: 0x52, size: 1) == 20)        // cap_len counts from the ID byte
        #expect(f.readConfig(offset: 0x53, size: 1) == 2)         // first payload byte
        #expect(f.readConfig(offset: 0x60, size: 4) == 0x0000_0004)
        f.writeConfig(offset: 0x50, size: 4, value: 0xFFFF_FFFF)  // capabilities are read-only
        #expect(f.readConfig(offset: 0x40, size: 4) == 0x0110_5009)  // payload 1, length 16, next 0x50, ID 9
        #expect(f.readConfig(offset: 0x50, size: 4) == 0x0214_0009)  // payload 2, length 20, last, ID 9
    }

    @Test func noCapabilitiesLeavesStatusBit4Clear() throws {
        let f = try TestPCIDevice().pciFunction
        #expect(!f.status.contains(.capabilitiesList))
        #expect(f.readConfig(offset: PCIHeader.capabilitiesPointer, size: 1) == 0)
    }

    @Test func capabilityBytesFollowTheirWritableMask() throws {
        let cap = PCICapability.vendorSpecific(payload: [5, 0, 0, 0, 0xAA], writableMask: [0, 0xFF, 0x0F, 0, 0])
        let f = try TestPCIDevice(TestPCIDevice.definition(capabilities: [cap])).pciFunction
        f.writeConfig(offset: 0x44, size: 4, value: 0xFFFF_FFFF)
        #expect(f.readConfig(offset: 0x44, size: 4) == 0xAA00_0FFF)  // only the masked bits took the ones
        #expect(f.readConfig(offset: 0x40, size: 4) == 0x0508_0009)  // header and first payload byte unchanged
        f.writeConfig(offset: 0x45, size: 1, value: 0x3C)
        #expect(f.readConfig(offset: 0x44, size: 2) == 0x0CFF)
    }

    @Test func refusesImpossibleDefinitions() {
        func definition(bars: [PCIBARDefinition] = [], caps: [PCICapability] = [], msix: PCIMSIXDefinition? = nil,
                        vendor: UInt16 = 0x1AF4) -> PCIFunctionDefinition {
            PCIFunctionDefinition(vendorID: vendor, deviceID: 1, classCode: .unassigned, bars: bars, capabilities: caps, msix: msix)
        }
        #expect(throws: PCIError.vendorID(0xFFFF)) { try PCIFunction(definition(vendor: 0xFFFF)) }
        #expect(throws: PCIError.barSize(index: 0, size: 0x1800)) { try PCIFunction(definition(bars: [.init(index: 0, sizeInBytes: 0x1800)])) }
        #expect(throws: PCIError.barSize(index: 0, size: 16)) { try PCIFunction(definition(bars: [.init(index: 0, sizeInBytes: 16)])) }
        #expect(throws: PCIError.barSize(index: 1, size: 1 << 32)) { try PCIFunction(definition(bars: [.init(index: 1, sizeInBytes: 1 << 32)])) }
        #expect(throws: PCIError.barIndex(5)) { try PCIFunction(definition(bars: [.init(index: 5, sizeInBytes: 0x1000, width: .bits64)])) }
        #expect(throws: PCIError.barIndex(6)) { try PCIFunction(definition(bars: [.init(index: 6, sizeInBytes: 0x1000)])) }
        #expect(throws: PCIError.barsOverlap(1)) {
            try PCIFunction(definition(bars: [.init(index: 0, sizeInBytes: 0x1000, width: .bits64), .init(index: 1, sizeInBytes: 0x1000)]))
        }
        let big = PCICapability.vendorSpecific(payload: [UInt8](repeating: 0, count: 100))
        #expect(throws: PCIError.self) { try PCIFunction(definition(caps: [big, big])) }
        #expect(throws: PCIError.capabilityMask(id: 9)) {
            try PCIFunction(definition(caps: [PCICapability(id: 9, body: [3, 0], writableMask: [0])]))
        }
        #expect((try? PCIFunction(definition(bars: [.init(index: 5, sizeInBytes: 1 << 31)]))) != nil)
    }

    @Test func errorsSayWhatToChange() {
        #expect(PCIError.barSize(index: 2, size: 100).description
            == "PCI BAR 2 size 100 is not a power of two of at least 4096 bytes (32-bit BARs: below 4 GiB)")
        #expect(PCIError.slotTaken(PCIAddress(device: 3)!).description == "PCI slot 00:03.0 is already taken")
    }
}

@Suite struct PCIINTxTests {
    @Test func assertsAndReleasesThePinAndShowsInterruptStatus() throws {
        let log = InterruptLog()
        let f = try TestPCIDevice(interrupts: log.wiring).pciFunction
        f.setINTx(true)
        #expect(log.intxLevels == [true] && f.intxLevel && f.status.contains(.interruptStatus))
        f.setINTx(true) // no change, no second call
        f.setINTx(false)
        #expect(log.intxLevels == [true, false] && !f.status.contains(.interruptStatus))
    }

    @Test func interruptDisableGatesThePinButNotTheStatusBit() throws {
        let log = InterruptLog()
        let f = try TestPCIDevice(interrupts: log.wiring).pciFunction
        f.writeConfig(offset: PCIHeader.command, size: 2, value: UInt32(PCICommand.interruptDisable.rawValue))
        f.setINTx(true)
        #expect(log.intxLevels.isEmpty && !f.intxLevel && f.status.contains(.interruptStatus))
        f.writeConfig(offset: PCIHeader.command, size: 2, value: 0) // enabling INTx again shows the pending level
        #expect(log.intxLevels == [true])
        f.writeConfig(offset: PCIHeader.command, size: 2, value: UInt32(PCICommand.interruptDisable.rawValue))
        #expect(log.intxLevels == [true, false])
    }

    @Test func aFunctionWithoutAPinNeverAssertsINTx() throws {
        let log = InterruptLog()
        let f = try TestPCIDevice(TestPCIDevice.definition(pin: nil), interrupts: log.wiring).pciFunction
        f.setINTx(true)
        #expect(log.intxLevels.isEmpty && !f.intxLevel)
    }

    @Test func resetReleasesINTxAndForgetsWhatTheGuestWrote() throws {
        let log = InterruptLog()
        let f = try TestPCIDevice(interrupts: log.wiring).pciFunction
        f.writeConfig(offset: PCIHeader.command, size: 2, value: 0x6)
        f.setBARAddress(0, 0xE000_0000)
        f.setINTx(true)
        f.reset()
        #expect(log.intxLevels == [true, false])
        #expect(f.command == [] && f.barAddress(0) == 0)
    }
}
