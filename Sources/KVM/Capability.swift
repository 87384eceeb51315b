// Capability: the KVM_CAP_* extensions Swiftlet asks about, as an enum (KVM_CHECK_EXTENSION).
import CKVM

public enum Capability: CaseIterable, Sendable {
    case userMemory, irqchip, pit2, ioeventfd, irqfd, setTSSAddress, setIdentityMapAddress
    case immediateExit, maxVCPUs, nrVCPUs, extendedCPUID, vcpuEvents, tscDeadlineTimer, readonlyMemory
    /// KVM_SET_GUEST_DEBUG exists; KVM_CAP_SET_GUEST_DEBUG2 answers with the KVM_GUESTDBG_* bits it accepts.
    case setGuestDebug, setGuestDebug2

    /// The number passed to KVM_CHECK_EXTENSION.
    public var rawValue: UInt {
        switch self {
        case .userMemory: UInt(KVM_CAP_USER_MEMORY)
        case .irqchip: UInt(KVM_CAP_IRQCHIP)
        case .pit2: UInt(KVM_CAP_PIT2)
        case .ioeventfd: UInt(KVM_CAP_IOEVENTFD)
        case .irqfd: UInt(KVM_CAP_IRQFD)
        case .setTSSAddress: UInt(KVM_CAP_SET_TSS_ADDR)
        case .setIdentityMapAddress: UInt(KVM_CAP_SET_IDENTITY_MAP_ADDR)
        case .immediateExit: UInt(KVM_CAP_IMMEDIATE_EXIT)
        case .maxVCPUs: UInt(KVM_CAP_MAX_VCPUS)
        case .nrVCPUs: UInt(KVM_CAP_NR_VCPUS)
        case .extendedCPUID: UInt(KVM_CAP_EXT_CPUID)
        case .vcpuEvents: UInt(KVM_CAP_VCPU_EVENTS)
        case .tscDeadlineTimer: UInt(KVM_CAP_TSC_DEADLINE_TIMER)
        case .readonlyMemory: UInt(KVM_CAP_READONLY_MEM)
        case .setGuestDebug: UInt(KVM_CAP_SET_GUEST_DEBUG)
        case .setGuestDebug2: UInt(KVM_CAP_SET_GUEST_DEBUG2)
        }
    }

    /// The kernel's name for it, as printed by `swiftlet doctor`.
    public var name: String {
        switch self {
        case .userMemory: "KVM_CAP_USER_MEMORY"
        case .irqchip: "KVM_CAP_IRQCHIP"
        case .pit2: "KVM_CAP_PIT2"
        case .ioeventfd: "KVM_CAP_IOEVENTFD"
        case .irqfd: "KVM_CAP_IRQFD"
        case .setTSSAddress: "KVM_CAP_SET_TSS_ADDR"
        case .setIdentityMapAddress: "KVM_CAP_SET_IDENTITY_MAP_ADDR"
        case .immediateExit: "KVM_CAP_IMMEDIATE_EXIT"
        case .maxVCPUs: "KVM_CAP_MAX_VCPUS"
        case .nrVCPUs: "KVM_CAP_NR_VCPUS"
        case .extendedCPUID: "KVM_CAP_EXT_CPUID"
        case .vcpuEvents: "KVM_CAP_VCPU_EVENTS"
        case .tscDeadlineTimer: "KVM_CAP_TSC_DEADLINE_TIMER"
        case .readonlyMemory: "KVM_CAP_READONLY_MEM"
        case .setGuestDebug: "KVM_CAP_SET_GUEST_DEBUG"
        case .setGuestDebug2: "KVM_CAP_SET_GUEST_DEBUG2"
        }
    }
}
