// DeviceRule: which device nodes a container may create (mknod) and open, as OCI's
// linux.resources.devices says (runtime-spec config-linux.md, "Allowed Device Cgroup": allow, type
// a/c/b, major, minor, access r/w/m), and the list the launcher enforces: deny everything, the spec's own
// rules in order, then the devices every container has (the runtime spec's "Default Devices": null, zero,
// full, random, urandom, tty, console, ptmx, and the pseudo-terminals of /dev/pts), as runc and crun
// append them. Without it, a container granted CAP_MKNOD (Docker grants it by default) and no user
// namespace could mknod c 10:232 and open the host's /dev/kvm.
//
// Enforced through the container's cgroup (ContainerCgroup): on cgroup v1 by the devices controller,
// writing each rule to devices.deny or devices.allow in order (Documentation/admin-guide/cgroup-v1/
// devices.rst; a deny there removes an allow of exactly the same devices, the kernel's semantics), on
// cgroup v2 by a BPF_PROG_TYPE_CGROUP_DEVICE program in which the last matching rule decides
// (CLinux's device_filter.c).
import CLinux

public struct DeviceRule: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Every device ("a"): major and minor do not apply.
        case all = "a"
        case char = "c"
        case block = "b"
    }

    public var allow: Bool
    public var kind: Kind
    /// nil: any major (OCI leaves it out, devices.allow writes "*").
    public var major: Int64?
    public var minor: Int64?
    /// A subset of "rwm": read, write, mknod.
    public var access: String

    public init(allow: Bool, kind: Kind = .all, major: Int64? = nil, minor: Int64? = nil, access: String = "rwm") {
        self.allow = allow
        self.kind = kind
        self.major = major
        self.minor = minor
        self.access = access
    }

    /// What devices.allow and devices.deny take: "a", "c 1:3 rwm", "c 136:* rwm".
    public var cgroupV1Line: String {
        if kind == .all { return "a" }
        return "\(kind.rawValue) \(major.map(String.init) ?? "*"):\(minor.map(String.init) ?? "*") \(access)"
    }

    public var description: String { "\(allow ? "allow" : "deny") \(cgroupV1Line)\(kind == .all ? " \(access)" : "")" }

    /// The rule for CLinux's BPF program (access bits: m = 1, r = 2, w = 4, as BPF_DEVCG_ACC_*).
    var cRule: sl_device_rule {
        var bits: UInt32 = 0
        for c in access {
            switch c {
            case "m": bits |= 1
            case "r": bits |= 2
            case "w": bits |= 4
            default: break
            }
        }
        return sl_device_rule(allow: allow ? 1 : 0, type: Int32(kind.rawValue.utf8.first!), major: major ?? -1, minor: minor ?? -1, access: bits)
    }

    /// The devices every container may use, after the spec's own rules: the OCI runtime spec's default
    /// devices and /dev/pts (runc's AllowedDevices without the long-gone tun, crun's default list).
    public static let defaults: [DeviceRule] = [
        DeviceRule(allow: true, kind: .char, major: 1, minor: 3),   // /dev/null
        DeviceRule(allow: true, kind: .char, major: 1, minor: 5),   // /dev/zero
        DeviceRule(allow: true, kind: .char, major: 1, minor: 7),   // /dev/full
        DeviceRule(allow: true, kind: .char, major: 1, minor: 8),   // /dev/random
        DeviceRule(allow: true, kind: .char, major: 1, minor: 9),   // /dev/urandom
        DeviceRule(allow: true, kind: .char, major: 5, minor: 0),   // /dev/tty
        DeviceRule(allow: true, kind: .char, major: 5, minor: 1),   // /dev/console
        DeviceRule(allow: true, kind: .char, major: 5, minor: 2),   // /dev/ptmx
        DeviceRule(allow: true, kind: .char, major: 136, minor: nil), // /dev/pts/*
    ]

    /// The rules enforced for a spec that lists `rules`: deny all, the spec's rules, the defaults.
    public static func effective(_ rules: [DeviceRule]) -> [DeviceRule] {
        [DeviceRule(allow: false)] + rules + defaults
    }

    /// Whether the last rule of `rules` that matches a request for `access` to device `kind` major:minor
    /// allows it (the BPF program's reading; none matching denies).
    public static func allows(_ rules: [DeviceRule], kind: Kind, major: Int64, minor: Int64, access: String) -> Bool {
        for rule in rules.reversed() {
            if rule.kind != .all && rule.kind != kind { continue }
            if !access.allSatisfy(rule.access.contains) { continue }
            if let m = rule.major, m != major { continue }
            if let m = rule.minor, m != minor { continue }
            return rule.allow
        }
        return false
    }
}
