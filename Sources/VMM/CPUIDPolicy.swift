// CPUIDPolicy: the CPUID table each vCPU gets, derived from KVM_GET_SUPPORTED_CPUID.
//
// Without KVM_SET_CPUID2 a vCPU has an empty table, and KVM then refuses features such as long mode
// (EFER.LME needs CPUID.80000001h:EDX.LM). The policy starts from what KVM supports, keeps the KVM
// paravirtual leaves (0x40000000: "KVMKVMKVM"), sets the hypervisor-present bit and gives each vCPU its
// own APIC ID (leaf 1 EBX[31:24], leaf 0xB EDX) and the processor count (leaf 1 EBX[23:16]).
// Note: on the kvm_pvm backend the guest's CPUID instruction returns the host's values whatever is set
// here (see docs/backends.md); on hardware KVM this table is authoritative.
import KVM

public enum CPUIDPolicy {
    public static func entries(supported: [CPUIDEntry], vcpuCount: Int, tscDeadline: Bool = false) -> [CPUIDEntry] {
        supported.map { entry in
            var e = entry
            if e.function == 1 {
                e.ecx |= 1 << 31 // hypervisor present
                if tscDeadline { e.ecx |= 1 << 24 } // TSC-deadline LAPIC timer (emulated by the in-kernel LAPIC)
                e.ebx = (e.ebx & 0x0000_FFFF) | UInt32(min(vcpuCount, 255)) << 16
                e.edx |= 1 << 28 // HTT: the logical processor count field is valid
            }
            return e
        }
    }

    /// The table for vCPU `id`: its APIC ID in leaves 1 and 0xB.
    public static func forVCPU(_ id: UInt32, _ entries: [CPUIDEntry]) -> [CPUIDEntry] {
        entries.map { entry in
            var e = entry
            if e.function == 1 { e.ebx = (e.ebx & 0x00FF_FFFF) | (id & 0xFF) << 24 }
            if e.function == 0xB { e.edx = id }
            return e
        }
    }
}
