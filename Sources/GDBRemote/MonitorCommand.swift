// MonitorCommand: the `monitor` commands the stub understands (gdb sends them as qRcmd), parsed from
// their text. The VMM carries them out (Sources/VMM/Machine+GDB.swift); `help` lists them from `all`.

public enum MonitorCommand: Equatable, Sendable {
    case help
    /// The exit table so far: the ExitTracer's counts and times by reason.
    case exits
    /// The last N VM exits, newest last.
    case lastExits(Int)
    /// A vCPU's state explained (nil: the one that stopped last): mode, privilege, segments, control
    /// registers, paging, what the backend can do for the debugger there.
    case explain(vcpu: Int?)
    /// The page walk for a guest-virtual address, level by level, with a vCPU's paging registers.
    case translate(UInt64, vcpu: Int?)
    /// A hex dump of guest-physical memory.
    case readPhysical(address: UInt64, length: Int)
    /// Bytes written to guest-physical memory.
    case writePhysical(address: UInt64, bytes: [UInt8])
    /// What works on this KVM backend (software and hardware breakpoints, single step, watchpoints).
    case backend
    /// Not a command; the text says why.
    case invalid(String)

    /// Name, arguments and one line of help, in the order `help` prints them.
    public static let all: [(name: String, arguments: String, help: String)] = [
        ("help", "", "this list"),
        ("exits", "", "the VM exits so far, by reason, with time in the guest and in the VMM (the table --trace-exits prints at the end)"),
        ("last-exits", "[N]", "the last N VM exits (default 20, at most \(lastExitsLimit)), oldest first"),
        ("explain", "[VCPU]", "a vCPU explained: CPU mode, privilege level, segments, control registers, paging, pending events, the instruction at RIP"),
        ("translate", "ADDRESS [VCPU]", "walk the guest's page tables for a guest-virtual address, entry by entry"),
        ("xp", "ADDRESS [LENGTH]", "hex dump of guest-physical memory (default 64 bytes, at most 4096)"),
        ("xp-write", "ADDRESS HEXBYTES", "write bytes to guest-physical memory, e.g. xp-write 0x1000 90cc"),
        ("backend", "", "what debugging this KVM backend supports and how Swiftlet provides it"),
    ]

    public static let lastExitsLimit = 256

    public static func parse(_ text: String) -> MonitorCommand {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        guard let name = words.first else { return .help }
        let arguments = Array(words.dropFirst())
        switch name {
        case "help", "?": return .help
        case "exits": return .exits
        case "last-exits":
            guard arguments.count <= 1 else { return .invalid("usage: last-exits [N]") }
            guard let n = arguments.first.map(number) ?? 20, n >= 1 else { return .invalid("last-exits: N must be a positive number") }
            return .lastExits(Int(min(n, UInt64(lastExitsLimit))))
        case "explain":
            guard arguments.count <= 1 else { return .invalid("usage: explain [VCPU]") }
            guard let vcpu = vcpuNumber(arguments.first) else { return .invalid("explain: VCPU must be a vCPU number (0, 1, ...)") }
            return .explain(vcpu: vcpu)
        case "translate":
            guard (1...2).contains(arguments.count), let address = number(arguments[0]) else { return .invalid("usage: translate ADDRESS [VCPU]") }
            guard let vcpu = vcpuNumber(arguments.dropFirst().first) else { return .invalid("translate: VCPU must be a vCPU number (0, 1, ...)") }
            return .translate(address, vcpu: vcpu)
        case "xp":
            guard (1...2).contains(arguments.count), let address = number(arguments[0]) else { return .invalid("usage: xp ADDRESS [LENGTH]") }
            let length = arguments.count == 2 ? number(arguments[1]) : 64
            guard let length, length >= 1, length <= 4096 else { return .invalid("xp: LENGTH must be 1 to 4096") }
            return .readPhysical(address: address, length: Int(length))
        case "xp-write":
            guard arguments.count == 2, let address = number(arguments[0]) else { return .invalid("usage: xp-write ADDRESS HEXBYTES") }
            var hex = Substring(arguments[1])
            if hex.hasPrefix("0x") { hex = hex.dropFirst(2) }
            guard let bytes = Hex.decode(Array(hex.utf8)), !bytes.isEmpty, bytes.count <= 4096 else {
                return .invalid("xp-write: HEXBYTES must be 1 to 4096 bytes as pairs of hex digits, e.g. 90cc")
            }
            return .writePhysical(address: address, bytes: bytes)
        case "backend": return .backend
        default: return .invalid("unknown monitor command '\(name)' (monitor help lists them)")
        }
    }

    /// An optional vCPU number argument: .some(nil) when absent, nil when it is not a number.
    static func vcpuNumber(_ text: String?) -> Int?? {
        guard let text else { return .some(nil) }
        guard let n = UInt64(text), n < 4096 else { return nil }
        return .some(Int(n))
    }

    /// 0x-prefixed hex or decimal, as gdb users type addresses.
    static func number(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return Hex.number(Array(text.utf8.dropFirst(2))) }
        return UInt64(text)
    }

    /// The help text.
    public static var helpText: String {
        var lines = ["Swiftlet gdb stub: monitor commands"]
        for command in all {
            let usage = command.arguments.isEmpty ? command.name : "\(command.name) \(command.arguments)"
            lines.append("  \(usage.padding(24)) \(command.help)")
        }
        lines.append("Addresses are hex with 0x or decimal. VCPU defaults to the vCPU that stopped last (gdb's thread N is vCPU N-1).")
        lines.append("Memory gdb reads (x, print) is guest-virtual: translated through the guest's page tables; xp is guest-physical.")
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
