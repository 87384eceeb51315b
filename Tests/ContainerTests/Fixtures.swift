// Fixtures: the busybox root filesystem the container tests run (built by guest/rootfs/build.sh,
// the same recipe the VM's initramfs uses), and a helper that runs one container and captures what
// it printed.
import Container
import Testing

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

    /// Root and a rootfs: what the tests with real namespaces and cgroups need.
    static var canRunContainers: Bool { isRoot && rootfs != nil }
    static let containerProblem = "needs root and " + rootfsProblem
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
        var spec = ContainerSpec.standard(rootPath: Fixtures.rootfs!, args: command)
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
    /// Runs a shell command line; returns its status and stdout+stderr.
    static func run(_ commandLine: String) -> (Int32, String) {
        guard let pipe = popen(commandLine + " 2>&1", "r") else { return (-1, "") }
        var output = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            output += buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        let status = pclose(pipe)
        return ((status >> 8) & 0xff, output)
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
