// `swiftlet container`: run a command in a container built from namespaces and cgroups, or write a
// default OCI config.json. This file only parses and wires; the launcher is the Container library.
import ArgumentParser
import Container

struct ContainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "container",
        abstract: "Run a command in a container: namespaces, cgroups, a busybox root filesystem.",
        subcommands: [ContainerRunCommand.self, ContainerSpecCommand.self]
    )
}

struct ContainerRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run COMMAND in a new container and exit with its status.",
        discussion: """
        Exit status: the command's own; 128+N when signal N ended it; 125 when the launcher failed; \
        126 when the command cannot be executed; 127 when it is not found in the container. \
        Without --init the command is PID 1 and, like any PID 1, ignores SIGINT and SIGTERM unless it \
        handles them.
        """
    )

    @Option(help: ArgumentHelp("Root filesystem directory (e.g. guest/rootfs/out/rootfs).", valueName: "DIR"))
    var rootfs: String?

    @Option(help: ArgumentHelp("OCI bundle directory with config.json (see `swiftlet container spec`).", valueName: "DIR"))
    var bundle: String?

    @Option(help: ArgumentHelp("Memory limit, with K, M or G (powers of 1024).", valueName: "SIZE"))
    var memory: String?

    @Option(name: [.customLong("pids"), .customLong("pids-limit")], help: ArgumentHelp("Maximum number of processes.", valueName: "N"))
    var pids: String?

    @Option(name: [.customShort("e"), .customLong("env")], help: ArgumentHelp("Set NAME=VALUE in the environment (NAME alone: the host's value); repeatable.", valueName: "NAME=VALUE"))
    var env: [String] = []

    @Option(name: [.customShort("w"), .customLong("workdir")], help: ArgumentHelp("The command's working directory in the container.", valueName: "DIR"))
    var workdir: String?

    @Option(name: [.customShort("u"), .customLong("user")], help: ArgumentHelp("Run as UID[:GID] (numbers).", valueName: "UID[:GID]"))
    var user: String?

    @Option(help: ArgumentHelp("Keep the container's writes in DIR/upper (default: a temporary overlay upper layer, removed at exit).", valueName: "DIR"))
    var upper: String?

    @Option(help: ArgumentHelp("CPU limit as a number of CPUs, e.g. 0.5.", valueName: "CPUS"))
    var cpus: String?

    @Option(help: "Hostname inside the container (default: swiftlet).")
    var hostname: String?

    @Option(name: [.customLong("network"), .customLong("net")], help: ArgumentHelp("none: only loopback, in a new network namespace; host: the host's network.", valueName: "none|host"))
    var net: String?

    @Flag(name: .customLong("read-only"), help: "Mount the root filesystem read-only.")
    var readOnly = false

    @Flag(name: .customLong("init"), help: "Run a tiny reaper as PID 1 that forwards signals to the command.")
    var initProcess = false

    @Flag(name: [.customShort("t"), .customLong("tty")], help: "Give the command a terminal.")
    var tty = false

    @Flag(help: "Print how long each setup step took.")
    var timings = false

    @Option(help: ArgumentHelp("Write a machine-readable run report (step times, PID, exit status, max RSS) to FILE.", valueName: "FILE"))
    var report: String?

    @Option(help: ArgumentHelp("Bind a host file or directory into the container, read-only unless :rw (repeatable).", valueName: "HOST:PATH[:ro|rw]"))
    var bind: [String] = []

    @Option(help: ArgumentHelp("How container ids map to the host's: identity (the default as root: container root owns host-root files, so the rootfs works as is), subuid (your ranges in /etc/subuid and /etc/subgid: container root is an unprivileged host uid), or HOSTID:SIZE. See docs/05-containers.md.", valueName: "identity|subuid|HOSTID:SIZE"))
    var userns: String?

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments, after --.", valueName: "COMMAND"))
    var command: [String] = []

    func run() throws {
        // The passthrough array also swallows a --help that comes before any command word.
        if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
        var options = RunOptions()
        options.rootfs = rootfs
        options.bundle = bundle
        options.memory = memory
        options.pids = pids
        options.cpus = cpus
        options.hostname = hostname
        options.readOnly = readOnly
        options.initProcess = initProcess
        options.terminal = tty
        options.timings = timings
        options.report = report
        options.env = env
        options.workdir = workdir
        options.user = user
        options.upper = upper
        do {
            options.userns = userns
            options.binds = try bind.map { (text: String) throws(ContainerError) in try RunOptions.parseBind(text) }
        } catch {
            ContainerCLI.printError(error.description)
            throw ExitCode(error.exitStatus)
        }
        options.command = command.first == "--" ? Array(command.dropFirst()) : command
        if let net {
            guard let network = RunOptions.Network(rawValue: net) else {
                ContainerCLI.printError("spec: --network \(net): unknown network mode (use none or host)")
                throw ExitCode(125)
            }
            options.network = network
        }
        throw ExitCode(ContainerCLI.run(options))
    }
}

struct ContainerSpecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spec",
        abstract: "Write a default OCI config.json (like `crun spec`) into the bundle directory."
    )

    @Option(help: ArgumentHelp("Bundle directory (default: the current directory).", valueName: "DIR"))
    var bundle: String?

    @Flag(help: "Add a user namespace mapping your uid and gid to root, for running without root.")
    var rootless = false

    func run() throws {
        throw ExitCode(ContainerCLI.spec(bundle: bundle, rootless: rootless))
    }
}

extension ContainerCommand {
    /// `swiftlet container run …` without swift-argument-parser, for a `main()` to try first; see
    /// `ContainerCLI.fastPath`. Returns nil for anything else (including --help).
    static func fastPath(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        ContainerCLI.fastPath(Array(arguments.dropFirst()))
    }
}
