// MountPlan: the container's filesystem as an ordered list of operations the child carries out
// before pivot_root: the spec's mounts (with OCI option strings turned into MS_* flags and a data
// string), then the device nodes bound from the host, the /dev symlinks, the masked paths and the
// read-only paths. Kept in Swift so the order and the option parsing are unit-tested without root.
import CLinux

public struct PlannedMount: Equatable, Sendable {
    public enum Kind: Int32, Sendable {
        case filesystem = 1, bind, symlink, mask, readonly
    }

    public var kind: Kind
    public var source: String?
    public var target: String
    public var fsType: String?
    public var flags: UInt
    public var data: String?
    public var recursive = false
    public var sysfsFallbackBind = false

    public init(kind: Kind, source: String?, target: String, fsType: String? = nil, flags: UInt = 0, data: String? = nil,
                recursive: Bool = false, sysfsFallbackBind: Bool = false) {
        self.kind = kind
        self.source = source
        self.target = target
        self.fsType = fsType
        self.flags = flags
        self.data = data
        self.recursive = recursive
        self.sysfsFallbackBind = sysfsFallbackBind
    }
}

public enum MountPlan {
    /// The device nodes every container gets, bound from the host's /dev (a user namespace cannot
    /// mknod, and binding works the same with and without one).
    public static let devices = ["null", "zero", "full", "random", "urandom", "tty"]

    /// The /dev symlinks of the OCI runtime spec's "default devices" section.
    public static let symlinks = [
        ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"), ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"), ("/dev/ptmx", "pts/ptmx"),
    ]

    /// An OCI option string (mount(8) spelling) as the MS_* flag it sets (`set`) or clears. A switch,
    /// not a dictionary: this runs on every container start, where building a dictionary costs more.
    static func flagOption(_ option: String) -> (set: Bool, flag: UInt)? {
        switch option {
        case "ro": return (true, UInt(sl_ms_rdonly))
        case "rw": return (false, UInt(sl_ms_rdonly))
        case "nosuid": return (true, UInt(sl_ms_nosuid))
        case "suid": return (false, UInt(sl_ms_nosuid))
        case "nodev": return (true, UInt(sl_ms_nodev))
        case "dev": return (false, UInt(sl_ms_nodev))
        case "noexec": return (true, UInt(sl_ms_noexec))
        case "exec": return (false, UInt(sl_ms_noexec))
        case "sync": return (true, UInt(sl_ms_synchronous))
        case "async": return (false, UInt(sl_ms_synchronous))
        case "dirsync": return (true, UInt(sl_ms_dirsync))
        case "mand": return (true, UInt(sl_ms_mandlock))
        case "nomand": return (false, UInt(sl_ms_mandlock))
        case "noatime": return (true, UInt(sl_ms_noatime))
        case "atime": return (false, UInt(sl_ms_noatime))
        case "nodiratime": return (true, UInt(sl_ms_nodiratime))
        case "diratime": return (false, UInt(sl_ms_nodiratime))
        case "relatime": return (true, UInt(sl_ms_relatime))
        case "norelatime": return (false, UInt(sl_ms_relatime))
        case "strictatime": return (true, UInt(sl_ms_strictatime))
        case "nostrictatime": return (false, UInt(sl_ms_strictatime))
        case "lazytime": return (true, UInt(sl_ms_lazytime))
        case "nolazytime": return (false, UInt(sl_ms_lazytime))
        default: return nil
        }
    }

    /// Propagation options: every container mount is private already (the "mount propagation" step).
    static func isPropagationOption(_ option: String) -> Bool {
        switch option {
        case "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable": return true
        default: return false
        }
    }

    /// "a,b,c" without the generic `joined`, which costs a runtime conformance lookup at start-up.
    static func commaSeparated<S: StringProtocol>(_ parts: [S]) -> String {
        var text = ""
        for part in parts {
            if !text.isEmpty { text += "," }
            text += part
        }
        return text
    }

    /// Splits OCI options into flags, a data string, and whether they ask for a (recursive) bind.
    public static func parseOptions(_ options: [String]) -> (flags: UInt, data: String?, bind: Bool, recursive: Bool, ignored: [String]) {
        var flags: UInt = 0
        var data: [String] = []
        var bind = false
        var recursive = false
        var ignored: [String] = []
        for option in options {
            if let entry = flagOption(option) {
                if entry.set { flags |= entry.flag } else { flags &= ~entry.flag }
            } else if option == "bind" {
                bind = true
            } else if option == "rbind" {
                bind = true
                recursive = true
            } else if isPropagationOption(option) || option == "defaults" {
                continue
            } else if option == "tmpcopyup" || option == "remount" || option.hasPrefix("x-") {
                ignored.append(option)
            } else {
                data.append(option)
            }
        }
        return (flags, data.isEmpty ? nil : commaSeparated(data), bind, recursive, ignored)
    }

    /// The ordered plan for `spec`. `baseDirectory` resolves relative bind sources (the bundle, or the
    /// current directory); `cgroupV2Only` says whether a "cgroup" mount can be honoured.
    public static func make(for spec: ContainerSpec, baseDirectory: String, cgroupV2Only: Bool,
                            warn: (String) -> Void) throws(ContainerError) -> [PlannedMount] {
        let userNamespace = spec.namespaces.contains(.user)
        var plan: [PlannedMount] = []
        for (index, mount) in spec.mounts.enumerated() {
            let field = "mounts[\(index)] \(mount.destination)"
            let parsed = parseOptions(mount.options)
            for option in parsed.ignored { warn("\(field): option \(option) is not supported; ignored") }
            let type = mount.type ?? (parsed.bind ? "bind" : nil)
            guard let type else { throw ContainerError(step: "mounts", "\(field): no type and no bind option") }

            if type == "bind" || parsed.bind {
                guard var source = mount.source, !source.isEmpty else {
                    throw ContainerError(step: "mounts", "\(field): a bind mount needs a source")
                }
                if !source.hasPrefix("/") { source = baseDirectory + "/" + source }
                guard FileSystem.exists(source) else {
                    throw ContainerError(step: "mounts", "\(field): bind source \(source)", errno: .noSuchFileOrDirectory)
                }
                plan.append(PlannedMount(kind: .bind, source: source, target: mount.destination, flags: parsed.flags,
                                         recursive: parsed.recursive))
                continue
            }

            var fsType = type
            var data = parsed.data
            switch type {
            case "cgroup", "cgroup2":
                // A cgroup v1 tree cannot be shown through a cgroup namespace the way cgroup2 can.
                guard cgroupV2Only else {
                    warn("\(field): the host uses cgroup v1, which swiftlet does not mount inside containers; skipped")
                    continue
                }
                fsType = "cgroup2"
                data = nil
            case "devpts":
                // In a user namespace the gid= option must name a mapped group.
                if let options = data, userNamespace {
                    let kept = options.split(separator: ",").filter { option in
                        guard option.hasPrefix("gid="), let gid = UInt32(option.dropFirst(4)) else { return true }
                        if IDMapping.hostID(for: gid, in: spec.gidMappings) != nil { return true }
                        warn("\(field): \(option) is not mapped in the user namespace; dropped")
                        return false
                    }
                    data = kept.isEmpty ? nil : commaSeparated(kept)
                }
            default:
                break
            }
            plan.append(PlannedMount(kind: .filesystem, source: mount.source ?? fsType, target: mount.destination, fsType: fsType,
                                     flags: parsed.flags, data: data,
                                     sysfsFallbackBind: fsType == "sysfs" && userNamespace && !spec.namespaces.contains(.network)))
        }
        for device in devices {
            plan.append(PlannedMount(kind: .bind, source: "/dev/" + device, target: "/dev/" + device))
        }
        for (link, text) in symlinks {
            plan.append(PlannedMount(kind: .symlink, source: text, target: link))
        }
        for path in spec.maskedPaths { plan.append(PlannedMount(kind: .mask, source: nil, target: path)) }
        for path in spec.readonlyPaths { plan.append(PlannedMount(kind: .readonly, source: nil, target: path)) }
        return plan
    }
}
