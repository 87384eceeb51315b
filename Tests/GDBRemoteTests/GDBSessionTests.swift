// The session over a fake target: what gdb gets back for each packet, and what the VMM is asked to do.
import GDBRemote
import Testing

struct GDBSessionTests {
    @Test func acknowledgesAndAnswersTheHandshake() {
        let client = Client()
        let (output, _) = client.connection.receive(PacketDecoder.frame(Array("qSupported:swbreak+;hwbreak+".utf8)))
        #expect(output.first == UInt8(ascii: "+"))
        #expect(Client.payloads(output) == [GDBSession.supportedFeatures])
        #expect(client.ask("?") == "T05thread:1;")
        #expect(client.ask("qfThreadInfo") == "m1")
        #expect(client.ask("qsThreadInfo") == "l")
        #expect(client.ask("qC") == "QC1")
        #expect(client.ask("qAttached") == "1")
        #expect(client.ask("vMustReplyEmpty") == "")
        #expect(client.ask("vCont?") == "vCont;c;C;s;S;t")
    }

    @Test func servesTheTargetDescriptionInPieces() {
        let client = Client()
        var document = ""
        var offset = 0
        while true {
            let reply = client.ask("qXfer:features:read:target.xml:\(String(offset, radix: 16)),200")
            document += reply.dropFirst()
            offset += reply.utf8.count - 1
            if reply.first == "l" { break }
            #expect(reply.first == "m")
        }
        #expect(document == X86Registers.targetDescription)
        #expect(client.ask("qXfer:features:read:other.xml:0,100") == "E00")
    }

    @Test func readsAndWritesRegisters() {
        let client = Client()
        let g = client.ask("g")
        #expect(g.count == X86Registers.packetBytes * 2)
        #expect(g.hasPrefix("8877665544332211"))
        #expect(client.ask("p10") == "0100100000000000")
        #expect(client.ask("P10=0020100000000000") == "OK")
        #expect(client.target.registerFiles[1]?.rip == 0x102000)
        #expect(client.ask("p70") == "E00")
        #expect(client.ask("P0=00") == "E16")
        #expect(client.ask("G" + g) == "OK")
        #expect(client.ask("G00") == "E16")
    }

    @Test func readsMemoryUpToTheFirstUnreadableByte() {
        let client = Client()
        for i in 0..<4 { client.target.memory[0x1000 + UInt64(i)] = UInt8(0xA0 + i) }
        #expect(client.ask("m1000,4") == "a0a1a2a3")
        #expect(client.ask("m1002,10") == "a2a3")
        #expect(client.ask("m2000,4") == "E0e")
        #expect(client.ask("m1000,0") == "")
        #expect(client.ask("m1000,7fffffff") == "a0a1a2a3")
        #expect(client.ask("M1000,2:5a5b") == "OK")
        #expect(client.target.memory[0x1001] == 0x5b)
        #expect(client.ask("M1003,2:0000") == "E0e")
        #expect(client.ask("X1000,0:") == "OK")
    }

    @Test func breakpointsGoToTheTarget() {
        let client = Client()
        client.target.memory[0x1000] = 0x90
        #expect(client.ask("Z0,1000,1") == "OK")
        #expect(client.ask("Z0,dead0000,1") == "E0e")
        #expect(client.ask("Z2,1000,4") == "")
        #expect(client.ask("z0,1000,1") == "OK")
        #expect(client.target.inserted.isEmpty)
    }

    @Test func continueResumesEveryThreadAndTheStopReplyComesLater() {
        let client = Client(threads: 2)
        _ = client.send("qSupported:swbreak+")
        let (replies, actions) = client.send("c")
        #expect(replies.isEmpty)
        #expect(actions == [.resume([1: .continue, 2: .continue])])
        // While it runs, Ctrl-C asks for a stop; other packets are refused without touching the target.
        #expect(client.connection.receive([0x03]).actions == [.interrupt])
        #expect(client.ask("g") == "E10")
        let reply = Client.payloads(client.connection.stopped(StopEvent(thread: 2, reason: .softwareBreakpoint)))
        #expect(reply == ["T05thread:2;swbreak:;"])
        #expect(client.ask("qC") == "QC2")
        // A stop with a notice: console output first, then the stop reply.
        _ = client.send("c")
        let noticed = Client.payloads(client.connection.stopped(StopEvent(thread: 1, reason: .step, notice: "hi")))
        #expect(noticed == ["O" + String(decoding: Hex.encode(text: "hi\n"), as: UTF8.self), "T05thread:1;"])
        // Ctrl-C while stopped does nothing.
        #expect(client.connection.receive([0x03]).actions.isEmpty)
    }

    @Test func vContGivesEachThreadItsLeftmostAction() {
        let client = Client(threads: 3)
        #expect(client.send("vCont;s:2;c").actions == [.resume([1: .continue, 2: .step, 3: .continue])])
        _ = client.connection.stopped(StopEvent(thread: 2, reason: .step))
        #expect(client.send("vCont;s:p1.1").actions == [.resume([1: .step])])
        _ = client.connection.stopped(StopEvent(thread: 1, reason: .step))
        #expect(client.ask("vCont;s:9") == "E16")
        #expect(client.ask("vCont;t") == "E16")
        #expect(client.send("Hc2").replies == ["OK"])
        #expect(client.send("s").actions == [.resume([2: .step])])
    }

    @Test func threadSelectionIsChecked() {
        let client = Client(threads: 2)
        #expect(client.ask("Hg2") == "OK")
        #expect(client.ask("p10") == "0200100000000000")
        #expect(client.ask("Hg5") == "E16")
        #expect(client.ask("T2") == "OK")
        #expect(client.ask("T3") == "E16")
        #expect(client.ask("qThreadExtraInfo,2") == "764350552031")
    }

    @Test func stopRepliesNameWatchpointsAndFaults() {
        let client = Client()
        let session = client.connection.session
        #expect(String(decoding: session.stopReply(StopEvent(thread: 1, reason: .watchpoint(.writeWatchpoint, address: 0x2000))), as: UTF8.self) == "T05thread:1;watch:2000;")
        #expect(String(decoding: session.stopReply(StopEvent(thread: 1, reason: .fault(signal: 11))), as: UTF8.self) == "T0bthread:1;")
        #expect(String(decoding: session.stopReply(StopEvent(thread: 1, reason: .interrupted)), as: UTF8.self) == "T02thread:1;")
        // Without swbreak+ in qSupported gdb is not told the kind of breakpoint.
        #expect(String(decoding: session.stopReply(StopEvent(thread: 1, reason: .softwareBreakpoint)), as: UTF8.self) == "T05thread:1;")
        #expect(Client.payloads(client.connection.exited(status: 1)) == ["W01"])
    }

    @Test func monitorOutputIsHexOrSplitIntoConsolePackets() {
        let client = Client()
        #expect(client.ask("qRcmd," + String(decoding: Hex.encode(text: "exits"), as: UTF8.self)) == String(decoding: Hex.encode(text: "ok\n"), as: UTF8.self))
        #expect(client.target.monitorCommands == ["exits"])
        client.target.monitorOutput = String(repeating: "x", count: 20000)
        let replies = client.send("qRcmd,68656c70").replies
        #expect(replies.last == "OK")
        #expect(replies.dropLast().allSatisfy { $0.hasPrefix("O") })
        #expect(replies.dropLast().reduce(0) { $0 + $1.count - 1 } == 40000)
    }

    @Test func detachKillAndNoAckMode() {
        let client = Client()
        #expect(client.send("D").actions == [.detach])
        #expect(client.send("k").actions == [.kill])
        #expect(client.ask("QStartNoAckMode") == "OK")
        let (output, _) = client.connection.receive(PacketDecoder.frame(Array("qC".utf8)))
        #expect(output.first == UInt8(ascii: "$"))
        // A bad checksum gets a '-' only while acks are on.
        #expect(client.connection.receive(Array("$qC#00".utf8)).output.isEmpty)
    }

    @Test func aNackResendsTheLastPacket() {
        let client = Client()
        let first = client.connection.receive(PacketDecoder.frame(Array("qC".utf8))).output
        let again = client.connection.receive(Array("-".utf8)).output
        #expect(Array(first.dropFirst()) == again)
        #expect(client.connection.receive(Array("$qC#00".utf8)).output == Array("-".utf8))
    }
}
