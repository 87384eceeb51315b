// Launcher: runs one container from a ContainerSpec and returns how it ended.
//
// The parent's steps, in order (the child's are in CLinux's container_child.c):
//   validate        the spec on its own: rootfs, command, ids, namespaces that go together
//   kernel support  every namespace type exists here; user namespaces are enabled
//   cgroup          detect v1/v2, remove what crashed launchers left, create the cgroup, write limits
//                   and device rules (root only: DeviceRule; a rootless container cannot mknod devices)
//   plan            mounts, seccomp program, the C plan the child will read
//   terminal        with -t: the launcher's terminal in raw mode (the pty comes from the container)
//   clone           the child, in its new user, pid, mount, uts, ipc and network namespaces
//   cgroup join     v2: the child's pid into cgroup.procs (v1: the child moves itself, see
//                   container_child.c); either way before it unshares its cgroup namespace
//   id maps         uid_map and gid_map (setgroups "deny" first when rootless)
//   release         one byte on the sync pipe; the child runs its steps and execs, or reports a failure
//   wait            forward signals (or relay the terminal) until the container's PID 1 exits
//   report          exit status, OOM kills and pids-limit hits in plain words
//   cleanup         kill leftovers, remove the cgroup, restore the terminal: on every path
import CLinux
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a container run ended.
public struct RunResult: Sendable {
    /// What `swiftlet container run` exits with: the command's status, 128+N if signal N killed it.
    public var exitStatus: Int32
    /// The signal that ended PID 1, if one did.
    public var signal: Int32?
    /// The cgroup's counters, when the container had a cgroup.
    public var cgroup: CgroupReport?
    /// Plain-words findings for the user: OOM kills, pids-limit hits.
    public var notices: [String]
    /// Problems during cleanup.
    public var warnings: [String]
    /// With `LaunchOptions.recordTimings`: every step, parent's and child's, in the order they
    /// ended, with how long each took.
    public var timings: [StepTiming] = []
    /// When the launcher began (CLOCK_MONOTONIC ns): the first timing step ends `timings[0].nanoseconds` later.
    public var startedNanoseconds: UInt64 = 0
    /// The container's PID 1 as the host sees it.
    public var pid: Int32 = 0
    /// With `LaunchOptions.startFD` (OCI `create`): the cgroup directories left for `delete` to remove.
    public var cgroupDirectories: [String] = []
    /// The seccomp program the container ran under (measured for the run report).
    public var seccompProgram: [sock_filter]? = nil
}

/// One setup step and its duration.
public struct StepTiming: Sendable, Equatable {
    public enum Side: String, Sendable { case launcher, container }
    public var step: String
    public var side: Side
    public var nanoseconds: UInt64
}

/// Knobs the CLI and the tests set; the defaults suit the CLI.
public struct LaunchOptions: Sendable {
    /// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 from the launcher to the container.
    public var forwardSignals = true
    /// Descriptors for the container's stdin, stdout, stderr (without a terminal); nil inherits.
    public var stdin: Int32?
    public var stdout: Int32?
    public var stderr: Int32?
    /// Called with the container's PID 1 (as the host sees it) once it runs the command.
    public var onStart: (@Sendable (pid_t) -> Void)?
    /// Warnings (ignored config fields and the like).
    public var warn: @Sendable (String) -> Void = { _ in }
    /// The directory relative bind-mount sources are resolved against.
    public var baseDirectory: String?
    /// Who launches: root or rootless defaults and checks.
    public var host: HostIdentity = .current
    /// Measure every step (`swiftlet container run --timings`).
    public var recordTimings = false
    /// The cgroup layout to use instead of the host's, detected (tests: a hybrid host's cgroup2 hierarchy
    /// alone, to run the device rules as a BPF program).
    public var cgroupLayout: CgroupLayout?
    /// OCI `create`: a FIFO (opened O_RDWR) the container waits on before exec; `run` returns once the
    /// container is set up, leaving it and its cgroup for `start` and `delete` (OCIRuntime).
    public var startFD: Int32?
    /// OCI --console-socket: the pty master goes to this Unix socket instead of the launcher's terminal.
    public var consoleSocket: String?
    /// OCI --preserve-fds: descriptors 3 ..< 3+N stay open in the container.
    public var preserveFDs = 0
    /// The cgroup's name (OCI linux.cgroupsPath: absolute paths are taken from each hierarchy's root).
    public var cgroupName: String?

    public init() {}
}

public enum Launcher {
    public static func run(_ spec: ContainerSpec, options: LaunchOptions = LaunchOptions()) throws(ContainerError) -> RunResult {
        let timeline = Timeline(enabled: options.recordTimings)
        // validate
        let rootfs = try validate(spec, host: options.host)
        timeline.mark("validate")
        // kernel support: diagnosed only if clone(2) fails (see cloneFailure), where the missing
        // namespace type or the disabled user namespaces are named; reading /proc/sys up front would
        // cost every run.

        // cgroup: a cgroup of our own when a limit asks for one, when there is no pid namespace to end
        // every process (see ContainerCgroup.isNeeded), and whenever root launches: the device rules live
        // there (without them a container with CAP_MKNOD and no user namespace could mknod and open any
        // host device). The host's layout is read here when the cgroup or a "cgroup" mount needs it,
        // otherwise while the child sets itself up.
        let rootless = options.host.isRootless
        let devices = rootless ? nil : DeviceRule.effective(spec.deviceRules)
        let tracking = ContainerCgroup.isNeeded(limits: spec.resources, pidNamespace: spec.namespaces.contains(.pid))
        let needsCgroup = tracking || devices != nil
        var layout: CgroupLayout?
        var cgroup: ContainerCgroup?
        var swept = false
        if needsCgroup || spec.mounts.contains(where: { $0.type == "cgroup" || $0.type == "cgroup2" }) {
            let detected: CgroupLayout
            if let given = options.cgroupLayout { detected = given } else { detected = try CgroupLayout.detect() }
            layout = detected
            if needsCgroup {
                // Remove what killed launchers left before adding ours (a devices-only cgroup: while the
                // child sets itself up, below).
                if tracking && !rootless {
                    ContainerCgroup.sweepStale(layout: detected, rootless: rootless)
                    swept = true
                }
                cgroup = try ContainerCgroup.create(layout: detected, limits: spec.resources, rootless: rootless, devices: devices,
                                                    memoryAndPids: tracking || options.startFD != nil, name: options.cgroupName)
            }
            timeline.mark("cgroup")
        }
        let cleanup = Cleanup(cgroup: cgroup)
        defer { cleanup.finish() }

        // plan
        let mounts = try MountPlan.make(for: spec, baseDirectory: options.baseDirectory ?? FileSystem.currentDirectory(),
                                        cgroupV2Only: layout?.isUnifiedOnly ?? false, warn: options.warn)
        var seccomp: [sock_filter]? = nil
        if let profile = spec.effectiveSeccompProfile {
            do { seccomp = try profile.compile() } catch { throw ContainerError(step: "seccomp", error.description) }
        }

        // terminal
        var terminal: Terminal?
        if spec.process.terminal && options.consoleSocket == nil {
            terminal = Terminal.prepare()
            cleanup.terminal = terminal
        }

        // The v1 `tasks` files the child will move itself with, opened here with our credentials.
        var tasksFDs: [FileDescriptor] = []
        defer { for fd in tasksFDs { try? fd.close() } }
        for path in cgroup?.selfJoinFiles ?? [] {
            do {
                tasksFDs.append(try FileDescriptor.open(FilePath(path), .writeOnly, options: [.closeOnExec]))
            } catch {
                throw ContainerError(step: "cgroup join", "cannot open \(path)", errno: error as? Errno)
            }
        }

        let userNamespace = spec.namespaces.contains(.user)
        let overlayOwner = userNamespace ? IDMapping.hostID(for: 0, in: spec.uidMappings).flatMap { uid in
            IDMapping.hostID(for: 0, in: spec.gidMappings).map { (uid: uid, gid: $0) }
        } : nil
        let overlay = try spec.overlay.map { (kind) throws(ContainerError) in try RootOverlay(kind, lower: rootfs, owner: overlayOwner) }
        cleanup.overlay = overlay
        let plan = ChildPlan(.init(spec: spec, rootfs: overlay?.merged ?? rootfs, mounts: mounts, seccomp: seccomp,
                                   terminal: spec.process.terminal, startFD: options.startFD ?? -1,
                                   preserveFDs: options.preserveFDs,
                                   stdio: [options.stdin ?? -1, options.stdout ?? -1, options.stderr ?? -1],
                                   setgroupsAllowed: !(userNamespace && rootless),
                                   cgroupTasksFDs: tasksFDs.map(\.rawValue), overlayOptions: overlay?.options))
        plan.pointer.pointee.step_end_ns = timeline.childBuffer
        timeline.mark("plan")

        // clone
        var process = sl_process(pid: 0, sync_fd: -1, error_fd: -1)
        var failedStep: Int32 = 0
        let spawned = sl_spawn(plan.pointer, &process, &failedStep)
        guard spawned == 0 else { throw cloneFailure(spec, step: failedStep, errno: -spawned, host: options.host) }
        timeline.mark("clone")
        if options.forwardSignals {
            _ = sl_forward_signals_register(process.pid)
            cleanup.forwardedPID = process.pid
        }

        do throws(ContainerError) {
            // cgroup join (v2; the child joins v1 hierarchies itself)
            if let cgroup, cgroup.directories.contains(where: { $0.version == .v2 }) {
                try cgroup.join(pid: process.pid)
                timeline.mark("cgroup join")
            }
            // id maps
            if userNamespace {
                try writeIDMaps(spec, pid: process.pid, rootless: rootless)
                timeline.mark("id maps")
            }
        } catch {
            sl_abort(&process)
            throw error
        }

        // release. While the child sets itself up, sweep cgroups killed launchers left (when this
        // run did not need the layout earlier): off the critical path on a machine with two CPUs.
        var childError = sl_child_error()
        var master: Int32 = -1
        let go = sl_release_begin(&process)
        if !swept && !rootless {
            if let detected = layout ?? (try? CgroupLayout.detect()) { ContainerCgroup.sweepStale(layout: detected, rootless: false) }
            timeline.mark("sweep (overlapped)")
        }
        let released: Int32 = !spec.process.terminal
            ? sl_release_finish(&process, go, nil, &childError)
            : withUnsafeMutablePointer(to: &master) { sl_release_finish(&process, go, $0, &childError) }
        if master >= 0 { terminal?.attach(master: master) }
        if let socket = options.consoleSocket, master >= 0, released == 0 {
            let sent = sl_send_fd_to_socket(socket, master)
            close(master)
            if sent != 0 {
                sl_abort(&process)
                throw ContainerError(step: "terminal", "cannot send the pty to the console socket \(socket)", errno: Errno(rawValue: -sent))
            }
        }
        if released != 0 {
            var status: Int32 = 0
            _ = sl_wait(process.pid, &status)
            if released < 0 {
                throw ContainerError(step: "release", "lost contact with the container process", errno: Errno(rawValue: -released))
            }
            throw childFailure(childError, spec: spec, mounts: mounts)
        }
        withExtendedLifetime(plan) {}
        timeline.mark("exec done")
        options.onStart?(process.pid)
        if options.startFD != nil {
            // OCI `create`: the container waits for `start`; its cgroup stays until `delete`.
            cleanup.keepCgroup = true
            cleanup.finish()
            return RunResult(exitStatus: 0, signal: nil, cgroup: nil, notices: [], warnings: [], timings: timeline.steps(),
                             startedNanoseconds: timeline.start, pid: process.pid,
                             cgroupDirectories: cgroup?.directories.map(\.path) ?? [])
        }

        // wait
        var status: Int32 = 0
        if let terminal, terminal.master >= 0 {
            status = terminal.relay(until: process.pid)
        } else {
            _ = sl_wait(process.pid, &status)
        }

        timeline.mark("command ran")
        // report
        var signal: Int32 = 0
        let exitStatus = sl_exit_status(status, &signal)
        let report = cgroup?.report()
        var notices: [String] = []
        if let report {
            if report.oomKills > 0 {
                let limit = spec.resources.memoryBytes.map { " of \(ResourceLimits.describe(bytes: $0))" } ?? ""
                let who = report.oomKills == 1 ? "1 process" : "\(report.oomKills) processes"
                notices.append("out of memory: the container reached its memory limit\(limit) and the kernel's OOM killer killed \(who)")
            }
            if report.pidsLimitHits > 0 {
                let limit = spec.resources.pids.map { " of \($0)" } ?? ""
                let calls = report.pidsLimitHits == 1 ? "1 attempt" : "\(report.pidsLimitHits) attempts"
                notices.append("process limit: the container reached its pids limit\(limit); \(calls) to create a process failed")
            }
        }
        let warnings = cleanup.finish()
        timeline.mark("cleanup")
        return RunResult(exitStatus: exitStatus, signal: signal == 0 ? nil : signal, cgroup: report, notices: notices,
                         warnings: warnings, timings: timeline.steps(), startedNanoseconds: timeline.start, pid: process.pid,
                         seccompProgram: seccomp)
    }

    /// Step end times, the launcher's from here and the child's from a shared page it writes into.
    final class Timeline {
        let start: UInt64
        private var marks: [(String, UInt64)] = []
        let childBuffer: UnsafeMutablePointer<UInt64>?

        init(enabled: Bool) {
            start = sl_monotonic_ns()
            childBuffer = enabled ? sl_shared_timings(Int(SL_STEP_COUNT.rawValue)) : nil
        }

        deinit {
            sl_free_shared_timings(childBuffer, Int(SL_STEP_COUNT.rawValue))
        }

        func mark(_ step: String) {
            if childBuffer != nil { marks.append((step, sl_monotonic_ns())) }
        }

        func steps() -> [StepTiming] {
            guard let childBuffer else { return [] }
            var all: [(String, StepTiming.Side, UInt64)] = marks.map { ($0.0, .launcher, $0.1) }
            for step in 0..<Int32(SL_STEP_COUNT.rawValue) where childBuffer[Int(step)] != 0 {
                all.append((String(cString: sl_step_name(step)), .container, childBuffer[Int(step)]))
            }
            all.sort { $0.2 < $1.2 }
            var previous = start
            return all.map { step in
                defer { previous = step.2 }
                return StepTiming(step: step.0, side: step.1, nanoseconds: step.2 &- previous)
            }
        }
    }

    /// Undoes what the parent set up, once, on whichever path leaves `run`: signal forwarding first
    /// (the pid may be reused once reaped), then the terminal, then the cgroup.
    final class Cleanup {
        var forwardedPID: pid_t?
        var terminal: Terminal?
        let cgroup: ContainerCgroup?
        var keepCgroup = false
        var overlay: RootOverlay?
        private var done = false

        init(cgroup: ContainerCgroup?) {
            self.cgroup = cgroup
        }

        @discardableResult
        func finish() -> [String] {
            guard !done else { return [] }
            done = true
            if let pid = forwardedPID { sl_forward_signals_unregister(pid) }
            terminal?.restore()
            overlay?.remove()
            if keepCgroup { return [] }
            return cgroup?.destroy().map(\.description) ?? []
        }
    }

    // MARK: - validate

    /// Checks the spec on its own and returns the canonical rootfs path.
    static func validate(_ spec: ContainerSpec, host: HostIdentity) throws(ContainerError) -> String {
        guard let command = spec.process.args.first, !command.isEmpty else {
            throw ContainerError(step: "spec", "no command given", hint: "put it after --, e.g. swiftlet container run --rootfs DIR -- /bin/sh")
        }
        let rootfs: String
        do {
            rootfs = try FileSystem.canonicalPath(spec.rootPath)
        } catch {
            throw ContainerError(step: "rootfs", "cannot use \(spec.rootPath)", errno: error)
        }
        guard FileSystem.isDirectory(rootfs) else { throw ContainerError(step: "rootfs", "\(spec.rootPath) is not a directory", errno: .notDirectory) }
        guard rootfs != "/" else { throw ContainerError(step: "rootfs", "the host's / cannot be a container's root filesystem") }
        if !spec.process.cwd.hasPrefix("/") { throw ContainerError.invalid("process cwd \"\(spec.process.cwd)\" is not an absolute path") }
        if let hostname = spec.hostname {
            guard !hostname.isEmpty, hostname.utf8.count <= 64 else { throw ContainerError.invalid("hostname \"\(hostname)\" must be 1 to 64 bytes") }
            if !spec.namespaces.contains(.uts) { throw ContainerError.invalid("a hostname needs a uts namespace") }
        }
        guard spec.namespaces.contains(.mount) else {
            throw ContainerError.invalid("a mount namespace is required", hint: "the root filesystem is switched with pivot_root inside it")
        }
        for (i, env) in spec.process.env.enumerated() where !env.contains("=") {
            throw ContainerError.invalid("environment entry \(i) \"\(env)\" is not NAME=VALUE")
        }
        if spec.namespaces.contains(.user) {
            if spec.uidMappings.isEmpty || spec.gidMappings.isEmpty {
                throw ContainerError.invalid("a user namespace needs uid and gid mappings")
            }
            if IDMapping.hostID(for: spec.process.user.uid, in: spec.uidMappings) == nil {
                throw ContainerError.invalid("process uid \(spec.process.user.uid) is not mapped in the user namespace")
            }
            if IDMapping.hostID(for: spec.process.user.gid, in: spec.gidMappings) == nil {
                throw ContainerError.invalid("process gid \(spec.process.user.gid) is not mapped in the user namespace")
            }
            if host.isRootless {
                // Without newuidmap, an unprivileged process may map exactly one id: its own.
                for (kind, maps, own) in [("uid", spec.uidMappings, host.uid), ("gid", spec.gidMappings, host.gid)] {
                    if maps.count != 1 || maps[0].size != 1 || maps[0].hostID != own {
                        throw ContainerError(step: "user namespace", "a rootless container may only map your own \(kind) (\(own))",
                                             hint: "use a single mapping \"0 \(own) 1\"")
                    }
                }
                if !spec.process.user.additionalGids.isEmpty {
                    throw ContainerError(step: "user namespace", "additional groups cannot be set in a rootless container",
                                         hint: "setgroups is denied there")
                }
            }
        } else if host.isRootless {
            throw ContainerError(step: "user namespace", "not running as root and the spec has no user namespace",
                                 hint: "rootless containers need one")
        }
        return rootfs
    }

    // MARK: - kernel support

    /// Every namespace type the spec asks for exists in this kernel (/proc/self/ns/<name>).
    static func checkNamespaceTypes(_ spec: ContainerSpec) throws(ContainerError) {
        for kind in spec.namespaces where !FileSystem.exists("/proc/self/ns/" + kind.procName) {
            throw ContainerError(step: "kernel support", "\(kind.rawValue) namespaces are not supported by the running kernel",
                                 hint: "/proc/self/ns/\(kind.procName) is missing")
        }
    }

    static func checkKernel(_ spec: ContainerSpec, host: HostIdentity) throws(ContainerError) {
        try checkNamespaceTypes(spec)
        try checkUserNamespaces(spec, host: host)
    }

    /// User namespaces are enabled (for unprivileged users too when rootless).
    static func checkUserNamespaces(_ spec: ContainerSpec, host: HostIdentity) throws(ContainerError) {
        guard spec.namespaces.contains(.user) else { return }
        if let text = try? FileSystem.readString("/proc/sys/user/max_user_namespaces"),
           Int(text.split(separator: "\n").first ?? "") == 0 {
            throw ContainerError(step: "kernel support", "user namespaces are disabled", hint: "/proc/sys/user/max_user_namespaces is 0")
        }
        guard host.isRootless else { return }
        if let text = try? FileSystem.readString("/proc/sys/kernel/unprivileged_userns_clone"), text.hasPrefix("0") {
            throw ContainerError(step: "kernel support", "user namespaces are disabled for unprivileged users",
                                 hint: "/proc/sys/kernel/unprivileged_userns_clone is 0")
        }
        if let text = try? FileSystem.readString("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"), text.hasPrefix("1") {
            throw ContainerError(step: "kernel support", "AppArmor restricts user namespaces for unprivileged users",
                                 hint: "/proc/sys/kernel/apparmor_restrict_unprivileged_userns is 1")
        }
    }

    /// Why clone(2) failed, as precisely as the host can tell: a missing namespace type first.
    static func cloneFailure(_ spec: ContainerSpec, step: Int32, errno: Int32, host: HostIdentity) -> ContainerError {
        do {
            try checkKernel(spec, host: host)
        } catch {
            return error
        }
        return ContainerError(step: String(cString: sl_step_name(step)), "cannot create the container process",
                              errno: Errno(rawValue: errno), hint: cloneHint(errno, userNamespace: spec.namespaces.contains(.user)))
    }

    static func cloneHint(_ errno: Int32, userNamespace: Bool) -> String? {
        switch errno {
        case EPERM: return userNamespace ? "user namespaces may be restricted for this user" : "creating namespaces needs root or a user namespace"
        case ENOSPC: return "a namespace count limit in /proc/sys/user was reached"
        case EINVAL: return "a requested namespace type is not supported by this kernel"
        default: return nil
        }
    }

    // MARK: - id maps

    /// /proc/PID/uid_map and gid_map, written once each. Rootless: "deny" to setgroups first, or
    /// the kernel refuses the gid map (user_namespaces(7), "Interaction with system calls").
    static func writeIDMaps(_ spec: ContainerSpec, pid: pid_t, rootless: Bool) throws(ContainerError) {
        let base = "/proc/\(pid)/"
        func write(_ text: String, _ file: String) throws(ContainerError) {
            do {
                try FileSystem.write(text, to: base + file)
            } catch {
                throw ContainerError(step: "id maps", "cannot write \"\(text.split(separator: "\n").joined(separator: ", "))\" to \(base + file)", errno: error)
            }
        }
        if rootless { try write("deny", "setgroups") }
        try write(IDMapping.mapFileText(spec.uidMappings), "uid_map")
        try write(IDMapping.mapFileText(spec.gidMappings), "gid_map")
    }

    // MARK: - child failures

    static func childFailure(_ record: sl_child_error, spec: ContainerSpec, mounts: [PlannedMount]) -> ContainerError {
        let step = String(cString: sl_step_name(record.step))
        let errno = Errno(rawValue: record.error)
        let detail = withUnsafeBytes(of: record.detail) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        switch Int(record.step) {
        case Int(SL_STEP_EXEC.rawValue):
            if record.error == ENOENT {
                return ContainerError(step: "exec", "\(detail): command not found in the container", errno: errno, exitStatus: 127)
            }
            return ContainerError(step: "exec", "cannot execute \(detail)", errno: errno, exitStatus: record.exit_status == 0 ? 126 : record.exit_status)
        case Int(SL_STEP_MOUNTS.rawValue):
            let index = Int(record.index)
            guard mounts.indices.contains(index) else { return ContainerError(step: step, detail, errno: errno) }
            let m = mounts[index]
            switch m.kind {
            case .filesystem: return ContainerError(step: step, "cannot mount \(m.fsType ?? "?") on \(m.target)", errno: errno)
            case .bind: return ContainerError(step: step, "cannot bind \(m.source ?? "?") to \(m.target)", errno: errno)
            case .symlink: return ContainerError(step: step, "cannot create the symlink \(m.target)", errno: errno)
            case .mask: return ContainerError(step: step, "cannot mask \(m.target)", errno: errno)
            case .readonly: return ContainerError(step: step, "cannot make \(m.target) read-only", errno: errno)
            }
        case Int(SL_STEP_CWD.rawValue):
            return ContainerError(step: step, "cannot change to \(detail) in the container", errno: errno)
        case Int(SL_STEP_ROOTFS.rawValue), Int(SL_STEP_PIVOT_ROOT.rawValue):
            return ContainerError(step: step, "cannot switch to the root filesystem \(detail)", errno: errno)
        case Int(SL_STEP_HOSTNAME.rawValue):
            return ContainerError(step: step, "cannot set the hostname to \(detail)", errno: errno)
        case Int(SL_STEP_LOOPBACK.rawValue):
            return ContainerError(step: step, "cannot bring up lo", errno: errno)
        default:
            return ContainerError(step: step, detail.isEmpty ? "failed" : "failed at \(detail)", errno: errno)
        }
    }
}
