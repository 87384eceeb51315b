// Terminal: `-t`. A pseudo-terminal pair (pty(7)) from the container's own devpts instance (so
// /dev/pts/0 exists inside and `tty` answers): the child opens it after pivot_root, keeps the slave
// as its controlling terminal and stdio, and passes the master to the launcher over the sync socket
// (SCM_RIGHTS), as crun does with its console socket. The launcher puts its own terminal in raw mode
// and copies bytes both ways, so ^C travels as a byte to the container's line discipline and becomes
// SIGINT there. Window size changes (SIGWINCH on the launcher) are copied to the pty, and the kernel
// signals the container.
import CLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class Terminal {
    /// The pty master the container sent back; -1 until then.
    private(set) var master: Int32 = -1
    private var saved: [UInt8]?
    private var restored = false

    private init() {}

    /// Puts the launcher's terminal (if stdin is one) in raw mode, so keys reach the container as typed.
    static func prepare() -> Terminal {
        let terminal = Terminal()
        if isatty(0) != 0 {
            var buffer = [UInt8](repeating: 0, count: sl_termios_size())
            if buffer.withUnsafeMutableBytes({ sl_make_raw(0, $0.baseAddress, $0.count) }) == 0 { terminal.saved = buffer }
        }
        return terminal
    }

    /// Takes the master the container opened in its own /dev/pts and gives it the launcher's window size.
    func attach(master: Int32) {
        self.master = master
        let source: Int32 = isatty(0) != 0 ? 0 : 1
        if isatty(source) != 0 { _ = sl_copy_window_size(source, master) }
    }

    /// Copies stdin to the pty and the pty to stdout until `pid` exits; returns its wait status.
    func relay(until pid: pid_t) -> Int32 {
        var status: Int32 = 0
        var exited = false
        var stdinOpen = true
        var buffer = [UInt8](repeating: 0, count: 16384)
        loop: while true {
            if sl_take_winch() != 0 { _ = sl_copy_window_size(isatty(0) != 0 ? 0 : 1, master) }
            var fds = [pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: master, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, 100)
            if ready < 0 && errno != EINTR { break }
            if ready > 0 {
                if fds[0].revents != 0 {
                    let n = read(0, &buffer, buffer.count)
                    if n <= 0 {
                        stdinOpen = false
                    } else {
                        Self.writeAll(master, buffer, n)
                    }
                }
                if fds[1].revents & Int16(POLLIN) != 0 {
                    let n = read(master, &buffer, buffer.count)
                    if n <= 0 { break loop } // EIO: every slave descriptor is closed
                    Self.writeAll(1, buffer, n)
                } else if fds[1].revents & Int16(POLLHUP | POLLERR) != 0 {
                    break loop
                }
            }
            if !exited, sl_wait_nohang(pid, &status) == pid {
                exited = true
                // Drain what the container wrote before it exited, without blocking.
                _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
                while true {
                    let n = read(master, &buffer, buffer.count)
                    if n <= 0 { break }
                    Self.writeAll(1, buffer, n)
                }
                break loop
            }
        }
        if !exited { _ = sl_wait(pid, &status) }
        return status
    }

    private static func writeAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) {
        var offset = 0
        while offset < count {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + offset, count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    func restore() {
        guard !restored else { return }
        restored = true
        if let saved { _ = saved.withUnsafeBytes { sl_restore_terminal(0, $0.baseAddress) } }
        if master >= 0 { close(master) }
    }
}
