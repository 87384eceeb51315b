// Machine+Virtio: the recipe step that attaches the virtio console, and how its notifications travel.
//
// `--console virtio` adds a virtio-console (Sources/Virtio) on the transport `--virtio-transport` names:
//   mmio: a virtio-mmio v2 register block at X86Layout.virtioMMIO on the MMIO bus, interrupt GSI 5,
//         announced as `virtio_mmio.device=4K@0xd0000000:5` on the kernel command line (the tiny guests
//         parse the same text from their multiboot command line); Linux gets `console=hvc0`.
// Kicks: one eventfd per queue registered with KVM_IOEVENTFD on the QueueNotify address with the queue
// index as datamatch, so a kick never leaves KVM_RUN; the virtio device thread (epoll) takes it and runs
// the device. Interrupts: an eventfd registered with KVM_IRQFD on the GSI, so raising one is a write(2).
// Fallbacks, each noted in the -v recipe: without KVM_CAP_IOEVENTFD (or with SWIFTLET_VIRTIO_EVENTFD=0) the
// kick is an ordinary MMIO exit handled on the vCPU thread; without KVM_CAP_IRQFD the interrupt is a
// KVM_IRQ_LINE pulse (assert, deassert: an edge on the IOAPIC pin, as the MP table declares ISA IRQs).
// A multiboot guest gets the in-kernel irqchip too, so that interrupts have somewhere to go (the tiny
// guests poll and never enable them, but --trace-exits shows each one sent).
import CKVM
import Devices
import Glibc
import GuestMemory
import KVM
import Synchronization
import Virtio
import X86Boot

/// How the virtio console's notifications travel, as chosen when the machine was built.
public struct VirtioNotificationPaths: Sendable, Equatable {
    /// true: KVM_IOEVENTFD (no exit); false: an MMIO exit to the VMM.
    public var kicksByEventFD: Bool
    /// true: KVM_IRQFD; false: KVM_IRQ_LINE.
    public var interruptsByEventFD: Bool
}

/// The host side of the virtio console's second port ("org.swiftlet.control"): what the guest wrote, and a
/// way to send it bytes. A later `compare` uses it as a control channel.
public final class VirtioControlChannel: Sendable {
    /// What the guest wrote (the port's output function appends; the device does not reference the channel).
    final class Received: Sendable {
        let bytes = Mutex<[UInt8]>([])
        static let limit = 1 << 20
        func append(_ more: [UInt8]) {
            bytes.withLock { r in
                r += more
                if r.count > Self.limit { r.removeFirst(r.count - Self.limit) }
            }
        }
    }
    let received: Received
    let device: VirtioDevice<VirtioConsole>

    init(device: VirtioDevice<VirtioConsole>, received: Received) {
        self.device = device
        self.received = received
    }

    /// Everything the guest wrote to the port so far (the last MiB).
    public var receivedBytes: [UInt8] { received.bytes.withLock { $0 } }

    /// Sends bytes to the guest's port; returns how many were accepted.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Int { device.enqueueInput(port: 1, bytes) }
}

/// The virtio console as attached to a machine.
public final class VirtioConsoleAttachment: @unchecked Sendable {
    public let device: VirtioDevice<VirtioConsole>
    public let transport: VirtioTransportKind
    /// Set once, while the machine is built.
    public internal(set) var paths: VirtioNotificationPaths
    public let control: VirtioControlChannel
    /// Kicks the device took and interrupts it sent.
    public let kicks = Atomic<Int>(0)
    public let interrupts = Atomic<Int>(0)
    let thread: VirtioDeviceThread
    let socket: ConsoleSocket?
    let fileFD: Int32
    var eventFDs: [Int32] = []

    init(device: VirtioDevice<VirtioConsole>, transport: VirtioTransportKind, paths: VirtioNotificationPaths,
         control: VirtioControlChannel, thread: VirtioDeviceThread, socket: ConsoleSocket?, fileFD: Int32) {
        self.device = device
        self.transport = transport
        self.paths = paths
        self.control = control
        self.thread = thread
        self.socket = socket
        self.fileFD = fileFD
    }

    deinit {
        for fd in eventFDs { _ = ckvm_close(fd) }
        if fileFD >= 0 { _ = ckvm_close(fileFD) }
    }

    /// Waits for the console socket's first client (if there is a socket), then starts the device thread.
    func start(timeout: Double?) throws(VMMError) {
        if let socket {
            printError("swiftlet: waiting for a client on \(socket.path) (e.g. socat - UNIX-CONNECT:\(socket.path))")
            let ms = timeout.map { Int32(min($0 * 1000, 2_000_000_000)) } ?? -1
            guard let fd = socket.waitForClient(timeoutMilliseconds: ms) else {
                throw .invalidOption("--console-socket \(socket.path): no client connected before --timeout")
            }
            watchClient?(fd)
        }
        try thread.start()
    }
    /// Starts watching an accepted console-socket client (set by the recipe step).
    var watchClient: (@Sendable (Int32) -> Void)?

    func stop() {
        thread.stop()
        socket?.closeAll()
    }
}

extension Machine {
    /// The parameters that make the guest use the virtio console: console=hvc0 and, for virtio-mmio, the
    /// device's place (Linux's `virtio_mmio.device=<size>@<base>:<irq>`). Empty with the serial console.
    func virtioKernelParameters() -> [String] {
        guard configuration.console == .virtio else { return [] }
        switch configuration.virtioTransport ?? .mmio {
        case .mmio:
            return ["console=hvc0", "virtio_mmio.device=\(X86Layout.virtioMMIOSlotSize >> 10)K@\(X86Layout.virtioMMIO):\(X86Layout.virtioConsoleIRQ)"]
        case .pci:
            return ["console=hvc0"]
        }
    }

    /// Options that only make sense together.
    static func validateConsole(_ c: MachineConfiguration) throws(VMMError) {
        if c.console != .virtio {
            if c.virtioTransport != nil { throw .invalidOption("--virtio-transport needs a virtio device: add --console virtio") }
            switch c.consoleEndpoint {
            case .terminal: break
            case .socket: throw .invalidOption("--console-socket is for the virtio console: add --console virtio")
            case .file: throw .invalidOption("--console-file is for the virtio console: add --console virtio")
            }
        }
        if c.virtioTransport == .pci {
            throw .invalidOption("--virtio-transport pci: the virtio-pci transport is not in this build yet; use mmio")
        }
    }

    /// The in-kernel irqchip for a multiboot guest with a virtio device (Linux guests have it already).
    func createIRQChipForVirtio() throws(VMMError) {
        do { try vm.createIRQChip() } catch { throw .kvm(error) }
        note("in-kernel irqchip (PICs, IOAPIC, LAPIC) so the virtio console's interrupts have somewhere to go")
    }

    /// The recipe step: the console device, its transport on the bus, and its notification paths.
    func attachVirtioConsole() throws(VMMError) {
        let tracer = self.tracer
        let console = self.console
        let log: @Sendable (String) -> Void = { printError("swiftlet: " + $0) }

        // Host side of port 0.
        var socket: ConsoleSocket? = nil
        var fileFD: Int32 = -1
        let output: @Sendable ([UInt8]) -> Void
        switch configuration.consoleEndpoint {
        case .terminal:
            output = { console.put(contentsOf: $0) }
        case let .file(path):
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw .invalidOption("--console-file \(path): cannot open it for writing: \(String(cString: strerror(errno)))") }
            fileFD = fd
            output = { ConsoleOutput.writeAll(fd, $0) }
        case let .socket(path):
            let s = try ConsoleSocket(path: path)
            socket = s
            output = { s.send($0) }
        }
        let received = VirtioControlChannel.Received()
        let ports = [
            VirtioConsole.Port(name: nil, output: output),
            VirtioConsole.Port(name: VirtioConsole.controlPortName, output: { received.append($0) }),
        ]
        let model = VirtioConsole(ports: ports, size: Self.terminalSize())
        let device = VirtioDevice(model: model, memory: memory, log: log)
        let control = VirtioControlChannel(device: device, received: received)

        // Notification paths.
        let thread = try VirtioDeviceThread()
        let wantEventFDs = configuration.virtioEventFDs && Self.eventFDsAllowedByEnvironment()
        var kicksByEventFD = wantEventFDs && kvm.checkExtension(.ioeventfd) > 0
        var interruptsByEventFD = wantEventFDs && kvm.checkExtension(.irqfd) > 0
        let gsi = X86Layout.virtioConsoleIRQ
        var eventFDs: [Int32] = []
        var eventFD: Int32 = -1
        if interruptsByEventFD {
            let fd = ckvm_eventfd()
            if fd >= 0, (try? vm.registerIRQFD(fd, gsi: gsi)) != nil {
                eventFD = fd
                eventFDs.append(fd)
            } else {
                if fd >= 0 { _ = ckvm_close(fd) }
                interruptsByEventFD = false
                note("virtio: KVM_IRQFD refused GSI \(gsi); interrupts fall back to KVM_IRQ_LINE")
            }
        }
        let paths = VirtioNotificationPaths(kicksByEventFD: kicksByEventFD, interruptsByEventFD: interruptsByEventFD)
        let queueNames = (0..<device.queueCount).map { model.queueName($0) }
        let irqFD = eventFD
        let attachment = VirtioConsoleAttachment(device: device, transport: .mmio, paths: paths, control: control,
                                                 thread: thread, socket: socket, fileFD: fileFD)
        let vm = self.vm
        let interrupt: @Sendable (VirtioInterruptCause) -> Void = { [unowned attachment] cause in
            attachment.interrupts.add(1, ordering: .relaxed)
            if irqFD >= 0 {
                _ = ckvm_eventfd_signal(irqFD)
            } else {
                try? vm.setIRQLine(gsi, level: true)
                try? vm.setIRQLine(gsi, level: false)
            }
            if tracer.printing {
                var why = "configuration change"
                if case let .usedBuffer(queue) = cause { why = "used buffers in queue \(queue) (\(queueNames[queue]))" }
                tracer.printEvent(source: "virtio", kind: "INTERRUPT", detail: "GSI \(gsi) ← \(irqFD >= 0 ? "irqfd write" : "KVM_IRQ_LINE pulse") (\(why))")
            }
        }
        let base = X86Layout.virtioMMIO.rawValue
        let transport = VirtioMMIOTransport(device: device, interrupt: interrupt, notifyObserver: { [unowned attachment] queue in
            // Reached only when kicks are MMIO exits (the fallback path).
            attachment.kicks.add(1, ordering: .relaxed)
            if tracer.printing {
                tracer.printEvent(source: "virtio", kind: "KICK", detail: "queue \(queue) (\(queueNames[queue])) ← MMIO exit on QueueNotify 0x\(hex(base + VirtioMMIOTransport.queueNotify))")
            }
        })
        do { try mmioBus.insert(transport, name: "virtio-mmio console", base: base, length: VirtioMMIOTransport.size) } catch { throw .bus("\(error)") }

        if kicksByEventFD {
            for queue in 0..<device.queueCount {
                let fd = ckvm_eventfd()
                guard fd >= 0 else { kicksByEventFD = false; break }
                eventFDs.append(fd)
                do {
                    try vm.registerIOEventFD(fd, address: base + VirtioMMIOTransport.queueNotify, length: 4, isPIO: false, datamatch: UInt64(queue))
                } catch {
                    note("virtio: KVM_IOEVENTFD refused the QueueNotify address (\(error)); kicks fall back to MMIO exits")
                    kicksByEventFD = false
                    break
                }
                try thread.watch(fd) { [unowned attachment] in
                    guard ckvm_eventfd_drain(fd) > 0 else { return }
                    attachment.kicks.add(1, ordering: .relaxed)
                    if tracer.printing {
                        tracer.printEvent(source: "virtio", kind: "KICK", detail: "queue \(queue) (\(queueNames[queue])) ← ioeventfd (the guest's write of \(queue) to QueueNotify did not exit)")
                    }
                    device.notify(queue: queue)
                }
            }
        }
        attachment.eventFDs = eventFDs
        attachment.paths = VirtioNotificationPaths(kicksByEventFD: kicksByEventFD, interruptsByEventFD: interruptsByEventFD)
        virtioConsole = attachment
        if let socket { try watchConsoleSocket(socket, device: device, thread: thread) }
        note("virtio-console on virtio-mmio at \(X86Layout.virtioMMIO) (\(X86Layout.virtioMMIOSlotSize >> 10) KiB), GSI \(gsi); \(device.queueCount) queues; ports: 0 = console, 1 = \(VirtioConsole.controlPortName)")
        note("virtio notifications: kicks by \(kicksByEventFD ? "KVM_IOEVENTFD (no exit), served by the virtio device thread" : "MMIO exits on QueueNotify"); interrupts by \(interruptsByEventFD ? "KVM_IRQFD" : "KVM_IRQ_LINE")")
        switch configuration.consoleEndpoint {
        case .terminal: note("virtio-console port 0 ↔ stdout/stdin")
        case let .file(path): note("virtio-console port 0 → \(path)")
        case let .socket(path): note("virtio-console port 0 ↔ Unix socket \(path) (listening)")
        }
    }

    /// The console socket: accept clients and feed their bytes to port 0, pausing while the port's input
    /// buffer is full (the guest has not posted receive buffers).
    private func watchConsoleSocket(_ socket: ConsoleSocket, device: VirtioDevice<VirtioConsole>, thread: VirtioDeviceThread) throws(VMMError) {
        let paused = Mutex<Int32>(-1)
        let readClient: @Sendable (Int32) -> Void = { [unowned thread] fd in
            let room = VirtioConsole.inputLimit - device.pendingInputCount(port: 0)
            if room <= 0 {
                // Stop watching until there is room again (the idle task below resumes it).
                thread.unwatch(fd)
                paused.withLock { $0 = fd }
                return
            }
            guard let bytes = socket.receive(fd, limit: room) else { thread.unwatch(fd); return }
            if !bytes.isEmpty { device.enqueueInput(port: 0, bytes) }
        }
        try thread.watch(socket.listenFD) { [unowned thread] in
            guard let fd = socket.acceptClient() else { return }
            try? thread.watch(fd) { readClient(fd) }
        }
        virtioConsole?.watchClient = { [unowned thread] fd in try? thread.watch(fd) { readClient(fd) } }
        thread.addIdleTask { [unowned thread] in
            let fd = paused.withLock { $0 }
            guard fd >= 0, device.pendingInputCount(port: 0) < VirtioConsole.inputLimit else { return }
            paused.withLock { $0 = -1 }
            if socket.clientFD == fd { try? thread.watch(fd) { readClient(fd) } }
        }
    }

    /// The terminal's size for F_SIZE (stdout's, else 80 × 25).
    static func terminalSize() -> (columns: UInt16, rows: UInt16) {
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0, size.ws_row > 0 { return (size.ws_col, size.ws_row) }
        return (80, 25)
    }

    static func eventFDsAllowedByEnvironment() -> Bool {
        guard let value = getenv("SWIFTLET_VIRTIO_EVENTFD") else { return true }
        return String(cString: value) != "0"
    }

    /// Where host input for the guest's console goes (the virtio console's port 0 when it faces the terminal).
    func consoleInputSink() -> (@Sendable (ArraySlice<UInt8>) -> Int)? {
        if let virtioConsole {
            guard configuration.consoleEndpoint == .terminal else { return nil }
            let device = virtioConsole.device
            return { device.enqueueInput(port: 0, $0) }
        }
        if format.isLinux, let serial { return { serial.enqueueInput($0) } }
        return nil
    }

    /// One line for --trace-exits and -v: how many kicks and interrupts, and which way they went.
    public func virtioSummary() -> String? {
        guard let v = virtioConsole else { return nil }
        let kicks = v.kicks.load(ordering: .relaxed), interrupts = v.interrupts.load(ordering: .relaxed)
        var line = "virtio-console: \(kicks) kick\(kicks == 1 ? "" : "s") (\(v.paths.kicksByEventFD ? "ioeventfd, no VM exit" : "MMIO exits")), "
        line += "\(interrupts) interrupt\(interrupts == 1 ? "" : "s") (\(v.paths.interruptsByEventFD ? "irqfd" : "KVM_IRQ_LINE"))"
        if !v.device.faults.isEmpty { line += ", \(v.device.faults.count) fault\(v.device.faults.count == 1 ? "" : "s")" }
        return line
    }
}
