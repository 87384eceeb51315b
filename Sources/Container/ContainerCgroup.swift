// ContainerCgroup: the container's own cgroup, from mkdir to rmdir: limits written before the
// process exists, the process moved in by the parent before it unshares its cgroup namespace, the
// OOM and pids-limit counters read after it exits, and everything removed afterwards, including what a
// crashed launcher left behind (directories are named swiftlet-<launcher pid>-<n>, so a later run can
// tell a dead launcher's cgroup from a live one's).
//
// v1 (cgroups(7), Documentation/admin-guide/cgroup-v1): one directory per hierarchy, nested under
// the launcher's own cgroup there: memory.limit_in_bytes (+ memory.memsw.limit_in_bytes), pids.max,
// cpu.cfs_quota_us/cpu.cfs_period_us; OOM kills in memory.oom_control "oom_kill", refused forks in
// pids.events "max". v2 (Documentation/admin-guide/cgroup-v2.rst): one directory; as root under the
// hierarchy's root (the only cgroup exempt from "no internal processes"), rootless next to the
// launcher's own cgroup when that is delegated; memory.max (+ memory.swap.max 0), pids.max, cpu.max;
// memory.events "oom_kill", pids.events "max".
//
// Device rules (DeviceRule): v1's devices controller (devices.deny "a", then each rule to devices.allow or
// devices.deny); v2 has no devices controller, so a BPF_PROG_TYPE_CGROUP_DEVICE program is attached to the
// container's cgroup2 directory instead (the unified hierarchy of a hybrid host when v1 has no devices).
import CLinux
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The file operations cgroup management needs: the seam that lets tests run the v1 and v2 logic
/// against a recording fake instead of /sys/fs/cgroup.
public protocol CgroupFilesystem: Sendable {
    func makeDirectory(_ path: String) throws(Errno)
    func removeDirectory(_ path: String) throws(Errno)
    func write(_ value: String, to path: String) throws(Errno)
    func read(_ path: String) throws(Errno) -> String
    func exists(_ path: String) -> Bool
    func list(_ path: String) throws(Errno) -> [String]
    /// Attaches `rules` to the cgroup2 directory `path` as a BPF_PROG_TYPE_CGROUP_DEVICE program.
    func attachDeviceProgram(_ rules: [DeviceRule], to path: String) throws(Errno)
}

/// The real cgroup filesystems.
public struct HostCgroupFilesystem: CgroupFilesystem {
    public init() {}
    public func makeDirectory(_ path: String) throws(Errno) { try FileSystem.makeDirectory(path) }
    public func removeDirectory(_ path: String) throws(Errno) { try FileSystem.removeDirectory(path) }
    public func write(_ value: String, to path: String) throws(Errno) { try FileSystem.write(value, to: path) }
    public func read(_ path: String) throws(Errno) -> String { try FileSystem.readString(path) }
    public func exists(_ path: String) -> Bool { FileSystem.exists(path) }
    public func list(_ path: String) throws(Errno) -> [String] { try FileSystem.list(path) }
    public func attachDeviceProgram(_ rules: [DeviceRule], to path: String) throws(Errno) {
        let program = rules.map(\.cRule).withUnsafeBufferPointer { sl_device_program_load($0.baseAddress, $0.count, nil, 0) }
        guard program >= 0 else { throw Errno(rawValue: -program) }
        defer { close(program) }   // the attachment holds the program while the cgroup exists
        let attached = sl_device_program_attach(program, path)
        guard attached == 0 else { throw Errno(rawValue: -attached) }
    }
}

/// What the container's cgroup counted during the run.
public struct CgroupReport: Equatable, Sendable {
    /// Processes the kernel's OOM killer killed inside the container.
    public var oomKills = 0
    /// fork/clone calls refused because pids.max was reached.
    public var pidsLimitHits = 0
    /// The highest memory use seen, when the kernel reports it.
    public var memoryPeakBytes: UInt64?
}

public final class ContainerCgroup {
    public struct Directory: Equatable, Sendable {
        public var path: String
        public var version: CgroupVersion
        public var controllers: [CgroupController]
    }

    public let name: String
    public private(set) var directories: [Directory] = []
    private let limits: ResourceLimits
    /// The device rules to enforce (DeviceRule.effective), or nil to leave device access alone.
    private let devices: [DeviceRule]?
    private let fs: any CgroupFilesystem

    private static let sequence = Atomic<Int>(0)
    static let prefix = "swiftlet-"

    private init(name: String, limits: ResourceLimits, devices: [DeviceRule]?, filesystem: any CgroupFilesystem) {
        self.name = name
        self.limits = limits
        self.devices = devices
        self.fs = filesystem
    }

    /// A fresh name: swiftlet-<pid>-<n>.
    static func uniqueName() -> String {
        let n = sequence.add(1, ordering: .relaxed).newValue
        return "\(prefix)\(getpid())-\(n)"
    }

    /// The directory a hierarchy's container cgroups go in.
    static func parentDirectory(of hierarchy: CgroupHierarchy, rootless: Bool) -> String {
        switch hierarchy.version {
        case .v1:
            return hierarchy.ownDirectory
        case .v2:
            if !rootless { return hierarchy.mountPoint }
            let own = hierarchy.ownDirectory
            guard let slash = own.lastIndex(of: "/"), own != hierarchy.mountPoint else { return own }
            return String(own[..<slash])
        }
    }

    /// Whether a container needs a cgroup of its own: to enforce a limit, or, without a pid
    /// namespace, to find and kill every process it started. Otherwise the pid namespace already
    /// takes every process down with PID 1, and skipping the cgroup saves the launcher the cost of
    /// moving a process between cgroups: the first move after a quiet spell waits for an RCU grace
    /// period (cgroup_threadgroup_rwsem), measured here at 8 to 15 ms, more than the rest of a run.
    public static func isNeeded(limits: ResourceLimits, pidNamespace: Bool) -> Bool {
        !limits.isEmpty || !pidNamespace
    }

    /// Creates the container's cgroup and writes its limits and `devices` rules (nil: device access is
    /// left alone). `memoryAndPids` false: only the device rules are wanted, so only their hierarchy gets a
    /// directory (limits and process tracking need the memory and pids ones). Returns nil when there is
    /// nothing to do: rootless without limits (an unprivileged user usually cannot create cgroups).
    public static func create(layout: CgroupLayout, limits: ResourceLimits, rootless: Bool,
                              devices: [DeviceRule]? = nil, memoryAndPids: Bool = true, name: String? = nil,
                              filesystem: any CgroupFilesystem = HostCgroupFilesystem()) throws(ContainerError) -> ContainerCgroup? {
        if rootless && limits.isEmpty { return nil }
        var wanted: [CgroupController] = memoryAndPids || !limits.isEmpty ? [.memory, .pids] : []
        if limits.cpuQuotaMicroseconds != nil { wanted.append(.cpu) }
        if devices != nil { wanted.append(.devices) }

        // Controllers sharing a hierarchy (v2, or co-mounted v1 like cpu,cpuacct) share a directory.
        var groups: [(hierarchy: CgroupHierarchy, controllers: [CgroupController])] = []
        for controller in wanted {
            // Device rules without a v1 devices controller: a BPF program in the cgroup2 hierarchy.
            guard let hierarchy = layout.controllers[controller] ?? (controller == .devices ? layout.unified : nil) else {
                if controller == .devices {
                    throw ContainerError(step: "cgroup", "cannot confine the container's device access: no cgroup v1 devices controller and no cgroup2 hierarchy for a device program",
                                         hint: layout.unavailableReason(controller))
                }
                if isLimited(controller, limits) {
                    throw ContainerError(step: "cgroup", "cannot limit \(controller.rawValue): the \(controller.rawValue) controller is unavailable",
                                         hint: layout.unavailableReason(controller))
                }
                continue
            }
            if let i = groups.firstIndex(where: { $0.hierarchy == hierarchy }) {
                groups[i].controllers.append(controller)
            } else {
                groups.append((hierarchy, [controller]))
            }
        }

        let cgroup = ContainerCgroup(name: name ?? uniqueName(), limits: limits, devices: devices, filesystem: filesystem)
        do throws(ContainerError) {
            for group in groups {
                var parent = parentDirectory(of: group.hierarchy, rootless: rootless)
                if cgroup.name.hasPrefix("/") {
                    // OCI linux.cgroupsPath: relative to the hierarchy's root; missing parents are made.
                    parent = group.hierarchy.mountPoint
                    for component in cgroup.name.split(separator: "/").dropLast() {
                        if group.hierarchy.version == .v2 { try enableControllers(group.controllers, in: parent, filesystem) }
                        parent += "/" + component
                        if !filesystem.exists(parent) { try? filesystem.makeDirectory(parent) }
                    }
                }
                if group.hierarchy.version == .v2 { try enableControllers(group.controllers, in: parent, filesystem) }
                let path = parent + "/" + (cgroup.name.split(separator: "/").last.map(String.init) ?? cgroup.name)
                do {
                    try filesystem.makeDirectory(path)
                } catch {
                    throw ContainerError(step: "cgroup", "cannot create \(path)", errno: error,
                                         hint: rootless && (error == .permissionDenied || error == .readOnlyFileSystem)
                                             ? "rootless limits need a cgroup delegated to your user" : nil)
                }
                let directory = Directory(path: path, version: group.hierarchy.version, controllers: group.controllers)
                cgroup.directories.append(directory)
                try cgroup.applyLimits(directory)
            }
        } catch {
            _ = cgroup.destroy()
            throw error
        }
        return cgroup
    }

    private static func isLimited(_ controller: CgroupController, _ limits: ResourceLimits) -> Bool {
        switch controller {
        case .memory: return limits.memoryBytes != nil
        case .pids: return limits.pids != nil
        case .cpu: return limits.cpuQuotaMicroseconds != nil
        case .devices: return true
        }
    }

    /// v2: a child cgroup can only use controllers its parent lists in cgroup.subtree_control.
    private static func enableControllers(_ controllers: [CgroupController], in parent: String,
                                          _ fs: any CgroupFilesystem) throws(ContainerError) {
        let file = parent + "/cgroup.subtree_control"
        let enabled = Set(((try? fs.read(file)) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        for controller in controllers where controller != .devices && !enabled.contains(controller.rawValue) {
            do {
                try fs.write("+\(controller.rawValue)", to: file)
            } catch {
                throw ContainerError(step: "cgroup", "cannot enable the \(controller.rawValue) controller in \(file)", errno: error)
            }
        }
    }

    private func write(_ value: String, _ file: String, in directory: Directory) throws(ContainerError) {
        let path = directory.path + "/" + file
        do {
            try fs.write(value, to: path)
        } catch {
            throw ContainerError(step: "cgroup", "cannot write \(value) to \(path)", errno: error)
        }
    }

    private func applyLimits(_ directory: Directory) throws(ContainerError) {
        for controller in directory.controllers {
            switch (controller, directory.version) {
            case (.memory, .v1):
                guard let bytes = limits.memoryBytes else { continue }
                try write(String(bytes), "memory.limit_in_bytes", in: directory)
                // With swap accounting, limit memory+swap to the same value: no swapping past the limit.
                if fs.exists(directory.path + "/memory.memsw.limit_in_bytes") {
                    try write(String(bytes), "memory.memsw.limit_in_bytes", in: directory)
                }
            case (.memory, .v2):
                guard let bytes = limits.memoryBytes else { continue }
                try write(String(bytes), "memory.max", in: directory)
                if fs.exists(directory.path + "/memory.swap.max") { try write("0", "memory.swap.max", in: directory) }
            case (.pids, _):
                guard let pids = limits.pids else { continue }
                try write(String(pids), "pids.max", in: directory)
            case (.cpu, .v1):
                guard let quota = limits.cpuQuotaMicroseconds else { continue }
                try write(String(limits.cpuPeriodMicroseconds ?? ResourceLimits.defaultCPUPeriod), "cpu.cfs_period_us", in: directory)
                try write(String(quota), "cpu.cfs_quota_us", in: directory)
            case (.cpu, .v2):
                guard let quota = limits.cpuQuotaMicroseconds else { continue }
                try write("\(quota) \(limits.cpuPeriodMicroseconds ?? ResourceLimits.defaultCPUPeriod)", "cpu.max", in: directory)
            case (.devices, .v1):
                // In order: the first rule is the deny-all ("a" to devices.deny empties the allow list).
                for rule in devices ?? [] { try write(rule.cgroupV1Line, rule.allow ? "devices.allow" : "devices.deny", in: directory) }
            case (.devices, .v2):
                guard let devices else { continue }
                do { try fs.attachDeviceProgram(devices, to: directory.path) } catch {
                    throw ContainerError(step: "cgroup", "cannot attach the device rules (a BPF_PROG_TYPE_CGROUP_DEVICE program) to \(directory.path)", errno: error)
                }
            }
        }
    }

    /// The v1 `tasks` files the child writes "0" to, moving itself: for that case the kernel skips
    /// the global lock whose first taker waits for an RCU grace period (see the child's "cgroup join").
    public var selfJoinFiles: [String] {
        directories.filter { $0.version == .v1 }.map { $0.path + "/tasks" }
    }

    /// Moves `pid` into the container's v2 directory (v1 ones are joined by the child itself, see
    /// `selfJoinFiles`). The parent does this before it releases the child, so the child's cgroup
    /// namespace, created next, is rooted here.
    public func join(pid: pid_t) throws(ContainerError) {
        for directory in directories where directory.version == .v2 { try write(String(pid), "cgroup.procs", in: directory) }
    }

    /// Reads the counters. Call after the container exited, before `destroy`.
    public func report() -> CgroupReport {
        var report = CgroupReport()
        for directory in directories {
            for controller in directory.controllers {
                switch (controller, directory.version) {
                case (.memory, .v1):
                    report.oomKills = Self.counter("oom_kill", in: directory.path + "/memory.oom_control", fs) ?? 0
                    report.memoryPeakBytes = Self.number(in: directory.path + "/memory.max_usage_in_bytes", fs)
                case (.memory, .v2):
                    report.oomKills = Self.counter("oom_kill", in: directory.path + "/memory.events", fs) ?? 0
                    report.memoryPeakBytes = Self.number(in: directory.path + "/memory.peak", fs)
                case (.pids, _):
                    report.pidsLimitHits = Self.counter("max", in: directory.path + "/pids.events", fs) ?? 0
                case (.cpu, _), (.devices, _):
                    continue
                }
            }
        }
        return report
    }

    /// "key value" lines, as in memory.events and pids.events.
    static func counter(_ key: String, in path: String, _ fs: any CgroupFilesystem = HostCgroupFilesystem()) -> Int? {
        guard let text = try? fs.read(path) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 && parts[0] == key { return Int(parts[1]) }
        }
        return nil
    }

    static func number(in path: String, _ fs: any CgroupFilesystem) -> UInt64? {
        guard let text = try? fs.read(path) else { return nil }
        return UInt64(text.split(separator: "\n").first ?? "")
    }

    /// Kills whatever is still in the cgroup and removes its directories. Returns the failures, as
    /// warnings: by now the command has finished and its status is what matters.
    @discardableResult
    public func destroy() -> [ContainerError] {
        var failures: [ContainerError] = []
        for directory in directories.reversed() {
            Self.killAll(in: directory.path, fs)
            if let error = Self.removeDirectory(directory.path, fs) { failures.append(error) }
        }
        directories.removeAll()
        return failures
    }

    /// SIGKILL every process listed in cgroup.procs, until it is empty (processes may fork meanwhile).
    static func killAll(in path: String, _ fs: any CgroupFilesystem) {
        if fs.exists(path + "/cgroup.kill") { try? fs.write("1", to: path + "/cgroup.kill") }
        for _ in 0..<100 {
            guard let text = try? fs.read(path + "/cgroup.procs") else { return }
            let pids = text.split(separator: "\n").compactMap { pid_t($0) }
            if pids.isEmpty { return }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(1000)
        }
    }

    /// rmdir, retried while the kernel still counts exiting processes (EBUSY).
    static func removeDirectory(_ path: String, _ fs: any CgroupFilesystem) -> ContainerError? {
        for attempt in 0..<500 {
            do {
                try fs.removeDirectory(path)
                return nil
            } catch {
                if error == .noSuchFileOrDirectory { return nil }
                guard error == .resourceBusy, attempt < 499 else {
                    return ContainerError(step: "cleanup", "cannot remove cgroup \(path)", errno: error)
                }
                usleep(attempt < 50 ? 200 : 2000)
            }
        }
        return nil
    }

    /// Removes container cgroups whose launcher is gone (killed before it could clean up). Returns
    /// the paths removed.
    @discardableResult
    public static func sweepStale(layout: CgroupLayout, rootless: Bool,
                                  filesystem fs: any CgroupFilesystem = HostCgroupFilesystem()) -> [String] {
        var parents: [String] = []
        for hierarchy in layout.controllers.values {
            let parent = parentDirectory(of: hierarchy, rootless: rootless)
            if !parents.contains(parent) { parents.append(parent) }
        }
        var removed: [String] = []
        let me = getpid()
        for parent in parents {
            guard let names = try? fs.list(parent) else { continue }
            for name in names where name.hasPrefix(prefix) {
                let fields = name.dropFirst(prefix.count).split(separator: "-")
                guard fields.count == 2, let pid = pid_t(fields[0]), Int(fields[1]) != nil, pid != me else { continue }
                if kill(pid, 0) == 0 || errno != ESRCH { continue } // its launcher still runs
                let path = parent + "/" + name
                killAll(in: path, fs)
                if removeDirectory(path, fs) == nil { removed.append(path) }
            }
        }
        return removed
    }
}
