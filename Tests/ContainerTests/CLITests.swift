// CLITests: `swiftlet container run` and `spec` as a user types them, through the binaries `swift test`
// builds next to the test bundle: exit statuses, one-line errors on stderr, signal forwarding, -t.
// Skipped when the binaries are not there (a test-only build).
@testable import Container
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

enum CLI {
    /// .build/<configuration>/swiftlet, beside the test bundle (with swiftlet-cli, to which it hands `spec`).
    static let swiftlet = ProcessRunner.swiftletPath

    static var available: Bool {
        Prerequisite.available(Fixtures.canRunContainers && FileSystemProbe.exists(swiftlet) && FileSystemProbe.exists(swiftlet + "-cli"))
    }

    /// Runs `swiftlet container ARGS` through sh; returns status, stdout and stderr separately.
    static func run(_ arguments: String) -> (status: Int32, stdout: String, stderr: String) {
        let directory = try! TemporaryDirectory()
        let (status, _) = Shell.run("'\(swiftlet)' container \(arguments) >'\(directory.path)/out' 2>'\(directory.path)/err'")
        return (status, FileSystemProbe.read(directory.path + "/out") ?? "", FileSystemProbe.read(directory.path + "/err") ?? "")
    }
}

@Suite(.serialized, .enabled(if: CLI.available, "needs root, the busybox rootfs and the swiftlet binaries"))
struct CLITests {
    let rootfs = Fixtures.rootfs ?? ""

    @Test func exitStatusIsTheCommands() {
        #expect(CLI.run("run --rootfs \(rootfs) -- sh -c 'exit 7'").status == 7)
        let hello = CLI.run("run --rootfs \(rootfs) -- echo hello")
        #expect(hello.status == 0)
        #expect(hello.stdout == "hello\n")
        #expect(hello.stderr.isEmpty)
    }

    @Test func launcherErrorsAreOneLineWith125() {
        let missing = CLI.run("run --rootfs /nonexistent -- true")
        #expect(missing.status == 125)
        #expect(missing.stderr == "swiftlet container: rootfs: cannot use /nonexistent (No such file or directory)\n")
        let size = CLI.run("run --rootfs \(rootfs) --memory 12Q -- true")
        #expect(size.status == 125)
        #expect(size.stderr.split(separator: "\n").count == 1)
        let net = CLI.run("run --rootfs \(rootfs) --net bridge -- true")
        #expect(net.status == 125)
        #expect(net.stderr == "swiftlet container: spec: --network bridge: unknown network mode (use none or host)\n")
        let notFound = CLI.run("run --rootfs \(rootfs) -- no-such-command")
        #expect(notFound.status == 127)
        #expect(notFound.stderr == "swiftlet container: exec: no-such-command: command not found in the container (No such file or directory)\n")
        let noRoot = CLI.run("run -- true")
        #expect(noRoot.status == 125)
        #expect(noRoot.stderr.hasPrefix("swiftlet container: spec: no root filesystem"))
    }

    @Test func limitsAreReportedInWords() {
        let oom = CLI.run("run --rootfs \(rootfs) --memory 32M -- sh -c 'a=0123456789; while true; do a=\"$a$a\"; done'")
        #expect(oom.status == 137)
        #expect(oom.stderr.contains("swiftlet container: out of memory: the container reached its memory limit of 32 MiB"))
    }

    /// Starts `swiftlet container ARGUMENTS` with default signal handling (as from a shell), output in files.
    func start(_ arguments: [String]) throws -> Spawned {
        try #require(Spawned.start(CLI.swiftlet, ["container"] + arguments, resetSignals: true))
    }

    @Test func sigtermReachesAPID1ThatHandlesIt() throws {
        // PID 1 with a handler gets the launcher's forwarded SIGTERM and exits 42; had the launcher
        // died of the signal instead, the status would be 143. The signal goes only once "ready" shows that
        // the trap is set: as PID 1 of its PID namespace, a shell without one ignores SIGTERM.
        let child = try start(["run", "--rootfs", rootfs, "--", "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"])
        #expect(child.awaitOutput("ready", timeout: 60), "the container's shell set its trap: \(child.stderrSoFar())")
        kill(child.pid, SIGTERM)
        let r = child.wait(deadline: 60)
        #expect(r.status == 42, "stdout: \(r.stdout) stderr: \(r.stderr)")
    }

    @Test func sigintIsForwardedThroughInit() throws {
        // --init blocks every signal before it starts the command, and the launcher forwards signals from
        // before it releases the container, so once the command has printed "ready" both are in place. The
        // command (PID 2 under init) exits 42 on SIGINT; a launcher killed by the signal would give 130.
        let child = try start(["run", "--init", "--rootfs", rootfs, "--", "sh", "-c", "trap 'exit 42' INT; echo ready; while :; do sleep 0.05; done"])
        #expect(child.awaitOutput("ready", timeout: 60), "the command runs: \(child.stderrSoFar())")
        kill(child.pid, SIGINT)
        let r = child.wait(deadline: 60)
        #expect(r.status == 42, "stdout: \(r.stdout) stderr: \(r.stderr)")
    }

    @Test(.enabled(if: Prerequisite.available(FileSystemProbe.exists("/usr/bin/script")), "needs script(1) for a terminal"))
    func ttyGivesAPseudoTerminalFromTheContainersDevpts() {
        let (_, output) = Shell.run("""
            script -qec "'\(CLI.swiftlet)' container run -t --rootfs \(rootfs) -- sh -c 'tty; exit 3'; echo status=\\$?" /dev/null < /dev/null
            """)
        #expect(output.contains("/dev/pts/0"), "\(output)")
        #expect(output.contains("status=3"), "\(output)")
    }

    @Test func specWritesConfigAndRefusesToOverwrite() throws {
        let directory = try TemporaryDirectory()
        #expect(CLI.run("spec --bundle \(directory.path)").status == 0)
        let text = FileSystemProbe.read(directory.path + "/config.json") ?? ""
        #expect(text.contains("\"CAP_NET_BIND_SERVICE\""))
        let again = CLI.run("spec --bundle \(directory.path)")
        #expect(again.status == 125)
        #expect(again.stderr.contains("already exists"))
        // The same bundle runs once it has a root filesystem.
        _ = Shell.run("cp -a '\(rootfs)' '\(directory.path)/rootfs'")
        let run = CLI.run("run --bundle \(directory.path) -- cat /proc/self/status")
        #expect(run.status == 0)
        #expect(run.stdout.contains("CapEff:\t0000000020000420"))
    }

    @Test func netHostSharesTheHostsNetworkNamespace() throws {
        // The namespace's identity (the inode /proc/PID/ns/net names) and what it holds (its interfaces).
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/ns/net", &buffer, buffer.count - 1)
        try #require(n > 0)
        let hostNamespace = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let hostInterfaces = FileSystemProbe.directoryEntries("/sys/class/net").sorted().joined(separator: " ")
        let script = "'readlink /proc/self/ns/net; ls /sys/class/net | tr \"\\n\" \" \"'"
        let host = CLI.run("run --rootfs \(rootfs) --net host -- sh -c \(script)")
        #expect(host.status == 0, "\(host.stderr)")
        #expect(host.stdout == "\(hostNamespace)\n\(hostInterfaces) ", "\(host.stdout)")
        let none = CLI.run("run --rootfs \(rootfs) --net none -- sh -c \(script)")
        #expect(none.status == 0, "\(none.stderr)")
        #expect(!none.stdout.hasPrefix(hostNamespace) && none.stdout.hasSuffix("\nlo "), "a namespace of its own, with lo only: \(none.stdout)")
    }

    @Test func helpIsHelp() {
        let help = CLI.run("run --help")
        #expect(help.status == 0)
        #expect(help.stdout.contains("--rootfs"))
    }
}
