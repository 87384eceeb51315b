// OCIHooks: config.json's `hooks` (runtime-spec config.md, "POSIX-platform Hooks"): prestart,
// createRuntime, createContainer, startContainer, poststart, poststop; each hook a path, args, env and
// an optional timeout in seconds, run with the container's state JSON on its stdin.
//
// Where swiftlet runs them: the create-time hooks (prestart, createRuntime, createContainer) once the
// container process is set up and waiting for `start`, in the runtime's namespaces, in that order (the
// spec runs createContainer inside the container's mount namespace before pivot_root; swiftlet's
// child runs all its setup in one go, so hooks see the finished container); startContainer and
// poststart in `start`, poststop in `delete`. A create-time hook that fails or times out fails `create`
// (and the container is removed); poststart and poststop failures are warnings, as the spec says.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct OCIHook: Equatable, Sendable {
    public var path: String
    public var args: [String]
    public var env: [String]
    public var timeoutSeconds: Int?
}

public struct OCIHooks: Equatable, Sendable {
    public static let kinds = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    public var hooks: [String: [OCIHook]] = [:]

    public init() {}

    /// Reads `hooks` from a config.json document; a wrong type is an error naming the field.
    public init(document: JSONValue) throws(ContainerError) {
        guard case .object(let top) = document, let value = top.first(where: { $0.0 == "hooks" })?.1 else { return }
        func fail(_ field: String, _ message: String) -> ContainerError { ContainerError(step: "config.json", "\(field): \(message)") }
        guard case .object(let kinds) = value else { throw fail("hooks", "expected an object, found \(value.kind)") }
        for (kind, list) in kinds {
            guard Self.kinds.contains(kind) else { throw fail("hooks.\(kind)", "unknown hook kind (\(Self.kinds.joined(separator: ", ")))") }
            guard case .array(let entries) = list else { throw fail("hooks.\(kind)", "expected an array, found \(list.kind)") }
            for (i, entry) in entries.enumerated() {
                let field = "hooks.\(kind)[\(i)]"
                guard case .object(let members) = entry else { throw fail(field, "expected an object, found \(entry.kind)") }
                var hook = OCIHook(path: "", args: [], env: [], timeoutSeconds: nil)
                for (key, member) in members {
                    switch (key, member) {
                    case ("path", .string(let text)): hook.path = text
                    case ("args", .array(let items)), ("env", .array(let items)):
                        var strings: [String] = []
                        for item in items {
                            guard case .string(let text) = item else { throw fail("\(field).\(key)", "expected strings") }
                            strings.append(text)
                        }
                        if key == "args" { hook.args = strings } else { hook.env = strings }
                    case ("timeout", .number(let seconds)):
                        guard seconds >= 1, seconds <= 86_400, seconds == seconds.rounded() else {
                            throw fail("\(field).timeout", "must be a whole number of seconds from 1 to 86400")
                        }
                        hook.timeoutSeconds = Int(seconds)
                    default: throw fail("\(field).\(key)", "unexpected \(member.kind)")
                    }
                }
                guard hook.path.hasPrefix("/") else { throw fail("\(field).path", "must be an absolute path") }
                hooks[kind, default: []].append(hook)
            }
        }
    }

    /// Runs the hooks of `kind` in order; throws on the first that fails (the caller decides whether
    /// that is fatal).
    public func run(_ kind: String, state: JSONValue) throws(ContainerError) {
        for hook in hooks[kind] ?? [] { try Self.run(hook, kind: kind, input: state.formatted()) }
    }

    static func run(_ hook: OCIHook, kind: String, input: String) throws(ContainerError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else { throw ContainerError(step: "hook \(kind)", "cannot create a pipe", errno: .init(rawValue: errno)) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        let argv = (hook.args.isEmpty ? [hook.path] : hook.args).map { strdup($0) } + [nil]
        let envp = hook.env.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, hook.path, &actions, nil, argv, envp)
        close(fds[0])
        guard spawned == 0 else {
            close(fds[1])
            throw ContainerError(step: "hook \(kind)", "cannot run \(hook.path)", errno: .init(rawValue: spawned))
        }
        var bytes = Array(input.utf8)
        var offset = 0
        signal(SIGPIPE, SIG_IGN)
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fds[1], $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            offset += n
        }
        close(fds[1])
        let deadline = hook.timeoutSeconds.map { monotonicNanoseconds() + UInt64($0) * 1_000_000_000 }
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, deadline == nil ? 0 : WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if let deadline, monotonicNanoseconds() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw ContainerError(step: "hook \(kind)", "\(hook.path) did not finish within \(hook.timeoutSeconds ?? 0) s; killed")
            }
            if r == 0 { usleep(2000) }
        }
        if status & 0x7f != 0 { throw ContainerError(step: "hook \(kind)", "\(hook.path) was killed by signal \(status & 0x7f)") }
        let code = (status >> 8) & 0xff
        if code != 0 { throw ContainerError(step: "hook \(kind)", "\(hook.path) exited with status \(code)") }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
