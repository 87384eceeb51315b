// ConsoleTerminalTests: the interactive console on a real (pseudo-)terminal, as a user at a shell has it:
// the VMM puts the terminal in raw mode while the guest runs, Ctrl-A x stops the VM (status 130), and the
// terminal's settings are back as they were however the run ends (Ctrl-A x, SIGTERM, SIGHUP).
import Glibc
import Testing
import TestSupport

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ConsoleTerminalTests {
    /// The settings a test compares: input, output, control and local modes.
    static func modes(_ t: termios) -> [tcflag_t] { [t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag] }

    /// The guests that take keyboard input, each with the line it prints once it runs: on the 8250, a "Linux"
    /// one (a PVH kernel: Swiftlet gives the serial port input only for Linux), here a synthetic PVH kernel that
    /// prints its command line and spins; on the virtio console, the embedded loop guest.
    static let consoles = ["serial", "virtio"]

    func arguments(console: String) -> (arguments: [String], marker: String, cleanup: () -> Void) {
        if console == "virtio" {
            return (["--guest", "loop", "--console", "virtio"], "looping forever", {})
        }
        let path = writeTemp("pvh-spin", SyntheticELF.pvh(code: SyntheticELF.printCommandLineThenLoop))
        return (["--kernel", path], "panic=-1", { unlink(path) })
    }

    /// Starts a guest on a fresh pseudo-terminal and waits for its line; returns the terminal, the child and
    /// the terminal's settings from before the VMM started.
    func start(console: String) throws -> (PseudoTerminal, Spawned, termios) {
        let terminal = try #require(PseudoTerminal())
        let before = terminal.attributes
        #expect(before.c_lflag & tcflag_t(ICANON | ECHO) == tcflag_t(ICANON | ECHO), "a new terminal is cooked, with echo")
        let guest = arguments(console: console)
        defer { guest.cleanup() }
        let child = try #require(Spawned.start(swiftlet, ["boot", "--timeout", "60"] + guest.arguments, terminal: terminal.slavePath))
        #expect(terminal.awaitOutput(guest.marker, from: child, timeout: 60), "the guest runs: \(terminal.text)")
        let during = terminal.attributes
        #expect(during.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0, "raw while the guest runs: no line editing, echo or signals")
        return (terminal, child, before)
    }

    @Test(arguments: consoles)
    func ctrlAXStopsTheVMAndRestoresTheTerminal(console: String) throws {
        let (terminal, child, before) = try start(console: console)
        terminal.type([0x01, UInt8(ascii: "x")])
        let r = child.wait(deadline: 60)
        #expect(r.status == 130, "\(terminal.text)")
        #expect(terminal.text.contains("swiftlet: stopped by Ctrl-A x"), "\(terminal.text)")
        #expect(Self.modes(terminal.attributes) == Self.modes(before), "the terminal's settings are back")
    }

    static let stopSignals: [(Int32, Int32)] = [(SIGTERM, 143), (SIGHUP, 129)]

    @Test(arguments: consoles, stopSignals)
    func aStopSignalRestoresTheTerminal(console: String, signal: (number: Int32, status: Int32)) throws {
        let (signal, status) = signal
        let (terminal, child, before) = try start(console: console)
        kill(child.pid, signal)
        let r = child.wait(deadline: 60)
        #expect(r.status == status, "\(terminal.text)")
        #expect(Self.modes(terminal.attributes) == Self.modes(before), "the terminal's settings are back")
    }
}
