// Tests for the KVM handle chain on the real /dev/kvm (skipped with the reason where it is absent).
import KVM
import Testing
import TestSupport

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct KVMSystemTests {
    @Test func opensDevKVMWithAPIVersion12() throws {
        let kvm = try KVMSystem()
        #expect(try kvm.apiVersion() == 12)
        #expect(kvm.checkExtension(.userMemory) > 0)
        #expect(try kvm.vcpuMmapSize() >= 4096)
    }

    @Test func supportedCPUIDHasLongModeAndKVMLeaves() throws {
        let cpuid = try KVMSystem().supportedCPUID()
        let extended = try #require(cpuid.first { $0.function == 0x8000_0001 })
        #expect(extended.edx & (1 << 29) != 0, "long mode")
        let kvmLeaf = try #require(cpuid.first { $0.function == 0x4000_0000 })
        #expect(kvmLeaf.ebx == 0x4B4D_564B) // "KVMK"
    }

    @Test func createsVMAndVCPUAndReadsResetState() throws {
        let vm = try KVMSystem().createVirtualMachine()
        let vcpu = try vm.createVCPU(id: 0)
        let sregs = try vcpu.specialRegisters()
        #expect(sregs.cs.selector == 0xF000)
        #expect(sregs.cs.base == 0xFFFF_0000)
        #expect(try vcpu.registers().rip == 0xFFF0)
    }

    @Test func signalsAnMSIToTheLocalAPICItNames() throws {
        let vm = try KVMSystem().createVirtualMachine()
        try vm.createIRQChip()
        let vcpu = try vm.createVCPU(id: 0)
        // After reset the local APIC is software-disabled (SVR bit 8 clear): KVM reports the MSI as blocked.
        #expect(try vm.signalMSI(address: 0xFEE0_0000, data: 0x41) == false)
        var lapic = try vcpu.localAPIC()
        withUnsafeMutableBytes(of: &lapic.regs) { $0[0xF1] |= 0x01 }       // SVR (0xF0) bit 8: APIC enabled
        try vcpu.setLocalAPIC(lapic)
        // APIC id 0, fixed delivery, vector 0x41: KVM accepts it and sets bit 1 of IRR dword 2 (vectors 0x40-0x5F).
        #expect(try vm.signalMSI(address: 0xFEE0_0000, data: 0x41) == true)
        let irr = withUnsafeBytes(of: try vcpu.localAPIC().regs) { $0.load(fromByteOffset: 0x200 + 2 * 0x10, as: UInt32.self) }
        #expect(irr & (1 << 1) != 0)
    }

    @Test func reportsAMissingDeviceWithAHint() {
        #expect(throws: KVMError.self) { try KVMSystem(path: "/nonexistent/kvm") }
        do { _ = try KVMSystem(path: "/nonexistent/kvm") } catch {
            #expect("\(error)".contains("cannot open /nonexistent/kvm: No such file or directory (is the kvm module loaded?"))
        }
    }

    @Test func namesTheBackend() {
        #expect(KVMSystem.backend() != .unknown)
        #expect(KVMSystem.backend(sysModule: "/nonexistent") == .unknown)
    }
}

@Suite struct InstructionBytesTests {
    @Test func decodesEmulationFailureBytes() {
        // flags = 1 (bytes valid); insn_size = 2; bytes 0f 0b.
        let data: [UInt64] = [1, 0x0B0F02, 0]
        #expect(emulationFailureInstructionBytes(data) == [0x0F, 0x0B])
        #expect(emulationFailureInstructionBytes([0, 0x0B0F02]) == nil)
    }
}
