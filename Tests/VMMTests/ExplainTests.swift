// Tests of `swiftlet explain` and MachineExplanation: every value the explanation reports is checked
// against guest memory read independently here (the e820 entries, the zero page's cmd_line_ptr, the GDT
// bytes, hvm_start_info, the initrd's cpio magic), against the specifications' fixed numbers, and against
// the host (/proc/cpuinfo's vendor). The CLI tests check that nothing runs and that bad input fails
// exactly as `swiftlet boot` does. Linux cases use guest/linux/out (CI builds it) and skip without it.
import Glibc
import GuestMemory
import KVM
import Testing
import TestSupport
@testable import VMM
import X86Boot

// MARK: Pure parts (no /dev/kvm)

@Suite struct CommandLineExplanationTests {
    @Test func splitsTheVMMsPartsTheProfileTheUsersAndTheInitCommand() {
        let final = "console=ttyS0 reboot=k panic=-1 pci=off rodata=off swiftlet.pvm_syscall quiet loglevel=4"
        let e = CommandLineExplanation.explain(final: final, address: GuestAddress(0x4000), userCommandLine: "quiet loglevel=4",
                                               initArguments: ["sh", "-c", "echo hi; exit 7", "it's"], isLinux: true,
                                               profile: ["rodata=off", "swiftlet.pvm_syscall"], backend: .pvm)
        #expect(e.parts.map(\.text) == ["console=ttyS0", "reboot=k", "panic=-1", "pci=off", "rodata=off", "swiftlet.pvm_syscall", "quiet", "loglevel=4",
                                        #"sh -c 'echo hi; exit 7' 'it'\''s'"#])
        #expect(e.parts.map(\.origin) == [.vmm, .vmm, .vmm, .vmm, .backendProfile, .backendProfile, .user, .user, .initCommand])
        #expect(e.parts[1].reason.contains("i8042"))
        #expect(e.parts[3].reason.contains("no PCI host bridge"))
        #expect(e.parts[5].reason.contains("page fault"))
        #expect(e.parts[8].reason.contains("/swiftlet/argv"), "the command is not on the kernel command line")
    }

    @Test func aUserLineThatRepeatsAVMMParameterIsStillTheUsers() {
        let e = CommandLineExplanation.explain(final: "console=ttyS0 reboot=k panic=-1 console=ttyS0", address: GuestAddress(0x4000),
                                               userCommandLine: "console=ttyS0", initArguments: [], isLinux: true, profile: [], backend: .intel)
        #expect(e.parts.map(\.origin) == [.vmm, .vmm, .vmm, .user])
    }

    @Test func unknownParametersFromTheVMMAreLabelledAsTheVMMs() {
        let e = CommandLineExplanation.explain(final: "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 x", address: GuestAddress(0x4000),
                                               userCommandLine: "x", initArguments: [], isLinux: true, profile: [], backend: .amd)
        #expect(e.parts.map(\.origin) == [.vmm, .vmm, .user])
        #expect(e.parts[1].reason.contains("virtio-mmio"))
    }

    @Test func readsVirtioMMIODevicesFromTheCommandLine() {
        let devices = CommandLineExplanation.virtioMMIODevices(in: "a virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=512@0xd0001000:6:2 b")
        #expect(devices.map(\.base) == [0xD000_0000, 0xD000_1000])
        #expect(devices.map(\.irq) == [5, 6])
    }
}

@Suite struct CPUIDComparisonTests {
    /// A fake host: vendor "AuthenticAMD", leaf 1 with popcnt (ECX bit 23) and no hypervisor bit.
    static func host(_ leaf: UInt32, _ subleaf: UInt32) -> CPUIDEntry {
        switch leaf {
        case 0: CPUIDEntry(function: 0, eax: 0xD, ebx: 0x6874_7541, ecx: 0x444D_4163, edx: 0x6974_6E65)
        case 1: CPUIDEntry(function: 1, eax: 0x00A0_0F11, ebx: 0x0102_0800, ecx: 1 << 23, edx: 1)
        default: CPUIDEntry(function: leaf)
        }
    }

    @Test func namesFeaturesPresentOnOneSideOnly() {
        let given = [CPUIDEntry(function: 0, eax: 0xD, ebx: 0x6874_7541, ecx: 0x444D_4163, edx: 0x6974_6E65),
                     CPUIDEntry(function: 1, eax: 0x00A0_0F11, ebx: 0x0001_0800, ecx: 1 << 31, edx: 1)]
        let c = MachineExplanation.CPUIDComparison(given: given, backend: .pvm, host: Self.host)
        let leaf1 = c.row(1)!
        #expect(leaf1.notes.contains("ECX: host only: popcnt"))
        #expect(leaf1.notes.contains("ECX: vCPU only: hypervisor"))
        #expect(leaf1.notes.contains("EDX: identical"))
        #expect(c.row(0)!.notes == ["vCPU: \"AuthenticAMD\", leaves up to 0xd", "host: \"AuthenticAMD\", leaves up to 0xd"])
        // The host has no hypervisor bit, so it has no 0x40000000 leaf; the vCPU table has none either.
        #expect(c.row(0x4000_0000)!.host == nil)
        #expect(c.row(0x4000_0000)!.given == nil)
        #expect(c.guestSees.contains("partly virtualised"))
        #expect(MachineExplanation.CPUIDComparison(given: given, backend: .intel, host: Self.host).guestSees.contains("vCPU column"))
    }

    @Test func hostCPUIDIsTheVendorProcCpuinfoNames() throws {
        let cpuinfo = ProcessRunner.readFile("/proc/cpuinfo")
        let line = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("vendor_id") })
        let vendor = line.split(separator: ":").last!.trimmingPrefix(" ")
        #expect(MachineExplanation.CPUIDComparison.vendor(HostCPUID.query(0)) == String(vendor))
    }
}

// MARK: Built machines, read back (needs /dev/kvm)

func readCString(_ memory: GuestMemory, _ address: UInt64) throws -> String {
    var bytes: [UInt8] = []
    var at = address
    while true {
        let b = try memory.read(UInt8.self, at: GuestAddress(at))
        if b == 0 { break }
        bytes.append(b)
        at += 1
    }
    return String(decoding: bytes, as: UTF8.self)
}

func fileSize(_ path: String) -> UInt64 { UInt64(ProcessRunner.readBytes(path).count) }

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ExplainMultibootTests {
    func build(_ configure: (inout MachineConfiguration) -> Void = { _ in }) throws -> (Machine, MachineExplanation) {
        var c = MachineConfiguration()
        configure(&c)
        let machine = try Machine.build(c)
        return (machine, try MachineExplanation(machine: machine))
    }

    @Test func directBootIsExplainedFromGuestMemoryAndRegisters() throws {
        let (machine, e) = try build { $0.commandLine = "lab=1 x" }
        let elf = try ELFImage(try #require(Machine.embeddedImage("hello")))
        #expect(e.format == .multiboot)
        #expect(e.entry.rip == elf.entry)
        #expect(e.entry.rax == 0x2BAD_B002)
        #expect(e.entry.rbx == X86Layout.multibootInfo.rawValue)
        #expect(e.entry.protectedMode && !e.entry.paging)

        // The memory map, read through mmap_addr here too.
        let info = X86Layout.multibootInfo.rawValue
        let mmapAddress = UInt64(try machine.memory.read(UInt32.self, at: GuestAddress(info + 48)))
        #expect(e.bootInformation.field("mmap_addr")?.value == mmapAddress)
        let expected = [MachineExplanation.MemoryMapEntry(base: 0, length: 0xA_0000, type: 1),
                        .init(base: 0xA_0000, length: 0x6_0000, type: 2),
                        .init(base: 0x10_0000, length: (64 << 20) - 0x10_0000, type: 1)]
        #expect(e.memoryMap.entries == expected)
        for (i, entry) in e.memoryMap.entries.enumerated() {
            #expect(try machine.memory.read(UInt64.self, at: GuestAddress(mmapAddress + UInt64(i * 24) + 4)) == entry.base)
        }
        #expect(e.bootInformation.field("mem_lower")?.value == 640)
        #expect(e.bootInformation.field("mem_upper")?.value == (64 << 10) - 1024)

        // The GDT: the bytes in guest memory, decoded, and which segment registers use each descriptor.
        let gdt = try #require(e.gdt)
        let bytes = try machine.memory.readBytes(at: X86Layout.gdt, count: 48)
        #expect(gdt.entries.flatMap { entry in (0..<8).map { UInt8(truncatingIfNeeded: entry.raw >> (8 * $0)) } } == bytes)
        #expect(bytes == BootGDT.bytes)
        let gdtr = try machine.vcpus[0].specialRegisters().gdt
        #expect(gdtr.base == X86Layout.gdt.rawValue && gdtr.limit == 0x2F, "GDTR read back from the vCPU: six descriptors")
        #expect(gdt.entries.map(\.selector) == [0, 8, 0x10, 0x18, 0x20, 0x28])
        #expect(gdt.entries[1].loadedIn == ["CS"] && gdt.entries[1].meaning.hasPrefix("code, 32-bit"))
        #expect(gdt.entries[2].loadedIn == ["DS", "ES", "FS", "GS", "SS"])
        #expect(gdt.entries[3].meaning.hasPrefix("code, 64-bit"))
        #expect(gdt.entries[5].loadedIn == ["TR"] && gdt.entries[5].meaning.hasPrefix("TSS"))

        #expect(!e.pageTables.enabled && e.pageTables.mappings.isEmpty)
        #expect(e.commandLine.final == "lab=1 x")
        #expect(e.commandLine.parts.allSatisfy { $0.origin == .user })
        #expect(e.commandLine.address.rawValue == UInt64(try machine.memory.read(UInt32.self, at: GuestAddress(info + 16))))

        // The PC: the UART on ISA IRQ 4, the PICs, PIT, IOAPIC and LAPIC inside KVM, the RTC in the VMM, and
        // an MP table with the one CPU.
        let com1 = try #require(e.devices.first { $0.base == 0x3F8 && $0.space == .port })
        #expect(com1.length == 8 && com1.interrupt?.contains("ISA IRQ 4") == true && com1.handledBy == "VMM")
        #expect(e.devices.contains { $0.name == "i8254 PIT" && $0.handledBy == "KVM" })
        #expect(e.devices.contains { $0.base == 0x70 && $0.name.contains("RTC") && $0.handledBy == "VMM" })
        #expect(e.mpTable?.processors.count == 1)

        // CPUID: the table the vCPU got, read back from KVM (KVM_GET_CPUID2), with the VMM's hypervisor bit
        // and CPU count. kvm_pvm rewrites leaf 1's ECX and EDX with the host's features in the table it holds
        // (measured: KVMTests.aVCPUsCPUIDTableReadsBackAsItWasSet); the rest reads back as given.
        let leaf1 = try #require(e.cpuid.row(1)?.given)
        let held = try machine.vcpus[0].cpuid()
        let heldLeaf0 = try #require(held.first { $0.function == 0 }), heldLeaf1 = try #require(held.first { $0.function == 1 })
        #expect(e.cpuid.row(0)?.given == heldLeaf0)
        #expect(leaf1.eax == heldLeaf1.eax && leaf1.ebx == heldLeaf1.ebx)
        if machine.backend.isHardware { #expect(leaf1 == heldLeaf1) }
        #expect(leaf1.ecx & (1 << 31) != 0 && heldLeaf1.ecx & (1 << 31) != 0, "CPUID.1:ECX[31], hypervisor present")
        #expect((leaf1.ebx >> 16) & 0xFF == 1 && leaf1.ebx >> 24 == 0, "one logical processor; APIC id 0")
        // The host column: the vendor and the highest basic leaf, as the host kernel read them (/proc/cpuinfo).
        let cpuinfo = ProcessRunner.readFile("/proc/cpuinfo").split(separator: "\n")
        func field(_ name: String) -> String? {
            cpuinfo.first { $0.hasPrefix(name) }.flatMap { $0.split(separator: ":").last }.map { String($0.drop { $0 == " " }) }
        }
        let host0 = try #require(e.cpuid.row(0)?.host)
        #expect(MachineExplanation.CPUIDComparison.vendor(host0) == field("vendor_id"))
        #expect(String(host0.eax) == field("cpuid level"))
    }

    @Test func firmwareBootStartsInRealModeWithAHandoffBlock() throws {
        let (machine, e) = try build { $0.bootMode = .firmware }
        #expect(!e.entry.protectedMode)
        #expect(e.gdt == nil)
        #expect(e.entry.segment("CS")?.base == 0xFFFF_0000 && e.entry.rip == 0xFFF0)
        let handoff = try #require(e.firmwareHandoff)
        #expect(handoff.map(\.value) == [UInt64(X86Layout.firmwareHandoffMagic), UInt64(machine.entryPoint), X86Layout.multibootInfo.rawValue])
        #expect(e.memoryMap.entries.last == .init(base: 0xFFFF_0000, length: 0x1_0000, type: 2))
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct ExplainLinuxTests {
    func build(_ kernel: String, cpus: Int = 1, memory: UInt64 = 64 << 20, profile: Bool = true) throws -> (Machine, MachineExplanation) {
        var c = MachineConfiguration()
        c.kernel = .file(kernel)
        c.initrd = LinuxArtefacts.initramfs
        c.cpus = cpus
        c.memorySize = memory
        c.commandLine = "quiet loglevel=4"
        c.initArguments = ["uname", "-r"]
        c.backendProfile = profile
        let machine = try Machine.build(c)
        return (machine, try MachineExplanation(machine: machine))
    }

    @Test func bzImageZeroPageE820AndPageTablesMatchGuestMemory() throws {
        // Without the backend profile: the bzImage itself, entered at its own startup_64 (on kvm_pvm the
        // profile would unpack it on the host; unpackedKernelGetsTheZeroPageAndARandomSeed covers that).
        let (machine, e) = try build(LinuxArtefacts.bzImage, profile: false)
        let zeroPage = X86Layout.zeroPage.rawValue
        #expect(e.entry.rsi == zeroPage && e.entry.longMode && e.entry.paging)
        #expect(e.entry.cr3 == X86Layout.pageTables.rawValue)
        #expect(e.bootInformation.address.rawValue == zeroPage)

        // cmd_line_ptr, read here from the zero page, leads to the line the kernel gets.
        let pointer = UInt64(try machine.memory.read(UInt32.self, at: GuestAddress(zeroPage + 0x228)))
        #expect(e.bootInformation.field("cmd_line_ptr")?.value == pointer)
        let line = try readCString(machine.memory, pointer)
        #expect(line == machine.kernelCommandLine && line == e.commandLine.final)
        #expect(line.hasPrefix("console=ttyS0 reboot=k panic=-1 ") && line.hasSuffix(" quiet loglevel=4"))
        #expect(!line.contains("uname"), "the command travels in the initramfs, not on the command line")

        // The e820 table, read here at boot_params + 0x2d0 (20-byte entries).
        let count = Int(try machine.memory.read(UInt8.self, at: GuestAddress(zeroPage + 0x1E8)))
        #expect(count == e.memoryMap.entries.count)
        for (i, entry) in e.memoryMap.entries.enumerated() {
            let at = zeroPage + 0x2D0 + UInt64(i * 20)
            #expect(try machine.memory.read(UInt64.self, at: GuestAddress(at)) == entry.base)
            #expect(try machine.memory.read(UInt64.self, at: GuestAddress(at + 8)) == entry.length)
            #expect(try machine.memory.read(UInt32.self, at: GuestAddress(at + 16)) == entry.type)
        }
        #expect(e.memoryMap.entries == [.init(base: 0, length: 0x9_FC00, type: 1), .init(base: 0x9_FC00, length: 0x6_0400, type: 2),
                                        .init(base: 0x10_0000, length: (64 << 20) - 0x10_0000, type: 1)])

        // The setup header the kernel wrote into its file, and the loader's fields.
        #expect(e.bootInformation.field("header")?.value == 0x5372_6448)
        #expect(e.bootInformation.field("boot_flag")?.value == 0xAA55)
        #expect(e.bootInformation.field("type_of_loader")?.value == 0xFF)
        #expect(e.bootInformation.field("code32_start")?.value == 0x10_0000)
        #expect(e.entry.rip == 0x10_0000 + 0x200)

        // The initrd: where ramdisk_image says: the file's bytes, then (from a 4-byte boundary) a second newc
        // archive whose swiftlet/argv holds the command's words, each NUL-terminated.
        let initrd = try #require(e.bootInformation.modules.first)
        #expect(e.bootInformation.field("ramdisk_image")?.value == initrd.base.rawValue)
        let file = ProcessRunner.readBytes(LinuxArtefacts.initramfs)
        let loaded = try machine.memory.readBytes(at: initrd.base, count: Int(initrd.length))
        #expect(Array(loaded.prefix(file.count)) == file)
        let addition = Array(loaded[((file.count + 3) & ~3)...])
        #expect(Array(addition.prefix(6)) == Array("070701".utf8))
        let name = Array("swiftlet/argv".utf8) + [0]
        let at = try #require(addition.indices.first { addition[$0...].starts(with: name) })
        let data = Array(addition[((at + name.count + 3) & ~3)...].prefix(9))
        #expect(data == Array("uname\u{0}-r\u{0}".utf8))

        // The identity map: four levels by the CPU's rules, 2 MiB pages ending the walk in the PDs.
        #expect(e.pageTables.enabled)
        #expect(e.pageTables.levels.map(\.name) == ["PML4", "PDPT", "PD"])
        #expect(e.pageTables.levels[2].tables.count == 4 && e.pageTables.levels[2].presentEntries == 2048)
        #expect(e.pageTables.mappings == [.init(virtualBase: 0, physicalBase: 0, length: 4 << 30, pageSize: 2 << 20, writable: true, user: false)])

        // Who added what.
        let origins = Dictionary(e.commandLine.parts.map { ($0.text, $0.origin) }, uniquingKeysWith: { a, _ in a })
        #expect(origins["console=ttyS0"] == .vmm && origins["panic=-1"] == .vmm)
        #expect(origins["quiet"] == .user && origins["loglevel=4"] == .user)
        #expect(origins["uname -r"] == .initCommand)
        #expect(origins["pci=off"] == .vmm, "no PCI host bridge without a virtio-pci device")
        #expect(!e.commandLine.parts.contains { $0.origin == .backendProfile })

        // The MP table and the IRQ wiring it announces.
        let mp = try #require(e.mpTable)
        #expect(mp.processors.map(\.apicID) == [0] && mp.processors[0].bootstrap)
        #expect(mp.ioAPIC?.address == X86Layout.ioAPIC.rawValue && mp.ioAPIC?.id == 1)
        #expect(mp.pin(forISAIRQ: 4) == 4)
        let com1 = try #require(e.devices.first { $0.name.hasPrefix("COM1") })
        #expect(com1.interrupt?.contains("ISA IRQ 4 → IOAPIC pin 4") == true)
        #expect(e.devices.contains { $0.name == "IOAPIC" && $0.base == 0xFEC0_0000 && $0.handledBy == "KVM" })
    }

    @Test func withoutTheBackendProfileNoProfileParameterIsAdded() throws {
        let (machine, e) = try build(LinuxArtefacts.bzImage, profile: false)
        #expect(!e.commandLine.parts.contains { $0.origin == .backendProfile })
        #expect(e.commandLine.final == "console=ttyS0 reboot=k panic=-1 pci=off quiet loglevel=4")
        #expect(machine.kernelCommandLine == e.commandLine.final)
    }

    /// --decompress (the kvm_pvm profile does the same by itself): the kernel ELF inside the bzImage at its
    /// physical addresses, entered at its e_entry through the 64-bit boot protocol, with the bzImage's zero
    /// page and a SETUP_RNG_SEED entry in its setup_data list.
    @Test func unpackedKernelGetsTheZeroPageAndARandomSeed() throws {
        var c = MachineConfiguration()
        c.kernel = .file(LinuxArtefacts.bzImage)
        c.initrd = LinuxArtefacts.initramfs
        c.decompressKernel = true
        c.initArguments = ["true"]
        let machine = try Machine.build(c)
        let e = try MachineExplanation(machine: machine)
        // vmlinux is the same kernel unstripped: its ELF header's e_entry (offset 0x18) is phys_startup_64.
        let vmlinux = ProcessRunner.readBytes(LinuxArtefacts.vmlinux)
        let entry = vmlinux[0x18..<0x20].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(entry == 0x100_0000, "x86-64 defaults: LOAD_PHYSICAL_ADDR 16 MiB")
        #expect(e.entry.rip == entry && e.entry.longMode && e.entry.paging)
        #expect(e.entry.rsi == X86Layout.zeroPage.rawValue)
        // The kernel's first bytes are where its first PT_LOAD segment says (file offset 0x200000 in vmlinux).
        #expect(try machine.memory.readBytes(at: GuestAddress(entry), count: 64) == Array(vmlinux[0x20_0000..<0x20_0040]))
        let zeroPage = X86Layout.zeroPage.rawValue
        #expect(try machine.memory.read(UInt32.self, at: GuestAddress(zeroPage + 0x202)) == 0x5372_6448, "HdrS")
        let setupData = try machine.memory.read(UInt64.self, at: GuestAddress(zeroPage + 0x250))
        #expect(setupData != 0)
        #expect(try machine.memory.read(UInt64.self, at: GuestAddress(setupData)) == 0, "the only entry")
        #expect(try machine.memory.read(UInt32.self, at: GuestAddress(setupData + 8)) == 9, "SETUP_RNG_SEED")
        #expect(try machine.memory.read(UInt32.self, at: GuestAddress(setupData + 12)) == 32)
        #expect(try machine.memory.readBytes(at: GuestAddress(setupData + 16), count: 32) != [UInt8](repeating: 0, count: 32))
    }

    @Test func pvhStartInfoAndItsMemoryMapMatchGuestMemory() throws {
        let hostRAM = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let size: UInt64 = hostRAM > 5 << 30 ? 4 << 30 : 64 << 20
        let (machine, e) = try build(LinuxArtefacts.vmlinux, cpus: 2, memory: size)
        let startInfo = X86Layout.pvhStartInfo.rawValue
        #expect(e.entry.rbx == startInfo && e.entry.protectedMode && !e.entry.paging && !e.entry.longMode)
        #expect(try machine.memory.read(UInt32.self, at: GuestAddress(startInfo)) == HVMStartInfo.magic)
        #expect(e.bootInformation.field("magic")?.value == UInt64(HVMStartInfo.magic))

        let cmdline = try machine.memory.read(UInt64.self, at: GuestAddress(startInfo + 24))
        #expect(try readCString(machine.memory, cmdline) == e.commandLine.final)
        #expect(e.commandLine.final == machine.kernelCommandLine)

        let memmap = try machine.memory.read(UInt64.self, at: GuestAddress(startInfo + 40))
        let entries = try machine.memory.read(UInt32.self, at: GuestAddress(startInfo + 48))
        #expect(Int(entries) == e.memoryMap.entries.count)
        for (i, entry) in e.memoryMap.entries.enumerated() {
            #expect(try machine.memory.read(UInt64.self, at: GuestAddress(memmap + UInt64(i * 24))) == entry.base)
            #expect(try machine.memory.read(UInt64.self, at: GuestAddress(memmap + UInt64(i * 24) + 8)) == entry.length)
        }
        if size > 3 << 30 {
            // RAM past 3 GiB is moved above the 32-bit MMIO hole.
            #expect(e.memoryMap.entries.last == .init(base: 1 << 32, length: size - (3 << 30), type: 1))
            #expect(e.memorySlots.map(\.range.base.rawValue) == [0, 1 << 32])
        }

        // The initrd module: the file, then the command's archive (the file's length rounded up to 4, plus
        // more than one 110-byte newc header).
        let initrd = try #require(e.bootInformation.modules.first)
        let file = fileSize(LinuxArtefacts.initramfs)
        #expect(initrd.length > ((file + 3) & ~3) + 110)
        #expect(try machine.memory.readBytes(at: initrd.base, count: 6) == Array("070701".utf8))

        #expect(!e.pageTables.enabled)
        let mp = try #require(e.mpTable)
        #expect(mp.processors.map(\.apicID) == [0, 1] && mp.processors.map(\.bootstrap) == [true, false])
        #expect(mp.ioAPIC?.id == 2)
        // Each vCPU's table has the processor count; vCPU 0's APIC id is 0.
        let leaf1 = try #require(e.cpuid.row(1)?.given)
        #expect((leaf1.ebx >> 16) & 0xFF == 2 && leaf1.ebx >> 24 == 0)
    }

    /// The ACPI tables as `explain` reads them agree with the bytes read here and with the MP table: the same
    /// CPUs, the same IOAPIC, the same ISA routing; both boot protocols hand the RSDP over.
    @Test(arguments: [1, 3])
    func acpiTablesRoundTripThroughGuestMemoryAndAgreeWithTheMPTable(cpus: Int) throws {
        let (machine, e) = try build(LinuxArtefacts.vmlinux, cpus: cpus)
        let rsdp = try machine.memory.read(UInt64.self, at: GuestAddress(X86Layout.pvhStartInfo.rawValue + 32))
        #expect(rsdp == X86Layout.acpi.rawValue, "hvm_start_info.rsdp_paddr")
        #expect(e.bootInformation.field("rsdp_paddr")?.value == rsdp)
        let a = try #require(e.acpi)
        #expect(a.problems.isEmpty, "\(a.problems)")
        #expect(a.rsdp.rawValue == rsdp && a.rsdpRevision == 2 && a.rsdpChecksumsValid)
        // The XSDT's first entry, read here, is the FADT the explanation lists first.
        let xsdt = try #require(a.xsdt)
        #expect(try machine.memory.read(UInt64.self, at: GuestAddress(rsdp + 24)) == xsdt.address)
        #expect(try machine.memory.read(UInt64.self, at: GuestAddress(xsdt.address + 36)) == a.tables.first?.address)
        #expect(a.tables.map(\.signature) == ["FACP", "APIC", "DSDT"])
        #expect(a.tables.allSatisfy(\.checksumValid) && xsdt.checksumValid)
        #expect(a.hardwareReduced)
        #expect(a.localAPICAddress == X86Layout.localAPIC.rawValue)
        // One enabled local APIC per vCPU, UID = APIC id = index, as the MP table's processors.
        let mp = try #require(e.mpTable)
        #expect(a.processors == (0..<cpus).map { .init(uid: UInt8($0), apicID: UInt8($0), enabled: true) })
        #expect(a.processors.map(\.apicID) == mp.processors.map(\.apicID))
        #expect(a.ioAPICs == [.init(id: mp.ioAPIC!.id, address: mp.ioAPIC!.address, gsiBase: 0)])
        for irq in UInt8(0)..<16 { #expect(mp.pin(forISAIRQ: irq).map(UInt32.init) == a.gsi(forISAIRQ: irq), "IRQ \(irq)") }
        #expect(a.localNMIs == [.init(uid: 0xFF, lint: 1, flags: 0)])
    }

    @Test func aCorruptedMADTIsReportedNotTrusted() throws {
        let (machine, _) = try build(LinuxArtefacts.vmlinux, cpus: 2)
        let madt = try ACPITables.encode(cpus: 2, routing: .identity).layout.madt
        // The OEM revision's low byte: the structure stays readable, only the sum is off.
        let byte = try machine.memory.read(UInt8.self, at: GuestAddress(madt.rawValue + 24))
        try machine.memory.write(bytes: [byte &+ 1], at: GuestAddress(madt.rawValue + 24))
        let a = try #require(try MachineExplanation(machine: machine).acpi)
        #expect(a.problems == ["APIC at \(madt): checksum does not sum to zero"])
        #expect(a.table("APIC")?.checksumValid == false && a.table("FACP")?.checksumValid == true)
    }

    @Test func theZeroPageHandsTheRSDPToA215Kernel() throws {
        let (machine, e) = try build(LinuxArtefacts.bzImage, cpus: 2)
        let field = try machine.memory.read(UInt64.self, at: GuestAddress(X86Layout.zeroPage.rawValue + 0x070))
        #expect(field == X86Layout.acpi.rawValue, "boot_params.acpi_rsdp_addr")
        #expect(e.bootInformation.field("acpi_rsdp_addr")?.value == field)
        #expect(e.acpi?.processors.count == 2 && e.acpi?.problems.isEmpty == true)
    }
}

// MARK: What the guest's CPUID instruction really returns

/// Tiny multiboot guests that execute CPUID in kernel mode and report one bit through the debug-exit
/// port, so the explanation's note on which column the guest sees is checked on the backend at hand.
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct CPUIDSeenByTheGuestTests {
    /// Boots a guest that runs CPUID(leaf, subleaf) and exits with bit `bit` of `register`.
    func guestBit(_ leaf: UInt32, _ subleaf: UInt32 = 0, register: String, bit: UInt8) throws -> Bool {
        let encoding: [String: UInt8] = ["eax": 0, "ecx": 1, "edx": 2, "ebx": 3]
        let r = try #require(encoding[register])
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let code: [UInt8] = [0xB8] + le32(leaf) + [0xB9] + le32(subleaf) + [0x0F, 0xA2]   // mov eax, leaf; mov ecx, subleaf; cpuid
            + [0x89, 0xC0 | r << 3]                                                      // mov eax, register
            + [0xC1, 0xE8, bit] + [0x25] + le32(1)                                       // shr eax, bit; and eax, 1
            + [0xE7, 0xF4, 0xF4]                                                         // out 0xf4, eax; hlt
        let path = writeTemp("cpuid-\(leaf)-\(register)-\(bit)", SyntheticELF.multiboot(code: code))
        defer { unlink(path) }
        let result = ProcessRunner.run(swiftlet, ["boot", "--kernel", path, "--timeout", "20"])
        try #require(result.status == ExitStatus.guestExit(0) || result.status == ExitStatus.guestExit(1), "the probe guest must exit through the debug port: \(result.stderr)")
        return result.status == ExitStatus.guestExit(1)
    }

    func bit(_ e: CPUIDEntry?, _ register: String, _ bit: UInt8) -> Bool {
        guard let e else { return false }
        let value = ["eax": e.eax, "ebx": e.ebx, "ecx": e.ecx, "edx": e.edx][register]!
        return value >> UInt32(bit) & 1 == 1
    }

    @Test func theGuestReadsWhatTheNoteSays() throws {
        let machine = try Machine.build(MachineConfiguration())
        let table = machine.vcpu0CPUID
        func given(_ leaf: UInt32) -> CPUIDEntry? { table.first { $0.function == leaf } }
        // (leaf, register, bit): popcnt, smap — host features on kvm_pvm; the logical-CPU count's low bit
        // and abm — from the table on kvm_pvm. On hardware KVM all four come from the table.
        let hostSide: [(UInt32, String, UInt8)] = [(1, "ecx", 23), (7, "ebx", 20)]
        let tableSide: [(UInt32, String, UInt8)] = [(1, "ebx", 16), (0x8000_0001, "ecx", 5)]
        var pvmPattern = true, hardwarePattern = true
        for (leaf, register, b) in hostSide + tableSide {
            let seen = try guestBit(leaf, register: register, bit: b)
            let fromTable = bit(given(leaf), register, b)
            let fromHost = bit(HostCPUID.query(leaf), register, b)
            let isHostSide = hostSide.contains { $0 == (leaf, register, b) }
            let what = "leaf 0x\(hex(leaf)) \(register) bit \(b): guest \(seen), table \(fromTable), host \(fromHost)"
            switch machine.backend {
            case .pvm:
                #expect(seen == (isHostSide ? fromHost : fromTable), "\(what): on kvm_pvm the \(isHostSide ? "host's" : "table's") bit")
            case .intel, .amd:
                #expect(seen == fromTable, "\(what): on hardware KVM the table's bit")
            case .unknown:
                pvmPattern = pvmPattern && seen == (isHostSide ? fromHost : fromTable)
                hardwarePattern = hardwarePattern && seen == fromTable
            }
        }
        if machine.backend == .unknown {
            // The note says: the vCPU column on hardware KVM, leaves 1 (ECX) and 7 from the host on kvm_pvm. An
            // unknown backend must show one of the two, whole.
            #expect(pvmPattern || hardwarePattern, "the guest sees neither the table nor kvm_pvm's mix")
        }
    }
}

// MARK: The CLI

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ExplainCommandTests {
    @Test func explainsTheEmbeddedGuestWithoutRunningIt() {
        // Booted, triple-fault exits with 6 and loop never ends; explained, both return 0 at once.
        for guest in ["hello", "triple-fault", "loop"] {
            let r = ProcessRunner.run(swiftlet, ["explain", "--guest", guest])
            #expect(r.status == 0, "\(guest): \(r.stderr)")
            #expect(r.stdout.contains("embedded guest '\(guest)': multiboot ELF, direct boot"))
            #expect(r.stdout.contains("EAX     0x2badb002"))
            #expect(r.stdout.contains("0x08  00cf9b000000ffff  code, 32-bit"))
            #expect(!r.stdout.contains("Swiftlet tiny guest"), "the guest must not have printed anything")
        }
    }

    @Test(.enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
    func printsTheRealKernelCommandLineAndZeroPage() {
        let started = monotonicNanoseconds()
        let r = ProcessRunner.run(swiftlet, ["explain", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs,
                                             "--cmdline", "quiet", "--", "uname", "-r"])
        let seconds = Double(monotonicNanoseconds() - started) / 1e9
        #expect(r.status == 0, "\(r.stderr)")
        let profile = ExpectedBackendProfile.parameters(KVMSystem.backend())
        let expected = (["console=ttyS0", "reboot=k", "panic=-1", "pci=off"] + profile + ["quiet"]).joined(separator: " ")
        #expect(r.stdout.contains("\n  \(expected)\n"), "\(r.stdout)")
        #expect(r.stdout.contains("/swiftlet/argv"), "the init command and where it travels: \(r.stdout)")
        #expect(r.stdout.contains("cmd_line_ptr       0x4000"))
        #expect(r.stdout.contains("e820 table in the zero page"))
        #expect(r.stdout.contains("RSI     0x2000"))
        #expect(r.stdout.contains("maps virtual [0x0, 0x100000000) → physical [0x0, 0x100000000): identity, 2 MiB pages"))
        #expect(!r.stdout.contains("Linux version"), "no kernel ran")
        // A boot of this kernel takes minutes here; building and explaining takes well under a second.
        #expect(seconds < 30, "explain took \(seconds) s")
    }

    /// Every bad value of an option explain takes fails as boot fails (options that need a run, such as
    /// --timeout, are refused by explain itself: CommandLineConventionTests).
    @Test(arguments: BadInputTests.cases.filter { BootOptions.definition(named: $0.0[1].split(separator: "=")[0].description, for: "explain") != nil })
    func badInputFailsExactlyAsBootDoes(arguments: [String], status: Int32, phrase: String) {
        let explain = ProcessRunner.run(swiftlet, ["explain"] + arguments.dropFirst())
        #expect(explain.status == status, "\(arguments): \(explain.stderr)")
        #expect(explain.stderr.contains(phrase), "\(arguments): \(explain.stderr)")
        #expect(explain.stderr.split(separator: "\n").count == 1, "one line: \(explain.stderr)")
        #expect(explain.stdout.isEmpty)
    }

    @Test func helpListsTheBootOptions() {
        let r = ProcessRunner.run(swiftlet, ["explain", "--help"])
        #expect(r.status == 0)
        for option in ["--kernel", "--guest", "--memory", "--cpus", "--initrd", "--cmdline", "--no-backend-profile", "--boot"] {
            #expect(r.stdout.contains(option), "\(option)")
        }
    }
}

/// Monotonic nanoseconds, for the one timing bound above.
func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}
