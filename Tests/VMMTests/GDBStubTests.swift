// The gdb stub end to end, with a scripted client over TCP against `swiftlet boot --gdb`: the guest waits
// before its first instruction, breakpoints, steps, Ctrl-C, detach, kill, a second client, and a hostile
// client that must get error replies or a clean detach, never a VMM crash or hang. The real gdb drives
// the same stub in RealGDBTests.swift.
import GDBRemote
import Glibc
import Testing
import TestSupport
import VMM

@Suite(.serialized, .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct GDBStubTests {
    /// gdb's "process exited" reply for a guest that wrote 0 to the debug-exit port: W and the status in hex.
    static let exitReply = "W" + String(ExitStatus.guestExit(0), radix: 16).leftPadded(to: 2)

    let hello = GDBTestSupport.embeddedImage("hello")

    @Test func theGuestWaitsForGDBAndRunsFromABreakpointToItsExitStatus() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "hello", "--timeout", "60"]))
        let gdb = try #require(GDBTestClient(port: port))
        #expect(gdb.ask("qSupported:swbreak+;hwbreak+")?.contains("qXfer:features:read+") == true)
        #expect(gdb.ask("?") == "T05thread:1;")
        #expect(gdb.ask("qfThreadInfo") == "m1")
        // Stopped before the first instruction: RIP is the ELF entry point, nothing printed yet.
        let g = try #require(gdb.ask("g"))
        #expect(GDBTestSupport.register(X86Registers.Number.rip, in: g) == 0x10_000C)
        #expect(vmm.stdoutSoFar().isEmpty)
        let kmain = try #require(GDBTestSupport.symbol("kmain", in: hello))
        let original = try #require(gdb.ask("m\(Hex.string(kmain)),1"))
        #expect(gdb.ask("Z0,\(Hex.string(kmain)),1") == "OK")
        #expect(gdb.ask("m\(Hex.string(kmain)),1") == "cc")
        #expect(gdb.ask("vCont;c") == "T05thread:1;swbreak:;")
        #expect(GDBTestSupport.rip(gdb) == kmain)
        #expect(gdb.ask("z0,\(Hex.string(kmain)),1") == "OK")
        #expect(gdb.ask("m\(Hex.string(kmain)),1") == original)
        // One instruction further with a single step.
        #expect(gdb.ask("vCont;s:1") == "T05thread:1;")
        let stepped = try #require(GDBTestSupport.rip(gdb))
        #expect(stepped > kmain && stepped < kmain + 16)
        #expect(gdb.ask("c") == Self.exitReply)
        let r = vmm.wait()
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr)")
        #expect(r.stdout.contains("multiboot magic ok"))
    }

    /// The firmware path starts at the reset vector in real mode: gdb's addresses are linear (CS base + IP).
    @Test func theFirmwarePathStopsAtTheResetVector() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "hello", "--boot", "firmware", "--timeout", "60"]))
        let gdb = try #require(GDBTestClient(port: port))
        let g = try #require(gdb.ask("g"))
        #expect(GDBTestSupport.register(X86Registers.Number.rip, in: g) == 0xFFF0)
        #expect(gdb.ask("p\(Hex.string(UInt64(X86Registers.Number.cs)))") == "00f00000")
        #expect(gdb.ask("mfffffff0,1") == "e9", "the firmware's jmp at CS base 0xffff0000 + IP 0xfff0")
        #expect(gdb.ask("vCont;s:1") == "T05thread:1;")
        #expect(GDBTestSupport.rip(gdb) != 0xFFF0)
        // Paging is off: the kernel's entry is a physical address, reached once the firmware is done.
        #expect(gdb.ask("Z1,10000c,1") == "OK")
        #expect(gdb.ask("c") == "T05thread:1;")
        #expect(GDBTestSupport.rip(gdb) == 0x10_000C)
        #expect(gdb.ask("z1,10000c,1") == "OK")
        #expect(gdb.ask("c") == Self.exitReply)
        #expect(vmm.wait().status == ExitStatus.guestExit(0))
    }

    /// On hardware KVM a debug register watches; on kvm_pvm the VMM steps and compares. gdb sees the same.
    @Test func aWriteWatchpointStopsRightAfterTheWrite() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "hello", "--timeout", "60"]))
        let gdb = try #require(GDBTestClient(port: port))
        let txRoom = try #require(GDBTestSupport.symbol("tx_room", in: hello))
        #expect(gdb.ask("Z2,\(Hex.string(txRoom)),1") == "OK")
        #expect(gdb.ask("vCont;c") == "T05thread:1;watch:\(Hex.string(txRoom));")
        #expect(gdb.ask("m\(Hex.string(txRoom)),1") == "10", "the 8250's FIFO depth, 16, written by the first put_char")
        #expect(gdb.ask("z2,\(Hex.string(txRoom)),1") == "OK")
        #expect(gdb.ask("c") == Self.exitReply)
        #expect(vmm.wait().status == ExitStatus.guestExit(0))
    }

    /// kvm_pvm runs user mode natively: a step there would hand the guest a #DB, so the stub refuses it
    /// and says why, as console output before the stop reply.
    @Test(.enabled(if: !KVMRequirement.hardware, "kvm_pvm only: hardware KVM steps user mode"))
    func aStepInUserModeOnKvmPvmSaysWhyItDidNotMove() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "doctor", "--timeout", "60"]))
        let gdb = try #require(GDBTestClient(port: port))
        let kmain = try #require(GDBTestSupport.symbol("kmain", in: GDBTestSupport.embeddedImage("doctor")))
        // The drop to CPL3 is an iretq (48 cf) in kmain: break there, step over it.
        let code = try #require(gdb.ask("m\(Hex.string(kmain)),200").flatMap { Hex.decode(Array($0.utf8)) })
        let offset = try #require((0..<(code.count - 1)).first { code[$0] == 0x48 && code[$0 + 1] == 0xCF })
        let iretq = kmain + UInt64(offset)
        #expect(gdb.ask("Z0,\(Hex.string(iretq)),1") == "OK")
        #expect(gdb.ask("c") == "T05thread:1;")
        #expect(gdb.ask("z0,\(Hex.string(iretq)),1") == "OK")
        #expect(gdb.ask("vCont;s:1") == "T05thread:1;")
        let user = try #require(GDBTestSupport.rip(gdb))
        gdb.send("vCont;s:1")
        let notice = try #require(gdb.reply())
        #expect(notice.hasPrefix("O"))
        #expect(String(decoding: Hex.decode(Array(notice.utf8.dropFirst())) ?? [], as: UTF8.self).contains("user mode (CPL 3)"))
        #expect(gdb.reply() == "T05thread:1;")
        #expect(GDBTestSupport.rip(gdb) == user, "it did not move")
        gdb.send("k")
        #expect(vmm.wait().status == 128 + SIGKILL)
    }

    /// Hardware KVM single-steps user mode: the same guest as above, stepped at CPL3 (not measured here).
    @Test(.enabled(if: KVMRequirement.hardware, Comment(rawValue: KVMRequirement.hardwareReason)))
    func userModeStepsOnHardwareKVM() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "doctor", "--timeout", "60"]))
        let gdb = try #require(GDBTestClient(port: port))
        let doctor = GDBTestSupport.embeddedImage("doctor")
        let kmain = try #require(GDBTestSupport.symbol("kmain", in: doctor))
        let userMain = try #require(GDBTestSupport.symbol("user_main", in: doctor))
        let code = try #require(gdb.ask("m\(Hex.string(kmain)),200").flatMap { Hex.decode(Array($0.utf8)) })
        let offset = try #require((0..<(code.count - 1)).first { code[$0] == 0x48 && code[$0 + 1] == 0xCF })
        #expect(gdb.ask("Z0,\(Hex.string(kmain + UInt64(offset))),1") == "OK")
        #expect(gdb.ask("c") == "T05thread:1;")
        #expect(gdb.ask("z0,\(Hex.string(kmain + UInt64(offset))),1") == "OK")
        #expect(gdb.ask("vCont;s:1") == "T05thread:1;")
        #expect(GDBTestSupport.rip(gdb) == userMain, "the iretq lands on user_main")
        #expect(gdb.ask("vCont;s:1") == "T05thread:1;")
        let stepped = try #require(GDBTestSupport.rip(gdb))
        #expect(stepped != userMain, "one user-mode instruction ran")
        gdb.send("k")
        #expect(vmm.wait().status == 128 + SIGKILL)
    }

    @Test func ctrlCStopsARunningGuestAndKillEndsTheVM() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "loop", "--timeout", "60"]))
        let gdb = try #require(GDBTestClient(port: port))
        #expect(gdb.ask("?") == "T05thread:1;")
        gdb.send("c")
        usleep(300_000)
        gdb.sendRaw([0x03])
        #expect(gdb.reply() == "T02thread:1;")
        let rip = try #require(GDBTestSupport.rip(gdb))
        let loop = try #require(GDBTestSupport.symbol("kmain", in: GDBTestSupport.embeddedImage("loop")))
        #expect(rip >= loop && rip < loop + 64, "stopped in the loop: rip 0x\(Hex.string(rip))")
        #expect(gdb.ask("qRcmd," + String(decoding: Hex.encode(text: "explain"), as: UTF8.self)).map { String(decoding: Hex.decode(Array($0.utf8)) ?? [], as: UTF8.self) }?.contains("CPL 0") == true)
        gdb.send("k")
        let r = vmm.wait()
        #expect(r.status == 128 + SIGKILL, "\(r.stderr)")
        #expect(r.stderr.contains("gdb: kill"))
    }

    @Test func aHostileClientGetsErrorsAndTheVMMCarriesOn() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "hello", "--timeout", "60"]))
        let gdb = try #require(GDBTestClient(port: port))
        // Line noise, a wrong checksum, a packet far beyond PacketSize, binary garbage: then it still answers.
        gdb.sendRaw(Array("noise\u{0}\u{ff}+-".utf8) + Array("$g#00".utf8))
        #expect(gdb.nextEvent() == .nack, "the stub answers a bad checksum with '-'")
        gdb.sendRaw(Array("$".utf8) + [UInt8](repeating: UInt8(ascii: "A"), count: 100_000) + Array("#00".utf8))
        gdb.sendRaw((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }.filter { $0 != UInt8(ascii: "$") })
        #expect(gdb.ask("?") == "T05thread:1;")
        // Huge lengths are clamped, unmapped memory is an error, absurd breakpoints are refused or harmless.
        let big = try #require(gdb.ask("m100000,7fffffff"))
        #expect(big.count == GDBLimits.memoryTransfer * 2)
        #expect(gdb.ask("m7fff00000000,10") == "E0e")
        #expect(gdb.ask("mffff800000000000,4") == "E0e")
        #expect(gdb.ask("M7fff00000000,2:9090") == "E0e")
        #expect(gdb.ask("Z0,8000000000000000,1")?.isEmpty == false)
        for n in 0..<4 { _ = gdb.ask("Z1,\(Hex.string(0x20_0000 + UInt64(n))),1") }
        #expect(gdb.ask("Z1,300000,1") == "E0e", "a fifth hardware breakpoint has no debug register")
        #expect(gdb.ask("z0,123456,1") == "E0e")
        #expect(gdb.ask("G00") == "E16")
        #expect(gdb.ask("P10=00") == "E16")
        #expect(gdb.ask("p7fffffff") == "E16")
        #expect(gdb.ask("vCont;x") == "E16")
        #expect(gdb.ask("Hg99") == "E16")
        #expect(gdb.ask("qXfer:features:read:target.xml:7fffffff,7fffffff") == "l")
        let monitor = try #require(gdb.ask("qRcmd," + String(decoding: Hex.encode(text: "xp 0xffffffffffff 4096"), as: UTF8.self)))
        #expect(String(decoding: Hex.decode(Array(monitor.utf8)) ?? [], as: UTF8.self).contains("not all RAM"))
        for n in 0..<4 { _ = gdb.ask("z1,\(Hex.string(0x20_0000 + UInt64(n))),1") }
        // Leave in the middle of a packet: a clean detach, the guest runs to its end.
        gdb.sendRaw(Array("$m10000".utf8))
        gdb.close()
        let end = vmm.waitForOutput(containing: ["multiboot magic ok"], timeout: 30)
        #expect(end.found, "\(end.stderr)")
        #expect(end.stderr.contains("the client went away"), "\(end.stderr)")
    }

    @Test func aSecondClientStopsTheGuestAgain() throws {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(["--guest", "loop", "--timeout", "60"]))
        do {
            let first = try #require(GDBTestClient(port: port))
            #expect(first.ask("?") == "T05thread:1;")
            #expect(first.ask("D") == "OK")
            #expect(first.closedByPeer())
        }
        usleep(200_000)
        let second = try #require(GDBTestClient(port: port))
        #expect(second.ask("?") == "T05thread:1;")
        #expect(second.ask("g")?.isEmpty == false)
        second.send("k")
        #expect(vmm.wait().status == 128 + SIGKILL)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
