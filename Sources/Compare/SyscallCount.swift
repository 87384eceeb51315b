// SyscallCount: host system calls made by a container's workload, counted from `strace -f -qq -o FILE`
// output of `swiftlet container run` (strace(1): with -f every line starts with the thread's PID).
//
// Who is who in that file: the first PID is the launcher (strace's own child); `pid` (from the run report)
// is the container's PID 1, which runs the launcher's child-side setup and then execve's the command. The
// workload's calls are PID 1's after its last successful execve, and every call of any other process or
// thread (they can only be the command's descendants: the launcher starts one process and no threads).
// The launcher's calls (its own, and PID 1's before the execve) are counted too, separately.
// A call strace shows split ("<unfinished ...>" then "<... NAME resumed>") counts once.

public struct SyscallCount: Sendable, Equatable {
    /// System calls the workload made, by name.
    public var workload: [String: Int] = [:]
    /// System calls the launcher made setting up and waiting (its process, and PID 1 before the execve).
    public var launcher: [String: Int] = [:]
    /// False when no successful execve of the command was found (it failed or was never reached).
    public var sawExec = false

    public var workloadTotal: Int { workload.values.reduce(0, +) }
    public var launcherTotal: Int { launcher.values.reduce(0, +) }

    /// The most frequent calls, "name ×n", most first.
    public static func top(_ counts: [String: Int], _ n: Int) -> [String] {
        counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(n).map { "\($0.key) ×\($0.value)" }
    }

    public init(straceOutput text: String, containerPID: Int) {
        var lines: [(pid: Int, call: String, exec: Bool)] = []
        var unfinished: [Int: Int] = [:] // pid → index in `lines` of its call waiting to be resumed
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            guard let space = raw.firstIndex(of: " "), let pid = Int(raw[..<space]) else { continue }
            let rest = raw[raw.index(after: space)...].drop { $0 == " " }
            if rest.hasPrefix("+++") || rest.hasPrefix("---") { continue }
            if rest.hasPrefix("<... ") {
                // "<... execve resumed>) = 0": the second half of a call already counted.
                if let index = unfinished.removeValue(forKey: pid), lines[index].call == "execve", rest.hasSuffix("= 0") {
                    lines[index].exec = true
                }
                continue
            }
            guard let paren = rest.firstIndex(of: "("), paren != rest.startIndex else { continue }
            let name = String(rest[..<paren])
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { continue }
            let exec = name == "execve" && rest.hasSuffix("= 0")
            if rest.hasSuffix("<unfinished ...>") { unfinished[pid] = lines.count }
            lines.append((pid, name, exec))
        }
        guard let launcherPID = lines.first?.pid else { return }
        let execIndex = lines.lastIndex { $0.pid == containerPID && $0.exec }
        sawExec = execIndex != nil
        for (index, line) in lines.enumerated() {
            let isWorkload: Bool
            if line.pid == launcherPID {
                isWorkload = false
            } else if line.pid == containerPID {
                isWorkload = execIndex.map { index > $0 } ?? false
            } else {
                isWorkload = true
            }
            if isWorkload { workload[line.call, default: 0] += 1 } else { launcher[line.call, default: 0] += 1 }
        }
    }
}
