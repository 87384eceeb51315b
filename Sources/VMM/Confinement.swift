// Confinement: what the VMM takes away from itself once the machine is built, before the guest runs, so
// that a guest that breaks a device model meets a process that can do little (Firecracker's promise,
// docs/hardening.md):
//   - no_new_privs, and every capability dropped (bounding, ambient, permitted, effective, inheritable),
//     on the main thread before it starts any other, so every thread inherits the empty sets;
//   - one seccomp allowlist per kind of thread (main/run loop, vCPU, virtio device, console input, gdb),
//     each installed by the thread itself before it touches guest-controlled state: only the calls it
//     needs, ioctl only with the request numbers it makes (a check on argument 1). Anything else is
//     SECCOMP_RET_TRAP: a SIGSYS handler (CLinux confine.c) prints one line naming the thread and the call
//     and ends the VMM with ExitStatus.seccompViolation (159), never a silent hang.
// The lists were found by running every guest and console/virtio/gdb option under `strace -f` (threads
// are named with PR_SET_NAME so the trace shows which thread made each call); `swiftlet explain` prints
// them, `swiftlet compare` measures them from the compiled programs. `--no-confine` turns it all off.
import CKVM
import CLinux
import Glibc
import Seccomp

/// The kinds of thread a running VMM has.
public enum VMMThreadKind: String, CaseIterable, Sendable {
    case main, vcpu, virtio, consoleInput = "console-input", gdb

    /// What the thread does, for `explain`.
    public var role: String {
        switch self {
        case .main: "the run loop: waits for the end, the timeout or a stop signal, kicks the vCPUs, flushes the console, reports"
        case .vcpu: "KVM_RUN and the exit dispatch: port I/O, MMIO, the 8250, virtio registers"
        case .virtio: "virtio queues after an ioeventfd, the console socket or file, interrupts through irqfd"
        case .consoleInput: "reads the terminal and hands keys to the guest's console"
        case .gdb: "the gdb remote protocol on its socket"
        }
    }
}

public enum Confinement {
    /// A system call that every thread may make: memory for the allocator, futexes for locks, signals
    /// (the vCPU kick, the SIGSYS report itself), time, writing to stderr, and exiting.
    static let everyThread = [
        "read", "write", "writev", "futex", "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
        "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "clock_gettime", "clock_nanosleep", "nanosleep",
        "sched_yield", "getpid", "gettid", "tgkill", "restart_syscall", "exit", "exit_group",
    ]

    /// The calls (beyond `everyThread`) and ioctl requests each kind of thread needs.
    public static func allowlist(for kind: VMMThreadKind) -> (calls: [String], ioctls: [(name: String, request: UInt)]) {
        switch kind {
        case .main:
            // KVM_IRQ_LINE: a restored Linux's command, typed on the 8250 by the run loop, raises IRQ 4.
            return (["poll", "ppoll", "close", "unlink", "rt_sigaction", "mincore", "getrusage", "sendto"],
                    [("TCGETS", UInt(TCGETS)), ("TCSETS", UInt(TCSETS)), ("TIOCGWINSZ", UInt(TIOCGWINSZ)), ("KVM_IRQ_LINE", CKVM_IRQ_LINE)])
        case .vcpu:
            return (["poll", "ppoll", "sendto"],
                    [("KVM_RUN", CKVM_RUN), ("KVM_GET_REGS", CKVM_GET_REGS), ("KVM_SET_REGS", CKVM_SET_REGS),
                     ("KVM_GET_SREGS", CKVM_GET_SREGS), ("KVM_SET_SREGS", CKVM_SET_SREGS),
                     ("KVM_GET_VCPU_EVENTS", CKVM_GET_VCPU_EVENTS), ("KVM_SET_VCPU_EVENTS", CKVM_SET_VCPU_EVENTS),
                     ("KVM_IRQ_LINE", CKVM_IRQ_LINE), ("KVM_SIGNAL_MSI", CKVM_SIGNAL_MSI),
                     ("KVM_SET_GUEST_DEBUG", CKVM_SET_GUEST_DEBUG), ("KVM_TRANSLATE", CKVM_TRANSLATE), ("KVM_GET_MSRS", CKVM_GET_MSRS),
                     ("KVM_GET_FPU", CKVM_GET_FPU), ("KVM_IOEVENTFD", CKVM_IOEVENTFD), ("KVM_IRQFD", CKVM_IRQFD),
                     ("KVM_GET_MP_STATE", CKVM_GET_MP_STATE)])
        case .virtio:
            // accept and fcntl: the next console-socket client (ConsoleSocket.acceptClient).
            return (["epoll_wait", "epoll_pwait", "epoll_ctl", "recvfrom", "sendto", "close", "poll", "ppoll", "accept", "accept4", "fcntl"],
                    [("KVM_IRQ_LINE", CKVM_IRQ_LINE), ("KVM_SIGNAL_MSI", CKVM_SIGNAL_MSI), ("TIOCGWINSZ", UInt(TIOCGWINSZ))])
        case .consoleInput:
            // Typed input raises the 8250's IRQ 4 (KVM_IRQ_LINE) on machines with interrupt controllers. close:
            // when a run ends quickly this thread can drop the last reference to what owns an fd (seen in CI:
            // SIGSYS on close at the end of a 20 ms guest).
            return (["poll", "ppoll", "close"], [("KVM_IRQ_LINE", CKVM_IRQ_LINE)])
        case .gdb:
            return (["accept4", "accept", "recvfrom", "sendto", "poll", "ppoll", "close", "fcntl", "setsockopt"],
                    // The stub reads and writes a stopped vCPU's state and sets breakpoints (GDBStub+Target.swift).
                    [("KVM_SET_GUEST_DEBUG", CKVM_SET_GUEST_DEBUG), ("KVM_TRANSLATE", CKVM_TRANSLATE),
                     ("KVM_GET_REGS", CKVM_GET_REGS), ("KVM_SET_REGS", CKVM_SET_REGS), ("KVM_GET_SREGS", CKVM_GET_SREGS),
                     ("KVM_SET_SREGS", CKVM_SET_SREGS), ("KVM_GET_FPU", CKVM_GET_FPU), ("KVM_GET_MSRS", CKVM_GET_MSRS),
                     ("KVM_GET_VCPU_EVENTS", CKVM_GET_VCPU_EVENTS), ("KVM_SET_VCPU_EVENTS", CKVM_SET_VCPU_EVENTS),
                     ("KVM_SET_FPU", CKVM_SET_FPU), ("KVM_SET_MSRS", CKVM_SET_MSRS), ("KVM_GET_MP_STATE", CKVM_GET_MP_STATE)])
        }
    }

    /// The seccomp profile of a kind of thread: its allowlist, everything else `action`.
    public static func profile(for kind: VMMThreadKind, action: SeccompAction = .trap) -> SeccompProfile {
        let (calls, ioctls) = allowlist(for: kind)
        var rules = [SeccompRule(everyThread + calls.filter { $0 != "fcntl" }, .allow),
                     // glibc's malloc reads /proc/sys/vm/overcommit_memory once, the first time it shrinks a
                     // thread's heap; refused, it assumes the safe answer. Nothing else a confined VMM does opens a file.
                     SeccompRule(["open", "openat"], .errno(UInt16(EACCES)))]
        if kind == .main {
            // Machine.deferTeardown's lingering child (ckvm_defer_teardown): one clone with exactly
            // CLONE_VM | SIGCHLD, and what the child itself calls under the filter it inherits.
            rules.append(SeccompRule(["clone"], .allow, arguments: [try! SeccompArgument(index: 0, .equal, 0x100 | 17 /* CLONE_VM | SIGCHLD */)]))
            rules.append(SeccompRule(["prctl"], .allow, arguments: [try! SeccompArgument(index: 0, .equal, 1 /* PR_SET_PDEATHSIG */)]))
            rules.append(SeccompRule(["getppid", "close_range", "pause"], .allow))
        }
        if calls.contains("fcntl") {
            // Only F_SETFD (marking an accepted socket close-on-exec).
            rules.append(SeccompRule(["fcntl"], .allow, arguments: [try! SeccompArgument(index: 1, .equal, UInt64(F_SETFD))]))
        }
        for (_, request) in ioctls {
            // The kernel reads the request as 32 bits; compare only those (a caller may sign-extend it).
            rules.append(SeccompRule(["ioctl"], .allow, arguments: [try! SeccompArgument(index: 1, .maskedEqual, 0xffff_ffff, valueTwo: UInt64(request) & 0xffff_ffff)]))
        }
        return SeccompProfile(defaultAction: action, architectures: [.native], rules: rules, badArchitectureAction: .killProcess)
    }

    /// Set by `prepareProcess` when confinement is on; read by each thread as it starts.
    nonisolated(unsafe) static var programs: [VMMThreadKind: [sock_filter]]? = nil

    /// The main thread, before it starts any other: compiles the programs, installs the SIGSYS reporter,
    /// sets no_new_privs and drops every capability. Returns a one-line failure or nil.
    static func prepareProcess() -> String? {
        var compiled: [VMMThreadKind: [sock_filter]] = [:]
        for kind in VMMThreadKind.allCases {
            do { compiled[kind] = try profile(for: kind).compile() } catch { return "seccomp allowlist for the \(kind.rawValue) thread: \(error)" }
        }
        var result = sl_seccomp_report_traps("swiftlet", "main")
        if result < 0 { return "cannot install the SIGSYS reporter: \(String(cString: strerror(-result)))" }
        result = sl_set_no_new_privs()
        if result < 0 { return "prctl(PR_SET_NO_NEW_PRIVS): \(String(cString: strerror(-result)))" }
        result = sl_drop_all_capabilities()
        if result < 0 { return "cannot drop capabilities: \(String(cString: strerror(-result)))" }
        programs = compiled
        return nil
    }

    /// Called by each thread at its start: names it (PR_SET_NAME, seen in strace and /proc) and, when the
    /// process is confined, installs its kind's allowlist. A failure ends the VMM: running unconfined
    /// when confinement was asked for is not an option.
    static func enter(_ kind: VMMThreadKind, name: String) {
        _ = sl_set_thread_name(name)
        guard let program = programs?[kind] else { return }
        _ = sl_seccomp_report_traps("swiftlet", name)
        let result = program.withUnsafeBufferPointer { sl_seccomp_install($0.baseAddress, UInt16($0.count)) }
        if result < 0 {
            printError("swiftlet: cannot install the seccomp allowlist of thread \(name): \(String(cString: strerror(-result)))")
            exit(ExitStatus.kvmUnavailable)
        }
        // A test hook: make one forbidden call from this kind of thread, to see the report (HostileInputTests).
        if let hook = getenv("SWIFTLET_CONFINEMENT_SELFTEST"), String(cString: hook) == kind.rawValue,
           let socket = SeccompArchitecture.native.number(of: "socket") {
            _ = sl_raw_syscall(Int(socket), Int(AF_INET), Int(SOCK_STREAM.rawValue), 0)
        }
    }
}

/// One thread of a run and what it may call, for `explain` and `compare`.
public struct ThreadAllowlist: Sendable {
    public var kind: VMMThreadKind
    /// The names the run gives these threads (vcpu0, vcpu1, ...).
    public var threads: [String]
    public var calls: [String]
    public var ioctls: [String]
    /// The compiled program's length in BPF instructions.
    public var instructions: Int
}

extension Machine {
    /// The threads `run()` would start for this machine, each with its allowlist.
    public var threadAllowlists: [ThreadAllowlist] {
        var kinds: [(VMMThreadKind, [String])] = [(.main, ["swiftlet"]), (.vcpu, vcpus.map { "vcpu\($0.id)" })]
        if virtioConsole != nil { kinds.append((.virtio, ["virtio"])) }
        if consoleInputSink() != nil { kinds.append((.consoleInput, ["console-input"])) }
        if gdbStub != nil { kinds.append((.gdb, ["gdb"])) }
        return kinds.map { kind, names in
            let (calls, ioctls) = Confinement.allowlist(for: kind)
            let program = (try? Confinement.profile(for: kind).compile()) ?? []
            return ThreadAllowlist(kind: kind, threads: names, calls: (Confinement.everyThread + calls.map { $0 == "fcntl" ? "fcntl(F_SETFD)" : $0 }).sorted(),
                                   ioctls: ioctls.map(\.name), instructions: program.count)
        }
    }
}

/// `--jail`, the half after the machine is built: every file the VMM needs is open (/dev/kvm, the VM and
/// vCPU fds, guest RAM, the kernel and initrd already read, the console file or socket, the report), so
/// the root becomes an empty tmpfs and the process an unprivileged user: uid nobody (65534) and the group
/// that owns /dev/kvm, as Firecracker's jailer runs its VMM as a given uid and gid.
enum Jail {
    static let nobody: UInt32 = 65534

    static func enter() -> String? {
        var info = stat()
        let gid = stat("/dev/kvm", &info) == 0 && info.st_gid != 0 ? info.st_gid : nobody
        // /tmp of this mount namespace only (made private by sl_jail_fork): the host's /tmp is untouched.
        let result = sl_jail_enter("/tmp", nobody, gid)
        return result < 0 ? "cannot enter the empty root: \(String(cString: strerror(-result)))" : nil
    }
}
