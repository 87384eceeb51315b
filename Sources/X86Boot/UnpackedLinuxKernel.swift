// UnpackedLinuxKernel: a bzImage whose compressed payload was unpacked on the host (LZ4.swift), entered
// through the 64-bit boot protocol at the kernel's own startup_64, as the bzImage's decompressor would after
// unpacking it (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"; arch/x86/boot/compressed/head_64.S
// jumps there with RSI = boot_params in long mode on identity-mapped page tables).
//
// The payload is the kernel's ELF (vmlinux, stripped): its PT_LOAD segments go to their physical addresses,
// the zero page is the bzImage's own (its setup header, our fields, the e820 table), and the entry is the
// ELF's e_entry (phys_startup_64). Unlike the PVH entry, this path has a zero page, and so setup_data: the
// VMM hands the kernel a SETUP_RNG_SEED entry (type 9, 32 bytes from getrandom(2)), which a kernel that trusts
// its boot loader (RANDOM_TRUST_BOOTLOADER or random.trust_bootloader=on) credits at once. Without a seed, a
// kernel with no RDRAND starts with an empty entropy pool and re-extracts it (BLAKE2s) on every random-number
// request until enough interrupts have been mixed in: about 1.4 s of emulated code per boot on kvm_pvm.
import GuestMemory

public struct UnpackedLinuxKernel: Sendable {
    /// setup_data.type for a random seed (arch/x86/include/uapi/asm/bootparam.h).
    public static let setupRNGSeed: UInt32 = 9
    /// The seed's length: 256 bits, what the kernel's pool needs to be ready.
    public static let seedLength = 32
    /// struct setup_data: next (u64), type (u32), len (u32), then the data.
    static let setupDataHeaderSize = 16
    /// boot_params.hdr.setup_data: the physical address of the first setup_data entry (protocol 2.09+).
    static let setupDataField = 0x250

    public let setup: LinuxBzImage
    public let elf: ELFImage
    public let bytes: [UInt8]
    public var entry: GuestAddress { GuestAddress(elf.entry) }

    /// `setup` is the bzImage the ELF `kernel` came from.
    public init(setup: LinuxBzImage, kernel: [UInt8]) throws(LinuxBootError) {
        let elf: ELFImage
        do { elf = try ELFImage(kernel) } catch { throw .elf(error) }
        guard elf.is64Bit else { throw .payload("the unpacked kernel is a 32-bit ELF; the 64-bit boot protocol needs an x86-64 kernel") }
        self.setup = setup
        self.elf = elf
        self.bytes = kernel
    }

    /// Loads the segments, the command line, the initrd, the zero page and (with `randomSeed`) a
    /// SETUP_RNG_SEED entry; returns what went where. Nothing is written unless everything fits. Page tables
    /// and the GDT are separate steps, as for a bzImage.
    public func load(into memory: GuestMemory, commandLine: String, initrd: [UInt8] = [], memoryMap: [E820.Entry]? = nil,
                     acpiRSDP: GuestAddress? = nil, randomSeed: [UInt8]? = nil) throws(LinuxBootError) -> LinuxBootLayout {
        let map = memoryMap ?? E820.map(for: memory)
        let commandLineBytes = Array(commandLine.utf8)
        let limit = min(Int(setup.commandLineSize), Int(X86Layout.commandLineEnd.rawValue - X86Layout.commandLine.rawValue) - 1)
        guard commandLineBytes.count <= limit else {
            throw .commandLineTooLong(length: commandLineBytes.count, limit: limit, limitSource: "this kernel's cmdline_size")
        }
        guard map.count <= E820.maximumZeroPageEntries else { throw .tooManyMemoryMapEntries(map.count) }
        let (segments, kernelEnd) = try PVHKernel.planSegments(elf: elf, entry: entry, memoryMap: map)
        var initrdRange: AddressRange?
        if !initrd.isEmpty {
            let ceiling = min(UInt64(setup.initrdAddressMax) + 1, E820.lowRAMEnd(map))
            guard let base = InitrdPlacement.highest(size: UInt64(initrd.count), floor: kernelEnd, ceiling: ceiling) else {
                throw .initrdTooLarge(size: UInt64(initrd.count), kernelEnd: kernelEnd, ceiling: ceiling)
            }
            initrdRange = AddressRange(base: GuestAddress(base), length: UInt64(initrd.count))
        }
        var page = setup.zeroPage(commandLine: X86Layout.commandLine, initrd: initrdRange, memoryMap: map, acpiRSDP: acpiRSDP)
        var seedEntry: [UInt8] = []
        if let randomSeed, !randomSeed.isEmpty {
            seedEntry = Self.setupDataEntry(type: Self.setupRNGSeed, data: randomSeed)
            guard seedEntry.count <= Int(X86Layout.setupDataEnd.rawValue - X86Layout.setupData.rawValue) else {
                throw .payload("the setup_data seed does not fit in Swiftlet's setup_data area")
            }
            for i in 0..<8 { page[Self.setupDataField + i] = UInt8(truncatingIfNeeded: X86Layout.setupData.rawValue >> (8 * UInt64(i))) }
        }
        var placements: [BootPlacement]
        do {
            placements = try PVHKernel.writeSegments(elf: elf, bytes: bytes, into: memory, entry: entry, entryName: "startup_64 (64-bit boot protocol entry)")
            try memory.write(bytes: commandLineBytes + [0], at: X86Layout.commandLine)
            if let initrdRange { try memory.write(bytes: initrd, at: initrdRange.base) }
            try memory.write(bytes: page, at: X86Layout.zeroPage)
            if !seedEntry.isEmpty { try memory.write(bytes: seedEntry, at: X86Layout.setupData) }
        } catch { throw .memory(error) }
        placements.append(BootPlacement("zero page (struct boot_params from the bzImage's setup header, e820 table of \(map.count) entries\(seedEntry.isEmpty ? "" : ", setup_data → \(X86Layout.setupData)")); RSI at entry",
                                        base: X86Layout.zeroPage, length: UInt64(LinuxBzImage.zeroPageSize)))
        placements.append(BootPlacement("kernel command line (\(commandLineBytes.count) bytes + NUL, cmdline_size \(setup.commandLineSize))",
                                        base: X86Layout.commandLine, length: UInt64(commandLineBytes.count + 1)))
        if !seedEntry.isEmpty {
            placements.append(BootPlacement("setup_data: SETUP_RNG_SEED, \(randomSeed?.count ?? 0) random bytes (the kernel credits them and wipes them)",
                                            base: X86Layout.setupData, length: UInt64(seedEntry.count)))
        }
        if let initrdRange { placements.append(BootPlacement("initrd (\(initrd.count) bytes; initrd_addr_max 0x\(hex(setup.initrdAddressMax)))", initrdRange)) }
        return LinuxBootLayout(entry: entry, zeroPage: X86Layout.zeroPage, commandLine: X86Layout.commandLine,
                               kernel: segments.first!, kernelEnd: kernelEnd, initrd: initrdRange, memoryMap: map,
                               placements: placements.sorted { $0.range.base < $1.range.base })
    }

    /// One struct setup_data: next = 0 (the last entry), type, len, data.
    static func setupDataEntry(type: UInt32, data: [UInt8]) -> [UInt8] {
        var entry = [UInt8](repeating: 0, count: setupDataHeaderSize)
        for i in 0..<4 {
            entry[8 + i] = UInt8(truncatingIfNeeded: type >> (8 * UInt32(i)))
            entry[12 + i] = UInt8(truncatingIfNeeded: UInt32(data.count) >> (8 * UInt32(i)))
        }
        return entry + data
    }
}
