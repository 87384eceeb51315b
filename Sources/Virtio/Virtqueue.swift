// Virtqueue: the device side of one split virtqueue (virtio 1.2 §2.7).
//
// The driver owns three areas of guest memory per queue, drawn in docs/virtio.md:
//   descriptor table  size × 16 bytes: {le64 addr, le32 len, le16 flags, le16 next}      (16-byte aligned)
//   available ring    le16 flags, le16 idx, le16 ring[size], le16 used_event               (2-byte aligned)
//   used ring         le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event    (4-byte aligned)
// The driver publishes chains by writing their heads into the available ring and moving avail.idx; the
// device consumes them in order (`pop`), hands each back through the used ring (`pushUsed`), and decides
// whether the driver wants an interrupt for it (`needsInterrupt`: VIRTQ_AVAIL_F_NO_INTERRUPT, or with
// VIRTIO_F_EVENT_IDX the used_event index, §2.7.10). Every access goes through GuestMemory's checked API,
// and the layout is checked once when the queue is enabled, so a bad address is a VirtioFault, never a trap.
// Ordering: the index is read before the entries it covers (acquire), and used entries are written before
// the used index that publishes them (release), matching the driver's barriers on the other CPU.
import GuestMemory
import Synchronization

public struct Virtqueue: Sendable {
    public let index: Int
    /// The largest size the device accepts (QueueNumMax / queue_size at reset).
    public let maxSize: UInt16
    /// The size the driver chose.
    public var size: UInt16
    /// QueueReady / queue_enable.
    public var ready = false
    public var descriptorTable = GuestAddress(0)
    /// The available ring ("driver area").
    public var driverArea = GuestAddress(0)
    /// The used ring ("device area").
    public var deviceArea = GuestAddress(0)

    /// The next available-ring entry the device will consume (free-running, wraps at 2^16).
    public private(set) var nextAvailable: UInt16 = 0
    /// The used index the device will publish next (free-running).
    public private(set) var nextUsed: UInt16 = 0
    /// Set by `enable`: the queue's layout was checked against guest RAM.
    public private(set) var enabled = false
    var eventIndex = false
    var indirect = false
    /// EVENT_IDX bookkeeping: the used index when the driver was last notified (vhost's signalled_used).
    var signalledUsed: UInt16 = 0
    var signalledUsedValid = false
    var areas: [(name: String, range: AddressRange)] = []

    public init(index: Int, maxSize: UInt16) {
        self.index = index
        self.maxSize = maxSize
        self.size = maxSize
    }

    /// Back to the state after a device reset.
    public mutating func reset() { self = Virtqueue(index: index, maxSize: maxSize) }

    // MARK: Layout

    var usedEventAddress: GuestAddress { GuestAddress(driverArea.rawValue &+ 4 &+ 2 * UInt64(size)) }
    var availEventAddress: GuestAddress { GuestAddress(deviceArea.rawValue &+ 4 &+ 8 * UInt64(size)) }

    /// Checks the driver's layout against guest RAM and the rules of §2.7 and remembers the features that
    /// change how the rings are read. Called when the device is activated (DRIVER_OK) for every ready queue.
    public mutating func enable(memory: GuestMemory, features: UInt64) throws(VirtioFault) {
        guard size > 0, size <= maxSize, size & (size - 1) == 0 else {
            throw .invalidQueueSize(size: size, maximum: maxSize)
        }
        let parts: [(String, GuestAddress, UInt64, UInt64)] = [
            ("descriptor table", descriptorTable, VirtqueueLayout.descriptorTableBytes(size), 16),
            ("available ring", driverArea, VirtqueueLayout.availableRingBytes(size), 2),
            ("used ring", deviceArea, VirtqueueLayout.usedRingBytes(size), 4),
        ]
        var areas: [(name: String, range: AddressRange)] = []
        for (name, address, length, alignment) in parts {
            guard address.rawValue % alignment == 0 else { throw .ringMisaligned(part: name, address: address, alignment: alignment) }
            guard let range = AddressRange(base: address, length: length), memory.contains(address, length: length) else {
                throw .ringOutsideRAM(part: name, address: address, length: length)
            }
            if let clash = areas.first(where: { $0.range.overlaps(range) }) { throw .ringsOverlap(clash.name, name) }
            areas.append((name, range))
        }
        self.areas = areas
        eventIndex = features & VirtioFeature.eventIndex != 0
        indirect = features & VirtioFeature.indirectDescriptors != 0
        enabled = true
    }

    // MARK: Consuming available buffers

    func read16(_ memory: GuestMemory, _ address: GuestAddress) throws(VirtioFault) -> UInt16 {
        do { return try memory.read(UInt16.self, at: address) } catch { throw .memory(error) }
    }

    func write16(_ memory: GuestMemory, _ value: UInt16, _ address: GuestAddress) throws(VirtioFault) {
        do { try memory.write(value, at: address) } catch { throw .memory(error) }
    }

    /// How many chains the driver has made available and the device not yet consumed.
    public func availableCount(memory: GuestMemory) throws(VirtioFault) -> UInt16 {
        guard enabled else { return 0 }
        let availableIndex = try read16(memory, GuestAddress(driverArea.rawValue + 2))
        let pending = availableIndex &- nextAvailable
        guard pending <= size else { throw .availableIndexJumped(from: nextAvailable, to: availableIndex, queueSize: size) }
        return pending
    }

    /// The next available chain, parsed and checked; nil when the driver has made nothing new available.
    public mutating func pop(memory: GuestMemory) throws(VirtioFault) -> DescriptorChain? {
        guard try availableCount(memory: memory) > 0 else { return nil }
        // The entries behind avail.idx are only valid after the index was read.
        atomicMemoryFence(ordering: .acquiring)
        let slot = GuestAddress(driverArea.rawValue + 4 + 2 * UInt64(nextAvailable % size))
        let head = try read16(memory, slot)
        let chain = try DescriptorChain.parse(head: head, in: memory, .init(
            table: descriptorTable, queueSize: size, indirectAllowed: indirect, ringAreas: areas))
        nextAvailable &+= 1
        // EVENT_IDX: ask to be kicked when the driver makes entry `nextAvailable` available (§2.7.10).
        if eventIndex { try write16(memory, nextAvailable, availEventAddress) }
        return chain
    }

    /// Returns a chain to the driver with `length` bytes written into its device-writable buffers.
    public mutating func pushUsed(memory: GuestMemory, head: UInt16, length: UInt32) throws(VirtioFault) {
        let element = deviceArea.rawValue + 4 + 8 * UInt64(nextUsed % size)
        do {
            try memory.write(UInt32(head), at: GuestAddress(element))
            try memory.write(length, at: GuestAddress(element + 4))
            // The element must be visible before the index that publishes it.
            atomicMemoryFence(ordering: .releasing)
            nextUsed &+= 1
            try memory.write(nextUsed, at: GuestAddress(deviceArea.rawValue + 2))
        } catch { throw .memory(error) }
    }

    /// Whether the driver wants an interrupt for the used buffers published since the last one (§2.7.7.2,
    /// §2.7.10): with EVENT_IDX when the used index passed used_event, else unless VIRTQ_AVAIL_F_NO_INTERRUPT.
    public mutating func needsInterrupt(memory: GuestMemory) throws(VirtioFault) -> Bool {
        // The used index must be visible before the driver's suppression fields are read.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if eventIndex {
            let usedEvent = try read16(memory, usedEventAddress)
            let old = signalledUsed, new = nextUsed
            let valid = signalledUsedValid
            signalledUsed = new
            signalledUsedValid = true
            if !valid { return true }
            // vring_need_event: did the used index step over used_event since the last interrupt?
            return new &- usedEvent &- 1 < new &- old
        }
        let flags = try read16(memory, driverArea)
        return flags & VirtqueueLayout.availableNoInterrupt == 0
    }
}
