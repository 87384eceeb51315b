// Fixtures: the busybox root filesystem the container tests run (built by guest/rootfs/build.sh,
// the same recipe the VM's initramfs uses), and a helper that runs one container and captures what
// it printed.
import Container
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
        options.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(options.stdin!) }
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

enum Shell {
    /// Runs a shell command line; returns its status and stdout+stderr. posix_spawn with an empty
    /// signal mask and default dispositions: Swift Testing runs tests on libdispatch threads, which
    /// block nearly every signal, and a shell that inherits a blocked SIGCHLD waits forever.
    static func run(_ commandLine: String) -> (Int32, String) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return (-1, "") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
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
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return ((status >> 8) & 0xff, String(decoding: bytes, as: UTF8.self))
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
