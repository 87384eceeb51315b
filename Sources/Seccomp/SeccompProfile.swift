// SeccompProfile: a seccomp policy as data (a default action, the architectures it covers, rules with
// actions and argument checks) and the vocabulary it is written in, the one libseccomp and the OCI runtime
// spec use (config-linux.md, "Seccomp": SCMP_ACT_*, SCMP_ARCH_*, SCMP_CMP_*). Both sides of Swiftlet
// write their policies in it: the container launcher (Docker's default profile, or a config.json's
// `linux.seccomp`) and the VMM (one allowlist per thread). SeccompCompiler.swift turns a profile into the
// classic BPF program the kernel runs (Documentation/userspace-api/seccomp_filter.rst).
import CLinux

/// What a filter answers for a call (the SECCOMP_RET_* values of <linux/seccomp.h>).
public enum SeccompAction: Hashable, Sendable, CustomStringConvertible {
    case allow
    /// The call fails with this errno without running.
    case errno(UInt16)
    case killProcess
    case killThread
    /// SIGSYS to the thread (a handler can report it).
    case trap
    /// A ptrace tracer is told, with this value; without one the call fails with ENOSYS.
    case trace(UInt16)
    /// Allowed and logged by the kernel.
    case log

    /// The 32-bit value a BPF `ret` gives the kernel.
    public var returnValue: UInt32 {
        switch self {
        case .allow: 0x7fff_0000
        case .errno(let value): 0x0005_0000 | UInt32(value)
        case .killProcess: 0x8000_0000
        case .killThread: 0x0000_0000
        case .trap: 0x0003_0000
        case .trace(let value): 0x7ff0_0000 | UInt32(value)
        case .log: 0x7ffc_0000
        }
    }

    /// The action a return value stands for (its data bits kept for errno and trace).
    public init?(returnValue: UInt32) {
        let data = UInt16(truncatingIfNeeded: returnValue)
        switch returnValue & 0xffff_0000 {
        case 0x7fff_0000: self = .allow
        case 0x0005_0000: self = .errno(data)
        case 0x8000_0000: self = .killProcess
        case 0x0000_0000: self = .killThread
        case 0x0003_0000: self = .trap
        case 0x7ff0_0000: self = .trace(data)
        case 0x7ffc_0000: self = .log
        default: return nil
        }
    }

    /// The OCI name with its `errnoRet`: SCMP_ACT_ERRNO without one is EPERM, SCMP_ACT_TRACE without
    /// one is 0 (as in runc and crun). SCMP_ACT_NOTIFY needs a listener (`listenerPath`) Swiftlet does not
    /// run, and is refused.
    public init(ociName: String, errnoRet: UInt32?) throws(SeccompError) {
        if let errnoRet, errnoRet > 0xffff { throw .badValue("errnoRet \(errnoRet) is larger than 65535") }
        switch ociName {
        case "SCMP_ACT_ALLOW": self = .allow
        case "SCMP_ACT_ERRNO": self = .errno(UInt16(errnoRet ?? 1))
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": self = .killThread
        case "SCMP_ACT_KILL_PROCESS": self = .killProcess
        case "SCMP_ACT_TRAP": self = .trap
        case "SCMP_ACT_TRACE": self = .trace(UInt16(errnoRet ?? 0))
        case "SCMP_ACT_LOG": self = .log
        case "SCMP_ACT_NOTIFY":
            throw .unsupported("SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath); Swiftlet does not run one: use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS")
        default: throw .badValue("unknown action \(ociName) (SCMP_ACT_ALLOW, ERRNO, KILL, KILL_THREAD, KILL_PROCESS, TRAP, TRACE, LOG)")
        }
    }

    public var description: String {
        switch self {
        case .allow: "allow"
        case .errno(let value): "errno \(value)"
        case .killProcess: "kill process"
        case .killThread: "kill thread"
        case .trap: "trap (SIGSYS)"
        case .trace(let value): "trace \(value)"
        case .log: "log"
        }
    }
}

/// A system call ABI a filter on an x86_64 kernel sees, by its AUDIT_ARCH value and the x32 bit.
public enum SeccompArchitecture: String, CaseIterable, Hashable, Sendable {
    case x86_64 = "SCMP_ARCH_X86_64"
    case x86 = "SCMP_ARCH_X86"
    case x32 = "SCMP_ARCH_X32"

    /// `seccomp_data.arch`: x32 calls arrive as AUDIT_ARCH_X86_64 with __X32_SYSCALL_BIT in the number.
    public var auditArch: UInt32 { self == .x86 ? 0x4000_0003 : 0xC000_003E }
    /// The column of syscall_table.h.
    var abi: Int32 { switch self { case .x86_64: Int32(SL_ABI_X86_64); case .x86: Int32(SL_ABI_I386); case .x32: Int32(SL_ABI_X32) } }

    /// The number of `name` in this ABI, or nil when the call does not exist there.
    public func number(of name: String) -> UInt32? {
        guard let numbers = Self.table[name] else { return nil }
        let number = numbers[Int(abi)]
        return number < 0 ? nil : UInt32(number)
    }

    /// syscall_table.h as a dictionary, built once: name -> number in each ABI (-1: absent).
    private static let table: [String: [Int]] = {
        var table: [String: [Int]] = [:]
        for index in 0..<sl_syscall_count() {
            guard let raw = sl_syscall_name_at(index) else { continue }
            let name = String(cString: raw)
            table[name] = (0..<3).map { sl_syscall_number_at(index, Int32($0)) }
        }
        return table
    }()

    /// The name of call `number` in this ABI.
    public func name(of number: UInt32) -> String? {
        sl_syscall_name_in(Int(number), abi).map { String(cString: $0) }
    }

    /// The ABI of this build (the VMM's and the launcher's own calls).
    public static let native = SeccompArchitecture.x86_64

    /// Every call name the table knows (all ABIs).
    public static var allNames: [String] {
        (0..<sl_syscall_count()).compactMap { sl_syscall_name_at($0).map { String(cString: $0) } }
    }
}

/// A check on one 64-bit argument of a call (OCI `syscalls[].args[]`).
public struct SeccompArgument: Hashable, Sendable, CustomStringConvertible {
    public enum Comparison: String, Hashable, Sendable {
        case notEqual = "SCMP_CMP_NE", lessThan = "SCMP_CMP_LT", lessOrEqual = "SCMP_CMP_LE", equal = "SCMP_CMP_EQ"
        case greaterOrEqual = "SCMP_CMP_GE", greaterThan = "SCMP_CMP_GT", maskedEqual = "SCMP_CMP_MASKED_EQ"
    }

    /// 0...5.
    public var index: Int
    public var comparison: Comparison
    /// The value compared with; for maskedEqual the mask (OCI `value`), as in libseccomp.
    public var value: UInt64
    /// maskedEqual only: what `argument & value` must equal (OCI `valueTwo`).
    public var valueTwo: UInt64

    public init(index: Int, _ comparison: Comparison, _ value: UInt64, valueTwo: UInt64 = 0) throws(SeccompError) {
        guard (0...5).contains(index) else { throw .badValue("argument index \(index) is outside 0...5") }
        self.index = index
        self.comparison = comparison
        self.value = value
        self.valueTwo = valueTwo
    }

    /// Whether a call's argument passes the check (the reference the compiled program must agree with).
    public func matches(_ argument: UInt64) -> Bool {
        switch comparison {
        case .notEqual: argument != value
        case .lessThan: argument < value
        case .lessOrEqual: argument <= value
        case .equal: argument == value
        case .greaterOrEqual: argument >= value
        case .greaterThan: argument > value
        case .maskedEqual: argument & value == valueTwo
        }
    }

    public var description: String {
        let hex = "0x" + String(value, radix: 16)
        switch comparison {
        case .notEqual: return "arg\(index) != \(hex)"
        case .lessThan: return "arg\(index) < \(hex)"
        case .lessOrEqual: return "arg\(index) <= \(hex)"
        case .equal: return "arg\(index) == \(hex)"
        case .greaterOrEqual: return "arg\(index) >= \(hex)"
        case .greaterThan: return "arg\(index) > \(hex)"
        case .maskedEqual: return "arg\(index) & \(hex) == 0x" + String(valueTwo, radix: 16)
        }
    }
}

/// Calls that get `action` when every argument check passes (an empty list always passes).
public struct SeccompRule: Hashable, Sendable {
    public var names: [String]
    public var action: SeccompAction
    public var arguments: [SeccompArgument]

    public init(_ names: [String], _ action: SeccompAction, arguments: [SeccompArgument] = []) {
        self.names = names
        self.action = action
        self.arguments = arguments
    }
}

/// A whole policy. For one call the first rule (in order) whose checks pass decides; none: `defaultAction`.
/// A call from an ABI not in `architectures` gets `badArchitectureAction`, as libseccomp's filters do.
public struct SeccompProfile: Hashable, Sendable {
    public var defaultAction: SeccompAction
    public var architectures: [SeccompArchitecture]
    public var rules: [SeccompRule]
    public var badArchitectureAction: SeccompAction

    public init(defaultAction: SeccompAction, architectures: [SeccompArchitecture] = [.native], rules: [SeccompRule],
                badArchitectureAction: SeccompAction = .killProcess) {
        self.defaultAction = defaultAction
        self.architectures = architectures
        self.rules = rules
        self.badArchitectureAction = badArchitectureAction
    }

    /// What the profile answers for a call, without compiling: the reference the program is tested against.
    public func decision(for name: String, arguments: [UInt64] = []) -> SeccompAction {
        for rule in rules where rule.names.contains(name) {
            if rule.arguments.allSatisfy({ $0.matches($0.index < arguments.count ? arguments[$0.index] : 0) }) {
                return rule.action
            }
        }
        return defaultAction
    }

    /// Names the profile mentions that no x86 ABI has (a profile written for another architecture, a typo).
    public var unknownNames: [String] {
        var seen = Set<String>()
        return rules.flatMap(\.names).filter { name in
            seen.insert(name).inserted && SeccompArchitecture.allCases.allSatisfy { $0.number(of: name) == nil }
        }
    }
}

/// A profile that cannot be compiled or read, in one line.
public enum SeccompError: Error, Equatable, CustomStringConvertible {
    case badValue(String)
    case unsupported(String)
    case tooLarge(instructions: Int)

    public var description: String {
        switch self {
        case .badValue(let text), .unsupported(let text): text
        case .tooLarge(let count): "the seccomp program would be \(count) instructions; the kernel takes at most 4096"
        }
    }
}
