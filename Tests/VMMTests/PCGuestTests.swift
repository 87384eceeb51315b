// Integration tests for the PC every multiboot guest now gets: the tiny guests that drive its interrupt
// hardware (timer, smp, echo), --cpus for multiboot, the RTC at 0x70/0x71, the MP and ACPI tables, and the
// bare machine kept behind --machine bare.
import Glibc
import KVM
import Testing
import TestSupport
import VMM
import X86Boot

func bootPC(_ guest: String, cpus: Int = 1, machine: MachineModel = .pc, timeout: Double = 60, image: [UInt8]? = nil,
            onLine: (@Sendable (String, Machine) -> Void)? = nil) throws -> (outcome: MachineOutcome, output: String, machine: Machine) {
    var c = MachineConfiguration()
    c.kernel = .embedded(guest)
    if let image {
        let path = "/tmp/swiftlet-pc-test-\(guest)-\(UInt32.random(in: 0...UInt32.max)).elf"
        ProcessRunner.writeFile(path, image)
        c.kernel = .file(path)
    }
    c.cpus = cpus
    c.machine = machine
    c.timeout = timeout
    let console = ConsoleOutput(fd: -1, capture: true)
    let built = try Machine.build(c, console: console)
    if let onLine {
        // Lines arrive while the UART holds its lock (its output callback): act from another thread, a thread
        // of its own: a Task could wait for a cooperative thread while every one of them runs a blocking boot.
        nonisolated(unsafe) let m = built
        console.observeLines { line in runOnNewThread { onLine(line, m) } }
    }
    let outcome = built.run()
    if case let .file(path) = c.kernel { _ = unlink(path) }
    return (outcome, String(decoding: console.captured, as: UTF8.self), built)
}

/// Runs `body` on a detached POSIX thread.
func runOnNewThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    let made = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, context)
    if made == 0 { pthread_detach(thread) } else { Unmanaged<Box>.fromOpaque(context).release(); body() }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct PCGuestTests {
    @Test func timerCountsLAPICTimerAndPITInterruptsAndMeasuresTheRate() throws {
        let (outcome, output, _) = try bootPC("timer")
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)), "\(outcome)\n\(output)")
        #expect(output.contains("timer: PIT interrupts 200, LAPIC timer interrupts "), "\(output)")
        let rate = output.split(separator: "\n").first { $0.hasPrefix("timer: measured LAPIC timer rate ") }
            .flatMap { Int($0.split(separator: " ")[5]) }
        // 1,000,000 cycles of KVM's 1 GHz APIC bus: 1000 Hz, measured in PIT time; a loaded host skews it.
        #expect(rate.map { $0 > 100 && $0 < 3000 } == true, "\(output)")
    }

    @Test(arguments: [1, 2, 4])
    func smpStartsEveryAPWithINITAndSIPIAndAllMeetAtTheBarrier(cpus: Int) throws {
        let (outcome, output, _) = try bootPC("smp", cpus: cpus)
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)), "\(outcome)\n\(output)")
        #expect(output.contains("smp: MP table lists \(cpus) processors; BSP has APIC ID 0"), "\(output)")
        for id in 1..<cpus { #expect(output.contains("smp: AP with APIC ID \(id) is up"), "\(output)") }
        #expect(!output.contains("APIC ID \(cpus) is up"))
        #expect(output.contains("smp: all \(cpus) CPUs reached the barrier"), "\(output)")
    }

    @Test func smpOnTheBareMachineFindsNoLocalAPICAndSaysSo() throws {
        let (outcome, output, _) = try bootPC("smp", machine: .bare)
        #expect(outcome == .debugExit(value: 2, status: ExitStatus.guestExit(2)), "\(outcome)")
        #expect(output.contains("smp: no local APIC at 0xfee00000"))
    }

    @Test func echoAnswersSerialInputFromItsIRQ4Handler() throws {
        let (outcome, output, _) = try bootPC("echo", timeout: 30) { line, machine in
            // The guest's first output resets the UART's receive FIFO: type once it has introduced itself.
            if line.contains("echo (type; q quits)") { _ = machine.serial?.enqueueInput(Array("hello, IRQ 4\nq".utf8)) }
        }
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)), "\(outcome)\n\(output)")
        #expect(output.contains("hello, IRQ 4\n"), "\(output)")
        #expect(output.contains("echo: 14 bytes in "), "\(output)")
    }

    @Test func echoWithoutInterruptControllersNeverHearsTheInput() throws {
        // The bare machine has no IOAPIC and no LAPIC: the guest's `sti; hlt` leaves KVM_RUN as a HLT exit and
        // the VMM ends the run there; the 'q' it was sent never arrives as an interrupt.
        let (outcome, output, _) = try bootPC("echo", machine: .bare, timeout: 10) { line, machine in
            if line.contains("echo (type") { _ = machine.serial?.enqueueInput(Array("q".utf8)) }
        }
        #expect(outcome == .halted(vcpu: 0), "\(outcome)")
        #expect(!output.contains("echo: "))
    }

    @Test func aMultibootKernelFindsTheMPTableTheACPITablesAndTheRTC() throws {
        let (outcome, _, machine) = try bootPC("hello")
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)))
        let signature = try machine.memory.readBytes(at: X86Layout.mpTable, count: 4)
        #expect(signature == Array("_MP_".utf8))
        let rsdp = try machine.memory.readBytes(at: X86Layout.acpi, count: 8)
        #expect(rsdp == Array("RSD PTR ".utf8))
        #expect(machine.portBus.entry(containing: 0x71)?.name == "RTC/CMOS (MC146818)")
        #expect(machine.bootNotes.contains { $0.contains("in-kernel irqchip") && $0.contains("PIT") })
    }

    @Test func theBareMachineHasNoTablesNoRTCAndNoIRQChip() throws {
        let (outcome, _, machine) = try bootPC("hello", machine: .bare)
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)))
        #expect(try machine.memory.readBytes(at: X86Layout.mpTable, count: 4) == [0, 0, 0, 0])
        #expect(machine.portBus.entry(containing: 0x71) == nil)
        #expect(!machine.bootNotes.contains { $0.contains("irqchip") })
    }

    @Test func aGuestReadsTheRTCThroughPorts0x70And0x71() throws {
        // mov al, 0x0b; out 0x70, al; in al, 0x71 (register B: 24-hour, BCD = 0x02); movzx; out 0xf4, eax
        let code: [UInt8] = [0xB0, 0x0B, 0xE6, 0x70, 0xE4, 0x71, 0x0F, 0xB6, 0xC0, 0xE7, 0xF4]
        let (outcome, _, _) = try bootPC("rtc", image: SyntheticELF.multiboot(code: code))
        #expect(outcome == .debugExit(value: 0x02, status: ExitStatus.guestExit(0x02)), "\(outcome)")
    }

    @Test func parkedAPsAndAHaltedBSPEndTheRunAsHalted() throws {
        // cli; hlt on vCPU 0 while three APs wait for INIT/SIPI that never comes.
        let (outcome, _, _) = try bootPC("halt4", cpus: 4, timeout: 30, image: SyntheticELF.multiboot(code: [0xFA, 0xF4]))
        #expect(outcome == .halted(vcpu: 0), "\(outcome)")
    }
}

@Suite struct PCOptionTests {
    @Test(arguments: ["0", "65", "-1"])
    func cpusOutsideOneToSixtyFourIsRefused(cpus: String) {
        let r = ProcessRunner.run(swiftlet, ["boot", "--cpus", cpus])
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("--cpus \(cpus): give 1 to 64"), "\(r.stderr)")
    }

    @Test func theBareMachineRefusesMoreThanOneCPU() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--machine", "bare", "--cpus", "2"])
        #expect(r.status == ExitStatus.badInput)
        #expect(r.stderr.contains("a bare machine has no LAPICs"), "\(r.stderr)")
    }

    @Test func anUnknownMachineIsRefused() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--machine", "q35"])
        #expect(r.status == ExitStatus.badInput)
        #expect(r.stderr.contains("--machine q35: unknown machine (use pc or bare)"), "\(r.stderr)")
    }
}
