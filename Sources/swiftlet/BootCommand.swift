// `swiftlet boot`: build a VM from the options and run it; the exit status is the guest's debug-exit
// status (odd), 0 for a halt or reset, or one of Swiftlet's even statuses (see VMM/VMMError.swift).
import ArgumentParser
import Glibc
import VMM

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot a tiny guest (default: the embedded 'hello'), a multiboot kernel or Linux.",
        discussion: """
        Exit status: odd = the guest's debug-exit value v as (v << 1) | 1 (QEMU's isa-debug-exit rule), \
        0 = guest halted or reset, 2 = bad input, 4 = KVM unavailable or failed, 6 = guest crashed \
        (triple fault, emulation failure), 8 = timeout, 128 + N = stopped by signal N (SIGTERM, SIGINT, \
        SIGHUP shut the VM down cleanly).
        """
    )

    @OptionGroup var machine: MachineOptions

    @Flag(name: .shortAndLong, help: "Print what the VMM set up before the guest runs.")
    var verbose = false

    @Option(help: ArgumentHelp("Write a machine-readable run report (milestones, markers, VM exits, memory) to FILE.", valueName: "FILE"))
    var report: String?

    @Option(help: ArgumentHelp("Wait for gdb on ADDRESS before the first instruction: 127.0.0.1:PORT (:PORT, PORT; 0 picks a free port) or a Unix socket path. Loopback only. See docs/09-gdb.md.", valueName: "ADDRESS"))
    var gdb: String?

    @Option(help: ArgumentHelp("Write a snapshot to FILE when the guest writes the snapshot marker (the minimal Linux's init: when it is ready for a command), then stop. Restore it with `swiftlet restore FILE`. See docs/10-snapshots.md.", valueName: "FILE"))
    var snapshot: String?

    @Option(help: ArgumentHelp("Take one-line commands on a Unix socket at PATH: pause, resume, snapshot FILE, status, stop. SIGUSR1 pauses, SIGUSR2 resumes.", valueName: "PATH"))
    var controlSocket: String?

    func run() throws {
        var arguments = BootArguments()
        do {
            arguments.configuration = try machine.configuration()
            if let gdb { arguments.configuration.gdb = try GDBEndpoint.parse(gdb) }
            try BootArguments.applySnapshotOptions(snapshot: snapshot, controlSocket: controlSocket, to: &arguments.configuration)
        } catch {
            printError("swiftlet: \(error)")
            throw ExitCode(error.exitStatus)
        }
        arguments.verbose = verbose
        arguments.reportPath = report
        throw ExitCode(BootRunner.run(arguments))
    }
}
