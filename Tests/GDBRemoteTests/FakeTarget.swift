// FakeTarget: a GDBTarget over plain values, so the session is tested packet by packet without KVM.
import GDBRemote

final class FakeTarget: GDBTarget {
    var threadIDs: [Int]
    var registerFiles: [Int: X86Registers] = [:]
    /// Guest-virtual memory: readable where a byte is present.
    var memory: [UInt64: UInt8] = [:]
    var inserted: [BreakpointRequest] = []
    var monitorCommands: [String] = []
    var monitorOutput = "ok\n"

    init(threads: Int = 1) {
        threadIDs = Array(1...threads)
        for t in threadIDs {
            var r = X86Registers()
            r.rip = 0x100000 + UInt64(t)
            r.generalPurpose[0] = 0x1122334455667788
            registerFiles[t] = r
        }
    }

    func registers(thread: Int) -> X86Registers? { registerFiles[thread] }
    func setRegisters(_ registers: X86Registers, thread: Int) -> Bool {
        guard registerFiles[thread] != nil else { return false }
        registerFiles[thread] = registers
        return true
    }
    func readMemory(at address: UInt64, length: Int, thread: Int) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<length {
            guard let byte = memory[address &+ UInt64(i)] else { break }
            out.append(byte)
        }
        return out
    }
    func writeMemory(_ bytes: [UInt8], at address: UInt64, thread: Int) -> Bool {
        for i in bytes.indices where memory[address &+ UInt64(i)] == nil { return false }
        for (i, b) in bytes.enumerated() { memory[address &+ UInt64(i)] = b }
        return true
    }
    func insertBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply {
        if request.type.isWatchpoint { return .unsupported }
        guard memory[request.address] != nil else { return .failed("unmapped") }
        inserted.append(request)
        return .ok
    }
    func removeBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply {
        guard let i = inserted.firstIndex(of: request) else { return .failed("not inserted") }
        inserted.remove(at: i)
        return .ok
    }
    func monitor(_ command: String, thread: Int) -> String {
        monitorCommands.append(command)
        return monitorOutput
    }
    func threadDescription(_ thread: Int) -> String { "vCPU \(thread - 1)" }
}

/// A connection over a FakeTarget, driven with packet text.
struct Client {
    let target: FakeTarget
    let connection: GDBConnection

    init(threads: Int = 1) {
        target = FakeTarget(threads: threads)
        connection = GDBConnection(session: GDBSession(target: target, stoppedBy: StopEvent(thread: 1, reason: .attached)))
    }

    /// Sends one packet; returns the payloads of the framed replies and the control actions.
    @discardableResult
    func send(_ payload: String) -> (replies: [String], actions: [ControlAction]) {
        let (output, actions) = connection.receive(PacketDecoder.frame(Array(payload.utf8)))
        return (Self.payloads(output), actions)
    }

    /// The single reply to one packet.
    func ask(_ payload: String) -> String { send(payload).replies.first ?? "<none>" }

    static func payloads(_ output: [UInt8]) -> [String] {
        var decoder = PacketDecoder()
        return decoder.feed(output).compactMap { event in
            if case let .packet(p) = event { String(decoding: PacketDecoder.unescape(p) ?? p, as: UTF8.self) } else { nil }
        }
    }
}
