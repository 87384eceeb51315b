// FileBytes: reads a whole file into memory without Foundation, with errors a user can act on.
import SystemPackage

public enum FileBytes {
    /// The file's bytes, or a reason such as "No such file or directory" / "is a directory".
    public struct Failure: Error { public let reason: String }

    public static func read(_ path: String, limit: Int = 1 << 30) -> Result<[UInt8], Failure> {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec) } catch {
            return .failure(Failure(reason: "\(error)"))
        }
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n: Int
            do { n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) } } catch {
                if let errno = error as? Errno, errno == .isDirectory { return .failure(Failure(reason: "is a directory")) }
                return .failure(Failure(reason: "\(error)"))
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > limit { return .failure(Failure(reason: "larger than \(limit >> 20) MiB")) }
        }
        return .success(bytes)
    }
}
