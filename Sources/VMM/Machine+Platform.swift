// Machine+Platform: the PC every boot path gets (multiboot direct or through the firmware, bzImage, PVH;
// serial or virtio console), and how the VMM tells a machine that has stopped for good.
//
// The PC (`--machine pc`, the default): KVM's in-kernel irqchip (KVM_CREATE_IRQCHIP: two 8259 PICs at ports
// 0x20/0xA0, the IOAPIC at 0xFEC00000, a LAPIC per vCPU at 0xFEE00000) and 8254 PIT (KVM_CREATE_PIT2, ports
// 0x40-0x43, IRQ 0), the 8250 on IRQ 4 with host input, the MC146818 RTC/CMOS at 0x70/0x71 (RTC.swift), the
// i8042's reset line, and the MP table (MP spec 1.4) and ACPI tables (RSDP, XSDT, FADT, MADT, DSDT) that
// describe the CPUs, the IOAPIC and the ISA interrupt wiring (IRQ n on IOAPIC pin n, KVM's default routing).
// Application processors start in KVM_MP_STATE_UNINITIALIZED and wait for INIT/SIPI from the guest's LAPIC.
// `--machine bare` (multiboot only, one vCPU) leaves all of that out: the machine multiboot guests had before.
//
// With the LAPIC in the kernel, HLT never leaves KVM_RUN (KVM sleeps the vCPU until an interrupt), so the
// VMM cannot see a guest that executed `cli; hlt` as an exit. It looks instead: every `haltCheckInterval`
// the run loop kicks every vCPU out of KVM_RUN, and each reports its KVM_GET_MP_STATE: halted with
// RFLAGS.IF clear, or an AP never started, is parked. When every vCPU was parked in the last two rounds
// (one round with a single vCPU: no other CPU could wake it), nothing can wake the machine but an NMI, and
// the run ends as the HLT exit of a bare machine would end it.
import CKVM
import Devices
import Glibc
import GuestMemory
import KVM
import Synchronization
import X86Boot

extension Machine {
    /// Whether KVM's irqchip exists: always on the PC; on a bare machine only for a virtio console's interrupts.
    var hasInterruptControllers: Bool { configuration.machine == .pc || configuration.console == .virtio }

    /// KVM_CREATE_IRQCHIP (8259 PICs, IOAPIC, a LAPIC per vCPU) and KVM_CREATE_PIT2, before any vCPU exists.
    func createInterruptControllers() throws(VMMError) {
        guard hasInterruptControllers else { return }
        let pit = configuration.machine == .pc
        do {
            try vm.createIRQChip()
            if pit { try vm.createPIT() }
        } catch { throw .kvm(error) }
        if pit {
            note("in-kernel irqchip: two 8259 PICs, IOAPIC at 0xfec00000, a LAPIC per vCPU at 0xfee00000; i8254 PIT")
        } else {
            note("in-kernel irqchip (PICs, IOAPIC, LAPIC) so the virtio console's interrupts have somewhere to go (--machine bare: no PIT)")
        }
    }

    /// The MP table and the ACPI tables for the PC; returns the RSDP's address (nil on a bare machine).
    func writePlatformTables() throws(VMMError) -> GuestAddress? {
        guard configuration.machine == .pc else { return nil }
        let pciBus = mpTablePCIBus()
        do {
            let mp = try MPTable.write(cpus: configuration.cpus, into: memory, routing: .identity, pciBus: pciBus)
            note("MP table: \(mp)")
            // The same machine for kernels that read ACPI instead (Debian's have no MP table parser).
            let acpi = try ACPITables.write(cpus: configuration.cpus, into: memory, routing: .identity, pciBus: pciBus)
            note("\(acpi.placement)")
            return acpi.layout.rsdp
        } catch let error as MPTableError {
            throw .invalidOption("\(error)")
        } catch let error as ACPITablesError {
            throw .invalidOption("\(error)")
        } catch {
            throw .invalidOption("\(error)")
        }
    }

    /// Where the MP and ACPI tables live, which a multiboot kernel's segments and modules must leave alone.
    var platformTableRange: AddressRange? {
        guard configuration.machine == .pc else { return nil }
        return AddressRange(base: X86Layout.acpi, length: X86Layout.mpTableEnd.rawValue - X86Layout.acpi.rawValue)
    }

    /// The RTC/CMOS with this machine's memory sizes and the host's clock.
    func makeRTC() -> RTC {
        let below = min(configuration.memorySize, X86Layout.mmioHoleStart.rawValue)
        return RTC(memoryBelow4GiB: below, memoryAbove4GiB: configuration.memorySize - below, now: { Int64(time(nil)) })
    }

    // MARK: Teardown

    /// For a process that exits right after the run: KVM destroys a VM with an in-kernel irqchip when its
    /// last descriptor closes, and on a loaded kvm_pvm host that takes 10-30 ms of RCU grace periods (measured:
    /// close of the last vCPU fd 12-44 ms, against 0.2-1.7 ms without the irqchip). A lingering child that
    /// shares the address space keeps copies of the KVM descriptors and drops them once this process is gone
    /// (ckvm_defer_teardown), so whoever waits for `swiftlet boot` does not wait for the VM's destruction.
    func deferTeardown() {
        guard hasInterruptControllers else { return }
        var fds = [kvm.fd, vm.fd] + vcpus.map(\.fd)
        guard fds.count <= 64 else { return }
        _ = ckvm_defer_teardown(&fds, Int32(fds.count))
    }

    // MARK: A machine parked for good

    /// How often the run loop looks for parked vCPUs.
    static let haltCheckMilliseconds: UInt64 = 50

    /// On a KVM_EXIT_INTR (a kick): records whether this vCPU is parked (halted with interrupts off, or an
    /// application processor never started) in the current round.
    func reportParkedState(_ vcpu: VCPU) {
        guard hasInterruptControllers, let state = try? vcpu.multiprocessingState() else { return }
        var parked = state.isWaitingForStartup
        if state.isHalted, let flags = try? vcpu.registers().rflags { parked = flags & 0x200 == 0 }
        let round = haltRound.load(ordering: .acquiring)
        parkReports.withLock { reports in
            // A streak continues only from the round just before (a vCPU that missed a round starts again).
            let previous = reports[vcpu.id].flatMap { $0.round + 1 >= round ? $0.parkedSince : nil }
            let since = parked ? (previous ?? round) : nil
            reports[vcpu.id] = (round, since)
        }
    }

    /// Called by the run loop before each halt-check kick: true when every vCPU reported itself parked in the
    /// rounds that count (see the file comment). Starts the next round.
    func everyVCPUParked() -> Bool {
        let round = haltRound.load(ordering: .acquiring)
        let needed = vcpus.count == 1 ? 1 : 2
        let parked = parkReports.withLock { reports in
            vcpus.allSatisfy { vcpu in
                guard let r = reports[vcpu.id], r.round == round, let since = r.parkedSince else { return false }
                return round - since + 1 >= needed
            }
        }
        haltRound.store(round + 1, ordering: .releasing)
        return parked
    }
}
