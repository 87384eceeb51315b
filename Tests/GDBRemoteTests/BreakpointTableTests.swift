// Debug-register allocation and the DR7 encoding (Intel SDM Vol. 3B §18.2.4).
import GDBRemote
import Testing

struct BreakpointTableTests {
    @Test func anExecutionBreakpointTakesDR0WithRWAndLenZero() throws {
        var table = BreakpointTable()
        let request = BreakpointRequest(type: .hardware, address: 0xFFFF_FFFF_82F6_B3E0, length: 1)
        #expect(try table.addHardware(request).get() == [0])
        let dr = table.debugRegisters
        #expect(dr[0] == 0xFFFF_FFFF_82F6_B3E0)
        #expect(dr[7] == 0x601) // L0, GE, bit 10
        #expect(table.request(matching: [0]) == request)
        let removed = table.removeHardware(request)
        #expect(removed)
        #expect(table.debugRegisters[7] == 0x400)
        let removedAgain = table.removeHardware(request)
        #expect(!removedAgain)
    }

    @Test func watchpointsEncodeTheirConditionAndLength() throws {
        var table = BreakpointTable()
        _ = try table.addHardware(BreakpointRequest(type: .writeWatchpoint, address: 0x2000, length: 4)).get()
        _ = try table.addHardware(BreakpointRequest(type: .accessWatchpoint, address: 0x3000, length: 8)).get()
        let dr7 = table.debugRegisters[7]
        #expect(dr7 & 0xFF == 0b0101)                   // L0, L1
        #expect((dr7 >> 16) & 0xF == 0b1101)            // R/W0 = 01 (write), LEN0 = 11 (4 bytes)
        #expect((dr7 >> 20) & 0xF == 0b1011)            // R/W1 = 11 (access), LEN1 = 10 (8 bytes)
    }

    @Test func anUnalignedRangeIsSplitAndTheRegistersRunOut() {
        var table = BreakpointTable()
        // 0x1003 + 6: pieces 1 @0x1003, 4 @0x1004, 1 @0x1008.
        let split = try? table.addHardware(BreakpointRequest(type: .writeWatchpoint, address: 0x1003, length: 6)).get()
        #expect(split == [0, 1, 2])
        #expect(table.slots.compactMap { $0?.length } == [1, 4, 1])
        func add(_ address: UInt64, _ length: Int) -> Result<[Int], HardwareBreakpointError> {
            table.addHardware(BreakpointRequest(type: .writeWatchpoint, address: address, length: length))
        }
        #expect(add(0x4000, 16) == .failure(.noFreeRegister(needed: 2, free: 1)))
        #expect(add(0x4000, 0) == .failure(.badLength(0)))
        #expect(add(0x4001, 32) == .failure(.badLength(32)))
        #expect(add(0xFFFF_FFFF_FFFF_FFFF, 2) == .failure(.badLength(2)))
    }

    @Test func softwareBreakpointsRememberTheByteTheyReplaced() {
        var table = BreakpointTable()
        table.addSoftware(SoftwareBreakpoint(address: 0x10_0000, physical: 0x10_0000, original: 0x55))
        #expect(!table.isEmpty)
        let first = table.removeSoftware(at: 0x10_0000)
        #expect(first?.original == 0x55)
        let second = table.removeSoftware(at: 0x10_0000)
        #expect(second == nil)
        #expect(table.isEmpty)
    }
}
