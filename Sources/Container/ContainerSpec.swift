// ContainerSpec: what a container is, in the terms of the OCI runtime spec (config.json) subset that
// Swiftlet implements, plus its two extensions (`--init`, seccomp on/off). Both front ends produce
// one: `RunOptions` from CLI flags on top of `ContainerSpec.standard`, and `ContainerSpec(oci:)`
// from a bundle's config.json. The launcher only ever sees a ContainerSpec.
import Seccomp

public struct ContainerSpec: Equatable, Sendable {
    public struct User: Equatable, Sendable {
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public var additionalGids: [UInt32] = []
        public init(uid: UInt32 = 0, gid: UInt32 = 0, additionalGids: [UInt32] = []) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
        }
    }

    /// The five capability sets of the OCI spec.
    public struct Capabilities: Equatable, Sendable {
        public var bounding: CapabilitySet
        public var effective: CapabilitySet
        public var inheritable: CapabilitySet
        public var permitted: CapabilitySet
        public var ambient: CapabilitySet

        /// `crun spec`'s sets: the default three everywhere except inheritable.
        public static let ociDefault = Capabilities(bounding: .ociDefault, effective: .ociDefault, inheritable: [],
                                                    permitted: .ociDefault, ambient: .ociDefault)
    }

    public struct Rlimit: Equatable, Sendable {
        public var type: String
        public var soft: UInt64
        public var hard: UInt64
    }

    public struct Process: Equatable, Sendable {
        public var terminal = false
        public var user = User()
        public var args: [String] = []
        public var env: [String] = []
        public var cwd = "/"
        public var capabilities = Capabilities.ociDefault
        public var rlimits: [Rlimit] = []
        public var noNewPrivileges = true
    }

    public struct Mount: Equatable, Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]

        public init(destination: String, type: String? = nil, source: String? = nil, options: [String] = []) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }
    }

    public var process = Process()
    /// The root filesystem, absolute (a bundle's relative root.path is resolved against the bundle).
    public var rootPath: String
    public var rootReadonly = false
    public var hostname: String?
    public var mounts: [Mount] = []
    public var namespaces: [NamespaceKind] = []
    public var uidMappings: [IDMapping] = []
    public var gidMappings: [IDMapping] = []
    public var resources = ResourceLimits()
    /// linux.resources.devices: the spec's own device rules, enforced between a deny-all and the default
    /// devices (DeviceRule.effective).
    public var deviceRules: [DeviceRule] = []
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    /// linux.cgroupsPath: the cgroup's path from each hierarchy's root (nil: a name of swiftlet's own).
    public var cgroupsPath: String?
    /// linux.sysctl: namespaced kernel parameters (net.*, IPC and UTS ones), written inside the container.
    public var sysctls: [String: String] = [:]

    /// Swiftlet extension: run a reaper as PID 1 with the command as its child (`--init`).
    public var initProcess = false
    /// Swiftlet extension: where the root filesystem's writes go. nil: into it (OCI bundles, --read-only);
    /// `.temporary`: an overlay whose upper layer is a temporary directory removed at exit (`container run`'s
    /// default); `.directory(D)`: an overlay whose upper layer is D/upper, kept (`--upper D`).
    public enum Overlay: Equatable, Sendable { case temporary, directory(String) }
    public var overlay: Overlay?
    /// Swiftlet extension: install a seccomp filter (on unless a test turns it off).
    public var seccomp = true
    /// config.json's `linux.seccomp`; nil: Docker's default profile (SeccompFilter.swift).
    public var seccompProfile: SeccompProfile? = nil

    public init(rootPath: String) {
        self.rootPath = rootPath
    }

    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The OCI default masked paths (as `crun spec` writes them).
    public static let defaultMaskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
    ]
    /// The OCI default read-only paths.
    public static let defaultReadonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    /// The mounts of `crun spec`; `rootless` drops devpts's gid=5, which an unprivileged user cannot map.
    public static func defaultMounts(rootless: Bool, cgroupMount: Bool) -> [Mount] {
        var mounts = [
            Mount(destination: "/proc", type: "proc", source: "proc"),
            Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
                  options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] + (rootless ? [] : ["gid=5"])),
            Mount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
        ]
        if cgroupMount {
            mounts.append(Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                                options: ["nosuid", "noexec", "nodev", "relatime", "ro"]))
        }
        return mounts
    }

    /// The spec the CLI starts from: `crun spec`'s defaults with every namespace including user and
    /// cgroup, the OCI default capabilities, masked and read-only paths, and id maps for the caller:
    /// identity for root, the caller's own uid and gid as 0 when rootless.
    public static func standard(rootPath: String, args: [String], host: HostIdentity = .current) -> ContainerSpec {
        var spec = ContainerSpec(rootPath: rootPath)
        spec.process.args = args
        spec.process.env = ["PATH=\(defaultPath)", "HOME=/root"]
        spec.hostname = "swiftlet"
        spec.mounts = defaultMounts(rootless: host.isRootless, cgroupMount: false)
        spec.namespaces = [.user, .pid, .mount, .uts, .ipc, .network, .cgroup]
        if host.isRootless {
            spec.uidMappings = [IDMapping(containerID: 0, hostID: host.uid, size: 1)]
            spec.gidMappings = [IDMapping(containerID: 0, hostID: host.gid, size: 1)]
        } else {
            spec.uidMappings = [.identity]
            spec.gidMappings = [.identity]
        }
        spec.maskedPaths = defaultMaskedPaths
        spec.readonlyPaths = defaultReadonlyPaths
        return spec
    }
}

/// Who runs the launcher: decides between root and rootless defaults.
public struct HostIdentity: Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var isRootless: Bool { uid != 0 }

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    public static var current: HostIdentity { HostIdentity(uid: geteuid(), gid: getegid()) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
