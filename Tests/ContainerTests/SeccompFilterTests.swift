// SeccompFilterTests: the BPF program, run through a small classic-BPF interpreter, denies what the
// policy says with the right errno and lets everything else through; no root needed.
@testable import Container
import CLinux
import Testing

/// Runs a seccomp program on one system call, as the kernel would (only the opcodes we emit).
struct BPFInterpreter {
    let program: [sock_filter]

    func run(nr: Int, arch: UInt32 = sl_audit_arch(), arg0: UInt64 = 0) -> UInt32 {
        var accumulator: UInt32 = 0
        var pc = 0
        func load(_ offset: UInt32) -> UInt32 {
            switch offset {
            case 0: return UInt32(truncatingIfNeeded: nr)
            case 4: return arch
            case 16: return UInt32(truncatingIfNeeded: arg0)
            case 20: return UInt32(truncatingIfNeeded: arg0 >> 32)
            default: return 0
            }
        }
        while pc < program.count {
            let instruction = program[pc]
            pc += 1
            switch instruction.code {
            case 0x20: accumulator = load(instruction.k)
            case 0x15: pc += Int(accumulator == instruction.k ? instruction.jt : instruction.jf)
            case 0x35: pc += Int(accumulator >= instruction.k ? instruction.jt : instruction.jf)
            case 0x45: pc += Int(accumulator & instruction.k != 0 ? instruction.jt : instruction.jf)
            case 0x06: return instruction.k
            default: return 0xdead
            }
        }
        return 0xdead // fell off the end: the kernel rejects such a program
    }
}

@Suite struct SeccompFilterTests {
    static let allow: UInt32 = 0x7fff_0000
    static let eperm: UInt32 = 0x0005_0001
    static let enosys: UInt32 = 0x0005_0026

    func number(_ name: String) -> Int { Int(sl_syscall_number(name)) }

    @Test func defaultPolicyDeniesDangerousCallsWithEPERM() {
        let bpf = BPFInterpreter(program: SeccompPolicy.default(capabilities: .ociDefault).program())
        for name in ["kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "mount",
                     "umount2", "pivot_root", "unshare", "setns", "swapon", "bpf", "perf_event_open", "keyctl", "add_key",
                     "open_tree", "move_mount", "fsopen", "clock_settime", "settimeofday", "acct", "userfaultfd", "io_uring_setup"] {
            #expect(bpf.run(nr: number(name)) == Self.eperm, "\(name)")
        }
        #expect(bpf.run(nr: number("clone3")) == Self.enosys)
    }

    @Test func everydayCallsAreAllowed() {
        let bpf = BPFInterpreter(program: SeccompPolicy.default(capabilities: .ociDefault).program())
        for name in ["write", "getpid", "execve", "exit_group", "prctl", "capset", "setresuid", "setgroups", "close_range",
                     "seccomp", "ptrace", "personality"] {
            #expect(bpf.run(nr: number(name)) == Self.allow, "\(name)")
        }
    }

    @Test func cloneIsDeniedOnlyWithNamespaceFlags() {
        let bpf = BPFInterpreter(program: SeccompPolicy.default(capabilities: .ociDefault).program())
        let clone = number("clone")
        #expect(bpf.run(nr: clone, arg0: 0x1200011) == Self.allow) // fork: CLONE_CHILD_SETTID|CLEARTID|SIGCHLD
        #expect(bpf.run(nr: clone, arg0: 0x10000000 | 17) == Self.eperm) // CLONE_NEWUSER
        #expect(bpf.run(nr: clone, arg0: 0x40000000) == Self.eperm) // CLONE_NEWNET
    }

    @Test func capabilitiesLiftTheirDenials() {
        var capabilities = CapabilitySet.ociDefault
        capabilities.insert(.sysAdmin)
        capabilities.insert(.sysBoot)
        let bpf = BPFInterpreter(program: SeccompPolicy.default(capabilities: capabilities).program())
        #expect(bpf.run(nr: number("mount")) == Self.allow)
        #expect(bpf.run(nr: number("unshare")) == Self.allow)
        #expect(bpf.run(nr: number("reboot")) == Self.allow)
        #expect(bpf.run(nr: number("clone"), arg0: 0x10000000) == Self.allow)
        #expect(bpf.run(nr: number("kexec_load")) == Self.eperm)
        #expect(bpf.run(nr: number("init_module")) == Self.eperm)
    }

    @Test func foreignArchitectureAndX32AreDenied() {
        let bpf = BPFInterpreter(program: SeccompPolicy.default(capabilities: .ociDefault).program())
        #expect(bpf.run(nr: number("write"), arch: 0x4000_0003) == Self.eperm) // AUDIT_ARCH_I386
        if sl_audit_arch() == 0xC000_003E {
            #expect(bpf.run(nr: 0x4000_0000 | number("write")) == Self.eperm)
        }
    }

    @Test func programFitsTheKernelLimit() {
        let program = SeccompPolicy.default(capabilities: []).program()
        #expect(program.count < 4096)
        #expect(program.last?.code == 0x06)
    }
}
