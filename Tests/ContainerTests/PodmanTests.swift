// PodmanTests: Debian's podman (with conmon) drives swiftlet as its OCI runtime: `podman --runtime
// .../swiftlet-runtime run --rm IMAGE COMMAND`, with the image imported from the project's busybox rootfs
// (no registry). Each test has its own podman storage (--root, --runroot, --tmpdir in a temporary
// directory), so nothing leaks into the host's podman. Flags every run needs on this kind of host:
// --network none (no CNI/netavark setup in the sandbox), --ulimit nofile/nproc (podman's defaults exceed
// the sandbox's hard limits), --cgroup-manager cgroupfs (no systemd). podman's own default seccomp profile
// arrives as config.json's linux.seccomp and is compiled and installed by the runtime (Sources/Seccomp).
@testable import Container
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

final class PodmanFixture {
    static let podman = Prerequisite.tool("podman")
    static var available: Bool { Prerequisite.available(podman != nil && Prerequisite.tool("conmon") != nil) && CLI.available }
    static let reason = "needs podman and conmon (apt-get install podman), root, the busybox rootfs and the swiftlet binaries"

    let directory: TemporaryDirectory
    var runtime: String { directory.path + "/swiftlet-runtime" }
    static let runFlags = "--network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"

    /// podman --runtime .../swiftlet-vm: the same bundles in a microVM booted from guest/linux/out.
    var vmRuntime: String { directory.path + "/swiftlet-vm" }
    static let kernelFiles = [Fixtures.repositoryRoot + "/guest/linux/out/bzImage", Fixtures.repositoryRoot + "/guest/linux/out/initramfs.cpio"]
    static var vmAvailable: Bool { available && KVMRequirement.available && Prerequisite.available(kernelFiles.allSatisfy(FileSystemProbe.exists)) }

    init() throws {
        directory = try TemporaryDirectory()
        symlink(CLI.swiftlet, runtime)
        symlink(CLI.swiftlet, vmRuntime)
        let imported = run("sh -c \"tar -C '\(Fixtures.rootfsPath)' -c . | $PODMAN import - localhost/swiftlet-busybox\"", raw: true)
        try #require(imported.status == 0, "podman import: \(imported.stderr)")
    }

    /// podman with this test's storage (paths without spaces: they are expanded unquoted as $PODMAN).
    var base: String {
        let d = directory.path
        return "\(Self.podman ?? "podman") --root \(d)/root --runroot \(d)/runroot --tmpdir \(d)/tmp --cgroup-manager cgroupfs --events-backend file"
    }
    var podman: String { base + " --runtime \(runtime)" }

    /// `podman ARGUMENTS` (or, `raw`, a shell line where $PODMAN is this podman), output in files.
    func run(_ arguments: String, raw: Bool = false, deadline: Double = 120) -> (status: Int32, stdout: String, stderr: String) {
        let out = directory.path + "/out", err = directory.path + "/err"
        let line = raw ? "PODMAN=\"\(podman)\"; \(arguments)" : "\(podman) \(arguments)"
        let (status, _) = Shell.run("{ \(line); } >'\(out)' 2>'\(err)' </dev/null", deadline: deadline)
        return (status, FileSystemProbe.read(out) ?? "", FileSystemProbe.read(err) ?? "")
    }

    deinit {
        _ = run("rm -af -t 0")
        _ = run("rmi -af")
        // Storage mounts podman may have left (overlay, shm) before the directory goes.
        let mounts = (FileSystemProbe.read("/proc/self/mounts") ?? "").split(separator: "\n")
        for line in mounts.reversed() {
            let fields = line.split(separator: " ")
            if fields.count > 1, fields[1].hasPrefix(directory.path) { umount2(String(fields[1]), Int32(MNT_DETACH)) }
        }
    }
}

@Suite(.serialized, .changesHostState, .enabled(if: PodmanFixture.available, "\(PodmanFixture.reason)"))
struct PodmanTests {
    let image = "localhost/swiftlet-busybox"
    let flags = PodmanFixture.runFlags

    @Test func runRemovesTheContainerAndKeepsTheExitStatus() throws {
        let podman = try PodmanFixture()
        let hello = podman.run("run --rm \(flags) \(image) echo hello")
        #expect(hello.status == 0, "\(hello.stderr)")
        #expect(hello.stdout == "hello\n")
        #expect(podman.run("run --rm \(flags) \(image) sh -c 'exit 7'").status == 7)
        let env = podman.run("run --rm \(flags) -e GREETING=hi \(image) sh -c 'echo $GREETING; hostname'")
        #expect(env.stdout.hasPrefix("hi\n"), "\(env.stderr)")
        #expect(podman.run("ps -aq").stdout.isEmpty, "--rm removed the containers")
        #expect(podman.run("run --rm \(flags) \(image) no-such-command").status == 127)
    }

    @Test func memoryAndPidsLimitsReachTheCgroup() throws {
        let podman = try PodmanFixture()
        let started = podman.run("run -d --name limited \(flags) --memory 64m --pids-limit 20 \(image) sleep 60")
        #expect(started.status == 0, "\(started.stderr)")
        let pid = podman.run("inspect --format '{{.State.Pid}}' limited").stdout.split(separator: "\n").first.map(String.init) ?? ""
        let membership = FileSystemProbe.read("/proc/\(pid)/cgroup") ?? ""
        func path(_ controller: String) -> String? {
            membership.split(separator: "\n").first { $0.split(separator: ":").dropFirst().first?.split(separator: ",").contains(Substring(controller)) == true }
                .map { String($0.split(separator: ":", maxSplits: 2).last ?? "") }
        }
        let memory = path("memory").flatMap { FileSystemProbe.read("/sys/fs/cgroup/memory\($0)/memory.limit_in_bytes") }
        let pids = path("pids").flatMap { FileSystemProbe.read("/sys/fs/cgroup/pids\($0)/pids.max") }
        #expect(memory == "67108864\n", "\(membership)")
        #expect(pids == "20\n", "\(membership)")
        #expect(path("pids")?.hasSuffix(podman.run("inspect --format '{{.Id}}' limited").stdout.split(separator: "\n").first.map(String.init) ?? "?") == true,
                "podman's cgroupsPath is honoured")
    }

    @Test func execStopAndRm() throws {
        let podman = try PodmanFixture()
        #expect(podman.run("run -d --name box \(flags) \(image) sh -c 'trap \"exit 0\" TERM; while :; do sleep 0.1; done'").status == 0)
        let exec = podman.run("exec box sh -c 'echo in-box; cat /proc/1/comm; hostname; exit 3'")
        #expect(exec.status == 3, "\(exec.stderr)")
        let hostname = podman.run("inspect --format '{{.Config.Hostname}}' box").stdout
        #expect(exec.stdout == "in-box\nsh\n" + hostname, "in the container's PID and UTS namespaces: PID 1 is its shell")
        let stop = podman.run("stop -t 10 box")
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(!stop.stderr.contains("resorting to SIGKILL"), "SIGTERM reached the trap: \(stop.stderr)")
        #expect(podman.run("inspect --format '{{.State.ExitCode}}' box").stdout == "0\n")
        #expect(podman.run("rm box").status == 0)
        #expect(podman.run("ps -aq").stdout.isEmpty)
    }

    @Test func interactiveTerminalThroughTheConsoleSocket() throws {
        let podman = try PodmanFixture()
        guard let script = Prerequisite.tool("script") else { Issue.record("script(1) is missing (bsdutils)"); return }
        let r = podman.run("printf 'tty; echo term=$TERM; exit 5\\n' | \(script) -qec \"$PODMAN run --rm -it \(flags) \(image) sh\" /dev/null", raw: true)
        #expect(r.status == 5, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("/dev/pts/0"), "\(r.stdout)")
        #expect(r.stdout.contains("term=xterm"), "\(r.stdout)")
    }

    @Test(.enabled(if: PodmanFixture.vmAvailable, "needs /dev/kvm and guest/linux/out (guest/linux/build.sh) besides podman"))
    func theSameImageInAMicroVM() throws {
        let podman = try PodmanFixture()
        let kernel = PodmanFixture.kernelFiles
        let r = LinuxBootLock.serialize {
            podman.run("SWIFTLET_VM_KERNEL=\(kernel[0]) SWIFTLET_VM_INITRD=\(kernel[1]) \(podman.base) --runtime \(podman.vmRuntime) run --rm \(flags) "
                       + "--memory 64m -e GREETING=hi -w /tmp -u 1000:1000 \(image) sh -c 'echo $GREETING; uname -r; pwd; id -u; echo shells=$(ps -o comm | grep -c ^sh$); exit 4'",
                       raw: true, deadline: 600)
        }
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        // The guest's console ends lines with CR LF (its tty's ONLCR): one Character in Swift, a newline.
        let lines = r.stdout.split(whereSeparator: \.isNewline).map(String.init)
        #expect(lines.contains("hi") && lines.contains("/tmp") && lines.contains("1000"), "\(r.stdout)")
        #expect(lines.contains { $0.hasSuffix("-swiftlet") }, "the guest's own kernel ran it: \(r.stdout)")
        #expect(lines.contains { $0.hasPrefix("shells=") && $0 != "shells=0" }, "ps found the shell: /proc is mounted in the container: \(r.stdout)")
    }
}

extension PodmanTests {
    /// `podman stop` on a swiftlet-vm container: its SIGTERM reaches the command's own trap inside the
    /// guest (the VMM's --forward-signals and init's signal mailbox), whose status podman then reports.
    @Test(.enabled(if: PodmanFixture.vmAvailable, "needs /dev/kvm and guest/linux/out (guest/linux/build.sh) besides podman"))
    func stopReachesTheCommandInsideTheMicroVM() throws {
        let podman = try PodmanFixture()
        let kernel = PodmanFixture.kernelFiles
        let vm = "SWIFTLET_VM_KERNEL=\(kernel[0]) SWIFTLET_VM_INITRD=\(kernel[1]) \(podman.base) --runtime \(podman.vmRuntime)"
        try LinuxBootLock.serialize {
            let started = podman.run("\(vm) run -d --name vmbox \(flags) \(image) sh -c 'trap \"echo caught TERM in the VM; exit 5\" TERM; echo trap-set; while :; do :; done'",
                                     raw: true)
            try #require(started.status == 0, "\(started.stderr)")
            var logs = ""
            // (A SIGTERM sent before the command set its trap would, rightly, end it with 143.)
            for _ in 0..<600 where !logs.contains("trap-set") {
                logs = podman.run("logs vmbox").stdout
                if !logs.contains("trap-set") { usleep(500_000) }
            }
            try #require(logs.contains("trap-set"), "the command started in the VM: \(logs)")
            let stop = podman.run("\(vm) stop -t 60 vmbox", raw: true)
            #expect(stop.status == 0, "\(stop.stderr)")
            #expect(!stop.stderr.contains("resorting to SIGKILL"), "SIGTERM reached the trap: \(stop.stderr)")
            #expect(podman.run("logs vmbox").stdout.contains("caught TERM in the VM"))
            #expect(podman.run("inspect --format '{{.State.ExitCode}}' vmbox").stdout == "5\n", "the trap's status, not 143")
            #expect(podman.run("\(vm) rm vmbox", raw: true).status == 0)
        }
    }
}
