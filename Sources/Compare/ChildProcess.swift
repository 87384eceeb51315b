// ChildProcess: runs one program the way a user would, measured from outside: posix_spawn with stdout and
// stderr into files, wait4(2) for its exit status and resource usage (ru_maxrss: the peak resident set of
// the process and of the descendants it waited for — a maximum, not a sum), CLOCK_MONOTONIC before the spawn
// and after the wait. A deadline kills the child so a stuck run cannot hang compare (a container launcher's
// own child dies with it: PR_SET_PDEATHSIG). The child stays in compare's process group, so Ctrl-C at the
// terminal reaches it too.
import Glibc

public struct ChildRun: Sendable {
    public var arguments: [String]
    /// CLOCK_MONOTONIC just before posix_spawn and just after wait4 returned.
    public var spawnNanoseconds: UInt64
    public var endNanoseconds: UInt64
    /// The exit status, or 128 + N when signal N ended it; -1 when it could not be started.
    public var status: Int32
    public var signal: Int32?
    /// ru_maxrss from wait4, in KiB.
    public var maxRSSKiB: Int
    public var stdout: String
    public var stderr: String
    /// Why it did not start or was stopped (spawn failure, deadline).
    public var problem: String?
    public var timedOut = false

    public var wallNanoseconds: UInt64 { endNanoseconds &- spawnNanoseconds }
    public var started: Bool { status >= 0 }

    /// The last non-empty stderr line, for a one-line failure.
    public var lastErrorLine: String? {
        stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).last(where: { !$0.allSatisfy { $0 == " " } }).map(String.init)
    }
}

public enum ChildProcess {
    /// Runs `arguments[0]` with `arguments`, stdin from /dev/null, output captured; kills it (SIGKILL) after
    /// `deadline` seconds.
    public static func run(_ arguments: [String], deadline: Double? = nil, workDirectory: String) -> ChildRun {
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let outPath = "\(workDirectory)/child-\(tag).out", errPath = "\(workDirectory)/child-\(tag).err"
        defer { unlink(outPath); unlink(errPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = monotonicNanoseconds()
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        guard rc == 0 else {
            return ChildRun(arguments: arguments, spawnNanoseconds: spawned, endNanoseconds: monotonicNanoseconds(), status: -1,
                            maxRSSKiB: 0, stdout: "", stderr: "", problem: "cannot run \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        var timedOut = false
        // Saturating: a deadline of inf or 1e308 seconds is "never", not a trap converting it to UInt64.
        let limit = deadline.map { $0 * 1e9 < 1.8e19 ? spawned &+ UInt64(max(0, $0 * 1e9)) : UInt64.max }
        while true {
            let options: Int32 = limit == nil ? 0 : WNOHANG
            let r = wait4(pid, &status, options, &usage)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if let limit, monotonicNanoseconds() > limit, !timedOut {
                kill(pid, SIGKILL)
                timedOut = true
            }
            if r == 0 { usleep(2000) }
        }
        let ended = monotonicNanoseconds()
        let signal: Int32? = (status & 0x7F) != 0 ? status & 0x7F : nil
        let exitStatus: Int32 = signal.map { 128 + $0 } ?? ((status >> 8) & 0xFF)
        return ChildRun(arguments: arguments, spawnNanoseconds: spawned, endNanoseconds: ended, status: exitStatus, signal: signal,
                        maxRSSKiB: Int(usage.ru_maxrss), stdout: readText(outPath), stderr: readText(errPath),
                        problem: timedOut ? "still running after \(Int(deadline ?? 0)) s; compare killed it" : nil, timedOut: timedOut)
    }

    public static func readText(_ path: String) -> String {
        String(decoding: readBytes(path) ?? [], as: UTF8.self)
    }

    public static func readBytes(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    /// Writes `bytes` to `path` (created, mode `mode`); returns the errno text on failure.
    @discardableResult
    public static func writeBytes(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return String(cString: strerror(errno)) }
            offset += n
        }
        fchmod(fd, mode)
        return nil
    }

    /// The first executable named `name` on PATH, or nil.
    public static func which(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin:/usr/sbin:/sbin"
        for directory in path.split(separator: ":") where access("\(directory)/\(name)", X_OK) == 0 {
            return "\(directory)/\(name)"
        }
        return nil
    }
}

public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
