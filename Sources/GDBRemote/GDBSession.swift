// GDBSession: the protocol's state machine for one gdb connection, in all-stop mode (GDB manual,
// Appendix E.2-E.4): it answers queries, reads and writes registers and memory through a GDBTarget,
// manages thread selection (Hg/Hc), and turns resume packets (c, s, vCont) into per-thread actions for
// the VMM. Replies to resume packets are not immediate: the VMM calls `stopped(_:)` when the guest stops
// and sends that stop reply. No fds, no threads, no KVM: the tests drive it packet by packet.
//
// Where the manual leaves a choice, it follows QEMU's gdbstub: thread ids are vCPU numbers + 1, `qAttached`
// says 1 (gdb detaches on quit rather than killing), an unknown packet gets the empty reply. Errors carry
// an errno in hex, as E.1 describes them: E0e (EFAULT) for memory and breakpoints that cannot be placed,
// E16 (EINVAL) for bad arguments, E10 (EBUSY) for a packet other than Ctrl-C while the guest runs. `s` steps the selected thread and leaves the others
// stopped; `vCont` gives each thread the leftmost action that names it (threads no action names stay stopped).

public enum SessionAction: Equatable, Sendable {
    /// Send this payload (framed by the connection).
    case reply([UInt8])
    /// Resume: what each thread should do. The reply follows when the target stops.
    case resume([Int: ResumeAction])
    /// gdb detached: remove every breakpoint and let the guest run.
    case detach
    /// gdb asked to kill the target: end the VM.
    case kill
}

public final class GDBSession {
    public enum State: Equatable, Sendable {
        case stopped(StopEvent)
        case running
    }

    public let target: GDBTarget
    public private(set) var state: State
    /// Set once QStartNoAckMode was agreed: no more `+`/`-`.
    public private(set) var noAckMode = false
    /// The thread `g`, `G`, `p`, `P`, `m`, `M`, `Z` and `monitor` act on (Hg).
    public private(set) var generalThread: Int
    /// The thread `s` steps and `c`'s address applies to (Hc; nil: the general thread).
    public private(set) var continueThread: Int?
    /// The thread the last stop reply named: what `monitor` commands act on unless told otherwise
    /// (gdb's Hg follows whichever thread it last read, e.g. every thread for `info threads`).
    public private(set) var stopThread: Int
    /// Features gdb announced in qSupported (swbreak+, hwbreak+, ...).
    public private(set) var clientFeatures: Set<String> = []

    public init(target: GDBTarget, stoppedBy event: StopEvent) {
        self.target = target
        self.state = .stopped(event)
        self.generalThread = event.thread
        self.stopThread = event.thread
    }

    /// What the stub announces in reply to qSupported.
    public static let supportedFeatures = "PacketSize=\(Hex.string(UInt64(GDBLimits.packetSize)));qXfer:features:read+;swbreak+;hwbreak+;vContSupported+;QStartNoAckMode+"

    public func handle(_ command: GDBCommand) -> [SessionAction] {
        if case .running = state {
            // All-stop: while the guest runs gdb sends nothing but Ctrl-C. Anything else is refused without
            // touching a vCPU (KVM_GET_REGS would wait for the vCPU to leave KVM_RUN).
            return [.reply(error(16))]
        }
        switch command {
        case let .querySupported(features):
            clientFeatures = Set(features.map { String($0.prefix { $0 != "=" }) })
            return [reply(Self.supportedFeatures)]
        case let .readFeatures(annex, offset, length):
            guard annex == "target.xml" else { return [.reply(error(0))] }
            let document = Array(X86Registers.targetDescription.utf8)
            let start = min(offset, document.count)
            let count = min(length, GDBLimits.packetSize - 16, document.count - start)
            let chunk = document[start..<(start + count)]
            return [.reply(Array((start + count >= document.count ? "l" : "m").utf8) + chunk)]
        case .readRegisters:
            guard let registers = target.registers(thread: generalThread) else { return [.reply(error(14))] }
            return [.reply(Hex.encode(registers.encoded()))]
        case let .writeRegisters(bytes):
            guard let registers = X86Registers.decode(bytes) else { return [.reply(error(22))] }
            return [target.setRegisters(registers, thread: generalThread) ? ok : .reply(error(14))]
        case let .readRegister(number):
            guard let registers = target.registers(thread: generalThread) else { return [.reply(error(14))] }
            guard let value = registers.value(of: number) else { return [.reply(error(0))] }
            return [.reply(Hex.encode(value))]
        case let .writeRegister(number, bytes):
            guard var registers = target.registers(thread: generalThread) else { return [.reply(error(14))] }
            guard registers.set(number, to: bytes) else { return [.reply(error(22))] }
            return [target.setRegisters(registers, thread: generalThread) ? ok : .reply(error(14))]
        case let .readMemory(address, length):
            if length == 0 { return [.reply([])] }
            let count = min(length, GDBLimits.memoryTransfer)
            let bytes = target.readMemory(at: address, length: count, thread: generalThread)
            return [.reply(bytes.isEmpty ? error(14) : Hex.encode(bytes.prefix(count)))]
        case let .writeMemory(address, bytes):
            if bytes.isEmpty { return [ok] } // gdb probes X support with a zero-length write
            return [target.writeMemory(bytes, at: address, thread: generalThread) ? ok : .reply(error(14))]
        case let .insertBreakpoint(request):
            return [breakpointReply(target.insertBreakpoint(request, thread: generalThread))]
        case let .removeBreakpoint(request):
            return [breakpointReply(target.removeBreakpoint(request, thread: generalThread))]
        case let .continue(address):
            if let address, !setPC(address, thread: continueThread ?? generalThread) { return [.reply(error(14))] }
            return resume(target.threadIDs.reduce(into: [:]) { $0[$1] = .continue })
        case let .step(address):
            let thread = continueThread ?? generalThread
            if let address, !setPC(address, thread: thread) { return [.reply(error(14))] }
            return resume([thread: .step])
        case .vContQuery:
            return [reply("vCont;c;C;s;S;t")]
        case let .vCont(actions):
            var plan: [Int: ResumeAction] = [:]
            for (action, selector) in actions {
                for thread in target.threadIDs where plan[thread] == nil {
                    switch selector {
                    case .all: plan[thread] = action
                    case .any: if thread == generalThread { plan[thread] = action }
                    case let .thread(id): if id == thread { plan[thread] = action }
                    }
                }
            }
            if case let .thread(id) = actions.first(where: { if case .thread = $0.thread { true } else { false } })?.thread,
               !target.threadIDs.contains(id) {
                return [.reply(error(22))]
            }
            guard plan.values.contains(where: { $0 != .stop }) else { return [.reply(error(22))] }
            return resume(plan)
        case .stopReason:
            guard case let .stopped(event) = state else { return [.reply(error(1))] }
            return [.reply(stopReply(event))]
        case let .setThread(forRegisters, selector):
            switch selector {
            case .all, .any:
                if forRegisters { generalThread = target.threadIDs.contains(generalThread) ? generalThread : (target.threadIDs.first ?? 1) } else {
                    continueThread = nil
                }
            case let .thread(id):
                guard target.threadIDs.contains(id) else { return [.reply(error(22))] }
                if forRegisters { generalThread = id } else { continueThread = id }
            }
            return [ok]
        case let .threadAlive(selector):
            if case let .thread(id) = selector, target.threadIDs.contains(id) { return [ok] }
            return [.reply(error(22))]
        case .firstThreadInfo:
            return [reply("m" + target.threadIDs.map { Hex.string(UInt64($0)) }.joined(separator: ","))]
        case .subsequentThreadInfo:
            return [reply("l")]
        case .currentThread:
            return [reply("QC" + Hex.string(UInt64(generalThread)))]
        case let .threadExtraInfo(selector):
            guard case let .thread(id) = selector, target.threadIDs.contains(id) else { return [.reply(error(22))] }
            return [.reply(Hex.encode(text: target.threadDescription(id)))]
        case .attached:
            return [reply("1")]
        case let .monitor(command):
            return monitorReplies(target.monitor(command, thread: stopThread))
        case .startNoAckMode:
            noAckMode = true
            return [ok]
        case .detach:
            return [ok, .detach]
        case .kill:
            return [.kill]
        case let .malformed(reason):
            _ = reason
            return [.reply(error(22))]
        case .unsupported:
            return [.reply([])]
        }
    }

    /// The target stopped: remember why and return the stop reply to send.
    public func stopped(_ event: StopEvent) -> [UInt8] {
        state = .stopped(event)
        stopThread = event.thread
        // gdb switches to the thread a stop reply names; registers and memory follow it.
        if target.threadIDs.contains(event.thread) { generalThread = event.thread }
        return stopReply(event)
    }

    /// The W packet for a machine that ended with `status` (a process exit status, 0-255).
    public func exited(status: Int32) -> [UInt8] {
        Array("W\(hex2(UInt8(truncatingIfNeeded: status)))".utf8)
    }

    /// "T05thread:01;" with swbreak/hwbreak/watch as gdb asked for them (E.3).
    public func stopReply(_ event: StopEvent) -> [UInt8] {
        var text = "T\(hex2(event.reason.signal))thread:\(Hex.string(UInt64(event.thread)));"
        switch event.reason {
        case .softwareBreakpoint where clientFeatures.contains("swbreak+"): text += "swbreak:;"
        case .hardwareBreakpoint where clientFeatures.contains("hwbreak+"): text += "hwbreak:;"
        case let .watchpoint(type, address):
            let name = switch type {
            case .readWatchpoint: "rwatch"
            case .accessWatchpoint: "awatch"
            default: "watch"
            }
            text += "\(name):\(Hex.string(address));"
        default: break
        }
        return Array(text.utf8)
    }

    // MARK: Helpers

    private func resume(_ plan: [Int: ResumeAction]) -> [SessionAction] {
        state = .running
        return [.resume(plan)]
    }

    private func setPC(_ address: UInt64, thread: Int) -> Bool {
        guard var registers = target.registers(thread: thread) else { return false }
        registers.rip = address
        return target.setRegisters(registers, thread: thread)
    }

    private func breakpointReply(_ reply: BreakpointReply) -> SessionAction {
        switch reply {
        case .ok: ok
        case .unsupported: .reply([])
        case .failed: .reply(error(14))
        }
    }

    /// Monitor output: one hex reply when it fits, else console-output (`O`) packets and a final OK (E.4 qRcmd).
    private func monitorReplies(_ output: String) -> [SessionAction] {
        let bytes = Array(output.utf8)
        if bytes.isEmpty { return [ok] }
        let chunk = GDBLimits.packetSize / 2 - 8
        if bytes.count <= chunk { return [.reply(Hex.encode(bytes))] }
        var replies: [SessionAction] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + chunk, bytes.count)
            replies.append(.reply([UInt8(ascii: "O")] + Hex.encode(bytes[start..<end])))
            start = end
        }
        return replies + [ok]
    }

    private var ok: SessionAction { reply("OK") }
    private func reply(_ text: String) -> SessionAction { .reply(Array(text.utf8)) }
    private func error(_ number: UInt8) -> [UInt8] { Array("E\(hex2(number))".utf8) }
    private func hex2(_ value: UInt8) -> String { String(decoding: Hex.encode(byte: value), as: UTF8.self) }
}
