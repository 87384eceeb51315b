// PageWalk: a linear (guest-virtual) address turned into a guest-physical one the way the CPU's MMU does it,
// for whatever mode the guest is in, reading the guest's own page tables through a closure (no KVM, no
// guest-memory type: the VMM passes a reader, tests pass a dictionary).
//
// Intel SDM Vol. 3A chapter 4 "Paging": paging off (CR0.PG = 0: linear = physical, 32 bits), 32-bit
// paging (§4.3: two levels of 4-byte entries, 4 MiB pages with CR4.PSE, PSE-36 bits 13-20), PAE paging
// (§4.4: CR3 → 4 PDPTEs → PD → PT, 2 MiB pages), 4-level and 5-level paging (§4.5: PML5 with CR4.LA57 →
// PML4 → PDPT → PD → PT, 1 GiB and 2 MiB pages, canonical addresses only). Real mode is "paging off": gdb's
// addresses are linear, so a real-mode CS:IP is at cs_base + ip (QEMU's gdbstub behaves the same).
// Access rights are collected (writable and user only if every level allows) but not enforced: a debugger
// may read what the guest could not.

public struct PagingRegisters: Equatable, Sendable {
    public var cr0: UInt64, cr3: UInt64, cr4: UInt64, efer: UInt64
    public init(cr0: UInt64, cr3: UInt64, cr4: UInt64, efer: UInt64) {
        self.cr0 = cr0; self.cr3 = cr3; self.cr4 = cr4; self.efer = efer
    }
}

public enum PagingMode: String, Sendable {
    case off = "paging off"
    case legacy = "32-bit paging"
    case pae = "PAE paging"
    case fourLevel = "4-level paging"
    case fiveLevel = "5-level paging"

    public init(_ r: PagingRegisters) {
        if r.cr0 & (1 << 31) == 0 { self = .off } else if r.cr4 & (1 << 5) == 0 { self = .legacy } else if r.efer & (1 << 10) == 0 {
            self = .pae
        } else { self = r.cr4 & (1 << 12) != 0 ? .fiveLevel : .fourLevel }
    }
}

public struct PageWalkStep: Equatable, Sendable {
    /// "PML4E", "PDPTE", "PDE", "PTE", ...
    public var level: String
    /// Guest-physical address of the entry read.
    public var entryAddress: UInt64
    public var entry: UInt64
}

public struct Translation: Equatable, Sendable {
    public var physical: UInt64
    /// 4 KiB, 2 MiB, 4 MiB, 1 GiB, or the whole 4 GiB space with paging off.
    public var pageSize: UInt64
    public var writable: Bool
    public var user: Bool
    public var steps: [PageWalkStep]
}

public enum PageWalkFault: Error, Equatable, Sendable, CustomStringConvertible {
    /// A present bit was clear at `level` (the last entry read is in `steps`).
    case notPresent(level: String, steps: [PageWalkStep])
    /// A table entry could not be read: no RAM at that guest-physical address.
    case unreadableTable(level: String, address: UInt64)
    /// In 4/5-level paging, the address's high bits are not a sign extension of the top translated bit.
    case nonCanonical(UInt64)
    /// An address above 4 GiB outside long mode.
    case beyond32Bits(UInt64)
    /// A reserved bit was set in an entry (a page size bit where none may be).
    case reservedBit(level: String, entry: UInt64)

    public var description: String {
        switch self {
        case let .notPresent(level, steps):
            "not mapped: the \(level) is not present (entry 0x\(Hex.string(steps.last?.entry ?? 0)))"
        case let .unreadableTable(level, address): "the \(level) at guest-physical 0x\(Hex.string(address)) is not in RAM"
        case let .nonCanonical(address): "0x\(Hex.string(address)) is not canonical (bits 63..47 must copy bit 47, or 63..56 bit 56 with LA57)"
        case let .beyond32Bits(address): "0x\(Hex.string(address)) is beyond 4 GiB and the vCPU is not in long mode"
        case let .reservedBit(level, entry): "reserved bit set in the \(level) 0x\(Hex.string(entry))"
        }
    }
}

public enum PageWalk {
    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let user: UInt64 = 1 << 2
    static let pageSize: UInt64 = 1 << 7
    static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

    /// Translates `linear`. `read(address, size)` returns the little-endian entry of `size` (4 or 8)
    /// bytes at a guest-physical address, or nil when no RAM is there.
    public static func translate(_ linear: UInt64, _ r: PagingRegisters,
                                 read: (_ address: UInt64, _ size: Int) -> UInt64?) -> Result<Translation, PageWalkFault> {
        switch PagingMode(r) {
        case .off:
            guard linear <= 0xFFFF_FFFF || r.efer & (1 << 10) != 0 else { return .failure(.beyond32Bits(linear)) }
            return .success(Translation(physical: linear, pageSize: 1 << 32, writable: true, user: true, steps: []))
        case .legacy:
            guard linear <= 0xFFFF_FFFF else { return .failure(.beyond32Bits(linear)) }
            return legacy(linear, r, read: read)
        case .pae:
            guard linear <= 0xFFFF_FFFF else { return .failure(.beyond32Bits(linear)) }
            let pdpteAddress = (r.cr3 & 0xFFFF_FFE0) + ((linear >> 30) & 3) * 8
            return walk(linear, levels: [("PDPTE", 30, false), ("PDE", 21, true), ("PTE", 12, false)], firstTable: nil,
                        firstEntryAddress: pdpteAddress, read: read)
        case .fourLevel:
            guard isCanonical(linear, bits: 48) else { return .failure(.nonCanonical(linear)) }
            return walk(linear, levels: [("PML4E", 39, false), ("PDPTE", 30, true), ("PDE", 21, true), ("PTE", 12, false)],
                        firstTable: r.cr3 & addressMask, firstEntryAddress: nil, read: read)
        case .fiveLevel:
            guard isCanonical(linear, bits: 57) else { return .failure(.nonCanonical(linear)) }
            return walk(linear, levels: [("PML5E", 48, false), ("PML4E", 39, false), ("PDPTE", 30, true), ("PDE", 21, true), ("PTE", 12, false)],
                        firstTable: r.cr3 & addressMask, firstEntryAddress: nil, read: read)
        }
    }

    static func isCanonical(_ address: UInt64, bits: Int) -> Bool {
        let shift = UInt64(64 - bits)
        return UInt64(bitPattern: Int64(bitPattern: address << shift) >> Int64(shift)) == address
    }

    /// PAE, 4-level and 5-level paging: 8-byte entries, 9 index bits per level; `levels` gives each
    /// level's name, the shift of its index, and whether a PS bit may end the walk there.
    static func walk(_ linear: UInt64, levels: [(name: String, shift: UInt64, mayBeLarge: Bool)], firstTable: UInt64?,
                     firstEntryAddress: UInt64?, read: (UInt64, Int) -> UInt64?) -> Result<Translation, PageWalkFault> {
        var steps: [PageWalkStep] = []
        var table = firstTable ?? 0
        var isWritable = true, isUser = true
        for (index, level) in levels.enumerated() {
            let entryAddress = index == 0 && firstEntryAddress != nil ? firstEntryAddress! : table + ((linear >> level.shift) & 0x1FF) * 8
            guard let entry = read(entryAddress, 8) else { return .failure(.unreadableTable(level: level.name, address: entryAddress)) }
            steps.append(PageWalkStep(level: level.name, entryAddress: entryAddress, entry: entry))
            guard entry & present != 0 else { return .failure(.notPresent(level: level.name, steps: steps)) }
            // PAE's PDPTEs carry no R/W or U/S bits (SDM §4.4.1).
            if !(firstEntryAddress != nil && index == 0) {
                isWritable = isWritable && entry & writable != 0
                isUser = isUser && entry & user != 0
            }
            let last = index == levels.count - 1
            if !last && entry & pageSize != 0 {
                guard level.mayBeLarge else { return .failure(.reservedBit(level: level.name, entry: entry)) }
                let size: UInt64 = 1 << level.shift
                let base = entry & addressMask & ~(size - 1)
                return .success(Translation(physical: base | (linear & (size - 1)), pageSize: size, writable: isWritable, user: isUser, steps: steps))
            }
            if last {
                return .success(Translation(physical: (entry & addressMask) | (linear & 0xFFF), pageSize: 4096,
                                            writable: isWritable, user: isUser, steps: steps))
            }
            table = entry & addressMask
        }
        return .failure(.notPresent(level: "PTE", steps: steps)) // not reached: the last level returns
    }

    /// 32-bit paging: a page directory of 1024 4-byte entries, 4 MiB pages with CR4.PSE.
    static func legacy(_ linear: UInt64, _ r: PagingRegisters, read: (UInt64, Int) -> UInt64?) -> Result<Translation, PageWalkFault> {
        let pdeAddress = (r.cr3 & 0xFFFF_F000) + ((linear >> 22) & 0x3FF) * 4
        guard let pde = read(pdeAddress, 4) else { return .failure(.unreadableTable(level: "PDE", address: pdeAddress)) }
        var steps = [PageWalkStep(level: "PDE", entryAddress: pdeAddress, entry: pde)]
        guard pde & present != 0 else { return .failure(.notPresent(level: "PDE", steps: steps)) }
        if pde & pageSize != 0 && r.cr4 & (1 << 4) != 0 {
            let base = (pde & 0xFFC0_0000) | (((pde >> 13) & 0xFF) << 32)
            return .success(Translation(physical: base | (linear & 0x3F_FFFF), pageSize: 4 << 20,
                                        writable: pde & writable != 0, user: pde & user != 0, steps: steps))
        }
        let pteAddress = (pde & 0xFFFF_F000) + ((linear >> 12) & 0x3FF) * 4
        guard let pte = read(pteAddress, 4) else { return .failure(.unreadableTable(level: "PTE", address: pteAddress)) }
        steps.append(PageWalkStep(level: "PTE", entryAddress: pteAddress, entry: pte))
        guard pte & present != 0 else { return .failure(.notPresent(level: "PTE", steps: steps)) }
        return .success(Translation(physical: (pte & 0xFFFF_F000) | (linear & 0xFFF), pageSize: 4096,
                                    writable: pde & pte & writable != 0, user: pde & pte & user != 0, steps: steps))
    }
}
