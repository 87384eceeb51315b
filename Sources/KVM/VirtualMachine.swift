// VirtualMachine: the VM fd returned by KVM_CREATE_VM, second link of KVMSystem → VirtualMachine → VCPU.
//
// One method per VM ioctl: memory slots, vCPU creation, the in-kernel interrupt controllers and PIT, IRQ
// lines, ioeventfd and irqfd. Reference: Documentation/virt/kvm/api.rst §4 (VM ioctls).
import CKVM
import SystemPackage

public final class VirtualMachine: @unchecked Sendable {
    public let fd: Int32
    public let system: KVMSystem

    init(fd: Int32, system: KVMSystem) {
        self.fd = fd
        self.system = system
    }

    deinit { _ = ckvm_close(fd) }

    /// Maps `size` bytes of host memory at `hostAddress` into the guest at `guestPhysicalAddress`.
    /// The corresponding ioctl is `KVM_SET_USER_MEMORY_REGION`.
    public func setUserMemoryRegion(slot: UInt32, guestPhysicalAddress: UInt64, size: UInt64,
                                    hostAddress: UnsafeMutableRawPointer, readOnly: Bool = false) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: readOnly ? UInt32(KVM_MEM_READONLY) : 0,
            guest_phys_addr: guestPhysicalAddress, memory_size: size,
            userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION")
    }

    /// Creates vCPU number `id` and maps its kvm_run area. The corresponding ioctl is `KVM_CREATE_VCPU`.
    public func createVCPU(id: UInt32) throws(KVMError) -> VCPU {
        let size = try system.vcpuMmapSize()
        let vcpuFD = try KVMError.check(ckvm_ioctl_int(fd, CKVM_CREATE_VCPU, UInt(id)), "KVM_CREATE_VCPU")
        do {
            return try VCPU(fd: vcpuFD, id: id, runAreaSize: size, vm: self)
        } catch {
            _ = ckvm_close(vcpuFD)
            throw error
        }
    }

    /// Tells KVM where three pages for the real-mode TSS may live (Intel only; harmless elsewhere).
    /// The corresponding ioctl is `KVM_SET_TSS_ADDR`.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        _ = try KVMError.check(ckvm_ioctl_int(fd, CKVM_SET_TSS_ADDR, UInt(address)), "KVM_SET_TSS_ADDR")
    }

    /// Tells KVM where the one-page identity map for real mode may live.
    /// The corresponding ioctl is `KVM_SET_IDENTITY_MAP_ADDR`.
    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var value = address
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SET_IDENTITY_MAP_ADDR, &value), "KVM_SET_IDENTITY_MAP_ADDR")
    }

    /// Creates the in-kernel PIC pair, IOAPIC and per-vCPU local APICs. The corresponding ioctl is `KVM_CREATE_IRQCHIP`.
    public func createIRQChip() throws(KVMError) {
        _ = try KVMError.check(ckvm_ioctl_none(fd, CKVM_CREATE_IRQCHIP), "KVM_CREATE_IRQCHIP")
    }

    /// Creates the in-kernel i8254 PIT. The corresponding ioctl is `KVM_CREATE_PIT2`.
    public func createPIT() throws(KVMError) {
        var config = kvm_pit_config()
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_CREATE_PIT2, &config), "KVM_CREATE_PIT2")
    }

    /// Raises or lowers an interrupt line of the in-kernel irqchip. The corresponding ioctl is `KVM_IRQ_LINE`.
    public func setIRQLine(_ irq: UInt32, level: Bool) throws(KVMError) {
        var line = kvm_irq_level()
        line.irq = irq
        line.level = level ? 1 : 0
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_IRQ_LINE, &line), "KVM_IRQ_LINE")
    }

    /// Makes guest writes to `address` signal `eventFD` instead of exiting. The corresponding ioctl is `KVM_IOEVENTFD`.
    public func registerIOEventFD(_ eventFD: Int32, address: UInt64, length: UInt32, isPIO: Bool, deassign: Bool = false) throws(KVMError) {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = length
        request.fd = eventFD
        request.flags = (isPIO ? UInt32(1 << kvm_ioeventfd_flag_nr_pio) : 0)
            | (deassign ? UInt32(1 << kvm_ioeventfd_flag_nr_deassign) : 0)
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_IOEVENTFD, &request), "KVM_IOEVENTFD")
    }

    /// Makes a write to `eventFD` raise interrupt line `gsi`. The corresponding ioctl is `KVM_IRQFD`.
    public func registerIRQFD(_ eventFD: Int32, gsi: UInt32, deassign: Bool = false) throws(KVMError) {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: eventFD)
        request.gsi = gsi
        request.flags = deassign ? UInt32(KVM_IRQFD_FLAG_DEASSIGN) : 0
        _ = try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_IRQFD, &request), "KVM_IRQFD")
    }

    /// Injects one message-signalled interrupt (an MSI address/data pair) into the in-kernel irqchip, as a
    /// PCI device or the VMM on a guest's behalf would. Returns false when the guest had it masked or no
    /// LAPIC took it. The corresponding ioctl is `KVM_SIGNAL_MSI`.
    @discardableResult
    public func signalMSI(address: UInt64, data: UInt32) throws(KVMError) -> Bool {
        var message = kvm_msi()
        message.address_lo = UInt32(truncatingIfNeeded: address)
        message.address_hi = UInt32(truncatingIfNeeded: address >> 32)
        message.data = data
        return try KVMError.check(ckvm_ioctl_ptr(fd, CKVM_SIGNAL_MSI, &message), "KVM_SIGNAL_MSI") > 0
    }
}
