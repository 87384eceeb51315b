// DescriptorChain: one request of a split virtqueue, parsed and checked (virtio 1.2 §2.7.5, §2.7.5.3).
//
// A chain starts at the head index the driver put in the available ring and follows `next` through the
// descriptor table; a descriptor with VIRTQ_DESC_F_INDIRECT hands over to a table of descriptors elsewhere
// in guest memory. The parser reads every descriptor through GuestMemory's checked accessors and refuses,
// with a VirtioFault naming the descriptor, everything a hostile driver can put there: an index outside
// the table, a loop, more descriptors than the queue size, buffers outside RAM or adding up to an
// impossible length, readable after writable, nested or malformed indirect tables, and device-writable
// buffers that overlap each other or the queue's own rings (the device would overwrite its own input).
// What it returns is a list of buffers that are known to lie in RAM, so devices copy without further checks.
import GuestMemory

/// One buffer of a chain.
public struct VirtqueueBuffer: Equatable, Sendable {
    public let address: GuestAddress
    public let length: UInt32
    /// Device-writable (VIRTQ_DESC_F_WRITE) or device-readable.
    public let writable: Bool
    /// The descriptor's index in its table (the queue's, or the indirect table's), for messages.
    public let descriptor: UInt16
    public let indirect: Bool
}

public struct DescriptorChain: Equatable, Sendable {
    /// The head index: what goes back in the used ring's `id`.
    public let head: UInt16
    public let buffers: [VirtqueueBuffer]

    public var readableLength: UInt64 { buffers.reduce(0) { $0 + ($1.writable ? 0 : UInt64($1.length)) } }
    public var writableLength: UInt64 { buffers.reduce(0) { $0 + ($1.writable ? UInt64($1.length) : 0) } }

    /// The device-readable bytes of the chain, in order (at most `limit` of them).
    public func readableBytes(in memory: GuestMemory, limit: Int = Int.max) throws(GuestMemoryError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(min(readableLength, UInt64(limit))))
        for buffer in buffers where !buffer.writable {
            let take = min(Int(buffer.length), limit - bytes.count)
            if take <= 0 { break }
            bytes += try memory.readBytes(at: buffer.address, count: take)
        }
        return bytes
    }

    /// Copies `bytes` into the device-writable buffers in order; returns how many bytes fitted.
    public func write<C: Collection<UInt8>>(_ bytes: C, to memory: GuestMemory) throws(GuestMemoryError) -> Int {
        var rest = bytes[...]
        var written = 0
        for buffer in buffers where buffer.writable && !rest.isEmpty {
            let chunk = rest.prefix(Int(buffer.length))
            try memory.write(bytes: chunk, at: buffer.address)
            written += chunk.count
            rest = rest.dropFirst(chunk.count)
        }
        return written
    }

    // MARK: Parsing

    /// Where a chain comes from and what it may not touch.
    public struct Context {
        /// The queue's descriptor table and its size (the queue size).
        public var table: GuestAddress
        public var queueSize: UInt16
        /// VIRTIO_F_INDIRECT_DESC was negotiated.
        public var indirectAllowed: Bool
        /// The queue's own ring areas, which device-writable buffers must not overlap.
        public var ringAreas: [(name: String, range: AddressRange)]

        public init(table: GuestAddress, queueSize: UInt16, indirectAllowed: Bool, ringAreas: [(name: String, range: AddressRange)] = []) {
            self.table = table
            self.queueSize = queueSize
            self.indirectAllowed = indirectAllowed
            self.ringAreas = ringAreas
        }
    }

    struct RawDescriptor {
        var address: UInt64
        var length: UInt32
        var flags: UInt16
        var next: UInt16
    }

    static func readDescriptor(_ memory: GuestMemory, table: GuestAddress, index: UInt16) throws(VirtioFault) -> RawDescriptor {
        // The table lies in RAM (checked when the queue became ready, or just now for an indirect table).
        let at = table.rawValue &+ VirtqueueLayout.descriptorSize * UInt64(index)
        do {
            return RawDescriptor(address: try memory.read(UInt64.self, at: GuestAddress(at)),
                                 length: try memory.read(UInt32.self, at: GuestAddress(at &+ 8)),
                                 flags: try memory.read(UInt16.self, at: GuestAddress(at &+ 12)),
                                 next: try memory.read(UInt16.self, at: GuestAddress(at &+ 14)))
        } catch { throw .memory(error) }
    }

    /// Parses and checks the chain that starts at `head`.
    public static func parse(head: UInt16, in memory: GuestMemory, _ context: Context) throws(VirtioFault) -> DescriptorChain {
        let size = context.queueSize
        guard head < size else { throw .headOutOfRange(head: head, queueSize: size) }
        var buffers: [VirtqueueBuffer] = []
        var sawWritable = false
        var readable: UInt64 = 0, writable: UInt64 = 0
        var visited = Bitset(count: Int(size))
        var index = head

        func append(_ d: RawDescriptor, index: UInt16, indirect: Bool) throws(VirtioFault) {
            let isWritable = d.flags & VirtqueueLayout.descriptorWrite != 0
            if isWritable { sawWritable = true } else if sawWritable { throw .readableAfterWritable(descriptor: index) }
            if d.length > 0 && !memory.contains(GuestAddress(d.address), length: UInt64(d.length)) {
                throw .bufferOutsideRAM(descriptor: index, address: GuestAddress(d.address), length: d.length, indirect: indirect)
            }
            if isWritable { writable += UInt64(d.length) } else { readable += UInt64(d.length) }
            if readable > UInt64(UInt32.max) || writable > UInt64(UInt32.max) { throw .chainLengthOverflow(head: head) }
            buffers.append(VirtqueueBuffer(address: GuestAddress(d.address), length: d.length, writable: isWritable,
                                           descriptor: index, indirect: indirect))
            if buffers.count > Int(size) { throw .chainTooLong(head: head, count: buffers.count, queueSize: size) }
        }

        while true {
            if visited.testAndSet(Int(index)) { throw .descriptorLoop(head: head, descriptor: index, indirect: false) }
            let d = try readDescriptor(memory, table: context.table, index: index)
            if d.flags & VirtqueueLayout.descriptorIndirect != 0 {
                guard context.indirectAllowed else { throw .indirectNotNegotiated(descriptor: index) }
                guard d.flags & VirtqueueLayout.descriptorNext == 0 else { throw .indirectWithNext(descriptor: index) }
                try parseIndirect(d, descriptor: index, memory: memory, append: append)
                break
            }
            try append(d, index: index, indirect: false)
            guard d.flags & VirtqueueLayout.descriptorNext != 0 else { break }
            guard d.next < size else { throw .nextOutOfRange(descriptor: index, next: d.next, tableSize: Int(size), indirect: false) }
            index = d.next
        }
        try checkOverlaps(buffers, ringAreas: context.ringAreas)
        return DescriptorChain(head: head, buffers: buffers)
    }

    /// Walks an indirect table (§2.7.5.3): a table of `length / 16` descriptors, chained from entry 0.
    private static func parseIndirect(_ d: RawDescriptor, descriptor: UInt16, memory: GuestMemory,
                                      append: (RawDescriptor, UInt16, Bool) throws(VirtioFault) -> Void) throws(VirtioFault) {
        guard d.length > 0, d.length % UInt32(VirtqueueLayout.descriptorSize) == 0 else {
            throw .indirectTableLength(descriptor: descriptor, length: d.length)
        }
        let table = GuestAddress(d.address)
        guard memory.contains(table, length: UInt64(d.length)) else {
            throw .indirectTableOutsideRAM(descriptor: descriptor, address: table, length: d.length)
        }
        let count = Int(d.length / UInt32(VirtqueueLayout.descriptorSize))
        // `next` is 16 bits wide: entries past 65535 cannot be reached, so the visited set stops there.
        var visited = Bitset(count: min(count, 1 << 16))
        var index: UInt16 = 0
        while true {
            if visited.testAndSet(Int(index)) { throw .descriptorLoop(head: descriptor, descriptor: index, indirect: true) }
            let entry = try readDescriptor(memory, table: table, index: index)
            guard entry.flags & VirtqueueLayout.descriptorIndirect == 0 else { throw .nestedIndirect(descriptor: index) }
            try append(entry, index, true)
            guard entry.flags & VirtqueueLayout.descriptorNext != 0 else { return }
            guard Int(entry.next) < count else { throw .nextOutOfRange(descriptor: index, next: entry.next, tableSize: count, indirect: true) }
            index = entry.next
        }
    }

    /// A device-writable buffer must not overlap another buffer of the chain or the queue's rings.
    private static func checkOverlaps(_ buffers: [VirtqueueBuffer], ringAreas: [(name: String, range: AddressRange)]) throws(VirtioFault) {
        for (i, buffer) in buffers.enumerated() where buffer.writable {
            guard let range = AddressRange(base: buffer.address, length: UInt64(buffer.length)) else { continue }
            for (j, other) in buffers.enumerated() where j != i {
                guard let otherRange = AddressRange(base: other.address, length: UInt64(other.length)) else { continue }
                if range.overlaps(otherRange) { throw .buffersOverlap(descriptor: buffer.descriptor, other: other.descriptor) }
            }
            for area in ringAreas where range.overlaps(area.range) {
                throw .bufferOverlapsRing(descriptor: buffer.descriptor, part: area.name)
            }
        }
    }
}

/// A fixed-size set of small integers (visited descriptors).
struct Bitset {
    private var words: [UInt64]
    init(count: Int) { words = [UInt64](repeating: 0, count: (count + 63) / 64) }
    /// Sets bit `i`; returns whether it was set already.
    mutating func testAndSet(_ i: Int) -> Bool {
        let mask: UInt64 = 1 << UInt64(i & 63)
        let was = words[i >> 6] & mask != 0
        words[i >> 6] |= mask
        return was
    }
}
