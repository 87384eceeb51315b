// What a multiboot kernel written for GRUB or QEMU's -kernel takes for granted at its entry, beyond what
// Multiboot §3.2 promises: a usable ESP before it loads its own (James Molloy's tutorial kernel pushes first),
// and an interrupt handler's 32-bit `iret` completing (kvm_pvm's emulator lacks it; the VMM finishes it,
// ProtectedModeIRET). The guests are synthetic: a few instructions whose debug-exit value is the assertion.
import KVM
import Testing
import TestSupport
import VMM
import X86Boot

@Suite struct ProtectedModeIRETTests {
    /// A flat 32-bit ring-0 code segment, as BootGDT's.
    let flatCode = SegmentDescriptor.flatCode32

    func state(_ before: ProtectedModeIRET.Before, frame: [UInt32], code: SegmentDescriptor? = nil) -> ProtectedModeIRET.After? {
        ProtectedModeIRET.returnState(before, stack: { offset in
            Int(offset / 4) < frame.count ? frame[Int(offset / 4)] : nil
        }, descriptor: { selector in selector == 0x08 ? (code ?? flatCode) : nil })
    }

    @Test func aSamePrivilegeReturnPopsEIPCSAndEFLAGS() throws {
        let before = ProtectedModeIRET.Before(cpl: 0, eflags: 0x46, esp: 0x7FF0, codeIs32Bit: true)
        let after = try #require(state(before, frame: [0x10_1234, 0x08, 0x3202]))
        #expect(after.eip == 0x10_1234)
        #expect(after.cs == 0x08 && after.csDescriptor == flatCode)
        #expect(after.eflags == 0x3202, "at CPL 0 IF and IOPL come from the frame")
        #expect(after.esp == 0x7FFC)
    }

    @Test func outsideRingZeroIOPLStaysAndIFNeedsIOPL() throws {
        let ring3 = SegmentDescriptor(type: 0xB, privilegeLevel: 3)
        let before = ProtectedModeIRET.Before(cpl: 3, eflags: 0x2, esp: 0x1000, codeIs32Bit: true)
        let after = try #require(ProtectedModeIRET.returnState(before, stack: { [0x40_0000, 0x1B, 0x3202][Int($0 / 4)] },
                                                               descriptor: { $0 == 0x1B ? ring3 : nil }))
        #expect(after.eflags == 0x2, "IOPL 0 at CPL 3: neither IOPL nor IF change")
    }

    @Test func whatItMustNotFinishIsLeftToTheEmulationFailure() {
        let ring0 = ProtectedModeIRET.Before(cpl: 0, eflags: 0x2, esp: 0x7FF0, codeIs32Bit: true)
        #expect(state(ring0, frame: [0x1000, 0x0B, 0x2]) == nil, "a return to ring 3 switches stacks: not finished")
        #expect(state(ring0, frame: [0x1000, 0x08, 0x2_0002]) == nil, "a return to virtual-8086 mode")
        #expect(state(ProtectedModeIRET.Before(cpl: 0, eflags: 0x4002, esp: 0, codeIs32Bit: true), frame: [0x1000, 0x08, 0x2]) == nil,
                "EFLAGS.NT: a task return")
        #expect(state(ProtectedModeIRET.Before(cpl: 0, eflags: 0x2, esp: 0, codeIs32Bit: false), frame: [0x1000, 0x08, 0x2]) == nil,
                "16-bit code: a 16-bit frame")
        #expect(state(ring0, frame: [0x1000, 0x10, 0x2]) == nil, "a selector with no descriptor")
        #expect(state(ring0, frame: [0x1000, 0x08, 0x2], code: .flatData32) == nil, "a data segment in CS")
        #expect(state(ring0, frame: [0x1000, 0x08]) == nil, "a frame that cannot be read")
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct MultibootEntryStackTests {
    @Test func aKernelThatPushesBeforeSettingUpAStackFindsRAMUnderESP() throws {
        let code: [UInt8] = [0x6A, 42, 0x58] + MultibootFixtures.exitWithEAX // push 42; pop eax; out 0xf4, eax
        let (outcome, _) = try bootFile(SyntheticELF.multiboot(code: code))
        #expect(outcome == .debugExit(value: 42, status: ExitStatus.guestExit(42)), "\(outcome)")
    }

    @Test func anInterruptHandlerReturnsThroughA32BitIret() throws {
        // At 0x100060 (org), assembled with nasm:
        //   mov esp, 0x80000; mov edi, 0x20000 (the IDT); mov eax, handler
        //   gate 6 (#UD): [edi+48] = ax, [edi+50] = 0x08 (BootGDT code32), [edi+52] = 0x8E00 (32-bit interrupt
        //   gate, present, DPL 0), [edi+54] = handler >> 16; lidt [idtr]
        //   xor ecx, ecx; ud2; lea eax, [ecx+2]; out 0xf4, eax
        //   handler: add ecx, 40; add dword [esp], 2 (past the ud2); iret
        //   idtr: dw 0x7ff; dd 0x20000
        let code: [UInt8] = [
            0xBC, 0x00, 0x00, 0x08, 0x00, 0xBF, 0x00, 0x00, 0x02, 0x00, 0xB8, 0x96,
            0x00, 0x10, 0x00, 0x66, 0x89, 0x47, 0x30, 0x66, 0xC7, 0x47, 0x32, 0x08,
            0x00, 0x66, 0xC7, 0x47, 0x34, 0x00, 0x8E, 0xC1, 0xE8, 0x10, 0x66, 0x89,
            0x47, 0x36, 0x0F, 0x01, 0x1D, 0x9E, 0x00, 0x10, 0x00, 0x31, 0xC9, 0x0F,
            0x0B, 0x8D, 0x41, 0x02, 0xE7, 0xF4, 0x83, 0xC1, 0x28, 0x83, 0x04, 0x24,
            0x02, 0xCF, 0xFF, 0x07, 0x00, 0x00, 0x02, 0x00,
        ]
        let (outcome, machine) = try bootFile(SyntheticELF.multiboot(code: code))
        #expect(outcome == .debugExit(value: 42, status: ExitStatus.guestExit(42)), "\(outcome)")
        if machine.backend == .pvm {
            #expect(machine.finishedInstructions.withLock { $0["iret"] } == 1)
        }
    }

    @Test func aRingZeroIntNReachesItsGateAndComesBack() throws {
        // As above, with gate 0x40 (at [edi+0x200]) and `int 0x40` where the ud2 was; the handler is
        // `add ecx, 40; iret` (INT n pushes the address after itself). kvm_pvm's emulator has neither
        // `int n` nor a protected-mode `iret`: both are finished by the VMM there.
        let code: [UInt8] = [
            0xBC, 0x00, 0x00, 0x08, 0x00, 0xBF, 0x00, 0x00, 0x02, 0x00, 0xB8, 0xA2,
            0x00, 0x10, 0x00, 0x66, 0x89, 0x87, 0x00, 0x02, 0x00, 0x00, 0x66, 0xC7,
            0x87, 0x02, 0x02, 0x00, 0x00, 0x08, 0x00, 0x66, 0xC7, 0x87, 0x04, 0x02,
            0x00, 0x00, 0x00, 0x8E, 0xC1, 0xE8, 0x10, 0x66, 0x89, 0x87, 0x06, 0x02,
            0x00, 0x00, 0x0F, 0x01, 0x1D, 0xA6, 0x00, 0x10, 0x00, 0x31, 0xC9, 0xCD,
            0x40, 0x8D, 0x41, 0x02, 0xE7, 0xF4, 0x83, 0xC1, 0x28, 0xCF, 0xFF, 0x07,
            0x00, 0x00, 0x02, 0x00,
        ]
        let (outcome, machine) = try bootFile(SyntheticELF.multiboot(code: code))
        #expect(outcome == .debugExit(value: 42, status: ExitStatus.guestExit(42)), "\(outcome)")
        if machine.backend == .pvm {
            #expect(machine.finishedInstructions.withLock { $0 } == ["int 0x40": 1, "iret": 1])
        }
    }
}
