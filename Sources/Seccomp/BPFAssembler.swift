// BPFAssembler: the few classic BPF instructions a seccomp filter needs (linux/filter.h, linux/bpf_common.h),
// with forward labels resolved to the 8-bit offsets of conditional jumps; and BPFInterpreter, which runs a
// program on one call as the kernel's seccomp does.
import CLinux

struct BPFAssembler {
    struct Label: Hashable { let id: Int }

    // Opcodes: class | size/op | source (linux/bpf_common.h).
    static let ldAbsW: UInt16 = 0x20    // BPF_LD | BPF_W | BPF_ABS
    static let andK: UInt16 = 0x54      // BPF_ALU | BPF_AND | BPF_K
    static let ja: UInt16 = 0x05        // BPF_JMP | BPF_JA
    static let jeqK: UInt16 = 0x15      // BPF_JMP | BPF_JEQ | BPF_K
    static let jgtK: UInt16 = 0x25      // BPF_JMP | BPF_JGT | BPF_K
    static let jgeK: UInt16 = 0x35      // BPF_JMP | BPF_JGE | BPF_K
    static let jsetK: UInt16 = 0x45     // BPF_JMP | BPF_JSET | BPF_K
    static let retK: UInt16 = 0x06      // BPF_RET | BPF_K

    private enum Target { case none, label(Label), skip(UInt8) }
    private struct Pending { var code: UInt16; var k: UInt32; var whenTrue: Target; var whenFalse: Target }

    private var instructions: [Pending] = []
    private var positions: [Label: Int] = [:]
    private var labels = 0

    mutating func newLabel() -> Label { labels += 1; return Label(id: labels) }
    mutating func place(_ label: Label) { positions[label] = instructions.count }

    mutating func load(_ offset: UInt32) { instructions.append(Pending(code: Self.ldAbsW, k: offset, whenTrue: .none, whenFalse: .none)) }
    mutating func and(_ mask: UInt32) { instructions.append(Pending(code: Self.andK, k: mask, whenTrue: .none, whenFalse: .none)) }
    mutating func ret(_ value: UInt32) { instructions.append(Pending(code: Self.retK, k: value, whenTrue: .none, whenFalse: .none)) }
    mutating func jump(to label: Label) { instructions.append(Pending(code: Self.ja, k: 0, whenTrue: .label(label), whenFalse: .none)) }
    mutating func jumpIfEqual(_ k: UInt32, to label: Label) { conditional(Self.jeqK, k, .label(label), .skip(0)) }
    mutating func jumpIfNotEqual(_ k: UInt32, to label: Label) { conditional(Self.jeqK, k, .skip(0), .label(label)) }
    mutating func jumpIfGreater(_ k: UInt32, to label: Label) { conditional(Self.jgtK, k, .label(label), .skip(0)) }
    mutating func jumpIfGreaterOrEqual(_ k: UInt32, to label: Label) { conditional(Self.jgeK, k, .label(label), .skip(0)) }
    /// `if A == k` to a label any distance ahead (a conditional skip over a `ja`, whose offset is 32-bit).
    mutating func jumpFarIfEqual(_ k: UInt32, to label: Label) {
        conditional(Self.jeqK, k, .skip(0), .skip(1))
        jump(to: label)
    }
    /// `if A >= k` to a label any distance ahead.
    mutating func jumpFarIfGreaterOrEqual(_ k: UInt32, to label: Label) {
        conditional(Self.jgeK, k, .skip(0), .skip(1))
        jump(to: label)
    }
    /// `if A >= k { return value }`.
    mutating func jumpIfGreaterOrEqual(_ k: UInt32, return value: UInt32) {
        conditional(Self.jgeK, k, .skip(0), .skip(1))
        ret(value)
    }

    private mutating func conditional(_ code: UInt16, _ k: UInt32, _ whenTrue: Target, _ whenFalse: Target) {
        instructions.append(Pending(code: code, k: k, whenTrue: whenTrue, whenFalse: whenFalse))
    }

    /// The program with every label resolved; a conditional jump further than 255 instructions is refused.
    func assemble() throws(SeccompError) -> [sock_filter] {
        var program: [sock_filter] = []
        program.reserveCapacity(instructions.count)
        for (index, instruction) in instructions.enumerated() {
            func offset(_ target: Target) throws(SeccompError) -> Int {
                switch target {
                case .none: return 0
                case .skip(let n): return Int(n)
                case .label(let label):
                    guard let position = positions[label], position > index else {
                        throw .badValue("internal: a BPF jump to an unplaced or backward label")
                    }
                    return position - index - 1
                }
            }
            if instruction.code == Self.ja {
                program.append(sock_filter(code: Self.ja, jt: 0, jf: 0, k: UInt32(try offset(instruction.whenTrue))))
                continue
            }
            let jt = try offset(instruction.whenTrue), jf = try offset(instruction.whenFalse)
            guard jt <= 255, jf <= 255 else {
                throw .unsupported("a seccomp rule set too long for one call (a jump of \(max(jt, jf)) instructions; at most 255)")
            }
            program.append(sock_filter(code: instruction.code, jt: UInt8(jt), jf: UInt8(jf), k: instruction.k))
        }
        return program
    }
}

/// Runs a seccomp BPF program on one call, as the kernel does (the opcodes BPFAssembler emits, plus JSET).
public struct BPFInterpreter: Sendable {
    public let program: [sock_filter]

    public init(program: [sock_filter]) { self.program = program }

    /// The filter's return value for call `nr` of `arch` with `arguments` (missing ones are 0);
    /// nil when the program is malformed (an unknown opcode, a jump or a fall past the end).
    public func run(nr: UInt32, arch: UInt32 = SeccompArchitecture.native.auditArch, arguments: [UInt64] = []) -> UInt32? {
        var accumulator: UInt32 = 0
        var pc = 0
        func load(_ offset: UInt32) -> UInt32 {
            switch offset {
            case 0: return nr
            case 4: return arch
            case 16..<64 where offset % 4 == 0:
                let index = Int(offset - 16) / 8
                let value = index < arguments.count ? arguments[index] : 0
                return offset % 8 == 0 ? UInt32(truncatingIfNeeded: value) : UInt32(truncatingIfNeeded: value >> 32)
            default: return 0
            }
        }
        while pc < program.count {
            let instruction = program[pc]
            pc += 1
            switch instruction.code {
            case BPFAssembler.ldAbsW: accumulator = load(instruction.k)
            case BPFAssembler.andK: accumulator &= instruction.k
            case BPFAssembler.ja: pc += Int(instruction.k)
            case BPFAssembler.jeqK: pc += Int(accumulator == instruction.k ? instruction.jt : instruction.jf)
            case BPFAssembler.jgtK: pc += Int(accumulator > instruction.k ? instruction.jt : instruction.jf)
            case BPFAssembler.jgeK: pc += Int(accumulator >= instruction.k ? instruction.jt : instruction.jf)
            case BPFAssembler.jsetK: pc += Int(accumulator & instruction.k != 0 ? instruction.jt : instruction.jf)
            case BPFAssembler.retK: return instruction.k
            default: return nil
            }
        }
        return nil
    }

    /// The action for a call by name in `architecture` (nil: no such call there, or a malformed program).
    public func action(for name: String, in architecture: SeccompArchitecture = .native, arguments: [UInt64] = []) -> SeccompAction? {
        guard let number = architecture.number(of: name),
              let value = run(nr: number, arch: architecture.auditArch, arguments: arguments) else { return nil }
        return SeccompAction(returnValue: value)
    }

    /// The calls of `architecture` the program lets through (allow or log) for some arguments: measured by
    /// running the program on every call of the table, with arguments all 0, all ones, and each constant the
    /// program compares with (so a call allowed only for certain flags or requests counts).
    public func reachableCalls(in architecture: SeccompArchitecture = .native) -> [String] {
        let probes: [[UInt64]] = [[], Array(repeating: UInt64.max, count: 6)] + constants.map { Array(repeating: UInt64($0), count: 6) }
        return SeccompArchitecture.allNames.filter { name in
            guard let number = architecture.number(of: name) else { return false }
            return probes.contains { permits(run(nr: number, arch: architecture.auditArch, arguments: $0)) }
        }
    }

    /// The values of argument `index` of call `name` the program allows, among the constants it compares
    /// with (for ioctl's request argument: the requests a thread may make).
    public func allowedValues(of name: String, argument index: Int, in architecture: SeccompArchitecture = .native) -> [UInt32] {
        guard let number = architecture.number(of: name) else { return [] }
        return constants.filter { value in
            var arguments = [UInt64](repeating: 0, count: 6)
            arguments[index] = UInt64(value)
            return permits(run(nr: number, arch: architecture.auditArch, arguments: arguments))
        }
    }

    private func permits(_ value: UInt32?) -> Bool {
        value.flatMap(SeccompAction.init(returnValue:)).map { $0 == .allow || $0 == .log } ?? false
    }

    /// Every distinct constant a conditional jump compares with, in order of first use.
    private var constants: [UInt32] {
        var seen = Set<UInt32>()
        return program.filter { [BPFAssembler.jeqK, BPFAssembler.jgtK, BPFAssembler.jgeK].contains($0.code) }
            .map(\.k).filter { seen.insert($0).inserted }
    }

    /// How many calls of each ABI the program lets through: "x86_64 N i386 M x32 K", the line run reports
    /// carry for `swiftlet compare` (measured from the program, not from the profile it came from).
    public var surfaceLine: String {
        SeccompArchitecture.allCases.map { "\($0 == .x86 ? "i386" : $0 == .x32 ? "x32" : "x86_64") \(reachableCalls(in: $0).count)" }.joined(separator: " ")
    }
}
