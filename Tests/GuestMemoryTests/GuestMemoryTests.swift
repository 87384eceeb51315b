// Tests for guest addresses, ranges and bounds-checked guest memory access.
import GuestMemory
import Testing

@Suite struct AddressRangeTests {
    @Test func rejectsZeroLengthAndWrapAround() {
        #expect(AddressRange(base: GuestAddress(0x1000), length: 0) == nil)
        #expect(AddressRange(base: GuestAddress(UInt64.max), length: 2) == nil)
        #expect(AddressRange(base: GuestAddress(UInt64.max), length: 1) != nil)
    }

    @Test func containsAndOverlapsAtTheEdges() throws {
        let r = try #require(AddressRange(base: GuestAddress(0x1000), length: 0x1000))
        #expect(r.contains(GuestAddress(0x1000)))
        #expect(r.contains(GuestAddress(0x1FFF)))
        #expect(!r.contains(GuestAddress(0x2000)))
        #expect(r.contains(GuestAddress(0x1FFC), length: 4))
        #expect(!r.contains(GuestAddress(0x1FFD), length: 4))
        #expect(r.overlaps(try #require(AddressRange(base: GuestAddress(0x1FFF), length: 1))))
        #expect(!r.overlaps(try #require(AddressRange(base: GuestAddress(0x2000), length: 1))))
    }

    @Test func addingReportsOverflowAsNil() {
        #expect(GuestAddress(UInt64.max).adding(1) == nil)
        #expect(GuestAddress(1).adding(2) == GuestAddress(3))
    }
}

@Suite struct GuestMemoryAccessTests {
    @Test func readsBackLittleEndianValues() throws {
        let memory = try GuestMemory(layout: [(GuestAddress(0), 0x10000)])
        try memory.write(UInt32(0x1122_3344), at: GuestAddress(0x100))
        #expect(try memory.readBytes(at: GuestAddress(0x100), count: 4) == [0x44, 0x33, 0x22, 0x11])
        #expect(try memory.read(UInt16.self, at: GuestAddress(0x102)) == 0x1122)
        try memory.write(UInt64.max, at: GuestAddress(0xFFF8))
        #expect(try memory.read(UInt64.self, at: GuestAddress(0xFFF8)) == UInt64.max)
    }

    @Test func refusesAccessesThatLeaveRAM() throws {
        let memory = try GuestMemory(layout: [(GuestAddress(0), 0x10000)])
        #expect(throws: GuestMemoryError.outOfBounds(address: GuestAddress(0xFFFE), length: 4)) {
            try memory.write(UInt32(1), at: GuestAddress(0xFFFE))
        }
        #expect(throws: GuestMemoryError.self) { try memory.readBytes(at: GuestAddress(0x20000), count: 1) }
        #expect(throws: GuestMemoryError.self) { try memory.write(bytes: [1, 2, 3], at: GuestAddress(UInt64.max - 1)) }
    }

    @Test func accessesMayNotStraddleTwoRegions() throws {
        let memory = try GuestMemory(layout: [(GuestAddress(0), 0x1000), (GuestAddress(0x1000), 0x1000)])
        #expect(memory.totalSize == 0x2000)
        #expect(throws: GuestMemoryError.self) { try memory.write(UInt32(1), at: GuestAddress(0xFFE)) }
        try memory.write(UInt32(7), at: GuestAddress(0x1000))
        #expect(try memory.read(UInt32.self, at: GuestAddress(0x1000)) == 7)
    }

    @Test func refusesOverlappingRegions() {
        #expect(throws: GuestMemoryError.self) {
            _ = try GuestMemory(layout: [(GuestAddress(0), 0x2000), (GuestAddress(0x1000), 0x1000)])
        }
    }

    @Test func newMemoryReadsAsZeroAndZeroClears() throws {
        let memory = try GuestMemory(layout: [(GuestAddress(0x10_0000), 0x4000)])
        #expect(try memory.read(UInt64.self, at: GuestAddress(0x10_1000)) == 0)
        try memory.write(bytes: [UInt8](repeating: 0xAA, count: 64), at: GuestAddress(0x10_0000))
        try memory.zero(at: GuestAddress(0x10_0010), count: 16)
        let bytes = try memory.readBytes(at: GuestAddress(0x10_0000), count: 48)
        #expect(bytes[0..<16].allSatisfy { $0 == 0xAA } && bytes[16..<32].allSatisfy { $0 == 0 } && bytes[32...].allSatisfy { $0 == 0xAA })
    }
}
