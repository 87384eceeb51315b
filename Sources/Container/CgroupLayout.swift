// CgroupLayout: which cgroup version each controller the launcher uses is mounted under, where, and
// where the launcher itself sits in that hierarchy (cgroups(7)). Hosts come in three shapes:
//   v2 (unified): one cgroup2 mount, usually /sys/fs/cgroup, controllers listed in cgroup.controllers;
//   v1 (legacy): one cgroup mount per controller (or co-mounted group) under a tmpfs /sys/fs/cgroup;
//   hybrid: v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified (systemd's layout, and
//   the machines this project is tested on). A controller bound to a v1 hierarchy cannot be in v2.

/// The controllers the launcher sets limits with.
public enum CgroupController: String, CaseIterable, Sendable {
    case memory, pids, cpu
    /// Device access (v1 only: cgroup v2 has no devices controller, a BPF program on the cgroup does it).
    case devices
}

public enum CgroupVersion: String, Sendable {
    case v1, v2
}

/// One hierarchy: where it is mounted and where this process is in it.
public struct CgroupHierarchy: Equatable, Sendable {
    public var version: CgroupVersion
    /// The mount point, e.g. /sys/fs/cgroup/memory or /sys/fs/cgroup.
    public var mountPoint: String
    /// This process's cgroup directory on disk, e.g. /sys/fs/cgroup/memory/process_api/5ca9….
    public var ownDirectory: String
}

public struct CgroupLayout: Equatable, Sendable {
    /// Where each available controller lives.
    public var controllers: [CgroupController: CgroupHierarchy]
    /// The cgroup2 mount, when there is one (with or without controllers).
    public var unified: CgroupHierarchy?

    public init(controllers: [CgroupController: CgroupHierarchy], unified: CgroupHierarchy?) {
        self.controllers = controllers
        self.unified = unified
    }

    /// "v1", "v2" or "hybrid", as messages and docs name the layouts.
    public var name: String {
        let versions = Set(controllers.values.map(\.version))
        if versions == [.v2] { return "v2" }
        if versions.contains(.v1) { return unified != nil ? "hybrid" : "v1" }
        return unified != nil ? "v2" : "none"
    }

    /// True when the container can get its own cgroup2 hierarchy (a pure v2 host).
    public var isUnifiedOnly: Bool { name == "v2" }

    /// Reads the layout: the standard places first (statfs(2) on /sys/fs/cgroup and below, which is
    /// cheap), else /proc/self/mountinfo (which the kernel must format line by line); plus
    /// /proc/self/cgroup and the cgroup2 root's cgroup.controllers.
    public static func detect() throws(ContainerError) -> CgroupLayout {
        let membership: String
        do {
            membership = try FileSystem.readString("/proc/self/cgroup")
        } catch {
            throw ContainerError(step: "cgroup", "cannot read /proc/self/cgroup", errno: error)
        }
        if let standard = detectStandard(membership: membership) { return standard }
        let mounts = try MountInfo.current()
        return detect(mounts: mounts, membership: membership) { try? FileSystem.readString($0) }
    }

    static let standardRoot = "/sys/fs/cgroup"
    static let cgroup2Magic = 0x6367_7270
    static let cgroupMagic = 0x0027_e0eb
    static let tmpfsMagic = 0x0102_1994

    /// The layouts systemd mounts: cgroup2 on /sys/fs/cgroup (v2), or a tmpfs there with v1
    /// hierarchies at /sys/fs/cgroup/<controller> and perhaps cgroup2 at /sys/fs/cgroup/unified
    /// (v1, hybrid). Recognised by filesystem type alone; nil when anything differs, including a
    /// cgroup directory of ours that is not where /proc/self/cgroup says (a hierarchy mounted from a
    /// sub-cgroup): then the mount table decides.
    static func detectStandard(membership: String) -> CgroupLayout? {
        let (v1Paths, v2Path) = parseMembership(membership)
        func join(_ base: String, _ path: String) -> String { path == "/" || path.isEmpty ? base : base + path }
        switch FileSystem.filesystemType(standardRoot) {
        case cgroup2Magic?:
            let own = join(standardRoot, v2Path ?? "/")
            guard FileSystem.isDirectory(own) else { return nil }
            let unified = CgroupHierarchy(version: .v2, mountPoint: standardRoot, ownDirectory: own)
            var controllers: [CgroupController: CgroupHierarchy] = [:]
            let available = (try? FileSystem.readString(standardRoot + "/cgroup.controllers")) ?? ""
            for controller in CgroupController.allCases where containsWord(available, controller.rawValue) {
                controllers[controller] = unified
            }
            return CgroupLayout(controllers: controllers, unified: unified)
        case tmpfsMagic?:
            var controllers: [CgroupController: CgroupHierarchy] = [:]
            for controller in CgroupController.allCases {
                let mountPoint = standardRoot + "/" + controller.rawValue
                guard FileSystem.filesystemType(mountPoint) == cgroupMagic else { continue }
                let own = join(mountPoint, v1Paths[controller.rawValue] ?? "/")
                guard FileSystem.isDirectory(own) else { return nil }
                controllers[controller] = CgroupHierarchy(version: .v1, mountPoint: mountPoint, ownDirectory: own)
            }
            var unified: CgroupHierarchy?
            let unifiedPoint = standardRoot + "/unified"
            if FileSystem.filesystemType(unifiedPoint) == cgroup2Magic {
                let hierarchy = CgroupHierarchy(version: .v2, mountPoint: unifiedPoint, ownDirectory: join(unifiedPoint, v2Path ?? "/"))
                unified = hierarchy
                let available = (try? FileSystem.readString(unifiedPoint + "/cgroup.controllers")) ?? ""
                for controller in CgroupController.allCases where controllers[controller] == nil && containsWord(available, controller.rawValue) {
                    controllers[controller] = hierarchy
                }
            }
            return controllers.isEmpty && unified == nil ? nil : CgroupLayout(controllers: controllers, unified: unified)
        default:
            return nil
        }
    }

    /// /proc/self/cgroup: "4:memory:/process_api/x" (v1) and "0::/user.slice/x" (v2).
    static func parseMembership(_ membership: String) -> (v1: [String: String], v2: String?) {
        var v1Paths: [String: String] = [:]
        var v2Path: String?
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                v2Path = String(parts[2])
            } else {
                for controller in parts[1].split(separator: ",") { v1Paths[String(controller)] = String(parts[2]) }
            }
        }
        return (v1Paths, v2Path)
    }

    /// Whether a space- or newline-separated list contains `word`.
    static func containsWord(_ list: String, _ word: String) -> Bool {
        list.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains { $0 == word }
    }

    /// The detection logic, with the files passed in so tests can describe any host.
    public static func detect(mounts: [MountInfo], membership: String, readFile: (String) -> String?) -> CgroupLayout {
        let (v1Paths, v2Path) = parseMembership(membership)

        func directory(_ mount: MountInfo, _ path: String) -> String {
            // A hierarchy mounted from a sub-cgroup (inside another container) shows paths relative
            // to the hierarchy root; strip the mount's root to find the directory under the mount point.
            var relative = path
            if mount.root != "/" && relative.hasPrefix(mount.root) { relative = String(relative.dropFirst(mount.root.count)) }
            if relative.hasPrefix("/..") { relative = "/" }
            let base = mount.mountPoint.hasSuffix("/") ? String(mount.mountPoint.dropLast()) : mount.mountPoint
            return relative == "/" || relative.isEmpty ? base : base + relative
        }

        var controllers: [CgroupController: CgroupHierarchy] = [:]
        var unified: CgroupHierarchy?
        for mount in mounts {
            switch mount.fsType {
            case "cgroup":
                let options = mount.superOptions.split(separator: ",")
                for controller in CgroupController.allCases where options.contains(where: { $0 == controller.rawValue }) {
                    guard controllers[controller] == nil else { continue }
                    let path = v1Paths[controller.rawValue] ?? "/"
                    controllers[controller] = CgroupHierarchy(version: .v1, mountPoint: mount.mountPoint,
                                                              ownDirectory: directory(mount, path))
                }
            case "cgroup2":
                guard unified == nil else { continue }
                unified = CgroupHierarchy(version: .v2, mountPoint: mount.mountPoint, ownDirectory: directory(mount, v2Path ?? "/"))
            default:
                continue
            }
        }
        if let unified, let available = readFile(unified.mountPoint + "/cgroup.controllers") {
            for controller in CgroupController.allCases where controllers[controller] == nil && containsWord(available, controller.rawValue) {
                controllers[controller] = unified
            }
        }
        return CgroupLayout(controllers: controllers, unified: unified)
    }

    /// Why a controller is missing, for the error a user reads.
    func unavailableReason(_ controller: CgroupController) -> String {
        switch name {
        case "none": return "no cgroup filesystem is mounted"
        case "v2": return "cgroup v2 at \(unified?.mountPoint ?? "?") does not list \(controller.rawValue) in cgroup.controllers"
        default: return "no cgroup v1 hierarchy has the \(controller.rawValue) controller and cgroup v2 does not offer it"
        }
    }
}
