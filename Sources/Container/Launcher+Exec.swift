// Launcher+Exec: a new process in a running container (OCI `exec`, runtime-spec runtime.md leaves
// it to the runtime; runc and crun do this). The steps, in order:
//   namespaces   open /proc/PID/ns/* of the container's PID 1; the ones this process already shares
//                are skipped (setns(2) refuses to "join" one's own user namespace)
//   pid          setns(CLONE_NEWPID) here: it only decides where this process's children go
//   clone        the child, released once it is in the container's cgroup
//   cgroup join  its pid into each of the container's cgroup directories' cgroup.procs
//   release      the child joins user, ipc, uts, net, cgroup, then mount (the root becomes the
//                container's), then cwd, rlimits, no_new_privs, capabilities, user, terminal, exec
//   wait         unless detached: relay the terminal or wait, and return the status
import CLinux
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Launcher {
    /// The namespaces `exec` joins, in the order it joins them: user first (it grants the capabilities
    /// the others need), mount last.
    static let execNamespaceOrder = ["user", "ipc", "uts", "net", "cgroup", "mnt"]

    /// Runs `process` inside the container whose PID 1 is `pid`. With `detach`, returns once it has
    /// exec'd (RunResult.pid); otherwise waits for it and returns its status.
    /// readlink(2): "net:[4026531840]" names a namespace.
    static func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 128)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func exec(_ process: ContainerSpec.Process, into pid: pid_t, cgroupDirectories: [String],
                            options: LaunchOptions, detach: Bool) throws(ContainerError) -> RunResult {
        var fds: [FileDescriptor] = []
        defer { for fd in fds { try? fd.close() } }
        func open(_ name: String) throws(ContainerError) -> FileDescriptor? {
            let theirs = "/proc/\(pid)/ns/\(name)"
            guard let target = link(theirs) else {
                throw ContainerError(step: "exec", "cannot find the container's \(name) namespace at \(theirs)", errno: Errno(rawValue: errno))
            }
            if link("/proc/self/ns/\(name)") == target { return nil }
            do {
                let fd = try FileDescriptor.open(FilePath(theirs), .readOnly, options: [.closeOnExec])
                fds.append(fd)
                return fd
            } catch {
                throw ContainerError(step: "exec", "cannot open \(theirs)", errno: error as? Errno)
            }
        }
        var joins: [Int32] = []
        for name in execNamespaceOrder { if let fd = try open(name) { joins.append(fd.rawValue) } }
        let pidNamespace = try open("pid")

        var spec = ContainerSpec(rootPath: "/")
        spec.process = process
        var terminal: Terminal?
        if process.terminal && options.consoleSocket == nil { terminal = Terminal.prepare() }
        defer { terminal?.restore() }
        let plan = ChildPlan(.init(spec: spec, rootfs: "/", mounts: [], seccomp: nil, terminal: process.terminal,
                                   preserveFDs: options.preserveFDs,
                                   stdio: [options.stdin ?? -1, options.stdout ?? -1, options.stderr ?? -1],
                                   setgroupsAllowed: true, joinNamespaceFDs: joins, detach: detach))
        var child = sl_process(pid: 0, sync_fd: -1, error_fd: -1)
        var failedStep: Int32 = 0
        let spawned = sl_spawn_exec(plan.pointer, pidNamespace?.rawValue ?? -1, &child, &failedStep)
        guard spawned == 0 else {
            throw ContainerError(step: "exec", "cannot create the process in the container", errno: Errno(rawValue: -spawned))
        }
        for directory in cgroupDirectories {
            do { try FileSystem.write(String(child.pid), to: directory + "/cgroup.procs") } catch {
                sl_abort(&child)
                throw ContainerError(step: "cgroup join", "cannot add the process to \(directory)", errno: error)
            }
        }
        var childError = sl_child_error()
        var master: Int32 = -1
        let released = process.terminal
            ? withUnsafeMutablePointer(to: &master) { sl_release(&child, $0, &childError) }
            : sl_release(&child, nil, &childError)
        if released != 0 {
            var status: Int32 = 0
            _ = sl_wait(child.pid, &status)
            if released < 0 { throw ContainerError(step: "release", "lost contact with the process", errno: Errno(rawValue: -released)) }
            throw childFailure(childError, spec: spec, mounts: [])
        }
        withExtendedLifetime(plan) {}
        if let socket = options.consoleSocket, master >= 0 {
            let sent = sl_send_fd_to_socket(socket, master)
            close(master)
            master = -1
            if sent != 0 {
                kill(child.pid, SIGKILL)
                throw ContainerError(step: "terminal", "cannot send the pty to the console socket \(socket)", errno: Errno(rawValue: -sent))
            }
        }
        options.onStart?(child.pid)
        if detach { return RunResult(exitStatus: 0, signal: nil, cgroup: nil, notices: [], warnings: [], pid: child.pid) }
        if options.forwardSignals { _ = sl_forward_signals_register(child.pid) }
        defer { if options.forwardSignals { sl_forward_signals_unregister(child.pid) } }
        var status: Int32 = 0
        if let terminal, master >= 0 {
            terminal.attach(master: master)
            status = terminal.relay(until: child.pid)
        } else {
            _ = sl_wait(child.pid, &status)
        }
        var signal: Int32 = 0
        let exitStatus = sl_exit_status(status, &signal)
        return RunResult(exitStatus: exitStatus, signal: signal == 0 ? nil : signal, cgroup: nil, notices: [], warnings: [], pid: child.pid)
    }
}
