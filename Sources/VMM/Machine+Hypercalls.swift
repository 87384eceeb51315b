// Machine+Hypercalls: KVM paravirtual hypercalls that the kvm_pvm backend leaves unfinished.
//
// A Linux guest with CONFIG_KVM_GUEST sees KVM's paravirtual features in CPUID leaf 0x40000001 and uses
// them: PV send-IPI (KVM_HC_SEND_IPI) for inter-processor interrupts, PV spinlock kicks (KVM_HC_KICK_CPU),
// PV yield (KVM_HC_SCHED_YIELD). On hardware KVM the CPU traps VMCALL/VMMCALL and KVM answers in the
// kernel. On kvm_pvm guest kernel code runs in KVM's instruction emulator, and its hypercall path only
// rewrites the instruction to the host vendor's form and runs it again: the vCPU spins on the same RIP
// forever (measured: an AP stuck in kvm_hypercall4 while the BSP waits for it, no SMP boot). Hiding the
// features is not a fix a VMM can count on here: on this backend part of CPUID comes from the host rather
// than from KVM_SET_CPUID2 (docs/07-backends.md), and a stock kernel must boot either way.
//
// So on kvm_pvm, each time a vCPU is kicked out of KVM_RUN (the profile's periodic tick), the VMM looks at
// the instruction at RIP; if it is VMCALL (0f 01 c1) or VMMCALL (0f 01 d9), it carries the hypercall out
// itself as Documentation/virt/kvm/x86/hypercalls.rst defines it, puts the result in RAX and steps over the
// instruction. IPIs are delivered with KVM_SIGNAL_MSI, the same message a LAPIC's ICR write would send.
import GuestMemory
import KVM

/// The hypercall numbers of Documentation/virt/kvm/x86/hypercalls.rst that Swiftlet answers.
enum KVMHypercall: UInt64 {
    case kickCPU = 5
    case sendIPI = 10
    case schedYield = 11

    var name: String {
        switch self {
        case .kickCPU: "KVM_HC_KICK_CPU"
        case .sendIPI: "KVM_HC_SEND_IPI"
        case .schedYield: "KVM_HC_SCHED_YIELD"
        }
    }

    /// -KVM_ENOSYS, the answer to a hypercall KVM does not know.
    static let notImplemented = UInt64(bitPattern: -1000)
}

/// One IPI of a KVM_HC_SEND_IPI request, as the MSI message that delivers it.
struct PVIPIMessage: Equatable {
    let apicID: UInt32
    let address: UInt64
    let data: UInt32

    /// The messages for a KVM_HC_SEND_IPI call: bit i of the 128-bit bitmap (low, high) names APIC ID
    /// `min + i`; the ICR's low bits give the vector (0-7) and delivery mode (8-10); physical destination.
    static func messages(bitmapLow: UInt64, bitmapHigh: UInt64, minimumAPICID: UInt64, icr: UInt64) -> [PVIPIMessage] {
        var result: [PVIPIMessage] = []
        let data = UInt32(truncatingIfNeeded: icr & 0x7FF) | (1 << 14) // vector, delivery mode, level = assert
        for (word, bitmap) in [bitmapLow, bitmapHigh].enumerated() where bitmap != 0 {
            for bit in 0..<64 where bitmap & (1 << UInt64(bit)) != 0 {
                let id = minimumAPICID &+ UInt64(word * 64 + bit)
                guard id <= 0xFF else { continue } // xAPIC physical destinations are 8 bits
                result.append(PVIPIMessage(apicID: UInt32(id), address: 0xFEE0_0000 | (id << 12), data: data))
            }
        }
        return result
    }
}

extension Machine {
    /// Whether this machine finishes hypercalls for the backend (Linux on kvm_pvm with the profile on).
    var finishesHypercalls: Bool { format.isLinux && configuration.backendProfile && backend == .pvm }

    /// If `vcpu` sits on a VMCALL/VMMCALL, carries the hypercall out and steps over it. Returns the
    /// hypercall's name when it did.
    func finishPendingHypercall(_ vcpu: VCPU) -> String? {
        guard var regs = try? vcpu.registers(),
              let physical = try? vcpu.translate(regs.rip) ?? nil,
              let bytes = try? memory.readBytes(at: GuestAddress(physical), count: 3),
              bytes[0] == 0x0F, bytes[1] == 0x01, bytes[2] == 0xC1 || bytes[2] == 0xD9
        else { return nil }
        let call = KVMHypercall(rawValue: regs.rax)
        switch call {
        case .sendIPI:
            var delivered: UInt64 = 0
            for message in PVIPIMessage.messages(bitmapLow: regs.rbx, bitmapHigh: regs.rcx, minimumAPICID: regs.rdx, icr: regs.rsi) {
                if (try? vm.signalMSI(address: message.address, data: message.data)) == true { delivered += 1 }
            }
            regs.rax = delivered
        case .kickCPU, .schedYield:
            // A kick wakes a vCPU halted in a PV spinlock; the profile's tick wakes it anyway. A yield is a hint.
            regs.rax = 0
        case nil:
            regs.rax = KVMHypercall.notImplemented
        }
        regs.rip &+= 3 // wrapping: a guest RIP at the top of the address space must not trap the VMM
        guard (try? vcpu.setRegisters(regs)) != nil else { return nil }
        return call?.name ?? "hypercall \(regs.rax)"
    }
}
