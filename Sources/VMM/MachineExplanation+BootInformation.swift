// MachineExplanation+BootInformation: decoding, from guest memory, the block a boot protocol hands the
// kernel — the zero page (struct boot_params; Linux Documentation/arch/x86/boot.rst "Details of header
// fields" and zero-page.rst), hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h) or the
// multiboot information structure (Multiboot 0.6.96 §3.3) — and the memory map inside it. The decoder
// reads only what the guest can read: a wrong pointer in the block shows up here as a wrong value.
import GuestMemory
import X86Boot

extension MachineExplanation {
    /// How one field is read and explained.
    struct FieldSpec {
        var offset: Int
        var name: String
        var width: Int
        var meaning: (UInt64) -> String
        init(_ offset: Int, _ name: String, _ width: Int, _ meaning: @escaping (UInt64) -> String = { _ in "" }) {
            self.offset = offset; self.name = name; self.width = width; self.meaning = meaning
        }
    }

    static func readFields(_ specs: [FieldSpec], memory: GuestMemory, base: GuestAddress) throws(GuestMemoryError) -> [Field] {
        var fields: [Field] = []
        for spec in specs {
            let at = GuestAddress(base.rawValue + UInt64(spec.offset))
            let value: UInt64
            switch spec.width {
            case 1: value = UInt64(try memory.read(UInt8.self, at: at))
            case 2: value = UInt64(try memory.read(UInt16.self, at: at))
            case 4: value = UInt64(try memory.read(UInt32.self, at: at))
            default: value = try memory.read(UInt64.self, at: at)
            }
            fields.append(Field(offset: spec.offset, name: spec.name, value: value, width: spec.width, meaning: spec.meaning(value)))
        }
        return fields
    }

    /// Names of the set bits of `value`, from a table of (bit, name).
    static func flagNames(_ value: UInt64, _ names: [(Int, String)]) -> String {
        let set = names.filter { value & (1 << UInt64($0.0)) != 0 }.map(\.1)
        let known = names.reduce(UInt64(0)) { $0 | 1 << UInt64($1.0) }
        let unknown = value & ~known
        return (set + (unknown != 0 ? ["other bits 0x\(hex(unknown))"] : [])).joined(separator: " ")
    }

    /// A NUL-terminated string at `address`, at most `limit` bytes.
    static func cString(_ memory: GuestMemory, at address: GuestAddress, limit: Int = 8192) throws(GuestMemoryError) -> String {
        var bytes: [UInt8] = []
        var next = address.rawValue
        while bytes.count < limit {
            let chunk = try memory.readBytes(at: GuestAddress(next), count: 1)
            if chunk[0] == 0 { break }
            bytes.append(chunk[0])
            next += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func sizeText(_ bytes: UInt64) -> String {
        if bytes >= 1 << 30, bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }

    // MARK: Linux zero page

    static func zeroPage(memory: GuestMemory, at base: GuestAddress) throws(GuestMemoryError) -> (BootInformation, MemoryMap) {
        let loadflags: [(Int, String)] = [(0, "LOADED_HIGH"), (1, "KASLR_FLAG"), (5, "QUIET_FLAG"), (6, "KEEP_SEGMENTS"), (7, "CAN_USE_HEAP")]
        let xloadflags: [(Int, String)] = [(0, "XLF_KERNEL_64"), (1, "XLF_CAN_BE_LOADED_ABOVE_4G"), (2, "XLF_EFI_HANDOVER_32"),
                                           (3, "XLF_EFI_HANDOVER_64"), (4, "XLF_EFI_KEXEC"), (5, "XLF_5LEVEL"), (6, "XLF_5LEVEL_ENABLED")]
        let specs: [FieldSpec] = [
            FieldSpec(0x070, "acpi_rsdp_addr", 8) { $0 == 0 ? "0: the kernel scans 0xe0000-0xfffff for the ACPI RSDP (or reads the MP table)" : "0x\(hex($0)): the ACPI RSDP (read by protocol 2.14+ kernels)" },
            FieldSpec(0x1E8, "e820_entries", 1) { "\($0) entries in e820_table at +0x2d0" },
            FieldSpec(0x1F1, "setup_sects", 1) { "\($0) sectors of real-mode setup code in the file (not loaded: the 64-bit protocol skips it)" },
            FieldSpec(0x1FE, "boot_flag", 2) { $0 == 0xAA55 ? "0xaa55: the boot-sector signature" : "not 0xaa55" },
            FieldSpec(0x202, "header", 4) { $0 == 0x5372_6448 ? "\"HdrS\": a setup header follows" : "no \"HdrS\"" },
            FieldSpec(0x206, "version", 2) { "boot protocol \($0 >> 8).\($0 & 0xFF)" },
            FieldSpec(0x210, "type_of_loader", 1) { $0 == 0xFF ? "0xff: a loader without an assigned id (written by Swiftlet)" : "loader id 0x\(hex($0))" },
            FieldSpec(0x211, "loadflags", 1) { flagNames($0, loadflags) },
            FieldSpec(0x214, "code32_start", 4) { "0x\(hex($0)): where the protected-mode kernel was loaded" },
            FieldSpec(0x218, "ramdisk_image", 4) { $0 == 0 ? "no initrd" : "0x\(hex($0)): the initrd" },
            FieldSpec(0x21C, "ramdisk_size", 4) { $0 == 0 ? "" : "\($0) bytes" },
            FieldSpec(0x224, "heap_end_ptr", 2) { "0x\(hex($0)): end of the setup heap (set because of CAN_USE_HEAP)" },
            FieldSpec(0x228, "cmd_line_ptr", 4) { "0x\(hex($0)): the kernel command line" },
            FieldSpec(0x22C, "initrd_addr_max", 4) { "0x\(hex($0)): the highest address the initrd may occupy" },
            FieldSpec(0x230, "kernel_alignment", 4) { "\(sizeText($0))" },
            FieldSpec(0x234, "relocatable_kernel", 1) { $0 != 0 ? "yes: it may run at any kernel_alignment boundary" : "no" },
            FieldSpec(0x236, "xloadflags", 2) { flagNames($0, xloadflags) },
            FieldSpec(0x238, "cmdline_size", 4) { "the longest command line this kernel keeps: \($0) bytes" },
            FieldSpec(0x250, "setup_data", 8) { $0 == 0 ? "none" : "0x\(hex($0)): a list of setup_data blocks (Swiftlet's: one SETUP_RNG_SEED, 32 random bytes, for a kernel it unpacked on the host)" },
            FieldSpec(0x258, "pref_address", 8) { "0x\(hex($0)): where it runs if not relocated" },
            FieldSpec(0x260, "init_size", 4) { "\(sizeText($0)) needed from the run address while it decompresses" },
        ]
        let fields = try readFields(specs, memory: memory, base: base)
        let extRamdisk = try memory.read(UInt32.self, at: GuestAddress(base.rawValue + 0x0C0))
        let extRamdiskSize = try memory.read(UInt32.self, at: GuestAddress(base.rawValue + 0x0C4))
        let ramdisk = UInt64(extRamdisk) << 32 | (fields.first { $0.name == "ramdisk_image" }?.value ?? 0)
        let ramdiskSize = UInt64(extRamdiskSize) << 32 | (fields.first { $0.name == "ramdisk_size" }?.value ?? 0)
        var modules: [AddressRange] = []
        if let range = AddressRange(base: GuestAddress(ramdisk), length: ramdiskSize), ramdisk != 0 { modules.append(range) }

        let count = Int(fields.first { $0.name == "e820_entries" }?.value ?? 0)
        var entries: [MemoryMapEntry] = []
        for i in 0..<min(count, E820.maximumZeroPageEntries) {
            let at = base.rawValue + 0x2D0 + UInt64(i * E820.entrySize)
            entries.append(MemoryMapEntry(base: try memory.read(UInt64.self, at: GuestAddress(at)),
                                          length: try memory.read(UInt64.self, at: GuestAddress(at + 8)),
                                          type: try memory.read(UInt32.self, at: GuestAddress(at + 16))))
        }
        let info = BootInformation(title: "zero page (struct boot_params)", address: base, register: "RSI",
                                   specification: "Linux Documentation/arch/x86/boot.rst and zero-page.rst",
                                   fields: fields, modules: modules)
        return (info, MemoryMap(source: "e820 table in the zero page (boot_params.e820_table at 0x\(hex(base.rawValue + 0x2D0)))", entries: entries))
    }

    // MARK: PVH hvm_start_info

    static func hvmStartInfo(memory: GuestMemory, at base: GuestAddress) throws(GuestMemoryError) -> (BootInformation, MemoryMap) {
        let specs: [FieldSpec] = [
            FieldSpec(0, "magic", 4) { $0 == UInt64(HVMStartInfo.magic) ? "\"xEn3\" with bit 7 of the E set: XEN_HVM_START_MAGIC_VALUE" : "wrong magic" },
            FieldSpec(4, "version", 4) { $0 >= 1 ? "\($0): memmap_paddr and memmap_entries are valid" : "\($0)" },
            FieldSpec(8, "flags", 4) { $0 == 0 ? "none" : "0x\(hex($0))" },
            FieldSpec(12, "nr_modules", 4) { $0 == 0 ? "no initrd" : "\($0) (module 0 is the initrd)" },
            FieldSpec(16, "modlist_paddr", 8) { $0 == 0 ? "" : "0x\(hex($0)): struct hvm_modlist_entry[nr_modules]" },
            FieldSpec(24, "cmdline_paddr", 8) { "0x\(hex($0)): the kernel command line" },
            FieldSpec(32, "rsdp_paddr", 8) { $0 == 0 ? "0: no ACPI; the kernel finds its CPUs and IOAPIC in the MP table at 0xf0000" : "0x\(hex($0)): the ACPI RSDP (→ XSDT → FADT, MADT)" },
            FieldSpec(40, "memmap_paddr", 8) { "0x\(hex($0)): struct hvm_memmap_table_entry[memmap_entries]" },
            FieldSpec(48, "memmap_entries", 4) { "\($0) entries" },
        ]
        let fields = try readFields(specs, memory: memory, base: base)
        func value(_ name: String) -> UInt64 { fields.first { $0.name == name }?.value ?? 0 }
        var modules: [AddressRange] = []
        for i in 0..<min(value("nr_modules"), 16) {
            let at = value("modlist_paddr") + i * UInt64(HVMStartInfo.moduleEntrySize)
            let paddr = try memory.read(UInt64.self, at: GuestAddress(at))
            let size = try memory.read(UInt64.self, at: GuestAddress(at + 8))
            if let range = AddressRange(base: GuestAddress(paddr), length: size) { modules.append(range) }
        }
        var entries: [MemoryMapEntry] = []
        for i in 0..<min(value("memmap_entries"), 128) {
            let at = value("memmap_paddr") + i * UInt64(HVMStartInfo.memoryMapEntrySize)
            entries.append(MemoryMapEntry(base: try memory.read(UInt64.self, at: GuestAddress(at)),
                                          length: try memory.read(UInt64.self, at: GuestAddress(at + 8)),
                                          type: try memory.read(UInt32.self, at: GuestAddress(at + 16))))
        }
        let info = BootInformation(title: "hvm_start_info (PVH start-of-day structure, version 1)", address: base, register: "EBX",
                                   specification: "xen/include/public/arch-x86/hvm/start_info.h", fields: fields, modules: modules)
        return (info, MemoryMap(source: "PVH memory map (hvm_start_info.memmap_paddr = 0x\(hex(value("memmap_paddr"))); the same type numbers as e820)", entries: entries))
    }

    // MARK: Multiboot information

    static func multibootInformation(memory: GuestMemory, at base: GuestAddress) throws(GuestMemoryError) -> (BootInformation, MemoryMap) {
        let flagTable: [(Int, String)] = [(0, "mem"), (1, "boot_device"), (2, "cmdline"), (3, "mods"), (4, "aout_syms"), (5, "elf_shdr"),
                                          (6, "mmap"), (7, "drives"), (8, "config_table"), (9, "boot_loader_name"), (10, "apm_table"),
                                          (11, "vbe"), (12, "framebuffer")]
        let specs: [FieldSpec] = [
            FieldSpec(0, "flags", 4) { "valid: " + flagNames($0, flagTable) },
            FieldSpec(4, "mem_lower", 4) { "\($0) KiB of conventional memory from address 0" },
            FieldSpec(8, "mem_upper", 4) { "\($0) KiB of memory from 1 MiB on" },
            FieldSpec(16, "cmdline", 4) { "0x\(hex($0)): the command line" },
            FieldSpec(20, "mods_count", 4) { "\($0) module\($0 == 1 ? "" : "s") (--initrd, then each --module)" },
            FieldSpec(24, "mods_addr", 4) { "0x\(hex($0)): the module list (each: mod_start, mod_end, string, reserved)" },
            FieldSpec(44, "mmap_length", 4) { "\($0) bytes of memory map" },
            FieldSpec(48, "mmap_addr", 4) { "0x\(hex($0)): the memory map (each entry: size, base_addr, length, type)" },
            FieldSpec(64, "boot_loader_name", 4) { "0x\(hex($0))" },
        ]
        var fields = try readFields(specs, memory: memory, base: base)
        if let i = fields.firstIndex(where: { $0.name == "boot_loader_name" }), fields[i].value != 0 {
            fields[i].meaning += ": \"\(try cString(memory, at: GuestAddress(fields[i].value), limit: 64))\""
        }
        func value(_ name: String) -> UInt64 { fields.first { $0.name == name }?.value ?? 0 }
        var entries: [MemoryMapEntry] = []
        var offset: UInt64 = 0
        while offset + 24 <= value("mmap_length"), entries.count < 128 {
            let at = value("mmap_addr") + offset
            let size = UInt64(try memory.read(UInt32.self, at: GuestAddress(at)))
            entries.append(MemoryMapEntry(base: try memory.read(UInt64.self, at: GuestAddress(at + 4)),
                                          length: try memory.read(UInt64.self, at: GuestAddress(at + 12)),
                                          type: try memory.read(UInt32.self, at: GuestAddress(at + 20))))
            offset += size + 4
        }
        var modules: [AddressRange] = []
        for i in 0..<min(value("mods_count"), 64) {
            let entry = GuestAddress(value("mods_addr") + 16 * i)
            let start = UInt64(try memory.read(UInt32.self, at: entry))
            let end = UInt64(try memory.read(UInt32.self, at: GuestAddress(entry.rawValue + 4)))
            if end > start, let range = AddressRange(base: GuestAddress(start), length: end - start) { modules.append(range) }
        }
        let info = BootInformation(title: "multiboot information", address: base, register: "EBX",
                                   specification: "Multiboot Specification 0.6.96 §3.3", fields: fields, modules: modules)
        return (info, MemoryMap(source: "multiboot memory map (mmap_addr = 0x\(hex(value("mmap_addr"))))", entries: entries))
    }

    /// The Multiboot2 boot information (§3.6): total_size, then one field per tag, in the order the VMM wrote them.
    static func multiboot2Information(memory: GuestMemory, at base: GuestAddress) throws(GuestMemoryError) -> (BootInformation, MemoryMap) {
        let names: [UInt32: String] = [0: "end", 1: "command line", 2: "boot loader name", 3: "module", 4: "basic memory information",
                                       6: "memory map", 14: "ACPI old RSDP (ACPI 1.0)", 15: "ACPI new RSDP (ACPI 2.0)"]
        let total = UInt64(try memory.read(UInt32.self, at: base))
        var fields = [Field(offset: 0, name: "total_size", value: total, width: 4, meaning: "\(total) bytes of tags")]
        var entries: [MemoryMapEntry] = []
        var modules: [AddressRange] = []
        var offset: UInt64 = 8
        while offset + 8 <= min(total, 8192), fields.count < 64 {
            let at = base.rawValue + offset
            let type = try memory.read(UInt32.self, at: GuestAddress(at))
            let size = UInt64(try memory.read(UInt32.self, at: GuestAddress(at + 4)))
            var meaning = "\(names[type] ?? "type \(type)"), \(size) bytes"
            switch type {
            case 1, 2: meaning += ": \"\(try cString(memory, at: GuestAddress(at + 8), limit: 128))\""
            case 3:
                let start = UInt64(try memory.read(UInt32.self, at: GuestAddress(at + 8)))
                let end = UInt64(try memory.read(UInt32.self, at: GuestAddress(at + 12)))
                meaning += ": [0x\(hex(start)), 0x\(hex(end))) \"\(try cString(memory, at: GuestAddress(at + 16), limit: 64))\""
                if end > start, let range = AddressRange(base: GuestAddress(start), length: end - start) { modules.append(range) }
            case 6:
                var e: UInt64 = 16
                while e + 24 <= size, entries.count < 128 {
                    entries.append(MemoryMapEntry(base: try memory.read(UInt64.self, at: GuestAddress(at + e)),
                                                  length: try memory.read(UInt64.self, at: GuestAddress(at + e + 8)),
                                                  type: try memory.read(UInt32.self, at: GuestAddress(at + e + 16))))
                    e += 24
                }
            default: break
            }
            // The command line's address, where `cmdline` is for Multiboot, so the command-line section finds it.
            fields.append(Field(offset: Int(offset), name: type == 1 ? "cmdline" : "tag", value: type == 1 ? at + 8 : UInt64(type), width: 8, meaning: meaning))
            if type == 0 || size < 8 { break }
            offset += (size + 7) & ~7
        }
        let info = BootInformation(title: "multiboot2 boot information", address: base, register: "EBX",
                                   specification: "Multiboot2 Specification §3.6", fields: fields, modules: modules)
        return (info, MemoryMap(source: "multiboot2 memory map tag (type 6)", entries: entries))
    }

    // MARK: The command line

    static func commandLineAddress(format: KernelFormat, information: BootInformation) -> GuestAddress {
        switch format {
        case .bzImage: GuestAddress(information.field("cmd_line_ptr")?.value ?? 0)
        case .pvh: GuestAddress(information.field("cmdline_paddr")?.value ?? 0)
        case .multiboot: GuestAddress(information.field("cmdline")?.value ?? 0)
        }
    }

    /// The command line as the kernel will read it, through the pointer in the boot information.
    static func kernelCommandLine(memory: GuestMemory, format: KernelFormat, information: BootInformation) throws(GuestMemoryError) -> String {
        let address = commandLineAddress(format: format, information: information)
        if format == .multiboot, (information.field("flags")?.value ?? 0) & UInt64(Multiboot.infoFlagCommandLine) == 0 { return "" }
        return try cString(memory, at: address)
    }
}
