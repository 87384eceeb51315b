// GDBTarget: what the protocol needs from the machine it debugs, as a protocol the session calls while
// every vCPU is stopped. The VMM implements it over KVM and guest memory (Sources/VMM/Machine+GDB.swift);
// the unit tests and the fuzz target implement it over plain arrays. Threads are gdb's thread ids: vCPU
// number + 1 (gdb reserves 0 for "any" and -1 for "all").

public enum BreakpointReply: Equatable, Sendable {
    case ok
    /// This kind is not available here: the empty reply, so gdb knows not to try it again.
    case unsupported
    /// It could not be done (unmapped address, no free debug register): an error reply.
    case failed(String)
}

public protocol GDBTarget: AnyObject {
    /// The thread ids gdb sees, in order.
    var threadIDs: [Int] { get }
    func registers(thread: Int) -> X86Registers?
    func setRegisters(_ registers: X86Registers, thread: Int) -> Bool
    /// Up to `length` bytes at a guest-virtual address; fewer where the readable range ends (none at all:
    /// the first byte is not mapped or not RAM).
    func readMemory(at address: UInt64, length: Int, thread: Int) -> [UInt8]
    func writeMemory(_ bytes: [UInt8], at address: UInt64, thread: Int) -> Bool
    func insertBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply
    func removeBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply
    /// The output of a `monitor` command (MonitorCommand.swift lists them).
    func monitor(_ command: String, thread: Int) -> String
    /// One line about a thread for `info threads`: "vCPU 0, 64-bit, CPL 0".
    func threadDescription(_ thread: Int) -> String
}

/// Why the target stopped, as a stop reply says it (GDB manual, Appendix E.3 "Stop Reply Packets").
public enum StopReason: Equatable, Sendable {
    /// Waiting before the first instruction, or stopped when gdb attached: SIGTRAP.
    case attached
    /// Ctrl-C from gdb: SIGINT.
    case interrupted
    /// An int3 the stub placed: SIGTRAP with `swbreak`.
    case softwareBreakpoint
    /// A debug-register execution breakpoint: SIGTRAP with `hwbreak`.
    case hardwareBreakpoint
    /// A debug-register data watchpoint at `address`: SIGTRAP with `watch`, `rwatch` or `awatch`.
    case watchpoint(BreakpointType, address: UInt64)
    /// A single step finished: SIGTRAP.
    case step
    /// The guest is about to end badly (a triple fault): the signal that best says so, e.g. SIGSEGV.
    case fault(signal: UInt8)

    /// The POSIX signal number gdb is told (gdb's remote numbering equals Linux's for these).
    public var signal: UInt8 {
        switch self {
        case .interrupted: 2
        case let .fault(signal): signal
        default: 5
        }
    }
}

public struct StopEvent: Equatable, Sendable {
    public var thread: Int
    public var reason: StopReason
    /// A line gdb prints before it reports the stop (sent as console output, an `O` packet): why a step
    /// did not move, say.
    public var notice: String?
    public init(thread: Int, reason: StopReason, notice: String? = nil) {
        self.thread = thread; self.reason = reason; self.notice = notice
    }
}
