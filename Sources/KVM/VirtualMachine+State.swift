// VirtualMachine+State: the VM ioctls a snapshot needs: the in-kernel PIC pair and IOAPIC, the PIT, and the
// KVM clock (the kvmclock base every vCPU's pvclock reads). One method per ioctl. Reference:
// Documentation/virt/kvm/api.rst §4.26-4.27 (IRQCHIP), §4.71-4.72 (PIT2), §4.60-4.61 (CLOCK).
import CKVM
import SystemPackage

public typealias IRQChipState = kvm_irqchip
public typealias PITState = kvm_pit_state2
public typealias ClockState = kvm_clock_data

/// The three chips KVM_GET_IRQCHIP names (KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC).
public enum IRQChipID: UInt32, CaseIterable, Sendable {
    case picMaster = 0, picSlave = 1, ioapic = 2

    public var name: String {
        switch self {
        case .picMaster: "PIC master (8259A, IRQ 0-7)"
        case .picSlave: "PIC slave (8259A, IRQ 8-15)"
        case .ioapic: "IOAPIC (24 pins)"
        }
    }
}

extension VirtualMachine {
    /// One in-kernel interrupt controller's state. The corresponding ioctl is `KVM_GET_IRQCHIP`.
    public func irqChip(_ id: IRQChipID) throws(KVMError) -> IRQChipState {
        var state = IRQChipState()
        state.chip_id = id.rawValue
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_IRQCHIP, &state), "KVM_GET_IRQCHIP")
        return state
    }

    /// The corresponding ioctl is `KVM_SET_IRQCHIP` (the chip is named by `state.chip_id`).
    public func setIRQChip(_ state: IRQChipState) throws(KVMError) {
        var state = state
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_IRQCHIP, &state), "KVM_SET_IRQCHIP")
    }

    /// The in-kernel i8254's three channels. The corresponding ioctl is `KVM_GET_PIT2`.
    public func pitState() throws(KVMError) -> PITState {
        var state = PITState()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_PIT2, &state), "KVM_GET_PIT2")
        return state
    }

    /// The corresponding ioctl is `KVM_SET_PIT2`.
    public func setPITState(_ state: PITState) throws(KVMError) {
        var state = state
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_PIT2, &state), "KVM_SET_PIT2")
    }

    /// The KVM clock (ns the guest's kvmclock reads). The corresponding ioctl is `KVM_GET_CLOCK`.
    public func clock() throws(KVMError) -> ClockState {
        var state = ClockState()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_GET_CLOCK, &state), "KVM_GET_CLOCK")
        return state
    }

    /// Sets the KVM clock; only `clock` (and `flags` zero) is used. The corresponding ioctl is `KVM_SET_CLOCK`.
    public func setClock(_ state: ClockState) throws(KVMError) {
        var request = ClockState()
        request.clock = state.clock
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_CLOCK, &request), "KVM_SET_CLOCK")
    }
}

extension KVMSystem {
    /// The MSRs KVM can save and restore for a vCPU. The corresponding ioctl is `KVM_GET_MSR_INDEX_LIST`
    /// (E2BIG with the needed count when the buffer is too small: retried with that size).
    public func msrIndexList() throws(KVMError) -> [UInt32] {
        var capacity: UInt32 = 256
        while true {
            guard let list = ckvm_msr_list_alloc(capacity) else { throw KVMError.ioctl("KVM_GET_MSR_INDEX_LIST", .noMemory) }
            defer { ckvm_msr_list_free(list) }
            let result = ckvm_ioctl_ptr(fd, CKVM_GET_MSR_INDEX_LIST, list)
            if result == -Errno.argListTooLong.rawValue && list.pointee.nmsrs > capacity && capacity < 65536 {
                capacity = list.pointee.nmsrs
                continue
            }
            _ = try KVMError.check(result, "KVM_GET_MSR_INDEX_LIST")
            return (0..<list.pointee.nmsrs).map { ckvm_msr_list_index(list, $0) }
        }
    }
}
