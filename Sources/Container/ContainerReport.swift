// ContainerReport: what one `swiftlet container run --report FILE` measured, as the JSON run report the VMM
// writes too (layout: JSON/RunReportFormat.swift), so `swiftlet compare` reads both sides with one parser.
//
// The keys this side writes (a record's fields in brackets):
//   side container
//   started_ns N                          when the launcher began (CLOCK_MONOTONIC, shared by all processes)
//   steps [{side, name, at_ns}]           a setup step of the launcher or the container ended at absolute
//                                         time at_ns ("exec done": the launcher
//                                         saw the command's execve succeed; "exec": the child began execve)
//   pid N                                 the container's PID 1 as the host sees it
//   exit_status N / signal N              how PID 1 ended (the status `container run` exits with)
//   maxrss_launcher_kib N                 the launcher's own peak resident set (getrusage RUSAGE_SELF)
//   maxrss_contained_kib N                the largest peak among the reaped container processes
//                                         (getrusage RUSAGE_CHILDREN: a maximum, not a sum)
//   cgroup_memory_peak_bytes N            the container cgroup's memory peak, when it had one
//   error TEXT / error_step NAME          why the container could not run its command
//   seccomp_surface x86_64 N i386 M x32 K  the calls its seccomp filter lets through (measured), or "none"
import Seccomp
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum ContainerReport {
    /// The report of a run that reached the command.
    public static func make(_ result: RunResult) -> String {
        var lines = ["side container", "started_ns \(result.startedNanoseconds)"]
        var at = result.startedNanoseconds
        for step in result.timings {
            at &+= step.nanoseconds
            lines.append("step \(step.side.rawValue) \(step.step) \(at)")
        }
        lines.append("pid \(result.pid)")
        lines.append("exit_status \(result.exitStatus)")
        if let signal = result.signal { lines.append("signal \(signal)") }
        lines += usageLines()
        if let peak = result.cgroup?.memoryPeakBytes { lines.append("cgroup_memory_peak_bytes \(peak)") }
        // The calls the container's filter lets through, per ABI, measured by running it over every call.
        lines.append("seccomp_surface " + (result.seccompProgram.map { BPFInterpreter(program: $0).surfaceLine } ?? "none"))
        return document(lines)
    }

    /// The report of a run that failed before or at the command's execve.
    public static func make(_ error: ContainerError) -> String {
        var lines = ["side container", "error_step \(error.step)"]
        lines += error.description.split(separator: "\n").map { "error \($0)" }
        lines.append("exit_status \(error.exitStatus)")
        lines += usageLines()
        return document(lines)
    }

    /// "KEY VALUE" lines as the report's JSON text.
    static func document(_ lines: [String]) -> String {
        RunReportFormat.json(lines.map { line in
            guard let space = line.firstIndex(of: " ") else { return (line, "") }
            return (String(line[..<space]), String(line[line.index(after: space)...]))
        }).formatted()
    }

    static func usageLines() -> [String] {
        var lines: [String] = []
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 { lines.append("maxrss_launcher_kib \(usage.ru_maxrss)") }
        if getrusage(RUSAGE_CHILDREN.rawValue, &usage) == 0, usage.ru_maxrss > 0 { lines.append("maxrss_contained_kib \(usage.ru_maxrss)") }
        return lines
    }
}
