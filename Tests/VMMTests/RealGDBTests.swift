// The real client: Debian's gdb in batch mode against `swiftlet boot --gdb`, as docs/09-gdb.md shows it.
// A tiny guest by its ELF symbols and DWARF (guest/tiny/out/debug/hello.elf, written by guest/build.sh):
// break at a function, step, read variables, continue to the exit status. The minimal Linux vmlinux (by
// its symbols, plus the types guest/linux/gdb-types.sh compiles): break at start_kernel, bt, read
// init_task's comm, two vCPUs as two threads. Skipped, with the reason, where gdb, the debug ELF or the
// kernel is missing.
import Glibc
import Testing
import TestSupport
import VMM

enum GDBSessions {
    static let helloELF = ProcessRunner.packageRoot + "/guest/tiny/out/debug/hello.elf"
    /// The debug ELF describes the embedded guest only if guest/build.sh ran since the guests last changed:
    /// its stripped twin must be the embedded image, byte for byte.
    /// Under SWIFTLET_REQUIRE_ARTEFACTS=1 (CI) the tests run anyway and fail on what is missing.
    static var ready: Bool {
        Prerequisite.available(GDBTestSupport.gdbPath != nil && access(helloELF, R_OK) == 0
            && ProcessRunner.readBytes(ProcessRunner.packageRoot + "/guest/tiny/out/hello.elf") == GDBTestSupport.embeddedImage("hello"))
    }
    static let reason = "needs gdb (apt-get install gdb; setup.sh does) and a guest/tiny/out/debug/hello.elf built from the embedded guest's sources (run guest/build.sh)"
    static var gccPresent: Bool { Prerequisite.available(access("/usr/bin/gcc", X_OK) == 0) }

    /// Boots with `--gdb 127.0.0.1:0`, runs gdb -batch with `commands` (after `target remote`), returns
    /// gdb's output and the VMM's result once both ended.
    static func session(_ vmmArguments: [String], elf: String, commands: [String], timeout: Double) throws -> (gdb: String, vmm: (status: Int32, stdout: String, stderr: String)) {
        let (vmm, port) = try #require(GDBTestSupport.startVMM(vmmArguments))
        let script = "/tmp/swiftlet-gdb-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).gdb"
        ProcessRunner.writeFile(script, Array((["set pagination off", "set confirm off", "target remote 127.0.0.1:\(port)"] + commands).joined(separator: "\n").utf8 + [0x0A]))
        defer { unlink(script) }
        let gdb = try #require(Spawned.start(GDBTestSupport.gdbPath!, ["-q", "-nx", "-batch", "-x", script, elf]))
        let g = gdb.waitForOutput(containing: ["\u{0}never\u{0}"], timeout: timeout)
        // gdb has ended (or was stopped at the timeout); the VMM ends on its own after kill or the guest's exit.
        let v = vmm.waitForOutput(containing: ["\u{0}never\u{0}"], timeout: 20)
        return (g.stdout + g.stderr, (v.status, v.stdout, v.stderr))
    }
}

@Suite(.serialized,
       .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: GDBSessions.ready, Comment(rawValue: GDBSessions.reason)))
struct RealGDBTests {
    @Test func gdbBreaksInTheTinyGuestStepsReadsVariablesAndSeesItsExitStatus() throws {
        let (out, vmm) = try GDBSessions.session(["--guest", "hello", "--timeout", "60"], elf: GDBSessions.helloELF, commands: [
            "break report_memory", "continue", "next", "next", "print mbi->mem_lower", "print/x mbi->flags",
            "info threads", "monitor last-exits 3", "continue",
        ], timeout: 60)
        #expect(out.contains("Breakpoint 1, report_memory (mbi_address=24576) at guest/tiny/hello.c"), "\(out)")
        #expect(out.contains("$1 = 640"), "\(out)")
        #expect(out.contains("$2 = 0x245"), "\(out)")
        #expect(out.contains("Thread 1 (vCPU 0, 64-bit, CPL 0)"), "\(out)")
        #expect(out.contains("VM exits since the gdb stub started"), "\(out)")
        // hello's debug-exit value 0 is status 0 (the exit convention), and the stub reports the status gdb's way.
        #expect(out.contains("[Inferior 1 (Remote target) exited normally]"), "\(out)")
        #expect(vmm.status == ExitStatus.guestExit(0), "\(vmm.stderr)")
        #expect(vmm.stdout.contains("multiboot magic ok"))
    }

    @Test(.enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)),
          .enabled(if: GDBSessions.gccPresent, "guest/linux/gdb-types.sh needs gcc, the kernel's compiler"))
    func gdbBreaksAtStartKernelOfTheMinimalLinuxWithTwoVCPUs() throws {
        let types = "/tmp/swiftlet-kernel-types-\(getpid())"
        let made = ProcessRunner.run("/bin/bash", [ProcessRunner.packageRoot + "/guest/linux/gdb-types.sh", LinuxArtefacts.directory, types])
        #expect(made.status == 0, "\(made.stderr)")
        defer { _ = ProcessRunner.run("/bin/rm", ["-rf", types]) }
        let (out, vmm) = try LinuxBootLock.serialize {
            try GDBSessions.session(["--kernel", LinuxArtefacts.vmlinux, "--initrd", LinuxArtefacts.initramfs, "--cpus", "2", "--timeout", "300"],
                                    elf: LinuxArtefacts.vmlinux, commands: [
                "break start_kernel", "continue", "bt", "source \(types)/kernel-types.gdb", "print init_task.comm", "info threads", "kill",
            ], timeout: 240)
        }
        #expect(out.contains("hit Breakpoint 1, 0x") && out.contains(" in start_kernel ()"), "\(out)")
        #expect(out.contains("#0  0x") && out.contains("#1  0x") && out.contains("secondary_startup_64"), "\(out)")
        #expect(out.contains("= \"swapper"), "\(out)")
        #expect(out.contains("Thread 2 (vCPU 1"), "\(out)")
        #expect(vmm.status == 128 + SIGKILL, "\(vmm.stderr)")
    }
}
