// VCPU: a virtual CPU fd and its mmap'd kvm_run area; the last link of KVMSystem → VirtualMachine → VCPU.
//
// One method per vCPU ioctl (KVM_RUN, registers, CPUID, MSRs, events, LAPIC, MP state). The kvm_run page
// is shared with the kernel: it is read only on the thread that calls `run()`, which is the vCPU's own
// thread. Reference: Documentation/virt/kvm/api.rst §4 (vCPU ioctls) and §5 (kvm_run).
import CKVM
import SystemPackage

public typealias Registers = kvm_regs
public typealias SpecialRegisters = kvm_sregs
public typealias Segment = kvm_segment
public typealias VCPUEvents = kvm_vcpu_events
public typealias LocalAPICState = kvm_lapic_state
public typealias FPUState = kvm_fpu

public final class VCPU: @unchecked Sendable {
    public let fd: Int32
    public let id: UInt32
    public unowned let vm: VirtualMachine
    // SAFETY: `run` points at a MAP_SHARED mapping of `runAreaSize` bytes owned by this object; it stays
    // valid until deinit unmaps it, and only the thread inside `run()` reads or writes the exit payload.
    private let runArea: UnsafeMutablePointer<kvm_run>
    private let runAreaSize: Int

    init(fd: Int32, id: UInt32, runAreaSize: Int, vm: VirtualMachine) throws(KVMError) {
        var error: Int32 = 0
        guard let area = ckvm_mmap(runAreaSize, fd, &error) else { throw KVMError.mapRunArea(Errno(rawValue: error)) }
        self.fd = fd
        self.id = id
        self.vm = vm
        self.runAreaSize = runAreaSize
        self.runArea = area.bindMemory(to: kvm_run.self, capacity: 1)
    }

    deinit {
        _ = ckvm_munmap(UnsafeMutableRawPointer(runArea), runAreaSize)
        _ = ckvm_close(fd)
    }

    /// Runs the guest until the next exit. The corresponding ioctl is `KVM_RUN`.
    /// EINTR and EAGAIN are not failures: they come back as `.interrupted`.
    public func run() throws(KVMError) -> VCPUExit {
        let result = ckvm_ioctl_none(fd, CKVM_RUN)
        if result < 0 {
            if result == -Errno.interrupted.rawValue || result == -Errno.resourceTemporarilyUnavailable.rawValue { return .interrupted }
            throw KVMError.ioctl("KVM_RUN", Errno(rawValue: -result))
        }
        return decodeExit()
    }

    /// Sets `immediate_exit`: the next (or current, after a signal) KVM_RUN returns EINTR at once.
    /// Safe to call from another thread only together with a signal kick (see VMM's VCPUThread).
    public func setImmediateExit(_ value: Bool) {
        ckvm_run_immediate_exit(runArea).pointee = value ? 1 : 0
    }

    private func decodeExit() -> VCPUExit {
        switch Int32(runArea.pointee.exit_reason) {
        case KVM_EXIT_IO:
            let io = ckvm_run_io(runArea)
            // SAFETY: data_offset and size*count lie within the kvm_run mapping, as KVM defines them.
            let base = UnsafeMutableRawPointer(runArea).advanced(by: Int(io.data_offset))
            let length = Int(io.size) * Int(io.count)
            return .io(PortIOExit(port: io.port, isWrite: io.direction == KVM_EXIT_IO_OUT, size: Int(io.size),
                                  count: Int(io.count), data: UnsafeMutableRawBufferPointer(start: base, count: length)))
        case KVM_EXIT_MMIO:
            let mmio = ckvm_run_mmio(runArea)
            // SAFETY: the 8-byte data array lives inside the kvm_run mapping; len is at most 8.
            return .mmio(MMIOExit(address: mmio.phys_addr, isWrite: mmio.is_write != 0,
                                  data: UnsafeMutableRawBufferPointer(start: mmio.data, count: Int(min(mmio.len, 8)))))
        case KVM_EXIT_HLT: return .halt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(reason: ckvm_run_fail_entry_reason(runArea), cpu: ckvm_run_fail_entry_cpu(runArea))
        case KVM_EXIT_INTERNAL_ERROR:
            let count = min(ckvm_run_internal_ndata(runArea), 16)
            return .internalError(suberror: ckvm_run_internal_suberror(runArea),
                                  data: (0..<count).map { ckvm_run_internal_data(runArea, $0) })
        case KVM_EXIT_SYSTEM_EVENT: return .systemEvent(type: ckvm_run_system_event_type(runArea))
        case KVM_EXIT_UNKNOWN: return .unknownHardware(reason: ckvm_run_hardware_exit_reason(runArea))
        case KVM_EXIT_INTR: return .interrupted
        case KVM_EXIT_DEBUG:
            let debug = ckvm_run_debug(runArea)
            return .debug(GuestDebugExit(exception: debug.exception, pc: debug.pc, dr6: debug.dr6, dr7: debug.dr7))
        default: return .unhandled(reason: runArea.pointee.exit_reason)
        }
    }

    /// General-purpose registers. The corresponding ioctl is `KVM_GET_REGS`.
    public func registers() throws(KVMError) -> Registers {
        var regs = Registers()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_REGS, &regs), "KVM_GET_REGS")
        return regs
    }

    /// The corresponding ioctl is `KVM_SET_REGS`.
    public func setRegisters(_ regs: Registers) throws(KVMError) {
        var regs = regs
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_REGS, &regs), "KVM_SET_REGS")
    }

    /// Segment, control and descriptor-table registers. The corresponding ioctl is `KVM_GET_SREGS`.
    public func specialRegisters() throws(KVMError) -> SpecialRegisters {
        var sregs = SpecialRegisters()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_SREGS, &sregs), "KVM_GET_SREGS")
        return sregs
    }

    /// The corresponding ioctl is `KVM_SET_SREGS`.
    public func setSpecialRegisters(_ sregs: SpecialRegisters) throws(KVMError) {
        var sregs = sregs
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_SREGS, &sregs), "KVM_SET_SREGS")
    }

    /// The CPUID table the guest sees. The corresponding ioctl is `KVM_SET_CPUID2`.
    public func setCPUID(_ entries: [CPUIDEntry]) throws(KVMError) {
        guard let table = ckvm_cpuid_alloc(UInt32(entries.count)) else { throw KVMError.ioctl("KVM_SET_CPUID2", .noMemory) }
        defer { ckvm_cpuid_free(table) }
        for (i, entry) in entries.enumerated() { ckvm_cpuid_entry(table, UInt32(i)).pointee = entry.raw }
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_CPUID2, table), "KVM_SET_CPUID2")
    }

    /// The CPUID table KVM holds for this vCPU, as the last `setCPUID` left it. The corresponding ioctl is
    /// `KVM_GET_CPUID2` (E2BIG while the buffer is too small: it is doubled and the call repeated).
    public func cpuid() throws(KVMError) -> [CPUIDEntry] {
        var capacity: UInt32 = 128
        while true {
            guard let table = ckvm_cpuid_alloc(capacity) else { throw KVMError.ioctl("KVM_GET_CPUID2", .noMemory) }
            defer { ckvm_cpuid_free(table) }
            let result = ckvm_ioctl_ptr(fd, CKVM_GET_CPUID2, table)
            if result == -Errno.argListTooLong.rawValue && capacity < 4096 { capacity *= 2; continue }
            _ = try KVMError.check(result, "KVM_GET_CPUID2")
            return (0..<table.pointee.nent).map { CPUIDEntry(ckvm_cpuid_entry(table, $0).pointee) }
        }
    }

    /// Writes model-specific registers. The corresponding ioctl is `KVM_SET_MSRS`.
    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        guard let table = ckvm_msrs_alloc(UInt32(msrs.count)) else { throw KVMError.ioctl("KVM_SET_MSRS", .noMemory) }
        defer { ckvm_msrs_free(table) }
        for (i, msr) in msrs.enumerated() {
            guard let entry = ckvm_msrs_entry(table, UInt32(i)) else { continue }
            entry.pointee.index = msr.index
            entry.pointee.data = msr.value
        }
        let written = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_MSRS, table), "KVM_SET_MSRS")
        if Int(written) != msrs.count {
            throw KVMError.ioctl("KVM_SET_MSRS (MSR 0x\(String(msrs[Int(written)].index, radix: 16)) refused)", .invalidArgument)
        }
    }

    /// Pending exceptions, interrupts and NMIs. The corresponding ioctl is `KVM_GET_VCPU_EVENTS`.
    public func events() throws(KVMError) -> VCPUEvents {
        var events = VCPUEvents()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_VCPU_EVENTS, &events), "KVM_GET_VCPU_EVENTS")
        return events
    }

    /// The corresponding ioctl is `KVM_SET_VCPU_EVENTS`.
    public func setEvents(_ events: VCPUEvents) throws(KVMError) {
        var events = events
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_VCPU_EVENTS, &events), "KVM_SET_VCPU_EVENTS")
    }

    /// The x87/SSE state (control and status words, registers, MXCSR). The corresponding ioctl is `KVM_GET_FPU`.
    public func fpu() throws(KVMError) -> FPUState {
        var state = FPUState()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_FPU, &state), "KVM_GET_FPU")
        return state
    }

    /// The corresponding ioctl is `KVM_SET_FPU`.
    public func setFPU(_ state: FPUState) throws(KVMError) {
        var state = state
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_FPU, &state), "KVM_SET_FPU")
    }

    /// Turns the debugger's control of this vCPU on or off: single-stepping, intercepting int3, and the
    /// debug registers KVM should arm for the debugger (not the guest's own DR0-DR7).
    /// The corresponding ioctl is `KVM_SET_GUEST_DEBUG`.
    public func setGuestDebug(_ settings: GuestDebugSettings) throws(KVMError) {
        var request = kvm_guest_debug()
        request.control = settings.control
        withUnsafeMutableBytes(of: &request.arch.debugreg) { raw in
            for (index, value) in settings.debugRegisters.prefix(8).enumerated() {
                raw.storeBytes(of: value, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_GUEST_DEBUG, &request), "KVM_SET_GUEST_DEBUG")
    }

    /// The local APIC's register page. The corresponding ioctl is `KVM_GET_LAPIC`.
    public func localAPIC() throws(KVMError) -> LocalAPICState {
        var state = LocalAPICState()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_LAPIC, &state), "KVM_GET_LAPIC")
        return state
    }

    /// The corresponding ioctl is `KVM_SET_LAPIC`.
    public func setLocalAPIC(_ state: LocalAPICState) throws(KVMError) {
        var state = state
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_LAPIC, &state), "KVM_SET_LAPIC")
    }
}

extension VCPU {
    /// Translates a guest-virtual address with the vCPU's current page tables; nil when not mapped.
    /// The corresponding ioctl is `KVM_TRANSLATE`.
    public func translate(_ linearAddress: UInt64) throws(KVMError) -> UInt64? {
        var request = kvm_translation()
        request.linear_address = linearAddress
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_TRANSLATE, &request), "KVM_TRANSLATE")
        return request.valid != 0 ? request.physical_address : nil
    }

    /// Whether the vCPU runs, halts or waits for INIT/SIPI (KVM_MP_STATE_*, api.rst §4.38).
    /// The corresponding ioctl is `KVM_GET_MP_STATE`.
    public func multiprocessingState() throws(KVMError) -> MultiprocessingState {
        var state = kvm_mp_state()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_MP_STATE, &state), "KVM_GET_MP_STATE")
        return MultiprocessingState(rawValue: state.mp_state)
    }

    /// Reads model-specific registers. The corresponding ioctl is `KVM_GET_MSRS`.
    public func msrs(_ indices: [UInt32]) throws(KVMError) -> [UInt64] {
        guard let table = ckvm_msrs_alloc(UInt32(indices.count)) else { throw KVMError.ioctl("KVM_GET_MSRS", .noMemory) }
        defer { ckvm_msrs_free(table) }
        for (i, index) in indices.enumerated() { ckvm_msrs_entry(table, UInt32(i))?.pointee.index = index }
        let read = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_MSRS, table), "KVM_GET_MSRS")
        return (0..<UInt32(read)).map { ckvm_msrs_entry(table, $0)?.pointee.data ?? 0 }
    }
}

/// A vCPU's multiprocessing state (struct kvm_mp_state), as x86 uses it.
public struct MultiprocessingState: Equatable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// What the state means for a learner, e.g. "waiting for INIT/SIPI (KVM_MP_STATE_UNINITIALIZED)".
    public var description: String {
        switch Int32(rawValue) {
        case KVM_MP_STATE_RUNNABLE: "runnable (KVM_MP_STATE_RUNNABLE)"
        case KVM_MP_STATE_UNINITIALIZED: "an application processor waiting for INIT (KVM_MP_STATE_UNINITIALIZED)"
        case KVM_MP_STATE_INIT_RECEIVED: "got INIT, waiting for a SIPI (KVM_MP_STATE_INIT_RECEIVED)"
        case KVM_MP_STATE_HALTED: "halted until an interrupt (KVM_MP_STATE_HALTED)"
        case KVM_MP_STATE_SIPI_RECEIVED: "got its SIPI (KVM_MP_STATE_SIPI_RECEIVED)"
        default: "state \(rawValue)"
        }
    }

    /// HLT inside the in-kernel LAPIC: the vCPU sleeps until an interrupt, NMI, INIT or SIPI wakes it.
    public var isHalted: Bool { Int32(rawValue) == KVM_MP_STATE_HALTED }

    public var isWaitingForStartup: Bool {
        Int32(rawValue) == KVM_MP_STATE_UNINITIALIZED || Int32(rawValue) == KVM_MP_STATE_INIT_RECEIVED
    }
}

/// The instruction bytes KVM attaches to an emulation failure (struct emulation_failure in kvm_run),
/// decoded from the internal-error data words; nil when KVM did not provide them.
public func emulationFailureInstructionBytes(_ data: [UInt64]) -> [UInt8]? {
    guard data.count >= 2, data[0] & 1 != 0 else { return nil }
    var bytes: [UInt8] = []
    for word in data.dropFirst() { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(i)))) } }
    guard let size = bytes.first, size > 0 else { return nil }
    return Array(bytes.dropFirst().prefix(Int(min(size, 15))))
}
