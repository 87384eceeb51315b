// SeccompFuzzer: the seccomp compiler (Sources/Seccomp), which both the VMM's per-thread allowlists and
// containers' profiles go through. An input is a profile (default and bad-architecture actions, the
// architectures, rules of calls from the x86 table with actions and 64-bit argument checks of every
// comparison) and then calls (ABI, number, six arguments). Promised besides "no trap": the program either
// compiles within the kernel's 4096 instructions or is refused with a SeccompError; a compiled program,
// run by the interpreter as the kernel would, answers every call exactly as SeccompProfile.decision (the
// reference, written for clarity) does, and a call from an unlisted ABI gets the bad-architecture action.
import CLinux
import Seccomp

let names = SeccompArchitecture.allNames
let actions: [SeccompAction] = [.allow, .errno(1), .errno(38), .killProcess, .killThread, .trap, .trace(3), .log]
let comparisons: [SeccompArgument.Comparison] = [.notEqual, .lessThan, .lessOrEqual, .equal, .greaterOrEqual, .greaterThan, .maskedEqual]

extension FuzzInput {
    mutating func value() -> UInt64 {
        switch u8() & 3 {
        case 0: return UInt64(u8())                       // small: flags, fds, personalities
        case 1: return UInt64(u32())
        case 2: return u64()
        default: return UInt64(u32()) << 32 | UInt64(u8())
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let defaultAction = actions[Int(input.u8()) % actions.count]
    let badArchitecture = actions[Int(input.u8()) % actions.count]
    let archBits = input.u8()
    var architectures = SeccompArchitecture.allCases.enumerated().filter { archBits & (1 << $0.offset) != 0 }.map(\.element)
    if architectures.isEmpty { architectures = [.x86_64] }
    var rules: [SeccompRule] = []
    let ruleCount = Int(input.u8() % 24)
    for _ in 0..<ruleCount {
        let nameCount = Int(input.u8() % 4) + 1
        let ruleNames = (0..<nameCount).map { _ in names[Int(input.u16()) % names.count] }
        var checks: [SeccompArgument] = []
        for _ in 0..<Int(input.u8() % 4) {
            let comparison = comparisons[Int(input.u8()) % comparisons.count]
            guard let check = try? SeccompArgument(index: Int(input.u8() % 6), comparison, input.value(), valueTwo: input.value()) else { continue }
            checks.append(check)
        }
        rules.append(SeccompRule(ruleNames, actions[Int(input.u8()) % actions.count], arguments: checks))
    }
    let profile = SeccompProfile(defaultAction: defaultAction, architectures: architectures, rules: rules, badArchitectureAction: badArchitecture)
    let program: [sock_filter]
    do { program = try profile.compile() } catch {
        trace("refused: \(error)")
        return 0
    }
    require(program.count <= SeccompProfile.maximumInstructions, "a program longer than the kernel takes")
    let bpf = BPFInterpreter(program: program)
    trace("compiled \(rules.count) rules into \(program.count) instructions")
    // The calls the rules name, then whatever the input asks for.
    var calls: [(String, SeccompArchitecture, [UInt64])] = []
    while !input.isEmpty && calls.count < 64 {
        let architecture = SeccompArchitecture.allCases[Int(input.u8()) % 3]
        let name = input.u8() & 1 == 0 && !rules.isEmpty ? rules[Int(input.u8()) % rules.count].names[0] : names[Int(input.u16()) % names.count]
        calls.append((name, architecture, (0..<6).map { _ in input.value() }))
    }
    for (name, architecture, arguments) in calls {
        guard architecture.number(of: name) != nil else { continue }
        let got = bpf.action(for: name, in: architecture, arguments: arguments)
        // x32 shares AUDIT_ARCH_X86_64: listed x86_64 alone still refuses the x32 bit, and x32 alone refuses x86_64 numbers.
        let listed = architectures.contains(architecture)
        let expected = listed ? profile.decision(for: name, arguments: arguments) : badArchitecture
        require(got == expected, "\(name) (\(architecture.rawValue)) \(arguments): program says \(String(describing: got)), the profile \(expected)")
    }
    return 0
}
