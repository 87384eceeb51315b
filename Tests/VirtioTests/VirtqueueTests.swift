// Tests of the split virtqueue and the descriptor-chain parser: honest chains are parsed exactly, and every
// hostile chain is refused with the fault that names it (no trap, no access outside guest RAM).
import GuestMemory
import Testing
@testable import Virtio

@Suite struct VirtqueueTests {
    @Test func popsAChainOfReadableThenWritableBuffers() throws {
        let memory = try testMemory()
        let ring = RingBuilder(memory: memory, size: 8, base: 0x1000)
        try ring.descriptor(3, address: 0x8000, length: 5, flags: VirtqueueLayout.descriptorNext, next: 5)
        try ring.descriptor(5, address: 0x9000, length: 64, flags: VirtqueueLayout.descriptorWrite)
        try memory.write(bytes: Array("hello".utf8), at: GuestAddress(0x8000))
        try ring.publish(3)
        var queue = try ring.queue()
        let chain = try #require(try queue.pop(memory: memory))
        #expect(chain.head == 3)
        #expect(chain.buffers.map(\.descriptor) == [3, 5])
        #expect(chain.readableLength == 5 && chain.writableLength == 64)
        #expect(try chain.readableBytes(in: memory) == Array("hello".utf8))
        #expect(try chain.write(Array("world!".utf8), to: memory) == 6)
        #expect(try memory.readBytes(at: GuestAddress(0x9000), count: 6) == Array("world!".utf8))
        #expect(try queue.pop(memory: memory) == nil, "nothing more is available")
    }

    @Test func usedElementsArePublishedWithTheIndexAndWrapAround() throws {
        let memory = try testMemory()
        let ring = RingBuilder(memory: memory, size: 4, base: 0x1000)
        try ring.descriptor(0, address: 0x8000, length: 1)
        var queue = try ring.queue()
        // Run the free-running indexes past 2^16 to check the wrap-around arithmetic.
        for round in 0..<(70_000) {
            try ring.publish(0)
            let chain = try #require(try queue.pop(memory: memory))
            try queue.pushUsed(memory: memory, head: chain.head, length: UInt32(round & 0xFF))
        }
        #expect(try ring.usedIndex == UInt16(truncatingIfNeeded: 70_000))
        let last = try ring.usedElement(UInt16(truncatingIfNeeded: 70_000 - 1))
        #expect(last.id == 0 && last.length == UInt32((70_000 - 1) & 0xFF))
    }

    @Test func indirectTableIsFollowedWhenNegotiated() throws {
        let memory = try testMemory()
        let ring = RingBuilder(memory: memory, size: 4, base: 0x1000)
        let table = GuestAddress(0x4000)
        try ring.descriptor(0, address: 0x8000, length: 2, flags: VirtqueueLayout.descriptorNext, next: 1, in: table)
        try ring.descriptor(1, address: 0x8100, length: 3, flags: VirtqueueLayout.descriptorNext, next: 2, in: table)
        try ring.descriptor(2, address: 0x9000, length: 16, flags: VirtqueueLayout.descriptorWrite, in: table)
        try ring.descriptor(1, address: table.rawValue, length: 48, flags: VirtqueueLayout.descriptorIndirect)
        try ring.publish(1)
        var queue = try ring.queue(features: VirtioFeature.version1 | VirtioFeature.indirectDescriptors)
        let chain = try #require(try queue.pop(memory: memory))
        #expect(chain.head == 1)
        #expect(chain.buffers.map(\.length) == [2, 3, 16])
        #expect(chain.buffers.allSatisfy { $0.indirect })
    }

    // MARK: Hostile chains

    /// Publishes head 0 after `setup` wrote the descriptors, pops, and returns the fault.
    func fault(size: UInt16 = 8, features: UInt64 = VirtioFeature.version1 | VirtioFeature.indirectDescriptors,
               memorySize: UInt64 = 1 << 20, _ setup: (RingBuilder) throws -> Void) throws -> VirtioFault? {
        let memory = try testMemory(memorySize)
        let ring = RingBuilder(memory: memory, size: size, base: 0x1000)
        try setup(ring)
        var queue = try ring.queue(features: features)
        do {
            _ = try queue.pop(memory: memory)
            return nil
        } catch { return error }
    }

    @Test func aLoopIsRefused() throws {
        let f = try fault { r in
            try r.descriptor(0, address: 0x8000, length: 1, flags: VirtqueueLayout.descriptorNext, next: 1)
            try r.descriptor(1, address: 0x8000, length: 1, flags: VirtqueueLayout.descriptorNext, next: 0)
            try r.publish(0)
        }
        #expect(f == .descriptorLoop(head: 0, descriptor: 0, indirect: false))
        #expect(f?.description == "descriptor chain from head 0 loops: it reaches descriptor 0 a second time")
    }

    @Test func aSelfLoopInsideAnIndirectTableIsRefused() throws {
        let f = try fault { r in
            try r.descriptor(0, address: 0x4000, length: 32, flags: VirtqueueLayout.descriptorIndirect)
            try r.descriptor(0, address: 0x8000, length: 1, flags: VirtqueueLayout.descriptorNext, next: 1, in: GuestAddress(0x4000))
            try r.descriptor(1, address: 0x8000, length: 1, flags: VirtqueueLayout.descriptorNext, next: 1, in: GuestAddress(0x4000))
            try r.publish(0)
        }
        #expect(f == .descriptorLoop(head: 0, descriptor: 1, indirect: true))
    }

    @Test func aBufferOutsideRAMIsRefused() throws {
        let f = try fault { r in
            try r.descriptor(0, address: 0x10_0000 - 8, length: 16)
            try r.publish(0)
        }
        #expect(f == .bufferOutsideRAM(descriptor: 0, address: GuestAddress(0xFFFF8), length: 16, indirect: false))
        #expect(f?.description.contains("outside guest RAM") == true)
    }

    @Test func aBufferThatWrapsAroundTheAddressSpaceIsRefused() throws {
        let f = try fault { r in
            try r.descriptor(0, address: UInt64.max - 1, length: 0x1000)
            try r.publish(0)
        }
        #expect(f == .bufferOutsideRAM(descriptor: 0, address: GuestAddress(UInt64.max - 1), length: 0x1000, indirect: false))
    }

    @Test func aGiantLengthIsRefused() throws {
        let f = try fault { r in
            try r.descriptor(0, address: 0x8000, length: 0xFFFF_FFFF)
            try r.publish(0)
        }
        #expect(f == .bufferOutsideRAM(descriptor: 0, address: GuestAddress(0x8000), length: 0xFFFF_FFFF, indirect: false))
    }

    @Test func buffersAddingUpToFourGiBAreAnImpossibleLength() throws {
        // 9 GiB of RAM is only reserved address space (MAP_NORESERVE); nothing is touched but the rings.
        let f = try fault(memorySize: 9 << 30) { r in
            try r.descriptor(0, address: 1 << 30, length: 0xFFFF_0000, flags: VirtqueueLayout.descriptorNext, next: 1)
            try r.descriptor(1, address: 6 << 30, length: 0x10_0000)
            try r.publish(0)
        }
        #expect(f == .chainLengthOverflow(head: 0))
    }

    @Test func aNextOutsideTheTableIsRefused() throws {
        let f = try fault { r in
            try r.descriptor(0, address: 0x8000, length: 1, flags: VirtqueueLayout.descriptorNext, next: 8)
            try r.publish(0)
        }
        #expect(f == .nextOutOfRange(descriptor: 0, next: 8, tableSize: 8, indirect: false))
    }

    @Test func aHeadOutsideTheTableIsRefused() throws {
        let f = try fault { r in try r.publish(200) }
        #expect(f == .headOutOfRange(head: 200, queueSize: 8))
    }

    @Test func anAvailableIndexThatJumpsAheadIsRefused() throws {
        let f = try fault { r in try r.setAvailableIndex(9) }
        #expect(f == .availableIndexJumped(from: 0, to: 9, queueSize: 8))
        #expect(f?.description == "available index jumped from 0 to 9, 9 entries ahead, more than the queue size 8")
    }

    @Test func aChainLongerThanTheQueueSizeIsRefused() throws {
        // 16 descriptors in an indirect table of a queue of size 8.
        let f = try fault { r in
            let table = GuestAddress(0x4000)
            for i in UInt16(0)..<16 {
                try r.descriptor(i, address: 0x8000, length: 1, flags: i < 15 ? VirtqueueLayout.descriptorNext : 0, next: i + 1, in: table)
            }
            try r.descriptor(0, address: table.rawValue, length: 16 * 16, flags: VirtqueueLayout.descriptorIndirect)
            try r.publish(0)
        }
        #expect(f == .chainTooLong(head: 0, count: 9, queueSize: 8))
    }

    @Test func readableAfterWritableIsRefused() throws {
        let f = try fault { r in
            try r.descriptor(0, address: 0x8000, length: 4, flags: VirtqueueLayout.descriptorWrite | VirtqueueLayout.descriptorNext, next: 1)
            try r.descriptor(1, address: 0x9000, length: 4)
            try r.publish(0)
        }
        #expect(f == .readableAfterWritable(descriptor: 1))
    }

    @Test(arguments: [UInt32(0), 15, 17])
    func anIndirectTableWithAnImpossibleLengthIsRefused(length: UInt32) throws {
        let f = try fault { r in
            try r.descriptor(0, address: 0x4000, length: length, flags: VirtqueueLayout.descriptorIndirect)
            try r.publish(0)
        }
        #expect(f == .indirectTableLength(descriptor: 0, length: length))
    }

    @Test func indirectRulesAreEnforced() throws {
        let nested = try fault { r in
            try r.descriptor(0, address: 0x4000, length: 16, flags: VirtqueueLayout.descriptorIndirect)
            try r.descriptor(0, address: 0x5000, length: 16, flags: VirtqueueLayout.descriptorIndirect, in: GuestAddress(0x4000))
            try r.publish(0)
        }
        #expect(nested == .nestedIndirect(descriptor: 0))
        let withNext = try fault { r in
            try r.descriptor(0, address: 0x4000, length: 16, flags: VirtqueueLayout.descriptorIndirect | VirtqueueLayout.descriptorNext, next: 1)
            try r.publish(0)
        }
        #expect(withNext == .indirectWithNext(descriptor: 0))
        let notNegotiated = try fault(features: VirtioFeature.version1) { r in
            try r.descriptor(0, address: 0x4000, length: 16, flags: VirtqueueLayout.descriptorIndirect)
            try r.publish(0)
        }
        #expect(notNegotiated == .indirectNotNegotiated(descriptor: 0))
        let outside = try fault { r in
            try r.descriptor(0, address: 0xFFFF0, length: 32, flags: VirtqueueLayout.descriptorIndirect)
            try r.publish(0)
        }
        #expect(outside == .indirectTableOutsideRAM(descriptor: 0, address: GuestAddress(0xFFFF0), length: 32))
    }

    @Test func writableBuffersMayNotOverlapEachOtherOrTheRings() throws {
        let overlap = try fault { r in
            try r.descriptor(0, address: 0x8000, length: 16, flags: VirtqueueLayout.descriptorNext, next: 1)
            try r.descriptor(1, address: 0x8008, length: 16, flags: VirtqueueLayout.descriptorWrite)
            try r.publish(0)
        }
        #expect(overlap == .buffersOverlap(descriptor: 1, other: 0))
        let ringOverlap = try fault { r in
            try r.descriptor(0, address: r.used.rawValue, length: 8, flags: VirtqueueLayout.descriptorWrite)
            try r.publish(0)
        }
        #expect(ringOverlap == .bufferOverlapsRing(descriptor: 0, part: "used ring"))
        // Readable buffers may overlap anything: the device only reads them.
        let readable = try fault { r in
            try r.descriptor(0, address: r.table.rawValue, length: 64, flags: VirtqueueLayout.descriptorNext, next: 1)
            try r.descriptor(1, address: r.table.rawValue, length: 64)
            try r.publish(0)
        }
        #expect(readable == nil)
    }

    // MARK: Layout

    @Test func enablingChecksTheLayout() throws {
        let memory = try testMemory()
        func enable(size: UInt16 = 8, table: UInt64 = 0x1000, avail: UInt64 = 0x2000, used: UInt64 = 0x3000) -> VirtioFault? {
            var q = Virtqueue(index: 0, maxSize: 16)
            q.size = size
            q.descriptorTable = GuestAddress(table)
            q.driverArea = GuestAddress(avail)
            q.deviceArea = GuestAddress(used)
            do { try q.enable(memory: memory, features: 0); return nil } catch { return error }
        }
        #expect(enable() == nil)
        #expect(enable(size: 0) == .invalidQueueSize(size: 0, maximum: 16))
        #expect(enable(size: 12) == .invalidQueueSize(size: 12, maximum: 16))
        #expect(enable(size: 32) == .invalidQueueSize(size: 32, maximum: 16))
        #expect(enable(table: 0x1008) == .ringMisaligned(part: "descriptor table", address: GuestAddress(0x1008), alignment: 16))
        #expect(enable(used: 0x3002) == .ringMisaligned(part: "used ring", address: GuestAddress(0x3002), alignment: 4))
        #expect(enable(used: 0xFFFF0) == .ringOutsideRAM(part: "used ring", address: GuestAddress(0xFFFF0), length: 6 + 8 * 8))
        #expect(enable(avail: 0x1040) == .ringsOverlap("descriptor table", "available ring"))
    }

    // MARK: Notification suppression

    @Test func noInterruptFlagSuppressesInterruptsWithoutEventIndex() throws {
        let memory = try testMemory()
        let ring = RingBuilder(memory: memory, size: 4, base: 0x1000)
        var queue = try ring.queue()
        #expect(try queue.needsInterrupt(memory: memory))
        try ring.setAvailableFlags(VirtqueueLayout.availableNoInterrupt)
        #expect(try !queue.needsInterrupt(memory: memory))
    }

    @Test func eventIndexInterruptsOnlyWhenUsedEventIsPassed() throws {
        let memory = try testMemory()
        let ring = RingBuilder(memory: memory, size: 8, base: 0x1000)
        try ring.descriptor(0, address: 0x8000, length: 1)
        var queue = try ring.queue(features: VirtioFeature.version1 | VirtioFeature.eventIndex)
        func useOne() throws {
            try ring.publish(0)
            let chain = try #require(try queue.pop(memory: memory))
            try queue.pushUsed(memory: memory, head: chain.head, length: 0)
        }
        try ring.setUsedEvent(2) // "interrupt me when used idx passes 2"
        try useOne()
        #expect(try queue.needsInterrupt(memory: memory), "the first check always interrupts")
        #expect(try ring.availEvent == 1, "the device asks to be kicked for the next entry")
        try useOne() // used idx 2
        #expect(try !queue.needsInterrupt(memory: memory))
        try useOne() // used idx 3: passed used_event 2
        #expect(try queue.needsInterrupt(memory: memory))
        try useOne()
        #expect(try !queue.needsInterrupt(memory: memory))
    }
}
