// ConsoleFile: the host side of the virtio console's port 0 when it is a file (`--console-file`). Opened
// without blocking (a FIFO with no reader is refused at once instead of holding the VMM in open(2)), written
// line by line from the device thread, and never lossy in silence: the first failed write (a full disk,
// ENOSPC; a FIFO whose reader left, EPIPE) is reported on stderr at once, and when the run ends the number
// of bytes that never reached the file.
import Glibc
import Synchronization

final class ConsoleFile: Sendable {
    let path: String
    let fd: Int32
    /// The first write error (an errno), and the bytes that did not reach the file since.
    private let loss = Mutex<(errno: Int32, bytes: Int)>((0, 0))

    /// Opens (creates, truncates) `path` for writing.
    init(path: String) throws(VMMError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0o644)
        guard fd >= 0 else {
            let reason = errno == ENXIO ? "a FIFO with no reader" : String(cString: strerror(errno))
            throw .invalidOption("--console-file \(path): cannot open it for writing: \(reason)")
        }
        // Blocking again: a FIFO's reader may be slow, and a line must not be cut short by EAGAIN.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Writes `bytes`; a failure is recorded, and reported the first time.
    func write(_ bytes: [UInt8]) {
        let failure = Self.writeAll(fd, bytes)
        guard failure.errno != 0 else { return }
        let first = loss.withLock { state in
            defer { state.bytes += failure.unwritten }
            if state.errno == 0 { state.errno = failure.errno; return true }
            return false
        }
        if first {
            printError("swiftlet: --console-file \(path): cannot write the guest's console output: \(String(cString: strerror(failure.errno))); output is being lost")
        }
    }

    /// The line for the end of the run when output was lost, else nil.
    func lossReport() -> String? {
        let (error, bytes) = loss.withLock { $0 }
        guard error != 0 else { return nil }
        return "--console-file \(path): \(bytes) byte\(bytes == 1 ? "" : "s") of the guest's console output did not reach the file (\(String(cString: strerror(error))))"
    }

    /// write(2) until done or an error other than EINTR; returns that errno (0: all written) and how many bytes were left.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> (errno: Int32, unwritten: Int) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return (errno, raw.count - offset)
                }
                if n == 0 { return (EIO, raw.count - offset) }
                offset += n
            }
            return (0, 0)
        }
    }
}
