// Integration tests of the virtio console on the real /dev/kvm: the tiny guests' virtio-mmio driver prints
// through it (by ioeventfd/irqfd and by the MMIO-exit/KVM_IRQ_LINE fallback), its console socket works, and
// every hostile guest, over virtio-mmio and virtio-pci, is contained: the VMM stays alive, the device reports DEVICE_NEEDS_RESET and is reset
// by the guest, and the VMM's message names the fault.
import Glibc
import Testing
import TestSupport
import Virtio
import VMM

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct VirtioGuestTests {
    @Test func helloPrintsItsBannerThroughVirtioAndTheTraceShowsKicksAndInterrupts() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--trace-exits", "--timeout", "60"])
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr)")
        #expect(r.stdout.contains("Swiftlet tiny guest: hello from a multiboot kernel"))
        #expect(r.stdout.contains("console: virtio-console, virtio-mmio at 0xd0000000"))
        #expect(r.stdout.contains("multiboot magic ok"))
        // No character of the banner went through the UART: no OUT to port 0x3f8.
        #expect(!r.stderr.contains("out port 0x03f8"), "the banner must not use COM1")
        #expect(r.stderr.contains("KICK           queue 1 (port 0 transmitq) ← ioeventfd"), "\(r.stderr.suffix(2000))")
        #expect(r.stderr.contains("INTERRUPT      GSI 5 ← irqfd write (used buffers in queue 1 (port 0 transmitq))"))
        #expect(r.stderr.contains("read  0xd0000060 4 bytes → 0x00000001"), "the driver reads InterruptStatus")
        #expect(r.stderr.contains("virtio-console (virtio-mmio): 8 kicks (ioeventfd, no VM exit), 8 interrupts (irqfd)"), "one kick per line")
    }

    @Test func helloPrintsThroughVirtioPCIFoundByConfigurationMechanism1() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--virtio-transport", "pci", "--trace-exits", "--timeout", "60"])
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr)")
        #expect(r.stdout.contains("Swiftlet tiny guest: hello from a multiboot kernel"))
        #expect(r.stdout.contains("console: virtio-console, virtio-pci at 00:01.0, common configuration at 0xe0000000"))
        #expect(r.stdout.contains("multiboot magic ok"))
        #expect(!r.stderr.contains("out port 0x03f8"), "the banner must not use COM1")
        #expect(r.stderr.contains("out port 0x0cf8"), "the guest scans PCI through CONFIG_ADDRESS")
        #expect(r.stderr.contains("KICK           queue 1 (port 0 transmitq) ← ioeventfd"))
        #expect(r.stderr.contains("INTERRUPT      INTA# asserted on GSI 17 (KVM_IRQ_LINE level 1)"))
        #expect(r.stderr.contains("INTERRUPT      INTA# deasserted on GSI 17"), "reading ISR deasserts INTx")
        #expect(r.stderr.contains("virtio-console (virtio-pci): 8 kicks (ioeventfd, no VM exit), 8 interrupts (INTx, KVM_IRQ_LINE)"), "\(r.stderr.suffix(600))")
    }

    @Test func theFallbackWithoutEventFDsUsesMMIOExitsAndIRQLine() throws {
        var c = MachineConfiguration()
        c.console = .virtio
        c.virtioEventFDs = false
        c.timeout = 60
        let console = ConsoleOutput(fd: -1, capture: true)
        let machine = try Machine.build(c, console: console)
        let outcome = machine.run()
        let output = String(decoding: console.captured, as: UTF8.self)
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)))
        #expect(output.contains("console: virtio-console, virtio-mmio at 0xd0000000"))
        let virtio = try #require(machine.virtioConsole)
        #expect(!virtio.paths.kicksByEventFD && !virtio.paths.interruptsByEventFD)
        #expect(virtio.kicks.load(ordering: .relaxed) == 8)
        #expect(virtio.interrupts.load(ordering: .relaxed) == 8)
        #expect(machine.tracer.table[.io] == nil || machine.tracer.table[.io]!.count < 10, "only the debug exit is port I/O")
    }

    @Test func aHostTerminalResizeReachesTheConsole() throws {
        // On a pseudo-terminal (stdout a terminal) the VMM forwards SIGWINCH to the virtio console. Once the
        // loop guest has printed its line the VMM watches the size; TIOCSWINSZ on the terminal then sends
        // SIGWINCH to its foreground process group, the VMM's, and the trace shows the resize.
        let terminal = try #require(PseudoTerminal())
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--console", "virtio", "--trace-exits", "--timeout", "60"],
                                               terminal: terminal.slavePath))
        #expect(terminal.awaitOutput("looping forever", from: child, timeout: 60), "the loop guest runs: \(terminal.text)")
        var size = winsize(ws_row: 45, ws_col: 123, ws_xpixel: 0, ws_ypixel: 0)
        #expect(ioctl(terminal.master, UInt(TIOCSWINSZ), &size) == 0)
        let resized = terminal.awaitOutput("virtio RESIZE         host terminal is now 123×45 (SIGWINCH)", from: child, timeout: 60)
        kill(child.pid, SIGTERM)
        let r = child.wait(deadline: 60)
        #expect(resized, "\(terminal.text)")
        #expect(r.status == 143, "still running until stopped: \(terminal.text)")
        #expect(!terminal.text.contains("Fatal error"))
    }

    @Test func theConsoleSocketCarriesTheOutputToItsClient() throws {
        let path = "/tmp/swiftlet-test-console-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        // The VMM waits for the first client before starting the guest.
        let child = try #require(Spawned.start(swiftlet, ["boot", "--console", "virtio", "--console-socket", path, "--timeout", "60"]))
        var fd: Int32 = -1
        for _ in 0..<500 where fd < 0 {
            fd = connectUnix(path)
            if fd < 0 { usleep(20_000) }
        }
        #expect(fd >= 0, "could not connect to \(path)")
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while fd >= 0 {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        if fd >= 0 { close(fd) }
        let result = child.wait()
        #expect(result.status == ExitStatus.guestExit(0), "\(result.stderr)")
        #expect(String(decoding: received, as: UTF8.self).contains("Swiftlet tiny guest: hello from a multiboot kernel"))
        #expect(result.stdout.isEmpty, "the console went to the socket, not stdout")
        #expect(access(path, F_OK) != 0, "the socket file is removed")
    }

    static let attacks: [(String, String)] = [
        ("loop", "queue 1 (port 0 transmitq): descriptor chain from head 0 loops: it reaches descriptor 0 a second time"),
        ("outside", "queue 1 (port 0 transmitq): descriptor 0: buffer of 16 bytes at 0x80000000 is outside guest RAM"),
        ("giant", "queue 1 (port 0 transmitq): descriptor 0: buffer of 4294967280 bytes at 0x"),
        ("jump", "queue 1 (port 0 transmitq): available index jumped from 0 to 1000, 1000 entries ahead, more than the queue size 16"),
        ("long", "queue 1 (port 0 transmitq): descriptor chain from head 0 is longer than the queue size 16"),
        ("overlap", "queue 2 (control receiveq): device-writable buffer of descriptor 0 overlaps the queue's used ring"),
    ]

    /// The hostile guest drives whichever transport it finds: each attack runs over both.
    static let transports = ["mmio", "pci"]

    static func hostile(_ attack: String, _ transport: String) -> ProcessResult {
        ProcessRunner.run(swiftlet, ["boot", "--guest", "virtio-hostile", "--console", "virtio", "--virtio-transport", transport,
                                     "--cmdline", "attack=\(attack)", "--timeout", "60"])
    }

    @Test(arguments: attacks, transports)
    func aHostileGuestIsContainedAndTheDeviceReset(attack: (name: String, fault: String), transport: String) {
        let (attack, fault) = attack
        let r = Self.hostile(attack, transport)
        #expect(r.stdout.contains("virtio-hostile: transport virtio-\(transport)"), "\(r.stdout)")
        // The guest saw DEVICE_NEEDS_RESET and a configuration interrupt, reset the device, printed through it
        // again, and ended itself with debug-exit 0: the VMM kept running all along.
        #expect(r.status == ExitStatus.guestExit(0), "\(attack): \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("swiftlet: virtio-console: \(fault)"), "\(attack): \(r.stderr)")
        #expect(r.stderr.contains("device needs reset (DEVICE_NEEDS_RESET set)"))
        #expect(r.stderr.contains("swiftlet: virtio-console: reset by the driver after the fault; the device works again"))
        #expect(r.stdout.contains("(DEVICE_NEEDS_RESET), interrupt status 0x00000002 (configuration change)"), "\(r.stdout)")
        #expect(r.stdout.contains("virtio-hostile: recovered, the virtio console works again after the reset"))
        #expect(!r.stderr.contains("Fatal error"))
    }

    @Test(arguments: transports)
    func aNotificationBeforeDriverOKConsumesNothing(transport: String) {
        let r = Self.hostile("early", transport)
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("virtio-hostile: nothing consumed before DRIVER_OK"))
        #expect(r.stdout.contains("virtio-hostile: consumed after DRIVER_OK and a new kick"))
        #expect(r.stderr.contains("driver notified queue 1 (port 0 transmitq) before DRIVER_OK"))
    }

    @Test(arguments: transports)
    func writesToReadOnlyRegistersAndConfigurationAreIgnoredAndLogged(transport: String) {
        let r = Self.hostile("readonly", transport)
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("virtio-hostile: read-only registers and configuration unchanged"))
        #expect(r.stderr.contains("driver wrote 0x1 to configuration field cols (offset 0, 2 bytes), which is read-only: ignored"))
        if transport == "mmio" {
            #expect(r.stderr.contains("driver wrote 0x0 to MagicValue, which is read-only or reserved: ignored"))
        } else {
            #expect(r.stderr.contains("driver wrote 0x1 to num_queues, which is read-only: ignored"), "\(r.stderr)")
            #expect(r.stderr.contains("driver wrote 0x0 to device_feature, which is read-only: ignored"), "\(r.stderr)")
        }
    }

    static let badOptions: [([String], String)] = [
        (["boot", "--console", "tty"], "--console tty: unknown console (use serial or virtio)"),
        (["boot", "--virtio-transport", "usb", "--console", "virtio"], "--virtio-transport usb: unknown transport (use mmio or pci)"),
        (["boot", "--virtio-transport", "mmio"], "--virtio-transport needs a virtio device: add --console virtio"),
        (["boot", "--console-socket", "/tmp/x.sock"], "--console-socket is for the virtio console: add --console virtio"),
        (["boot", "--console", "virtio", "--console-file", "/nonexistent/dir/out"], "--console-file /nonexistent/dir/out: cannot open it for writing: No such file or directory"),
        (["boot", "--console", "virtio", "--console-socket", "/etc/passwd"], "--console-socket /etc/passwd: a file that is not a socket is in the way"),
    ]

    @Test(arguments: badOptions)
    func refusesBadConsoleOptionsWithOneLine(arguments: [String], phrase: String) {
        let r = ProcessRunner.run(swiftlet, arguments)
        #expect(r.status == ExitStatus.badInput, "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains(phrase), "\(arguments): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }
}

/// Connects to a Unix stream socket; the fd, or -1.
func connectUnix(_ path: String) -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    if ok != 0 { close(fd); return -1 }
    return fd
}


/// The `console-bench` guest (bench/virtio.sh's workload): `kib=N` KiB of 64-byte lines, byte for byte,
/// through the 8250 or the virtio console; over virtio its 16-entry transmit queue of 64 KiB buffers carries
/// a whole MiB per kick (guest/tiny/console-bench.c).
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ConsoleBenchGuestTests {
    static let line = "console-bench 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM\n"

    @Test func itWritesKibKiBOfLinesThroughThe8250() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--guest", "console-bench", "--cmdline", "kib=16", "--trace-exits=all", "--timeout", "60"], deadline: 120)
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr.suffix(1000))")
        #expect(Self.line.utf8.count == 64)
        #expect(r.stdout == String(repeating: Self.line, count: 16 * 1024 / 64), "\(r.stdout.count) bytes")
        // One OUT to THR per byte, one LSR read per 16 (the 16550A's FIFO), the FIFO probe (an FCR write, an
        // IIR read) and the debug exit: 16384 + 1024 + 3 port I/O exits, and no other kind.
        #expect(r.stderr.contains("out port 0x03f8 1 byte ← 0x4d 'M'  → COM1 (8250 UART)"))
        let table = r.stderr.split(separator: "\n").filter { $0.hasPrefix("  ") }.map { $0.split(separator: " ") }
        #expect(table.first { $0.first == "IO" }?.dropFirst().first == "17411", "\(r.stderr.suffix(600))")
        #expect(table.first { $0.first == "total" }?.dropFirst().first == "17411")
        #expect(!r.stderr.contains("virtio"), "no virtio device on this machine")
    }

    @Test(arguments: ["mmio", "pci"])
    func aMiBGoesThroughTheVirtioConsoleInOneKick(transport: String) {
        let r = ProcessRunner.run(swiftlet, ["boot", "--guest", "console-bench", "--console", "virtio", "--virtio-transport", transport,
                                             "-v", "--timeout", "60"], deadline: 120)
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr.suffix(1000))")
        #expect(r.stdout.utf8.count == 1 << 20)
        #expect(r.stdout == String(repeating: Self.line, count: (1 << 20) / 64), "the default kib=1024, every line intact")
        #expect(r.stderr.contains("virtio-console (virtio-\(transport)): 1 kick (ioeventfd, no VM exit), 1 interrupt ("), "\(r.stderr)")
    }
}

/// virtio-pci's MSI-X on this backend with a real guest: `hello` with `msix` on its command line points its
/// transmitq at MSI-X table entry 1 (APIC vector 0x41), enables MSI-X and its local APIC, and reads the IRR
/// (interrupts stay off): each used buffer becomes a KVM_SIGNAL_MSI that the guest's APIC accepts.
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct VirtioPCIMSIXGuestTests {
    @Test func theTransmitqInterruptsByMSIXAndTheGuestsAPICHasTheVector() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--virtio-transport", "pci", "--cmdline", "msix",
                                             "--trace-exits", "--timeout", "60"], deadline: 120)
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr.suffix(1000))")
        #expect(r.stdout.contains("virtio-pci MSI-X: transmitq on table entry 1, APIC vector 0x41\n"), "\(r.stdout)")
        #expect(r.stdout.contains("virtio-pci MSI-X: vector 0x41 pending in the local APIC's IRR\n"), "\(r.stdout)")
        #expect(r.stdout.hasSuffix("multiboot magic ok\n"))
        let signalled = r.stderr.split(separator: "\n").filter { $0.contains("INTERRUPT      MSI-X vector 1: MSI 0x41 → 0xfee00000 (APIC 0, vector 65) ← KVM_SIGNAL_MSI") }
        // The two lines before MSI-X (banner, console) went by INTx; each of the 8 after by MSI-X, accepted.
        #expect(signalled.count == 8, "\(r.stderr.suffix(2000))")
        #expect(!r.stderr.contains("not accepted by an APIC"))
        #expect(r.stderr.split(separator: "\n").filter { $0.contains("INTA# asserted") }.count == 2)
        #expect(r.stderr.contains("virtio-console (virtio-pci): 10 kicks (ioeventfd, no VM exit), 10 interrupts (MSI-X, KVM_SIGNAL_MSI)"), "\(r.stderr.suffix(600))")
    }

    @Test func withoutMSIXOnItsCommandLineHelloStaysOnINTx() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--virtio-transport", "pci", "--trace-exits", "--timeout", "60"], deadline: 120)
        #expect(r.status == ExitStatus.guestExit(0))
        #expect(!r.stdout.contains("MSI-X") && !r.stderr.contains("KVM_SIGNAL_MSI"))
    }
}
