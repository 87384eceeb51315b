// CgroupLayout: which cgroup version each controller the launcher uses is mounted under, where, and
// where the launcher itself sits in that hierarchy (cgroups(7)). Hosts come in three shapes:
//   v2 (unified): one cgroup2 mount, usually /sys/fs/cgroup, controllers listed in cgroup.controllers;
//   v1 (legacy): one cgroup mount per controller (or co-mounted group) under a tmpfs /sys/fs/cgroup;
//   hybrid: v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified (systemd's layout, and
//   the machines this project is tested on). A controller bound to a v1 hierarchy cannot be in v2.

/// The controllers the launcher sets limits with.
public enum CgroupController: String, CaseIterable, Sendable {
    case memory, pids, cpu
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

    /// Reads the layout from /proc/self/mountinfo, /proc/self/cgroup and the cgroup2 root's
    /// cgroup.controllers.
    public static func detect() throws(ContainerError) -> CgroupLayout {
        let mounts = try MountInfo.current()
        let membership: String
        do {
            membership = try FileSystem.readString("/proc/self/cgroup")
        } catch {
            throw ContainerError(step: "cgroup", "cannot read /proc/self/cgroup", errno: error)
        }
        return detect(mounts: mounts, membership: membership) { try? FileSystem.readString($0) }
    }

    /// The detection logic, with the files passed in so tests can describe any host.
    public static func detect(mounts: [MountInfo], membership: String, readFile: (String) -> String?) -> CgroupLayout {
        // /proc/self/cgroup: "4:memory:/process_api/x" (v1) and "0::/user.slice/x" (v2).
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
                let options = Set(mount.superOptions.split(separator: ",").map(String.init))
                for controller in CgroupController.allCases where options.contains(controller.rawValue) {
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
            let names = Set(available.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            for controller in CgroupController.allCases where controllers[controller] == nil && names.contains(controller.rawValue) {
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
