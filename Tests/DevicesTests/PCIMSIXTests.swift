// Tests for MSI-X: the capability, the table and pending bits reached through a BAR, masking, INTx gating.
import Devices
import Testing

@Suite struct PCIMSIXTests {
    static let tableBAR = 2, table: UInt64 = 0x2000, pba: UInt64 = 0x3000

    func make(vectors: Int = 3) throws -> (PCIFunction, InterruptLog) {
        let log = InterruptLog()
        let f = try TestPCIDevice(TestPCIDevice.definition(msixVectors: vectors), interrupts: log.wiring).pciFunction
        return (f, log)
    }

    /// Programs entry `vector` through the BAR as a driver does: address, data, then unmask.
    func program(_ f: PCIFunction, vector: Int, address: UInt64, data: UInt32, unmask: Bool = true) {
        let at = Self.table + UInt64(vector) * 16
        f.writeMSIX(bar: Self.tableBAR, offset: at, size: 4, value: address & 0xFFFF_FFFF)
        f.writeMSIX(bar: Self.tableBAR, offset: at + 4, size: 4, value: address >> 32)
        f.writeMSIX(bar: Self.tableBAR, offset: at + 8, size: 4, value: UInt64(data))
        if unmask { f.writeMSIX(bar: Self.tableBAR, offset: at + 12, size: 4, value: 0) }
    }

    func setControl(_ f: PCIFunction, enable: Bool, mask: Bool = false) {
        let at = f.msixCapabilityOffset! + 2
        let control = f.readConfig(offset: at, size: 2) & 0x3FFF | (enable ? 0x8000 : 0) | (mask ? 0x4000 : 0)
        f.writeConfig(offset: at, size: 2, value: control)
    }

    @Test func capabilityDescribesTableAndPendingBits() throws {
        let (f, _) = try make(vectors: 3)
        #expect(f.msixCapabilityOffset == 0x40 && capabilityList(f).map(\.1) == [0x11])
        #expect(f.readConfig(offset: 0x42, size: 2) == 2)            // table size N-1, disabled, unmasked
        #expect(f.readConfig(offset: 0x44, size: 4) == 0x2000 | 2)   // table offset | BIR
        #expect(f.readConfig(offset: 0x48, size: 4) == 0x3000 | 2)   // PBA offset | BIR
        f.writeConfig(offset: 0x42, size: 2, value: 0xFFFF)          // only enable and mask are writable
        #expect(f.readConfig(offset: 0x42, size: 2) == 0xC002)
        f.writeConfig(offset: 0x44, size: 4, value: 0)
        #expect(f.readConfig(offset: 0x44, size: 4) == 0x2002)
    }

    @Test func entriesStartMaskedAndReadBackWhatWasWritten() throws {
        let (f, log) = try make()
        #expect(f.readMSIX(bar: 2, offset: Self.table + 12, size: 4) == 1)
        program(f, vector: 1, address: 0x1_FEE0_1000, data: 0x4041)
        #expect(f.readMSIX(bar: 2, offset: Self.table + 16, size: 8) == 0x1_FEE0_1000)
        #expect(f.readMSIX(bar: 2, offset: Self.table + 24, size: 8) == 0x4041)   // data, control 0 above it
        #expect(f.msixEntry(1) == MSIXTableEntry(messageAddress: 0x1_FEE0_1000, messageData: 0x4041, vectorControl: 0))
        #expect(log.msixChanges.withLock { $0.count } == 4)
        f.writeMSIX(bar: 2, offset: Self.table + 12, size: 4, value: 0xFFFF_FFFF)  // reserved control bits stay 0
        #expect(f.readMSIX(bar: 2, offset: Self.table + 12, size: 4) == 1)
    }

    @Test func signalsNothingWhileDisabled() throws {
        let (f, log) = try make()
        program(f, vector: 0, address: 0xFEE0_0000, data: 0x30)
        #expect(f.signal(vector: 0) == .msixDisabled)
        #expect(log.sentVectors.isEmpty)
    }

    @Test func deliversAnUnmaskedVector() throws {
        let (f, log) = try make()
        program(f, vector: 2, address: 0xFEE0_0000, data: 0x31)
        setControl(f, enable: true)
        #expect(f.signal(vector: 2) == .delivered(MSIMessage(address: 0xFEE0_0000, data: 0x31)))
        #expect(log.sentVectors == [2])
        #expect(f.signal(vector: 3) == .noSuchVector)
    }

    @Test func aMaskedVectorIsHeldPendingAndSentWhenUnmasked() throws {
        let (f, log) = try make()
        program(f, vector: 1, address: 0xFEE0_0000, data: 0x32, unmask: false)
        setControl(f, enable: true)
        #expect(f.signal(vector: 1) == .pending)
        #expect(f.isMSIXPending(1))
        #expect(f.readMSIX(bar: 2, offset: Self.pba, size: 8) == 0b10)
        #expect(log.sentVectors.isEmpty)
        f.writeMSIX(bar: 2, offset: Self.table + 16 + 12, size: 4, value: 0)  // unmask
        #expect(log.sentVectors == [1])
        #expect(!f.isMSIXPending(1) && f.readMSIX(bar: 2, offset: Self.pba, size: 4) == 0)
    }

    @Test func theFunctionMaskHoldsEveryVector() throws {
        let (f, log) = try make()
        program(f, vector: 0, address: 0xFEE0_0000, data: 0x40)
        program(f, vector: 2, address: 0xFEE0_0000, data: 0x42)
        setControl(f, enable: true, mask: true)
        #expect(f.signal(vector: 0) == .pending && f.signal(vector: 2) == .pending)
        #expect(f.readMSIX(bar: 2, offset: Self.pba, size: 8) == 0b101)
        setControl(f, enable: true, mask: false)
        #expect(log.sentVectors == [0, 2])
        #expect(log.msixChanges.withLock { $0.suffix(2) } == [.control(enabled: true, functionMasked: true),
                                                             .control(enabled: true, functionMasked: false)])
    }

    @Test func pendingBitsAreReadOnlyAndOddAccessesAreIgnored() throws {
        let (f, _) = try make()
        setControl(f, enable: true)
        #expect(f.signal(vector: 0) == .pending)
        #expect(f.writeMSIX(bar: 2, offset: Self.pba, size: 8, value: 0))
        #expect(f.isMSIXPending(0))
        f.writeMSIX(bar: 2, offset: Self.table + 2, size: 4, value: 0xFFFF_FFFF)  // misaligned: dropped
        f.writeMSIX(bar: 2, offset: Self.table, size: 2, value: 0xFFFF)           // 2 bytes: dropped
        #expect(f.msixEntry(0) == MSIXTableEntry())
        #expect(f.readMSIX(bar: 2, offset: Self.table + 4, size: 8) == 0)          // misaligned qword reads 0
    }

    @Test func accessesOutsideTheTableAndPendingBitsAreTheDevices() throws {
        let (f, _) = try make()
        #expect(f.readMSIX(bar: 2, offset: 0x1FFC, size: 4) == nil)
        #expect(f.readMSIX(bar: 2, offset: Self.table + 3 * 16, size: 4) == nil)  // just past 3 entries
        #expect(f.readMSIX(bar: 0, offset: Self.table, size: 4) == nil)
        #expect(!f.writeMSIX(bar: 2, offset: 0x100, size: 4, value: 1))
        #expect(f.readMSIX(bar: 2, offset: Self.pba + 8, size: 4) == nil)          // PBA is one qword for 3 vectors
    }

    @Test func enablingMSIXTakesOverFromINTx() throws {
        let (f, log) = try make()
        f.setINTx(true)
        #expect(log.intxLevels == [true])
        setControl(f, enable: true)
        #expect(log.intxLevels == [true, false] && !f.intxLevel)
        setControl(f, enable: false)
        #expect(log.intxLevels == [true, false, true])
    }

    @Test func resetMasksEveryVectorAndTurnsMSIXOff() throws {
        let (f, log) = try make()
        program(f, vector: 1, address: 0xFEE0_0000, data: 0x33)
        setControl(f, enable: true)
        log.msixChanges.withLock { $0 = [] }
        f.reset()
        #expect(!f.isMSIXEnabled && f.msixEntry(1) == MSIXTableEntry())
        #expect(f.readConfig(offset: 0x42, size: 2) == 2)
        #expect(log.msixChanges.withLock { $0 } == [.control(enabled: false, functionMasked: false),
                                                    .entry(vector: 1, MSIXTableEntry())])
        #expect(f.signal(vector: 1) == .msixDisabled)
    }

    @Test func refusesTablesOutsideTheirBAR() {
        func msix(_ table: UInt32, _ pba: UInt32, vectors: Int = 4, bar: Int = 2) -> PCIFunctionDefinition {
            var d = TestPCIDevice.definition()
            d.msix = PCIMSIXDefinition(vectorCount: vectors, tableBAR: bar, tableOffset: table, pendingBitArrayBAR: 2, pendingBitArrayOffset: pba)
            return d
        }
        #expect(throws: PCIError.self) { try PCIFunction(msix(0x3FF8, 0)) }        // table runs past 16 KiB
        #expect(throws: PCIError.self) { try PCIFunction(msix(0x2004, 0x3000)) }   // not 8-byte aligned
        #expect(throws: PCIError.self) { try PCIFunction(msix(0x2000, 0x2008)) }   // PBA inside the table
        #expect(throws: PCIError.self) { try PCIFunction(msix(0, 0x3000, bar: 3)) } // BAR 3 is BAR 2's upper half
        #expect(throws: PCIError.msixVectorCount(0)) { try PCIFunction(msix(0x2000, 0x3000, vectors: 0)) }
        #expect(throws: PCIError.msixVectorCount(2049)) { try PCIFunction(msix(0x2000, 0x3000, vectors: 2049)) }
    }

    @Test func messagesDecodeTheX86Fields() {
        let m = MSIMessage(address: 0xFEE0_3000, data: 0x4051)
        #expect(m.isX86InterruptAddress && m.destinationID == 3 && m.vector == 0x51)
        #expect(m.description == "MSI 0x4051 → 0xfee03000 (APIC 3, vector 81)")
    }
}
