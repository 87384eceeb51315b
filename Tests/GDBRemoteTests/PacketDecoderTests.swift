// Framing: checksums, acks, Ctrl-C, escapes, resynchronisation and the size limit.
import GDBRemote
import Testing

struct PacketDecoderTests {
    @Test func framesAPacketWithItsChecksum() {
        #expect(String(decoding: PacketDecoder.frame(Array("OK".utf8)), as: UTF8.self) == "$OK#9a")
        #expect(String(decoding: PacketDecoder.frame([]), as: UTF8.self) == "$#00")
    }

    @Test func decodesGoodPacketsAcksAndInterrupts() {
        var d = PacketDecoder()
        let events = d.feed(Array("+$g#67-".utf8) + [0x03] + Array("junk$qC#b4".utf8))
        #expect(events == [.ack, .packet(Array("g".utf8)), .nack, .interrupt, .packet(Array("qC".utf8))])
    }

    @Test func aWrongChecksumIsReportedNotDelivered() {
        var d = PacketDecoder()
        #expect(d.feed(Array("$g#68".utf8)) == [.badChecksum])
        #expect(d.feed(Array("$g#zz".utf8)) == [.badChecksum])
        #expect(d.feed(Array("$g#67".utf8)) == [.packet(Array("g".utf8))])
    }

    @Test func aDollarInsideAPacketStartsANewOne() {
        var d = PacketDecoder()
        #expect(d.feed(Array("$m10".utf8)) == [])
        #expect(d.isInsidePacket)
        #expect(d.feed(Array("$g#67".utf8)) == [.packet(Array("g".utf8))])
        #expect(!d.isInsidePacket)
    }

    @Test func escapesSurviveARoundTrip() {
        let payload: [UInt8] = [0x24, 0x23, 0x7D, 0x2A, 0x00, 0xFF]
        let framed = PacketDecoder.frame(payload)
        #expect(!framed.dropFirst().dropLast(3).contains(0x24))
        var d = PacketDecoder()
        guard case let .packet(raw)? = d.feed(framed).first else { Issue.record("no packet"); return }
        #expect(PacketDecoder.unescape(raw) == payload)
        #expect(PacketDecoder.unescape([0x7D]) == nil)
    }

    @Test func anOverlongPacketIsDroppedWithoutBufferingIt() {
        var d = PacketDecoder(maximumPayload: 8)
        let events = d.feed(Array("$0123456789abcdef#00$g#67".utf8))
        #expect(events == [.overlong, .packet(Array("g".utf8))])
    }

    @Test func aClientCutOffMidPacketLeavesNothingBehind() {
        var d = PacketDecoder()
        _ = d.feed(Array("$m1000,4".utf8))
        #expect(d.isInsidePacket)
        // A new client starts with a fresh decoder; this one resynchronises on the next '$'.
        #expect(d.feed(Array("$?#3f".utf8)) == [.packet(Array("?".utf8))])
    }
}
