// Packet parsing: every packet gdb sends to an x86-64 bare-metal target, and malformed ones.
import GDBRemote
import Testing

struct GDBCommandTests {
    func parse(_ text: String) -> GDBCommand { GDBCommand.parse(Array(text.utf8)) }

    @Test func parsesTheConnectionSequence() {
        #expect(parse("qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386") ==
                .querySupported(features: ["multiprocess+", "swbreak+", "hwbreak+", "xmlRegisters=i386"]))
        #expect(parse("qXfer:features:read:target.xml:0,ffb") == .readFeatures(annex: "target.xml", offset: 0, length: 0xffb))
        #expect(parse("vMustReplyEmpty") == .unsupported)
        #expect(parse("Hg0") == .setThread(forRegisters: true, .any))
        #expect(parse("Hc-1") == .setThread(forRegisters: false, .all))
        #expect(parse("Hgp1.2") == .setThread(forRegisters: true, .thread(2)))
        #expect(parse("qfThreadInfo") == .firstThreadInfo)
        #expect(parse("qC") == .currentThread)
        #expect(parse("qAttached") == .attached)
        #expect(parse("?") == .stopReason)
    }

    @Test func parsesRegistersAndMemory() {
        #expect(parse("g") == .readRegisters)
        #expect(parse("p10") == .readRegister(16))
        #expect(parse("P10=0010100000000000") == .writeRegister(16, [0, 0x10, 0x10, 0, 0, 0, 0, 0]))
        #expect(parse("m100000,40") == .readMemory(address: 0x100000, length: 0x40))
        #expect(parse("Mffffffff81000000,2:90cc") == .writeMemory(address: 0xffffffff81000000, bytes: [0x90, 0xcc]))
        #expect(parse("X1000,2:}\u{03}a") == .writeMemory(address: 0x1000, bytes: [0x23, 0x61]))
    }

    @Test func parsesBreakpointsAndResumption() {
        #expect(parse("Z0,ffffffff82f6b3e0,1") == .insertBreakpoint(BreakpointRequest(type: .software, address: 0xffffffff82f6b3e0, length: 1)))
        #expect(parse("z2,2000,4;X1,0") == .removeBreakpoint(BreakpointRequest(type: .writeWatchpoint, address: 0x2000, length: 4)))
        #expect(parse("c") == .continue(address: nil))
        #expect(parse("s1000") == .step(address: 0x1000))
        #expect(parse("C05;2000") == .continue(address: 0x2000))
        #expect(parse("vCont?") == .vContQuery)
        #expect(parse("vCont;s:p1.1;c") == .vCont([(.step, .thread(1)), (.continue, .all)]))
        #expect(parse("vCont;C02:2") == .vCont([(.continue, .thread(2))]))
        #expect(parse("qRcmd,68656c70") == .monitor("help"))
        #expect(parse("D") == .detach)
        #expect(parse("D;1") == .detach)
        #expect(parse("k") == .kill)
    }

    @Test(arguments: ["m", "m10", "m10,", "mzz,1", "m1,zz", "m12345678901234567,1", "m1,80000000", "M1,2:9", "M1,2:9090cc",
                      "Z9,1,1", "Z0,1", "Z0,,1", "Z18446744073709551615,1,1", "Zffffffffffffffff,0,1", "P1", "P1=zz", "pzz",
                      "vCont;x", "vCont;", "vCont;s:zz", "vCont;cc", "Hx1", "Hg", "T", "qRcmd,6", "qXfer:features:read:target.xml:0",
                      "X1,1:}", "C", "Szz;1", "p99999999999999999"])
    func malformedPacketsAreRefusedNotTrapped(packet: String) {
        switch parse(packet) {
        case .malformed: break
        case let other: Issue.record("\(packet) parsed as \(other)")
        }
    }

    @Test func unknownPacketsAreUnsupported() {
        #expect(parse("") == .unsupported)
        #expect(parse("qTStatus") == .unsupported)
        #expect(parse("vFile:open:6a7573742070726f62696e67,0,1c0") == .unsupported)
        #expect(parse("!") == .unsupported)
    }
}
