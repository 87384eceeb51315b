// ChildPlan: the C `struct sl_plan` the child runs from, and the memory behind it. Everything is
// allocated before the clone and freed after `sl_release` returns: the child reads this memory
// (its copy-on-write copy of it) and must never allocate its own.
import CLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class ChildPlan {
    let pointer: UnsafeMutablePointer<sl_plan>
    private var strings: [UnsafeMutablePointer<CChar>] = []
    private var buffers: [UnsafeMutableRawPointer] = []

    struct Inputs {
        var spec: ContainerSpec
        var rootfs: String
        var mounts: [PlannedMount]
        var seccomp: [sock_filter]?
        var terminal: Bool
        var startFD: Int32 = -1
        var preserveFDs = 0
        var stdio: [Int32]
        var setgroupsAllowed: Bool
        var cgroupTasksFDs: [Int32] = []
        /// sl_spawn_exec: the namespaces to join, user first, mount last.
        var joinNamespaceFDs: [Int32] = []
        var detach = false
        var overlayOptions: String?
    }

    init(_ inputs: Inputs) {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: sl_plan())
        let spec = inputs.spec
        var plan = sl_plan()
        plan.rootfs = UnsafePointer(string(inputs.rootfs))
        plan.overlay_options = inputs.overlayOptions.map { UnsafePointer(string($0)) }
        var flags: UInt = 0
        for kind in spec.namespaces where kind != .cgroup { flags |= kind.cloneFlag }
        plan.clone_flags = flags
        plan.unshare_cgroup = spec.namespaces.contains(.cgroup) ? 1 : 0
        let tasks = UnsafeMutablePointer<Int32>.allocate(capacity: max(inputs.cgroupTasksFDs.count, 1))
        tasks.initialize(from: inputs.cgroupTasksFDs, count: inputs.cgroupTasksFDs.count)
        buffers.append(UnsafeMutableRawPointer(tasks))
        plan.cgroup_tasks_fds = UnsafePointer(tasks)
        plan.cgroup_tasks_fd_count = inputs.cgroupTasksFDs.count
        plan.terminal = inputs.terminal ? 1 : 0
        plan.start_fd = inputs.startFD
        plan.preserve_fds = Int32(inputs.preserveFDs)
        let joins = UnsafeMutablePointer<Int32>.allocate(capacity: max(inputs.joinNamespaceFDs.count, 1))
        joins.initialize(from: inputs.joinNamespaceFDs, count: inputs.joinNamespaceFDs.count)
        buffers.append(UnsafeMutableRawPointer(joins))
        plan.join_ns_fds = UnsafePointer(joins)
        plan.join_ns_count = inputs.joinNamespaceFDs.count
        plan.detach = inputs.detach ? 1 : 0
        plan.stdio_fds = (inputs.stdio[0], inputs.stdio[1], inputs.stdio[2])
        plan.loopback = spec.namespaces.contains(.network) ? 1 : 0
        plan.hostname = spec.hostname.map { UnsafePointer(string($0)) }

        let mounts = UnsafeMutablePointer<sl_mount>.allocate(capacity: max(inputs.mounts.count, 1))
        buffers.append(UnsafeMutableRawPointer(mounts))
        for (i, planned) in inputs.mounts.enumerated() {
            var m = sl_mount()
            m.kind = planned.kind.rawValue
            m.source = planned.source.map { UnsafePointer(string($0)) }
            m.target = UnsafePointer(string(planned.target))
            m.fstype = planned.fsType.map { UnsafePointer(string($0)) }
            m.flags = planned.flags
            m.data = planned.data.map { UnsafePointer(string($0)) }
            m.recursive = planned.recursive ? 1 : 0
            m.sysfs_fallback_bind = planned.sysfsFallbackBind ? 1 : 0
            (mounts + i).initialize(to: m)
        }
        plan.mounts = UnsafePointer(mounts)
        plan.mount_count = inputs.mounts.count
        plan.readonly_root = spec.rootReadonly ? 1 : 0
        plan.cwd = UnsafePointer(string(spec.process.cwd))

        let rlimits = UnsafeMutablePointer<sl_rlimit>.allocate(capacity: max(spec.process.rlimits.count, 1))
        buffers.append(UnsafeMutableRawPointer(rlimits))
        for (i, limit) in spec.process.rlimits.enumerated() {
            (rlimits + i).initialize(to: sl_rlimit(resource: RlimitResource.number(limit.type) ?? -1, soft: limit.soft, hard: limit.hard))
        }
        plan.rlimits = UnsafePointer(rlimits)
        plan.rlimit_count = spec.process.rlimits.count
        plan.no_new_privs = spec.process.noNewPrivileges ? 1 : 0

        if let filter = inputs.seccomp {
            let program = UnsafeMutablePointer<sock_filter>.allocate(capacity: filter.count)
            program.initialize(from: filter, count: filter.count)
            buffers.append(UnsafeMutableRawPointer(program))
            plan.seccomp_filter = UnsafePointer(program)
            plan.seccomp_length = UInt16(filter.count)
        }

        plan.set_user = 1
        plan.uid = spec.process.user.uid
        plan.gid = spec.process.user.gid
        let groups = UnsafeMutablePointer<UInt32>.allocate(capacity: max(spec.process.user.additionalGids.count, 1))
        groups.initialize(from: spec.process.user.additionalGids, count: spec.process.user.additionalGids.count)
        buffers.append(UnsafeMutableRawPointer(groups))
        plan.groups = UnsafePointer(groups)
        plan.group_count = spec.process.user.additionalGids.count
        plan.setgroups_allowed = inputs.setgroupsAllowed ? 1 : 0

        let caps = spec.process.capabilities
        plan.set_capabilities = 1
        plan.cap_bounding = caps.bounding.mask
        plan.cap_effective = caps.effective.mask
        plan.cap_permitted = caps.permitted.mask
        plan.cap_inheritable = caps.inheritable.mask
        plan.cap_ambient = caps.ambient.mask

        let sysctls = spec.sysctls.sorted { $0.key < $1.key }
        plan.sysctl_paths = UnsafePointer(stringArray(sysctls.map { $0.key.replacingDots() }))
        plan.sysctl_values = UnsafePointer(stringArray(sysctls.map(\.value)))
        plan.sysctl_count = sysctls.count
        plan.`init` = spec.initProcess ? 1 : 0
        plan.argv = UnsafePointer(stringArray(spec.process.args))
        plan.envp = UnsafePointer(stringArray(spec.process.env))
        let path = spec.process.env.last(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) }
        plan.search_path = UnsafePointer(string(path ?? ContainerSpec.defaultPath))
        pointer.pointee = plan
    }

    deinit {
        for s in strings { free(s) }
        for b in buffers { b.deallocate() }
        pointer.deallocate()
    }

    private func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(text)!
        strings.append(copy)
        return copy
    }

    private func stringArray(_ list: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: list.count + 1)
        for (i, item) in list.enumerated() { (array + i).initialize(to: string(item)) }
        (array + list.count).initialize(to: nil)
        buffers.append(UnsafeMutableRawPointer(array))
        return array
    }
}

extension String {
    /// "net.ipv4.ip_forward" -> "net/ipv4/ip_forward": a sysctl key as a path under /proc/sys.
    func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
}
