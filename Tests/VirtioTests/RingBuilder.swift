// RingBuilder: the driver's side of a split virtqueue, written straight into a GuestMemory, so the
// device side can be tested without a guest or KVM. It lays out the descriptor table, available ring and
// used ring the way a driver does (virtio 1.2 §2.7) and can also write what no honest driver would.
import GuestMemory
import Synchronization
import Virtio

final class RingBuilder {
    let memory: GuestMemory
    let size: UInt16
    let table: GuestAddress
    let available: GuestAddress
    let used: GuestAddress
    var availableIndex: UInt16 = 0

    /// A queue of `size` entries at `base` (descriptor table, then available ring, then used ring, each aligned).
    init(memory: GuestMemory, size: UInt16, base: UInt64) {
        self.memory = memory
        self.size = size
        table = GuestAddress(base)
        available = GuestAddress(base + 16 * UInt64(size))
        used = GuestAddress((available.rawValue + 6 + 2 * UInt64(size) + 3) & ~3)
    }

    func descriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0,
                    in tableBase: GuestAddress? = nil) throws {
        let at = (tableBase ?? table).rawValue + 16 * UInt64(index)
        try memory.write(address, at: GuestAddress(at))
        try memory.write(length, at: GuestAddress(at + 8))
        try memory.write(flags, at: GuestAddress(at + 12))
        try memory.write(next, at: GuestAddress(at + 14))
    }

    /// Puts `head` in the next available-ring slot and publishes it (moves avail.idx).
    func publish(_ head: UInt16) throws {
        try memory.write(head, at: GuestAddress(available.rawValue + 4 + 2 * UInt64(availableIndex % size)))
        availableIndex &+= 1
        try memory.write(availableIndex, at: GuestAddress(available.rawValue + 2))
    }

    /// Sets avail.idx without filling the ring (for the "index jumps ahead" attack).
    func setAvailableIndex(_ value: UInt16) throws {
        availableIndex = value
        try memory.write(value, at: GuestAddress(available.rawValue + 2))
    }

    func setAvailableFlags(_ flags: UInt16) throws { try memory.write(flags, at: available) }
    func setUsedEvent(_ value: UInt16) throws { try memory.write(value, at: GuestAddress(available.rawValue + 4 + 2 * UInt64(size))) }
    var availEvent: UInt16 { get throws { try memory.read(at: GuestAddress(used.rawValue + 4 + 8 * UInt64(size))) } }

    var usedIndex: UInt16 { get throws { try memory.read(at: GuestAddress(used.rawValue + 2)) } }

    func usedElement(_ slot: UInt16) throws -> (id: UInt32, length: UInt32) {
        let at = used.rawValue + 4 + 8 * UInt64(slot % size)
        return (try memory.read(at: GuestAddress(at)), try memory.read(at: GuestAddress(at + 4)))
    }

    /// The device-side queue for this layout, enabled with `features`.
    func queue(features: UInt64 = VirtioFeature.version1, maxSize: UInt16? = nil) throws -> Virtqueue {
        var q = Virtqueue(index: 0, maxSize: maxSize ?? size)
        q.size = size
        q.descriptorTable = table
        q.driverArea = available
        q.deviceArea = used
        q.ready = true
        try q.enable(memory: memory, features: features)
        return q
    }
}

/// 1 MiB of guest RAM at 0 for tests.
func testMemory(_ size: UInt64 = 1 << 20) throws -> GuestMemory {
    try GuestMemory(layout: [(GuestAddress(0), size)])
}

/// Collects what a device logs and outputs, from any thread.
final class Recorder: @unchecked Sendable {
    let lines = Mutex<[String]>([])
    let bytes = Mutex<[UInt8]>([])
    let interrupts = Mutex<[VirtioInterruptCause]>([])

    var log: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
    var output: @Sendable ([UInt8]) -> Void { { b in self.bytes.withLock { $0 += b } } }
    var interrupt: @Sendable (VirtioInterruptCause) -> Void { { c in self.interrupts.withLock { $0.append(c) } } }
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
    var logged: [String] { lines.withLock { $0 } }
}
