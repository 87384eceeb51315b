// ExitTracer: the learning lab's view of the vCPU run loop.
//
// Every KVM_RUN returns to the VMM with an exit reason. With --trace-exits each exit is printed as it
// happens (reason, port or address, size, data, the guest's RIP, which device and which of its registers
// handled it: each device names its own registers, BusDevice.register(at:)), consecutive identical accesses
// folded into one line with their count and values (a UART's bytes as text), and at the end a table gives,
// per reason, how many exits there were, how long the guest ran before them (time inside KVM_RUN) and how
// long the VMM took to handle them, what the trace itself cost, a legend of the registers named, and how
// the run ended. ExitTraceSettings says what is printed (--trace-exits=summary, =all, =io,mmio...).
// Counting is always on and cheap (no allocation per exit); printing happens only when tracing.
import CKVM
import Devices
import GuestMemory
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

    /// A port or MMIO access as the trace prints it: what the guest did and which device register took it.
    public struct Access: Sendable {
        public var vcpu: UInt32
        public var isPort: Bool
        public var isWrite: Bool
        public var address: UInt64
        public var size: Int
        public var value: UInt64
        /// The bus entry's name, and the offset into its range; nil when no device is there.
        public var device: (name: String, offset: UInt64)?
        public var register: BusRegister?
        public var rip: UInt64?

        var reason: Reason { isPort ? .io : .mmio }

        /// Two accesses fold into one line when only their values, times and RIPs differ.
        func sameAs(_ other: Access) -> Bool {
            vcpu == other.vcpu && isPort == other.isPort && isWrite == other.isWrite && address == other.address
                && size == other.size && device?.name == other.device?.name && register?.text == other.register?.text
        }

        /// "out port 0x03f8 1 byte ← 0x53 'S'  → COM1 (8250 UART) +0 THR" or
        /// "read  0xd0000060 4 bytes → 0x00000001  → virtio-mmio console +0x60 InterruptStatus".
        var detail: String {
            let shown = value & mask(size)
            var text = isPort
                ? "\(isWrite ? "out" : "in ") port 0x\(hex(address, width: 4)) \(size) byte\(size == 1 ? "" : "s")"
                : "\(isWrite ? "write" : "read ") 0x\(hex(address, width: 8)) \(size) byte\(size == 1 ? "" : "s")"
            text += " \(isWrite ? "←" : "→") 0x\(hex(shown, width: size * 2))"
            if isWrite && size == 1, let character = ExitTracer.printable(UInt8(shown)) { text += " '\(character)'" }
            if let device {
                text += "  → \(device.name) +\(isPort ? String(device.offset) : "0x" + hex(device.offset))"
                if let register { text += " \(register.text)" }
            } else {
                text += isPort ? "  → no device (reads float high)" : "  → nothing there"
            }
            return text
        }
    }

    /// The repeats of the last printed access, not printed yet.
    private struct Run {
        var first: Access
        var repeats = 0
        var values: [UInt64] = []
        var allSameValue = true
        var otherRIPs = false
        var lastNanoseconds: UInt64 = 0
    }

    private struct Output {
        var run: Run? = nil
        var lines = 0
        var folded = 0
        /// Time spent tracing (reading RIP with KVM_GET_REGS, formatting, writing lines), within the VMM's handling time.
        var nanoseconds: UInt64 = 0
        /// Registers named so far, per device, for the legend.
        var legend: [(device: String, offset: UInt64, isPort: Bool, register: BusRegister)] = []
        var ending: String? = nil
    }

    /// Whether a line is printed per exit (the `summary` form prints none).
    public let printing: Bool
    /// Whether --trace-exits was given at all (gdb's `monitor exits` reads the table without it).
    let requested: Bool
    public let settings: ExitTraceSettings
    private let rows = Mutex([Row](repeating: Row(), count: Reason.allCases.count))
    private let output = Mutex(Output())
    private let start = ckvm_monotonic_ns()
    /// At most this many values or bytes are shown on a folded line.
    static let foldShown = 64

    public init(printing: Bool, settings: ExitTraceSettings = ExitTraceSettings()) {
        self.printing = printing && settings.printsExits
        self.requested = printing
        self.settings = settings
    }

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

    private func stamp(_ nanoseconds: UInt64) -> String { "[\(pad(fixed(Double(nanoseconds) / 1000, 1), 10)) µs]" }

    /// Prints a port or MMIO access, or counts it into the run of identical ones before it. `rip` is read
    /// only when the line is printed (a KVM_GET_REGS).
    public func trace(_ access: Access, rip: () -> UInt64?) {
        guard printing, settings.prints(access.reason) else { return }
        let began = ckvm_monotonic_ns()
        var access = access
        access.rip = rip()
        output.withLock { o in
            if settings.folds, var run = o.run, run.first.sameAs(access) {
                run.repeats += 1
                if run.values.count < Self.foldShown { run.values.append(access.value & mask(access.size)) }
                if access.value & mask(access.size) != run.first.value & mask(run.first.size) { run.allSameValue = false }
                if access.rip != run.first.rip { run.otherRIPs = true }
                run.lastNanoseconds = began - start
                o.run = run
            } else {
                flush(&o)
                emit(&o, "\(stamp(began - start)) vcpu\(access.vcpu) \(pad(access.reason.name, 14, left: false)) \(access.detail)"
                         + (access.rip.map { "  rip=0x\(String($0, radix: 16))" } ?? ""))
                if let device = access.device, let register = access.register, register.meaning != nil,
                   !o.legend.contains(where: { $0.device == device.name && $0.register.name == register.name }) {
                    o.legend.append((device.name, device.offset, access.isPort, register))
                }
                o.run = Run(first: access)
            }
            o.nanoseconds &+= ckvm_monotonic_ns() - began
        }
    }

    /// Prints one exit that is not an access (HLT, a finished instruction ...) as a line on stderr.
    public func printExit(vcpu: UInt32, reason: Reason, detail: String, rip: @autoclosure () -> UInt64?) {
        guard printing, settings.prints(reason) else { return }
        let began = ckvm_monotonic_ns()
        var line = "\(stamp(began - start)) vcpu\(vcpu) \(pad(reason.name, 14, left: false)) \(detail)"
        if let rip = rip() { line += "  rip=0x\(String(rip, radix: 16))" }
        output.withLock { o in
            flush(&o)
            emit(&o, line)
            o.nanoseconds &+= ckvm_monotonic_ns() - began
        }
    }

    /// Prints an event that is not a VM exit (a virtio kick taken by an ioeventfd, an interrupt sent through
    /// an irqfd) in the same format, with `source` where the vCPU goes.
    public func printEvent(source: String, kind: String, detail: String) {
        guard printing, settings.printsVirtioEvents else { return }
        let began = ckvm_monotonic_ns()
        output.withLock { o in
            flush(&o)
            emit(&o, "\(stamp(began - start)) \(pad(source, 5, left: false)) \(pad(kind, 14, left: false)) \(detail)")
            o.nanoseconds &+= ckvm_monotonic_ns() - began
        }
    }

    private func emit(_ o: inout Output, _ line: String) {
        printError(line)
        o.lines += 1
    }

    /// Prints the pending run's one line: how many more identical accesses, and their values (bytes as text).
    private func flush(_ o: inout Output) {
        guard let run = o.run else { return }
        o.run = nil
        guard run.repeats > 0 else { return }
        let a = run.first
        var values: String
        if a.isWrite && a.size == 1, run.values.allSatisfy({ Self.printable(UInt8($0)) != nil }) {
            values = "\"" + run.values.map { Self.escaped(UInt8($0)) }.joined() + (run.repeats > run.values.count ? "…" : "") + "\""
        } else if run.allSameValue {
            values = "each \(a.isWrite ? "←" : "→") 0x\(hex(a.value & mask(a.size), width: a.size * 2))"
        } else {
            values = run.values.map { "0x" + hex($0, width: a.size * 2) }.joined(separator: " ") + (run.repeats > run.values.count ? " …" : "")
        }
        let what = a.register.map { " (\($0.name)\(run.otherRIPs ? ", from other RIPs too" : ""))" } ?? (run.otherRIPs ? " (from other RIPs too)" : "")
        emit(&o, "\(stamp(run.lastNanoseconds)) vcpu\(a.vcpu) \(pad(a.reason.name, 14, left: false)) … and \(run.repeats) more like it\(what): \(values)")
        o.folded += run.repeats
    }

    /// The character a byte prints as in a trace line, if it is printable or a usual control character.
    static func printable(_ byte: UInt8) -> String? {
        switch byte {
        case 0x0A: "\\n"
        case 0x0D: "\\r"
        case 0x09: "\\t"
        case 0x20..<0x7F: String(Character(Unicode.Scalar(byte)))
        default: nil
        }
    }

    static func escaped(_ byte: UInt8) -> String {
        if byte == 0x22 { return "\\\"" }
        if byte == 0x5C { return "\\\\" }
        return printable(byte) ?? "\\x" + hex(byte, width: 2)
    }

    /// Records how the run ended, for the summary's last line.
    func end(_ outcome: MachineOutcome) {
        let how = outcome.message.map { String($0.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") }
        let text: String
        switch outcome {
        case let .debugExit(value, _): text = "the guest wrote 0x\(hex(value)) to the debug-exit port"
        default: text = how ?? "the run ended"
        }
        output.withLock { o in
            flush(&o)
            o.ending = "Run ended: \(text); swiftlet's exit status \(outcome.exitStatus)"
        }
    }

    /// Exit counts by reason on one line, e.g. "IO 1234, MMIO 5, HLT 1".
    public func countsLine() -> String {
        let t = table
        return Reason.allCases.compactMap { r in t[r].map { "\(r.name) \($0.count)" } }.joined(separator: ", ")
    }

    /// The closing table, written for a reader who is learning what exits cost: the counts and times, what the
    /// trace itself cost, the registers named above, and how the run ended (the last line).
    public func summary() -> String {
        let t = table
        let o = output.withLock { o in flush(&o); return o }
        var lines = ["", "VM exits: every time the guest stops running and KVM_RUN returns to Swiftlet",
                     "  reason          count   in guest before   in VMM handling   VMM per exit   meaning"]
        var vmm: UInt64 = 0
        for reason in Reason.allCases {
            guard let row = t[reason] else { continue }
            vmm &+= row.vmmNanoseconds
            let per = row.count > 0 ? Double(row.vmmNanoseconds) / Double(row.count) / 1000 : 0
            lines.append("  \(pad(reason.name, 14, left: false)) \(pad(String(row.count), 6))   "
                         + "\(pad(fixed(Double(row.guestNanoseconds) / 1e6, 3) + " ms", 15))   "
                         + "\(pad(fixed(Double(row.vmmNanoseconds) / 1e6, 3) + " ms", 15))   "
                         + "\(pad(fixed(per, 2) + " µs", 12))   \(reason.explanation)")
        }
        lines.append("  total           \(pad(String(totalExits), 6))")
        if printing {
            let folded = o.folded > 0 ? ", \(o.folded) exits folded into \"… and N more\" lines" : ""
            lines.append("The times include this trace's own cost: \(fixed(Double(o.nanoseconds) / 1e6, 3)) ms of the VMM's "
                         + "\(fixed(Double(vmm) / 1e6, 3)) ms went to tracing (a KVM_GET_REGS per traced exit for its rip, "
                         + "\(o.lines) lines written to stderr\(folded)). --trace-exits=summary counts without printing; "
                         + "docs/benchmarks.md times runs without tracing.")
        } else if requested {
            lines.append("No line was printed per exit (--trace-exits=summary): the times are an untraced run's plus counting.")
        }
        if !o.legend.isEmpty {
            lines.append("Registers named above:")
            // Registers of one device that share a meaning (virtio's common configuration fields) share a line.
            var done = Set<Int>()
            for (i, entry) in o.legend.enumerated() where !done.contains(i) {
                let same = o.legend.indices.filter { o.legend[$0].device == entry.device && o.legend[$0].register.meaning == entry.register.meaning }
                done.formUnion(same)
                if same.count == 1 {
                    let offset = entry.isPort ? "+\(entry.offset)" : "+0x\(hex(entry.offset))"
                    lines.append("  \(pad(entry.register.name, 14, left: false)) \(entry.device) \(offset): \(entry.register.meaning ?? "")")
                } else {
                    lines.append("  \(same.map { o.legend[$0].register.name }.joined(separator: ", ")) (\(entry.device)): \(entry.register.meaning ?? "")")
                }
            }
        }
        if let ending = o.ending { lines.append(ending) }
        return lines.joined(separator: "\n")
    }
}

func pad(_ s: String, _ width: Int, left: Bool = true) -> String {
    s.count >= width ? s : (left ? String(repeating: " ", count: width - s.count) + s : s + String(repeating: " ", count: width - s.count))
}

