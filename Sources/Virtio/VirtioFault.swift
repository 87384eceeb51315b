// VirtioFault: every way a driver's rings can be wrong, as the sentence the VMM logs when it puts the device
// into DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2: "the device SHOULD set DEVICE_NEEDS_RESET when it enters an
// error state that a reset is needed"). The queue parser throws these instead of trapping; the device core
// (VirtioDevice) catches them, logs the description with the device and queue name, and stops using the
// device until the driver resets it.
import GuestMemory

public enum VirtioFault: Error, Equatable, Sendable, CustomStringConvertible {
    /// The driver's queue size is zero, not a power of 2, or larger than the device allows (§2.7).
    case invalidQueueSize(size: UInt16, maximum: UInt16)
    /// A ring area (descriptor table, available ring, used ring) is not wholly in guest RAM.
    case ringOutsideRAM(part: String, address: GuestAddress, length: UInt64)
    /// A ring area is not aligned as §2.7 requires (16, 2, 4 bytes).
    case ringMisaligned(part: String, address: GuestAddress, alignment: UInt64)
    /// Two ring areas of one queue overlap.
    case ringsOverlap(String, String)
    /// avail.idx moved more than the queue size past the last entry the device consumed (§2.7.13).
    case availableIndexJumped(from: UInt16, to: UInt16, queueSize: UInt16)
    /// A chain's head (from the available ring) is not a descriptor index.
    case headOutOfRange(head: UInt16, queueSize: UInt16)
    /// A descriptor's `next` points past the end of its table.
    case nextOutOfRange(descriptor: UInt16, next: UInt16, tableSize: Int, indirect: Bool)
    /// Following `next` reached a descriptor the chain already used.
    case descriptorLoop(head: UInt16, descriptor: UInt16, indirect: Bool)
    /// The chain holds more descriptors than the queue size (§2.7.5.3.1: the driver MUST NOT).
    case chainTooLong(head: UInt16, count: Int, queueSize: UInt16)
    /// A buffer is not wholly in guest RAM (or its address plus length wraps around).
    case bufferOutsideRAM(descriptor: UInt16, address: GuestAddress, length: UInt32, indirect: Bool)
    /// An indirect table whose length is zero or not a multiple of 16 bytes (§2.7.5.3.1).
    case indirectTableLength(descriptor: UInt16, length: UInt32)
    /// An indirect table that is not wholly in guest RAM.
    case indirectTableOutsideRAM(descriptor: UInt16, address: GuestAddress, length: UInt32)
    /// VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT (§2.7.5.3.1: the driver MUST NOT).
    case indirectWithNext(descriptor: UInt16)
    /// VIRTQ_DESC_F_INDIRECT inside an indirect table (§2.7.5.3.1: the driver MUST NOT).
    case nestedIndirect(descriptor: UInt16)
    /// VIRTQ_DESC_F_INDIRECT although VIRTIO_F_INDIRECT_DESC was not negotiated.
    case indirectNotNegotiated(descriptor: UInt16)
    /// A device-readable buffer after a device-writable one (§2.7.4.2: the driver MUST NOT).
    case readableAfterWritable(descriptor: UInt16)
    /// The buffers of one chain add up to more than 4 GiB - 1, which the used ring's le32 len cannot say.
    case chainLengthOverflow(head: UInt16)
    /// A device-writable buffer overlaps another buffer of the same chain.
    case buffersOverlap(descriptor: UInt16, other: UInt16)
    /// A device-writable buffer overlaps one of the queue's own ring areas.
    case bufferOverlapsRing(descriptor: UInt16, part: String)
    /// Reading or writing a ring failed although its layout was checked (cannot happen unless RAM changes).
    case memory(GuestMemoryError)
    /// The device type's own protocol was broken (e.g. a malformed console control message).
    case protocolError(String)

    public var description: String {
        switch self {
        case let .invalidQueueSize(size, maximum):
            "queue size \(size) is not a power of 2 between 1 and \(maximum)"
        case let .ringOutsideRAM(part, address, length):
            "\(part) at \(address) (\(length) bytes) is outside guest RAM"
        case let .ringMisaligned(part, address, alignment):
            "\(part) at \(address) is not \(alignment)-byte aligned"
        case let .ringsOverlap(a, b):
            "\(a) overlaps \(b)"
        case let .availableIndexJumped(from, to, size):
            "available index jumped from \(from) to \(to), \(to &- from) entries ahead, more than the queue size \(size)"
        case let .headOutOfRange(head, size):
            "available ring names descriptor \(head), outside the descriptor table of \(size)"
        case let .nextOutOfRange(descriptor, next, tableSize, indirect):
            "\(indirect ? "indirect " : "")descriptor \(descriptor) chains to \(next), outside its table of \(tableSize)"
        case let .descriptorLoop(head, descriptor, indirect):
            "descriptor chain from head \(head) loops: it reaches \(indirect ? "indirect " : "")descriptor \(descriptor) a second time"
        case let .chainTooLong(head, count, size):
            "descriptor chain from head \(head) is longer than the queue size \(size) (\(count) descriptors)"
        case let .bufferOutsideRAM(descriptor, address, length, indirect):
            "\(indirect ? "indirect " : "")descriptor \(descriptor): buffer of \(length) bytes at \(address) is outside guest RAM"
        case let .indirectTableLength(descriptor, length):
            "descriptor \(descriptor): indirect table length \(length) is not a positive multiple of 16"
        case let .indirectTableOutsideRAM(descriptor, address, length):
            "descriptor \(descriptor): indirect table of \(length) bytes at \(address) is outside guest RAM"
        case let .indirectWithNext(descriptor):
            "descriptor \(descriptor) sets both INDIRECT and NEXT"
        case let .nestedIndirect(descriptor):
            "indirect descriptor \(descriptor) points at another indirect table"
        case let .indirectNotNegotiated(descriptor):
            "descriptor \(descriptor) is INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated"
        case let .readableAfterWritable(descriptor):
            "descriptor \(descriptor) is device-readable but follows a device-writable one"
        case let .chainLengthOverflow(head):
            "descriptor chain from head \(head) has buffers adding up to 4 GiB or more (impossible length)"
        case let .buffersOverlap(descriptor, other):
            "device-writable buffer of descriptor \(descriptor) overlaps the buffer of descriptor \(other)"
        case let .bufferOverlapsRing(descriptor, part):
            "device-writable buffer of descriptor \(descriptor) overlaps the queue's \(part)"
        case let .memory(error):
            "\(error)"
        case let .protocolError(message):
            message
        }
    }
}
