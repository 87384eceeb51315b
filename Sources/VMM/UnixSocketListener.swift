// UnixSocketListener: a listening Unix-domain stream socket at a path (unix(7)), for the interactive
// endpoints a user connects to: the console (`--console-socket`) and the gdb stub (`--gdb PATH`).
//
// A stale socket file from an earlier run is replaced; any other file in the way is refused, as is a path
// longer than sun_path holds. Errors name the option and the path, in one line.
import Glibc

enum UnixSocketListener {
    /// Binds and listens (backlog 1) at `path`; `option` ("--console-socket") names the flag in errors.
    static func listen(path: String, option: String) throws(VMMError) -> Int32 {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                throw .invalidOption("\(option) \(path): a file that is not a socket is in the way; remove it or give another path")
            }
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw .invalidOption("\(option) \(path): longer than the \(capacity - 1) bytes a Unix socket path may have")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .invalidOption("\(option) \(path): cannot create a socket: \(String(cString: strerror(errno)))") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 1) == 0 else {
            let error = String(cString: strerror(errno))
            close(fd)
            throw .invalidOption("\(option) \(path): cannot listen there: \(error)")
        }
        return fd
    }
}
