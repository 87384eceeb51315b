// VCPU+State: the vCPU ioctls a snapshot needs beyond the ones the boot path uses: debug registers, XCRs,
// the XSAVE area,
// the MP state setter, and every MSR KVM can save (the index list comes from KVMSystem.msrIndexList()).
// One method per ioctl. Reference: Documentation/virt/kvm/api.rst §4.32-4.33 (DEBUGREGS), §4.42-4.43 (XCRS), §4.40-4.41 (XSAVE),
// §4.39 (SET_MP_STATE), §4.18-4.19 (MSRS). Which of them kvm_pvm answers is listed in docs/10-snapshots.md.
import CKVM
import SystemPackage

public typealias DebugRegisters = kvm_debugregs
public typealias ExtendedControlRegisters = kvm_xcrs
public typealias XSAVEState = kvm_xsave

extension VCPU {
    /// DR0-DR3, DR6, DR7. The corresponding ioctl is `KVM_GET_DEBUGREGS`.
    public func debugRegisters() throws(KVMError) -> DebugRegisters {
        var state = DebugRegisters()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_DEBUGREGS, &state), "KVM_GET_DEBUGREGS")
        return state
    }

    /// The corresponding ioctl is `KVM_SET_DEBUGREGS`.
    public func setDebugRegisters(_ state: DebugRegisters) throws(KVMError) {
        var state = state
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_DEBUGREGS, &state), "KVM_SET_DEBUGREGS")
    }

    /// XCR0 and friends (which state XSAVE manages). The corresponding ioctl is `KVM_GET_XCRS`.
    public func extendedControlRegisters() throws(KVMError) -> ExtendedControlRegisters {
        var state = ExtendedControlRegisters()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_XCRS, &state), "KVM_GET_XCRS")
        return state
    }

    /// The corresponding ioctl is `KVM_SET_XCRS`.
    public func setExtendedControlRegisters(_ state: ExtendedControlRegisters) throws(KVMError) {
        var state = state
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_XCRS, &state), "KVM_SET_XCRS")
    }

    /// The XSAVE area (x87, SSE, AVX and every other state component XCR0 enables; 4 KiB, the legacy
    /// layout KVM uses). The corresponding ioctl is `KVM_GET_XSAVE` (KVM_CAP_XSAVE).
    public func xsaveState() throws(KVMError) -> XSAVEState {
        var state = XSAVEState()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_XSAVE, &state), "KVM_GET_XSAVE")
        return state
    }

    /// The corresponding ioctl is `KVM_SET_XSAVE`.
    public func setXSAVEState(_ state: XSAVEState) throws(KVMError) {
        var state = state
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_XSAVE, &state), "KVM_SET_XSAVE")
    }

    /// The corresponding ioctl is `KVM_SET_MP_STATE`.
    public func setMultiprocessingState(_ state: MultiprocessingState) throws(KVMError) {
        var raw = kvm_mp_state(mp_state: state.rawValue)
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_MP_STATE, &raw), "KVM_SET_MP_STATE")
    }

    /// Reads every MSR of `indices` that this vCPU answers, in order, leaving out the ones KVM refuses
    /// (KVM_GET_MSRS stops at the first MSR it cannot read and returns how many it read; the refused one is
    /// dropped and the read goes on after it). One `KVM_GET_MSRS` per refusal plus one.
    public func readableMSRs(_ indices: [UInt32]) throws(KVMError) -> [(index: UInt32, value: UInt64)] {
        var result: [(index: UInt32, value: UInt64)] = []
        var rest = indices[...]
        while !rest.isEmpty {
            let values = try msrs(Array(rest))
            for (k, value) in values.enumerated() { result.append((rest[rest.startIndex + k], value)) }
            rest = rest.dropFirst(values.count + 1) // skip the refused one
        }
        return result
    }
}
