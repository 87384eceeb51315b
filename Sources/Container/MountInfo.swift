// MountInfo: one line of /proc/PID/mountinfo (proc(5)). The launcher reads it to find the cgroup
// hierarchies; the tests read it to check that container runs leave the host's mount table alone.

public struct MountInfo: Equatable, Sendable {
    public var mountID: Int
    public var parentID: Int
    /// "major:minor".
    public var device: String
    /// The path inside the filesystem that is mounted (not "/" for bind mounts of subdirectories).
    public var root: String
    public var mountPoint: String
    public var mountOptions: String
    public var optionalFields: [String]
    public var fsType: String
    public var source: String
    public var superOptions: String

    /// Parses every well-formed line; malformed lines are skipped.
    public static func parse(_ text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap { parseLine(String($0)) }
    }

    static func parseLine(_ line: String) -> MountInfo? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 9, let separator = fields[6...].firstIndex(of: "-"), separator + 2 < fields.count,
              let mountID = Int(fields[0]), let parentID = Int(fields[1]) else { return nil }
        return MountInfo(mountID: mountID, parentID: parentID, device: fields[2], root: unescape(fields[3]),
                         mountPoint: unescape(fields[4]), mountOptions: fields[5],
                         optionalFields: Array(fields[6..<separator]), fsType: fields[separator + 1],
                         source: unescape(fields[separator + 2]),
                         superOptions: separator + 3 < fields.count ? fields[separator + 3] : "")
    }

    /// The kernel writes space, tab, newline and backslash in paths as \ooo octal escapes.
    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let input = Array(text.utf8)
        var i = 0
        while i < input.count {
            if input[i] == UInt8(ascii: "\\"), i + 3 < input.count {
                let digits = input[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    bytes.append(digits.reduce(0) { $0 &* 8 &+ ($1 - UInt8(ascii: "0")) })
                    i += 4
                    continue
                }
            }
            bytes.append(input[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// This process's mount table.
    public static func current() throws(ContainerError) -> [MountInfo] {
        do {
            return parse(try FileSystem.readString("/proc/self/mountinfo"))
        } catch {
            throw ContainerError(step: "cgroup", "cannot read /proc/self/mountinfo", errno: error)
        }
    }
}
