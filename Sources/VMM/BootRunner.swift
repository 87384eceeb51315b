// BootRunner: `swiftlet boot` and `swiftlet doctor` from argument list to exit status, shared by the lean
// front end (SwiftletLauncher) and the ArgumentParser CLI, so both behave the same.
//
// BootArguments.parse accepts exactly the options documented in `swiftlet boot --help` (the ArgumentParser
// definition in Sources/swiftlet/BootCommand.swift is the one that prints help); it returns nil for
// anything it does not know (--help, an unknown option), and the front end then hands the whole command
// line to swiftlet-cli, whose parser prints the proper usage error.

public struct BootArguments: Sendable {
    public var configuration = MachineConfiguration()
    public var verbose = false
    /// Where to write the run report (`--report FILE`, see RunReport.swift), if anywhere.
    public var reportPath: String? = nil
    /// The process exits right after the run: the VM is destroyed by a lingering child after it has gone
    /// (Machine.deferTeardown). Off for callers that go on running.
    public var deferTeardown = true

    public init() {}

    /// Parses the arguments after `boot`. Throws for a bad value of a known option; nil for an unknown one.
    public static func parse(_ arguments: [String]) throws(VMMError) -> BootArguments? {
        var result = BootArguments()
        var raw: [String: String] = [:]
        var index = 0
        let valued: Set = ["--kernel", "--guest", "--memory", "--boot", "--timeout", "--cmdline", "--initrd", "--cpus", "--report",
                           "--console", "--virtio-transport", "--console-socket", "--console-file", "--gdb",
                           "--machine", "--module"]
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { result.configuration.initArguments = Array(arguments[index...]); break }
            switch argument {
            case "--trace-exits": result.configuration.traceExits = true; continue
            case "-v", "--verbose": result.verbose = true; continue
            case "--no-backend-profile": result.configuration.backendProfile = false; continue
            case "--decompress": result.configuration.decompressKernel = true; continue
            default: break
            }
            var name = argument, value: String? = nil
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            }
            guard valued.contains(name) else { return nil }
            if value == nil {
                guard index < arguments.count else { return nil }
                value = arguments[index]
                index += 1
            }
            if name == "--module", let value { result.configuration.modules.append(try ModuleSource.parse(value)); continue }
            raw[name] = value
        }
        try result.apply(raw)
        return result
    }

    mutating func apply(_ raw: [String: String]) throws(VMMError) {
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
        if let machine = raw["--machine"] {
            guard let model = MachineModel(rawValue: machine) else { throw .invalidOption("--machine \(machine): unknown machine (use pc or bare)") }
            configuration.machine = model
        }
        if let cpus = raw["--cpus"] {
            guard let n = Int(cpus) else { throw .invalidOption("--cpus \(cpus): not a number") }
            configuration.cpus = n
        }
        try Self.applyConsoleOptions(console: raw["--console"], virtioTransport: raw["--virtio-transport"],
                                     socket: raw["--console-socket"], file: raw["--console-file"], to: &configuration)
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
        let machine: Machine
        do { machine = try Machine.build(arguments.configuration) } catch {
            printError("swiftlet: \(error)")
            if let path = arguments.reportPath { writeReport(RunReport.buildFailure(error), to: path) }
            return error.exitStatus
        }
        if arguments.verbose { for line in machine.bootNotes { printError("swiftlet: \(line)") } }
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
        if let path = arguments.reportPath { writeReport(machine.runReport(outcome: outcome), to: path) }
        if arguments.deferTeardown { machine.deferTeardown() }
        return outcome.exitStatus
    }

    static func writeReport(_ report: RunReport, to path: String) {
        if let failure = report.write(to: path) { printError("swiftlet: cannot write the run report \(path): \(failure)") }
    }

    /// `swiftlet doctor`: prints the report; 0 when all is well, 4 when /dev/kvm is unusable, 6 when the speed test failed.
    public static func doctor(runSpeedTest: Bool) -> Int32 {
        let report = Doctor.examine(runSpeedTest: runSpeedTest)
        ConsoleOutput.writeAll(1, Array((Doctor.render(report) + "\n").utf8))
        if report.openError != nil { return ExitStatus.kvmUnavailable }
        if report.speedTestError != nil { return ExitStatus.guestCrashed }
        return ExitStatus.success
    }
}
