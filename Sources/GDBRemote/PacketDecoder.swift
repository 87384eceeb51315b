// PacketDecoder: the byte level of the GDB remote serial protocol, as a pure state machine (no fds).
//
// GDB manual, Appendix E.1 "Overview": a packet is `$payload#cc`, cc being the payload's bytes summed
// modulo 256 as two hex digits; the receiver answers `+` (good) or `-` (bad checksum: send it again) unless
// both sides agreed to QStartNoAckMode. Between packets the only meaningful bytes are the acks and 0x03
// (Ctrl-C: "interrupt the target"). The payload is kept as it arrived: `}`-escapes (E.1, "binary data")
// are undone by the commands that carry binary data (`X`), as gdbserver does; gdb never sends
// run-length-encoded packets. A `$` inside a packet starts a new one (what arrived so far is dropped), so a
// client that reconnects mid-packet resynchronises. A payload longer than `maximumPayload` is discarded
// whole and reported once, like QEMU's gdbstub: nothing is buffered beyond the limit, whatever the client sends.

public enum FramingEvent: Equatable, Sendable {
    /// A packet whose checksum matched: its payload, escapes not undone.
    case packet([UInt8])
    /// 0x03 outside a packet: the client asks to stop a running target.
    case interrupt
    /// `+`: the client received our last packet.
    case ack
    /// `-`: the client wants our last packet again.
    case nack
    /// A packet whose checksum did not match (or was not two hex digits): answer `-`.
    case badChecksum
    /// A packet longer than the limit: dropped without an answer.
    case overlong
}

public struct PacketDecoder: Sendable {
    /// The largest payload accepted; what `qSupported` announces as PacketSize.
    public let maximumPayload: Int

    enum State: Sendable { case idle, payload, checksumHigh, checksumLow, discarding, discardingChecksum(Int) }
    private var state = State.idle
    private var payload: [UInt8] = []
    private var sum: UInt8 = 0
    private var received: UInt8 = 0
    private var checksumValid = true

    public init(maximumPayload: Int = GDBLimits.packetSize) {
        self.maximumPayload = maximumPayload
    }

    /// Feeds bytes from the connection; returns what they completed, in order.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [FramingEvent] where Bytes.Element == UInt8 {
        var events: [FramingEvent] = []
        for byte in bytes { if let event = feed(byte) { events.append(event) } }
        return events
    }

    public mutating func feed(_ byte: UInt8) -> FramingEvent? {
        switch state {
        case .idle:
            switch byte {
            case UInt8(ascii: "$"): startPacket()
            case UInt8(ascii: "+"): return .ack
            case UInt8(ascii: "-"): return .nack
            case 0x03: return .interrupt
            default: break // line noise between packets is ignored (E.1)
            }
        case .payload:
            switch byte {
            case UInt8(ascii: "$"): startPacket()
            case UInt8(ascii: "#"): state = .checksumHigh
            default:
                if payload.count >= maximumPayload {
                    payload = []
                    state = .discarding
                    return nil
                }
                payload.append(byte)
                sum &+= byte
            }
        case .checksumHigh:
            if let digit = Hex.digit(byte) { received = digit << 4 } else { checksumValid = false }
            state = .checksumLow
        case .checksumLow:
            if let digit = Hex.digit(byte) { received |= digit } else { checksumValid = false }
            state = .idle
            let good = checksumValid && received == sum
            let complete = payload
            payload = []
            return good ? .packet(complete) : .badChecksum
        case .discarding:
            if byte == UInt8(ascii: "#") { state = .discardingChecksum(2) } else if byte == UInt8(ascii: "$") { startPacket() }
        case let .discardingChecksum(left):
            state = left > 1 ? .discardingChecksum(left - 1) : .idle
            if left == 1 { return .overlong }
        }
        return nil
    }

    /// True while part of a packet has arrived and the rest has not.
    public var isInsidePacket: Bool {
        if case .idle = state { return false }
        return true
    }

    private mutating func startPacket() {
        state = .payload
        payload = []
        payload.reserveCapacity(64)
        sum = 0
        received = 0
        checksumValid = true
    }

    /// `$payload#cc` with `$`, `#`, `}` and `*` escaped (E.1: `}` then the byte XOR 0x20), ready to send.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "$")]
        out.reserveCapacity(payload.count + 4)
        var sum: UInt8 = 0
        for byte in payload {
            switch byte {
            case UInt8(ascii: "$"), UInt8(ascii: "#"), UInt8(ascii: "}"), UInt8(ascii: "*"):
                out.append(UInt8(ascii: "}"))
                out.append(byte ^ 0x20)
                sum &+= UInt8(ascii: "}") &+ (byte ^ 0x20)
            default:
                out.append(byte)
                sum &+= byte
            }
        }
        out.append(UInt8(ascii: "#"))
        out += Hex.encode(byte: sum)
        return out
    }

    /// Undoes `}`-escapes (the binary payload of `X`); nil when the data ends in a lone `}`.
    public static func unescape<Bytes: Collection>(_ bytes: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var escaped = false
        for byte in bytes {
            if escaped { out.append(byte ^ 0x20); escaped = false } else if byte == UInt8(ascii: "}") { escaped = true } else { out.append(byte) }
        }
        return escaped ? nil : out
    }
}

/// The sizes the stub promises and enforces, in one place.
public enum GDBLimits {
    /// The largest packet payload the stub accepts and announces (qSupported PacketSize, in hex there):
    /// 16 KiB, enough for a `G` of every register (about 1.1 KiB of hex) and for 8 KiB memory transfers.
    public static let packetSize = 0x4000
    /// The most bytes one `m` answers: what fits in a reply of `packetSize` as hex.
    public static let memoryTransfer = (packetSize - 16) / 2
}
