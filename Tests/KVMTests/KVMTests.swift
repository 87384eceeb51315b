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

    /// KVM_GET_CPUID2 after KVM_SET_CPUID2. Leaf 0 and leaf 1's EAX and EBX come back as set everywhere.
    /// Hardware KVM keeps the table (updating only the bits that follow guest state: APIC, EDX[9], from the
    /// APIC base MSR); kvm_pvm, measured here, rewrites leaf 1's ECX and EDX with the host's features (the
    /// hypervisor bit kept) and adds leaf 0xD's subleaves 0-2: the table it holds is partly the host's.
    @Test func aVCPUsCPUIDTableReadsBackAsTheBackendKeepsIt() throws {
        let kvm = try KVMSystem()
        let vcpu = try kvm.createVirtualMachine().createVCPU(id: 0)
        // Leaf 0 with a made-up vendor and leaf 1 with only the hypervisor bit: nothing KVM would invent.
        let set1 = CPUIDEntry(function: 1, eax: 0x0A_0F11, ebx: 0x0001_0800, ecx: 1 << 31, edx: 0)
        try vcpu.setCPUID([CPUIDEntry(function: 0, eax: 1, ebx: 0x7466_6957, ecx: 0x6574_6C74, edx: 0x4C5F_5453), set1])
        let back = try vcpu.cpuid()
        #expect(back.first { $0.function == 0 }.map { [$0.eax, $0.ebx, $0.ecx, $0.edx] } == [1, 0x7466_6957, 0x6574_6C74, 0x4C5F_5453])
        let leaf1 = try #require(back.first { $0.function == 1 })
        #expect(leaf1.eax == set1.eax && leaf1.ebx == set1.ebx)
        #expect(leaf1.ecx & (1 << 31) != 0, "the hypervisor bit stays")
        switch KVMSystem.backend() {
        case .intel, .amd:
            #expect(back.map(\.function) == [0, 1])
            #expect(leaf1.ecx == set1.ecx && leaf1.edx & ~(1 << 9) == 0, "\(leaf1)")
        case .pvm:
            #expect(back.map(\.function) == [0, 1, 0xD, 0xD, 0xD])
            #expect(leaf1.ecx != set1.ecx && leaf1.edx != set1.edx, "the host's features: \(leaf1)")
            #expect(leaf1.edx & 1 != 0, "EDX[0], the FPU every x86-64 host has")
        case .unknown:
            break // only what every backend does, above
        }
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
