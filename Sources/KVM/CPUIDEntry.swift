// CPUIDEntry: one leaf/subleaf of the CPUID table a VMM gives a vCPU (struct kvm_cpuid_entry2).
import CKVM

public struct CPUIDEntry: Sendable, Equatable {
    public var function: UInt32
    public var index: UInt32
    /// KVM_CPUID_FLAG_SIGNIFCANT_INDEX (1) when `index` selects a subleaf.
    public var flags: UInt32
    public var eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32

    public init(function: UInt32, index: UInt32 = 0, flags: UInt32 = 0, eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.function = function; self.index = index; self.flags = flags
        self.eax = eax; self.ebx = ebx; self.ecx = ecx; self.edx = edx
    }

    init(_ raw: kvm_cpuid_entry2) {
        self.init(function: raw.function, index: raw.index, flags: raw.flags, eax: raw.eax, ebx: raw.ebx, ecx: raw.ecx, edx: raw.edx)
    }

    var raw: kvm_cpuid_entry2 {
        var r = kvm_cpuid_entry2()
        r.function = function; r.index = index; r.flags = flags
        r.eax = eax; r.ebx = ebx; r.ecx = ecx; r.edx = edx
        return r
    }
}
