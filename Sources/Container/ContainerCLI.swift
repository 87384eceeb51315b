// ContainerCLI: what `swiftlet container run` and `swiftlet container spec` do once their arguments
// are parsed: build the spec, run it, print warnings, findings and errors as one line each on stderr
// ("swiftlet container: <step>: <what> (<errno text>)"), and return the exit status: the command's
// own, 128+N when signal N ended it, 125 when the launcher failed, 126/127 when the command could
// not be executed or found.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum ContainerCLI {
    /// Runs a container for `options`; returns the exit status.
    public static func run(_ options: RunOptions) -> Int32 {
        do {
            let spec = try options.makeSpec { printError("warning: \($0)") }
            var launch = LaunchOptions()
            launch.baseDirectory = options.baseDirectory
            launch.warn = { printError("warning: \($0)") }
            launch.recordTimings = options.timings || options.report != nil
            let result = try Launcher.run(spec, options: launch)
            for notice in result.notices { printError(notice) }
            for warning in result.warnings { printError("warning: \(warning)") }
            if options.timings { printTimings(result.timings) }
            if let path = options.report { writeReport(ContainerReport.make(result), to: path) }
            return result.exitStatus
        } catch {
            printError(error.description)
            if let path = options.report { writeReport(ContainerReport.make(error), to: path) }
            return error.exitStatus
        }
    }

    static func writeReport(_ text: String, to path: String) {
        do { try FileSystem.write(text, to: path, create: true) } catch {
            printError("cannot write the run report \(path) (\(error.description))")
        }
    }

    /// For a front end that runs `container run` without swift-argument-parser: `arguments` are the
    /// program's arguments after its name ("container", "run", options…, command…). Returns the exit
    /// status, or nil when this is not `container run` or help was asked for (hand those to the full
    /// CLI). Parsing with ArgumentParser costs about a millisecond of start-up (reflection and
    /// protocol-conformance lookups) and a few MiB of resident memory, on a path meant to be fast.
    public static func fastPath(_ arguments: [String]) -> Int32? {
        guard arguments.count >= 2, arguments[0] == "container", arguments[1] == "run" else { return nil }
        let rest = Array(arguments.dropFirst(2))
        for argument in rest {
            if argument == "--" || !argument.hasPrefix("-") { break }
            if argument == "--help" || argument == "-h" { return nil }
        }
        return run(arguments: rest)
    }

    /// `container run` from raw arguments, without swift-argument-parser: for a front end's fast path.
    public static func run(arguments: [String]) -> Int32 {
        do {
            return run(try RunOptions.parse(arguments))
        } catch {
            printError(error.description)
            return error.exitStatus
        }
    }

    /// `container spec`: writes config.json into `bundle` (default: the current directory).
    public static func spec(bundle: String?, rootless: Bool) -> Int32 {
        do {
            _ = try ContainerSpec.writeTemplate(bundle: bundle ?? ".", rootless: rootless)
            return 0
        } catch {
            printError(error.description)
            return error.exitStatus
        }
    }

    /// The --timings table: one line per step, launcher steps flush left, container steps indented.
    static func printTimings(_ timings: [StepTiming]) {
        var total: UInt64 = 0
        for timing in timings {
            total += timing.nanoseconds
            let microseconds = String(timing.nanoseconds / 1000)
            let pad = String(repeating: " ", count: max(0, 8 - microseconds.count))
            let indent = timing.side == .container ? "    container  " : "    launcher   "
            printError("\(indent)\(timing.step)\(String(repeating: " ", count: max(1, 24 - timing.step.count)))\(pad)\(microseconds) µs")
        }
        printError("    total\(String(repeating: " ", count: 34))\(total / 1000) µs")
    }

    /// One line on stderr, prefixed "swiftlet container: ".
    public static func printError(_ line: String) {
        let text = "swiftlet container: " + line + "\n"
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}
