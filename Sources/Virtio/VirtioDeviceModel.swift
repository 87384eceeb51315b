// VirtioDeviceModel: what one virtio device type (console, and later others) implements, and VirtioQueues,
// the view of the device's virtqueues it works through.
//
// The split follows kvmtool and crosvm: the device type knows its config space layout, its queues and what
// a request means; the generic core (VirtioDevice) owns the status state machine, feature negotiation,
// queue setup, interrupts and faults (virtio 1.2 §2, §3); a transport (MMIO, PCI) maps registers onto
// the core. A model is called only with the core's lock held, so it needs no locking of its own.
import GuestMemory

public protocol VirtioDeviceModel: AnyObject {
    /// The device ID (§5), e.g. 3 for a console.
    var deviceID: UInt32 { get }
    /// The name used in logs, e.g. "virtio-console".
    var name: String { get }
    /// Device-type feature bits the device offers (the core adds VERSION_1, INDIRECT_DESC and EVENT_IDX).
    var deviceFeatures: UInt64 { get }
    /// Names of the device-type feature bits, for logs.
    var featureNames: [Int: String] { get }
    /// One entry per virtqueue: its largest size.
    var queueMaxSizes: [UInt16] { get }
    /// What a queue is for, e.g. "port 0 transmit".
    func queueName(_ index: Int) -> String
    /// Size in bytes of the device configuration space.
    var configSize: Int { get }
    /// Reads `size` bytes of the configuration space at `offset` (already checked to lie inside it).
    func readConfig(offset: Int, size: Int) -> UInt64
    /// Writes configuration space; returns nil when accepted, or why the write was refused (the core logs it).
    func writeConfig(offset: Int, size: Int, value: UInt64) -> String?
    /// The driver set DRIVER_OK with `features`; the queues are enabled.
    func activate(features: UInt64, queues: inout VirtioQueues) throws(VirtioFault)
    /// The driver notified (kicked) queue `index`.
    func queueNotified(_ index: Int, queues: inout VirtioQueues) throws(VirtioFault)
    /// The driver reset the device: forget everything negotiated.
    func reset()
}

/// The device's queues while a model works on them: pops chains, pushes used elements, and remembers which
/// queues got used elements so the core can decide about interrupts afterwards.
public struct VirtioQueues {
    public let memory: GuestMemory
    /// The negotiated features.
    public let features: UInt64
    /// False before DRIVER_OK and after a fault: nothing may be consumed (pop returns nil).
    public let isLive: Bool
    var queues: [Virtqueue]
    var usedMask: UInt64 = 0
    /// The queue of the last operation, to name it when that operation faults.
    var lastQueue: Int?
    /// Lines the model wants logged (refused requests that are not worth a reset); the core rate-limits them.
    public var notes: [String] = []

    public init(memory: GuestMemory, features: UInt64, isLive: Bool, queues: [Virtqueue]) {
        self.memory = memory
        self.features = features
        self.isLive = isLive
        self.queues = queues
    }

    /// The queue is enabled and the device is live.
    public func isReady(_ index: Int) -> Bool {
        isLive && index >= 0 && index < queues.count && queues[index].ready && queues[index].enabled
    }

    /// How many chains wait in queue `index` (0 when it is not ready).
    public mutating func availableCount(_ index: Int) throws(VirtioFault) -> UInt16 {
        guard isReady(index) else { return 0 }
        lastQueue = index
        return try queues[index].availableCount(memory: memory)
    }

    /// The next chain of queue `index`, or nil when there is none (or the queue is not ready).
    public mutating func pop(_ index: Int) throws(VirtioFault) -> DescriptorChain? {
        guard isReady(index) else { return nil }
        lastQueue = index
        return try queues[index].pop(memory: memory)
    }

    /// Hands `chain` back to the driver with `written` bytes in its device-writable buffers.
    public mutating func pushUsed(_ index: Int, _ chain: DescriptorChain, written: UInt32) throws(VirtioFault) {
        guard isReady(index) else { return }
        lastQueue = index
        try queues[index].pushUsed(memory: memory, head: chain.head, length: written)
        usedMask |= 1 << UInt64(index)
    }
}
