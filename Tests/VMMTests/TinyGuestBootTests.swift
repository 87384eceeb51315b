// Integration tests: boot each embedded tiny guest on the real /dev/kvm, both ways (direct and through the
// reset-vector firmware), and check what the guest printed and how the run ended.
import Glibc
import KVM
import Testing
import TestSupport
import VMM

func boot(_ guest: String, mode: BootMode = .direct, memory: UInt64 = 64 << 20, timeout: Double = 60,
          image: [UInt8]? = nil) throws -> (outcome: MachineOutcome, output: String, machine: Machine) {
    var c = MachineConfiguration()
    c.kernel = .embedded(guest)
    if let image {
        let path = "/tmp/swiftlet-test-\(guest)-\(UInt32.random(in: 0...UInt32.max)).elf"
        ProcessRunner.writeFile(path, image)
        c.kernel = .file(path)
    }
    c.bootMode = mode
    c.memorySize = memory
    c.timeout = timeout
    let console = ConsoleOutput(fd: -1, capture: true)
    let machine = try Machine.build(c, console: console)
    let outcome = machine.run()
    if case let .file(path) = c.kernel { _ = unlink(path) }
    return (outcome, String(decoding: console.captured, as: UTF8.self), machine)
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct TinyGuestBootTests {
    @Test(arguments: BootMode.allCases)
    func helloPrintsWhatItSeesAndExitsThroughTheDebugPort(mode: BootMode) throws {
        let (outcome, output, _) = try boot("hello", mode: mode)
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)))
        #expect(output.contains("Swiftlet tiny guest: hello from a multiboot kernel"))
        #expect(output.contains("hypervisor: KVMKVMKVM"))
        #expect(output.contains("memory: lower 640 KiB, upper 64512 KiB"))
        #expect(output.contains("mode: 64-bit long mode, paging on, PAE on"))
        #expect(output.contains("multiboot magic ok"))
        #expect(output.contains("swiftlet firmware: real mode -> protected mode") == (mode == .firmware))
    }

    @Test func helloSeesTheMemorySizeItWasGiven() throws {
        let (_, output, _) = try boot("hello", memory: 32 << 20)
        #expect(output.contains("upper \(32 * 1024 - 1024) KiB"))
    }

    @Test(arguments: BootMode.allCases)
    func tripleFaultEndsTheVMWithARegisterDump(mode: BootMode) throws {
        let (outcome, output, _) = try boot("triple-fault", mode: mode)
        #expect(output.contains("triple fault"))
        guard case let .tripleFault(vcpu, registers) = outcome else {
            Issue.record("expected a triple fault, got \(outcome)")
            return
        }
        #expect(vcpu == 0)
        #expect(registers.contains("rip ") && registers.contains("cr3 ") && registers.contains("idt 0/0"))
        #expect(outcome.exitStatus == ExitStatus.guestCrashed)
        #expect(outcome.message?.hasPrefix("guest triple-faulted") == true)
    }

    @Test func unmappedAccessBecomesAnMMIOExitReadingAllOnes() throws {
        let (outcome, output, machine) = try boot("unmapped")
        #expect(output.contains("read 0xffffffff from 0x30000000"))
        #expect(outcome == .debugExit(value: 3, status: ExitStatus.guestExit(3)))
        #expect(machine.tracer.table[.mmio]?.count == 2)
    }

    @Test func aGuestThatNeverStopsIsEndedByTheTimeout() throws {
        // 2 s: the guest's line takes a few hundred emulated instructions, well inside that even with both
        // cores busy, so the timeout ends a guest that was running (the line shows it was).
        let (outcome, output, _) = try boot("loop", timeout: 2)
        #expect(output.contains("looping forever"))
        #expect(outcome == .timeout(seconds: 2))
        #expect(outcome.exitStatus == ExitStatus.timeout)
    }

    @Test func doctorGuestReportsBothLoops() throws {
        let report = Doctor.examine()
        #expect(report.openError == nil)
        #expect(report.speedTestError == nil)
        let kernel = try #require(report.cpl0NanosecondsPerIteration)
        let user = try #require(report.cpl3NanosecondsPerIteration)
        #expect(user > 0 && kernel > 0)
        let verdict = Doctor.render(report)
        switch report.backend {
        case .pvm:
            // Kernel mode runs in KVM's emulator here: orders of magnitude slower than user mode (measured
            // ~1.2 µs against ~0.4 ns per iteration).
            #expect(kernel / user > 50)
            #expect(verdict.contains("guest kernel-mode code is not running on the CPU"))
        case .intel, .amd:
            // Both loops run natively: the same two instructions, the same speed give or take scheduling.
            #expect(kernel / user < 20)
            #expect(verdict.contains("both privilege levels run natively on the CPU"))
        case .unknown:
            // Doctor then judges by the ratio alone, with the threshold it states.
            #expect(verdict.contains(kernel / user > 20 ? "is not running on the CPU" : "run natively on the CPU"))
        }
    }

    @Test func int3IsFinishedByTheVMMOnPVMAndDeliveredAsBreakpoint() throws {
        // 32-bit code: int3 with no IDT loaded. On kvm_pvm the emulator refuses int3; Swiftlet advances RIP
        // and injects #BP itself. Either way the CPU then finds no IDT: #BP → #GP → #DF → triple fault.
        let image = SyntheticELF.multiboot(code: [0xCC, 0xF4])
        let (outcome, _, machine) = try boot("int3", image: image)
        #expect(outcome.exitStatus == ExitStatus.guestCrashed)
        guard case .tripleFault = outcome else {
            Issue.record("expected a triple fault after #BP delivery, got \(outcome)")
            return
        }
        if machine.backend == .pvm {
            #expect(machine.finishedInstructions.withLock { $0["int3"] } == 1)
        }
    }

    @Test func fwaitIsFinishedByTheVMMOnPVM() throws {
        // fninit (no pending x87 exception afterwards), fwait, then debug exit 9. kvm_pvm's emulator refuses
        // fwait (Debian's kernel runs one after "smp: Brought up"); with CR0.TS clear and FSW.ES clear it
        // does nothing, so Swiftlet advances RIP and the guest reaches its exit. Hardware runs it natively.
        let image = SyntheticELF.multiboot(code: [0xDB, 0xE3, 0x9B] + SyntheticELF.debugExit(9))
        let (outcome, _, machine) = try boot("fwait", image: image)
        #expect(outcome == .debugExit(value: 9, status: ExitStatus.guestExit(9)), "\(outcome)")
        if machine.backend == .pvm {
            #expect(machine.finishedInstructions.withLock { $0["fwait"] } == 1)
        }
    }

    @Test func anInstructionTheEmulatorLacksStopsWithItsBytesAndName() throws {
        // popcnt eax, eax; hlt. kvm_pvm's emulator cannot run popcnt in kernel mode; hardware runs it.
        let (outcome, _, machine) = try boot("popcnt", image: SyntheticELF.multiboot(code: [0xF3, 0x0F, 0xB8, 0xC0, 0xF4]))
        if machine.backend == .pvm {
            guard case let .emulationFailure(_, report) = outcome else {
                Issue.record("expected an emulation failure, got \(outcome)")
                return
            }
            #expect(report.contains("bytes f3 0f b8 c0"))
            #expect(report.contains("(popcnt)"))
            #expect(report.contains("kvm_pvm"))
            #expect(outcome.exitStatus == ExitStatus.guestCrashed)
        } else {
            #expect(outcome == .halted(vcpu: 0))
        }
    }

    @Test func synthetic32BitGuestExitsWithItsValue() throws {
        let (outcome, _, _) = try boot("exit5", image: SyntheticELF.multiboot(code: SyntheticELF.debugExit(5)))
        #expect(outcome == .debugExit(value: 5, status: ExitStatus.guestExit(5)))
    }

    @Test func countsExitsByReason() throws {
        let (_, output, machine) = try boot("hello")
        let io = try #require(machine.tracer.table[.io])
        // The guest's UART driver finds the 16550A's FIFO (an FCR write, an IIR read), then polls LSR once
        // per 16 bytes: every byte is an OUT to THR, plus one LSR read per FIFO-full, plus the debug exit.
        let bytes = output.utf8.count
        #expect(io.count >= bytes + (bytes + 15) / 16 + 3)
        #expect(io.count < bytes + bytes / 8 + 8, "one LSR poll per 16 bytes, not one per byte: \(io.count) exits for \(bytes) bytes")
        #expect(machine.tracer.summary().contains("IO"))
    }
}

/// The probe guest (swiftlet compare --probe's VM side) and the run report `swiftlet boot --report` writes.
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ProbeGuestAndRunReportTests {
    @Test func theProbeGuestReadsPastItsRAMAndTheReportRecordsTheExits() throws {
        let (outcome, output, machine) = try boot("probe")
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)))
        #expect(output.contains("swiftlet-probe: memory-kib 65152"), "640 + 64512 KiB: \(output)")
        #expect(output.contains("swiftlet-probe: memory-end 0x04000000"))
        #expect(output.contains("swiftlet-probe: read-past-end 0x04000000 read 0xffffffff"))
        #expect(output.contains("swiftlet-probe: port-io in 0x80 read 0x000000ff"))
        #expect(output.contains("swiftlet-probe: cpl 0"))
        let written = machine.runReport(outcome: outcome)
        #expect(written.text.hasPrefix("{\n\t\"format\": \"swiftlet-run-report\",\n\t\"version\": 2,\n\t\"side\": \"vm\""), "\(written.text)")
        #expect(written.text.contains("\"unassigned_port_accesses\": [\n\t\t{\n\t\t\t\"access\": \"read\",\n\t\t\t\"port\": \"0x80\",\n\t\t\t\"size\": 1,"), "\(written.text)")
        let report = written.entries.map { "\($0.key) \($0.value)" }
        #expect(report.contains("unmapped read 0x4000000 4 0xffffffff"))
        #expect(report.contains("port_unassigned read 0x80 1 0xff"))
        #expect(report.contains("port_unassigned_count 1"))
        #expect(report.contains("outcome debug-exit") && report.contains("debug_exit_value 0") && report.contains("exit_status \(ExitStatus.guestExit(0))"))
        #expect(report.contains { $0.hasPrefix("marker 1 ") } && report.contains { $0.hasPrefix("marker 2 ") })
        #expect(report.contains { $0.hasPrefix("exit IO ") } && report.contains { $0.hasPrefix("exit MMIO 1 ") })
        let resident = report.first { $0.hasPrefix("ram_resident_bytes ") }.flatMap { UInt64($0.split(separator: " ")[1]) } ?? 0
        #expect(resident > 0 && resident < 64 << 20, "the guest touched a few pages of its 64 MiB: \(resident)")
    }

    @Test func theReportFileIsWrittenEvenWhenTheMachineCannotBeBuilt() {
        let path = "/tmp/swiftlet-test-report-\(getpid())"
        defer { unlink(path) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--kernel", "/nonexistent/kernel.elf", "--report", path])
        #expect(r.status == 2)
        let report = ProcessRunner.readFile(path)
        #expect(report.hasPrefix("{\n\t\"format\": \"swiftlet-run-report\",\n\t\"version\": 2,\n\t\"side\": \"vm\""), "\(report)")
        #expect(report.contains("\t\"outcome\": \"build-failed\",\n") && report.contains("\t\"exit_status\": 2\n"))
        #expect(report.contains("\t\"message\": \"cannot read kernel /nonexistent/kernel.elf"))
    }

    @Test func theProbeHelperIsNotAGuest() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--guest", "probe-helper"])
        #expect(r.status == ExitStatus.badInput)
        #expect(r.stderr.contains("no embedded guest named 'probe-helper'"), "\(r.stderr)")
        #expect(!MachineConfiguration.embeddedGuests.contains("probe-helper") && MachineConfiguration.embeddedGuests.contains("probe"))
    }
}
