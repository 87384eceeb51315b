// Tests of what --trace-exits prints: the forms of the option (ExitTraceSettings), register names from the
// devices, consecutive identical exits folded with their bytes as text, the trace's own cost, and the last
// line saying how the run ended; and that `swiftlet boot -v` and `swiftlet explain` write a range alike.
import Glibc
import KVM
import Testing
import TestSupport
import VMM

@Suite struct ExitTraceSettingsTests {
    @Test func theBareOptionPrintsEveryKindFolded() throws {
        let s = ExitTraceSettings()
        #expect(s.printsExits && s.folds && s.kinds == nil && s.printsVirtioEvents)
    }

    @Test func wordsCombine() throws {
        #expect(try ExitTraceSettings.parse("summary").printsExits == false)
        #expect(try ExitTraceSettings.parse("all").folds == false)
        let kinds = try ExitTraceSettings.parse("all,io,internal-error")
        #expect(kinds.folds == false)
        #expect(kinds.kinds == [.io, .internalError])
        #expect(kinds.printsVirtioEvents == false, "a list of kinds without virtio leaves the kicks out")
        #expect(try ExitTraceSettings.parse("mmio,virtio").printsVirtioEvents)
    }

    @Test func anUnknownOrEmptyWordIsAUsageError() {
        for text in ["bogus", "", "io,", "IO"] {
            #expect(throws: VMMError.self) { try ExitTraceSettings.parse(text) }
        }
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ExitTraceTests {
    static let helloStatus = ExitStatus.guestExit(0)

    /// The trace's closing line, which must end the trace: only the VMM's own "swiftlet: ..." notes follow it.
    func endsWithHowTheRunEnded(_ stderr: String, _ expected: String) -> Bool {
        let lines = stderr.split(separator: "\n").map(String.init)
        guard let index = lines.firstIndex(where: { $0.hasPrefix("Run ended: ") }) else { return false }
        return lines[index] == expected && lines[(index + 1)...].allSatisfy { $0.hasPrefix("swiftlet: ") }
    }

    static let helloEnding = "Run ended: the guest wrote 0x0 to the debug-exit port; swiftlet's exit status \(ExitStatus.guestExit(0))"

    /// The lines that stand for exits (not the table under them).
    func exitLines(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("[") && $0.contains(" vcpu") }
    }

    @Test func helloNamesTheUARTRegistersAndFoldsItsBytes() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--trace-exits"])
        #expect(r.status == Self.helloStatus, "\(r.stderr.suffix(800))")
        #expect(r.stderr.contains("out port 0x03fa 1 byte ← 0x07  → COM1 (8250 UART) +2 FCR"))
        #expect(r.stderr.contains("in  port 0x03fa 1 byte → 0xc1  → COM1 (8250 UART) +2 IIR"))
        #expect(r.stderr.contains("in  port 0x03fd 1 byte → 0x60  → COM1 (8250 UART) +5 LSR"))
        #expect(r.stderr.contains("out port 0x03f8 1 byte ← 0x53 'S'  → COM1 (8250 UART) +0 THR"))
        // The banner's first 16 bytes: 'S' on its own line, the next 15 folded (the driver polls LSR every 16).
        #expect(r.stderr.contains("… and 15 more like it (THR): \"wiftlet tiny gu\""), "\(r.stderr.prefix(1500))")
        #expect(r.stderr.contains("out port 0x00f4 4 bytes ← 0x00000000  → debug-exit +0 EXIT"))
        #expect(r.stderr.contains("  LSR            COM1 (8250 UART) +5: Line Status Register"), "the legend")
        #expect(r.stderr.contains("The times include this trace's own cost"))
        // Every exit is accounted for: a line each, or counted on a folded line.
        let lines = exitLines(r.stderr)
        let folded = lines.compactMap { line -> Int? in
            guard let range = line.firstRange(of: "… and ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        #expect(lines.count - folded.count + folded.reduce(0, +) == 288, "hello makes 288 exits")
        #expect(lines.count < 100)
        #expect(endsWithHowTheRunEnded(r.stderr, Self.helloEnding), "\(r.stderr.suffix(600))")
    }

    @Test func allPrintsOneLinePerExit() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--trace-exits=all"])
        #expect(r.status == Self.helloStatus)
        #expect(exitLines(r.stderr).count == 288)
        #expect(!r.stderr.contains("more like it"))
        #expect(r.stderr.contains("out port 0x03f8 1 byte ← 0x77 'w'  → COM1 (8250 UART) +0 THR"))
    }

    @Test func summaryPrintsTheTableOnly() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--trace-exits=summary"])
        #expect(r.status == Self.helloStatus)
        #expect(exitLines(r.stderr).isEmpty)
        #expect(r.stderr.contains("  IO                288"))
        #expect(r.stderr.contains("No line was printed per exit"))
        #expect(endsWithHowTheRunEnded(r.stderr, Self.helloEnding), "\(r.stderr)")
    }

    @Test func aKindListFiltersTheLinesButTheTableCountsEverything() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--trace-exits=mmio"])
        #expect(r.status == Self.helloStatus)
        #expect(exitLines(r.stderr).isEmpty, "hello makes no MMIO exit")
        #expect(r.stderr.contains("  IO                288"))
    }

    @Test func aBadWordIsAUsageError() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--trace-exits=everything"])
        #expect(r.status == ExitStatus.badInput)
        #expect(r.stderr.contains("--trace-exits=everything: unknown word 'everything' (use summary, all, or the kinds to print: io, mmio, hlt"))
    }

    @Test func virtioMMIORegistersAreNamedAsTheSpecificationDoes() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--trace-exits=mmio", "--timeout", "60"])
        #expect(r.status == Self.helloStatus, "\(r.stderr.suffix(800))")
        #expect(r.stderr.contains("read  0xd0000000 4 bytes → 0x74726976  → virtio-mmio console +0x0 MagicValue"))
        #expect(r.stderr.contains("+0x60 InterruptStatus"))
        #expect(r.stderr.contains("+0x44 QueueReady"))
        #expect(!r.stderr.contains("KICK"), "virtio events are left out unless the list names them")
    }

    @Test func pciConfigurationAccessesNameTheFunctionAndRegister() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--virtio-transport", "pci", "--trace-exits=io,mmio", "--timeout", "60"])
        #expect(r.status == Self.helloStatus, "\(r.stderr.suffix(800))")
        #expect(r.stderr.contains("out port 0x0cf8 4 bytes ← 0x80000800  → PCI host bridge (configuration mechanism #1) +0 CONFIG_ADDRESS (selects 00:01.0 register 0x0)"))
        #expect(r.stderr.contains("in  port 0x0cfc 4 bytes → 0x10431af4  → PCI host bridge (configuration mechanism #1) +4 CONFIG_DATA (00:01.0 register 0x0)"),
                "vendor 0x1af4, device 0x1043 (virtio 1.2 §4.1.2: 0x1040 + console's ID 3)")
        #expect(r.stderr.contains("device_status (00:01.0 BAR 0 +0x14)"))
    }

    @Test func verboseAndExplainWriteTheSameRangeTheSameWay() {
        let boot = ProcessRunner.run(swiftlet, ["boot", "-v"])
        let explain = ProcessRunner.run(swiftlet, ["explain"])
        #expect(boot.stderr.contains("memory slot 0: guest-physical [0x0, 0x4000000)"), "\(boot.stderr.prefix(400))")
        #expect(explain.stdout.contains("slot 0  guest-physical [0x0, 0x4000000)"), "\(explain.stdout.prefix(400))")
        #expect(boot.stderr.contains("port COM1 (8250 UART) at [0x3f8, 0x400)"))
        #expect(explain.stdout.contains("port [0x3f8, 0x400)"))
    }
}
