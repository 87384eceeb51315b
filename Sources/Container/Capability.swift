// Capability: the Linux capabilities by number and name (capabilities(7)), and sets of them as the
// 64-bit masks capset(2) and /proc/PID/status use. The OCI default set is the one `crun spec` and
// `runc spec` write: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE.

/// One capability, numbered as in <linux/capability.h>.
public struct Capability: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let number: Int

    public init?(number: Int) {
        guard Capability.names.indices.contains(number) else { return nil }
        self.number = number
    }

    /// Accepts "CAP_KILL", "cap_kill" or "KILL".
    public init?(name: String) {
        var upper = name.uppercased()
        if !upper.hasPrefix("CAP_") { upper = "CAP_" + upper }
        guard let number = Capability.names.firstIndex(of: upper) else { return nil }
        self.number = number
    }

    public var name: String { Capability.names[number] }
    public var description: String { name }
    public static func < (a: Capability, b: Capability) -> Bool { a.number < b.number }

    static let names = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    public static let kill = Capability(number: 5)!
    public static let netBindService = Capability(number: 10)!
    public static let sysModule = Capability(number: 16)!
    public static let sysRawIO = Capability(number: 17)!
    public static let sysPtrace = Capability(number: 19)!
    public static let sysPacct = Capability(number: 20)!
    public static let sysAdmin = Capability(number: 21)!
    public static let sysBoot = Capability(number: 22)!
    public static let sysTime = Capability(number: 25)!
    public static let auditWrite = Capability(number: 29)!
    public static let syslog = Capability(number: 34)!
    public static let dacReadSearch = Capability(number: 2)!
    public static let perfmon = Capability(number: 38)!
    public static let bpf = Capability(number: 39)!
}

/// A set of capabilities as a bit mask (bit N = capability N).
public struct CapabilitySet: Hashable, Sendable, SetAlgebra, CustomStringConvertible {
    public var mask: UInt64

    public init() { mask = 0 }
    public init(mask: UInt64) { self.mask = mask }
    public init<S: Sequence>(_ sequence: S) where S.Element == Capability {
        mask = 0
        for capability in sequence { insert(capability) }
    }

    /// CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE: what `crun spec` writes; CapEff 0000000020000420.
    public static let ociDefault = CapabilitySet([.auditWrite, .kill, .netBindService])

    public var capabilities: [Capability] { (0..<64).compactMap { mask & (1 << $0) != 0 ? Capability(number: $0) : nil } }
    public var names: [String] { capabilities.map(\.name) }
    /// As /proc/PID/status prints it: 16 hex digits.
    public var hex: String {
        let digits = String(mask, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
    public var description: String { names.joined(separator: ",") }

    public func contains(_ member: Capability) -> Bool { mask & (1 << UInt64(member.number)) != 0 }
    public func union(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(mask: mask | other.mask) }
    public func intersection(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(mask: mask & other.mask) }
    public func symmetricDifference(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(mask: mask ^ other.mask) }
    @discardableResult
    public mutating func insert(_ member: Capability) -> (inserted: Bool, memberAfterInsert: Capability) {
        let had = contains(member)
        mask |= 1 << UInt64(member.number)
        return (!had, member)
    }
    @discardableResult
    public mutating func remove(_ member: Capability) -> Capability? {
        let had = contains(member)
        mask &= ~(1 << UInt64(member.number))
        return had ? member : nil
    }
    @discardableResult
    public mutating func update(with member: Capability) -> Capability? {
        let had = contains(member)
        insert(member)
        return had ? member : nil
    }
    public mutating func formUnion(_ other: CapabilitySet) { mask |= other.mask }
    public mutating func formIntersection(_ other: CapabilitySet) { mask &= other.mask }
    public mutating func formSymmetricDifference(_ other: CapabilitySet) { mask ^= other.mask }
}
