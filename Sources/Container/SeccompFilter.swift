// SeccompFilter: the seccomp profile a container gets when its config.json has no `linux.seccomp`, and
// the program a spec's profile compiles to (Sources/Seccomp compiles; config-linux.md, "Seccomp").
//
// The default is Docker's default profile (moby profiles/seccomp/default.json, the one podman and
// containerd also ship): an allowlist of about 330 calls, everything else ERRNO(EPERM), on the x86_64,
// x86 and x32 ABIs (each with its own numbers, so an `int 0x80` call is judged as the i386 call it is).
// As there: `personality` only for PER_LINUX, PER_LINUX32, UNAME26 and the query 0xffffffff; `socket` for
// every family but AF_VSOCK (40); calls that need a capability (mount and the new mount API, unshare,
// setns, namespace flags to clone, reboot, modules, the clock, ptrace's relatives, ...) only when the
// container's bounding set holds it; clone3 ENOSYS without CAP_SYS_ADMIN, because its flags sit in memory
// a filter cannot read and ENOSYS makes glibc fall back to clone, whose flags it can. One difference,
// stricter: io_uring_setup/enter/register are not allowed (Docker 25 and later drop them too).
import CLinux
import Seccomp

public enum DefaultSeccompProfile {
    static let eperm: UInt16 = 1
    static let enosys: UInt16 = 38

    /// Docker's default profile for a container whose bounding set is `capabilities`.
    public static func profile(capabilities: CapabilitySet) -> SeccompProfile {
        var rules = [SeccompRule(allowed, .allow)]
        // socket: any family but AF_VSOCK (Docker keeps containers off vsock).
        rules.append(SeccompRule(["socket"], .allow, arguments: [try! SeccompArgument(index: 0, .notEqual, 40)]))
        // personality: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
        for persona: UInt64 in [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff] {
            rules.append(SeccompRule(["personality"], .allow, arguments: [try! SeccompArgument(index: 0, .equal, persona)]))
        }
        for (capability, names) in capabilityGroups where capabilities.contains(capability) {
            rules.append(SeccompRule(names, .allow))
        }
        if !capabilities.contains(.sysAdmin) {
            // clone without any CLONE_NEW* flag (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET).
            rules.append(SeccompRule(["clone"], .allow, arguments: [try! SeccompArgument(index: 0, .maskedEqual, 0x7E02_0000, valueTwo: 0)]))
            rules.append(SeccompRule(["clone3"], .errno(enosys)))
        }
        return SeccompProfile(defaultAction: .errno(eperm), architectures: [.x86_64, .x86, .x32], rules: rules,
                              badArchitectureAction: .killProcess)
    }

    /// Calls allowed to every container (Docker's first group, without io_uring_* and without recv and send,
    /// which no x86 ABI has; ptrace and
    /// process_vm_readv/writev, which Docker allows from kernel 4.8 on, are in).
    static let allowed: [String] = [
        "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod", "chown",
        "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
        "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
        "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
        "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
        "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir",
        "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
        "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync",
        "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
        "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
        "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
        "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
        "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch",
        "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
        "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill",
        "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
        "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
        "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
        "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
        "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
        "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at",
        "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
        "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64",
        "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
        "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg",
        "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
        "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
        "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
        "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
        "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
        "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
        "semop", "semtimedop", "semtimedop_time64", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
        "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
        "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
        "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
        "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
        "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat",
        "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
        "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
        "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
        "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
        "write", "writev",
        "process_vm_readv", "process_vm_writev", "ptrace", "arch_prctl", "modify_ldt",
    ]

    /// Calls allowed only with a capability in the bounding set (Docker's "includes": {"caps": [...]}).
    static let capabilityGroups: [(Capability, [String])] = [
        (.dacReadSearch, ["open_by_handle_at"]),
        (.sysAdmin, ["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
                     "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
                     "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare"]),
        (.sysBoot, ["reboot"]),
        (Capability(number: 18)!, ["chroot"]),                                   // CAP_SYS_CHROOT
        (.sysModule, ["delete_module", "init_module", "finit_module"]),
        (.sysPacct, ["acct"]),
        (.sysPtrace, ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
        (.sysRawIO, ["iopl", "ioperm"]),
        (.sysTime, ["settimeofday", "stime", "clock_settime", "clock_settime64"]),
        (Capability(number: 26)!, ["vhangup"]),                                  // CAP_SYS_TTY_CONFIG
        (Capability(number: 23)!, ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]), // CAP_SYS_NICE
        (.syslog, ["syslog"]),
        (.bpf, ["bpf"]),
        (.perfmon, ["perf_event_open"]),
    ]
}

extension ContainerSpec {
    /// The seccomp profile this container gets: config.json's `linux.seccomp`, else Docker's default
    /// for its bounding set; nil when seccomp is turned off.
    public var effectiveSeccompProfile: SeccompProfile? {
        guard seccomp else { return nil }
        return seccompProfile ?? DefaultSeccompProfile.profile(capabilities: process.capabilities.bounding)
    }
}
