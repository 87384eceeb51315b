// SeccompFilter: the system calls a container may not make, as a classic BPF program for
// seccomp(SECCOMP_SET_MODE_FILTER) (seccomp(2), Documentation/userspace-api/seccomp_filter.rst).
//
// The policy follows Docker's default profile in spirit, written as a deny list: calls that reach
// beyond the container's namespaces (kexec, kernel modules, reboot, swap, the clock, accounting,
// keyrings, bpf, perf, io_uring, userfaultfd) fail with EPERM, and calls Docker allows only with a
// capability stay allowed when the spec grants that capability: mount and its new-API relatives,
// unshare, setns and clone with namespace flags need CAP_SYS_ADMIN; a bundle that grants it may mount
// inside its own mount namespace. clone3 gets ENOSYS, as in Docker, because its flags sit in memory a
// filter cannot read, and ENOSYS makes glibc fall back to clone, whose flags it can. A foreign
// architecture (32-bit int 0x80 calls on x86_64) and the x32 ABI get EPERM: a deny list keyed on
// x86_64 numbers would not cover them.
import CLinux

public struct SeccompPolicy: Sendable {
    /// A denied call: the errno it fails with, and the capability that lifts the denial.
    public struct Rule: Equatable, Sendable {
        public var syscall: String
        public var errno: Int32
        public var unless: [Capability]
    }

    public var rules: [Rule]
    /// When CAP_SYS_ADMIN is absent, clone fails with EPERM if any CLONE_NEW* flag is set.
    public var denyNamespaceClone: Bool

    static let eperm: Int32 = 1
    static let enosys: Int32 = 38

    /// The default policy for a process holding `capabilities` (its bounding set).
    public static func `default`(capabilities: CapabilitySet) -> SeccompPolicy {
        func rule(_ names: [String], _ errno: Int32 = eperm, unless: [Capability] = []) -> [Rule] {
            names.map { Rule(syscall: $0, errno: errno, unless: unless) }
        }
        let all: [Rule] =
            rule(["kexec_load", "kexec_file_load", "create_module", "get_kernel_syms", "query_module", "nfsservctl",
                  "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "add_key", "keyctl", "request_key",
                  "io_uring_setup", "io_uring_enter", "io_uring_register"])
            + rule(["init_module", "finit_module", "delete_module"], unless: [.sysModule])
            + rule(["reboot"], unless: [.sysBoot])
            + rule(["mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
                    "open_tree", "mount_setattr", "unshare", "setns", "swapon", "swapoff", "quotactl", "quotactl_fd",
                    "lookup_dcookie", "fanotify_init"], unless: [.sysAdmin])
            + rule(["clone3"], enosys, unless: [.sysAdmin])
            + rule(["bpf"], unless: [.sysAdmin, .bpf])
            + rule(["perf_event_open"], unless: [.sysAdmin, .perfmon])
            + rule(["settimeofday", "stime", "clock_settime", "clock_adjtime"], unless: [.sysTime])
            + rule(["acct"], unless: [.sysPacct])
            + rule(["iopl", "ioperm"], unless: [.sysRawIO])
            + rule(["syslog"], unless: [.syslog])
            + rule(["open_by_handle_at"], unless: [.dacReadSearch])
            + rule(["kcmp", "userfaultfd"], unless: [.sysPtrace])
        return SeccompPolicy(rules: all.filter { rule in !rule.unless.contains(where: capabilities.contains) },
                             denyNamespaceClone: !capabilities.contains(.sysAdmin))
    }

    /// The syscalls denied, with their numbers on this architecture (absent ones left out).
    public var resolved: [(name: String, number: UInt32, errno: Int32)] {
        rules.compactMap { rule in
            let number = sl_syscall_number(rule.syscall)
            return number < 0 ? nil : (rule.syscall, UInt32(number), rule.errno)
        }
    }

    // Classic BPF encodings (linux/filter.h, linux/seccomp.h).
    static let ldAbsW: UInt16 = 0x20      // BPF_LD | BPF_W | BPF_ABS
    static let jeqK: UInt16 = 0x15        // BPF_JMP | BPF_JEQ | BPF_K
    static let jgeK: UInt16 = 0x35        // BPF_JMP | BPF_JGE | BPF_K
    static let jsetK: UInt16 = 0x45       // BPF_JMP | BPF_JSET | BPF_K
    static let retK: UInt16 = 0x06        // BPF_RET | BPF_K
    static let retAllow: UInt32 = 0x7fff_0000
    static func retErrno(_ errno: Int32) -> UInt32 { 0x0005_0000 | (UInt32(errno) & 0xffff) }
    // struct seccomp_data offsets.
    static let offsetNR: UInt32 = 0
    static let offsetArch: UInt32 = 4
    static let offsetArg0Low: UInt32 = 16  // args[0], low 32 bits on little-endian machines
    /// The x32 ABI marks its syscall numbers with this bit.
    static let x32Bit: UInt32 = 0x4000_0000
    /// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
    static let namespaceCloneFlags: UInt32 = 0x7E02_0000

    /// The BPF program. Every deny rule is two instructions (compare, return) so all jumps are local.
    public func program() -> [sock_filter] {
        func statement(_ code: UInt16, _ k: UInt32) -> sock_filter { sock_filter(code: code, jt: 0, jf: 0, k: k) }
        func jump(_ code: UInt16, _ k: UInt32, _ jt: UInt8, _ jf: UInt8) -> sock_filter { sock_filter(code: code, jt: jt, jf: jf, k: k) }

        let arch = sl_audit_arch()
        var program: [sock_filter] = [
            statement(Self.ldAbsW, Self.offsetArch),
            jump(Self.jeqK, arch, 1, 0),
            statement(Self.retK, Self.retErrno(Self.eperm)),
            statement(Self.ldAbsW, Self.offsetNR),
        ]
        if arch == 0xC000_003E { // AUDIT_ARCH_X86_64: refuse the x32 ABI
            program.append(jump(Self.jgeK, Self.x32Bit, 0, 1))
            program.append(statement(Self.retK, Self.retErrno(Self.eperm)))
        }
        for rule in resolved {
            program.append(jump(Self.jeqK, rule.number, 0, 1))
            program.append(statement(Self.retK, Self.retErrno(rule.errno)))
        }
        let cloneNumber = sl_syscall_number("clone")
        if denyNamespaceClone && cloneNumber >= 0 {
            program.append(jump(Self.jeqK, UInt32(cloneNumber), 0, 3))
            program.append(statement(Self.ldAbsW, Self.offsetArg0Low))
            program.append(jump(Self.jsetK, Self.namespaceCloneFlags, 0, 1))
            program.append(statement(Self.retK, Self.retErrno(Self.eperm)))
        }
        program.append(statement(Self.retK, Self.retAllow))
        return program
    }
}
