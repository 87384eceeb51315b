// FileBytes: reads a whole input file (a kernel, an initrd) into memory without Foundation, with errors a
// user can act on. Only a regular file is read, and only up to a limit known before the first byte: the
// file is opened with O_NONBLOCK (a FIFO would otherwise block open(2) until a writer came, forever) and
// fstat(2) decides, so /dev/zero, a FIFO, a socket or a terminal is refused at once by its type, and a file
// larger than the limit by its size, instead of being read to the limit first.
import Glibc

public enum FileBytes {
    /// The file's bytes, or a reason such as "No such file or directory" / "is a directory".
    public struct Failure: Error { public let reason: String }

    /// The largest kernel or initrd Swiftlet reads: 1 GiB. The initrd must fit below 4 GiB in the guest
    /// and Linux's own initrd_addr_max is 2 GiB; no kernel comes near it.
    public static let defaultLimit = 1 << 30

    public static func read(_ path: String, limit: Int = defaultLimit) -> Result<[UInt8], Failure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return .failure(Failure(reason: String(cString: strerror(errno)))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(Failure(reason: "fstat: \(String(cString: strerror(errno)))")) }
        if let kind = notRegular(info.st_mode) { return .failure(Failure(reason: kind)) }
        guard info.st_size <= limit else {
            return .failure(Failure(reason: "the file is \(describe(bytes: Int(info.st_size))), larger than the \(describe(bytes: limit)) Swiftlet reads"))
        }
        // Files in /proc and /sys say size 0 and have content: read to end of file, never past the limit.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return .failure(Failure(reason: "reading would block (not a file with its content at hand)")) }
                return .failure(Failure(reason: String(cString: strerror(errno))))
            }
            if n == 0 { break }
            guard n <= limit - bytes.count else {
                return .failure(Failure(reason: "the file grew past the \(describe(bytes: limit)) Swiftlet reads"))
            }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return .success(bytes)
    }

    /// Why a file of mode `mode` is not read ("is a directory", "is a character device ..."), nil for a regular file.
    static func notRegular(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: nil
        case S_IFDIR: "is a directory"
        case S_IFIFO: "is a FIFO (named pipe), not a regular file"
        case S_IFCHR: "is a character device, not a regular file"
        case S_IFBLK: "is a block device, not a regular file"
        case S_IFSOCK: "is a socket, not a regular file"
        default: "is not a regular file"
        }
    }

    /// "1 GiB", "12 MiB", "300 bytes".
    static func describe(bytes: Int) -> String {
        if bytes >= 1 << 30 && bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20 { return "\((bytes + (1 << 20) - 1) >> 20) MiB" }
        if bytes >= 1 << 10 { return "\((bytes + 1023) >> 10) KiB" }
        return bytes == 1 ? "1 byte" : "\(bytes) bytes"
    }
}
