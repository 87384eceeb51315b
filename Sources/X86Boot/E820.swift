// E820: the BIOS memory map (ACPI 6.5 §15 "System Address Map Interfaces", INT 15h E820h) that Swiftlet
// hands to Linux, built once from the guest's RAM regions and shared by the zero page (boot_params.e820_table
// at 0x2D0, e820_entries at 0x1E8; Documentation/arch/x86/zero-page.rst) and PVH's memory map
// (hvm_memmap_table_entry, whose type values are the same numbers).
//
// For the layout of X86Layout.ramLayout it says: RAM [0, 0x9FC00); reserved [0x9FC00, 1 MiB) — the EBDA,
// the VGA/ROM hole, the ACPI tables at 0xE0000 and the MP table at 0xF0000; RAM from 1 MiB to the end of
// the low region (at most 3 GiB); RAM above 4 GiB for the rest. A region at the firmware ROM's address is reported reserved.
import GuestMemory

public enum E820 {
    /// Address range type, as `struct boot_e820_entry.type` and `hvm_memmap_table_entry.type` spell it.
    public enum RangeType: UInt32, Sendable {
        /// E820_TYPE_RAM: usable memory.
        case ram = 1
        /// E820_TYPE_RESERVED: not for the OS (BIOS areas, ROMs, the ACPI and MP tables).
        case reserved = 2
    }

    public struct Entry: Sendable, Equatable, CustomStringConvertible {
        public var base: GuestAddress
        public var length: UInt64
        public var type: RangeType

        public init(base: GuestAddress, length: UInt64, type: RangeType) {
            self.base = base; self.length = length; self.type = type
        }

        /// One past the last byte.
        public var end: UInt64 { base.rawValue &+ length }

        public var description: String {
            "\(rangeText(base: base.rawValue, length: length, width: 9)) \(type == .ram ? "RAM" : "reserved")"
        }
    }

    /// Size of one `struct boot_e820_entry` (packed: u64 addr, u64 size, u32 type).
    public static let entrySize = 20
    /// E820_MAX_ENTRIES_ZEROPAGE: how many entries fit in boot_params.e820_table.
    public static let maximumZeroPageEntries = 128

    /// The map for the guest's RAM.
    public static func map(for memory: GuestMemory) -> [Entry] {
        map(ramRegions: memory.regions.map(\.range))
    }

    /// The map for RAM regions laid out by `X86Layout.ramLayout` (plus, optionally, the firmware ROM).
    public static func map(ramRegions: [AddressRange]) -> [Entry] {
        let reservedStart = X86Layout.extendedBIOSDataArea.rawValue
        let highMemory = X86Layout.highMemory.rawValue
        var map: [Entry] = []
        for region in ramRegions.sorted(by: { $0.base < $1.base }) {
            let start = region.base.rawValue, end = region.end
            if region.base == X86Layout.firmwareBase {
                map.append(Entry(base: region.base, length: region.length, type: .reserved))
            } else if start < highMemory {
                // The low region: conventional memory, the reserved hole below 1 MiB, then extended memory.
                if start < reservedStart {
                    map.append(Entry(base: region.base, length: min(end, reservedStart) - start, type: .ram))
                }
                if end > reservedStart {
                    let holeStart = max(start, reservedStart)
                    map.append(Entry(base: GuestAddress(holeStart), length: min(end, highMemory) - holeStart, type: .reserved))
                }
                if end > highMemory {
                    map.append(Entry(base: X86Layout.highMemory, length: end - highMemory, type: .ram))
                }
            } else {
                map.append(Entry(base: region.base, length: region.length, type: .ram))
            }
        }
        return map
    }

    /// The entries as `struct boot_e820_entry[]` for boot_params.e820_table (at most 128 of them).
    public static func encodeForZeroPage(_ entries: [Entry]) -> [UInt8] {
        var bytes: [UInt8] = []
        for entry in entries.prefix(maximumZeroPageEntries) {
            bytes += le(entry.base.rawValue) + le(entry.length) + le(entry.type.rawValue)
        }
        return bytes
    }

    /// The end of the RAM that starts at address 0 and lies below 4 GiB (at most 3 GiB in this layout):
    /// the ceiling for everything a 32-bit boot protocol must reach (initrd, boot structures).
    public static func lowRAMEnd(_ entries: [Entry]) -> UInt64 {
        var end: UInt64 = 0
        for entry in entries.sorted(by: { $0.base < $1.base }) where entry.type == .ram && entry.base.rawValue < X86Layout.fourGiB.rawValue {
            end = max(end, min(entry.end, X86Layout.fourGiB.rawValue))
        }
        return end
    }

    /// True when [base, base + length) lies inside one RAM entry.
    public static func isRAM(_ entries: [Entry], base: UInt64, length: UInt64) -> Bool {
        let (end, overflow) = base.addingReportingOverflow(length)
        if overflow { return false }
        return entries.contains { $0.type == .ram && $0.base.rawValue <= base && end <= $0.end }
    }
}
