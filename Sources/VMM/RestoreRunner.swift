// RestoreRunner: `swiftlet restore FILE [options] [-- COMMAND]` from argument list to exit status, shared by
// the lean front end (SwiftletLauncher, where it runs: restore time is what a snapshot is for) and
// swiftlet-cli's RestoreCommand (help and the same parse).
//
// The options a restore takes either must match the snapshot (--memory, --cpus, --console: given, they are
// checked, and a difference is refused with status 2 before any VM exists) or concern this run only
// (--timeout, --control-socket, whose `snapshot PATH` snapshots the restored VM again, --report, -v). A COMMAND after
// `--` goes to a restored minimal Linux's init, which waits for one after its snapshot (docs/10-snapshots.md).
import CKVM

public struct RestoreArguments: Sendable {
    public var path = ""
    public var expected = RestoreExpectations()
    public var timeout: Double? = nil
    public var verbose = false
    public var controlSocket: String? = nil
    /// Where to write the run report (`--report FILE`, RunReport.swift); it names the snapshot (restored_from).
    public var reportPath: String? = nil
    public var command: [String] = []

    public init() {}

    /// Parses the arguments after `restore`; nil for --help or an option it does not know.
    public static func parse(_ arguments: [String]) throws(VMMError) -> RestoreArguments? {
        var result = RestoreArguments()
        var index = 0
        var file: String? = nil
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { result.command = Array(arguments[index...]); break }
            if argument == "-v" || argument == "--verbose" { result.verbose = true; continue }
            var name = argument, value: String? = nil
            if let equals = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            }
            guard name.hasPrefix("-") else {
                guard file == nil else { throw .invalidOption("restore takes one snapshot file; '\(argument)' is a second (a command goes after --)") }
                file = argument
                continue
            }
            guard ["--memory", "--cpus", "--console", "--timeout", "--control-socket", "--report"].contains(name) else { return nil }
            if value == nil {
                guard index < arguments.count else { throw .invalidOption("\(name) needs a value") }
                value = arguments[index]
                index += 1
            }
            let v = value!
            switch name {
            case "--memory": result.expected.memorySize = try MachineConfiguration.parseSize(v)
            case "--cpus":
                guard let n = Int(v), n >= 1 else { throw .invalidOption("--cpus \(v): not a number of vCPUs") }
                result.expected.cpus = n
            case "--console":
                guard let kind = ConsoleKind(rawValue: v) else { throw .invalidOption("--console \(v): unknown console (use serial or virtio)") }
                result.expected.console = kind
            case "--timeout":
                guard let seconds = Double(v) else { throw .invalidOption("--timeout \(v): not a number of seconds") }
                try MachineConfiguration.validateTimeout(seconds, as: v)
                result.timeout = seconds
            case "--report":
                guard !v.isEmpty else { throw .invalidOption("--report needs a file name") }
                result.reportPath = v
            default:
                guard !v.isEmpty else { throw .invalidOption("--control-socket needs a path") }
                result.controlSocket = v
            }
        }
        guard let file, !file.isEmpty else { throw .invalidOption("restore needs a snapshot file: swiftlet restore FILE [-- COMMAND]") }
        result.path = file
        return result
    }
}

public enum RestoreRunner {
    /// Restores and runs the machine; returns the exit status (2 for a refused file, before any VM exists).
    public static func run(_ arguments: RestoreArguments) -> Int32 {
        let machine: Machine
        do {
            machine = try Machine.restore(from: arguments.path, expecting: arguments.expected, timeout: arguments.timeout,
                                          controlSocket: arguments.controlSocket, command: arguments.command, confine: true)
        } catch {
            printError("swiftlet: \(error)")
            if let path = arguments.reportPath { BootRunner.writeReport(RunReport.buildFailure(error), to: path) }
            return error.exitStatus
        }
        if arguments.verbose {
            for line in machine.bootNotes { printError("swiftlet: \(line)") }
            if let restored = machine.restoredFrom { printError("swiftlet: restored in \(formatMilliseconds(restored.nanoseconds)) (file checked, VM built, RAM mapped, state set)") }
        }
        let outcome = machine.run()
        if arguments.verbose {
            printError("swiftlet: \(machine.tracer.totalExits) VM exits: " + machine.tracer.countsLine())
            printError(machine.restoreTimeline())
        }
        if let samples = machine.ripSampleReport() { printError(samples) }
        if let message = outcome.message { printError("swiftlet: \(message)") }
        if let path = arguments.reportPath { BootRunner.writeReport(machine.runReport(outcome: outcome), to: path) }
        // As after a boot: the VM's destruction (RCU grace periods, 15 ms here) happens after we have exited.
        machine.deferTeardown()
        return outcome.exitStatus
    }
}

func formatMilliseconds(_ nanoseconds: UInt64) -> String {
    let tenths = nanoseconds / 10_000
    return "\(tenths / 100).\(tenths % 100 < 10 ? "0" : "")\(tenths % 100) ms"
}
