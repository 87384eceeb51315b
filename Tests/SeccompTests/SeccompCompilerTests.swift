// SeccompCompilerTests: the compiled program, run through the interpreter, answers what the profile says
// (SeccompProfile.decision, written for clarity) for every call, architecture and argument check; and a
// program installed in a real thread makes the kernel answer the same.
import CLinux
import Glibc
import Seccomp
import Testing

@Suite struct SeccompCompilerTests {
    func action(_ program: [sock_filter], _ name: String, _ arch: SeccompArchitecture = .x86_64, _ arguments: [UInt64] = []) -> SeccompAction? {
        BPFInterpreter(program: program).action(for: name, in: arch, arguments: arguments)
    }

    @Test func everyActionReachesTheKernelAsItsReturnValue() throws {
        let actions: [SeccompAction] = [.allow, .errno(13), .killProcess, .killThread, .trap, .trace(7), .log]
        let names = ["read", "write", "openat", "close", "mmap", "munmap", "getpid"]
        // getppid has no rule: the default answers it.
        let profile = SeccompProfile(defaultAction: .errno(1), rules: zip(names, actions).map { SeccompRule([$0], $1) })
        let program = try profile.compile()
        for (name, expected) in zip(names, actions) { #expect(action(program, name) == expected, "\(name)") }
        #expect(action(program, "getppid") == .errno(1))
        #expect(action(program, "kexec_load") == .errno(1))
    }

    @Test func ociActionNamesMapAndNotifyIsRefused() throws {
        #expect(try SeccompAction(ociName: "SCMP_ACT_ERRNO", errnoRet: nil) == .errno(1))
        #expect(try SeccompAction(ociName: "SCMP_ACT_ERRNO", errnoRet: 38) == .errno(38))
        #expect(try SeccompAction(ociName: "SCMP_ACT_KILL", errnoRet: nil) == .killThread)
        #expect(try SeccompAction(ociName: "SCMP_ACT_KILL_PROCESS", errnoRet: nil) == .killProcess)
        #expect(throws: SeccompError.self) { try SeccompAction(ociName: "SCMP_ACT_NOTIFY", errnoRet: nil) }
        #expect(throws: SeccompError.self) { try SeccompAction(ociName: "SCMP_ACT_ERRNO", errnoRet: 70000) }
        #expect(throws: SeccompError.self) { try SeccompArgument(index: 6, .equal, 0) }
    }

    @Test func argumentChecksAgreeWithTheReferenceOnEdgeValues() throws {
        let edges: [UInt64] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001, 0xffff_ffff_0000_0000,
                               0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, UInt64.max - 1, UInt64.max, 0x2_0008, 0x7E02_0000]
        let comparisons: [SeccompArgument.Comparison] = [.notEqual, .lessThan, .lessOrEqual, .equal, .greaterOrEqual, .greaterThan, .maskedEqual]
        for comparison in comparisons {
            for value in edges {
                let check = try SeccompArgument(index: 2, comparison, value, valueTwo: value & 0xffff_0000_ffff)
                let profile = SeccompProfile(defaultAction: .errno(1), rules: [SeccompRule(["openat"], .allow, arguments: [check])])
                let program = try profile.compile()
                for argument in edges {
                    let arguments: [UInt64] = [0, 0, argument]
                    #expect(action(program, "openat", .x86_64, arguments) == profile.decision(for: "openat", arguments: arguments),
                            "\(check) with arg2 = \(argument)")
                }
            }
        }
    }

    @Test func rulesForOneCallAreTriedInOrderAndAllChecksOfARuleMustPass() throws {
        let personality = [0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff].map { SeccompRule(["personality"], .allow, arguments: [try! SeccompArgument(index: 0, .equal, $0)]) }
        let both = SeccompRule(["socket"], .allow, arguments: [try SeccompArgument(index: 0, .notEqual, 40), try SeccompArgument(index: 1, .lessThan, 8)])
        let profile = SeccompProfile(defaultAction: .errno(1), rules: personality + [both, SeccompRule(["socket"], .errno(97))])
        let program = try profile.compile()
        for value: UInt64 in [0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff, 1, 0x40_0000, 0x1_0000_0000] {
            #expect(action(program, "personality", .x86_64, [value]) == profile.decision(for: "personality", arguments: [value]))
        }
        #expect(action(program, "personality", .x86_64, [0x40_0000]) == .errno(1))
        #expect(action(program, "socket", .x86_64, [2, 1]) == .allow)
        #expect(action(program, "socket", .x86_64, [40, 1]) == .errno(97))
        #expect(action(program, "socket", .x86_64, [2, 9]) == .errno(97))
    }

    @Test func eachArchitectureUsesItsOwnNumbersAndOthersGetTheBadArchitectureAction() throws {
        let profile = SeccompProfile(defaultAction: .errno(1), architectures: [.x86_64, .x86, .x32],
                                     rules: [SeccompRule(["write", "socketcall", "arch_prctl"], .allow)], badArchitectureAction: .killProcess)
        let program = try profile.compile()
        #expect(action(program, "write", .x86_64) == .allow)
        #expect(action(program, "write", .x86) == .allow)          // 4 on i386, 1 on x86_64
        #expect(action(program, "write", .x32) == .allow)
        #expect(action(program, "socketcall", .x86) == .allow)     // i386 only
        #expect(action(program, "read", .x86) == .errno(1))
        let native = try SeccompProfile(defaultAction: .errno(1), rules: [SeccompRule(["write"], .allow)]).compile()
        #expect(action(native, "write", .x86) == .killProcess)
        #expect(action(native, "write", .x32) == .killProcess)     // the x32 bit under AUDIT_ARCH_X86_64
        #expect(BPFInterpreter(program: native).run(nr: 1, arch: 0xC000_00B7) == SeccompAction.killProcess.returnValue) // aarch64
    }

    @Test func theWholeTableFitsAndMeasuringFindsExactlyTheAllowedCalls() throws {
        let names = SeccompArchitecture.allNames.filter { SeccompArchitecture.x86_64.number(of: $0) != nil }
        #expect(names.count > 300)
        let allowed = Array(names.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        let program = try SeccompProfile(defaultAction: .killProcess, architectures: [.x86_64, .x86, .x32],
                                         rules: [SeccompRule(allowed, .allow), SeccompRule(["ioctl"], .allow, arguments: [try SeccompArgument(index: 1, .equal, 0xAE80)])]).compile()
        #expect(program.count <= SeccompProfile.maximumInstructions)
        #expect(Set(BPFInterpreter(program: program).reachableCalls()) == Set(allowed + ["ioctl"]))
        #expect(BPFInterpreter(program: program).allowedValues(of: "ioctl", argument: 1) == [0xAE80])
    }

    @Test func theKernelAnswersAsTheInterpreterDoes() throws {
        // A filter installed in one thread (no TSYNC) applies to that thread only.
        let profile = SeccompProfile(defaultAction: .allow, rules: [
            SeccompRule(["getppid"], .errno(77)),
            SeccompRule(["getpriority"], .errno(78), arguments: [try SeccompArgument(index: 1, .greaterThan, 0x1_0000_0000)]),
        ])
        let program = try profile.compile()
        final class Box: @unchecked Sendable { var results: [Int32] = [] }
        let box = Box()
        var thread = pthread_t()
        let context = Unmanaged.passRetained(ProgramBox(program: program, box: { box.results = $0 }))
        #expect(pthread_create(&thread, nil, { raw in
            let context = Unmanaged<ProgramBox>.fromOpaque(raw!).takeRetainedValue()
            var results: [Int32] = []
            results.append(Int32(sl_set_no_new_privs()))
            results.append(context.program.withUnsafeBufferPointer { Int32(sl_seccomp_install($0.baseAddress, UInt16($0.count))) })
            let getppid = Int(SeccompArchitecture.native.number(of: "getppid")!), getpriority = Int(SeccompArchitecture.native.number(of: "getpriority")!)
            results.append(failure(sl_raw_syscall(getppid, 0, 0, 0)))
            results.append(failure(sl_raw_syscall(getpriority, 0, 0x2_0000_0000, 0)))
            results.append(failure(sl_raw_syscall(getpriority, 0, 0, 0)))
            context.box(results)
            return nil
        }, context.toOpaque()) == 0)
        pthread_join(thread, nil)
        #expect(box.results == [0, 0, 77, 78, 0])
        #expect(sl_raw_syscall(Int(SeccompArchitecture.native.number(of: "getppid")!), 0, 0, 0) > 0) // this thread is not filtered
    }
}

/// The errno of a raw call's result (0 for success).
func failure(_ result: Int) -> Int32 { result < 0 ? Int32(-result) : 0 }

final class ProgramBox {
    let program: [sock_filter]
    let box: ([Int32]) -> Void
    init(program: [sock_filter], box: @escaping ([Int32]) -> Void) { self.program = program; self.box = box }
}
