// Issue 14 for containers: a bundle whose config.json is a FIFO, a device or huge is refused by its type and
// size in one line (it once blocked open(2) forever or was read without bound); a container that grants
// CAP_MKNOD and has no user namespace cannot create and open a host device (it could open /dev/kvm: the
// OCI device rules were accepted but not enforced), on cgroup v1's devices controller and through a BPF
// device program on cgroup2; a PID 1 that makes the launcher its tracer (PTRACE_TRACEME) runs on instead of
// being killed with status 125.
@testable import Container
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `swiftlet container run --bundle` with a config.json that is not a regular file: no root needed, the
/// bundle is read before anything else happens.
@Suite(.enabled(if: FileSystemProbe.exists(ProcessRunner.swiftletPath), "needs the swiftlet binary beside the tests"))
struct HostileBundleTests {
    func run(_ bundle: String) -> ProcessResult {
        ProcessRunner.run(ProcessRunner.swiftletPath, ["container", "run", "--bundle", bundle], deadline: 20)
    }

    func expectRefused(_ r: ProcessResult, _ phrase: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 125, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(phrase), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal error"), sourceLocation: sourceLocation)
    }

    @Test func aFIFOAsConfigJSONIsRefusedAtOnce() throws {
        let bundle = try TemporaryDirectory()
        #expect(mkfifo(bundle.path + "/config.json", 0o600) == 0)
        expectRefused(run(bundle.path), "swiftlet container: bundle: cannot read \(bundle.path)/config.json: it is a FIFO (named pipe), not a regular file")
    }

    @Test func aConfigJSONThatLinksToDevZeroIsRefusedByItsType() throws {
        let bundle = try TemporaryDirectory()
        #expect(symlink("/dev/zero", bundle.path + "/config.json") == 0)
        expectRefused(run(bundle.path), "bundle: cannot read \(bundle.path)/config.json: it is a character device, not a regular file")
    }

    @Test func aHugeConfigJSONIsRefusedByItsSize() throws {
        let bundle = try TemporaryDirectory()
        let fd = open(bundle.path + "/config.json", O_WRONLY | O_CREAT, 0o600)
        #expect(fd >= 0 && ftruncate(fd, off_t(ContainerSpec.configLimit) + 1) == 0)
        close(fd)
        expectRefused(run(bundle.path), "bundle: cannot read \(bundle.path)/config.json: it is larger than 16 MiB, the most swiftlet reads")
    }

    @Test func deviceRulesAreReadFromConfigJSON() throws {
        let document = try JSONParser.parse(Array("""
            {"root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, "linux": {"resources": {"devices": [
              {"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 232, "access": "rw"},
              {"allow": true, "type": "b", "major": -1, "access": "m"}]}}}
            """.utf8))
        var warnings: [String] = []
        let spec = try ContainerSpec(oci: document, bundle: "/b") { warnings.append($0) }
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(spec.deviceRules == [DeviceRule(allow: false), DeviceRule(allow: true, kind: .char, major: 10, minor: 232, access: "rw"),
                                     DeviceRule(allow: true, kind: .block, access: "m")])
        func message(_ rule: String) -> String? {
            let text = #"{"root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/"}, "linux": {"resources": {"devices": ["# + rule + "]}}}"
            do { _ = try ContainerSpec(oci: try JSONParser.parse(Array(text.utf8)), bundle: "/b") { _ in }; return nil } catch {
                return (error as? ContainerError)?.description
            }
        }
        #expect(message(#"{"allow": true, "type": "x"}"#) == "config.json: linux.resources.devices[0].type: \"x\" is not a, c or b")
        #expect(message(#"{"allow": true, "access": "rwx"}"#) == "config.json: linux.resources.devices[0].access: \"rwx\" is not a combination of r, w and m")
        #expect(message(#"{"type": "c"}"#) == "config.json: linux.resources.devices[0].allow: missing")
        #expect(message(#"{"allow": true, "major": 4294967296}"#) == "config.json: linux.resources.devices[0].major: 4294967296 is not a device number (or -1 for any)")
    }
}

/// A static x86-64 program that calls ptrace(PTRACE_TRACEME), then (mode "signal") sends itself SIGWINCH
/// (ignored by default, so it ends nothing once the launcher hands it on), then execs the rest of its arguments: `ptrace-me signal|exec PROGRAM ARGS...`. Freestanding (raw system
/// calls, no libc), so any clang builds it; the container's busybox has nothing that calls ptrace.
enum PtraceHelper {
    static let source = """
        static long sys(long n, long a, long b, long c) {
            long r;
            __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
            return r;
        }
        __attribute__((used)) void start_c(long *sp) {
            long argc = sp[0];
            char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
            if (argc < 3) sys(231, 2, 0, 0);
            if (sys(101, 0, 0, 0) != 0) sys(231, 3, 0, 0);              /* ptrace(PTRACE_TRACEME) */
            if (argv[1][0] == 's') sys(62, sys(39, 0, 0, 0), 28, 0);    /* kill(getpid(), SIGWINCH) */
            sys(59, (long)argv[2], (long)(argv + 2), (long)envp);       /* execve */
            sys(231, 4, 0, 0);
        }
        __attribute__((naked, noreturn)) void _start(void) { __asm__("mov %rsp, %rdi\\n and $-16, %rsp\\n call start_c\\n ud2"); }
        """

    /// The directory holding `ptrace-me`, built once; nil with no C compiler.
    static let directory: String? = {
        guard let compiler = Prerequisite.tool("clang", "cc") else { return nil }
        var template = Array("/tmp/swiftlet-test-ptrace-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { return nil }
        let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        guard let file = fopen(directory + "/ptrace-me.c", "w") else { return nil }
        fputs(source, file)
        fclose(file)
        let (status, _) = Shell.run("'\(compiler)' -static -nostdlib -ffreestanding -fno-stack-protector -fno-pie -O1 -o '\(directory)/ptrace-me' '\(directory)/ptrace-me.c' 2>&1")
        return status == 0 ? directory : nil
    }()
}

extension LauncherTests {
    // MARK: - device rules (issue 14, defect 5)

    /// The bundle of the issue: CAP_MKNOD granted (Docker grants it by default), no user namespace.
    static func mknodSpec(_ command: String, rules: [DeviceRule] = []) -> (inout ContainerSpec) -> Void {
        { spec in
            spec.namespaces.removeAll { $0 == .user }
            spec.uidMappings = []
            spec.gidMappings = []
            let mknod = Capability(name: "CAP_MKNOD")!
            for keyPath in [\ContainerSpec.Capabilities.bounding, \.effective, \.permitted] { spec.process.capabilities[keyPath: keyPath].insert(mknod) }
            spec.deviceRules = rules
            spec.process.args = ["sh", "-c", command]
        }
    }

    /// mknod c 10:232 (/dev/kvm), say whether the node exists, open it (read-only: `<>` would create a
    /// regular file where mknod failed), and use a default device.
    static let openKVM = "mknod /dev/kvm c 10 232 2>&1; test -c /dev/kvm && echo NODE-MADE; (exec 3</dev/kvm) 2>&1 && echo OPENED-KVM; echo x > /dev/null && echo null-ok"

    @Test func aContainerWithCapMknodCannotOpenTheHostsKVM() {
        let run = Run.container([], configure: Self.mknodSpec(Self.openKVM))
        #expect(run.output.hasPrefix("mknod: /dev/kvm: Operation not permitted"), "mknod is denied ('m'): \(run.output)")
        #expect(!run.output.contains("NODE-MADE") && !run.output.contains("OPENED-KVM"), "\(run.output)")
        #expect(run.output.contains("null-ok"), "the default devices still work: \(run.output)")
        // Docker's rules let a container mknod any device (c *:* m, b *:* m) but open only the defaults.
        let docker = [DeviceRule(allow: true, kind: .char, access: "m"), DeviceRule(allow: true, kind: .block, access: "m")]
        let made = Run.container([], configure: Self.mknodSpec(Self.openKVM, rules: docker))
        #expect(made.output.contains("NODE-MADE"), "\(made.output)")
        #expect(made.output.contains("Operation not permitted") && !made.output.contains("OPENED-KVM"), "open is denied: \(made.output)")
    }

    @Test(.enabled(if: FileSystemProbe.exists("/dev/kvm"), "needs a /dev/kvm (10:232) on the host"))
    func aDeviceRuleInTheSpecAllowsThatDevice() {
        let rule = DeviceRule(allow: true, kind: .char, major: 10, minor: 232, access: "rwm")
        let run = Run.container([], configure: Self.mknodSpec(Self.openKVM, rules: [rule]))
        #expect(run.output.contains("OPENED-KVM"), "the rule is applied, not a blanket denial: \(run.output)")
    }

    /// The cgroup2 path on this (hybrid) host: the layout without the v1 devices controller, so the rules go
    /// into a BPF_PROG_TYPE_CGROUP_DEVICE program on a cgroup in the unified hierarchy.
    @Test(.enabled(if: Prerequisite.available((try? CgroupLayout.detect())?.unified != nil), "needs a cgroup2 hierarchy"))
    func aBPFDeviceProgramDeniesTheSameOnCgroup2() throws {
        var layout = try CgroupLayout.detect()
        layout.controllers[.devices] = nil
        let withBPF: (inout LaunchOptions) -> Void = { $0.cgroupLayout = layout }
        let denied = Run.container([], configure: Self.mknodSpec(Self.openKVM), options: withBPF)
        #expect(denied.error == nil, "\(String(describing: denied.error))")
        #expect(denied.output.hasPrefix("mknod: /dev/kvm: Operation not permitted"), "\(denied.output)")
        #expect(!denied.output.contains("NODE-MADE") && !denied.output.contains("OPENED-KVM"), "\(denied.output)")
        #expect(denied.output.contains("null-ok"), "\(denied.output)")
        let docker = [DeviceRule(allow: true, kind: .char, access: "m"), DeviceRule(allow: true, kind: .block, access: "m")]
        let made = Run.container([], configure: Self.mknodSpec(Self.openKVM, rules: docker), options: withBPF)
        #expect(made.output.contains("NODE-MADE") && !made.output.contains("OPENED-KVM"), "\(made.output)")
        if FileSystemProbe.exists("/dev/kvm") {
            let rule = DeviceRule(allow: true, kind: .char, major: 10, minor: 232, access: "rw")
            let allowed = Run.container([], configure: Self.mknodSpec(Self.openKVM, rules: [DeviceRule(allow: true, kind: .char, access: "m"), rule]),
                                        options: withBPF)
            #expect(allowed.output.contains("OPENED-KVM"), "\(allowed.output)")
        }
    }

    // MARK: - a traced PID 1 (issue 14, defect 6)

    static var ptraceProblem: String { "needs a C compiler (clang or cc) to build the PTRACE_TRACEME helper" }

    func runTraced(_ mode: String, withInit: Bool = false) throws -> ContainerRun {
        let directory = try #require(PtraceHelper.directory, "\(Self.ptraceProblem)")
        return Run.container(["/mnt/ptrace-me", mode, "/bin/echo", "alive"]) { spec in
            spec.mounts.append(ContainerSpec.Mount(destination: "/mnt", type: "bind", source: directory, options: ["bind", "ro"]))
            spec.initProcess = withInit
        }
    }

    @Test(.enabled(if: Prerequisite.available(PtraceHelper.directory != nil), Comment(rawValue: ptraceProblem)),
          arguments: [false, true])
    func aPID1ThatAsksToBeTracedRunsOn(withInit: Bool) throws {
        // A signal after PTRACE_TRACEME: a ptrace stop the launcher (or --init's reaper) once took for the end.
        let signalled = try runTraced("signal", withInit: withInit)
        #expect(signalled.status == 0, "\(signalled.output) \(String(describing: signalled.error))")
        #expect(signalled.output == "alive\n")
        // execve after PTRACE_TRACEME: the kernel's SIGTRAP, which must not reach the new program.
        let execed = try runTraced("exec", withInit: withInit)
        #expect(execed.status == 0, "\(execed.output) \(String(describing: execed.error))")
        #expect(execed.output == "alive\n")
    }
}
