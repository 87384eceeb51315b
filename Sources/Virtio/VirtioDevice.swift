// VirtioDevice: the part of every virtio device that does not depend on its type or its transport
// (virtio 1.2 §2 "Basic Facilities of a Virtio Device", §3.1 "Device Initialization"): the device status
// state machine, feature negotiation with VIRTIO_F_VERSION_1, per-queue setup, the interrupt status bits,
// the configuration generation, reset, and faults.
//
// Transports (VirtioMMIOTransport, VirtioPCITransport) see it through VirtioDeviceInterface and turn
// register accesses into these calls; the device type (a VirtioDeviceModel) is called under the same lock.
// The rules it enforces, each refusal logged with the device's name:
//   - status bits only accumulate (writing 0 resets); FEATURES_OK is refused unless the driver's features
//     are a subset of the offered ones and include VERSION_1 (this is a modern-only device, §6.1);
//     DRIVER_OK is refused without FEATURES_OK; DEVICE_NEEDS_RESET is the device's bit, not the driver's.
//   - driver features are frozen once FEATURES_OK is set; a queue's size and addresses while it is enabled.
//   - nothing is consumed before DRIVER_OK (§2.1.2: a notification then is logged and ignored).
//   - a VirtioFault from the rings sets DEVICE_NEEDS_RESET, logs the fault naming the queue, sends a
//     configuration change interrupt (§2.1.2) and stops the device until the driver writes status 0.
// Logging is rate-limited so a hostile driver cannot flood the host's terminal.
import GuestMemory
import Synchronization

/// Why a device interrupts the driver.
public enum VirtioInterruptCause: Equatable, Sendable {
    /// Used buffers in queue N (interrupt status bit 0, "used buffer notification").
    case usedBuffer(queue: Int)
    /// The configuration space changed, or the device needs a reset (bit 1).
    case configurationChange
}

/// Which of a queue's three areas a transport register sets.
public enum VirtqueueArea: Sendable {
    case descriptorTable, driverArea, deviceArea
}

/// What a transport needs from a device, whatever its type.
public protocol VirtioDeviceInterface: AnyObject, Sendable {
    var deviceID: UInt32 { get }
    var name: String { get }
    var queueCount: Int { get }
    /// 32 feature bits offered by the device: page 0 is bits 0-31, page 1 bits 32-63.
    func deviceFeatures(page: UInt32) -> UInt32
    func driverFeatures(page: UInt32) -> UInt32
    func setDriverFeatures(page: UInt32, value: UInt32)
    var status: UInt8 { get }
    func setStatus(_ value: UInt8)
    /// A copy of queue `index` (nil if there is no such queue).
    func queue(_ index: Int) -> Virtqueue?
    func setQueueSize(_ index: Int, _ size: UInt16)
    func setQueueReady(_ index: Int, _ ready: Bool)
    /// Sets the low (`high: false`) or high 32 bits of a queue area's address.
    func setQueueAddress(_ index: Int, _ area: VirtqueueArea, high: Bool, _ value: UInt32)
    /// The driver notified queue `index`: the device consumes what it can.
    func notify(queue index: Int)
    /// Interrupt status: bit 0 used buffers, bit 1 configuration change.
    var interruptStatus: UInt32 { get }
    /// Clears the given interrupt status bits (MMIO InterruptACK).
    func acknowledgeInterrupt(_ bits: UInt32)
    /// Returns the interrupt status and clears it (the PCI ISR register's read-to-clear), running `cleared`
    /// under the device's lock so that an interrupt raised meanwhile is not lost (INTx deassert).
    func takeInterruptStatus(_ cleared: () -> Void) -> UInt32
    var configGeneration: UInt32 { get }
    var configSize: Int { get }
    func readConfig(offset: Int, size: Int) -> UInt64
    func writeConfig(offset: Int, size: Int, value: UInt64)
    /// Installs the function that signals an interrupt to the driver (the transport's line or vector).
    func setInterruptHandler(_ handler: @escaping @Sendable (VirtioInterruptCause) -> Void)
    /// Logs a driver mistake the transport refused (rate-limited, prefixed with the device name).
    func logRefusal(_ message: String)
}

public final class VirtioDevice<Model: VirtioDeviceModel>: VirtioDeviceInterface, @unchecked Sendable {
    struct State {
        var status: VirtioStatus = []
        var driverFeatures: UInt64 = 0
        var queues: [Virtqueue]
        var interruptStatus: UInt32 = 0
        var configGeneration: UInt32 = 0
        var interruptHandler: (@Sendable (VirtioInterruptCause) -> Void)?
        var logged = 0
        var faults: [String] = []
        var resets = 0
    }

    /// Most log lines one device writes (faults are always kept in `faults`).
    public static var logLimit: Int { 64 }

    // SAFETY (concurrency): `model` is touched only inside `state.withLock`, so one thread at a time.
    let model: Model
    public let memory: GuestMemory
    private let state: Mutex<State>
    private let log: @Sendable (String) -> Void
    public let deviceID: UInt32
    public let name: String
    public let queueCount: Int
    public let configSize: Int
    let offeredFeatures: UInt64
    let featureNames: [Int: String]

    /// - Parameters:
    ///   - log: receives each line the device logs (faults, refused driver actions).
    public init(model: Model, memory: GuestMemory, log: @escaping @Sendable (String) -> Void) {
        self.model = model
        self.memory = memory
        self.log = log
        self.deviceID = model.deviceID
        self.name = model.name
        self.configSize = model.configSize
        self.featureNames = model.featureNames
        let sizes = model.queueMaxSizes
        precondition(sizes.count <= 64, "a virtio device model may have at most 64 queues")
        self.queueCount = sizes.count
        self.offeredFeatures = model.deviceFeatures | VirtioFeature.version1 | VirtioFeature.indirectDescriptors | VirtioFeature.eventIndex
        self.state = Mutex(State(queues: sizes.enumerated().map { Virtqueue(index: $0.offset, maxSize: $0.element) }))
    }

    // MARK: Features and status

    public func deviceFeatures(page: UInt32) -> UInt32 {
        page < 2 ? UInt32(truncatingIfNeeded: offeredFeatures >> (32 * UInt64(page))) : 0
    }

    public func driverFeatures(page: UInt32) -> UInt32 {
        state.withLock { s in page < 2 ? UInt32(truncatingIfNeeded: s.driverFeatures >> (32 * UInt64(page))) : 0 }
    }

    public func setDriverFeatures(page: UInt32, value: UInt32) {
        state.withLock { s in
            guard page < 2 else {
                if value != 0 { note(&s, "driver wrote features page \(page) (0x\(hex(value))): there are only pages 0 and 1; ignored") }
                return
            }
            guard !s.status.contains(.featuresOK) else {
                note(&s, "driver wrote features after FEATURES_OK (page \(page), 0x\(hex(value))): ignored")
                return
            }
            let shift = 32 * UInt64(page)
            s.driverFeatures = (s.driverFeatures & ~(0xFFFF_FFFF << shift)) | (UInt64(value) << shift)
        }
    }

    /// The negotiated features (meaningful once FEATURES_OK is set).
    public var negotiatedFeatures: UInt64 { state.withLock { $0.driverFeatures } }

    /// Feature bits by name, device-type bits included ("VERSION_1, CONSOLE_F_MULTIPORT").
    public func featureList(_ features: UInt64) -> String { VirtioFeature.names(features, deviceBits: featureNames) }

    public var status: UInt8 { state.withLock { $0.status.rawValue } }

    public func setStatus(_ value: UInt8) {
        state.withLock { s in
            if value == 0 { reset(&s); return }
            let old = s.status
            // DEVICE_NEEDS_RESET belongs to the device: keep it if set, never take it from the driver.
            var new = VirtioStatus(rawValue: value).subtracting(.deviceNeedsReset).union(old.intersection(.deviceNeedsReset))
            guard new.isSuperset(of: old) else {
                note(&s, "driver cleared status bits (\(old) → \(VirtioStatus(rawValue: value))) without a reset: ignored")
                return
            }
            if new.contains(.featuresOK) && !old.contains(.featuresOK) {
                if let refusal = featureRefusal(s.driverFeatures) {
                    note(&s, "FEATURES_OK refused: \(refusal)")
                    new.remove(.featuresOK)
                }
            }
            if new.contains(.driverOK) && !old.contains(.driverOK) && !new.contains(.featuresOK) {
                note(&s, "DRIVER_OK refused: FEATURES_OK is not set (this device speaks only virtio 1.x)")
                new.remove(.driverOK)
            }
            if new.contains(.failed) && !old.contains(.failed) {
                note(&s, "driver set FAILED: it gave up on the device")
            }
            s.status = new
            if new.contains(.driverOK) && !old.contains(.driverOK) && !new.contains(.deviceNeedsReset) { activate(&s) }
        }
    }

    func featureRefusal(_ features: UInt64) -> String? {
        let unknown = features & ~offeredFeatures
        if unknown != 0 { return "the driver accepted features the device did not offer (\(VirtioFeature.names(unknown, deviceBits: featureNames)))" }
        if features & VirtioFeature.version1 == 0 { return "the driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)" }
        return nil
    }

    private func activate(_ s: inout State) {
        let features = s.driverFeatures
        for index in s.queues.indices where s.queues[index].ready {
            do { try s.queues[index].enable(memory: memory, features: features) } catch {
                fail(&s, error, queue: index)
                return
            }
        }
        runModel(&s) { queues throws(VirtioFault) in try model.activate(features: features, queues: &queues) }
    }

    private func reset(_ s: inout State) {
        let wasFaulted = s.status.contains(.deviceNeedsReset)
        model.reset()
        for index in s.queues.indices { s.queues[index].reset() }
        s.status = []
        s.driverFeatures = 0
        s.interruptStatus = 0
        s.resets += 1
        if wasFaulted { note(&s, "reset by the driver after the fault; the device works again") }
    }

    // MARK: Queues

    public func queue(_ index: Int) -> Virtqueue? {
        state.withLock { s in s.queues.indices.contains(index) ? s.queues[index] : nil }
    }

    /// Applies `change` to a queue that exists and is not enabled; logs and ignores anything else.
    private func configureQueue(_ index: Int, _ what: String, _ change: (inout Virtqueue) -> Void) {
        state.withLock { s in
            guard s.queues.indices.contains(index) else {
                note(&s, "driver set \(what) of queue \(index), which does not exist (\(s.queues.count) queues): ignored")
                return
            }
            guard !s.queues[index].ready else {
                note(&s, "driver set \(what) of queue \(index) while it is enabled: ignored")
                return
            }
            change(&s.queues[index])
        }
    }

    public func setQueueSize(_ index: Int, _ size: UInt16) {
        configureQueue(index, "the size") { $0.size = size }
    }

    public func setQueueAddress(_ index: Int, _ area: VirtqueueArea, high: Bool, _ value: UInt32) {
        configureQueue(index, "an address") { q in
            func merge(_ old: GuestAddress) -> GuestAddress {
                GuestAddress(high ? (old.rawValue & 0xFFFF_FFFF) | (UInt64(value) << 32) : (old.rawValue & ~0xFFFF_FFFF) | UInt64(value))
            }
            switch area {
            case .descriptorTable: q.descriptorTable = merge(q.descriptorTable)
            case .driverArea: q.driverArea = merge(q.driverArea)
            case .deviceArea: q.deviceArea = merge(q.deviceArea)
            }
        }
    }

    public func setQueueReady(_ index: Int, _ ready: Bool) {
        state.withLock { s in
            guard s.queues.indices.contains(index) else {
                note(&s, "driver enabled queue \(index), which does not exist (\(s.queues.count) queues): ignored")
                return
            }
            guard ready else {
                s.queues[index].reset()
                return
            }
            s.queues[index].ready = true
            // Normally queues are enabled before DRIVER_OK and checked then; one enabled later is checked now.
            if s.status.contains(.driverOK) && !s.status.contains(.deviceNeedsReset) {
                do throws(VirtioFault) { try s.queues[index].enable(memory: memory, features: s.driverFeatures) } catch { fail(&s, error, queue: index) }
            }
        }
    }

    public func notify(queue index: Int) {
        state.withLock { s in
            guard s.queues.indices.contains(index) else {
                note(&s, "driver notified queue \(index), which does not exist (\(s.queues.count) queues): ignored")
                return
            }
            guard s.status.contains(.driverOK) else {
                note(&s, "driver notified queue \(index) (\(model.queueName(index))) before DRIVER_OK (status \(s.status)): ignored, nothing is consumed before DRIVER_OK")
                return
            }
            if s.status.contains(.deviceNeedsReset) { return }
            guard s.queues[index].ready else {
                note(&s, "driver notified queue \(index) (\(model.queueName(index))), which it has not enabled: ignored")
                return
            }
            runModel(&s) { queues throws(VirtioFault) in try model.queueNotified(index, queues: &queues) }
        }
    }

    /// Runs `body` on the model and its live queues, under the device lock (host-side events such as console
    /// input use this). Returns nil if the device faulted meanwhile.
    @discardableResult
    public func withModel<R: Sendable>(_ body: (Model, inout VirtioQueues) throws(VirtioFault) -> R) -> R? {
        state.withLock { s -> R? in
            var result: R? = nil
            runModel(&s) { queues throws(VirtioFault) in result = try body(model, &queues) }
            return result
        }
    }

    /// Moves the queues into a VirtioQueues for the model, then back; interrupts for queues that got used
    /// buffers; a fault sets DEVICE_NEEDS_RESET.
    private func runModel(_ s: inout State, _ body: (inout VirtioQueues) throws(VirtioFault) -> Void) {
        let live = s.status.contains(.driverOK) && !s.status.contains(.deviceNeedsReset)
        var queues = VirtioQueues(memory: memory, features: s.driverFeatures, isLive: live, queues: s.queues)
        s.queues = []
        var fault: VirtioFault? = nil
        do { try body(&queues) } catch { fault = error }
        s.queues = queues.queues
        for line in queues.notes { note(&s, line) }
        if let fault {
            fail(&s, fault, queue: queues.lastQueue)
            return
        }
        var mask = queues.usedMask
        while mask != 0 {
            let index = mask.trailingZeroBitCount
            mask &= mask - 1
            do {
                if try s.queues[index].needsInterrupt(memory: memory) { raise(&s, .usedBuffer(queue: index)) }
            } catch {
                fail(&s, error, queue: index)
                return
            }
        }
    }

    // MARK: Interrupts

    public func setInterruptHandler(_ handler: @escaping @Sendable (VirtioInterruptCause) -> Void) {
        state.withLock { $0.interruptHandler = handler }
    }

    private func raise(_ s: inout State, _ cause: VirtioInterruptCause) {
        s.interruptStatus |= cause == .configurationChange ? 2 : 1
        s.interruptHandler?(cause)
    }

    public var interruptStatus: UInt32 { state.withLock { $0.interruptStatus } }

    public func acknowledgeInterrupt(_ bits: UInt32) { state.withLock { $0.interruptStatus &= ~bits } }

    public func takeInterruptStatus(_ cleared: () -> Void = {}) -> UInt32 {
        state.withLock { s in
            defer { s.interruptStatus = 0; cleared() }
            return s.interruptStatus
        }
    }

    /// The device-type calls this (through `withModel`'s caller) when its configuration changed.
    public func configurationChanged() {
        state.withLock { s in
            s.configGeneration &+= 1
            if s.status.contains(.driverOK) { raise(&s, .configurationChange) }
        }
    }

    // MARK: Configuration space

    public var configGeneration: UInt32 { state.withLock { $0.configGeneration } }

    public func readConfig(offset: Int, size: Int) -> UInt64 {
        state.withLock { s in
            guard offset >= 0, [1, 2, 4, 8].contains(size), offset + size <= configSize else {
                note(&s, "driver read \(size) bytes of configuration space at offset \(offset), outside its \(configSize) bytes: read as 0")
                return 0
            }
            return model.readConfig(offset: offset, size: size)
        }
    }

    public func writeConfig(offset: Int, size: Int, value: UInt64) {
        state.withLock { s in
            guard offset >= 0, [1, 2, 4, 8].contains(size), offset + size <= configSize else {
                note(&s, "driver wrote \(size) bytes of configuration space at offset \(offset), outside its \(configSize) bytes: ignored")
                return
            }
            if let refusal = model.writeConfig(offset: offset, size: size, value: value) { note(&s, refusal) }
        }
    }

    // MARK: Faults and the log

    /// Faults seen since the device was created, as logged.
    public var faults: [String] { state.withLock { $0.faults } }
    /// How many times the driver reset the device.
    public var resetCount: Int { state.withLock { $0.resets } }

    private func fail(_ s: inout State, _ fault: VirtioFault, queue: Int?) {
        guard !s.status.contains(.deviceNeedsReset) else { return }
        s.status.insert(.deviceNeedsReset)
        let place = queue.map { "queue \($0) (\(model.queueName($0))): " } ?? ""
        let line = "\(place)\(fault); device needs reset (DEVICE_NEEDS_RESET set), waiting for the driver to reset it"
        s.faults.append(line)
        note(&s, line)
        raise(&s, .configurationChange)
    }

    public func logRefusal(_ message: String) { state.withLock { s in note(&s, message) } }

    private func note(_ s: inout State, _ message: String) {
        s.logged += 1
        if s.logged <= Self.logLimit {
            log("\(name): \(message)")
        } else if s.logged == Self.logLimit + 1 {
            log("\(name): more than \(Self.logLimit) messages; the rest are not shown")
        }
    }
}
