// ExitTracer: the learning lab's view of the vCPU run loop.
//
// Every KVM_RUN returns to the VMM with an exit reason. With --trace-exits each exit is printed as it
// happens (reason, port or address, size, data, the guest's RIP, which device handled it) and at the end
// a table gives, per reason, how many exits there were, how long the guest ran before them (time inside
// KVM_RUN) and how long the VMM took to handle them. Counting is always on and cheap (no allocation per
// exit); printing happens only when tracing.
import CKVM
import KVM
import Synchronization

public final class ExitTracer: @unchecked Sendable {
    public enum Reason: Int, CaseIterable, Sendable {
        case io, mmio, hlt, shutdown, failEntry, internalError, systemEvent, unknown, interrupted, debug, other

        public var name: String {
            switch self {
            case .io: "IO"
            case .mmio: "MMIO"
            case .hlt: "HLT"
            case .shutdown: "SHUTDOWN"
            case .failEntry: "FAIL_ENTRY"
            case .internalError: "INTERNAL_ERROR"
            case .systemEvent: "SYSTEM_EVENT"
            case .unknown: "UNKNOWN"
            case .interrupted: "INTR"
            case .debug: "DEBUG"
            case .other: "OTHER"
            }
        }

        /// One sentence for a learner: what made the CPU leave the guest.
        public var explanation: String {
            switch self {
            case .io: "the guest ran IN/OUT on an I/O port; the VMM's port bus answered it"
            case .mmio: "the guest touched a physical address with no RAM behind it; the VMM's MMIO bus answered"
            case .hlt: "the guest ran HLT (waits for an interrupt); without an in-kernel irqchip the VMM decides"
            case .shutdown: "the CPU shut down: a triple fault (an exception while delivering an exception)"
            case .failEntry: "the hardware refused to enter the guest with the state it was given"
            case .internalError: "KVM could not go on, e.g. its instruction emulator met an instruction it lacks"
            case .systemEvent: "the guest asked for a reset or power-off through a firmware interface"
            case .unknown: "the hardware exited for a reason KVM could not map"
            case .interrupted: "KVM_RUN was interrupted by a signal (a kick from the VMM, or one the process got, e.g. SIGWINCH); not the guest's doing"
            case .debug: "the debugger's single step or breakpoint stopped the guest (KVM_SET_GUEST_DEBUG, swiftlet boot --gdb)"
            case .other: "an exit reason Swiftlet does not expect"
            }
        }
    }

    public struct Row: Sendable {
        public var count = 0
        public var guestNanoseconds: UInt64 = 0
        public var vmmNanoseconds: UInt64 = 0
    }

    public let printing: Bool
    private let rows = Mutex([Row](repeating: Row(), count: Reason.allCases.count))
    private let start = ckvm_monotonic_ns()

    public init(printing: Bool) { self.printing = printing }

    public func record(_ reason: Reason, guestNanoseconds: UInt64, vmmNanoseconds: UInt64) {
        rows.withLock { r in
            r[reason.rawValue].count += 1
            r[reason.rawValue].guestNanoseconds &+= guestNanoseconds
            r[reason.rawValue].vmmNanoseconds &+= vmmNanoseconds
        }
    }

    public var table: [Reason: Row] {
        let r = rows.withLock { $0 }
        var result: [Reason: Row] = [:]
        for reason in Reason.allCases where r[reason.rawValue].count > 0 { result[reason] = r[reason.rawValue] }
        return result
    }

    public var totalExits: Int { rows.withLock { $0.reduce(0) { $0 + $1.count } } }

    /// Prints one exit as a line on stderr.
    public func printExit(vcpu: UInt32, reason: Reason, detail: String, rip: UInt64?) {
        let t = Double(ckvm_monotonic_ns() - start) / 1000
        var line = "[\(pad(fixed(t, 1), 10)) µs] vcpu\(vcpu) \(pad(reason.name, 14, left: false)) \(detail)"
        if let rip { line += "  rip=0x\(String(rip, radix: 16))" }
        printError(line)
    }

    /// Exit counts by reason on one line, e.g. "IO 1234, MMIO 5, HLT 1".
    public func countsLine() -> String {
        let t = table
        return Reason.allCases.compactMap { r in t[r].map { "\(r.name) \($0.count)" } }.joined(separator: ", ")
    }

    /// Prints an event that is not a VM exit (a virtio kick taken by an ioeventfd, an interrupt sent through
    /// an irqfd) in the same format, with `source` where the vCPU goes.
    public func printEvent(source: String, kind: String, detail: String) {
        let t = Double(ckvm_monotonic_ns() - start) / 1000
        printError("[\(pad(fixed(t, 1), 10)) µs] \(pad(source, 5, left: false)) \(pad(kind, 14, left: false)) \(detail)")
    }

    /// The closing table, written for a reader who is learning what exits cost.
    public func summary() -> String {
        let t = table
        var lines = ["", "VM exits: every time the guest stops running and KVM_RUN returns to Swiftlet",
                     "  reason          count   in guest before   in VMM handling   VMM per exit   meaning"]
        for reason in Reason.allCases {
            guard let row = t[reason] else { continue }
            let per = row.count > 0 ? Double(row.vmmNanoseconds) / Double(row.count) / 1000 : 0
            lines.append("  \(pad(reason.name, 14, left: false)) \(pad(String(row.count), 6))   "
                         + "\(pad(fixed(Double(row.guestNanoseconds) / 1e6, 3) + " ms", 15))   "
                         + "\(pad(fixed(Double(row.vmmNanoseconds) / 1e6, 3) + " ms", 15))   "
                         + "\(pad(fixed(per, 2) + " µs", 12))   \(reason.explanation)")
        }
        lines.append("  total           \(pad(String(totalExits), 6))")
        return lines.joined(separator: "\n")
    }
}

func pad(_ s: String, _ width: Int, left: Bool = true) -> String {
    s.count >= width ? s : (left ? String(repeating: " ", count: width - s.count) + s : s + String(repeating: " ", count: width - s.count))
}

