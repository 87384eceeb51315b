// End-to-end tests of the `swiftlet` binary: exit statuses, one-line errors for bad input, the tracer.
import Glibc
import KVM
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
        #expect(r.status == ExitStatus.guestExit(0))
        #expect(r.stdout.hasPrefix("Swiftlet tiny guest: hello from a multiboot kernel\n"))
        #expect(r.stderr == "swiftlet: the guest wrote 0 to the debug-exit port (status 0)\n")
    }

    @Test func exitStatusesNameWhoEndedTheRun() {
        #expect(ProcessRunner.run(swiftlet, ["boot", "--guest", "unmapped"]).status == ExitStatus.guestExit(3))
        let triple = ProcessRunner.run(swiftlet, ["boot", "--guest", "triple-fault"])
        #expect(triple.status == 6)
        #expect(triple.stderr.contains("guest triple-faulted on vCPU 0"))
        let loop = ProcessRunner.run(swiftlet, ["boot", "--guest", "loop", "--timeout", "0.3"])
        #expect(loop.status == 8)
        #expect(loop.stderr.contains("guest still running after --timeout 0.3s"))
    }

    @Test func traceExitsPrintsEachExitAndTheTable() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--trace-exits"])
        #expect(r.status == ExitStatus.guestExit(0))
        #expect(r.stderr.contains("out port 0x03f8 1 byte ← 0x53 'S'  → COM1 (8250 UART) +0"))
        #expect(r.stderr.contains("in  port 0x03fd 1 byte → 0x60  → COM1 (8250 UART) +5"))
        #expect(r.stderr.contains("out port 0x00f4 4 bytes ← 0x00000000  → debug-exit +0"))
        #expect(r.stderr.contains("VM exits: every time the guest stops running"))
        #expect(r.stderr.contains("rip=0x"))
    }

    @Test func verboseShowsTheRecipe() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--boot", "firmware", "-v"])
        #expect(r.status == ExitStatus.guestExit(0))
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

/// The exit statuses the README promises that no embedded guest produces: 0 (the guest halted or reset the
/// machine) and 4 (/dev/kvm unusable), through the `swiftlet` binary.
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ExitStatusZeroAndFourTests {
    func bootSynthetic(_ name: String, _ code: [UInt8]) -> ProcessResult {
        let path = writeTemp(name, SyntheticELF.multiboot(code: code))
        defer { unlink(path) }
        return ProcessRunner.run(swiftlet, ["boot", "--kernel", path, "--timeout", "30"], deadline: 60)
    }

    @Test func aGuestThatHaltsWithInterruptsOffEndsWithStatus0() {
        let r = bootSynthetic("halt", [0xFA, 0xF4])                                  // cli; hlt
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "swiftlet: guest halted (vCPU 0 executed HLT with nothing to wake it; status 0)\n", "\(r.stderr)")
    }

    @Test func aGuestThatResetsThroughTheKeyboardControllerEndsWithStatus0() {
        let r = bootSynthetic("reset", [0xB0, 0xFE, 0xE6, 0x64, 0xFA, 0xF4])           // mov al, 0xfe; out 0x64, al; cli; hlt
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("guest reset the machine (i8042 reset command 0xFE on port 0x64); Swiftlet stops instead of rebooting"), "\(r.stderr)")
    }

    static var canHideDevKVM: Bool { Prerequisite.available(geteuid() == 0 && Prerequisite.tool("unshare") != nil) }

    /// /dev/kvm made unusable for one swiftlet process only, in a mount namespace of its own (unshare -m
    /// makes its mounts private): a /dev without kvm, or /dev/null bound over /dev/kvm.
    func bootWithout(_ setUp: String) throws -> ProcessResult {
        let unshare = try #require(Prerequisite.tool("unshare"))
        return ProcessRunner.run(unshare, ["-m", "/bin/sh", "-c", "\(setUp) && exec '\(swiftlet)' boot"], deadline: 60)
    }

    @Test(.enabled(if: canHideDevKVM, "needs root and unshare(1) to hide /dev/kvm in a mount namespace"))
    func aMissingDevKVMIsStatus4WithAHint() throws {
        let r = try bootWithout("mount -t tmpfs none /dev")
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("swiftlet: cannot open /dev/kvm: No such file or directory (is the kvm module loaded?"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test(.enabled(if: canHideDevKVM, "needs root and unshare(1) to hide /dev/kvm in a mount namespace"))
    func aDeviceThatIsNotKVMIsStatus4() throws {
        let r = try bootWithout("mount --bind /dev/null /dev/kvm")
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stderr == "swiftlet: KVM_GET_API_VERSION failed: Inappropriate ioctl for device\n", "\(r.stderr)")
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct DoctorCommandTests {
    /// The backend a CPU can have: kvm_intel needs VT-x (vmx in /proc/cpuinfo), kvm_amd AMD-V (svm); a
    /// working /dev/kvm without either is a software KVM, kvm_pvm on this project's machines.
    static var moduleTheCPUAllows: String {
        let flags = Set(ProcessRunner.readFile("/proc/cpuinfo").split(separator: "\n")
            .first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        return flags.contains("vmx") ? "kvm_intel" : flags.contains("svm") ? "kvm_amd" : "kvm_pvm"
    }

    @Test func noSpeedTestNamesTheModuleAndRunsNoGuest() {
        let started = monotonicSeconds()
        let r = ProcessRunner.run(swiftlet, ["doctor", "--no-speed-test"], deadline: 60)
        let seconds = monotonicSeconds() - started
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.hasPrefix("/dev/kvm: usable\nbackend: \(Self.moduleTheCPUAllows): "), "\(r.stdout)")
        #expect(r.stdout.contains("KVM API version: 12\n"))
        #expect(r.stdout.contains("  KVM_CAP_USER_MEMORY            1\n"))
        #expect(!r.stdout.contains("speed test") && !r.stdout.contains("CPL0"), "no guest ran: \(r.stdout)")
        // The speed test boots a guest for about 100 ms (kvm_pvm) to seconds; without it doctor only asks KVM.
        #expect(seconds < 10, "doctor --no-speed-test took \(seconds) s")
    }

    @Test func theFullDoctorNamesTheSameModule() {
        let r = ProcessRunner.run(swiftlet, ["doctor"], deadline: 120)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("backend: \(Self.moduleTheCPUAllows): "), "\(r.stdout)")
    }
}

/// `--no-backend-profile` on a PVH kernel that is not Linux: a few instructions that print the command line
/// they find through hvm_start_info, so the test reads what reached the guest, not what the VMM says it sent.
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct BackendProfileFlagTests {
    func boot(_ options: [String]) -> ProcessResult {
        let path = writeTemp("pvh-cmdline", SyntheticELF.pvh(code: SyntheticELF.printCommandLine))
        defer { unlink(path) }
        return ProcessRunner.run(swiftlet, ["boot", "--kernel", path, "--timeout", "30", "-v"] + options, deadline: 60)
    }

    @Test func theProfileReachesThePVHGuestOnlyWithoutTheFlag() {
        let profile = ExpectedBackendProfile.parameters(KVMSystem.backend())
        let with = boot([])
        #expect(with.status == 0, "a PVH kernel is booted as Linux: the debug-exit value 0 is the status: \(with.stderr)")
        #expect(with.stdout == (["console=ttyS0", "reboot=k", "panic=-1", "pci=off"] + profile).joined(separator: " "), "\(with.stdout)")
        #expect(with.stderr.contains("backend profile kvm_pvm:") == (KVMSystem.backend() == .pvm), "\(with.stderr)")

        let without = boot(["--no-backend-profile"])
        #expect(without.status == 0, "\(without.stderr)")
        #expect(without.stdout == "console=ttyS0 reboot=k panic=-1 pci=off", "\(without.stdout)")
        #expect(!without.stderr.contains("backend profile"), "\(without.stderr)")
    }

    @Test func theFlagChangesNothingForAMultibootGuest() {
        let plain = ProcessRunner.run(swiftlet, ["boot", "-v"], deadline: 60)
        let flagged = ProcessRunner.run(swiftlet, ["boot", "-v", "--no-backend-profile"], deadline: 60)
        #expect(plain.status == ExitStatus.guestExit(0) && flagged.status == plain.status)
        #expect(plain.stdout == flagged.stdout && plain.stdout.hasPrefix("Swiftlet tiny guest: hello from a multiboot kernel\n"))
        #expect(!plain.stderr.contains("backend profile") && !flagged.stderr.contains("backend profile"))
    }
}
