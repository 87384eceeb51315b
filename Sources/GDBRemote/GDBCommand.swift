// GDBCommand: one packet payload from gdb, parsed into what it asks for (GDB manual, Appendix E.2 "Packets",
// E.4 "General Query Packets"). Only the packets gdb sends to a bare-metal x86-64 target are decoded; any
// other payload is `.unsupported`, which the session answers with the empty reply ("not supported", E.1).
// A payload that names a known packet but is malformed (bad hex, a missing comma, a number wider than
// 64 bits, a length beyond what the stub transfers) is `.malformed` with the reason, answered with an error.
// Parsing never traps, whatever the bytes: the fuzz target (fuzz/GDBPacketFuzzer.swift) holds it to that.

/// A thread as gdb names it (E.1 "thread-id"): a vCPU number (1-based), or -1 (all) or 0 (any).
public enum ThreadSelector: Equatable, Sendable {
    case all
    case any
    case thread(Int)

    /// "p1.2" (multiprocess form) or "2", "-1", "0"; nil when it is neither.
    static func parse<Bytes: Collection>(_ text: Bytes) -> ThreadSelector? where Bytes.Element == UInt8 {
        var digits = Array(text)
        if digits.first == UInt8(ascii: "p") {
            guard let dot = digits.firstIndex(of: UInt8(ascii: ".")) else { return .all } // "p1": every thread of process 1
            digits = Array(digits[(dot + 1)...])
        }
        if digits == Array("-1".utf8) { return .all }
        guard let value = Hex.number(digits), value <= UInt64(Int32.max) else { return nil }
        return value == 0 ? .any : .thread(Int(value))
    }
}

/// The breakpoint and watchpoint types of Z/z (E.2 "z type,addr,kind").
public enum BreakpointType: Int, Sendable, CaseIterable {
    case software = 0, hardware = 1, writeWatchpoint = 2, readWatchpoint = 3, accessWatchpoint = 4

    public var isWatchpoint: Bool { rawValue >= 2 }
}

public struct BreakpointRequest: Equatable, Sendable {
    public var type: BreakpointType
    /// A guest-virtual (linear) address.
    public var address: UInt64
    /// For breakpoints gdb's "kind" (1 on x86: the int3's length); for watchpoints the watched length in bytes.
    public var length: Int

    public init(type: BreakpointType, address: UInt64, length: Int) {
        self.type = type; self.address = address; self.length = length
    }
}

/// What one vCPU should do when the target resumes (vCont actions, E.2 "vCont").
public enum ResumeAction: Equatable, Sendable {
    case `continue`
    case step
    /// `t`: stay stopped.
    case stop
}

public enum GDBCommand: Equatable, Sendable {
    case querySupported(features: [String])
    case readFeatures(annex: String, offset: Int, length: Int)
    case readRegisters
    case writeRegisters([UInt8])
    case readRegister(Int)
    case writeRegister(Int, [UInt8])
    case readMemory(address: UInt64, length: Int)
    case writeMemory(address: UInt64, bytes: [UInt8])
    case insertBreakpoint(BreakpointRequest)
    case removeBreakpoint(BreakpointRequest)
    /// `c [addr]`, `C sig[;addr]`: resume every vCPU (the address, when given, is where the selected one resumes).
    case `continue`(address: UInt64?)
    /// `s [addr]`, `S sig[;addr]`: step the selected vCPU.
    case step(address: UInt64?)
    case vContQuery
    /// `vCont;action[:thread]...`: the actions in the order given (the first that names a thread wins for it).
    case vCont([(action: ResumeAction, thread: ThreadSelector)])
    case stopReason
    /// `Hg` (registers and memory) or `Hc` (resumption) thread selection.
    case setThread(forRegisters: Bool, ThreadSelector)
    case threadAlive(ThreadSelector)
    case firstThreadInfo
    case subsequentThreadInfo
    case currentThread
    case threadExtraInfo(ThreadSelector)
    case attached
    /// `qRcmd,hex`: the text of a `monitor` command.
    case monitor(String)
    case startNoAckMode
    case detach
    case kill
    /// A known packet with a bad argument: the reason, for the error reply and the log.
    case malformed(String)
    /// Anything else: answered with the empty packet.
    case unsupported

    public static func == (a: GDBCommand, b: GDBCommand) -> Bool {
        switch (a, b) {
        case let (.vCont(x), .vCont(y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.action == $1.action && $0.thread == $1.thread }
        case let (.querySupported(x), .querySupported(y)): x == y
        case let (.readFeatures(a1, o1, l1), .readFeatures(a2, o2, l2)): a1 == a2 && o1 == o2 && l1 == l2
        case (.readRegisters, .readRegisters), (.vContQuery, .vContQuery), (.stopReason, .stopReason),
             (.firstThreadInfo, .firstThreadInfo), (.subsequentThreadInfo, .subsequentThreadInfo),
             (.currentThread, .currentThread), (.attached, .attached), (.startNoAckMode, .startNoAckMode),
             (.detach, .detach), (.kill, .kill), (.unsupported, .unsupported):
            true
        case let (.writeRegisters(x), .writeRegisters(y)): x == y
        case let (.readRegister(x), .readRegister(y)): x == y
        case let (.writeRegister(n1, v1), .writeRegister(n2, v2)): n1 == n2 && v1 == v2
        case let (.readMemory(a1, l1), .readMemory(a2, l2)): a1 == a2 && l1 == l2
        case let (.writeMemory(a1, b1), .writeMemory(a2, b2)): a1 == a2 && b1 == b2
        case let (.insertBreakpoint(x), .insertBreakpoint(y)), let (.removeBreakpoint(x), .removeBreakpoint(y)): x == y
        case let (.continue(x), .continue(y)), let (.step(x), .step(y)): x == y
        case let (.setThread(r1, t1), .setThread(r2, t2)): r1 == r2 && t1 == t2
        case let (.threadAlive(x), .threadAlive(y)), let (.threadExtraInfo(x), .threadExtraInfo(y)): x == y
        case let (.monitor(x), .monitor(y)), let (.malformed(x), .malformed(y)): x == y
        default: false
        }
    }
}

extension GDBCommand {
    /// Parses one packet payload (escapes not yet undone, as PacketDecoder delivers it).
    public static func parse(_ payload: [UInt8]) -> GDBCommand {
        guard let first = payload.first else { return .unsupported }
        let rest = payload.dropFirst()
        switch first {
        case UInt8(ascii: "?"): return .stopReason
        case UInt8(ascii: "g"): return rest.isEmpty ? .readRegisters : .unsupported
        case UInt8(ascii: "G"):
            guard let bytes = Hex.decode(rest) else { return .malformed("G: register data is not hex") }
            return .writeRegisters(bytes)
        case UInt8(ascii: "p"):
            guard let n = Hex.number(rest), n < 4096 else { return .malformed("p: bad register number") }
            return .readRegister(Int(n))
        case UInt8(ascii: "P"):
            let (number, value) = split(rest, at: UInt8(ascii: "="))
            guard let n = Hex.number(number), n < 4096, let value, let bytes = Hex.decode(value) else {
                return .malformed("P: expected P<register>=<hex value>")
            }
            return .writeRegister(Int(n), bytes)
        case UInt8(ascii: "m"):
            guard let (address, length) = addressAndLength(rest) else { return .malformed("m: expected m<address>,<length>") }
            return .readMemory(address: address, length: length)
        case UInt8(ascii: "M"):
            let (head, data) = split(rest, at: UInt8(ascii: ":"))
            guard let (address, length) = addressAndLength(head), let data, let bytes = Hex.decode(data) else {
                return .malformed("M: expected M<address>,<length>:<hex bytes>")
            }
            guard bytes.count == length else { return .malformed("M: \(length) bytes announced, \(bytes.count) given") }
            return .writeMemory(address: address, bytes: bytes)
        case UInt8(ascii: "X"):
            let (head, data) = split(rest, at: UInt8(ascii: ":"))
            guard let (address, length) = addressAndLength(head), let data, let bytes = PacketDecoder.unescape(data) else {
                return .malformed("X: expected X<address>,<length>:<binary>")
            }
            guard bytes.count == length else { return .malformed("X: \(length) bytes announced, \(bytes.count) given") }
            return .writeMemory(address: address, bytes: bytes)
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard let request = breakpoint(rest) else { return .malformed("Z/z: expected Z<type>,<address>,<kind>") }
            return first == UInt8(ascii: "Z") ? .insertBreakpoint(request) : .removeBreakpoint(request)
        case UInt8(ascii: "c"), UInt8(ascii: "s"):
            var address: UInt64? = nil
            if !rest.isEmpty {
                guard let a = Hex.number(rest) else { return .malformed("\(Character(Unicode.Scalar(first))): bad address") }
                address = a
            }
            return first == UInt8(ascii: "c") ? .continue(address: address) : .step(address: address)
        case UInt8(ascii: "C"), UInt8(ascii: "S"):
            // The signal is not delivered (a VM has no signals); the optional address is honoured.
            let (signal, addressText) = split(rest, at: UInt8(ascii: ";"))
            guard Hex.number(signal) != nil else { return .malformed("C/S: bad signal number") }
            var address: UInt64? = nil
            if let addressText {
                guard let a = Hex.number(addressText) else { return .malformed("C/S: bad address") }
                address = a
            }
            return first == UInt8(ascii: "C") ? .continue(address: address) : .step(address: address)
        case UInt8(ascii: "H"):
            guard let op = rest.first, op == UInt8(ascii: "g") || op == UInt8(ascii: "c"),
                  let thread = ThreadSelector.parse(rest.dropFirst()) else { return .malformed("H: expected Hg<thread> or Hc<thread>") }
            return .setThread(forRegisters: op == UInt8(ascii: "g"), thread)
        case UInt8(ascii: "T"):
            guard let thread = ThreadSelector.parse(rest) else { return .malformed("T: bad thread id") }
            return .threadAlive(thread)
        case UInt8(ascii: "D"): return .detach
        case UInt8(ascii: "k"): return .kill
        case UInt8(ascii: "q"), UInt8(ascii: "Q"): return query(payload)
        case UInt8(ascii: "v"): return verbose(payload)
        default: return .unsupported
        }
    }

    static func query(_ payload: [UInt8]) -> GDBCommand {
        let text = payload
        if text == Array("qC".utf8) { return .currentThread }
        if text == Array("qfThreadInfo".utf8) { return .firstThreadInfo }
        if text == Array("qsThreadInfo".utf8) { return .subsequentThreadInfo }
        if text == Array("qAttached".utf8) || starts(text, "qAttached:") { return .attached }
        if text == Array("QStartNoAckMode".utf8) { return .startNoAckMode }
        if starts(text, "qSupported") {
            let list = text.dropFirst("qSupported".utf8.count).drop { $0 == UInt8(ascii: ":") }
            let features = list.split(separator: UInt8(ascii: ";")).map { String(decoding: $0, as: UTF8.self) }
            return .querySupported(features: features)
        }
        if starts(text, "qThreadExtraInfo,") {
            guard let thread = ThreadSelector.parse(text.dropFirst("qThreadExtraInfo,".utf8.count)) else {
                return .malformed("qThreadExtraInfo: bad thread id")
            }
            return .threadExtraInfo(thread)
        }
        if starts(text, "qRcmd,") {
            guard let bytes = Hex.decode(text.dropFirst("qRcmd,".utf8.count)) else { return .malformed("qRcmd: command is not hex") }
            return .monitor(String(decoding: bytes, as: UTF8.self))
        }
        if starts(text, "qXfer:features:read:") {
            let rest = text.dropFirst("qXfer:features:read:".utf8.count)
            let (annex, range) = split(rest, at: UInt8(ascii: ":"))
            guard let range, let (offset, length) = offsetAndLength(range) else {
                return .malformed("qXfer:features:read: expected <annex>:<offset>,<length>")
            }
            return .readFeatures(annex: String(decoding: annex, as: UTF8.self), offset: offset, length: length)
        }
        return .unsupported
    }

    static func verbose(_ payload: [UInt8]) -> GDBCommand {
        if payload == Array("vCont?".utf8) { return .vContQuery }
        guard starts(payload, "vCont;") else { return .unsupported }
        var actions: [(action: ResumeAction, thread: ThreadSelector)] = []
        for item in payload.dropFirst("vCont;".utf8.count).split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false) {
            let (head, threadText) = split(item, at: UInt8(ascii: ":"))
            guard let letter = head.first else { return .malformed("vCont: empty action") }
            let action: ResumeAction
            switch letter {
            case UInt8(ascii: "c"): action = .continue
            case UInt8(ascii: "s"): action = .step
            case UInt8(ascii: "t"): action = .stop
            case UInt8(ascii: "C"), UInt8(ascii: "S"):
                guard Hex.number(head.dropFirst()) != nil else { return .malformed("vCont: bad signal in \(String(decoding: head, as: UTF8.self))") }
                action = letter == UInt8(ascii: "C") ? .continue : .step
            default:
                return .malformed("vCont: unsupported action '\(String(decoding: head, as: UTF8.self))'")
            }
            if letter == UInt8(ascii: "c") || letter == UInt8(ascii: "s") || letter == UInt8(ascii: "t"), head.count != 1 {
                return .malformed("vCont: unsupported action '\(String(decoding: head, as: UTF8.self))'")
            }
            var thread = ThreadSelector.all
            if let threadText {
                guard let t = ThreadSelector.parse(threadText) else { return .malformed("vCont: bad thread id") }
                thread = t
            }
            actions.append((action, thread))
        }
        guard !actions.isEmpty, actions.count <= 4096 else { return .malformed("vCont: no actions") }
        return .vCont(actions)
    }

    // MARK: Pieces

    static func starts<Bytes: Collection>(_ bytes: Bytes, _ prefix: String) -> Bool where Bytes.Element == UInt8 {
        bytes.starts(with: prefix.utf8)
    }

    /// The bytes before the first `separator` and, if there was one, those after it.
    static func split<Bytes: Collection>(_ bytes: Bytes, at separator: UInt8) -> (Bytes.SubSequence, Bytes.SubSequence?) where Bytes.Element == UInt8 {
        guard let index = bytes.firstIndex(of: separator) else { return (bytes[...], nil) }
        return (bytes[..<index], bytes[bytes.index(after: index)...])
    }

    /// "address,length" in hex; the length may not exceed 2^31 (the stub clamps what it transfers).
    static func addressAndLength<Bytes: Collection>(_ bytes: Bytes) -> (UInt64, Int)? where Bytes.Element == UInt8 {
        let (addressText, lengthText) = split(bytes, at: UInt8(ascii: ","))
        guard let lengthText, let address = Hex.number(addressText), let length = Hex.number(lengthText),
              length <= UInt64(Int32.max) else { return nil }
        return (address, Int(length))
    }

    static func offsetAndLength<Bytes: Collection>(_ bytes: Bytes) -> (Int, Int)? where Bytes.Element == UInt8 {
        guard let (offset, length) = addressAndLength(bytes), offset <= UInt64(Int32.max) else { return nil }
        return (Int(offset), length)
    }

    /// "type,address,kind" with optional ";cond..." after it (ignored: conditions are not offered).
    static func breakpoint<Bytes: Collection>(_ bytes: Bytes) -> BreakpointRequest? where Bytes.Element == UInt8 {
        let (head, _) = split(bytes, at: UInt8(ascii: ";"))
        let fields = head.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard fields.count == 3, let typeNumber = Hex.number(fields[0]), typeNumber <= 4, let type = BreakpointType(rawValue: Int(typeNumber)),
              let address = Hex.number(fields[1]), let kind = Hex.number(fields[2]), kind <= 4096 else { return nil }
        return BreakpointRequest(type: type, address: address, length: Int(kind))
    }
}
