// SeccompCompiler: a SeccompProfile as a classic BPF program for seccomp(SECCOMP_SET_MODE_FILTER)
// (Documentation/userspace-api/seccomp_filter.rst, Documentation/networking/filter.rst), and an
// interpreter that runs such a program on one call as the kernel would (for tests, `explain` and
// `compare`, which measure what a filter allows from the program itself).
//
// Shape of the program:
//   load arch; for each architecture: if equal, jump to its section; else return badArchitectureAction
//   section: load nr; (x86_64 without x32: nr >= __X32_SYSCALL_BIT -> badArchitectureAction)
//            calls decided without argument checks, grouped by action: "jeq nr -> that group's ret"
//            calls with argument checks: one block per rule, in order; a failed check falls to the next
//            return defaultAction
// A 64-bit argument check is two 32-bit ones on args[i]'s high and low words (little-endian).
import CLinux

extension SeccompProfile {
    /// The kernel's limit (BPF_MAXINSNS).
    public static let maximumInstructions = 4096

    /// The BPF program; throws when it would not fit the kernel's limit.
    public func compile() throws(SeccompError) -> [sock_filter] {
        var assembler = BPFAssembler()
        let archLabels = architectures.map { _ in assembler.newLabel() }
        assembler.load(SeccompData.arch)
        var auditArchs: [UInt32: Int] = [:]
        for (index, architecture) in architectures.enumerated() where architecture != .x32 {
            auditArchs[architecture.auditArch] = index
            assembler.jumpFarIfEqual(architecture.auditArch, to: archLabels[index])
        }
        // x32 alone arrives under AUDIT_ARCH_X86_64.
        if let x32 = architectures.firstIndex(of: .x32), auditArchs[SeccompArchitecture.x32.auditArch] == nil {
            assembler.jumpFarIfEqual(SeccompArchitecture.x32.auditArch, to: archLabels[x32])
        }
        assembler.ret(badArchitectureAction.returnValue)

        for (index, architecture) in architectures.enumerated() {
            // x32 shares AUDIT_ARCH_X86_64: when both are listed, x86_64's section covers x32's numbers too.
            if architecture == .x32 && architectures.contains(.x86_64) { continue }
            assembler.place(archLabels[index])
            assembler.load(SeccompData.nr)
            var abis = [architecture]
            if architecture == .x86_64 && architectures.contains(.x32) { abis.append(.x32) }
            if architecture == .x86_64 && !abis.contains(.x32) {
                assembler.jumpIfGreaterOrEqual(0x4000_0000, return: badArchitectureAction.returnValue)
            } else if architecture == .x32 {
                // Only x32 listed: x86_64 numbers (below the bit) are a foreign ABI.
                let x32Only = assembler.newLabel()
                assembler.jumpFarIfGreaterOrEqual(0x4000_0000, to: x32Only)
                assembler.ret(badArchitectureAction.returnValue)
                assembler.place(x32Only)
            }
            emitSection(abis: abis, into: &assembler)
            assembler.ret(defaultAction.returnValue)
        }
        let program = try assembler.assemble()
        guard program.count <= Self.maximumInstructions else { throw .tooLarge(instructions: program.count) }
        return program
    }

    /// Per call: the rules that can decide it, in order, up to the first without argument checks.
    private func decisions(in abi: SeccompArchitecture) -> [(number: UInt32, rules: [SeccompRule])] {
        var order: [UInt32] = []
        var chains: [UInt32: [SeccompRule]] = [:]
        var closed = Set<UInt32>()
        for rule in rules {
            for name in rule.names {
                guard let number = abi.number(of: name), !closed.contains(number) else { continue }
                if chains[number] == nil { order.append(number); chains[number] = [] }
                chains[number]!.append(rule)
                if rule.arguments.isEmpty { closed.insert(number) }
            }
        }
        return order.map { ($0, chains[$0]!) }
    }

    private func emitSection(abis: [SeccompArchitecture], into assembler: inout BPFAssembler) {
        var plain: [(number: UInt32, action: SeccompAction)] = []
        var checked: [(number: UInt32, rules: [SeccompRule])] = []
        for abi in abis {
            for (number, chain) in decisions(in: abi) {
                if chain.count == 1 && chain[0].arguments.isEmpty {
                    if chain[0].action != defaultAction { plain.append((number, chain[0].action)) }
                } else {
                    checked.append((number, chain))
                }
            }
        }
        // Plain calls: groups of at most 200 (8-bit jump offsets) per action, each ending in its ret.
        var actions: [SeccompAction] = []
        for entry in plain where !actions.contains(entry.action) { actions.append(entry.action) }
        for action in actions {
            let numbers = plain.filter { $0.action == action }.map(\.number)
            var start = 0
            while start < numbers.count {
                let group = numbers[start..<min(start + 200, numbers.count)]
                let ret = assembler.newLabel(), next = assembler.newLabel()
                for number in group { assembler.jumpIfEqual(number, to: ret) }
                assembler.jump(to: next)
                assembler.place(ret)
                assembler.ret(action.returnValue)
                assembler.place(next)
                start += 200
            }
        }
        // Calls with argument checks: the accumulator holds nr on entry to each block.
        for (number, chain) in checked {
            let done = assembler.newLabel()
            assembler.jumpIfNotEqual(number, to: done)
            for rule in chain {
                let fail = assembler.newLabel()
                for check in rule.arguments { emit(check, failTo: fail, into: &assembler) }
                assembler.ret(rule.action.returnValue)
                assembler.place(fail)
                if !rule.arguments.isEmpty { assembler.load(SeccompData.nr) }
            }
            assembler.ret(defaultAction.returnValue)
            assembler.place(done)
        }
    }

    /// Falls through when the check passes, jumps to `fail` when it does not.
    private func emit(_ check: SeccompArgument, failTo fail: BPFAssembler.Label, into a: inout BPFAssembler) {
        let high = SeccompData.argument(check.index) + 4, low = SeccompData.argument(check.index)
        let hi = { (v: UInt64) in UInt32(truncatingIfNeeded: v >> 32) }, lo = { (v: UInt64) in UInt32(truncatingIfNeeded: v) }
        let v = check.value
        switch check.comparison {
        case .equal, .maskedEqual:
            // Both words must match (after the mask).
            let wanted = check.comparison == .maskedEqual ? check.valueTwo : v
            a.load(high)
            if check.comparison == .maskedEqual { a.and(hi(v)) }
            a.jumpIfNotEqual(hi(wanted), to: fail)
            a.load(low)
            if check.comparison == .maskedEqual { a.and(lo(v)) }
            a.jumpIfNotEqual(lo(wanted), to: fail)
        case .notEqual:
            // Either word differing passes.
            let pass = a.newLabel()
            a.load(high)
            a.jumpIfNotEqual(hi(v), to: pass)
            a.load(low)
            a.jumpIfEqual(lo(v), to: fail)
            a.place(pass)
        case .greaterThan, .greaterOrEqual, .lessThan, .lessOrEqual:
            // a > v  <=>  hi(a) > hi(v) || (hi(a) == hi(v) && lo(a) > lo(v)); lessOrEqual is its negation.
            let strict = check.comparison == .greaterThan || check.comparison == .lessOrEqual
            let negate = check.comparison == .lessThan || check.comparison == .lessOrEqual
            let yes = a.newLabel(), no = a.newLabel()
            a.load(high)
            a.jumpIfGreater(hi(v), to: yes)
            a.jumpIfNotEqual(hi(v), to: no)
            a.load(low)
            if strict { a.jumpIfGreater(lo(v), to: yes) } else { a.jumpIfGreaterOrEqual(lo(v), to: yes) }
            a.place(no)
            if negate { let pass = a.newLabel(); a.jump(to: pass); a.place(yes); a.jump(to: fail); a.place(pass) }
            else { a.jump(to: fail); a.place(yes) }
        }
    }
}

/// Offsets in `struct seccomp_data` (linux/seccomp.h).
enum SeccompData {
    static let nr: UInt32 = 0
    static let arch: UInt32 = 4
    static func argument(_ index: Int) -> UInt32 { 16 + 8 * UInt32(index) }
}
