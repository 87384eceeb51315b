// Machine+Run: vCPU threads and the exit dispatch loop.
//
// Each vCPU runs on its own POSIX thread because KVM_RUN blocks (never on Swift's cooperative pool). The
// loop calls KVM_RUN, decodes the exit and hands it on: port I/O and MMIO to the buses, HLT, SHUTDOWN,
// FAIL_ENTRY, INTERNAL_ERROR and anything unknown to the outcome. Stopping is cooperative: the first
// outcome wins, sets `stopRequested`, and every other vCPU is kicked with a signal plus `immediate_exit`
// (the two together close the race of a kick arriving just before KVM_RUN).
import CKVM
import Devices
import GuestMemory
import Glibc
import KVM
import Synchronization

/// The signal used to kick a vCPU thread out of KVM_RUN.
let kickSignal = ckvm_sigrtmin(1)

extension Machine {
    /// Runs the guest until it ends or `configuration.timeout` expires; returns how it ended.
    public func run() -> MachineOutcome {
        // The machine is built: from here on the VMM handles what the guest gives it, so it gives up what
        // it no longer needs before starting any thread (each thread inherits no capabilities and installs
        // its own seccomp allowlist as it starts; this thread installs its own below, after the last start).
        if configuration.confine, let failure = Confinement.prepareProcess() { return .vmmFailure(failure) }
        _ = ckvm_install_kick_handler(kickSignal)
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else { return .vmmFailure("cannot create a pipe: \(String(cString: strerror(errno)))") }
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        let doneFD = pipeFDs[1]
        // SIGTERM, SIGINT and SIGHUP end the run the orderly way, with status 128 + N (StopSignals.swift).
        // With --forward-signals they (and SIGQUIT, SIGUSR1, SIGUSR2) go to the guest's command instead.
        let forwardSignals = configuration.forwardSignals && format.isLinux
        let stopSignals = StopSignals(forwarding: forwardSignals)
        defer { stopSignals.remove() }

        var input: ConsoleInput? = nil
        if let deliver = consoleInputSink() {
            input = ConsoleInput(deliver: deliver) { [unowned self] in self.finish(.stoppedByUser) }
            input?.start()
        }
        defer { input?.stop() }
        if let virtioConsole {
            do { try virtioConsole.start(timeout: configuration.timeout, stopFD: stopSignals.fd) } catch {
                virtioConsole.stop()    // removes the console socket's file
                if let signal = stopSignals.take() { return .stoppedBySignal(signal) }
                if case let .noConsoleClient(path, seconds) = error { return .noConsoleClient(path: path, seconds: seconds) }
                return .vmmFailure("\(error)")
            }
        }

        // --control-socket and SIGUSR1/SIGUSR2: pause, resume, snapshot (ControlSocket.swift).
        var control: ControlSocket? = nil
        if let path = configuration.controlSocket {
            do { control = try ControlSocket(path: path) } catch { return .vmmFailure("\(error)") }
        }
        defer { control?.close() }
        let pauseSignals = PauseSignals(enabled: !forwardSignals, snapshotOnQuit: configuration.snapshotPath != nil && !forwardSignals)
        defer { pauseSignals.remove() }

        gdbStub?.start()
        var threads: [pthread_t] = []
        for vcpu in vcpus {
            let context = Unmanaged.passRetained(VCPUThreadContext(machine: self, vcpu: vcpu))
            var thread = pthread_t()
            let result = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<VCPUThreadContext>.fromOpaque(raw!).takeRetainedValue()
                // The kick must get through even if whoever started us blocked real-time signals.
                _ = ckvm_thread_signal_mask(kickSignal, 0)
                Confinement.enter(.vcpu, name: "vcpu\(context.vcpu.id)")
                context.machine.vcpuLoop(context.vcpu)
                // A vCPU that leaves its loop ends the run (normally it leaves because the run ended).
                context.machine.finish(.halted(vcpu: context.vcpu.id))
                return nil
            }, context.toOpaque())
            if result != 0 {
                context.release()
                finish(.vmmFailure("cannot start vCPU thread: \(String(cString: strerror(result)))"))
                break
            }
            threads.append(thread)
        }

        // Wait until something ends the run (a vCPU, a device, the console) or the timeout passes. The pipe
        // only wakes this thread; `stopRequested` is the truth.
        vcpuThreads.withLock { $0 = threads }
        wakeFD.store(doneFD, ordering: .releasing)
        var markerSnapshotTaken = false
        Confinement.enter(.main, name: "swiftlet")
        let deadline = configuration.timeout.map { Self.deadline(after: $0, from: ckvm_monotonic_ns()) }
        if threads.isEmpty { finish(.vmmFailure("no vCPU could be started")) }
        // Periodic kicks: for RIP sampling, and on kvm_pvm to get pending interrupts delivered (see tickInterval()).
        let tickMs = [ripSampleInterval(), tickInterval()].compactMap { $0 }.min()
        // At least every 50 ms: a partial console line (a prompt) is written once the guest has gone quiet.
        let consolePollMs: Int32 = 50
        // The PC: every haltCheckMilliseconds, all vCPUs are kicked and report whether they are parked
        // (HLT with interrupts off never leaves KVM_RUN when the LAPIC is in the kernel; Machine+Platform.swift).
        let checksHalt = hasInterruptControllers
        var nextHaltCheck = ckvm_monotonic_ns() + Self.haltCheckMilliseconds * 1_000_000
        exitCounts.withLock { $0 = Array(repeating: 0, count: vcpus.count) }
        var lastExitCounts = Array(repeating: -1, count: vcpus.count)
        while !stopRequested.load(ordering: .acquiring) {
            if checksHalt, ckvm_monotonic_ns() >= nextHaltCheck {
                if everyVCPUParked() { finish(.halted(vcpu: 0)); break }
                let counts = exitCounts.withLock { $0 }
                for (index, thread) in threads.enumerated() where index >= counts.count || counts[index] == lastExitCounts[index] {
                    _ = ckvm_kick_thread(UInt(thread), kickSignal)
                }
                lastExitCounts = counts + Array(repeating: -1, count: max(0, threads.count - counts.count))
                nextHaltCheck = ckvm_monotonic_ns() + Self.haltCheckMilliseconds * 1_000_000
            }
            var timeoutMs: Int32 = min(tickMs ?? consolePollMs, consolePollMs)
            if let deadline {
                let now = ckvm_monotonic_ns()
                if now >= deadline { finish(.timeout(seconds: configuration.timeout!)); break }
                timeoutMs = min(timeoutMs, Int32(min((deadline - now) / 1_000_000 + 1, 1_000_000)))
            }
            console.flushIfQuiet()
            if tickMs != nil { for thread in threads { _ = ckvm_kick_thread(UInt(thread), kickSignal) } }
            if feedPendingConsoleInput() { timeoutMs = 1 } // the rest as soon as the guest drains the FIFO
            if !markerSnapshotTaken && snapshotDue.load(ordering: .acquiring) {
                markerSnapshotTaken = true
                takeMarkerSnapshot()
                continue
            }
            // Slots: wake-up pipe, stop signals, pause, resume and snapshot signals, then the control socket's fds.
            var fds = ([pipeFDs[0], stopSignals.fd, pauseSignals.pauseFD, pauseSignals.resumeFD, pauseSignals.snapshotFD] + (control?.pollFDs ?? []))
                .map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&fds, nfds_t(fds.count), timeoutMs) > 0 {
                if fds[0].revents != 0 {
                    var byte: UInt8 = 0
                    _ = read(pipeFDs[0], &byte, 1)
                }
                if fds[1].revents != 0, let signal = stopSignals.take() {
                    // Forwarded: init takes it from the mailbox within 0.1 s and sends it to the command.
                    if forwardSignals, labPorts?.post(signal: signal) == true { continue }
                    finish(.stoppedBySignal(signal)); break
                }
                if fds[2].revents != 0, ckvm_eventfd_drain(pauseSignals.pauseFD) > 0 { _ = pauseVCPUs() }
                if fds[3].revents != 0, ckvm_eventfd_drain(pauseSignals.resumeFD) > 0 { resumeVCPUs() }
                if fds[4].revents != 0, ckvm_eventfd_drain(pauseSignals.snapshotFD) > 0, !markerSnapshotTaken {
                    markerSnapshotTaken = true
                    takeMarkerSnapshot()
                    continue
                }
                if let control {
                    if fds[5].revents != 0 { control.accept() }
                    else if fds.count > 6, fds[6].revents != 0 {
                        for line in control.readCommands() { control.reply(controlCommand(line)) }
                    }
                }
            }
        }
        pauseGate.end()
        wakeFD.store(-1, ordering: .releasing)
        gdbStub?.releaseForEnd()
        kickAll(threads)
        for thread in threads { pthread_join(thread, nil) }
        virtioConsole?.stop()
        console.flush()
        let result = finalOutcome()
        tracer.end(result)
        gdbStub?.end(status: result.exitStatus)
        return result
    }

    /// The outcome recorded first, except that a Linux guest that panicked and then rebooted (panic=-1)
    /// or halted did not end well.
    private func finalOutcome() -> MachineOutcome {
        let result = outcome.withLock { $0 } ?? .halted(vcpu: 0)
        if format.isLinux, let panic = panicLine.withLock({ $0 }) {
            switch result {
            case .reset, .halted: return .kernelPanic(line: panic)
            default: break
            }
        }
        return result
    }

    /// `now` + `seconds` in monotonic nanoseconds, saturating at UInt64.max (never: the guest runs on):
    /// the options refuse a timeout beyond MachineConfiguration.maximumTimeout, but a configuration built in
    /// code may hold any Double, and converting inf or 1e308 * 1e9 to UInt64 would trap.
    static func deadline(after seconds: Double, from now: UInt64) -> UInt64 {
        let nanoseconds = seconds * 1e9
        guard nanoseconds > 0 else { return now }          // and NaN
        guard nanoseconds < 1.8e19 else { return UInt64.max } // 2^64 is about 1.845e19
        let (sum, overflow) = now.addingReportingOverflow(UInt64(nanoseconds))
        return overflow ? UInt64.max : sum
    }

    /// Offers the pending console input to the 8250 (as much as its FIFO takes); true while some is left.
    func feedPendingConsoleInput() -> Bool {
        guard let serial else { return false }
        return pendingConsoleInput.withLock { bytes in
            guard !bytes.isEmpty else { return false }
            let taken = serial.enqueueInput(bytes)
            bytes.removeFirst(taken)
            return !bytes.isEmpty
        }
    }

    /// Records the outcome if none is recorded yet and asks every vCPU to stop.
    func finish(_ result: MachineOutcome) {
        outcome.withLock { if $0 == nil { $0 = result } }
        stopRequested.store(true, ordering: .releasing)
        let fd = wakeFD.load(ordering: .acquiring)
        if fd >= 0 { var byte: UInt8 = 1; _ = write(fd, &byte, 1) }
    }

    private func kickAll(_ threads: [pthread_t]) {
        stopRequested.store(true, ordering: .releasing)
        for vcpu in vcpus { vcpu.setImmediateExit(true) }
        for thread in threads { _ = ckvm_kick_thread(UInt(thread), kickSignal) }
    }

    /// The run loop of one vCPU, on its own thread.
    func vcpuLoop(_ vcpu: VCPU) {
        let tracing = tracer.printing
        let checksHalt = hasInterruptControllers
        let index = vcpus.firstIndex { $0 === vcpu } ?? 0
        let stub = gdbStub // --gdb: stops, steps and breakpoints (GDBStub.swift)
        stub?.vcpuStarted(vcpu)
        if vcpu.id == 0 { mark("first KVM_RUN") }
        while !stopRequested.load(ordering: .acquiring) {
            if pauseGate.isPaused { parkForPause(vcpu); continue }
            if let stub, !stub.beforeRun(vcpu) { break }
            let entered = ckvm_monotonic_ns()
            let exit: VCPUExit
            do { exit = try vcpu.run() } catch {
                finish(.vmmFailure("vCPU \(vcpu.id): \(error)"))
                return
            }
            let exited = ckvm_monotonic_ns()
            if let stub, let reason = stub.intercept(exit, on: vcpu) {
                tracer.record(reason, guestNanoseconds: exited - entered, vmmNanoseconds: ckvm_monotonic_ns() - exited)
                stub.afterExit(exit, reason: reason, on: vcpu)
                continue
            }
            let reason = handle(exit, on: vcpu, tracing: tracing)
            if checksHalt, reason != .interrupted { exitCounts.withLock { if index < $0.count { $0[index] += 1 } } }
            tracer.record(reason, guestNanoseconds: exited - entered, vmmNanoseconds: ckvm_monotonic_ns() - exited)
            stub?.afterExit(exit, reason: reason, on: vcpu)
        }
    }

    /// Dispatches one exit; returns its reason for the tracer.
    func handle(_ exit: VCPUExit, on vcpu: VCPU, tracing: Bool) -> ExitTracer.Reason {
        switch exit {
        case let .io(io):
            handlePortIO(io, vcpu: vcpu, tracing: tracing)
            return .io
        case let .mmio(mmio):
            handleMMIO(mmio, vcpu: vcpu, tracing: tracing)
            return .mmio
        case .halt:
            if tracing { tracer.printExit(vcpu: vcpu.id, reason: .hlt, detail: "guest executed HLT", rip: try? vcpu.registers().rip) }
            finish(.halted(vcpu: vcpu.id))
            return .hlt
        case .shutdown:
            if tracing { tracer.printExit(vcpu: vcpu.id, reason: .shutdown, detail: "triple fault", rip: try? vcpu.registers().rip) }
            finish(.tripleFault(vcpu: vcpu.id, registers: registerDump(vcpu)))
            return .shutdown
        case let .failEntry(reason, cpu):
            finish(.crashed(vcpu: vcpu.id, report: "KVM_EXIT_FAIL_ENTRY: the CPU refused to enter the guest (hardware reason 0x\(hex(reason)), host CPU \(cpu))\n\(registerDump(vcpu))"))
            return .failEntry
        case let .internalError(suberror, data):
            if suberror == internalErrorEmulation, let mnemonic = finishInstruction(vcpu, data: data) {
                finishedInstructions.withLock { $0[mnemonic, default: 0] += 1 }
                if tracing { tracer.printExit(vcpu: vcpu.id, reason: .internalError, detail: "emulation failure on \(mnemonic): finished by the VMM, resuming", rip: try? vcpu.registers().rip) }
                return .internalError
            }
            if suberror == internalErrorEmulation {
                finish(.emulationFailure(vcpu: vcpu.id, report: emulationFailureReport(vcpu, data: data)))
            } else {
                finish(.crashed(vcpu: vcpu.id, report: "KVM_EXIT_INTERNAL_ERROR suberror \(suberror) (\(internalErrorName(suberror))), data \(data.map { "0x" + hex($0) }.joined(separator: " "))\n\(registerDump(vcpu))"))
            }
            return .internalError
        case let .systemEvent(type):
            finish(type == 2 ? .reset(how: "KVM system event RESET") : .halted(vcpu: vcpu.id))
            return .systemEvent
        case let .unknownHardware(reason):
            finish(.crashed(vcpu: vcpu.id, report: "KVM_EXIT_UNKNOWN: hardware exit reason 0x\(hex(reason))"))
            return .unknown
        case .interrupted:
            vcpu.setImmediateExit(false)
            reportParkedState(vcpu)
            if ripSamplingEnabled, let rip = try? vcpu.registers().rip { ripSamples.withLock { $0[vcpu.id, default: [:]][rip, default: 0] += 1 } }
            if finishesHypercalls, let name = finishPendingHypercall(vcpu) {
                finishedInstructions.withLock { $0[name, default: 0] += 1 }
                if tracing { tracer.printExit(vcpu: vcpu.id, reason: .interrupted, detail: "vCPU stuck on a hypercall (\(name)) in KVM's emulator: finished by the VMM", rip: try? vcpu.registers().rip) }
            }
            return .interrupted
        case .debug:
            return .debug // only with --gdb, and the stub takes it first (Machine+GDB.swift)
        case let .unhandled(reason):
            finish(.crashed(vcpu: vcpu.id, report: "unexpected KVM exit reason \(reason); Swiftlet does not handle it"))
            return .other
        }
    }

    private func handlePortIO(_ io: PortIOExit, vcpu: VCPU, tracing: Bool) {
        for i in 0..<io.count {
            let slice = UnsafeMutableRawBufferPointer(rebasing: io.data[(i * io.size)..<((i + 1) * io.size)])
            if io.isWrite {
                var value: UInt64 = 0
                for (k, byte) in slice.enumerated() { value |= UInt64(byte) << (8 * UInt64(k)) }
                let handled = portBus.write(UInt64(io.port), size: io.size, value: value)
                if !handled { recordUnassignedPort(io.port, write: true, size: io.size, value: value) }
                if tracing { traceIO(vcpu, port: io.port, write: true, size: io.size, value: value, handled: handled) }
            } else {
                let value = portBus.read(UInt64(io.port), size: io.size)
                let result = value ?? UInt64.max // no device: the bus floats high
                for k in 0..<io.size { slice[k] = UInt8(truncatingIfNeeded: result >> (8 * UInt64(k))) }
                if value == nil { recordUnassignedPort(io.port, write: false, size: io.size, value: result & mask(io.size)) }
                if tracing { traceIO(vcpu, port: io.port, write: false, size: io.size, value: result & mask(io.size), handled: value != nil) }
            }
        }
    }

    private func recordUnassignedPort(_ port: UInt16, write: Bool, size: Int, value: UInt64) {
        unassignedPortAccesses.withLock { record in
            record.count += 1
            if record.first.count < UnbackedAccess.recordLimit {
                record.first.append(UnbackedAccess(isWrite: write, address: UInt64(port), size: size, value: value))
            }
        }
    }

    private func traceIO(_ vcpu: VCPU, port: UInt16, write: Bool, size: Int, value: UInt64, handled: Bool) {
        trace(vcpu, on: portBus, isPort: true, address: UInt64(port), write: write, size: size, value: value)
    }

    /// Hands one access to the tracer with the device and register it reached (the device names its own).
    private func trace(_ vcpu: VCPU, on bus: Bus, isPort: Bool, address: UInt64, write: Bool, size: Int, value: UInt64) {
        let entry = bus.entry(containing: address)
        let offset = entry.map { address - $0.base }
        let access = ExitTracer.Access(vcpu: vcpu.id, isPort: isPort, isWrite: write, address: address, size: size, value: value,
                                       device: entry.map { ($0.name, address - $0.base) },
                                       register: entry.flatMap { $0.device.register(at: offset!, size: size, isWrite: write) })
        tracer.trace(access) { try? vcpu.registers().rip }
    }

    private func handleMMIO(_ mmio: MMIOExit, vcpu: VCPU, tracing: Bool) {
        let size = mmio.data.count
        var handled: Bool
        var value: UInt64 = 0
        if mmio.isWrite {
            for (k, byte) in mmio.data.enumerated() { value |= UInt64(byte) << (8 * UInt64(k)) }
            handled = mmioBus.write(mmio.address, size: size, value: value)
        } else {
            let read = mmioBus.read(mmio.address, size: size)
            handled = read != nil
            value = read ?? UInt64.max
            for k in 0..<size { mmio.data[k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
        }
        if tracing { trace(vcpu, on: mmioBus, isPort: false, address: mmio.address, write: mmio.isWrite, size: size, value: value) }
        if !handled {
            unmappedAccesses.withLock { if $0.count < UnbackedAccess.recordLimit { $0.append(UnbackedAccess(isWrite: mmio.isWrite, address: mmio.address, size: size, value: value & mask(size))) } }
        }
        if !handled && unmappedReports.add(1, ordering: .relaxed).newValue <= 8 {
            let rip = (try? vcpu.registers().rip).map { " at RIP 0x\(hex($0))" } ?? ""
            if mmio.isWrite {
                printError("swiftlet: guest wrote \(size) bytes (0x\(hex(value & mask(size)))) to unmapped guest-physical 0x\(hex(mmio.address))\(rip): no RAM or device there, write ignored")
            } else {
                printError("swiftlet: guest read \(size) bytes from unmapped guest-physical 0x\(hex(mmio.address))\(rip): no RAM or device there, returning all ones")
            }
        }
    }

    // MARK: Reports

    func registerDump(_ vcpu: VCPU) -> String {
        guard let r = try? vcpu.registers(), let s = try? vcpu.specialRegisters() else { return "  (registers unavailable)" }
        func h(_ v: UInt64) -> String { hex(v, width: 16) }
        return """
          rip \(h(r.rip))  rflags \(h(r.rflags))  rsp \(h(r.rsp))  rbp \(h(r.rbp))
          rax \(h(r.rax))  rbx \(h(r.rbx))  rcx \(h(r.rcx))  rdx \(h(r.rdx))
          rsi \(h(r.rsi))  rdi \(h(r.rdi))  r8  \(h(r.r8))  r9  \(h(r.r9))
          cr0 \(h(s.cr0))  cr2 \(h(s.cr2))  cr3 \(h(s.cr3))  cr4 \(h(s.cr4))  efer \(h(s.efer))
          cs \(hex(s.cs.selector, width: 4)) (base \(hex(s.cs.base)), \(s.cs.l == 1 ? "64-bit" : s.cs.db == 1 ? "32-bit" : "16-bit"), dpl \(s.cs.dpl))  ss \(hex(s.ss.selector, width: 4))  gdt \(hex(s.gdt.base))/\(hex(s.gdt.limit))  idt \(hex(s.idt.base))/\(hex(s.idt.limit))
        """
    }

    func emulationFailureReport(_ vcpu: VCPU, data: [UInt64]) -> String {
        let rip = (try? vcpu.registers().rip) ?? 0
        var bytes = emulationFailureInstructionBytes(data)
        if bytes == nil, let physical = try? vcpu.translate(rip) ?? nil {
            bytes = try? memory.readBytes(at: GuestAddress(physical), count: 15)
        }
        let text = bytes.map { $0.map { hex($0, width: 2) }.joined(separator: " ") } ?? "(not readable)"
        let mnemonic = bytes.flatMap { InstructionHint.mnemonic($0) }
        var report = "KVM_EXIT_INTERNAL_ERROR (emulation failure): KVM's instruction emulator could not execute the instruction at RIP 0x\(hex(rip)): bytes \(text)"
        if let mnemonic { report += " (\(mnemonic))" }
        if backend == .pvm {
            report += "\n  hint: this host's KVM is kvm_pvm, which runs guest kernel code in an emulator that lacks some instructions (see `swiftlet doctor`)"
        }
        return report + "\n" + registerDump(vcpu)
    }
}

func mask(_ size: Int) -> UInt64 { size >= 8 ? UInt64.max : (1 << (8 * UInt64(size))) - 1 }

func internalErrorName(_ suberror: UInt32) -> String {
    switch suberror {
    case 1: "emulation failure"
    case 2: "simultaneous exception"
    case 3: "delivery event"
    case 4: "unexpected exit reason"
    default: "unknown"
    }
}

final class VCPUThreadContext {
    let machine: Machine
    let vcpu: VCPU
    init(machine: Machine, vcpu: VCPU) { self.machine = machine; self.vcpu = vcpu }
}
