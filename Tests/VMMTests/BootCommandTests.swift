// End-to-end tests of the `swiftlet` binary: exit statuses, one-line errors for bad input, the tracer.
import Glibc
import Testing
import TestSupport
import VMM

let swiftlet = ProcessRunner.swiftletPath

func writeTemp(_ name: String, _ bytes: [UInt8]) -> String {
    let path = "/tmp/swiftlet-test-\(getpidString())-\(name)"
    ProcessRunner.writeFile(path, bytes)
    return path
}

func getpidString() -> String { String(UInt32.random(in: 0...UInt32.max)) }

@Suite struct BadInputTests {
    /// Each case: arguments, expected status, a phrase the one-line error must contain.
    static let cases: [([String], Int32, String)] = [
        (["boot", "--kernel", "/nonexistent/kernel.elf"], 2, "cannot read kernel /nonexistent/kernel.elf: No such file or directory"),
        (["boot", "--kernel", "/"], 2, "cannot read kernel /: is a directory"),
        (["boot", "--memory", "abc"], 2, "--memory abc: not a size"),
        (["boot", "--memory", "64X"], 2, "unknown unit 'X'"),
        (["boot", "--memory", "0"], 2, "is too small"),
        (["boot", "--memory", "100000G"], 2, "more than this host has"),
        (["boot", "--memory", "99999999999999999999G"], 2, "--memory"),
        (["boot", "--boot", "bios"], 2, "--boot bios: unknown boot mode (use direct or firmware)"),
        (["boot", "--guest", "nope"], 2, "no embedded guest named 'nope'"),
        (["boot", "--timeout=-1"], 2, "--timeout must be a positive number"),
        (["boot", "--timeout=0"], 2, "--timeout must be a positive number"),
    ]

    @Test(arguments: cases)
    func refusesWithOneLineAndStatus(arguments: [String], status: Int32, phrase: String) {
        let r = ProcessRunner.run(swiftlet, arguments)
        #expect(r.status == status, "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains(phrase), "\(arguments): \(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"), "no Swift trap")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }

    static let badImages: [(String, [UInt8], String)] = [
        ("text", Array("hello\n".utf8), "not a kernel Swiftlet can boot"),
        ("arm", SyntheticELF.multiboot(code: [0xF4], machine: 40), "ELF machine is 40, not x86"),
        ("plain-elf", SyntheticELF.multiboot(code: [0xF4], multibootHeader: false), "neither a multiboot header nor a PVH note"),
        ("bad-sum", SyntheticELF.multiboot(code: [0xF4], badChecksum: true), "checksum is wrong"),
        ("too-big", SyntheticELF.multiboot(code: [0xF4], extraMemory: 128 << 20), "lies outside guest RAM (64 MiB); give the VM more --memory"),
        ("low", SyntheticELF.multiboot(code: [0xF4], loadAddress: 0x5000), "overlaps the boot information area"),
        ("truncated", Array(SyntheticELF.multiboot(code: [0xF4]).prefix(60)), "truncated"),
    ]

    @Test(arguments: badImages)
    func refusesBadKernels(name: String, image: [UInt8], phrase: String) {
        let path = writeTemp(name, image)
        defer { unlink(path) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--kernel", path])
        #expect(r.status == 2)
        #expect(r.stderr.contains(phrase), "\(name): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }

    @Test(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
    func refusesAKernelOverlappingTheFirmware() {
        let path = writeTemp("rom", SyntheticELF.multiboot(code: [0xF4], loadAddress: 0xFFFF_0000))
        defer { unlink(path) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--boot", "firmware", "--kernel", path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("overlaps the firmware ROM"), "\(r.stderr)")
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct BootCommandTests {
    @Test func bootWithNoArgumentsRunsHelloAndReturnsItsDebugExitStatus() {
        let r = ProcessRunner.run(swiftlet, ["boot"])
        #expect(r.status == 1)
        #expect(r.stdout.hasPrefix("Swiftlet tiny guest: hello from a multiboot kernel\n"))
        #expect(r.stderr.isEmpty)
    }

    @Test func exitStatusesNameWhoEndedTheRun() {
        #expect(ProcessRunner.run(swiftlet, ["boot", "--guest", "unmapped"]).status == 7)
        let triple = ProcessRunner.run(swiftlet, ["boot", "--guest", "triple-fault"])
        #expect(triple.status == 6)
        #expect(triple.stderr.contains("guest triple-faulted on vCPU 0"))
        let loop = ProcessRunner.run(swiftlet, ["boot", "--guest", "loop", "--timeout", "0.3"])
        #expect(loop.status == 8)
        #expect(loop.stderr.contains("guest still running after --timeout 0.3s"))
    }

    @Test func traceExitsPrintsEachExitAndTheTable() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--trace-exits"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("out port 0x03f8 1 byte ← 0x53 'S'  → COM1 (8250 UART) +0"))
        #expect(r.stderr.contains("in  port 0x03fd 1 byte → 0x60  → COM1 (8250 UART) +5"))
        #expect(r.stderr.contains("out port 0x00f4 4 bytes ← 0x00000000  → debug-exit +0"))
        #expect(r.stderr.contains("VM exits: every time the guest stops running"))
        #expect(r.stderr.contains("rip=0x"))
    }

    @Test func verboseShowsTheRecipe() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--boot", "firmware", "-v"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("firmware ROM at 0xffff0000"))
        #expect(r.stderr.contains("handoff block at 0x500"))
    }

    @Test func doctorNamesTheBackendAndMeasures() {
        let r = ProcessRunner.run(swiftlet, ["doctor"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("/dev/kvm: usable"))
        #expect(r.stdout.contains("KVM API version: 12"))
        #expect(r.stdout.contains("CPL0 (guest kernel mode):"))
        #expect(r.stdout.contains("CPL3 (guest user mode):"))
    }
}
