// CgroupTests: layout detection for v1, hybrid and v2 hosts from their /proc files, and the v2 and
// v1 limit files written into a fake cgroup tree (a plain directory); no root needed.
@testable import Container
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite struct CgroupTests {
    static let hybridMountinfo = """
    31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
    39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
    40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
    """
    static let hybridMembership = """
    9:name=systemd:/
    8:pids:/
    4:memory:/process_api/abc
    1:cpu:/
    0::/
    """

    @Test func detectsThisMachinesHybridLayout() {
        let layout = CgroupLayout.detect(mounts: MountInfo.parse(Self.hybridMountinfo), membership: Self.hybridMembership) { path in
            path == "/sys/fs/cgroup/unified/cgroup.controllers" ? "\n" : nil
        }
        #expect(layout.name == "hybrid")
        #expect(layout.controllers[.memory] == CgroupHierarchy(version: .v1, mountPoint: "/sys/fs/cgroup/memory",
                                                               ownDirectory: "/sys/fs/cgroup/memory/process_api/abc"))
        #expect(layout.controllers[.pids]?.ownDirectory == "/sys/fs/cgroup/pids")
        #expect(layout.controllers[.cpu]?.version == .v1)
        #expect(layout.unified?.mountPoint == "/sys/fs/cgroup/unified")
    }

    @Test func detectsUnifiedV2AndMissingControllers() {
        let mounts = MountInfo.parse("30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate")
        let layout = CgroupLayout.detect(mounts: mounts, membership: "0::/user.slice/session-1.scope\n") { _ in "cpuset cpu io memory\n" }
        #expect(layout.name == "v2")
        #expect(layout.controllers[.memory]?.ownDirectory == "/sys/fs/cgroup/user.slice/session-1.scope")
        #expect(layout.controllers[.pids] == nil)
        #expect(layout.unavailableReason(.pids).contains("does not list pids"))
        #expect(ContainerCgroup.parentDirectory(of: layout.controllers[.memory]!, rootless: false) == "/sys/fs/cgroup")
        #expect(ContainerCgroup.parentDirectory(of: layout.controllers[.memory]!, rootless: true) == "/sys/fs/cgroup/user.slice")
    }

    @Test func requestedLimitOnMissingControllerIsAClearError() {
        let layout = CgroupLayout(controllers: [:], unified: nil)
        #expect {
            _ = try ContainerCgroup.create(layout: layout, limits: ResourceLimits(pids: 10), rootless: false)
        } throws: { error in
            (error as? ContainerError)?.description == "cgroup: cannot limit pids: the pids controller is unavailable (no cgroup filesystem is mounted)"
        }
        // Without limits a missing controller is fine.
        #expect(throws: Never.self) { try ContainerCgroup.create(layout: layout, limits: ResourceLimits(), rootless: false) }
    }

    @Test func writesV2LimitsAndCleansUp() throws {
        let fs = RecordingCgroupFilesystem(directories: ["/cg", "/cg/user.slice"], files: ["/cg/cgroup.subtree_control": "memory\n"])
        let hierarchy = CgroupHierarchy(version: .v2, mountPoint: "/cg", ownDirectory: "/cg/user.slice")
        let layout = CgroupLayout(controllers: [.memory: hierarchy, .pids: hierarchy, .cpu: hierarchy], unified: hierarchy)
        let limits = ResourceLimits(memoryBytes: 32 << 20, pids: 32, cpuQuotaMicroseconds: 50_000, cpuPeriodMicroseconds: 100_000)
        let cgroup = try #require(try ContainerCgroup.create(layout: layout, limits: limits, rootless: false, name: "swiftlet-1-1", filesystem: fs))
        #expect(cgroup.directories.map(\.path) == ["/cg/swiftlet-1-1"])
        #expect(cgroup.selfJoinFiles.isEmpty)
        try cgroup.join(pid: 4321)
        #expect(fs.log == [
            "write /cg/cgroup.subtree_control +pids", "write /cg/cgroup.subtree_control +cpu", "mkdir /cg/swiftlet-1-1",
            "write /cg/swiftlet-1-1/memory.max 33554432", "write /cg/swiftlet-1-1/memory.swap.max 0",
            "write /cg/swiftlet-1-1/pids.max 32", "write /cg/swiftlet-1-1/cpu.max 50000 100000",
            "write /cg/swiftlet-1-1/cgroup.procs 4321",
        ])
        fs.files["/cg/swiftlet-1-1/memory.events"] = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"
        fs.files["/cg/swiftlet-1-1/pids.events"] = "max 12\n"
        #expect(cgroup.report() == CgroupReport(oomKills: 1, pidsLimitHits: 12, memoryPeakBytes: nil))
        #expect(cgroup.destroy().isEmpty)
        #expect(!fs.directories.contains("/cg/swiftlet-1-1"))
    }

    @Test func writesV1LimitsPerHierarchyUnderTheLaunchersCgroup() throws {
        let fs = RecordingCgroupFilesystem(directories: ["/sys/fs/cgroup/memory/process_api/abc", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"])
        let layout = CgroupLayout.detect(mounts: MountInfo.parse(Self.hybridMountinfo), membership: Self.hybridMembership) { _ in nil }
        let cgroup = try #require(try ContainerCgroup.create(layout: layout, limits: ResourceLimits(memoryBytes: 64 << 20, pids: 5),
                                                             rootless: false, name: "swiftlet-2-1", filesystem: fs))
        #expect(Set(cgroup.directories.map(\.path)) == ["/sys/fs/cgroup/memory/process_api/abc/swiftlet-2-1", "/sys/fs/cgroup/pids/swiftlet-2-1"])
        #expect(fs.log.contains("write /sys/fs/cgroup/memory/process_api/abc/swiftlet-2-1/memory.limit_in_bytes 67108864"))
        #expect(fs.log.contains("write /sys/fs/cgroup/memory/process_api/abc/swiftlet-2-1/memory.memsw.limit_in_bytes 67108864"))
        #expect(fs.log.contains("write /sys/fs/cgroup/pids/swiftlet-2-1/pids.max 5"))
        #expect(!fs.log.contains { $0.contains("/cpu/") }, "no cpu cgroup without a cpu limit")
        #expect(Set(cgroup.selfJoinFiles) == ["/sys/fs/cgroup/memory/process_api/abc/swiftlet-2-1/tasks", "/sys/fs/cgroup/pids/swiftlet-2-1/tasks"])
        try cgroup.join(pid: 99)
        #expect(!fs.log.contains { $0.contains("cgroup.procs") }, "v1 hierarchies are joined by the child itself")
        cgroup.destroy()
        #expect(fs.directories == ["/sys/fs/cgroup/memory/process_api/abc", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"])
    }

    /// Issue 14, defect 5: the device rules reach the cgroup: v1's devices.deny and devices.allow in order.
    @Test func writesV1DeviceRulesInOrder() throws {
        let fs = RecordingCgroupFilesystem(directories: ["/sys/fs/cgroup/memory/process_api/abc", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/devices"])
        let mountinfo = Self.hybridMountinfo + "\n42 31 0:39 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices"
        let layout = CgroupLayout.detect(mounts: MountInfo.parse(mountinfo), membership: Self.hybridMembership + "5:devices:/\n") { _ in nil }
        let rules = DeviceRule.effective([DeviceRule(allow: true, kind: .char, major: 10, minor: 200, access: "rw")])
        let cgroup = try #require(try ContainerCgroup.create(layout: layout, limits: ResourceLimits(), rootless: false, devices: rules,
                                                             name: "swiftlet-4-1", filesystem: fs))
        #expect(cgroup.selfJoinFiles.contains("/sys/fs/cgroup/devices/swiftlet-4-1/tasks"))
        let writes = fs.log.filter { $0.contains("/devices/swiftlet-4-1/devices.") }
        #expect(writes.first == "write /sys/fs/cgroup/devices/swiftlet-4-1/devices.deny a")
        #expect(writes.dropFirst().first == "write /sys/fs/cgroup/devices/swiftlet-4-1/devices.allow c 10:200 rw")
        #expect(writes.contains("write /sys/fs/cgroup/devices/swiftlet-4-1/devices.allow c 1:3 rwm"))
        #expect(writes.last == "write /sys/fs/cgroup/devices/swiftlet-4-1/devices.allow c 136:* rwm")
        #expect(writes.count == 1 + 1 + DeviceRule.defaults.count)
        cgroup.destroy()
    }

    /// Without a v1 devices controller (a v2 host), the rules become a BPF program on the cgroup2 directory.
    @Test func attachesADeviceProgramOnV2() throws {
        let fs = RecordingCgroupFilesystem(directories: ["/cg"], files: ["/cg/cgroup.subtree_control": "memory pids\n"])
        let hierarchy = CgroupHierarchy(version: .v2, mountPoint: "/cg", ownDirectory: "/cg")
        let layout = CgroupLayout(controllers: [.memory: hierarchy, .pids: hierarchy], unified: hierarchy)
        let cgroup = try #require(try ContainerCgroup.create(layout: layout, limits: ResourceLimits(), rootless: false,
                                                             devices: DeviceRule.effective([]), name: "swiftlet-5-1", filesystem: fs))
        #expect(cgroup.directories.map(\.path) == ["/cg/swiftlet-5-1"])
        #expect(!fs.log.contains { $0.contains("+devices") }, "cgroup2 has no devices controller to enable")
        #expect(fs.log.contains { $0.hasPrefix("attach device program to /cg/swiftlet-5-1: deny a rwm, allow c 1:3 rwm") })
        cgroup.destroy()
        // No cgroup filesystem at all: refused in one line rather than run unconfined.
        #expect {
            _ = try ContainerCgroup.create(layout: CgroupLayout(controllers: [:], unified: nil), limits: ResourceLimits(), rootless: false,
                                           devices: DeviceRule.effective([]), filesystem: fs)
        } throws: { error in
            (error as? ContainerError)?.description.hasPrefix("cgroup: cannot confine the container's device access") == true
        }
    }

    /// OCI linux.cgroupsPath (podman's "/libpod_parent/libpod-ID"): from each hierarchy's root, not from the
    /// launcher's own cgroup; missing parents are made, and on v2 each parent passes the controllers down.
    @Test func anOCICgroupsPathIsTakenFromTheHierarchysRoot() throws {
        let fs = RecordingCgroupFilesystem(directories: ["/cg", "/v1/pids"], files: ["/cg/cgroup.subtree_control": ""])
        let v2 = CgroupHierarchy(version: .v2, mountPoint: "/cg", ownDirectory: "/cg/user.slice/me")
        var limits = ResourceLimits()
        limits.memoryBytes = 64 << 20
        let cgroup = try #require(try ContainerCgroup.create(layout: CgroupLayout(controllers: [.memory: v2, .pids: v2], unified: v2),
                                                             limits: limits, rootless: false, name: "/libpod_parent/libpod-1", filesystem: fs))
        #expect(cgroup.directories.map(\.path) == ["/cg/libpod_parent/libpod-1"])
        #expect(fs.log.contains("mkdir /cg/libpod_parent"))
        #expect(fs.log.contains("write /cg/cgroup.subtree_control +memory"))
        #expect(fs.log.contains("write /cg/libpod_parent/cgroup.subtree_control +memory"))
        #expect(fs.log.contains("write /cg/libpod_parent/libpod-1/memory.max 67108864"))
        cgroup.destroy()
        let v1 = CgroupHierarchy(version: .v1, mountPoint: "/v1/pids", ownDirectory: "/v1/pids/process_api/abc")
        let other = try #require(try ContainerCgroup.create(layout: CgroupLayout(controllers: [.pids: v1], unified: nil),
                                                            limits: ResourceLimits(), rootless: false, name: "/swiftlet/c1", filesystem: fs))
        #expect(other.directories.map(\.path) == ["/v1/pids/swiftlet/c1"])
        other.destroy()
    }

    @Test func deviceRulesReadLastMatchWins() {
        let rules = DeviceRule.effective([DeviceRule(allow: true, kind: .char, major: nil, minor: nil, access: "m"),
                                          DeviceRule(allow: true, kind: .char, major: 10, minor: 232, access: "r")])
        #expect(!DeviceRule.allows(rules, kind: .char, major: 10, minor: 232, access: "w"), "not write")
        #expect(DeviceRule.allows(rules, kind: .char, major: 10, minor: 232, access: "r"))
        #expect(DeviceRule.allows(rules, kind: .char, major: 8, minor: 0, access: "m"), "mknod of any char device")
        #expect(!DeviceRule.allows(rules, kind: .block, major: 8, minor: 0, access: "m"))
        #expect(DeviceRule.allows(rules, kind: .char, major: 1, minor: 3, access: "rw"), "a default")
        #expect(!DeviceRule.allows(DeviceRule.effective([]), kind: .char, major: 10, minor: 232, access: "rw"), "/dev/kvm")
    }

    @Test func failedLimitRemovesWhatWasCreated() {
        let fs = RecordingCgroupFilesystem(directories: ["/cg"], files: ["/cg/cgroup.subtree_control": "memory pids\n"])
        fs.failWrites["memory.max"] = .invalidArgument
        let hierarchy = CgroupHierarchy(version: .v2, mountPoint: "/cg", ownDirectory: "/cg")
        let layout = CgroupLayout(controllers: [.memory: hierarchy, .pids: hierarchy], unified: hierarchy)
        #expect {
            _ = try ContainerCgroup.create(layout: layout, limits: ResourceLimits(memoryBytes: 8 << 20), rootless: false, name: "swiftlet-3-1", filesystem: fs)
        } throws: { error in
            (error as? ContainerError)?.description == "cgroup: cannot write 8388608 to /cg/swiftlet-3-1/memory.max (Invalid argument)"
        }
        #expect(fs.directories == ["/cg"])
    }

    @Test func sweepRemovesCgroupsOfDeadLaunchersOnly() {
        let me = getpid()
        let fs = RecordingCgroupFilesystem(directories: ["/cg", "/cg/swiftlet-999999999-1", "/cg/swiftlet-\(me)-7", "/cg/swiftlet-1-2", "/cg/other"])
        let hierarchy = CgroupHierarchy(version: .v2, mountPoint: "/cg", ownDirectory: "/cg")
        let layout = CgroupLayout(controllers: [.pids: hierarchy], unified: hierarchy)
        let removed = ContainerCgroup.sweepStale(layout: layout, rootless: false, filesystem: fs)
        #expect(removed == ["/cg/swiftlet-999999999-1"])
        #expect(fs.directories.contains("/cg/swiftlet-\(me)-7"))
        #expect(fs.directories.contains("/cg/swiftlet-1-2"), "pid 1 is alive")
        #expect(fs.directories.contains("/cg/other"))
    }

    static var hostLayoutIsStandard: Bool {
        CgroupLayout.detectStandard(membership: FileSystemProbe.read("/proc/self/cgroup") ?? "") != nil
    }

    @Test(.enabled(if: Prerequisite.available(hostLayoutIsStandard),
                   "this host's cgroups are not mounted as systemd mounts them (v2, or v1/hybrid under a tmpfs at /sys/fs/cgroup)"))
    func standardDetectionAgreesWithTheMountTable() throws {
        let membership = FileSystemProbe.read("/proc/self/cgroup") ?? ""
        let standard = try #require(CgroupLayout.detectStandard(membership: membership), "not a standard cgroup layout: \(membership)")
        let fromMounts = CgroupLayout.detect(mounts: try MountInfo.current(), membership: membership) { FileSystemProbe.read($0) }
        func canonical(_ layout: CgroupLayout) -> [String: String] {
            var result: [String: String] = [:]
            for (controller, hierarchy) in layout.controllers {
                result[controller.rawValue] = "\(hierarchy.version) " + ((try? FileSystem.canonicalPath(hierarchy.ownDirectory)) ?? "?")
            }
            return result
        }
        #expect(canonical(standard) == canonical(fromMounts))
        #expect(standard.name == fromMounts.name)
    }

    @Test func counterFilesAreRead() throws {
        let directory = try TemporaryDirectory()
        try directory.write("oom 3\noom_kill 2\n", to: "memory.events")
        try directory.write("under_oom 0\noom_kill 1\n", to: "memory.oom_control")
        try directory.write("max 57\n", to: "pids.events")
        #expect(ContainerCgroup.counter("oom_kill", in: directory.path + "/memory.events") == 2)
        #expect(ContainerCgroup.counter("oom_kill", in: directory.path + "/memory.oom_control") == 1)
        #expect(ContainerCgroup.counter("max", in: directory.path + "/pids.events") == 57)
        #expect(ContainerCgroup.counter("max", in: directory.path + "/missing") == nil)
    }
}

/// A cgroup filesystem in memory that records what the manager does. mkdir creates the interface
/// files a real cgroupfs would show (as empty files), so writes to them succeed.
final class RecordingCgroupFilesystem: CgroupFilesystem, @unchecked Sendable {
    var directories: Set<String>
    var files: [String: String]
    var log: [String] = []
    var failWrites: [String: Errno] = [:]

    init(directories: Set<String>, files: [String: String] = [:]) {
        self.directories = directories
        self.files = files
    }

    static let interfaceFiles = ["cgroup.procs", "cgroup.subtree_control", "memory.max", "memory.swap.max", "pids.max", "cpu.max", "memory.limit_in_bytes",
                                 "memory.memsw.limit_in_bytes", "cpu.cfs_quota_us", "cpu.cfs_period_us", "devices.allow", "devices.deny"]

    func makeDirectory(_ path: String) throws(Errno) {
        log.append("mkdir \(path)")
        guard !directories.contains(path) else { throw .fileExists }
        directories.insert(path)
        for name in Self.interfaceFiles { files[path + "/" + name] = "" }
    }

    func removeDirectory(_ path: String) throws(Errno) {
        guard directories.remove(path) != nil else { throw .noSuchFileOrDirectory }
        files = files.filter { !$0.key.hasPrefix(path + "/") }
    }

    func write(_ value: String, to path: String) throws(Errno) {
        log.append("write \(path) \(value)")
        if let error = failWrites[String(path.split(separator: "/").last ?? "")] { throw error }
        guard files[path] != nil else { throw .noSuchFileOrDirectory }
        files[path] = value
    }

    func read(_ path: String) throws(Errno) -> String {
        guard let text = files[path] else { throw .noSuchFileOrDirectory }
        return text
    }

    func exists(_ path: String) -> Bool { files[path] != nil || directories.contains(path) }

    func attachDeviceProgram(_ rules: [DeviceRule], to path: String) throws(Errno) {
        log.append("attach device program to \(path): \(rules.map(\.description).joined(separator: ", "))")
    }

    func list(_ path: String) throws(Errno) -> [String] {
        let prefix = path + "/"
        return directories.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }.map { String($0.dropFirst(prefix.count)) }
    }
}

import SystemPackage
