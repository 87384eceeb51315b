// VirtioConsole: the virtio console device (virtio 1.2 §5.3) as a VirtioDeviceModel.
//
// Features: VIRTIO_CONSOLE_F_SIZE (the console's columns and rows in the configuration space),
// VIRTIO_CONSOLE_F_MULTIPORT (several ports and a control queue pair) and VIRTIO_CONSOLE_F_EMERG_WRITE
// (one character written to `emerg_wr` goes out on port 0 without any queue).
// Configuration space (§5.3.4): le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr (write-only).
// Queues (§5.3.2): 0 port 0 receiveq, 1 port 0 transmitq, 2 control receiveq (device → driver),
// 3 control transmitq (driver → device), then 4 + 2(n - 1) receiveq and 5 + 2(n - 1) transmitq of port n.
// Port 0 is the console (Linux's hvc0); the other ports carry a name (Linux shows
// /sys/class/virtio-ports/vportNpM/name) and are byte pipes to the host, e.g. "org.swiftlet.control".
//
// Multiport bring-up (§5.3.6.2), as this device answers the driver's control messages:
//   driver DEVICE_READY(1) → device DEVICE_ADD for each port
//   driver PORT_READY(id, 1) → port 0: CONSOLE_PORT(0, 1) and, with F_SIZE, RESIZE(cols, rows);
//                              a named port: PORT_NAME(id) + name, then PORT_OPEN(id, 1) (the host is connected)
//   driver PORT_OPEN(id, 0|1) → the guest closed or opened the port (remembered, logged nowhere)
// Host input waits in a bounded per-port buffer until the driver posts receive buffers; transmitted bytes
// go to the port's output function as soon as the driver's notification is handled.
import GuestMemory

public final class VirtioConsole: VirtioDeviceModel {
    /// VIRTIO_CONSOLE_F_SIZE, F_MULTIPORT, F_EMERG_WRITE (§5.3.3).
    public static let featureSize: UInt64 = 1 << 0
    public static let featureMultiport: UInt64 = 1 << 1
    public static let featureEmergencyWrite: UInt64 = 1 << 2

    /// Control events (§5.3.6.2), struct virtio_console_control { le32 id; le16 event; le16 value; }.
    public enum ControlEvent: UInt16, Sendable {
        case deviceReady = 0, deviceAdd = 1, deviceRemove = 2, portReady = 3, consolePort = 4, resize = 5
        case portOpen = 6, portName = 7
    }

    /// Bytes of host input each port holds while the driver has no receive buffer posted.
    public static let inputLimit = 64 * 1024
    /// Queue size of every queue.
    public static let queueSize: UInt16 = 256
    /// The name of the second port: the host-side control channel.
    public static let controlPortName = "org.swiftlet.control"

    public struct Port: Sendable {
        /// nil for the console port.
        public var name: String?
        /// Receives what the guest writes to the port.
        public var output: @Sendable ([UInt8]) -> Void

        public init(name: String?, output: @escaping @Sendable ([UInt8]) -> Void) {
            self.name = name
            self.output = output
        }
    }

    public let deviceID = VirtioDeviceID.console
    public let name = "virtio-console"
    public let featureNames = [0: "CONSOLE_F_SIZE", 1: "CONSOLE_F_MULTIPORT", 2: "CONSOLE_F_EMERG_WRITE"]
    public let configSize = 12
    let ports: [Port]
    public private(set) var columns: UInt16
    public private(set) var rows: UInt16

    // Negotiated and per-run state (cleared by reset).
    var multiport = false
    var pendingInput: [[UInt8]]
    var pendingControl: [[UInt8]] = []
    var portReady: [Bool]
    public private(set) var guestOpened: [Bool]

    /// Ports the driver announced ready (PORT_READY 1; without multiport, port 0 once the device is live).
    public var readyPorts: [Int] { multiport ? portReady.indices.filter { portReady[$0] } : [] }
    /// Whether the driver negotiated F_MULTIPORT.
    public var isMultiport: Bool { multiport }

    /// - Parameters:
    ///   - ports: port 0 is the console; with more than one, F_MULTIPORT is offered.
    ///   - size: the console's columns and rows for F_SIZE (nil: F_SIZE is not offered).
    public init(ports: [Port], size: (columns: UInt16, rows: UInt16)? = nil) {
        precondition(!ports.isEmpty && ports.count <= 31, "a console has 1 to 31 ports")
        self.ports = ports
        self.columns = size?.columns ?? 0
        self.rows = size?.rows ?? 0
        self.offersSize = size != nil
        self.pendingInput = Array(repeating: [], count: ports.count)
        self.portReady = Array(repeating: false, count: ports.count)
        self.guestOpened = Array(repeating: false, count: ports.count)
    }
    let offersSize: Bool

    public var deviceFeatures: UInt64 {
        (offersSize ? Self.featureSize : 0) | (ports.count > 1 ? Self.featureMultiport : 0) | Self.featureEmergencyWrite
    }

    public var queueMaxSizes: [UInt16] {
        Array(repeating: Self.queueSize, count: ports.count > 1 ? 2 + 2 * ports.count : 2)
    }

    public static func receiveQueue(port: Int) -> Int { port == 0 ? 0 : 2 + 2 * port }
    public static func transmitQueue(port: Int) -> Int { receiveQueue(port: port) + 1 }
    public static let controlReceiveQueue = 2
    public static let controlTransmitQueue = 3

    public func queueName(_ index: Int) -> String {
        switch index {
        case Self.controlReceiveQueue: return "control receiveq"
        case Self.controlTransmitQueue: return "control transmitq"
        default:
            let port = index < 2 ? 0 : (index - 2) / 2
            return "port \(port) \(index % 2 == 0 ? "receiveq" : "transmitq")"
        }
    }

    // MARK: Configuration space

    var configBytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: configSize)
        bytes[0] = UInt8(truncatingIfNeeded: columns); bytes[1] = UInt8(truncatingIfNeeded: columns >> 8)
        bytes[2] = UInt8(truncatingIfNeeded: rows); bytes[3] = UInt8(truncatingIfNeeded: rows >> 8)
        bytes[4] = UInt8(truncatingIfNeeded: ports.count) // max_nr_ports (le32; < 256)
        return bytes // emerg_wr (8...11) reads as 0
    }

    public func readConfig(offset: Int, size: Int) -> UInt64 {
        let bytes = configBytes
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    public func writeConfig(offset: Int, size: Int, value: UInt64) -> String? {
        if offset == 8 && size <= 4 {
            // emerg_wr: one character for port 0, usable before (or without) any queue.
            ports[0].output([UInt8(truncatingIfNeeded: value)])
            return nil
        }
        let field = offset < 2 ? "cols" : offset < 4 ? "rows" : offset < 8 ? "max_nr_ports" : "emerg_wr"
        return "driver wrote 0x\(String(value, radix: 16)) to configuration field \(field) (offset \(offset), \(size) bytes), which is read-only: ignored"
    }

    // MARK: Lifecycle

    public func reset() {
        multiport = false
        pendingControl = []
        portReady = Array(repeating: false, count: ports.count)
        guestOpened = Array(repeating: false, count: ports.count)
        // Host input that was not delivered yet stays: the guest will read it after it sets the device up again.
    }

    public func activate(features: UInt64, queues: inout VirtioQueues) throws(VirtioFault) {
        multiport = features & Self.featureMultiport != 0
        for port in ports.indices where port == 0 || multiport { try deliverInput(port: port, &queues) }
    }

    public func queueNotified(_ index: Int, queues: inout VirtioQueues) throws(VirtioFault) {
        switch index {
        case Self.controlReceiveQueue where multiport:
            try flushControl(&queues)
        case Self.controlTransmitQueue where multiport:
            while let chain = try queues.pop(index) {
                let message = try read(chain, &queues)
                try queues.pushUsed(index, chain, written: 0)
                handleControl(message, &queues)
            }
            try flushControl(&queues)
        default:
            guard let port = portOf(queue: index) else {
                queues.notes.append("driver notified queue \(index) (\(queueName(index))), which is unused without F_MULTIPORT: ignored")
                return
            }
            if index == Self.receiveQueue(port: port) {
                try deliverInput(port: port, &queues)
            } else {
                while let chain = try queues.pop(index) {
                    let bytes = try read(chain, &queues)
                    try queues.pushUsed(index, chain, written: 0)
                    if !bytes.isEmpty { ports[port].output(bytes) }
                }
            }
        }
    }

    /// The port a data queue belongs to, if that port is in use.
    func portOf(queue index: Int) -> Int? {
        let port = index < 2 ? 0 : (index - 2) / 2
        guard index != Self.controlReceiveQueue, index != Self.controlTransmitQueue, port < ports.count else { return nil }
        return port == 0 || multiport ? port : nil
    }

    func read(_ chain: DescriptorChain, _ queues: inout VirtioQueues) throws(VirtioFault) -> [UInt8] {
        do { return try chain.readableBytes(in: queues.memory) } catch { throw .memory(error) }
    }

    // MARK: Host input

    /// Queues `bytes` of host input for `port` and delivers what the driver has room for; returns how many
    /// bytes were accepted (the rest does not fit in the port's buffer: try again later).
    public func enqueueInput<C: Collection<UInt8>>(port: Int, _ bytes: C, _ queues: inout VirtioQueues) throws(VirtioFault) -> Int {
        guard ports.indices.contains(port) else { return 0 }
        let room = max(0, Self.inputLimit - pendingInput[port].count)
        let accepted = min(room, bytes.count)
        pendingInput[port].append(contentsOf: bytes.prefix(accepted))
        if port == 0 || multiport { try deliverInput(port: port, &queues) }
        return accepted
    }

    /// Bytes of host input waiting for receive buffers.
    public func pendingInputCount(port: Int) -> Int { pendingInput[port].count }

    func deliverInput(port: Int, _ queues: inout VirtioQueues) throws(VirtioFault) {
        let queue = Self.receiveQueue(port: port)
        while !pendingInput[port].isEmpty, let chain = try queues.pop(queue) {
            let written: Int
            do { written = try chain.write(pendingInput[port], to: queues.memory) } catch { throw .memory(error) }
            pendingInput[port].removeFirst(written)
            try queues.pushUsed(queue, chain, written: UInt32(written))
        }
    }

    /// F_SIZE: the console's new size; returns true when the driver must get a configuration change
    /// interrupt (without multiport), false when a RESIZE control message carries it (or nothing changed).
    public func resize(columns: UInt16, rows: UInt16, _ queues: inout VirtioQueues) throws(VirtioFault) -> Bool {
        guard offersSize, columns != self.columns || rows != self.rows else { return false }
        self.columns = columns
        self.rows = rows
        if multiport {
            if portReady[0] { try sendControl(id: 0, .resize, 0, payload: le16(columns) + le16(rows), &queues) }
            return false
        }
        return true
    }

    // MARK: Control queue (F_MULTIPORT)

    func handleControl(_ message: [UInt8], _ queues: inout VirtioQueues) {
        guard message.count >= 8 else {
            queues.notes.append("control message of \(message.count) bytes is shorter than 8 (id, event, value): ignored")
            return
        }
        let id = UInt32(message[0]) | UInt32(message[1]) << 8 | UInt32(message[2]) << 16 | UInt32(message[3]) << 24
        let rawEvent = UInt16(message[4]) | UInt16(message[5]) << 8
        let value = UInt16(message[6]) | UInt16(message[7]) << 8
        guard let event = ControlEvent(rawValue: rawEvent) else {
            queues.notes.append("control message with unknown event \(rawEvent) for port \(id): ignored")
            return
        }
        switch event {
        case .deviceReady:
            guard value == 1 else {
                queues.notes.append("driver reports it failed to set up the console (DEVICE_READY 0)")
                return
            }
            for port in ports.indices { queueControl(id: UInt32(port), .deviceAdd, 0) }
        case .portReady, .portOpen:
            guard id < ports.count else {
                queues.notes.append("control message \(event) for port \(id), which does not exist: ignored")
                return
            }
            let port = Int(id)
            if event == .portOpen { guestOpened[port] = value == 1; return }
            guard value == 1 else {
                queues.notes.append("driver could not add port \(port) (PORT_READY 0)")
                return
            }
            portReady[port] = true
            if port == 0 {
                queueControl(id: 0, .consolePort, 1)
                if offersSize { queueControl(id: 0, .resize, 0, payload: le16(columns) + le16(rows)) }
            } else if let name = ports[port].name {
                queueControl(id: id, .portName, 1, payload: Array(name.utf8))
            }
            queueControl(id: id, .portOpen, 1)
        default:
            queues.notes.append("control message \(event) is sent by devices, not drivers: ignored")
        }
    }

    func queueControl(id: UInt32, _ event: ControlEvent, _ value: UInt16, payload: [UInt8] = []) {
        pendingControl.append(le32(id) + le16(event.rawValue) + le16(value) + payload)
    }

    func sendControl(id: UInt32, _ event: ControlEvent, _ value: UInt16, payload: [UInt8] = [], _ queues: inout VirtioQueues) throws(VirtioFault) {
        queueControl(id: id, event, value, payload: payload)
        try flushControl(&queues)
    }

    /// Delivers pending control messages into the driver's control receive buffers, one message per buffer.
    func flushControl(_ queues: inout VirtioQueues) throws(VirtioFault) {
        while !pendingControl.isEmpty, let chain = try queues.pop(Self.controlReceiveQueue) {
            let message = pendingControl.removeFirst()
            guard chain.writableLength >= UInt64(message.count) else {
                throw .protocolError("control receive buffer of \(chain.writableLength) bytes cannot hold a \(message.count)-byte control message")
            }
            let written: Int
            do { written = try chain.write(message, to: queues.memory) } catch { throw .memory(error) }
            try queues.pushUsed(Self.controlReceiveQueue, chain, written: UInt32(written))
        }
    }
}

func le16(_ v: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }
func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }

// MARK: Host side

extension VirtioDevice where Model == VirtioConsole {
    /// Host input for `port` (from the terminal, a socket, a test); returns how many bytes were accepted.
    @discardableResult
    public func enqueueInput<C: Collection<UInt8>>(port: Int, _ bytes: C) -> Int {
        withModel { console, queues throws(VirtioFault) in try console.enqueueInput(port: port, bytes, &queues) } ?? 0
    }

    /// The host terminal's new size (F_SIZE): a RESIZE control message, or a configuration change interrupt.
    public func resize(columns: UInt16, rows: UInt16) {
        let changed = withModel { console, queues throws(VirtioFault) in try console.resize(columns: columns, rows: rows, &queues) } ?? false
        if changed { configurationChanged() }
    }

    /// Bytes of host input still waiting for the driver's receive buffers.
    public func pendingInputCount(port: Int) -> Int { withModel { console, _ in console.pendingInputCount(port: port) } ?? 0 }
}
