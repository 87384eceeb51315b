// RunReport: what one `swiftlet boot` run measured, as JSON for `swiftlet compare` (and anyone scripting
// Swiftlet) to read: `swiftlet boot --report FILE ...`. The layout (format "swiftlet-run-report", version 2)
// is defined once in JSON/RunReportFormat.swift, shared with `container run --report`; the keys this side
// writes, in order:
//   side "vm"; backend kvm_pvm|kvm_intel|kvm_amd|unknown; started_ns (CLOCK_MONOTONIC, which every process
//   on the host shares, so a parent can relate it to its own clock)
//   milestones [{ns (after started_ns), name}]    boot milestones (Machine+Milestones)
//   markers [{code, ns (absolute)}]               lab-port markers the guest wrote
//   exits [{reason, count, guest_ns, vmm_ns}]     VM exits by reason (ExitTracer)
//   ram_bytes / ram_resident_bytes                guest RAM configured / resident on the host at the end
//   unmapped_accesses [{access, address, size, value}]   first accesses to guest-physical addresses with
//                                                 neither RAM nor a device
//   port_unassigned_count; unassigned_port_accesses [{access, port, size, value}]
//   cmdline                                       the Linux kernel command line the VMM composed
//   finished_instructions [{mnemonic, count}]     instructions the VMM finished for KVM's emulator
//   outcome                                       debug-exit, command-exit, kernel-panic, halted, reset,
//                                                 triple-fault, emulation-failure, crashed, timeout,
//                                                 vmm-failure, stopped, signal, build-failed
//   debug_exit_value / command_status             what the guest reported
//   message / diagnosis                           what the VMM printed about the end of the run
//   exit_status                                   the status `swiftlet boot` exits with
import Glibc
import JSON
import Seccomp
import GuestMemory
import KVM

/// An access that found nothing behind it: a guest-physical address without RAM or device, or a port
/// without a device.
public struct UnbackedAccess: Sendable, Equatable {
    public var isWrite: Bool
    public var address: UInt64
    public var size: Int
    public var value: UInt64
    /// How many of these a run keeps (the count of port accesses goes on).
    static let recordLimit = 16
}

public struct RunReport: Sendable {
    /// (key, value) entries in the order they were added; RunReportFormat lays them out as JSON.
    public private(set) var entries: [(key: String, value: String)] = []

    public init() {}

    public mutating func add(_ key: String, _ value: String) {
        for line in value.split(separator: "\n", omittingEmptySubsequences: false) {
            entries.append((key, line.filter { $0 != "\r" }))
        }
    }

    public var text: String { RunReportFormat.json(entries).formatted() }

    /// Writes the report to `path` (created or truncated, mode 0644). Returns the errno text on failure.
    /// Writes the report to an open file (one opened before the VMM confined itself).
    public func write(toDescriptor fd: Int32) { ConsoleOutput.writeAll(fd, Array(text.utf8)) }

    public func write(to path: String) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        ConsoleOutput.writeAll(fd, Array(text.utf8))
        close(fd)
        return nil
    }

    /// The report of a run that never started because building the machine failed.
    public static func buildFailure(_ error: VMMError) -> RunReport {
        var report = RunReport()
        report.add("side", "vm")
        report.add("backend", KVMSystem.backend().rawValue)
        report.add("outcome", "build-failed")
        report.add("message", "\(error)")
        report.add("exit_status", String(error.exitStatus))
        return report
    }
}

extension Machine {
    /// Everything this run measured, after `run()` returned `outcome`.
    public func runReport(outcome: MachineOutcome) -> RunReport {
        var report = RunReport()
        report.add("side", "vm")
        report.add("backend", backend.rawValue)
        report.add("started_ns", String(started))
        // A restored machine says so: its started_ns is when the restore began, and nothing booted.
        if let restored = restoredFrom {
            report.add("restored_from", restored.path)
            report.add("restore_ns", String(restored.nanoseconds))
        }
        // Each confined thread's filter, measured: the calls it lets through and the ioctl requests it allows.
        let running = Set(threadAllowlists.map(\.kind))
        for (kind, program) in (Confinement.programs ?? [:]).sorted(by: { $0.key.rawValue < $1.key.rawValue }) where running.contains(kind) {
            let bpf = BPFInterpreter(program: program)
            report.add("seccomp_thread", "\(kind.rawValue) \(bpf.reachableCalls().joined(separator: ",")) \(bpf.allowedValues(of: "ioctl", argument: 1).count)")
        }
        for m in milestones.withLock({ $0 }) { report.add("milestone", "\(m.nanoseconds) \(m.name)") }
        for m in markers.withLock({ $0 }) { report.add("marker", "\(m.code) \(m.nanoseconds)") }
        let table = tracer.table
        for reason in ExitTracer.Reason.allCases {
            guard let row = table[reason] else { continue }
            report.add("exit", "\(reason.name) \(row.count) \(row.guestNanoseconds) \(row.vmmNanoseconds)")
        }
        report.add("ram_bytes", String(memory.totalSize))
        if let resident = memory.residentBytes() { report.add("ram_resident_bytes", String(resident)) }
        for a in unmappedAccesses.withLock({ $0 }) {
            report.add("unmapped", "\(a.isWrite ? "write" : "read") 0x\(hex(a.address)) \(a.size) 0x\(hex(a.value))")
        }
        let ports = unassignedPortAccesses.withLock { $0 }
        report.add("port_unassigned_count", String(ports.count))
        for a in ports.first {
            report.add("port_unassigned", "\(a.isWrite ? "write" : "read") 0x\(hex(a.address)) \(a.size) 0x\(hex(a.value))")
        }
        if format.isLinux { report.add("cmdline", kernelCommandLine) }
        for (mnemonic, count) in finishedInstructions.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            report.add("finished", "\(mnemonic) \(count)")
        }
        report.add("outcome", outcome.kind)
        if case let .debugExit(value, _) = outcome { report.add("debug_exit_value", String(value)) }
        if case let .commandExited(status) = outcome { report.add("command_status", String(status)) }
        if let message = outcome.message { report.add("message", message) }
        if let diagnosis = diagnosis() { report.add("diagnosis", diagnosis) }
        report.add("exit_status", String(outcome.exitStatus))
        return report
    }
}

extension MachineOutcome {
    /// A short machine-readable name for how the run ended.
    public var kind: String {
        switch self {
        case .debugExit: "debug-exit"
        case .commandExited: "command-exit"
        case .kernelPanic: "kernel-panic"
        case .halted: "halted"
        case .reset: "reset"
        case .tripleFault: "triple-fault"
        case .emulationFailure: "emulation-failure"
        case .crashed: "crashed"
        case .timeout, .noConsoleClient: "timeout"
        case .vmmFailure: "vmm-failure"
        case .stoppedByUser, .stoppedByControlSocket: "stopped"
        case .stoppedBySignal: "signal"
        case .snapshotWritten: "snapshot"
        }
    }
}
