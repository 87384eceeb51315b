// GDBConnection: one gdb client's byte stream in, bytes out and control actions for the VMM, with the
// acknowledgement rules of the GDB manual's Appendix E.1 (`+` for every good packet, `-` for a bad
// checksum, our last packet sent again on `-`, none of that after QStartNoAckMode) and Ctrl-C. It joins
// PacketDecoder, GDBCommand and GDBSession and owns no fd: the VMM's server (Sources/VMM/GDBServer.swift)
// reads the socket, calls `receive`, writes `output` and carries out `actions`; the fuzz target feeds it
// arbitrary bytes.

public enum ControlAction: Equatable, Sendable {
    case resume([Int: ResumeAction])
    /// Ctrl-C while the guest runs: stop it (the stop reply follows from `stopped`).
    case interrupt
    case detach
    case kill
}

public final class GDBConnection {
    public private(set) var decoder = PacketDecoder()
    public let session: GDBSession
    private var lastPacket: [UInt8] = []
    /// Packets whose checksum failed or that were too long, for the log.
    public private(set) var rejectedPackets = 0

    public init(session: GDBSession) { self.session = session }

    public func receive<Bytes: Sequence>(_ bytes: Bytes) -> (output: [UInt8], actions: [ControlAction]) where Bytes.Element == UInt8 {
        var output: [UInt8] = []
        var actions: [ControlAction] = []
        for event in decoder.feed(bytes) {
            switch event {
            case .ack:
                break
            case .nack:
                if !session.noAckMode { output += lastPacket }
            case .badChecksum:
                rejectedPackets += 1
                if !session.noAckMode { output.append(UInt8(ascii: "-")) }
            case .overlong:
                rejectedPackets += 1
            case .interrupt:
                if case .running = session.state { actions.append(.interrupt) }
            case let .packet(payload):
                if !session.noAckMode { output.append(UInt8(ascii: "+")) }
                for action in session.handle(GDBCommand.parse(payload)) {
                    switch action {
                    case let .reply(reply): output += send(reply)
                    case let .resume(plan): actions.append(.resume(plan))
                    case .detach: actions.append(.detach)
                    case .kill: actions.append(.kill)
                    }
                }
            }
        }
        return (output, actions)
    }

    /// The stop reply for `event`, framed; its notice first, as console output (E.3 "O XX...").
    public func stopped(_ event: StopEvent) -> [UInt8] {
        var output: [UInt8] = []
        if let notice = event.notice, !notice.isEmpty {
            output += send([UInt8(ascii: "O")] + Hex.encode(Array((notice + "\n").utf8).prefix(GDBLimits.packetSize / 2 - 8)))
        }
        return output + send(session.stopped(event))
    }

    /// The exit packet for a machine that ended with `status`, framed.
    public func exited(status: Int32) -> [UInt8] { send(session.exited(status: status)) }

    private func send(_ payload: [UInt8]) -> [UInt8] {
        let packet = PacketDecoder.frame(payload)
        lastPacket = packet
        return packet
    }
}
