// Fixtures: the busybox root filesystem the container tests run (built by guest/rootfs/build.sh,
// the same recipe the VM's initramfs uses), and a helper that runs one container and captures what
// it printed.
import Container
import Synchronization
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

enum Fixtures {
    /// The repository root, from this file's path (Tests/ContainerTests/Fixtures.swift).
    static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static let isRoot = geteuid() == 0

    /// The rootfs directory, or nil with `rootfsProblem` saying why.
    static let rootfs: String? = {
        guard isRoot || FileSystemProbe.exists(repositoryRoot + "/guest/rootfs/out/rootfs/bin/busybox") else { return nil }
        let (status, output) = Shell.run(repositoryRoot + "/guest/rootfs/build.sh")
        guard status == 0, let path = output.split(separator: "\n").last.map(String.init),
              FileSystemProbe.exists(path + "/bin/busybox") else { return nil }
        return path
    }()

    static let rootfsProblem = "needs the busybox rootfs (guest/rootfs/build.sh; apt-get install busybox-static)"

    /// Root and a rootfs: what the tests with real namespaces and cgroups need (in CI they run without,
    /// and fail: SWIFTLET_REQUIRE_ARTEFACTS=1).
    static var canRunContainers: Bool { Prerequisite.available(isRoot && rootfs != nil) }
    static let containerProblem = "needs root and " + rootfsProblem

    /// The rootfs, or a path that does not exist when there is none, so that a test CI runs without it
    /// fails with the launcher's "rootfs: cannot use" error rather than trapping.
    static var rootfsPath: String { rootfs ?? "/nonexistent-swiftlet-test-rootfs" }
}

/// The outcome of one container run in a test.
struct ContainerRun {
    var status: Int32
    var output: String
    var result: RunResult?
    var error: ContainerError?
}

enum Run {
    /// Runs `command` in a standard spec on the fixture rootfs, stdout and stderr captured together.
    static func container(_ command: [String], configure: (inout ContainerSpec) -> Void = { _ in },
                          options configureOptions: (inout LaunchOptions) -> Void = { _ in }) -> ContainerRun {
        var spec = ContainerSpec.standard(rootPath: Fixtures.rootfsPath, args: command)
        configure(&spec)
        return container(spec: spec, options: configureOptions)
    }

    static func container(spec: ContainerSpec, options configureOptions: (inout LaunchOptions) -> Void = { _ in }) -> ContainerRun {
        var template = Array("/tmp/swiftlet-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "mkstemp failed")
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        unlink(path)
        defer { close(fd) }
        var options = LaunchOptions()
        options.forwardSignals = false
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        options.stdin = devNull
        options.stdout = fd
        options.stderr = fd
        configureOptions(&options)
        var run: ContainerRun
        do {
            let result = try Launcher.run(spec, options: options)
            run = ContainerRun(status: result.exitStatus, output: "", result: result, error: nil)
        } catch {
            run = ContainerRun(status: error.exitStatus, output: "", result: nil, error: error)
        }
        lseek(fd, 0, SEEK_SET)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        run.output = String(decoding: bytes, as: UTF8.self)
        return run
    }
}

/// Keeps a container's command alive until the test has looked at it: the command's stdin is a pipe whose
/// write end the test holds, the command waits on it (`read _`), and release() closes it (EOF), typically
/// at the end of LaunchOptions.onStart. Readiness instead of a sleep that must outlast a slow machine.
final class Hold: @unchecked Sendable {
    let readEnd: Int32
    private let writeEnd: Int32
    private let released = Mutex(false)

    init() {
        let fds = Shell.closeOnExecPipe()
        precondition(fds.read >= 0, "pipe failed")
        readEnd = fds.read
        writeEnd = fds.write
    }

    /// Writes a line (what `read` waits for, even should another process hold a copy of the write end)
    /// and closes the write end.
    func release() {
        guard released.withLock({ done in defer { done = true }; return !done }) else { return }
        _ = write(writeEnd, "\n", 1)
        close(writeEnd)
    }

    deinit {
        release()
        close(readEnd)
    }
}

enum Shell {
    /// A pipe whose ends close on exec (pipe2 is not in Swift's Glibc module; the window between pipe and
    /// fcntl is all a concurrent spawn could inherit them in).
    static func closeOnExecPipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return (-1, -1) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// Runs a shell command line; returns its status and stdout+stderr. posix_spawn with an empty
    /// signal mask and default dispositions: Swift Testing runs tests on libdispatch threads, which
    /// block nearly every signal, and a shell that inherits a blocked SIGCHLD waits forever. The shell
    /// leads a process group of its own; if it has not finished after `deadline` seconds the whole group
    /// is killed and the test fails with what it printed (a container's processes die with their launcher).
    static func run(_ commandLine: String, deadline: Double = 120,
                    sourceLocation: SourceLocation = #_sourceLocation) -> (Int32, String) {
        let (readEnd, writeEnd) = closeOnExecPipe()
        guard readEnd >= 0 else { return (-1, "") }
        let fds = [readEnd, writeEnd]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let words: [UnsafeMutablePointer<CChar>?] = ["/bin/sh", "-c", commandLine].map { (word: String) in strdup(word) }
        defer { words.forEach { free($0) } }
        var argv: [UnsafeMutablePointer<CChar>?] = words + [nil]
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, environ)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            return (-1, "")
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let limit = monotonicSeconds() + deadline
        var killed = false
        while true {
            var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 100)
            if ready < 0 && errno != EINTR { break }
            if ready > 0 {
                let n = read(fds[0], &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                bytes += buffer[..<n]
            }
            if !killed && monotonicSeconds() > limit {
                // The group, then the shell itself (in case it moved a child elsewhere, it still goes).
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                killed = true
            }
            // A killed group's stragglers in other groups may hold the pipe: stop reading a while later.
            if killed && monotonicSeconds() > limit + 10 { break }
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = String(decoding: bytes, as: UTF8.self)
        if killed {
            Issue.record("sh -c \(commandLine)\nwas still running after its \(Int(deadline)) s deadline; the test killed it. Output:\n\(output.suffix(4000))",
                         sourceLocation: sourceLocation)
        }
        let exitStatus: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return (exitStatus, output)
    }
}

enum FileSystemProbe {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var text = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), file) != nil { text += buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } }
        return text
    }

    /// The names in a directory, without "." and "..".
    static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Every directory below `root`, as paths relative to it.
    static func directories(under root: String) -> Set<String> {
        var result: Set<String> = []
        func walk(_ relative: String) {
            guard let dir = opendir(root + relative) else { return }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafePointer(to: &entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                guard name != "." && name != "..", entry.pointee.d_type == UInt8(DT_DIR) else { continue }
                let path = relative + "/" + name
                result.insert(path)
                walk(path)
            }
        }
        walk("")
        return result
    }
}

/// Tests that leave traces on the host for a while (a created container's cgroup, podman's storage mounts)
/// and tests that compare the host's mounts and cgroups before and after (LauncherTests) take turns: Swift
/// Testing runs suites side by side. A file lock, as LinuxBootLock is, held for each test of a suite marked
/// `.changesHostState` (the suite itself runs its tests; only tests lock, so a suite never waits on itself).
struct HostStateChanging: SuiteTrait, TestTrait, TestScoping {
    static let path = "/tmp/swiftlet-host-state.lock"
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard !test.isSuite else { return try await function() }
        let fd = open(Self.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        if fd >= 0 { while flock(fd, LOCK_EX) != 0 && errno == EINTR {} }
        defer { if fd >= 0 { flock(fd, LOCK_UN); close(fd) } }
        try await function()
    }
}

extension Trait where Self == HostStateChanging {
    static var changesHostState: Self { HostStateChanging() }
}
