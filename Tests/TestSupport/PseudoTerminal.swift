// PseudoTerminal: runs a program on a pseudo-terminal, as a person at a terminal would (Linux /dev/ptmx,
// pts(4); the child a session leader whose controlling terminal is the pty's slave side), so tests
// can type into an interactive console, read what it shows, and check the terminal's modes afterwards.
import Glibc

public final class PseudoTerminal: @unchecked Sendable {
    public let master: Int32
    public let slavePath: String
    /// An open descriptor of the slave side, kept so its termios can be read after the child exits.
    public let slave: Int32
    public private(set) var pid: pid_t = 0
    public private(set) var output: [UInt8] = []

    public init?() {
        // posix_openpt, unlockpt and ptsname by hand (Swift's Glibc module does not export them): open the
        // multiplexer, unlock the new slave (TIOCSPTLCK 0) and ask its number (TIOCGPTN).
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        guard master >= 0 else { return nil }
        var unlock: Int32 = 0, number: UInt32 = 0
        guard ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else { close(master); return nil }
        self.master = master
        self.slavePath = "/dev/pts/\(number)"
        self.slave = open(slavePath, O_RDWR | O_NOCTTY)
        guard slave >= 0 else { close(master); return nil }
    }

    deinit {
        close(master)
        close(slave)
    }

    /// Starts `path` with the slave as stdin, stdout and stderr, in a new session (POSIX_SPAWN_SETSID), so
    /// the slave becomes its controlling terminal.
    public func start(_ path: String, _ arguments: [String]) -> Bool {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, slavePath, O_RDWR, 0)
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(0x80)) // POSIX_SPAWN_SETSID (glibc 2.26)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        return posix_spawn(&pid, path, &actions, &attributes, argv, environ) == 0
    }

    /// Reads what the terminal shows until `needle` appears or `timeout` seconds pass; true when it appeared.
    public func read(until needle: String, timeout: Double) -> Bool {
        let deadline = Self.now() + timeout
        while Self.now() < deadline {
            if String(decoding: output, as: UTF8.self).contains(needle) { return true }
            var fds = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            let left = Int32(max(1, min(250, (deadline - Self.now()) * 1000)))
            guard poll(&fds, 1, left) >= 0 else { continue }
            if fds.revents & Int16(POLLIN) != 0 {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = Glibc.read(master, &buffer, buffer.count)
                if n > 0 { output += buffer[0..<n] } else if n < 0 && errno != EINTR && errno != EAGAIN { return String(decoding: output, as: UTF8.self).contains(needle) }
            } else if fds.revents & Int16(POLLHUP) != 0 {
                return String(decoding: output, as: UTF8.self).contains(needle)
            }
        }
        return String(decoding: output, as: UTF8.self).contains(needle)
    }

    /// Types `text` (bytes as given: "\r" is the Enter key, "\u{1}" Ctrl-A).
    public func type(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Waits for the child up to `timeout` seconds (then SIGKILL); its status as a shell reports it.
    public func wait(timeout: Double) -> Int32 {
        let deadline = Self.now() + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if Self.now() > deadline { kill(pid, SIGKILL); waitpid(pid, &status, 0); break }
            _ = read(until: "\u{0}never\u{0}", timeout: 0.1)
        }
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }

    /// The terminal's modes now (tcgetattr on the slave side).
    public func modes() -> termios {
        var t = termios()
        tcgetattr(slave, &t)
        return t
    }

    public var text: String { String(decoding: output, as: UTF8.self) }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
