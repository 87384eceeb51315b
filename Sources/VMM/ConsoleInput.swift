// ConsoleInput: host keyboard → the guest's console (the serial port, or virtio-console port 0), with the
// terminal in raw mode and always restored.
//
// When stdin is a terminal it is switched to raw mode (no line editing, no echo, Ctrl-C goes to the guest)
// and restored when the VM stops (SIGTERM/SIGINT/SIGHUP stop it cleanly) and at exit. Ctrl-A then x stops the VM, as in QEMU.
// A reader thread feeds bytes into the UART's receive FIFO (or the virtio console's input buffer) as space
// frees up; EOF on stdin stops reading.
import CKVM
import Devices
import Glibc
import Synchronization

public final class ConsoleInput: @unchecked Sendable {
    nonisolated(unsafe) static var savedTerminal: termios? = nil
    /// Hands bytes to the guest's console; returns how many it took (the rest is offered again shortly).
    private let deliver: @Sendable (ArraySlice<UInt8>) -> Int
    private let onQuit: @Sendable () -> Void
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?

    public init(deliver: @escaping @Sendable (ArraySlice<UInt8>) -> Int, onQuit: @escaping @Sendable () -> Void) {
        self.deliver = deliver
        self.onQuit = onQuit
    }

    public convenience init(serial: Serial8250, onQuit: @escaping @Sendable () -> Void) {
        self.init(deliver: { serial.enqueueInput($0) }, onQuit: onQuit)
    }

    /// Puts the terminal in raw mode (if stdin is one) and starts the reader thread.
    public func start() {
        if isatty(0) == 1 { Self.enterRawMode() }
        let context = Unmanaged.passRetained(self)
        var t = pthread_t()
        if pthread_create(&t, nil, { raw in
            let me = Unmanaged<ConsoleInput>.fromOpaque(raw!).takeRetainedValue()
            Confinement.enter(.consoleInput, name: "console-input")
            me.readLoop()
            return nil
        }, context.toOpaque()) == 0 {
            thread = t
        } else {
            context.release()
        }
    }

    /// Stops reading and restores the terminal.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        Self.restoreTerminal()
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 64)
        var sawCtrlA = false
        while !stopping.load(ordering: .acquiring) {
            var pfd = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) <= 0 { continue }
            let n = read(0, &buffer, buffer.count)
            if n <= 0 { return } // EOF or error: the guest gets no more input
            var pending: [UInt8] = []
            for byte in buffer[0..<n] {
                if sawCtrlA {
                    sawCtrlA = false
                    if byte == UInt8(ascii: "x") { onQuit(); return }
                    pending.append(0x01)
                }
                if byte == 0x01 { sawCtrlA = true; continue }
                pending.append(byte)
            }
            var offset = 0
            while offset < pending.count && !stopping.load(ordering: .acquiring) {
                offset += deliver(pending[offset...])
                if offset < pending.count { usleep(1000) } // full: let the guest drain it
            }
        }
    }

    static func enterRawMode() {
        var original = termios()
        guard tcgetattr(0, &original) == 0 else { return }
        savedTerminal = original
        var raw = original
        cfmakeraw(&raw)
        raw.c_oflag |= tcflag_t(OPOST | ONLCR) // keep "\n" → "\r\n" on output so guest lines stay aligned
        tcsetattr(0, TCSANOW, &raw)
        // Every way out restores it: stop() when the run ends (SIGTERM, SIGINT and SIGHUP end the run
        // cleanly, see Machine.run), and exit() in case something ends the process first.
        atexit { ConsoleInput.restoreTerminal() }
    }

    static func restoreTerminal() {
        if var saved = savedTerminal {
            tcsetattr(0, TCSANOW, &saved)
            savedTerminal = nil
        }
    }
}
