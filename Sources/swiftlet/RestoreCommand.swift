// `swiftlet restore`: start a VM from a snapshot file instead of booting one. The lean front end runs it
// (RestoreRunner, Sources/VMM); this declaration gives `swiftlet restore --help` and parses the same options
// when swiftlet-cli is called directly.
import ArgumentParser
import VMM

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Start a VM from a snapshot written by `swiftlet boot --snapshot` or a control socket's `snapshot`.",
        discussion: """
        Guest RAM is mapped from FILE copy-on-write (pages load on first touch), so many restores of one \
        file can run at once and share its page cache. The file is checked first (checksum, format version, \
        KVM backend, CPU vendor, and --memory/--cpus/--console when given): a refusal is one line and exit \
        status 2, and no VM is started. A COMMAND after -- goes to a restored minimal Linux's init, and the \
        VM ends with its exit status. See docs/10-snapshots.md.
        """
    )

    @Argument(help: ArgumentHelp("The snapshot file.", valueName: "FILE"))
    var file: String

    @Option(help: ArgumentHelp("Refuse the snapshot unless its machine has SIZE of RAM.", valueName: "SIZE"))
    var memory: String?

    @Option(help: ArgumentHelp("Refuse the snapshot unless its machine has N vCPUs.", valueName: "N"))
    var cpus: Int?

    @Option(help: ArgumentHelp("Refuse the snapshot unless its machine has this console (serial).", valueName: "KIND"))
    var console: String?

    @Option(help: ArgumentHelp("Stop the restored guest after SECONDS (exit status 8).", valueName: "SECONDS"))
    var timeout: Double?

    @Option(help: ArgumentHelp("Take one-line commands on a Unix socket at PATH: pause, resume, snapshot FILE, status, stop.", valueName: "PATH"))
    var controlSocket: String?

    @Option(help: ArgumentHelp("Write a machine-readable run report to FILE (as `swiftlet boot --report`, with restored_from).", valueName: "FILE"))
    var report: String?

    @Flag(name: .shortAndLong, help: "Print the restore's steps and timeline.")
    var verbose = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command a restored minimal Linux runs.", valueName: "COMMAND"))
    var command: [String] = []

    func run() throws {
        var words = [file]
        if let memory { words += ["--memory", memory] }
        if let cpus { words += ["--cpus", String(cpus)] }
        if let console { words += ["--console", console] }
        if let timeout { words += ["--timeout", String(timeout)] }
        if let controlSocket { words += ["--control-socket", controlSocket] }
        if let report { words += ["--report", report] }
        if verbose { words.append("-v") }
        if !command.isEmpty { words += ["--"] + command }
        do {
            guard let arguments = try RestoreArguments.parse(words) else { throw ExitCode(ExitStatus.badInput) }
            throw ExitCode(RestoreRunner.run(arguments))
        } catch let error as VMMError {
            printError("swiftlet: \(error)")
            throw ExitCode(error.exitStatus)
        }
    }
}
