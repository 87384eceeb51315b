// ContainerReport: what one `swiftlet container run --report FILE` measured, in the line format of the
// VMM's run report (Sources/VMM/RunReport.swift), so `swiftlet compare` reads both sides with one parser.
//
// Format version 1: "swiftlet-run-report 1", then "KEY VALUE" lines:
//   side container
//   started_ns N                          when the launcher began (CLOCK_MONOTONIC, shared by all processes)
//   step launcher|container NAME N        a setup step ended at absolute time N ("exec done": the launcher
//                                         saw the command's execve succeed; "exec": the child began execve)
//   pid N                                 the container's PID 1 as the host sees it
//   exit_status N / signal N              how PID 1 ended (the status `container run` exits with)
//   maxrss_launcher_kib N                 the launcher's own peak resident set (getrusage RUSAGE_SELF)
//   maxrss_contained_kib N                the largest peak among the reaped container processes
//                                         (getrusage RUSAGE_CHILDREN: a maximum, not a sum)
//   cgroup_memory_peak_bytes N            the container cgroup's memory peak, when it had one
//   error TEXT / error_step NAME          why the container could not run its command
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum ContainerReport {
    public static let header = "swiftlet-run-report 1"

    /// The report of a run that reached the command.
    public static func make(_ result: RunResult) -> String {
        var lines = [header, "side container", "started_ns \(result.startedNanoseconds)"]
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
        return lines.joined(separator: "\n") + "\n"
    }

    /// The report of a run that failed before or at the command's execve.
    public static func make(_ error: ContainerError) -> String {
        var lines = [header, "side container", "error_step \(error.step)"]
        lines += error.description.split(separator: "\n").map { "error \($0)" }
        lines.append("exit_status \(error.exitStatus)")
        lines += usageLines()
        return lines.joined(separator: "\n") + "\n"
    }

    static func usageLines() -> [String] {
        var lines: [String] = []
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 { lines.append("maxrss_launcher_kib \(usage.ru_maxrss)") }
        if getrusage(RUSAGE_CHILDREN.rawValue, &usage) == 0, usage.ru_maxrss > 0 { lines.append("maxrss_contained_kib \(usage.ru_maxrss)") }
        return lines
    }
}
