// OCIState: what the OCI runtime keeps about one container between its commands (runtime-spec
// runtime.md, "State"), in <root>/<id>/: state.json (the spec's state plus what `delete` needs: the
// cgroup directories and the process's start time, so a recycled pid is never mistaken for the
// container) and start.fifo (the container blocks reading it until `start` writes a byte). The
// container's status is never stored: it is read from the process and the FIFO each time.
//   creating  never shown: the directory exists only once `create` has a set-up process
//   created   the process exists and start.fifo is still there
//   running   the process exists and start.fifo is gone
//   stopped   the process is gone (or is a zombie, or its pid now belongs to another process)

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct OCIState: Equatable, Sendable {
    public var id: String
    public var pid: Int32
    /// Field 22 of /proc/PID/stat when the container started: tells the container from a recycled pid.
    public var startTime: UInt64
    public var bundle: String
    public var rootfs: String
    /// RFC 3339, UTC.
    public var created: String
    public var annotations: [(String, String)] = []
    public var cgroupDirectories: [String] = []
    /// "process" or "vm" (swiftlet-vm).
    public var mode = "process"
    /// Whether config.json has hooks: `start` and `delete` read the bundle again only then.
    public var hasHooks = false

    public static func == (a: OCIState, b: OCIState) -> Bool {
        a.id == b.id && a.pid == b.pid && a.startTime == b.startTime && a.bundle == b.bundle && a.rootfs == b.rootfs
            && a.created == b.created && a.cgroupDirectories == b.cgroupDirectories && a.mode == b.mode && a.hasHooks == b.hasHooks
            && a.annotations.map(\.0) == b.annotations.map(\.0) && a.annotations.map(\.1) == b.annotations.map(\.1)
    }

    /// The spec's state document (`state` prints it; hooks read it on stdin), with runc's extra fields.
    public func document(status: String) -> JSONValue {
        .object([
            ("ociVersion", .string(OCIRuntime.ociVersion)),
            ("id", .string(id)),
            ("status", .string(status)),
            ("pid", .number(Double(status == "stopped" ? 0 : pid))),
            ("bundle", .string(bundle)),
            ("rootfs", .string(rootfs)),
            ("created", .string(created)),
            ("owner", .string("")),
            ("annotations", .object(annotations.map { ($0.0, .string($0.1)) })),
        ])
    }

    /// state.json: the document plus swiftlet's own fields.
    func stored() -> JSONValue {
        guard case .object(var members) = document(status: "created") else { return .null }
        members.removeAll { $0.0 == "status" }
        members[members.firstIndex { $0.0 == "pid" }!].1 = .number(Double(pid))
        members.append(("swiftletStartTime", .number(Double(startTime))))
        members.append(("swiftletCgroups", .array(cgroupDirectories.map { .string($0) })))
        members.append(("swiftletMode", .string(mode)))
        members.append(("swiftletHooks", .bool(hasHooks)))
        return .object(members)
    }

    /// Reads state.json back; nil when it is missing or not ours (then the directory is a leftover).
    static func parse(_ value: JSONValue) -> OCIState? {
        guard case .object(let members) = value else { return nil }
        func field(_ name: String) -> JSONValue? { members.first { $0.0 == name }?.1 }
        guard case .string(let id)? = field("id"), case .number(let pid)? = field("pid"),
              case .number(let start)? = field("swiftletStartTime"), let pid32 = Int32(exactly: pid),
              let startTime = UInt64(exactly: start) else { return nil }
        var state = OCIState(id: id, pid: pid32, startTime: startTime, bundle: "", rootfs: "", created: "")
        if case .string(let text)? = field("bundle") { state.bundle = text }
        if case .string(let text)? = field("rootfs") { state.rootfs = text }
        if case .string(let text)? = field("created") { state.created = text }
        if case .string(let text)? = field("swiftletMode") { state.mode = text }
        if case .bool(let flag)? = field("swiftletHooks") { state.hasHooks = flag }
        if case .object(let list)? = field("annotations") {
            state.annotations = list.compactMap { if case .string(let v) = $0.1 { ($0.0, v) } else { nil } }
        }
        if case .array(let list)? = field("swiftletCgroups") {
            state.cgroupDirectories = list.compactMap { if case .string(let v) = $0 { v } else { nil } }
        }
        return state
    }

    /// Whether the container's process still exists: the same pid with the same start time, not a zombie.
    public var isAlive: Bool {
        guard pid > 0, let stat = OCIState.processStat(pid) else { return false }
        return stat.state != "Z" && stat.state != "X" && stat.startTime == startTime
    }

    /// State letter and start time (fields 3 and 22) of /proc/PID/stat; nil when the process is gone.
    static func processStat(_ pid: Int32) -> (state: Character, startTime: UInt64)? {
        guard let text = try? FileSystem.readString("/proc/\(pid)/stat"),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": field 3 is first; the comm may hold spaces and parentheses.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return (state, start)
    }

    /// Now as RFC 3339 in UTC with nanoseconds, as runc writes `created`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var broken = tm()
        gmtime_r(&seconds, &broken)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let nanos = String(now.tv_nsec)
        return "\(broken.tm_year + 1900)-\(two(broken.tm_mon + 1))-\(two(broken.tm_mday))T\(two(broken.tm_hour)):"
            + "\(two(broken.tm_min)):\(two(broken.tm_sec)).\(String(repeating: "0", count: 9 - nanos.count))\(nanos)Z"
    }
}
