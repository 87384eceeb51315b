// SeccompFilterTests: Docker's default profile, compiled and run through the interpreter (no root needed);
// config.json's `linux.seccomp` read into a profile (and refused where Swiftlet cannot honour it); and
// real containers whose calls the kernel answers as the profile says.
@testable import Container
import Seccomp
import Testing

@Suite struct SeccompFilterTests {
    static func program(_ capabilities: CapabilitySet = .ociDefault) throws -> BPFInterpreter {
        BPFInterpreter(program: try DefaultSeccompProfile.profile(capabilities: capabilities).compile())
    }

    @Test func defaultProfileDeniesWhatDockerDeniesWithEPERM() throws {
        let bpf = try Self.program()
        for name in ["kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "mount",
                     "umount2", "pivot_root", "unshare", "setns", "swapon", "bpf", "perf_event_open", "keyctl", "add_key",
                     "open_tree", "move_mount", "fsopen", "clock_settime", "settimeofday", "acct", "userfaultfd", "io_uring_setup",
                     "chroot", "sethostname", "open_by_handle_at", "kcmp", "iopl", "vhangup", "mbind"] {
            #expect(bpf.action(for: name) == .errno(1), "\(name)")
        }
        #expect(bpf.action(for: "clone3") == .errno(38))
        // The i386 ABI is judged by its own numbers: its kexec_load is 283, x86_64's write... is not.
        #expect(bpf.action(for: "kexec_load", in: .x86) == .errno(1))
        #expect(bpf.action(for: "socketcall", in: .x86) == .allow)
        #expect(bpf.action(for: "mount", in: .x32) == .errno(1))
    }

    @Test func everydayCallsAreAllowed() throws {
        let bpf = try Self.program()
        for name in ["read", "write", "getpid", "execve", "exit_group", "prctl", "capset", "setresuid", "setgroups", "close_range",
                     "seccomp", "ptrace", "arch_prctl", "futex", "rt_sigreturn", "wait4", "openat", "mmap"] {
            #expect(bpf.action(for: name) == .allow, "\(name)")
            #expect(bpf.action(for: name, in: .x32) == .allow, "x32 \(name)")
        }
        #expect(bpf.action(for: "write", in: .x86) == .allow)
        #expect(bpf.action(for: "socket", arguments: [2]) == .allow)        // AF_INET
        #expect(bpf.action(for: "socket", arguments: [40]) == .errno(1))    // AF_VSOCK
    }

    @Test func personalityOnlyForTheValuesDockerAllows() throws {
        let bpf = try Self.program()
        for value: UInt64 in [0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff] { #expect(bpf.action(for: "personality", arguments: [value]) == .allow, "\(value)") }
        // ADDR_NO_RANDOMIZE (turns ASLR off), READ_IMPLIES_EXEC, PER_BSD, a high word set.
        for value: UInt64 in [0x4_0000, 0x40_0000, 0x6, 0x1_0000_0000] { #expect(bpf.action(for: "personality", arguments: [value]) == .errno(1), "\(value)") }
    }

    @Test func cloneIsDeniedOnlyWithNamespaceFlags() throws {
        let bpf = try Self.program()
        #expect(bpf.action(for: "clone", arguments: [0x1200011]) == .allow) // fork: CLONE_CHILD_SETTID|CLEARTID|SIGCHLD
        #expect(bpf.action(for: "clone", arguments: [0x10000000 | 17]) == .errno(1)) // CLONE_NEWUSER
        #expect(bpf.action(for: "clone", arguments: [0x40000000]) == .errno(1)) // CLONE_NEWNET
    }

    @Test func capabilitiesLiftTheirDenials() throws {
        var capabilities = CapabilitySet.ociDefault
        for capability in [Capability.sysAdmin, .sysBoot, Capability(name: "CAP_SYS_CHROOT")!] { capabilities.insert(capability) }
        let bpf = try Self.program(capabilities)
        for name in ["mount", "unshare", "reboot", "chroot", "setns", "clone3"] { #expect(bpf.action(for: name) == .allow, "\(name)") }
        #expect(bpf.action(for: "clone", arguments: [0x10000000]) == .allow)
        #expect(bpf.action(for: "kexec_load") == .errno(1))
        #expect(bpf.action(for: "init_module") == .errno(1))
    }

    @Test func programFitsTheKernelLimit() throws {
        let program = try DefaultSeccompProfile.profile(capabilities: CapabilitySet(mask: ~0)).compile()
        #expect(program.count < SeccompProfile.maximumInstructions)
        #expect(DefaultSeccompProfile.profile(capabilities: .ociDefault).unknownNames.isEmpty)
    }

    // MARK: - config.json's linux.seccomp

    static func spec(_ seccomp: String, warnings: inout [String]) throws -> ContainerSpec {
        let text = #"{"process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}, "linux": {"seccomp": "# + seccomp + "}}"
        var collected: [String] = []
        let spec = try ContainerSpec(oci: try JSONParser.parse(Array(text.utf8)), bundle: "/b") { collected.append($0) }
        warnings = collected
        return spec
    }

    @Test func aProfileInConfigJSONIsReadWithActionsArchitecturesAndArguments() throws {
        var warnings: [String] = []
        let spec = try Self.spec(#"""
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
             "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
             "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                          {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                          {"names": ["kill"], "action": "SCMP_ACT_ALLOW"},
                          {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                          {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"},
                          {"names": ["no_such_call"], "action": "SCMP_ACT_LOG"}]}
            """#, warnings: &warnings)
        let profile = try #require(spec.seccompProfile)
        #expect(profile.architectures == [.x86_64, .x86])
        #expect(profile.defaultAction == .errno(38))
        let bpf = BPFInterpreter(program: try #require(spec.effectiveSeccompProfile).compile())
        #expect(bpf.action(for: "write") == .allow)
        #expect(bpf.action(for: "write", in: .x86) == .allow)
        #expect(bpf.action(for: "getpid") == .errno(38))
        #expect(bpf.action(for: "kill", arguments: [1, 9]) == .errno(13))
        #expect(bpf.action(for: "kill", arguments: [1, 15]) == .allow)
        #expect(bpf.action(for: "clone", arguments: [0x11]) == .allow)
        #expect(bpf.action(for: "clone", arguments: [0x2000_0000]) == .errno(38))
        #expect(bpf.action(for: "mkdir") == .killProcess)
        #expect(bpf.action(for: "write", in: .x32) == .killProcess) // an ABI the profile does not list
        #expect(warnings.contains { $0.contains("SCMP_ARCH_AARCH64") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("no_such_call") }, "\(warnings)")
    }

    @Test(arguments: [
        (#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#, "SCMP_ACT_NOTIFY needs a seccomp agent"),
        (#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#, "listenerPath"),
        (#"{"defaultAction": "SCMP_ACT_MAYBE"}"#, "unknown action SCMP_ACT_MAYBE"),
        (#"{"syscalls": []}"#, "defaultAction: missing"),
        (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#, "index"),
        (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}"#, "unknown operator"),
        (#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}"#, "not supported"),
    ])
    func whatSwiftletCannotHonourIsRefusedNamingTheField(seccomp: String, phrase: String) {
        var warnings: [String] = []
        do {
            _ = try Self.spec(seccomp, warnings: &warnings)
            Issue.record("accepted: \(seccomp)")
        } catch let error as ContainerError {
            #expect(error.description.contains("linux.seccomp") && error.description.contains(phrase), "\(error.description)")
        } catch {
            Issue.record("\(error)")
        }
    }
}

extension LauncherTests {
    // MARK: - seccomp in real containers

    /// A profile from config.json, as the kernel applies it: ERRNO with a chosen errno, an argument check
    /// (kill with signal 9 gets EACCES, with signal 15 reaches the kernel, which finds no such process),
    /// KILL_PROCESS (the shell reports its child's SIGSYS as status 159).
    @Test func aConfigJSONProfileIsWhatTheKernelEnforces() throws {
        var warnings: [String] = []
        let profile = try #require(try SeccompFilterTests.spec(#"""
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["getdents64", "getdents"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                          {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                          {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}
            """#, warnings: &warnings).seccompProfile)
        let script = "ls / 2>&1; kill -9 99999 2>&1; kill -15 99999 2>&1; mkdir /tmp/x; echo mkdir-status $?"
        let run = Run.container(["sh", "-c", script]) { $0.seccompProfile = profile }
        #expect(!run.output.contains("linuxrc"), "getdents64 fails (ENOSYS), so ls lists nothing: \(run.output)")
        #expect(run.output.contains("Permission denied") && run.output.contains("No such process"), "kill -9 gets EACCES, kill -15 the kernel's ESRCH: \(run.output)")
        #expect(run.output.contains("mkdir-status 159"), "mkdir is killed by SIGSYS: \(run.output)")
        let unfiltered = Run.container(["sh", "-c", script])
        #expect(unfiltered.output.contains("linuxrc") && !unfiltered.output.contains("mkdir-status 159"), "\(unfiltered.output)")
    }

    /// Docker's default: PER_LINUX32 is allowed (`linux32 uname -m` runs), mount is refused even before the
    /// capability check (EPERM either way, but the filter's answer comes first), ordinary work runs.
    @Test func theDefaultProfileLetsEverydayWorkRun() {
        let run = Run.container(["sh", "-c", "linux32 uname -m; ls / >/dev/null && echo ls-ok; mount -t tmpfs none /mnt 2>&1; echo mount $?"])
        #expect(run.output.contains("i686") || run.output.contains("i386"), "\(run.output)")
        #expect(run.output.contains("ls-ok") && run.output.contains("mount 1"), "\(run.output)")
    }
}
