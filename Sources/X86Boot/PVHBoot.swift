// PVHBoot: booting an uncompressed ELF vmlinux at its PVH entry, the direct-boot path Firecracker, QEMU
// and cloud-hypervisor use. Implements: finding the entry in the ELF notes (xen/include/public/elfnote.h,
// XEN_ELFNOTE_PHYS32_ENTRY = 18, owner "Xen"; Linux emits it from arch/x86/platform/pvh/head.S when
// CONFIG_PVH=y), loading the PT_LOAD segments at their physical addresses (p_paddr), and encoding the
// start-of-day structure of xen/include/public/arch-x86/hvm/start_info.h (struct hvm_start_info version 1,
// hvm_modlist_entry for the initrd, hvm_memmap_table_entry for the e820 map).
//
// Machine state at the entry (start_info.h, "the domain builder shall load the kernel... and jump to the
// entry point"): 32-bit protected mode, paging off; EBX = guest-physical address of hvm_start_info;
// CR0.PE set and every other writeable CR0 bit clear; CR4 = 0; CS a flat 32-bit execute/read segment,
// DS/ES/SS flat 32-bit read/write segments (base 0, limit 4 GiB; selectors unspecified); TR a 32-bit
// TSS with base 0 and limit 0x67; EFLAGS.IF/TF/VM clear. The VMM sets these registers from
// BootEntryState.pvh(entry:startInfo:), with the BootGDT at X86Layout.gdt; the kernel builds its own GDT,
// stack and page tables.
//
// Layout: hvm_start_info, the module list and the memory map share the page at X86Layout.pvhStartInfo;
// the command line goes to X86Layout.commandLine; the initrd as high as possible, page-aligned, above the
// kernel and below min(2 GiB, end of RAM below 4 GiB) — 2 GiB being the initrd_addr_max (0x7fffffff)
// x86 Linux declares in its bzImage header, which a vmlinux has no header to state.
import GuestMemory

public struct PVHKernel: Sendable {
    /// The ELF note owner that carries the entry.
    public static let noteOwner = "Xen"
    /// XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical entry point.
    public static let phys32EntryNoteType: UInt32 = 18
    /// Longest command line Linux keeps on x86: COMMAND_LINE_SIZE (2048) - 1. A vmlinux does not say,
    /// so Swiftlet holds every PVH kernel to this rather than let the kernel cut the line short silently.
    public static let commandLineLimit = 2047
    /// Where the initrd must end by: Linux's x86 initrd_addr_max + 1.
    public static let initrdCeiling: UInt64 = 0x8000_0000

    public let elf: ELFImage
    /// The whole file (shared, not copied).
    public let bytes: [UInt8]
    /// The PVH entry (pvh_start_xen), a 32-bit physical address.
    public let entry: GuestAddress

    /// Parses `bytes` as an ELF executable with a PVH note.
    public init(_ bytes: [UInt8]) throws(LinuxBootError) {
        let elf: ELFImage
        do { elf = try ELFImage(bytes) } catch { throw .elf(error) }
        guard let entry = try Self.findEntry(elf: elf, bytes: bytes) else { throw .noPVHNote }
        self.elf = elf
        self.bytes = bytes
        self.entry = GuestAddress(UInt64(entry))
    }

    /// The XEN_ELFNOTE_PHYS32_ENTRY value from the PT_NOTE segments, or nil when there is none.
    /// Note layout (System V ABI "Note Section"): namesz, descsz, type (u32 each), then the name and the
    /// descriptor, each padded to 4 bytes. Linux writes the entry as a pointer-sized value (8 bytes on x86-64).
    public static func findEntry(elf: ELFImage, bytes: [UInt8]) throws(LinuxBootError) -> UInt32? {
        let r = ByteReader(bytes)
        for segment in elf.segments where segment.type == ELFImage.ptNote {
            var offset = Int(segment.fileOffset)
            let end = offset + Int(segment.fileSize) // ELFImage checked that the segment lies inside the file
            while end - offset >= 12 {
                let nameSize = Int(r.u32(offset)), descriptorSize = Int(r.u32(offset + 4)), type = r.u32(offset + 8)
                let nameStart = offset + 12
                guard nameSize <= end - nameStart else { break }
                let descriptorStart = nameStart + align4(nameSize)
                guard descriptorStart <= end, descriptorSize <= end - descriptorStart else { break }
                let name = bytes[nameStart..<nameStart + nameSize].prefix { $0 != 0 }
                if type == phys32EntryNoteType && name.elementsEqual(noteOwner.utf8) {
                    let value: UInt64
                    switch descriptorSize {
                    case 4: value = UInt64(r.u32(descriptorStart))
                    case 8: value = r.u64(descriptorStart)
                    default: throw .badPVHNote("its value is \(descriptorSize) bytes, not 4 or 8")
                    }
                    guard value <= UInt64(UInt32.max) else {
                        throw .badPVHNote("the entry 0x\(hex(value)) is above 4 GiB, out of reach of 32-bit code")
                    }
                    return UInt32(value)
                }
                offset = descriptorStart + align4(descriptorSize)
            }
        }
        return nil
    }

    static func align4(_ n: Int) -> Int { (n + 3) & ~3 }

    /// Decides where everything goes, without writing; throws when something does not fit.
    public func plan(commandLineLength: Int, initrdSize: UInt64, memoryMap: [E820.Entry]) throws(LinuxBootError) -> PVHBootLayout {
        guard commandLineLength <= Self.commandLineLimit else {
            throw .commandLineTooLong(length: commandLineLength, limit: Self.commandLineLimit, limitSource: "Linux's COMMAND_LINE_SIZE on x86")
        }
        let ramEnd = E820.lowRAMEnd(memoryMap)
        let (segments, kernelEnd) = try Self.planSegments(elf: elf, entry: entry, memoryMap: memoryMap)

        var initrd: AddressRange?
        if initrdSize > 0 {
            let ceiling = min(Self.initrdCeiling, ramEnd)
            guard let base = InitrdPlacement.highest(size: initrdSize, floor: kernelEnd, ceiling: ceiling) else {
                throw .initrdTooLarge(size: initrdSize, kernelEnd: kernelEnd, ceiling: ceiling)
            }
            initrd = AddressRange(base: GuestAddress(base), length: initrdSize)
        }
        let startInfoSize = HVMStartInfo.size(modules: initrd == nil ? 0 : 1, memoryMapEntries: memoryMap.count)
        guard startInfoSize <= Int(X86Layout.pvhStartInfoEnd.rawValue - X86Layout.pvhStartInfo.rawValue) else {
            throw .tooManyMemoryMapEntries(memoryMap.count)
        }
        return PVHBootLayout(entry: entry, startInfo: X86Layout.pvhStartInfo, commandLine: X86Layout.commandLine,
                             segments: segments, kernelEnd: kernelEnd, initrd: initrd, memoryMap: memoryMap, placements: [])
    }

    /// Loads the segments (zeroing their BSS), the command line, the initrd and hvm_start_info, and
    /// returns what went where. Nothing is written unless everything fits.
    public func load(into memory: GuestMemory, commandLine: String, initrd: [UInt8] = [],
                     memoryMap: [E820.Entry]? = nil, acpiRSDP: GuestAddress? = nil) throws(LinuxBootError) -> PVHBootLayout {
        let map = memoryMap ?? E820.map(for: memory)
        let commandLineBytes = Array(commandLine.utf8)
        var layout = try plan(commandLineLength: commandLineBytes.count, initrdSize: UInt64(initrd.count), memoryMap: map)
        let startInfo = HVMStartInfo.encode(at: layout.startInfo, commandLine: layout.commandLine,
                                            modules: layout.initrd.map { [$0] } ?? [], memoryMap: map, rsdp: acpiRSDP)
        var placements: [BootPlacement] = []
        do {
            placements = try Self.writeSegments(elf: elf, bytes: bytes, into: memory, entry: entry, entryName: "PVH entry")
            try memory.write(bytes: commandLineBytes + [0], at: layout.commandLine)
            if let range = layout.initrd { try memory.write(bytes: initrd, at: range.base) }
            try memory.write(bytes: startInfo, at: layout.startInfo)
        } catch { throw .memory(error) }
        placements.append(BootPlacement("hvm_start_info v1 + \(layout.initrd == nil ? 0 : 1) module + memory map of \(map.count) entries\(acpiRSDP.map { ", rsdp_paddr \($0)" } ?? ""); EBX at entry",
                                        base: layout.startInfo, length: UInt64(startInfo.count)))
        placements.append(BootPlacement("kernel command line (\(commandLineBytes.count) bytes + NUL)",
                                        base: layout.commandLine, length: UInt64(commandLineBytes.count + 1)))
        if let range = layout.initrd { placements.append(BootPlacement("initrd (\(initrd.count) bytes), PVH module 0", range)) }
        layout.placements = placements.sorted { $0.range.base < $1.range.base }
        return layout
    }
}

/// Where a PVH boot put things, and the values the entry registers need.

extension PVHKernel {
    /// The PT_LOAD segments of a kernel ELF at their physical addresses (p_paddr), checked: no overflow,
    /// above the boot area below 1 MiB, inside RAM, one of them holding `entry`. Shared by the PVH entry and
    /// the 64-bit entry of a kernel unpacked on the host (UnpackedLinuxKernel).
    static func planSegments(elf: ELFImage, entry: GuestAddress, memoryMap: [E820.Entry]) throws(LinuxBootError) -> (segments: [AddressRange], kernelEnd: UInt64) {
        let ramEnd = E820.lowRAMEnd(memoryMap)
        var segments: [AddressRange] = []
        for (index, segment) in elf.segments.enumerated() where segment.type == ELFImage.ptLoad && segment.memorySize > 0 {
            let start = segment.physicalAddress
            let (end, overflow) = start.addingReportingOverflow(segment.memorySize)
            guard !overflow, let range = AddressRange(base: GuestAddress(start), length: segment.memorySize) else {
                throw .elf(.segmentOutsideMemory(index: index, start: start, end: UInt64.max, ramSize: ramEnd))
            }
            guard start >= X86Layout.highMemory.rawValue else {
                throw .segmentOverlapsBootArea(index: index, start: start, end: end)
            }
            guard E820.isRAM(memoryMap, base: start, length: segment.memorySize) else {
                throw .memoryTooSmall(needed: end, available: ramEnd, what: "vmlinux segment \(index) at 0x\(hex(start))")
            }
            segments.append(range)
        }
        guard !segments.isEmpty else { throw .elf(.noLoadableSegments) }
        guard segments.contains(where: { $0.contains(entry) }) else { throw .elf(.entryNotLoaded(entry.rawValue)) }
        return (segments, segments.map(\.end).max()!)
    }

    /// Copies the PT_LOAD segments to their physical addresses and zeroes their BSS (the segments were
    /// checked by planSegments); returns their placements.
    static func writeSegments(elf: ELFImage, bytes: [UInt8], into memory: GuestMemory, entry: GuestAddress,
                              entryName: String) throws(GuestMemoryError) -> [BootPlacement] {
        var placements: [BootPlacement] = []
        for (index, segment) in elf.segments.enumerated() where segment.type == ELFImage.ptLoad && segment.memorySize > 0 {
            let base = GuestAddress(segment.physicalAddress)
            let from = Int(segment.fileOffset)
            try memory.write(bytes: bytes[from..<from + Int(segment.fileSize)], at: base)
            if segment.memorySize > segment.fileSize {
                try memory.zero(at: GuestAddress(segment.physicalAddress + segment.fileSize), count: segment.memorySize - segment.fileSize)
            }
            let range = AddressRange(base: base, length: segment.memorySize)
            let holdsEntry = range?.contains(entry) ?? false
            placements.append(BootPlacement("vmlinux segment \(index) (p_paddr; \(segment.fileSize) bytes from the file, \(segment.memorySize - segment.fileSize) zeroed)\(holdsEntry ? "; \(entryName) \(entry)" : "")",
                                            base: base, length: segment.memorySize))
        }
        return placements
    }
}

public struct PVHBootLayout: Sendable {
    /// The 32-bit entry point (EIP).
    public var entry: GuestAddress
    /// hvm_start_info (EBX at entry).
    public var startInfo: GuestAddress
    public var commandLine: GuestAddress
    /// The loaded PT_LOAD segments, at their physical addresses.
    public var segments: [AddressRange]
    /// One past the highest loaded byte.
    public var kernelEnd: UInt64
    public var initrd: AddressRange?
    public var memoryMap: [E820.Entry]
    /// What went where, in address order, for --verbose and `explain`.
    public var placements: [BootPlacement]
}

/// struct hvm_start_info and its arrays (start_info.h), encoded as one block.
public enum HVMStartInfo {
    /// "xEn3" with the 0x80 bit of the last byte set: XEN_HVM_START_MAGIC_VALUE.
    public static let magic: UInt32 = 0x336E_C578
    /// Version 1 adds memmap_paddr and memmap_entries.
    public static let version: UInt32 = 1
    /// sizeof(struct hvm_start_info) for version 1.
    public static let headerSize = 56
    /// sizeof(struct hvm_modlist_entry): paddr, size, cmdline_paddr, reserved (u64 each).
    public static let moduleEntrySize = 32
    /// sizeof(struct hvm_memmap_table_entry): addr, size (u64), type, reserved (u32).
    public static let memoryMapEntrySize = 24
    /// The module list starts here in the block (8-byte aligned, after the header).
    static let moduleListOffset = 64

    /// Bytes the block needs.
    public static func size(modules: Int, memoryMapEntries: Int) -> Int {
        moduleListOffset + modules * moduleEntrySize + memoryMapEntries * memoryMapEntrySize
    }

    /// Layout of the block at `base`: hvm_start_info | padding to 64 | modules | memory map.
    /// Modules carry no command line (cmdline_paddr 0); rsdp_paddr is the ACPI RSDP's address, or 0 without
    /// ACPI tables (the kernel then scans for it, or uses the MP table); flags is 0.
    public static func encode(at base: GuestAddress, commandLine: GuestAddress?, modules: [AddressRange],
                              memoryMap: [E820.Entry], rsdp: GuestAddress? = nil) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: size(modules: modules.count, memoryMapEntries: memoryMap.count))
        let moduleList = base.rawValue + UInt64(moduleListOffset)
        let memmap = moduleList + UInt64(modules.count * moduleEntrySize)
        put(&block, 0, magic)
        put(&block, 4, version)
        put(&block, 8, UInt32(0))                               // flags
        put(&block, 12, UInt32(modules.count))                  // nr_modules
        put(&block, 16, modules.isEmpty ? 0 : moduleList)       // modlist_paddr
        put(&block, 24, commandLine?.rawValue ?? 0)             // cmdline_paddr
        put(&block, 32, rsdp?.rawValue ?? 0)                    // rsdp_paddr
        put(&block, 40, memoryMap.isEmpty ? 0 : memmap)         // memmap_paddr
        put(&block, 48, UInt32(memoryMap.count))                // memmap_entries
        for (i, module) in modules.enumerated() {
            let at = moduleListOffset + i * moduleEntrySize
            put(&block, at, module.base.rawValue)
            put(&block, at + 8, module.length)
        }
        for (i, entry) in memoryMap.enumerated() {
            let at = moduleListOffset + modules.count * moduleEntrySize + i * memoryMapEntrySize
            put(&block, at, entry.base.rawValue)
            put(&block, at + 8, entry.length)
            put(&block, at + 16, entry.type.rawValue)
        }
        return block
    }
}
