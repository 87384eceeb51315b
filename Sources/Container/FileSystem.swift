// FileSystem: the handful of file operations the launcher's parent side performs (cgroup files,
// /proc/PID/uid_map, config.json, /proc/self/mountinfo), each one system call deep, throwing the Errno.
// Reads and writes go through swift-system's FileDescriptor; directory calls use libc directly.
import CLinux
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum FileSystem {
    /// The whole file. Files under /proc and /sys report size 0, so this reads until end of file.
    static func readAll(_ path: String) throws(Errno) -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw error as? Errno ?? .ioError
        }
        defer { try? fd.close() }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch {
                throw error as? Errno ?? .ioError
            }
            if count == 0 { break }
            result.append(contentsOf: chunk[..<count])
        }
        return result
    }

    /// Why `readRegularFile` refused a file.
    enum ReadFailure: Error, Equatable, CustomStringConvertible {
        case system(Errno)
        /// Not a regular file: "a FIFO (named pipe)", "a character device", ...
        case notRegular(String)
        case tooLarge(limit: Int)

        var description: String {
            switch self {
            case let .system(errno): errno.description
            case let .notRegular(kind): "it is \(kind), not a regular file"
            case let .tooLarge(limit): "it is larger than \(limit >> 20) MiB, the most swiftlet reads"
            }
        }
    }

    /// A regular file's content, at most `limit` bytes: an input from the user (a bundle's config.json).
    /// Opened with O_NONBLOCK, so a FIFO cannot hold open(2) until a writer comes, and checked with fstat(2)
    /// before a byte is read: a FIFO, a device (/dev/zero, or a link to it) or a socket is refused by its
    /// type, a file over the limit by its size, and one that grows while read stops at the limit.
    static func readRegularFile(_ path: String, limit: Int) throws(ReadFailure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw .system(Errno(rawValue: errno)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .system(Errno(rawValue: errno)) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw .system(.isDirectory)
        case S_IFIFO: throw .notRegular("a FIFO (named pipe)")
        case S_IFCHR: throw .notRegular("a character device")
        case S_IFBLK: throw .notRegular("a block device")
        case S_IFSOCK: throw .notRegular("a socket")
        default: throw .notRegular("a special file")
        }
        guard info.st_size <= limit else { throw .tooLarge(limit: limit) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system(Errno(rawValue: errno))
            }
            if count == 0 { break }
            guard count <= limit - result.count else { throw .tooLarge(limit: limit) }
            result.append(contentsOf: chunk[..<count])
        }
        return result
    }

    static func readString(_ path: String) throws(Errno) -> String {
        String(decoding: try readAll(path), as: UTF8.self)
    }

    /// One write(2) of `text`: cgroup and /proc control files take a value per write.
    static func write(_ text: String, to path: String, create: Bool = false) throws(Errno) {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .writeOnly,
                                         options: create ? [.closeOnExec, .create, .truncate] : [.closeOnExec],
                                         permissions: create ? [.ownerReadWrite, .groupRead, .otherRead] : nil)
        } catch {
            throw error as? Errno ?? .ioError
        }
        defer { try? fd.close() }
        var text = text
        // One write(2) through the non-generic FileDescriptor.write: control files want the value
        // in a single call, and the generic writeAll costs a runtime conformance lookup at startup.
        let result: Result<Int, Errno> = text.withUTF8 { bytes in
            do {
                return .success(try fd.write(UnsafeRawBufferPointer(bytes)))
            } catch {
                return .failure(error as? Errno ?? .ioError)
            }
        }
        switch result {
        case .success(let count) where count == text.utf8.count: return
        case .success: throw Errno.ioError
        case .failure(let error): throw error
        }
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// statfs(2)'s f_type (the filesystem's magic number), or nil if the path cannot be queried.
    static func filesystemType(_ path: String) -> Int? {
        let type = sl_filesystem_type(path)
        return type < 0 ? nil : type
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(Errno) {
        if mkdir(path, mode) != 0 { throw Errno(rawValue: errno) }
    }

    static func removeDirectory(_ path: String) throws(Errno) {
        if rmdir(path) != 0 { throw Errno(rawValue: errno) }
    }

    /// Names in a directory, without "." and "..".
    static func list(_ path: String) throws(Errno) -> [String] {
        guard let dir = opendir(path) else { throw Errno(rawValue: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// realpath(3): the absolute, symlink-free path.
    static func canonicalPath(_ path: String) throws(Errno) -> String {
        guard let resolved = realpath(path, nil) else { throw Errno(rawValue: errno) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "/" }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
        if relative == "." || relative.isEmpty { return currentDirectory() }
        return currentDirectory() + "/" + relative
    }
}
