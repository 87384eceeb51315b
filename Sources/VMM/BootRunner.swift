// BootRunner: `swiftlet boot` and `swiftlet doctor` from argument list to exit status, shared by the lean
// front end (SwiftletLauncher) and the ArgumentParser CLI, so both behave the same.
//
// BootArguments.parse reads the options BootOptions defines (the one table that also drives --help, the
// suggestions for typos, the man page and the shell completion); anything else is a one-line usage error
// (status 2) that names the word and, for a likely typo, the option meant.
import CLinux
import Glibc

public struct BootArguments: Sendable {
    public var configuration = MachineConfiguration()
    public var verbose = false
    /// Where to write the run report (`--report FILE`, see RunReport.swift), if anywhere.
    public var reportPath: String? = nil
    /// `-h`/`--help` was given: print BootOptions.helpText instead of running anything.
    public var helpRequested = false
    /// The process exits right after the run: the VM is destroyed by a lingering child after it has gone
    /// (Machine.deferTeardown). Off for callers that go on running.
    public var deferTeardown = true

    public init() {}

    /// Parses the arguments after `boot` (or `explain`, which takes the options that do not need a run).
    public static func parse(_ arguments: [String], for subcommand: String = "boot") throws(VMMError) -> BootArguments {
        var result = BootArguments()
        var raw: [String: [String]] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                result.configuration.initArguments = Array(arguments[index...])
                break
            }
            if argument == "-h" || argument == "--help" { result.helpRequested = true; continue }
            var word = argument, inlineValue: String? = nil
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                word = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            guard let option = BootOptions.definition(named: word, for: subcommand) else {
                throw .invalidOption(unknownWordMessage(word, subcommand: subcommand))
            }
            if option.isFlag {
                guard inlineValue == nil || option.inlineValueName != nil else { throw .invalidOption("\(option.name) takes no value") }
                raw[option.name, default: []].append(inlineValue ?? "")
                continue
            }
            let value: String
            if let inlineValue { value = inlineValue } else {
                guard index < arguments.count else { throw .invalidOption("\(option.name) needs a value (\(option.valueName ?? "VALUE"))") }
                value = arguments[index]
                index += 1
            }
            if !option.repeatable && raw[option.name] != nil { throw .invalidOption("\(option.name) was given twice") }
            raw[option.name, default: []].append(value)
        }
        if !result.helpRequested { try result.apply(raw) }
        return result
    }

    /// "unknown option --memroy (did you mean --memory?)", or for a word that is no option at all, where it belongs.
    static func unknownWordMessage(_ word: String, subcommand: String) -> String {
        if !word.hasPrefix("-") {
            return subcommand == "boot"
                ? "unexpected argument '\(word)': a command for a Linux guest goes after -- (swiftlet boot --kernel K --initrd I -- \(word))"
                : "unexpected argument '\(word)' for swiftlet \(subcommand) (see swiftlet \(subcommand) --help)"
        }
        if subcommand != "boot", let definition = BootOptions.definition(named: word, for: "boot") {
            return "\(definition.name) is for swiftlet boot: explain builds the machine and runs nothing"
        }
        let names = BootOptions.options(for: subcommand).map(\.name) + ["--help"]
        if let close = BootOptions.suggestion(for: word, among: names) {
            return "unknown option \(word) for swiftlet \(subcommand) (did you mean \(close)?)"
        }
        return "unknown option \(word) for swiftlet \(subcommand) (see swiftlet \(subcommand) --help)"
    }

    /// Turns the raw values, by option name, into the configuration; a bad value is a VMMError naming the option.
    mutating func apply(_ values: [String: [String]]) throws(VMMError) {
        let raw = values.mapValues { $0.last ?? "" }
        func flag(_ name: String) -> Bool { values[name] != nil }
        if let memory = raw["--memory"] { configuration.memorySize = try MachineConfiguration.parseSize(memory) }
        if let boot = raw["--boot"] {
            guard let mode = BootMode(rawValue: boot) else { throw .invalidOption("--boot \(boot): unknown boot mode (use direct or firmware)") }
            configuration.bootMode = mode
        }
        if raw["--kernel"] != nil && raw["--guest"] != nil { throw .invalidOption("give --kernel or --guest, not both") }
        if let kernel = raw["--kernel"] { configuration.kernel = .file(kernel) }
        if let guest = raw["--guest"] { configuration.kernel = .embedded(guest) }
        if let timeout = raw["--timeout"] {
            guard let seconds = Double(timeout) else { throw .invalidOption("--timeout \(timeout): not a number of seconds") }
            try MachineConfiguration.validateTimeout(seconds, as: timeout)
            configuration.timeout = seconds
        }
        if let cmdline = raw["--cmdline"] { configuration.commandLine = cmdline }
        if let initrd = raw["--initrd"] { configuration.initrd = initrd }
        if let report = raw["--report"] { reportPath = report }
        if let gdb = raw["--gdb"] { configuration.gdb = try GDBEndpoint.parse(gdb) }
        for module in values["--module"] ?? [] { configuration.modules.append(try ModuleSource.parse(module)) }
        try Self.applySnapshotOptions(snapshot: raw["--snapshot"], controlSocket: raw["--control-socket"], to: &configuration)
        if let machine = raw["--machine"] {
            guard let model = MachineModel(rawValue: machine) else { throw .invalidOption("--machine \(machine): unknown machine (use pc or bare)") }
            configuration.machine = model
        }
        if let cpus = raw["--cpus"] {
            guard let n = Int(cpus) else { throw .invalidOption("--cpus \(cpus): not a number") }
            configuration.cpus = n
        }
        configuration.traceExits = flag("--trace-exits")
        if let words = raw["--trace-exits"], !words.isEmpty { configuration.exitTrace = try ExitTraceSettings.parse(words) }
        configuration.backendProfile = !flag("--no-backend-profile")
        configuration.decompressKernel = flag("--decompress")
        configuration.confine = !flag("--no-confine")
        // A snapshot is a file written while the VM runs, and a confined VMM opens no files: a machine that may
        // be snapshotted (--snapshot, or the control socket's snapshot command) runs unconfined (docs/hardening.md).
        if configuration.snapshotPath != nil || configuration.controlSocket != nil { configuration.confine = false }
        configuration.jail = flag("--jail")
        configuration.forwardSignals = flag("--forward-signals")
        if flag("--qemu-exit-status") { configuration.debugExitRule = .qemu }
        verbose = flag("--verbose")
        try Self.applyConsoleOptions(console: raw["--console"], virtioTransport: raw["--virtio-transport"],
                                     socket: raw["--console-socket"], file: raw["--console-file"], to: &configuration)
    }

    /// `--snapshot FILE` and `--control-socket PATH`: shared with swiftlet-cli's BootCommand.
    public static func applySnapshotOptions(snapshot: String?, controlSocket: String?, to configuration: inout MachineConfiguration) throws(VMMError) {
        if let snapshot {
            guard !snapshot.isEmpty else { throw .invalidOption("--snapshot needs a file name") }
            configuration.snapshotPath = snapshot
        }
        if let controlSocket {
            guard !controlSocket.isEmpty else { throw .invalidOption("--control-socket needs a path") }
            configuration.controlSocket = controlSocket
        }
    }

    /// `--console`, `--virtio-transport`, `--console-socket`, `--console-file`: shared with swiftlet-cli's
    /// BootCommand so both parse them alike.
    public static func applyConsoleOptions(console: String?, virtioTransport: String?, socket: String?, file: String?,
                                           to configuration: inout MachineConfiguration) throws(VMMError) {
        if let console {
            guard let kind = ConsoleKind(rawValue: console) else {
                throw .invalidOption("--console \(console): unknown console (use serial or virtio)")
            }
            configuration.console = kind
        }
        if let virtioTransport {
            guard let kind = VirtioTransportKind(rawValue: virtioTransport) else {
                throw .invalidOption("--virtio-transport \(virtioTransport): unknown transport (use mmio or pci)")
            }
            configuration.virtioTransport = kind
        }
        if socket != nil && file != nil { throw .invalidOption("give --console-socket or --console-file, not both") }
        if let socket {
            guard !socket.isEmpty else { throw .invalidOption("--console-socket needs a path") }
            configuration.consoleEndpoint = .socket(socket)
        }
        if let file {
            guard !file.isEmpty else { throw .invalidOption("--console-file needs a path") }
            configuration.consoleEndpoint = .file(file)
        }
    }
}

public enum BootRunner {
    /// Builds and runs the machine, prints what the user should know on stderr, and returns the exit status.
    public static func run(_ arguments: BootArguments) -> Int32 {
        if arguments.configuration.jail {
            // The fork comes before anything KVM: a VM belongs to the process that created it.
            let forked = sl_jail_fork()
            if forked >= 0 { return forked }       // the launcher: the jailed VMM's status
            if forked < -1 {
                printError("swiftlet: --jail: cannot create the namespaces: \(String(cString: strerror(-(forked + 1000)))) (needs root or CAP_SYS_ADMIN)")
                return ExitStatus.kvmUnavailable
            }
        }
        let machine: Machine
        do { machine = try Machine.build(arguments.configuration) } catch {
            printError("swiftlet: \(error)")
            if let path = arguments.reportPath { writeReport(RunReport.buildFailure(error), to: path) }
            return error.exitStatus
        }
        if arguments.verbose { for line in machine.bootNotes { printError("swiftlet: \(line)") } }
        // Opened before the run: a confined VMM opens no files.
        let reportFD = arguments.reportPath.map { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        let reportError = errno
        if arguments.configuration.jail, let failure = Jail.enter() {
            printError("swiftlet: --jail: \(failure)")
            return ExitStatus.kvmUnavailable
        }
        let outcome = machine.run()
        if arguments.configuration.traceExits { printError(machine.tracer.summary()) }
        if arguments.configuration.traceExits || arguments.verbose, let virtio = machine.virtioSummary() { printError("swiftlet: " + virtio) }
        if arguments.verbose { printError("swiftlet: \(machine.tracer.totalExits) VM exits: " + machine.tracer.countsLine()) }
        if arguments.verbose && machine.format.isLinux { printError(machine.timeline()) }
        if let samples = machine.ripSampleReport() { printError(samples) }
        if let finished = machine.finishedInstructionSummary() { printError("swiftlet: \(finished)") }
        if let loss = machine.virtioConsole?.file?.lossReport() { printError("swiftlet: \(loss)") }
        if let message = outcome.message { printError("swiftlet: \(message)") }
        if let diagnosis = machine.diagnosis() { printError("swiftlet: \(diagnosis)") }
        if let path = arguments.reportPath, let fd = reportFD {
            if fd >= 0 { machine.runReport(outcome: outcome).write(toDescriptor: fd); close(fd) }
            else { printError("swiftlet: cannot write the run report \(path): \(String(cString: strerror(reportError)))") }
        }
        if arguments.deferTeardown { machine.deferTeardown() }
        return outcome.exitStatus
    }

    static func writeReport(_ report: RunReport, to path: String) {
        if let failure = report.write(to: path) { printError("swiftlet: cannot write the run report \(path): \(failure)") }
    }

    /// `swiftlet doctor`: prints the report; 0 when all is well, 4 when /dev/kvm is unusable, 6 when the speed test failed.
    public static func doctor(runSpeedTest: Bool, json: Bool = false) -> Int32 {
        let report = Doctor.examine(runSpeedTest: runSpeedTest)
        let text = json ? Doctor.json(report).formatted() : Doctor.render(report) + "\n"
        ConsoleOutput.writeAll(1, Array(text.utf8))
        if report.openError != nil { return ExitStatus.kvmUnavailable }
        if report.speedTestError != nil { return ExitStatus.guestCrashed }
        return ExitStatus.success
    }
}
