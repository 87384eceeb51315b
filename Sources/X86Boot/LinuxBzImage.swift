// LinuxBzImage: a Linux bzImage booted through the 64-bit boot protocol (Documentation/arch/x86/boot.rst:
// "The real-mode kernel header", "Details of header fields", "64-bit Boot Protocol") — header validation,
// placement of the protected-mode kernel, command line and initrd, and the zero page (struct boot_params,
// Documentation/arch/x86/zero-page.rst) with its e820 table.
//
// Version: Swiftlet requires boot protocol 2.12 (Linux 3.8, 2013) or later. 2.06 would be enough for
// cmdline_size and 2.10 for pref_address/init_size, but only 2.12's xloadflags can say XLF_KERNEL_64 — that
// startup_64 exists at the protected-mode start + 0x200 — and a loader that skips the real-mode setup
// must know that before jumping there.
//
// Placement: the protected-mode kernel always goes to 1 MiB (X86Layout.highMemory, code32_start's default,
// as Firecracker and kvmtool do), never to pref_address. It works for relocatable and non-relocatable
// kernels alike: startup_64 moves itself to max(align_up(load address, kernel_alignment), pref_address)
// (to pref_address when not relocatable) before decompressing into init_size bytes there, so loading at
// 1 MiB keeps the compressed image out of its own way. The memory check uses that run address + init_size.
// The command line goes to X86Layout.commandLine, the zero page to X86Layout.zeroPage, and the initrd as
// high as possible (page-aligned) below min(initrd_addr_max + 1, end of RAM below 4 GiB), above the kernel.
//
// The setup code (real-mode part) is not loaded: the 64-bit protocol never runs it. The VMM then enters
// at `entry` in long mode with RSI = the zero page (BootEntryState.linux64) and identity page tables
// (PageTables) that cover all of the above.
import GuestMemory

public struct LinuxBzImage: Sendable {
    // MARK: Constants from boot.rst

    /// Offsets of setup-header fields, the same in the file and in the zero page.
    enum Field {
        static let setupSects = 0x1F1
        static let syssize = 0x1F4
        static let bootFlag = 0x1FE
        static let jump = 0x200
        static let header = 0x202
        static let version = 0x206
        static let typeOfLoader = 0x210
        static let loadflags = 0x211
        static let code32Start = 0x214
        static let ramdiskImage = 0x218
        static let ramdiskSize = 0x21C
        static let heapEndPtr = 0x224
        static let cmdLinePtr = 0x228
        static let initrdAddrMax = 0x22C
        static let kernelAlignment = 0x230
        static let relocatableKernel = 0x234
        static let xloadflags = 0x236
        static let cmdlineSize = 0x238
        static let prefAddress = 0x258
        static let initSize = 0x260
        /// One past the last field of protocol 2.12 (handover_offset, added in 2.11).
        static let protocol212End = 0x268
        /// Where boot_params stops holding the setup header (edd_mbr_sig_buffer follows).
        static let zeroPageHeaderLimit = 0x290
    }

    /// Fields of struct boot_params outside the setup header (zero-page.rst).
    enum ZeroPageField {
        /// acpi_rsdp_addr (u64): read by kernels of boot protocol 2.14 (Linux 5.0) and later.
        static let acpiRSDPAddr = 0x070
        static let extRamdiskImage = 0x0C0
        static let extRamdiskSize = 0x0C4
        static let extCmdLinePtr = 0x0C8
        static let e820Entries = 0x1E8
        static let sentinel = 0x1EF
        static let e820Table = 0x2D0
    }

    public static let minimumProtocol: UInt16 = 0x020C
    /// The first protocol whose kernels read boot_params.acpi_rsdp_addr (boot.rst marks 2.14 "burnt" for its
    /// setup-header field, which Linux 5.0 moved to the zero page at 0x070; older kernels keep padding there).
    public static let acpiRSDPProtocol: UInt16 = 0x020E
    /// boot_flag: the old boot-sector signature.
    public static let bootFlag: UInt16 = 0xAA55
    /// "HdrS", little-endian.
    public static let headerMagic: UInt32 = 0x5372_6448
    /// loadflags bit 0: the protected-mode code loads at 0x100000.
    public static let loadedHigh: UInt8 = 0x01
    /// loadflags bit 7: heap_end_ptr is valid.
    public static let canUseHeap: UInt8 = 0x80
    /// xloadflags bit 0: a 64-bit entry point at the protected-mode start + 0x200.
    public static let xlfKernel64: UInt16 = 1 << 0
    /// startup_64's offset from the start of the protected-mode kernel (an ABI, "immutable").
    public static let startup64Offset: UInt64 = 0x200
    /// type_of_loader 0xFF: "undefined", a loader without an assigned id.
    public static let typeOfLoaderUndefined: UInt8 = 0xFF
    /// heap_end_ptr: end of the setup heap relative to the real-mode code, minus 0x200 (boot.rst's usual value).
    public static let heapEndPointer: UInt16 = 0xFE00
    public static let zeroPageSize = 4096

    // MARK: The parsed header

    /// The whole file (shared, not copied).
    public let bytes: [UInt8]
    /// Number of 512-byte setup sectors after the boot sector (a 0 in the file means 4).
    public let setupSectors: Int
    /// Boot protocol version, 0x020F for 2.15.
    public let protocolVersion: UInt16
    public let loadFlags: UInt8
    public let xLoadFlags: UInt16
    /// relocatable_kernel: the kernel may run at any kernel_alignment-aligned address.
    public let isRelocatable: Bool
    public let kernelAlignment: UInt32
    /// pref_address: where the kernel runs if not relocated (LOAD_PHYSICAL_ADDR, 16 MiB by default).
    public let preferredAddress: UInt64
    /// init_size: bytes the kernel needs from its run address while it decompresses and starts.
    public let initSize: UInt32
    /// initrd_addr_max: the highest address the initrd's last byte may occupy.
    public let initrdAddressMax: UInt32
    /// cmdline_size: longest command line accepted, without its NUL.
    public let commandLineSize: UInt32
    /// One past the setup header: 0x202 + the jump's displacement byte at 0x201 (boot.rst), at most 0x290.
    public let setupHeaderEnd: Int

    /// File offset of the protected-mode kernel.
    public var protectedModeOffset: Int { (setupSectors + 1) * 512 }
    public var protectedModeSize: Int { bytes.count - protectedModeOffset }
    /// The setup header as it sits in the file, [0x1F1, setupHeaderEnd).
    public var setupHeader: ArraySlice<UInt8> { bytes[Field.setupSects..<setupHeaderEnd] }

    /// Validates `bytes` as a bzImage Swiftlet can boot through the 64-bit protocol.
    public init(_ bytes: [UInt8]) throws(LinuxBootError) {
        let r = ByteReader(bytes)
        guard bytes.count >= Field.bootFlag + 2 else {
            throw .notBzImage("the file is \(bytes.count) bytes, shorter than a boot sector")
        }
        guard r.u16(Field.bootFlag) == Self.bootFlag else { throw .notBzImage("no boot flag 0xAA55 at offset 0x1fe") }
        guard bytes.count >= Field.version + 2 else { throw .truncated("the setup header at 0x1f1") }
        guard r.u32(Field.header) == Self.headerMagic else {
            throw .notBzImage("no \"HdrS\" setup-header magic at offset 0x202")
        }
        protocolVersion = r.u16(Field.version)
        guard protocolVersion >= Self.minimumProtocol else {
            throw .protocolTooOld(found: protocolVersion, required: Self.minimumProtocol)
        }
        let headerEnd = min(Field.header + Int(r.u8(Field.jump + 1)), Field.zeroPageHeaderLimit)
        guard headerEnd >= Field.protocol212End else {
            throw .notBzImage("the setup header ends at 0x\(hex(headerEnd)), before the fields its version promises")
        }
        guard bytes.count >= headerEnd else { throw .truncated("the setup header (up to 0x\(hex(headerEnd)))") }
        setupHeaderEnd = headerEnd

        loadFlags = r.u8(Field.loadflags)
        guard loadFlags & Self.loadedHigh != 0 else { throw .notLoadedHigh }
        xLoadFlags = r.u16(Field.xloadflags)
        guard xLoadFlags & Self.xlfKernel64 != 0 else { throw .not64Bit }

        let sectors = Int(r.u8(Field.setupSects))
        setupSectors = sectors == 0 ? 4 : sectors
        let pmOffset = (setupSectors + 1) * 512
        let declared = UInt64(r.u32(Field.syssize)) * 16
        guard bytes.count > pmOffset, UInt64(bytes.count - pmOffset) >= declared else {
            throw .truncated("the protected-mode kernel (\(declared) bytes at offset 0x\(hex(pmOffset)), by syssize)")
        }
        guard UInt64(bytes.count - pmOffset) > Self.startup64Offset else {
            throw .truncated("the 64-bit entry point at offset 0x\(hex(UInt64(pmOffset) + Self.startup64Offset))")
        }

        isRelocatable = r.u8(Field.relocatableKernel) != 0
        kernelAlignment = r.u32(Field.kernelAlignment)
        preferredAddress = r.u64(Field.prefAddress)
        initSize = r.u32(Field.initSize)
        initrdAddressMax = r.u32(Field.initrdAddrMax)
        commandLineSize = r.u32(Field.cmdlineSize)
        self.bytes = bytes
        // pref_address is any 64-bit value the file holds: the run area must not wrap past 2^64, or
        // kernelEnd (and every placement after it) would be meaningless.
        let (_, wraps) = runAddress.addingReportingOverflow(runAreaSize)
        guard !wraps else {
            throw .notBzImage("its run area (pref_address 0x\(hex(preferredAddress)) + init_size 0x\(hex(initSize))) wraps past the end of the address space")
        }
    }

    // MARK: Placement

    /// Where the protected-mode kernel is copied.
    public static let loadAddress = X86Layout.highMemory

    /// Where startup_64 will move the kernel to decompress and run it (head_64.S): the load address
    /// rounded up to kernel_alignment if relocatable and not below pref_address, else pref_address.
    public var runAddress: UInt64 {
        let load = Self.loadAddress.rawValue
        if isRelocatable && kernelAlignment.nonzeroBitCount == 1 {
            let mask = UInt64(kernelAlignment) - 1
            let aligned = (load + mask) & ~mask
            if aligned >= preferredAddress { return aligned }
        }
        return preferredAddress
    }

    /// One past the last byte the kernel uses while it starts: the copied image, or its run area.
    public var kernelEnd: UInt64 {
        let image = Self.loadAddress.rawValue + UInt64(protectedModeSize)
        return max(image, runAddress + runAreaSize) // init() refused a run area that wraps
    }

    /// Bytes from the run address the kernel needs: init_size, or the image itself if that is larger.
    var runAreaSize: UInt64 { UInt64(max(initSize, UInt32(clamping: protectedModeSize))) }

    /// The 64-bit entry point, startup_64.
    public var entry: GuestAddress { GuestAddress(Self.loadAddress.rawValue + Self.startup64Offset) }

    /// Decides where everything goes for `memoryMap`, without writing anything; throws if it cannot fit.
    public func plan(commandLineLength: Int, initrdSize: UInt64, memoryMap: [E820.Entry]) throws(LinuxBootError) -> LinuxBootLayout {
        let limit = Int(commandLineSize)
        guard commandLineLength <= limit else {
            throw .commandLineTooLong(length: commandLineLength, limit: limit, limitSource: "this kernel's cmdline_size")
        }
        let areaLimit = Int(X86Layout.commandLineEnd.rawValue - X86Layout.commandLine.rawValue) - 1
        guard commandLineLength <= areaLimit else {
            throw .commandLineTooLong(length: commandLineLength, limit: areaLimit, limitSource: "Swiftlet's command-line area")
        }
        guard memoryMap.count <= E820.maximumZeroPageEntries else { throw .tooManyMemoryMapEntries(memoryMap.count) }
        let ramEnd = E820.lowRAMEnd(memoryMap)
        guard E820.isRAM(memoryMap, base: Self.loadAddress.rawValue, length: kernelEnd - Self.loadAddress.rawValue) else {
            throw .memoryTooSmall(needed: kernelEnd, available: ramEnd,
                                  what: "the kernel (run at 0x\(hex(runAddress)), init_size \(LinuxBootError.mebibytes(UInt64(initSize))))")
        }
        var initrd: AddressRange?
        if initrdSize > 0 {
            let ceiling = min(UInt64(initrdAddressMax) + 1, ramEnd)
            guard let base = InitrdPlacement.highest(size: initrdSize, floor: kernelEnd, ceiling: ceiling) else {
                throw .initrdTooLarge(size: initrdSize, kernelEnd: kernelEnd, ceiling: ceiling)
            }
            initrd = AddressRange(base: GuestAddress(base), length: initrdSize)
        }
        return LinuxBootLayout(
            entry: entry, zeroPage: X86Layout.zeroPage, commandLine: X86Layout.commandLine,
            kernel: AddressRange(base: Self.loadAddress, length: UInt64(protectedModeSize))!,
            kernelEnd: kernelEnd, initrd: initrd, memoryMap: memoryMap,
            placements: [])
    }

    /// Loads the kernel, command line and initrd into `memory`, writes the zero page, and returns what
    /// went where. Nothing is written unless everything fits. Page tables and the GDT are separate steps
    /// (PageTables.writeIdentityMap, BootGDT.bytes at X86Layout.gdt).
    public func load(into memory: GuestMemory, commandLine: String, initrd: [UInt8] = [],
                     memoryMap: [E820.Entry]? = nil, acpiRSDP: GuestAddress? = nil) throws(LinuxBootError) -> LinuxBootLayout {
        let map = memoryMap ?? E820.map(for: memory)
        let commandLineBytes = Array(commandLine.utf8)
        var layout = try plan(commandLineLength: commandLineBytes.count, initrdSize: UInt64(initrd.count), memoryMap: map)
        let page = zeroPage(commandLine: layout.commandLine, initrd: layout.initrd, memoryMap: map, acpiRSDP: acpiRSDP)
        do {
            try memory.write(bytes: bytes[protectedModeOffset...], at: layout.kernel.base)
            try memory.write(bytes: commandLineBytes + [0], at: layout.commandLine)
            if let range = layout.initrd { try memory.write(bytes: initrd, at: range.base) }
            try memory.write(bytes: page, at: layout.zeroPage)
        } catch { throw .memory(error) }

        let rsdpNote = acpiRSDP.map { takesACPIRSDP ? ", acpi_rsdp_addr \($0)" : " (acpi_rsdp_addr left 0: boot protocol \(LinuxBootError.version(protocolVersion)) < 2.14)" } ?? ""
        var placements = [
            BootPlacement("zero page (struct boot_params, e820 table of \(min(map.count, E820.maximumZeroPageEntries)) entries\(rsdpNote)); RSI at entry",
                          base: layout.zeroPage, length: UInt64(Self.zeroPageSize)),
            BootPlacement("kernel command line (\(commandLineBytes.count) bytes + NUL, cmdline_size \(commandLineSize))",
                          base: layout.commandLine, length: UInt64(commandLineBytes.count + 1)),
            BootPlacement("protected-mode kernel from file offset 0x\(hex(protectedModeOffset)) (boot protocol \(LinuxBootError.version(protocolVersion)), \(setupSectors) setup sectors); startup_64 at \(entry)",
                          layout.kernel),
            BootPlacement("kernel run area: it decompresses itself to 0x\(hex(runAddress)) (\(isRelocatable ? "relocatable, kernel_alignment 0x\(hex(kernelAlignment))" : "not relocatable"), pref_address 0x\(hex(preferredAddress)), init_size 0x\(hex(initSize)))",
                          base: GuestAddress(runAddress), length: kernelEnd - runAddress),
        ]
        if let range = layout.initrd {
            placements.append(BootPlacement("initrd (\(initrd.count) bytes; initrd_addr_max 0x\(hex(initrdAddressMax)))", range))
        }
        layout.placements = placements.sorted { $0.range.base < $1.range.base }
        return layout
    }

    // MARK: The zero page

    /// Whether this kernel reads boot_params.acpi_rsdp_addr (protocol 2.14 or later).
    public var takesACPIRSDP: Bool { protocolVersion >= Self.acpiRSDPProtocol }

    /// struct boot_params: zeroed, the setup header copied from the image at 0x1F1, the loader's fields
    /// filled in, and the e820 table. The sentinel at 0x1EF stays 0 (the kernel checks it). `acpiRSDP` goes
    /// to acpi_rsdp_addr when the kernel reads it; older kernels find the RSDP by scanning 0xE0000-0xFFFFF.
    public func zeroPage(commandLine: GuestAddress, initrd: AddressRange?, memoryMap: [E820.Entry],
                         acpiRSDP: GuestAddress? = nil) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: Self.zeroPageSize)
        if let acpiRSDP, takesACPIRSDP { put(&page, ZeroPageField.acpiRSDPAddr, acpiRSDP.rawValue) }
        page.replaceSubrange(Field.setupSects..<setupHeaderEnd, with: setupHeader)
        page[Field.typeOfLoader] = Self.typeOfLoaderUndefined
        page[Field.loadflags] = loadFlags | Self.canUseHeap
        put(&page, Field.heapEndPtr, Self.heapEndPointer)
        put(&page, Field.code32Start, UInt32(Self.loadAddress.rawValue))
        put(&page, Field.cmdLinePtr, UInt32(truncatingIfNeeded: commandLine.rawValue))
        put(&page, ZeroPageField.extCmdLinePtr, UInt32(truncatingIfNeeded: commandLine.rawValue >> 32))
        if let initrd {
            put(&page, Field.ramdiskImage, UInt32(truncatingIfNeeded: initrd.base.rawValue))
            put(&page, Field.ramdiskSize, UInt32(truncatingIfNeeded: initrd.length))
            put(&page, ZeroPageField.extRamdiskImage, UInt32(truncatingIfNeeded: initrd.base.rawValue >> 32))
            put(&page, ZeroPageField.extRamdiskSize, UInt32(truncatingIfNeeded: initrd.length >> 32))
        } else {
            put(&page, Field.ramdiskImage, UInt32(0))
            put(&page, Field.ramdiskSize, UInt32(0))
        }
        let table = E820.encodeForZeroPage(memoryMap)
        page.replaceSubrange(ZeroPageField.e820Table..<ZeroPageField.e820Table + table.count, with: table)
        page[ZeroPageField.e820Entries] = UInt8(table.count / E820.entrySize)
        return page
    }
}

/// Where a bzImage boot put things, and the values the entry registers need.
public struct LinuxBootLayout: Sendable {
    /// The 64-bit entry point, startup_64 (RIP).
    public var entry: GuestAddress
    /// The zero page (RSI at entry).
    public var zeroPage: GuestAddress
    public var commandLine: GuestAddress
    /// The copied kernel image.
    public var kernel: AddressRange
    /// One past everything the kernel occupies while it starts.
    public var kernelEnd: UInt64
    public var initrd: AddressRange?
    /// The e820 map given to the kernel.
    public var memoryMap: [E820.Entry]
    /// What went where, in address order, for --verbose and `explain`.
    public var placements: [BootPlacement]
}

/// The initrd's address: as high as possible, page-aligned.
enum InitrdPlacement {
    static let alignment: UInt64 = 4096

    /// The highest page-aligned base with [base, base + size) inside [floor, ceiling), or nil.
    static func highest(size: UInt64, floor: UInt64, ceiling: UInt64) -> UInt64? {
        guard size > 0, ceiling >= size else { return nil }
        let base = (ceiling - size) & ~(alignment - 1)
        return base >= floor ? base : nil
    }
}

// MARK: The compressed payload (protocol 2.08+: payload_offset, payload_length)

extension LinuxBzImage {
    /// payload_offset and payload_length: where the compressed kernel (vmlinux.bin) sits, relative to
    /// the start of the protected-mode code.
    static let payloadOffsetField = 0x248
    static let payloadLengthField = 0x24C

    /// The compression of the payload, named by its magic bytes (the formats Kconfig's KERNEL_* offer).
    public var payloadFormat: String {
        guard let payload = try? compressedPayload() else { return "unknown" }
        let b = Array(payload.prefix(6))
        if b.count >= 4, LZ4.isLegacyFrame(payload) { return "lz4" }
        if b.count >= 2, b[0] == 0x1F, b[1] == 0x8B { return "gzip" }
        if b.count >= 6, b == [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00] { return "xz" }
        if b.count >= 4, b[0] == 0x28, b[1] == 0xB5, b[2] == 0x2F, b[3] == 0xFD { return "zstd" }
        if b.count >= 3, b[0] == 0x42, b[1] == 0x5A, b[2] == 0x68 { return "bzip2" }
        if b.count >= 3, b[0] == 0x5D, b[1] == 0x00, b[2] == 0x00 { return "lzma" }
        if b.count >= 3, b[0] == 0x89, b[1] == 0x4C, b[2] == 0x5A { return "lzo" }
        return "unknown"
    }

    /// The compressed kernel as it sits in the file.
    public func compressedPayload() throws(LinuxBootError) -> ArraySlice<UInt8> {
        let r = ByteReader(bytes)
        let offset = protectedModeOffset + Int(r.u32(Self.payloadOffsetField))
        let length = Int(r.u32(Self.payloadLengthField))
        guard length > 0, offset < bytes.count, length <= bytes.count - offset else {
            throw .truncated("the compressed kernel (payload_offset 0x\(hex(r.u32(Self.payloadOffsetField))), \(length) bytes)")
        }
        return bytes[offset..<(offset + length)]
    }

    /// Unpacks the payload on the host: the kernel's own ELF (vmlinux, stripped), which a kernel built
    /// with CONFIG_PVH can then enter through its PVH note instead of running its decompressor as guest
    /// code. LZ4 only (CONFIG_KERNEL_LZ4: Debian's cloud kernels and Swiftlet's minimal kernel).
    public func decompressedKernel() throws(LinuxBootError) -> [UInt8] {
        let payload = try compressedPayload()
        guard LZ4.isLegacyFrame(payload) else {
            throw .payload("the kernel is \(payloadFormat)-compressed and Swiftlet unpacks LZ4 only; boot the bzImage without --decompress, or extract vmlinux with the kernel's scripts/extract-vmlinux")
        }
        let elf: [UInt8]
        do { elf = try LZ4.decompressLegacyFrame(payload) } catch { throw .payload("\(error)") }
        guard elf.count >= 4, elf[0] == 0x7F, elf[1] == 0x45, elf[2] == 0x4C, elf[3] == 0x46 else {
            throw .payload("the unpacked payload is not an ELF file")
        }
        return elf
    }
}

