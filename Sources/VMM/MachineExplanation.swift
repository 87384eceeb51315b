// MachineExplanation: what `swiftlet explain` shows, as plain values: a built machine that never ran, read
// back from the places the guest itself will read — guest memory and vCPU 0's registers — rather than
// from the loaders' own bookkeeping, so the explanation is what the kernel gets.
//
// Sections: the RAM slots (KVM_SET_USER_MEMORY_REGION), the memory map the kernel is handed (the e820 table
// in the zero page, the multiboot memory map, or the PVH memory map), vCPU 0's entry registers
// (KVM_GET_SREGS / KVM_GET_REGS), the GDT its GDTR points at, a summary of the page tables CR3 points at,
// the boot-information block (zero page, hvm_start_info or multiboot information) field by field, the MP
// table and the ACPI tables (RSDP → XSDT → FADT, MADT, DSDT) for Linux, the CPUID table given to the vCPU beside the host's own CPUID, the devices with their addresses and IRQs,
// and the kernel command line split into who added each part and why. The CLI renders it
// (Sources/swiftlet/ExplainCommand.swift); the VMM tests check it against guest memory.
//
// Specs: Linux Documentation/arch/x86/boot.rst and zero-page.rst, Xen's start_info.h (PVH), Multiboot
// 0.6.96 §3.3, Intel MP 1.4 chapter 4, ACPI 6.5 §5.2, Intel SDM Vol. 3A §3.4.5 (descriptors) and §4.5 (4-level paging).
import Devices
import GuestMemory
import KVM
import X86Boot

public struct MachineExplanation: Sendable {
    public var kernel: String
    public var format: KernelFormat
    public var bootMode: BootMode
    public var memorySize: UInt64
    public var cpus: Int
    public var backend: Backend
    public var memorySlots: [MemorySlot]
    public var memoryMap: MemoryMap
    public var entry: EntryState
    /// Nil in real mode (firmware boot): no GDT is loaded yet.
    public var gdt: DescriptorTable?
    public var pageTables: PageTableSummary
    public var bootInformation: BootInformation
    /// Firmware boot: the block at 0x500 the firmware reads ('SWFT', entry, multiboot information).
    public var firmwareHandoff: [Field]?
    public var cpuid: CPUIDComparison
    /// Linux: the MP table at 0xf0000, how the kernel finds its CPUs, the IOAPIC and the IRQ wiring.
    public var mpTable: MPTableSummary?
    /// Linux: the ACPI tables from the RSDP the boot protocol hands over, how a kernel with ACPI finds the same.
    public var acpi: ACPISummary?
    public var devices: [Device]
    public var commandLine: CommandLineExplanation
    /// The recipe's own notes (`swiftlet boot -v`): what each step put where.
    public var recipe: [String]
    /// Each thread the run would start, with the seccomp allowlist it confines itself to (Confinement.swift).
    public var confinement: [ThreadAllowlist]

    public struct MemorySlot: Sendable, Equatable {
        public var slot: Int
        public var range: AddressRange
    }

    /// A memory map as the kernel reads it: where it lies and its entries.
    public struct MemoryMap: Sendable {
        /// Where the kernel finds the map, in words: "boot_params.e820_table in the zero page at 0x2000".
        public var source: String
        public var entries: [MemoryMapEntry]
    }

    public struct MemoryMapEntry: Sendable, Equatable {
        public var base: UInt64
        public var length: UInt64
        /// E820 / multiboot / hvm_memmap_table_entry type: 1 RAM, 2 reserved, 3 ACPI, 4 ACPI NVS, 5 unusable.
        public var type: UInt32
        public init(base: UInt64, length: UInt64, type: UInt32) { self.base = base; self.length = length; self.type = type }
        public var end: UInt64 { base &+ length }
        public var typeName: String {
            switch type {
            case 1: "RAM"
            case 2: "reserved"
            case 3: "ACPI data"
            case 4: "ACPI NVS"
            case 5: "unusable"
            default: "type \(type)"
            }
        }
    }

    /// One named field of a boot structure, as found in guest memory.
    public struct Field: Sendable, Equatable {
        /// Offset from the structure's start.
        public var offset: Int
        public var name: String
        public var value: UInt64
        /// Size in bytes.
        public var width: Int
        /// What the value means, decoded: "LOADED_HIGH CAN_USE_HEAP", "→ \"console=ttyS0 …\"".
        public var meaning: String
    }

    /// The zero page, hvm_start_info or multiboot information, field by field.
    public struct BootInformation: Sendable {
        /// "zero page (struct boot_params)", …
        public var title: String
        public var address: GuestAddress
        /// The register that points to it at entry: "RSI", "EBX".
        public var register: String
        public var specification: String
        public var fields: [Field]
        /// Modules (PVH: the initrd) or the initrd (bzImage): base and length.
        public var modules: [AddressRange]

        public func field(_ name: String) -> Field? { fields.first { $0.name == name } }
    }

    public struct Device: Sendable, Equatable {
        public enum Space: String, Sendable { case port = "port", mmio = "MMIO" }
        public var name: String
        public var space: Space
        public var base: UInt64
        public var length: UInt64
        /// "VMM" (each access is a VM exit the VMM's bus answers) or "KVM" (emulated in the kernel, no exit).
        public var handledBy: String
        /// "IRQ 4 (IOAPIC pin 4)", or nil when the device raises none.
        public var interrupt: String?
        public var note: String
    }
}

extension MachineExplanation {
    /// Reads the explanation out of a machine that `Machine.build` returned and that has not run.
    public init(machine: Machine) throws(VMMError) {
        let c = machine.configuration
        kernel = c.kernel.displayName
        format = machine.format
        bootMode = c.bootMode
        memorySize = c.memorySize
        cpus = c.cpus
        backend = machine.backend
        memorySlots = machine.memory.regions.enumerated().map { MemorySlot(slot: $0.offset, range: $0.element.range) }
        recipe = machine.bootNotes
        confinement = machine.threadAllowlists
        guard let vcpu = machine.vcpus.first else { throw .invalidOption("the machine has no vCPU to explain") }
        do {
            entry = EntryState(registers: try vcpu.registers(), special: try vcpu.specialRegisters(), format: format, bootMode: bootMode)
        } catch { throw .kvm(error) }
        let memory = machine.memory
        do {
            gdt = try entry.protectedMode ? DescriptorTable(memory: memory, entry: entry) : nil
            pageTables = try PageTableSummary(memory: memory, entry: entry, format: format)
            let info: (BootInformation, MemoryMap)
            switch format {
            case .bzImage: info = try Self.zeroPage(memory: memory, at: GuestAddress(entry.rsi))
            case .pvh: info = try Self.hvmStartInfo(memory: memory, at: GuestAddress(entry.rbx & 0xFFFF_FFFF))
            case .multiboot where machine.multiboot2: info = try Self.multiboot2Information(memory: memory, at: GuestAddress(UInt64(machine.multibootInfoAddress)))
            case .multiboot: info = try Self.multibootInformation(memory: memory, at: GuestAddress(UInt64(machine.multibootInfoAddress)))
            }
            (bootInformation, memoryMap) = info
            let pc = machine.configuration.machine == .pc
            mpTable = pc ? try MPTableSummary(memory: memory) : nil
            let handedOver = bootInformation.field("rsdp_paddr")?.value ?? bootInformation.field("acpi_rsdp_addr")?.value ?? 0
            acpi = pc ? try ACPISummary(memory: memory, rsdp: handedOver != 0 ? GuestAddress(handedOver) : X86Layout.acpi) : nil
            if format == .multiboot && bootMode == .firmware {
                bootInformation.register = "EBX, set by the firmware from the handoff block"
                firmwareHandoff = try Self.readFields([
                    FieldSpec(0, "magic", 4) { $0 == UInt64(X86Layout.firmwareHandoffMagic) ? "\"SWFT\": a kernel is waiting" : "no handoff" },
                    FieldSpec(4, "entry", 4) { "0x\(hex($0)): where the firmware jumps in 32-bit protected mode" },
                    FieldSpec(8, "multiboot_info", 4) { "0x\(hex($0)): what the firmware puts in EBX (EAX = 0x2badb002)" },
                ], memory: memory, base: X86Layout.firmwareHandoff)
            } else {
                firmwareHandoff = nil
            }
            commandLine = CommandLineExplanation.explain(
                final: try Self.kernelCommandLine(memory: memory, format: format, information: bootInformation),
                address: Self.commandLineAddress(format: format, information: bootInformation),
                userCommandLine: c.commandLine, initArguments: c.initArguments, isLinux: format.isLinux,
                profile: c.backendProfile ? BackendProfile.parameters(for: machine.backend) : [], backend: machine.backend)
        } catch { throw .memory(error) }
        cpuid = CPUIDComparison(given: machine.vcpu0CPUID, backend: machine.backend)
        devices = Self.devices(machine, commandLine: commandLine.final, mpTable: mpTable)
    }

    // MARK: Devices

    static func devices(_ machine: Machine, commandLine: String, mpTable: MPTableSummary?) -> [Device] {
        let irqchip = machine.hasInterruptControllers
        let pit = machine.configuration.machine == .pc
        func isa(_ irq: UInt8) -> String {
            let pin = mpTable?.pin(forISAIRQ: irq).map { "IOAPIC pin \($0)" } ?? "no IOAPIC pin in the MP table"
            return "ISA IRQ \(irq) → \(pin), PIC input \(irq)"
        }
        let virtioIRQs = CommandLineExplanation.virtioMMIODevices(in: commandLine)
        var list: [Device] = []
        for (space, bus) in [(Device.Space.port, machine.portBus), (.mmio, machine.mmioBus)] {
            for e in bus.entries {
                var interrupt: String?
                var note = ""
                if e.device is Serial8250 {
                    if irqchip {
                        interrupt = isa(4) + " (the VMM raises it with KVM_IRQ_LINE)"
                    } else {
                        note = "no interrupt controller in this machine: the guest polls the Line Status Register"
                    }
                } else if e.device is RTC {
                    note = "time of day from the host's clock, the NMI mask (port 0x70 bit 7), CMOS memory sizes; raises no IRQ 8"
                } else if space == .mmio, let irq = virtioIRQs.first(where: { $0.base == e.base })?.irq {
                    interrupt = "IRQ \(irq) (from virtio_mmio.device= on the command line)"
                }
                list.append(Device(name: e.name, space: space, base: e.base, length: e.length, handledBy: "VMM",
                                   interrupt: interrupt, note: note))
            }
        }
        if irqchip {
            // KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 put these inside the kernel: accesses never reach the VMM.
            let inKernel = "KVM"
            list += [
                Device(name: "8259 PIC (master)", space: .port, base: 0x20, length: 2, handledBy: inKernel, interrupt: nil,
                       note: "KVM_CREATE_IRQCHIP; ISA IRQs 0-7, output to LAPIC LINT0 (ExtINT)"),
                Device(name: "8259 PIC (slave)", space: .port, base: 0xA0, length: 2, handledBy: inKernel, interrupt: nil,
                       note: "ISA IRQs 8-15, cascaded on IRQ 2"),
                Device(name: "8259 ELCR", space: .port, base: 0x4D0, length: 2, handledBy: inKernel, interrupt: nil,
                       note: "edge/level control of the PIC inputs"),
                Device(name: "IOAPIC", space: .mmio, base: X86Layout.ioAPIC.rawValue, length: 0x100, handledBy: inKernel, interrupt: nil,
                       note: "24 input pins; the MP table and the ACPI MADT tell the kernel which ISA IRQ arrives on which pin"),
                Device(name: "local APIC (one per vCPU)", space: .mmio, base: X86Layout.localAPIC.rawValue, length: 0x1000,
                       handledBy: inKernel, interrupt: nil, note: "timer, IPIs; LINT0 ExtINT, LINT1 NMI"),
            ]
            if pit {
                list.append(Device(name: "i8254 PIT", space: .port, base: 0x40, length: 4, handledBy: inKernel, interrupt: isa(0),
                                   note: "KVM_CREATE_PIT2; the timer Linux calibrates against"))
            }
        }
        return list.sorted { ($0.space == .port ? 0 : 1, $0.base) < ($1.space == .port ? 0 : 1, $1.base) }
    }
}

// MARK: vCPU 0's registers at entry

extension MachineExplanation {
    public struct SegmentRegister: Sendable, Equatable {
        public var name: String
        public var selector: UInt16
        public var base: UInt64
        public var limit: UInt32
        public var long: Bool
        public var defaultBig: Bool
        public var privilegeLevel: UInt8

        init(_ name: String, _ s: Segment) {
            self.name = name
            selector = s.selector; base = s.base; limit = s.limit
            long = s.l != 0; defaultBig = s.db != 0; privilegeLevel = s.dpl
        }
    }

    /// A register the boot protocol gives a meaning: RIP the entry, RSI the zero page, …
    public struct Role: Sendable, Equatable {
        public var register: String
        public var value: UInt64
        public var meaning: String
        init(_ register: String, _ value: UInt64, _ meaning: String) { self.register = register; self.value = value; self.meaning = meaning }
    }

    /// vCPU 0 as KVM holds it before the first KVM_RUN.
    public struct EntryState: Sendable {
        public var rip: UInt64, rax: UInt64, rbx: UInt64, rsi: UInt64, rsp: UInt64, rflags: UInt64
        public var cr0: UInt64, cr3: UInt64, cr4: UInt64, efer: UInt64
        public var segments: [SegmentRegister]
        public var gdtBase: UInt64, gdtLimit: UInt16
        public var idtBase: UInt64, idtLimit: UInt16
        /// "64-bit long mode, paging on", …
        public var mode: String
        /// What RIP points at, and what the other registers hold, for this boot protocol.
        public var roles: [Role]

        public var protectedMode: Bool { cr0 & 1 != 0 }
        public var paging: Bool { cr0 & (1 << 31) != 0 }
        public var longMode: Bool { efer & (1 << 10) != 0 }
        public func segment(_ name: String) -> SegmentRegister? { segments.first { $0.name == name } }

        init(registers r: Registers, special s: SpecialRegisters, format: KernelFormat, bootMode: BootMode) {
            rip = r.rip; rax = r.rax; rbx = r.rbx; rsi = r.rsi; rsp = r.rsp; rflags = r.rflags
            cr0 = s.cr0; cr3 = s.cr3; cr4 = s.cr4; efer = s.efer
            segments = [SegmentRegister("CS", s.cs), SegmentRegister("DS", s.ds), SegmentRegister("ES", s.es),
                        SegmentRegister("FS", s.fs), SegmentRegister("GS", s.gs), SegmentRegister("SS", s.ss),
                        SegmentRegister("TR", s.tr)]
            gdtBase = s.gdt.base; gdtLimit = s.gdt.limit
            idtBase = s.idt.base; idtLimit = s.idt.limit
            let pe = s.cr0 & 1 != 0, pg = s.cr0 & (1 << 31) != 0, lma = s.efer & (1 << 10) != 0
            mode = !pe ? "real mode (the x86 reset state)"
                : lma ? "64-bit long mode, paging \(pg ? "on" : "off")"
                : "32-bit protected mode, paging \(pg ? "on" : "off")"
            switch (format, bootMode) {
            case (.bzImage, _):
                roles = [Role("RIP", r.rip, "startup_64: the protected-mode kernel at 1 MiB + 0x200 (boot.rst, 64-bit boot protocol)"),
                         Role("RSI", r.rsi, "the zero page (struct boot_params)")]
            case (.pvh, _):
                roles = [Role("EIP", r.rip, "the PVH entry from the ELF note XEN_ELFNOTE_PHYS32_ENTRY (pvh_start_xen)"),
                         Role("EBX", r.rbx, "hvm_start_info")]
            case (.multiboot, .direct):
                roles = [Role("EIP", r.rip, "the ELF entry point (e_entry)"),
                         Role("EAX", r.rax, "0x2badb002: the multiboot boot loader magic (Multiboot §3.2)"),
                         Role("EBX", r.rbx, "the multiboot information structure"),
                         Role("ESP", r.rsp, "a stack below the EBDA: Multiboot §3.2 leaves ESP undefined, GRUB and QEMU leave a usable one")]
            case (.multiboot, .firmware):
                roles = [Role("CS:IP", (UInt64(s.cs.selector) << 16) | r.rip,
                          "f000:fff0 with CS base 0x\(hex(s.cs.base)): the first fetch is at 0x\(hex(s.cs.base &+ r.rip)), the reset vector in Swiftlet's firmware ROM")]
            }
        }
    }
}

// MARK: The GDT

extension MachineExplanation {
    public struct Descriptor: Sendable, Equatable {
        public var selector: UInt16
        /// The 8 bytes as they sit in guest memory (little-endian u64).
        public var raw: UInt64
        public var decoded: SegmentDescriptor
        /// "code, 64-bit, execute/read, base 0, limit 4 GiB, DPL 0".
        public var meaning: String
        /// Segment registers whose selector points here: "CS", "DS ES FS GS SS".
        public var loadedIn: [String]
    }

    public struct DescriptorTable: Sendable {
        public var base: GuestAddress
        public var limit: UInt16
        public var entries: [Descriptor]

        init(memory: GuestMemory, entry: EntryState) throws(GuestMemoryError) {
            base = GuestAddress(entry.gdtBase)
            limit = entry.gdtLimit
            let count = (Int(entry.gdtLimit) + 1) / 8
            var entries: [Descriptor] = []
            for index in 0..<count {
                let raw = try memory.read(UInt64.self, at: GuestAddress(entry.gdtBase + UInt64(index * 8)))
                let selector = UInt16(index * 8)
                let d = SegmentDescriptor(encoded: raw)
                let users = entry.segments.filter { ($0.selector & ~7) == selector && selector != 0 }.map(\.name)
                entries.append(Descriptor(selector: selector, raw: raw, decoded: d, meaning: Self.describe(d, raw: raw), loadedIn: users))
            }
            self.entries = entries
        }

        static func describe(_ d: SegmentDescriptor, raw: UInt64) -> String {
            if raw == 0 { return "null descriptor (selector 0 must never be used)" }
            if !d.present { return "not present" }
            let limit = d.byteLimit == 0xFFFF_FFFF ? "limit 4 GiB" : "limit 0x\(hex(d.byteLimit))"
            let common = "base 0x\(hex(d.base)), \(limit), DPL \(d.privilegeLevel)"
            if !d.codeOrData {
                switch d.type {
                case 0x9: return "TSS (32/64-bit, available), \(common)"
                case 0xB: return "TSS (32/64-bit, busy), \(common)"
                case 0x2: return "LDT, \(common)"
                default: return "system descriptor type 0x\(hex(d.type)), \(common)"
                }
            }
            if d.type & 0x8 != 0 {
                let bits = d.long ? "64-bit" : d.defaultBig ? "32-bit" : "16-bit"
                return "code, \(bits), execute\(d.type & 0x2 != 0 ? "/read" : " only"), \(common)"
            }
            return "data, read\(d.type & 0x2 != 0 ? "/write" : " only"), \(common)"
        }
    }
}
