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
    /// The PCI function, with --virtio-transport pci.
    public internal(set) var pciTransport: VirtioPCITransport?
    let socket: ConsoleSocket?
    /// The console file (`--console-file`), which reports output it could not write.
    let file: ConsoleFile?
    var eventFDs: [Int32] = []
    /// The eventfd SIGWINCH is forwarded to, while the console is the host terminal.
    var resizeFD: Int32 = -1

    init(device: VirtioDevice<VirtioConsole>, transport: VirtioTransportKind, paths: VirtioNotificationPaths,
         control: VirtioControlChannel, thread: VirtioDeviceThread, socket: ConsoleSocket?, file: ConsoleFile?) {
        self.device = device
        self.transport = transport
        self.paths = paths
        self.control = control
        self.thread = thread
        self.socket = socket
        self.file = file
    }

    deinit {
        for fd in eventFDs { _ = ckvm_close(fd) }
        if resizeFD >= 0 {
            _ = ckvm_forward_signal_to_eventfd(SIGWINCH, -1)
            _ = ckvm_close(resizeFD)
        }
    }

    /// Waits for the console socket's first client (if there is a socket), then starts the device thread.
    /// `stopFD` (readable when the VMM was asked to stop) ends the wait early; the caller tells why.
    func start(timeout: Double?, stopFD: Int32 = -1) throws(VMMError) {
        if let socket {
            printError("swiftlet: waiting for a client on \(socket.path) (e.g. socat - UNIX-CONNECT:\(socket.path))")
            let ms = timeout.map { Int32(min($0 * 1000, 2_000_000_000)) } ?? -1
            switch socket.waitForClient(timeoutMilliseconds: ms, stopFD: stopFD) {
            case let .connected(fd): watchClient?(fd)
            case .timedOut: throw .noConsoleClient(path: socket.path, seconds: timeout ?? 0)
            case .stopped, .failed: throw .invalidOption("--console-socket \(socket.path): no client connected")
            }
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
    }

    /// The recipe step: the console device, its transport on the bus, and its notification paths.
    func attachVirtioConsole() throws(VMMError) {
        let console = self.console
        let log: @Sendable (String) -> Void = { printError("swiftlet: " + $0) }

        // Host side of port 0. Lines also go past the boot-milestone scanner (the terminal's ConsoleOutput
        // has it already; a file or socket gets a scanner of its own that writes nowhere).
        var socket: ConsoleSocket? = nil
        var file: ConsoleFile? = nil
        let send: @Sendable ([UInt8]) -> Void
        var scanner: ConsoleOutput? = nil
        switch configuration.consoleEndpoint {
        case .terminal:
            send = { console.put(contentsOf: $0) }
        case let .file(path):
            let opened = try ConsoleFile(path: path)
            file = opened
            send = { opened.write($0) }
            scanner = ConsoleOutput(fd: -1)
        case let .socket(path):
            let s = try ConsoleSocket(path: path)
            socket = s
            send = { s.send($0) }
            scanner = ConsoleOutput(fd: -1)
        }
        if format.isLinux, let scanner { scanner.observeLines { [unowned self] line in self.scanForMilestone(line) } }
        let firstOutput = Atomic<Bool>(false)
        let lineScanner = scanner
        let output: @Sendable ([UInt8]) -> Void = { [unowned self] bytes in
            if !firstOutput.exchange(true, ordering: .relaxed) { self.mark("first output on the virtio console") }
            send(bytes)
            lineScanner?.put(contentsOf: bytes)
        }
        let received = VirtioControlChannel.Received()
        let ports = [
            VirtioConsole.Port(name: nil, output: output),
            VirtioConsole.Port(name: VirtioConsole.controlPortName, output: { received.append($0) }),
        ]
        let model = VirtioConsole(ports: ports, size: Self.terminalSize())
        let device = VirtioDevice(model: model, memory: memory, log: log)
        let control = VirtioControlChannel(device: device, received: received)
        let queueNames = (0..<device.queueCount).map { model.queueName($0) }

        let thread = try VirtioDeviceThread()
        let transport = configuration.virtioTransport ?? .mmio
        let attachment = VirtioConsoleAttachment(device: device, transport: transport,
                                                 paths: VirtioNotificationPaths(kicksByEventFD: false, interruptsByEventFD: false),
                                                 control: control, thread: thread, socket: socket, file: file)
        virtioConsole = attachment
        let eventFDs = configuration.virtioEventFDs && Self.eventFDsAllowedByEnvironment()
        // One eventfd per queue, watched by the device thread; each transport registers them with KVM_IOEVENTFD.
        var kickFDs: [Int32] = []
        if eventFDs && kvm.checkExtension(.ioeventfd) > 0 {
            kickFDs = try makeKickEventFDs(attachment, queueNames: queueNames, transport: transport)
        }
        switch transport {
        case .mmio: try attachVirtioMMIO(attachment, queueNames: queueNames, kickFDs: kickFDs, irqfd: eventFDs && kvm.checkExtension(.irqfd) > 0)
        case .pci: try attachVirtioPCI(attachment, queueNames: queueNames, kickFDs: kickFDs)
        }
        if let socket { try watchConsoleSocket(socket, device: device, thread: thread) }
        if case .terminal = configuration.consoleEndpoint, isatty(1) == 1 { try watchTerminalSize(attachment) }
        let paths = attachment.paths
        note("virtio notifications: kicks by \(paths.kicksByEventFD ? "KVM_IOEVENTFD (no exit), served by the virtio device thread" : "MMIO exits"); interrupts by \(paths.interruptsByEventFD ? "KVM_IRQFD" : transport == .pci ? "KVM_SIGNAL_MSI (MSI-X) or KVM_IRQ_LINE (INTx)" : "KVM_IRQ_LINE")")
        switch configuration.consoleEndpoint {
        case .terminal: note("virtio-console port 0 ↔ stdout/stdin")
        case let .file(path): note("virtio-console port 0 → \(path)")
        case let .socket(path): note("virtio-console port 0 ↔ Unix socket \(path) (the guest starts when a client connects)")
        }
    }

    /// The host terminal's size follows the guest's console (F_SIZE, virtio 1.2 §5.3.6.2): SIGWINCH is
    /// forwarded to an eventfd (a tiny C handler, no signal masks), and the device thread reads the new size
    /// with TIOCGWINSZ and hands it to the device, which sends VIRTIO_CONSOLE_RESIZE for port 0 (multiport)
    /// or raises a configuration change interrupt.
    private func watchTerminalSize(_ attachment: VirtioConsoleAttachment) throws(VMMError) {
        let fd = ckvm_eventfd()
        guard fd >= 0 else {
            note("virtio-console: no eventfd for SIGWINCH (\(String(cString: strerror(-fd)))); the guest keeps the first terminal size")
            return
        }
        attachment.resizeFD = fd
        // A parent may have left SIGWINCH blocked (libdispatch's worker threads block signals, and children
        // inherit the mask): unblock it here, before the vCPU and device threads exist and inherit the mask.
        _ = ckvm_thread_signal_mask(SIGWINCH, 0)
        let result = ckvm_forward_signal_to_eventfd(SIGWINCH, fd)
        guard result == 0 else {
            note("virtio-console: SIGWINCH handler not installed (\(String(cString: strerror(-result)))); the guest keeps the first terminal size")
            return
        }
        let device = attachment.device
        let tracer = self.tracer
        try attachment.thread.watch(fd) {
            guard ckvm_eventfd_drain(fd) > 0 else { return }
            let size = Machine.terminalSize()
            if tracer.printing {
                tracer.printEvent(source: "virtio", kind: "RESIZE",
                                  detail: "host terminal is now \(size.columns)×\(size.rows) (SIGWINCH): port 0's console size (F_SIZE)")
            }
            device.resize(columns: size.columns, rows: size.rows)
        }
        note("virtio-console: the host terminal's size changes (SIGWINCH) reach the guest as console resizes")
    }

    /// Eventfds for the queues' kicks, each served on the device thread by `device.notify(queue:)`.
    private func makeKickEventFDs(_ attachment: VirtioConsoleAttachment, queueNames: [String], transport: VirtioTransportKind) throws(VMMError) -> [Int32] {
        let tracer = self.tracer
        let device = attachment.device
        var fds: [Int32] = []
        for queue in 0..<device.queueCount {
            let fd = ckvm_eventfd()
            guard fd >= 0 else {
                note("virtio: no eventfd for queue \(queue) (\(String(cString: strerror(-fd)))); kicks are MMIO exits")
                for f in fds { _ = ckvm_close(f) }
                return []
            }
            fds.append(fd)
            attachment.eventFDs.append(fd)
            let register = transport == .mmio ? "QueueNotify" : "its notification address"
            try attachment.thread.watch(fd) { [unowned attachment] in
                guard ckvm_eventfd_drain(fd) > 0 else { return }
                attachment.kicks.add(1, ordering: .relaxed)
                if tracer.printing {
                    tracer.printEvent(source: "virtio", kind: "KICK", detail: "queue \(queue) (\(queueNames[queue])) ← ioeventfd (the guest's write to \(register) did not exit)")
                }
                device.notify(queue: queue)
            }
        }
        return fds
    }

    /// Traces and counts a kick that reached the transport as an MMIO exit (no ioeventfd took it).
    private func exitKickObserver(_ attachment: VirtioConsoleAttachment, queueNames: [String], register: @escaping @Sendable (Int) -> String) -> @Sendable (Int) -> Void {
        let tracer = self.tracer
        return { [unowned attachment] queue in
            attachment.kicks.add(1, ordering: .relaxed)
            if tracer.printing, queue < queueNames.count {
                tracer.printEvent(source: "virtio", kind: "KICK", detail: "queue \(queue) (\(queueNames[queue])) ← MMIO exit on \(register(queue))")
            }
        }
    }

    /// virtio-mmio: the register block at X86Layout.virtioMMIO, QueueNotify ioeventfds with the queue index
    /// as datamatch, an edge on GSI 5 by irqfd (or a KVM_IRQ_LINE pulse).
    private func attachVirtioMMIO(_ attachment: VirtioConsoleAttachment, queueNames: [String], kickFDs: [Int32], irqfd: Bool) throws(VMMError) {
        let tracer = self.tracer
        let vm = self.vm
        let device = attachment.device
        let gsi = X86Layout.virtioConsoleIRQ
        let base = X86Layout.virtioMMIO.rawValue
        var irqFD: Int32 = -1
        if irqfd {
            let fd = ckvm_eventfd()
            if fd >= 0, (try? vm.registerIRQFD(fd, gsi: gsi)) != nil {
                irqFD = fd
                attachment.eventFDs.append(fd)
            } else {
                if fd >= 0 { _ = ckvm_close(fd) }
                note("virtio: KVM_IRQFD refused GSI \(gsi); interrupts fall back to KVM_IRQ_LINE")
            }
        }
        let irq = irqFD
        let interrupt: @Sendable (VirtioInterruptCause) -> Void = { [unowned attachment] cause in
            attachment.interrupts.add(1, ordering: .relaxed)
            if irq >= 0 {
                _ = ckvm_eventfd_signal(irq)
            } else {
                try? vm.setIRQLine(gsi, level: true)
                try? vm.setIRQLine(gsi, level: false)
            }
            if tracer.printing {
                var why = "configuration change"
                if case let .usedBuffer(queue) = cause { why = "used buffers in queue \(queue) (\(queueNames[queue]))" }
                tracer.printEvent(source: "virtio", kind: "INTERRUPT", detail: "GSI \(gsi) ← \(irq >= 0 ? "irqfd write" : "KVM_IRQ_LINE pulse") (\(why))")
            }
        }
        let notifyAddress = base + VirtioMMIOTransport.queueNotify
        let transport = VirtioMMIOTransport(device: device, interrupt: interrupt,
                                            notifyObserver: exitKickObserver(attachment, queueNames: queueNames) { _ in "QueueNotify 0x\(hex(notifyAddress))" })
        do { try mmioBus.insert(transport, name: "virtio-mmio console", base: base, length: VirtioMMIOTransport.size) } catch { throw .bus("\(error)") }
        var kicksByEventFD = !kickFDs.isEmpty
        for (queue, fd) in kickFDs.enumerated() {
            do {
                try vm.registerIOEventFD(fd, address: notifyAddress, length: 4, isPIO: false, datamatch: UInt64(queue))
            } catch {
                note("virtio: KVM_IOEVENTFD refused QueueNotify (\(error)); kicks are MMIO exits")
                kicksByEventFD = false
                break
            }
        }
        attachment.paths = VirtioNotificationPaths(kicksByEventFD: kicksByEventFD, interruptsByEventFD: irqFD >= 0)
        note("virtio-console on virtio-mmio at \(X86Layout.virtioMMIO) (\(X86Layout.virtioMMIOSlotSize >> 10) KiB), GSI \(gsi); \(device.queueCount) queues; ports: 0 = console, 1 = \(VirtioConsole.controlPortName)")
    }

    /// The PCI slot of the virtio console, and the IOAPIC pin (= GSI) its INTA# is wired to.
    static let virtioPCISlot: UInt8 = 1
    static var virtioPCIInterruptPin: UInt8 { MPTable.PCIBus.defaultIOAPICPin(device: virtioPCISlot, pin: PCIInterruptPin.intA.rawValue) }

    /// The PCI bus for the MP table when the console is on virtio-pci (nil otherwise).
    func mpTablePCIBus() -> MPTable.PCIBus? {
        guard configuration.console == .virtio, configuration.virtioTransport == .pci else { return nil }
        return MPTable.PCIBus(interrupts: [.init(device: Self.virtioPCISlot, pin: PCIInterruptPin.intA.rawValue, ioapicPin: Self.virtioPCIInterruptPin)])
    }

    /// virtio-pci: a PCI host bridge (ports 0xCF8-0xCFF, the BAR window on the MMIO bus) with the console at
    /// 00:01.0; MSI-X messages by KVM_SIGNAL_MSI, INTA# as a level on its IOAPIC pin by KVM_IRQ_LINE; the
    /// notification ioeventfds follow BAR 0 wherever the guest decodes it.
    private func attachVirtioPCI(_ attachment: VirtioConsoleAttachment, queueNames: [String], kickFDs: [Int32]) throws(VMMError) {
        let tracer = self.tracer
        let vm = self.vm
        let device = attachment.device
        let gsi = UInt32(Self.virtioPCIInterruptPin)
        let wiring = PCIInterruptWiring(
            msi: { [unowned attachment] vector, message in
                attachment.interrupts.add(1, ordering: .relaxed)
                let accepted = (try? vm.signalMSI(address: message.address, data: message.data)) ?? false
                if tracer.printing {
                    tracer.printEvent(source: "virtio", kind: "INTERRUPT", detail: "MSI-X vector \(vector): \(message) ← KVM_SIGNAL_MSI\(accepted ? "" : " (not accepted by an APIC)")")
                }
            },
            intx: { [unowned attachment] asserted in
                if asserted { attachment.interrupts.add(1, ordering: .relaxed) }
                try? vm.setIRQLine(gsi, level: asserted)
                if tracer.printing {
                    tracer.printEvent(source: "virtio", kind: "INTERRUPT", detail: "INTA# \(asserted ? "asserted" : "deasserted") on GSI \(gsi) (KVM_IRQ_LINE level \(asserted ? 1 : 0))")
                }
            })
        let registered = Mutex<UInt64?>(nil)
        let registrationFailed = Atomic<Bool>(false)
        let slot = Self.virtioPCISlot
        let onBARChange: @Sendable (PCIBARChange) -> Void = { change in
            guard change.address.device == slot, change.bar == VirtioPCITransport.structuresBAR, !kickFDs.isEmpty else { return }
            // Move the notification ioeventfds with BAR 0 (the guest may place and enable it as it likes).
            registered.withLock { current in
                if let old = current {
                    for (queue, fd) in kickFDs.enumerated() {
                        try? vm.registerIOEventFD(fd, address: VirtioPCITransport.notifyAddress(barBase: old, queue: queue), length: 2, isPIO: false, deassign: true)
                    }
                    current = nil
                }
                guard let new = change.new else { return }
                for (queue, fd) in kickFDs.enumerated() {
                    do {
                        try vm.registerIOEventFD(fd, address: VirtioPCITransport.notifyAddress(barBase: new.base, queue: queue), length: 2, isPIO: false)
                    } catch {
                        registrationFailed.store(true, ordering: .relaxed)
                        return
                    }
                }
                current = new.base
            }
        }
        let bridge = PCIHostBridge(window: PCIMemoryRange(base: X86Layout.pciMemoryWindow.rawValue,
                                                          length: X86Layout.pciMemoryWindowEnd.rawValue - X86Layout.pciMemoryWindow.rawValue)!,
                                   onBARChange: onBARChange)
        let transport: VirtioPCITransport
        do {
            transport = try VirtioPCITransport(device: device, interrupts: wiring, notifyObserver: exitKickObserver(attachment, queueNames: queueNames) { queue in
                "queue \(queue)'s notification address (BAR 0 + 0x\(hex(VirtioPCITransport.notifyOffset + UInt64(queue) * UInt64(VirtioPCITransport.notifyMultiplier))))"
            })
            try bridge.attach(transport, slot: slot)
            try bridge.assignBARs()
        } catch { throw .bus("virtio-pci console: \(error)") }
        let window = bridge.memoryWindow()
        do {
            try portBus.insert(bridge, name: "PCI host bridge (configuration mechanism #1)", base: PCIHostBridge.configAddressPort, length: PCIHostBridge.portCount)
            try mmioBus.insert(window, name: "PCI memory window", base: window.base, length: window.length)
        } catch { throw .bus("\(error)") }
        // KVM_IOEVENTFD is asked for once BAR 0 is decoded; check now that it accepts a PCI notify address at all.
        var kicksByEventFD = !kickFDs.isEmpty
        if let fd = kickFDs.first, let bar0 = transport.pciFunction.barAddress(VirtioPCITransport.structuresBAR) {
            let probe = VirtioPCITransport.notifyAddress(barBase: bar0, queue: 0)
            if (try? vm.registerIOEventFD(fd, address: probe, length: 2, isPIO: false)) != nil {
                try? vm.registerIOEventFD(fd, address: probe, length: 2, isPIO: false, deassign: true)
            } else {
                kicksByEventFD = false
                note("virtio: KVM_IOEVENTFD refused a notification address; kicks are MMIO exits")
            }
        }
        attachment.paths = VirtioNotificationPaths(kicksByEventFD: kicksByEventFD, interruptsByEventFD: false)
        attachment.pciTransport = transport
        let bars = (0..<2).compactMap { i in transport.pciFunction.barAddress(i).map { "BAR \(i) 0x\(hex($0))" } }.joined(separator: ", ")
        note("virtio-console on virtio-pci at 00:\(slot < 16 ? "0" : "")\(String(slot, radix: 16)).0 (1af4:\(hex(VirtioPCITransport.pciDeviceID(device.deviceID)))): \(bars); INTA# on IOAPIC pin \(gsi); MSI-X \(device.queueCount + 1) vectors; \(device.queueCount) queues")
        note("PCI host bridge 8086:0d57 at 00:00.0 on ports \(rangeText(base: PCIHostBridge.configAddressPort, length: PCIHostBridge.portCount)); memory window \(rangeText(base: X86Layout.pciMemoryWindow.rawValue, length: X86Layout.pciMemoryWindowEnd.rawValue - X86Layout.pciMemoryWindow.rawValue))")
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
        // A restored init's command goes first (Machine+Restore.swift): typed input waits until it is in.
        if hasInterruptControllers, let serial { return { [unowned self] in pendingConsoleInput.withLock { $0.isEmpty } ? serial.enqueueInput($0) : 0 } }
        return nil
    }

    /// One line for --trace-exits and -v: how many kicks and interrupts, and which way they went.
    public func virtioSummary() -> String? {
        guard let v = virtioConsole else { return nil }
        let kicks = v.kicks.load(ordering: .relaxed), interrupts = v.interrupts.load(ordering: .relaxed)
        let how = v.paths.interruptsByEventFD ? "irqfd" : v.transport == .pci ? (v.pciTransport?.pciFunction.isMSIXEnabled == true ? "MSI-X, KVM_SIGNAL_MSI" : "INTx, KVM_IRQ_LINE") : "KVM_IRQ_LINE"
        var line = "virtio-console (virtio-\(v.transport.rawValue)): \(kicks) kick\(kicks == 1 ? "" : "s") (\(v.paths.kicksByEventFD ? "ioeventfd, no VM exit" : "MMIO exits")), "
        line += "\(interrupts) interrupt\(interrupts == 1 ? "" : "s") (\(how))"
        if !v.device.faults.isEmpty { line += ", \(v.device.faults.count) fault\(v.device.faults.count == 1 ? "" : "s")" }
        let features = v.device.negotiatedFeatures
        if features != 0 {
            line += "; driver features: \(v.device.featureList(features))"
            if let ports = v.device.withModel({ console, _ in console.isMultiport ? console.readyPorts : nil }) ?? nil {
                line += "; ports ready: \(ports.map { $0 == 0 ? "0 (console)" : "\($0) (\(VirtioConsole.controlPortName))" }.joined(separator: ", "))"
            }
        }
        return line
    }
}
