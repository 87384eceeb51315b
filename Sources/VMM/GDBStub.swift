// GDBStub: the VMM side of `swiftlet boot --gdb`: stops and resumes vCPUs for gdb, arms KVM's guest
// debugging, recognises breakpoint and single-step exits, and keeps the breakpoint table. The protocol
// itself is the pure GDBRemote module; the socket and its thread are GDBServer; GDBStub+Target.swift
// answers gdb's reads and writes, GDBStub+Monitor.swift its `monitor` commands.
//
// How each debugging feature reaches the guest (measured on kvm_pvm, see docs/09-gdb.md "On this backend"):
// - Software breakpoints are int3 bytes written into guest memory. On hardware KVM, KVM_GUESTDBG_USE_SW_BP
//   turns the guest's #BP into KVM_EXIT_DEBUG. On kvm_pvm, kernel-mode (CPL0) code runs in KVM's
//   emulator, which cannot execute int3 and stops with an emulation failure at it: the stub recognises its
//   own int3 there (RIP not advanced) and reports the breakpoint; a guest's own int3 is still finished by
//   Machine.finishInstruction. User-mode (CPL3) code runs natively and its #BP goes to the guest.
// - Single step is KVM_GUESTDBG_SINGLESTEP (+ BLOCKIRQ where KVM offers it, so a step does not wander
//   into an interrupt handler). KVM reports it as KVM_EXIT_DEBUG with DR6.BS, except after an instruction
//   that exits to the VMM (port I/O, MMIO) or one the VMM finished: then the step ends with that exit,
//   once a KVM_RUN with immediate_exit has completed the instruction (api.rst, "immediate_exit").
// - Hardware breakpoints and watchpoints are DR0-DR3/DR7 through KVM_GUESTDBG_USE_HW_BP. On kvm_pvm the
//   emulator honours execution breakpoints at CPL0 but no data watchpoints, and nothing at CPL3. There,
//   write watchpoints are kept by the VMM instead (`SteppedWatchpoint`): while one is set, a running vCPU
//   is single-stepped through kernel-mode code and the watched bytes are compared after every instruction
//   (a few µs each, on top of the emulator's ~1 µs). User-mode code runs unstepped (KVM cannot step it
//   here), and an `hlt` runs unstepped too, since a single-stepped hlt does not halt.
// - On kvm_pvm a single step of user-mode code would hand the guest a #DB: the stub does not run it and
//   tells gdb why (an `O` console line before the stop reply).
// A vCPU's debug settings are applied with KVM_SET_GUEST_DEBUG on its own thread, just before KVM_RUN,
// and only when they changed.
import CKVM
import GDBRemote
import Glibc
import GuestMemory
import KVM
import Synchronization

final class GDBStub: @unchecked Sendable {
    let endpoint: GDBEndpoint
    unowned let machine: Machine
    let gate: VCPUGate
    let breakpoints = Mutex(BreakpointTable())
    let history = ExitHistory()
    /// Signalled when a stop was recorded or the run ended: wakes the server thread.
    let eventFD: Int32
    /// The KVM_GUESTDBG_* bits this KVM accepts (KVM_CAP_SET_GUEST_DEBUG2), or 0 when it does not say.
    let acceptedDebugBits: UInt32
    var server: GDBServer!

    /// What each vCPU's thread keeps: its pthread (for kicks), the settings KVM has, the action it runs,
    /// and whether it runs one instruction at a time for a stepped watchpoint.
    struct VCPUState {
        var thread: pthread_t? = nil
        var applied = GuestDebugSettings.off
        var action = ResumeAction.stop
        var watchStepping = false
    }

    /// A write watchpoint the VMM checks itself, by stepping (kvm_pvm): where the watched bytes live in
    /// guest-physical memory (translated when it was set) and what they held after the last check.
    struct SteppedWatchpoint {
        var request: BreakpointRequest
        var pieces: [(physical: UInt64, length: Int)]
        var last: [UInt8]
    }
    let steppedWatchpoints = Mutex<[SteppedWatchpoint]>([])
    /// At most this many stepped watchpoints, of at most `steppedWatchLimit` bytes each.
    static let steppedWatchCount = 8
    static let steppedWatchLimit = 4096
    let vcpuStates: Mutex<[VCPUState]>
    /// The status the machine ended with, once it did.
    let endStatus = Mutex<Int32?>(nil)

    init(endpoint: GDBEndpoint, machine: Machine) throws(VMMError) {
        self.endpoint = endpoint
        self.machine = machine
        let fd = ckvm_eventfd()
        guard fd >= 0 else { throw .invalidOption("--gdb: cannot create an eventfd: \(String(cString: strerror(-fd)))") }
        eventFD = fd
        let count = machine.vcpus.count
        vcpuStates = Mutex([VCPUState](repeating: VCPUState(), count: count))
        let bits = machine.kvm.checkExtension(.setGuestDebug2)
        acceptedDebugBits = bits > 0 ? UInt32(bits) : 0
        // Kicks and the server's wake-up go through this closure; `self` is not complete yet, so it reads
        // the states through a box filled right below.
        let box = StubBox()
        gate = VCPUGate(vcpuCount: count, initial: StopEvent(thread: 1, reason: .attached)) { event in
            box.stub?.stopped(event)
        }
        box.stub = self
        server = try GDBServer(endpoint: endpoint, stub: self)
    }

    deinit { _ = ckvm_close(eventFD) }

    final class StubBox: @unchecked Sendable { weak var stub: GDBStub? }

    /// A stop was recorded: kick every other vCPU out of KVM_RUN (signal + immediate_exit, as Machine.run
    /// stops them) and wake the server.
    private func stopped(_ event: StopEvent) {
        let threads = vcpuStates.withLock { $0.map(\.thread) }
        let me = pthread_self()
        for (index, vcpu) in machine.vcpus.enumerated() {
            guard let thread = threads[index], pthread_equal(thread, me) == 0 else { continue }
            vcpu.setImmediateExit(true)
            _ = ckvm_kick_thread(UInt(thread), kickSignal)
        }
        _ = ckvm_eventfd_signal(eventFD)
    }

    // MARK: The run

    /// Starts the server thread; the vCPUs wait, stopped, until gdb resumes them.
    func start() {
        // gdb has no Unix-socket transport of its own; socat carries it (docs/09-gdb.md).
        let target = if case .unix = endpoint { "| socat - UNIX-CONNECT:\(server.address)" } else { server.address }
        printError("swiftlet: gdb: the guest waits before its first instruction; connect with: gdb -ex 'target remote \(target)'")
        server.start()
    }

    /// The machine's run ended with `status`: release every vCPU, tell gdb, close the server.
    func end(status: Int32) {
        endStatus.withLock { $0 = status }
        gate.end()
        _ = ckvm_eventfd_signal(eventFD)
        server.join()
    }

    /// Releases parked vCPUs so they see the run ending (called as soon as the run loop stops).
    func releaseForEnd() { gate.end() }

    // MARK: vCPU thread hooks (Machine.vcpuLoop)

    func vcpuStarted(_ vcpu: VCPU) {
        let me = pthread_self()
        vcpuStates.withLock { $0[Int(vcpu.id)].thread = me }
    }

    /// Before each KVM_RUN: wait while stopped, then arm what this vCPU's action needs. False: the run ends.
    func beforeRun(_ vcpu: VCPU) -> Bool {
        let index = Int(vcpu.id)
        var action: ResumeAction
        while true {
            guard let next = gate.wait(vcpu: index) else { return false }
            action = next
            // kvm_pvm cannot single-step user-mode code: KVM would give the guest the #DB.
            if action == .step, machine.backend == .pvm, let s = try? vcpu.specialRegisters(), s.cs.dpl == 3 {
                vcpuStates.withLock { $0[index].action = .stop }
                report(.step, vcpu, notice: "swiftlet: vCPU \(vcpu.id) is in user mode (CPL 3), which kvm_pvm runs natively: KVM cannot single-step it here (the guest would get the #DB), so it did not move; use a breakpoint in kernel code and continue")
                continue
            }
            break
        }
        let watchStepping = action == .continue && shouldStepForWatchpoints(vcpu)
        let wanted = settings(for: action, watchStepping: watchStepping)
        let applied = vcpuStates.withLock { states in
            states[index].action = action
            states[index].watchStepping = watchStepping
            return states[index].applied
        }
        if wanted != applied {
            do {
                try vcpu.setGuestDebug(wanted)
                vcpuStates.withLock { $0[index].applied = wanted }
            } catch {
                printError("swiftlet: gdb: vCPU \(vcpu.id): \(error)")
                vcpuStates.withLock { $0[index].applied = wanted } // do not retry every iteration
            }
        }
        return true
    }

    /// The KVM_SET_GUEST_DEBUG settings for a vCPU about to `action`, from the breakpoint table.
    /// A step for gdb blocks interrupts where KVM can; a step for a watchpoint does not (the guest must
    /// keep taking its timer while it "runs").
    func settings(for action: ResumeAction, watchStepping: Bool = false) -> GuestDebugSettings {
        let (software, hardware, registers) = breakpoints.withLock { ($0.software.isEmpty == false, $0.hasHardware, $0.debugRegisters) }
        var control: UInt32 = 0
        if software { control |= GuestDebugSettings.useSoftwareBreakpoints }
        if hardware { control |= GuestDebugSettings.useHardwareBreakpoints }
        if watchStepping { control |= GuestDebugSettings.singleStep }
        if action == .step {
            control |= GuestDebugSettings.singleStep
            if acceptedDebugBits & GuestDebugSettings.blockInterrupts != 0 { control |= GuestDebugSettings.blockInterrupts }
        }
        guard control != 0 else { return .off }
        return GuestDebugSettings(control: control | GuestDebugSettings.enable,
                                  debugRegisters: hardware ? registers : [UInt64](repeating: 0, count: 8))
    }

    private func currentAction(_ vcpu: VCPU) -> ResumeAction { vcpuStates.withLock { $0[Int(vcpu.id)].action } }

    private func isWatchStepping(_ vcpu: VCPU) -> Bool { vcpuStates.withLock { $0[Int(vcpu.id)].watchStepping } }

    /// Stops the machine for `reason` on this vCPU; false when another stop came first.
    @discardableResult
    private func report(_ reason: StopReason, _ vcpu: VCPU, notice: String? = nil) -> Bool {
        gate.reportStop(StopEvent(thread: Int(vcpu.id) + 1, reason: reason, notice: notice))
    }

    // MARK: Stepped watchpoints (kvm_pvm)

    /// Whether to run the next instruction alone, for the stepped watchpoints: only with some set, in
    /// kernel mode (KVM can step that here), and not on an hlt (a single-stepped hlt does not halt).
    private func shouldStepForWatchpoints(_ vcpu: VCPU) -> Bool {
        guard steppedWatchpoints.withLock({ !$0.isEmpty }), let s = try? vcpu.specialRegisters(), s.cs.dpl == 0,
              let rip = try? vcpu.registers().rip else { return false }
        let linear = s.efer & (1 << 10) != 0 && s.cs.l == 1 ? rip : s.cs.base &+ rip
        let next = (try? readVirtual(linear, count: 1, vcpu: vcpu))?.first
        return next != 0xF4
    }

    /// Compares the watched bytes with what they held; reports the first watchpoint whose bytes changed.
    @discardableResult
    private func checkSteppedWatchpoints(_ vcpu: VCPU) -> Bool {
        let memory = machine.memory
        let hit: BreakpointRequest? = steppedWatchpoints.withLock { watches in
            for i in watches.indices {
                var now: [UInt8] = []
                for piece in watches[i].pieces {
                    now += (try? memory.readBytes(at: GuestAddress(piece.physical), count: piece.length)) ?? []
                }
                if now != watches[i].last {
                    watches[i].last = now
                    return watches[i].request
                }
            }
            return nil
        }
        guard let hit else { return false }
        report(.watchpoint(.writeWatchpoint, address: hit.address), vcpu)
        return true
    }

    /// Sets a write watchpoint the VMM checks by stepping; the range is translated now, page by page.
    func addSteppedWatchpoint(_ request: BreakpointRequest, vcpu: VCPU) -> BreakpointReply {
        guard request.type == .writeWatchpoint else { return .unsupported } // reads cannot be seen by comparing
        guard request.length >= 1, request.length <= Self.steppedWatchLimit else { return .failed("length") }
        if steppedWatchpoints.withLock({ $0.contains { $0.request == request } }) { return .ok }
        guard steppedWatchpoints.withLock({ $0.count }) < Self.steppedWatchCount else { return .failed("too many") }
        var pieces: [(physical: UInt64, length: Int)] = []
        var last: [UInt8] = []
        var offset = 0
        while offset < request.length {
            let (at, overflow) = request.address.addingReportingOverflow(UInt64(offset))
            guard !overflow, case let .success(t)? = translate(at, vcpu: vcpu) else { return .failed("not mapped") }
            let n = min(request.length - offset, Int(4096 - (at & 0xFFF)))
            guard let bytes = try? machine.memory.readBytes(at: GuestAddress(t.physical), count: n) else { return .failed("not RAM") }
            pieces.append((t.physical, n))
            last += bytes
            offset += n
        }
        steppedWatchpoints.withLock { $0.append(SteppedWatchpoint(request: request, pieces: pieces, last: last)) }
        return .ok
    }

    func removeSteppedWatchpoint(_ request: BreakpointRequest) -> Bool {
        steppedWatchpoints.withLock { watches in
            guard let i = watches.firstIndex(where: { $0.request == request }) else { return false }
            watches.remove(at: i)
            return true
        }
    }

    /// Takes the exits that belong to the debugger before the machine's own dispatch; returns the reason
    /// to count for the exit tracer, or nil to let Machine.handle dispatch it.
    func intercept(_ exit: VCPUExit, on vcpu: VCPU) -> ExitTracer.Reason? {
        switch exit {
        case let .debug(debug):
            let stepping = currentAction(vcpu) == .step
            if debug.exception == 1 {
                if let request = breakpoints.withLock({ $0.request(matching: debug.matchedDebugRegisters) }) {
                    switch request.type {
                    case .software, .hardware: report(.hardwareBreakpoint, vcpu)
                    default: report(.watchpoint(request.type, address: request.address), vcpu)
                    }
                } else if debug.singleStep && isWatchStepping(vcpu) {
                    checkSteppedWatchpoints(vcpu) // one instruction ran for the watchpoints: stop only on a change
                } else if stepping || debug.singleStep {
                    if !checkSteppedWatchpoints(vcpu) { report(.step, vcpu) }
                } else {
                    reinject(vector: 1, vcpu)
                }
            } else if debug.exception == 3 {
                if breakpoints.withLock({ $0.software[debug.pc] != nil }) {
                    report(.softwareBreakpoint, vcpu)
                } else {
                    reinject(vector: 3, vcpu)
                    if stepping { report(.step, vcpu) }
                }
            }
            return .debug
        case let .internalError(suberror, data) where suberror == internalErrorEmulation:
            // kvm_pvm: the emulator stopped at an int3. If it is ours, that is the breakpoint (RIP still at it).
            guard let rip = try? vcpu.registers().rip, breakpoints.withLock({ $0.software[rip] != nil }) else { return nil }
            let bytes = emulationFailureInstructionBytes(data) ?? ((try? readVirtual(rip, count: 1, vcpu: vcpu)) ?? [])
            guard bytes.first == 0xCC else { return nil }
            report(.softwareBreakpoint, vcpu)
            return .internalError
        case .shutdown:
            // A triple fault ends the VM; stop first so gdb can look at the state that caused it.
            if report(.fault(signal: 11), vcpu) { gate.holdUntilResumed(vcpu: Int(vcpu.id)) }
            return nil
        default:
            return nil
        }
    }

    /// After Machine.handle: record the exit; end a step that ended with an exit the VMM handled.
    func afterExit(_ exit: VCPUExit, reason: ExitTracer.Reason, on vcpu: VCPU) {
        history.record(exit, reason: reason, vcpu: vcpu.id)
        guard !machine.stopRequested.load(ordering: .acquiring) else { return }
        let stepping = currentAction(vcpu) == .step
        let watching = isWatchStepping(vcpu)
        switch exit {
        case .io, .mmio:
            // The instruction is complete only after the next KVM_RUN; do that now, without running further,
            // if the vCPU is about to stop (its step is done, or another vCPU stopped the machine) or its
            // result is to be compared (a stepped watchpoint: `rep insb` writes RAM).
            if stepping || watching || gate.isStopped { completePendingIO(vcpu) }
            if (stepping || watching) && checkSteppedWatchpoints(vcpu) { break }
            if stepping { report(.step, vcpu) }
        case .internalError:
            if stepping { report(.step, vcpu) } // finished by the VMM (int3, clac, stac, fwait)
        default:
            break
        }
    }

    /// KVM_RUN with immediate_exit set: KVM completes the pending I/O instruction and returns at once
    /// (Documentation/virt/kvm/api.rst, "immediate_exit"). A string instruction may exit again; those
    /// exits are dispatched as usual.
    private func completePendingIO(_ vcpu: VCPU) {
        for _ in 0..<64 {
            vcpu.setImmediateExit(true)
            let exit: VCPUExit
            do { exit = try vcpu.run() } catch { break }
            switch exit {
            case .io, .mmio:
                let reason = machine.handle(exit, on: vcpu, tracing: machine.tracer.printing)
                history.record(exit, reason: reason, vcpu: vcpu.id)
                continue
            default:
                break
            }
            break
        }
        vcpu.setImmediateExit(false)
    }

    /// Gives the guest an exception the debugger intercepted but does not own (its own int3 or #DB), as
    /// QEMU does: KVM_SET_VCPU_EVENTS with the vector injected.
    private func reinject(vector: UInt8, _ vcpu: VCPU) {
        guard var events = try? vcpu.events() else { return }
        events.exception.injected = 1
        events.exception.nr = vector
        events.exception.has_error_code = 0
        events.exception.pending = 0
        try? vcpu.setEvents(events)
    }

    // MARK: Server side

    /// Stops every vCPU (for a new connection): records `reason` if the machine runs, waits until all are parked.
    func stopAll(reason: StopReason, thread: Int) -> StopEvent {
        gate.reportStop(StopEvent(thread: thread, reason: reason))
        _ = gate.waitUntilParked(milliseconds: 5000)
        return gate.takeEvent() ?? StopEvent(thread: thread, reason: reason)
    }

    /// Resumes with gdb's plan (thread ids → actions).
    func resume(_ plan: [Int: ResumeAction]) {
        var byIndex: [Int: ResumeAction] = [:]
        for (thread, action) in plan where thread >= 1 && thread <= machine.vcpus.count { byIndex[thread - 1] = action }
        gate.resume(byIndex)
    }

    /// gdb detached or went away: take every breakpoint out and let the guest run on.
    func detach() {
        removeAllBreakpoints()
        resume(Dictionary(uniqueKeysWithValues: machine.vcpus.map { (Int($0.id) + 1, ResumeAction.continue) }))
    }

    func removeAllBreakpoints() {
        steppedWatchpoints.withLock { $0.removeAll() }
        let software = breakpoints.withLock { table in
            table.removeAllHardware()
            return table.removeAllSoftware()
        }
        for breakpoint in software { restore(breakpoint) }
    }

    /// Puts back the byte an int3 replaced, if the int3 is still there.
    func restore(_ breakpoint: SoftwareBreakpoint) {
        let address = GuestAddress(breakpoint.physical)
        if (try? machine.memory.read(UInt8.self, at: address)) == 0xCC { try? machine.memory.write(breakpoint.original, at: address) }
    }
}
