// GDT: x86 segment descriptors (Intel SDM Vol. 3A §3.4.5) for the GDT a VMM writes before a direct boot.
//
// A descriptor packs base, limit, type and flags into 8 bytes in the processor's historical layout; KVM
// wants the same information unpacked in struct kvm_segment. `SegmentDescriptor` holds the fields once and
// produces both, so the GDT in guest memory and the cached segment registers can never disagree.

public struct SegmentDescriptor: Sendable, Equatable {
    public var base: UInt32
    /// 20-bit limit, in bytes or (with `granularity`) 4 KiB units.
    public var limit: UInt32
    /// Type field: 0xB = execute/read code (accessed), 0x3 = read/write data (accessed), 0xB with `system` = busy 32/64-bit TSS.
    public var type: UInt8
    /// S bit: true for code/data, false for system descriptors (TSS, LDT).
    public var codeOrData: Bool
    public var privilegeLevel: UInt8
    public var present: Bool
    /// L bit: 64-bit code segment.
    public var long: Bool
    /// D/B bit: 32-bit default operand size.
    public var defaultBig: Bool
    /// G bit: limit counted in 4 KiB pages.
    public var granularity: Bool

    public init(base: UInt32 = 0, limit: UInt32 = 0xFFFFF, type: UInt8, codeOrData: Bool = true, privilegeLevel: UInt8 = 0,
                present: Bool = true, long: Bool = false, defaultBig: Bool = true, granularity: Bool = true) {
        self.base = base; self.limit = limit; self.type = type; self.codeOrData = codeOrData
        self.privilegeLevel = privilegeLevel; self.present = present; self.long = long
        self.defaultBig = defaultBig; self.granularity = granularity
    }

    public static let null = SegmentDescriptor(limit: 0, type: 0, codeOrData: false, present: false, defaultBig: false, granularity: false)
    public static let flatCode32 = SegmentDescriptor(type: 0xB)
    public static let flatData32 = SegmentDescriptor(type: 0x3)
    public static let flatCode64 = SegmentDescriptor(type: 0xB, long: true, defaultBig: false)
    public static let flatData64 = SegmentDescriptor(type: 0x3)

    /// The 8-byte descriptor as it sits in the GDT.
    public var encoded: UInt64 {
        let access = UInt64(type & 0xF) | (codeOrData ? 0x10 : 0) | UInt64(privilegeLevel & 3) << 5 | (present ? 0x80 : 0)
        let flags = (long ? 0x2 : 0) | (defaultBig ? 0x4 : 0) | (granularity ? 0x8 : 0) as UInt64
        return UInt64(limit & 0xFFFF)
            | UInt64(base & 0xFF_FFFF) << 16
            | access << 40
            | UInt64((limit >> 16) & 0xF) << 48
            | flags << 52
            | UInt64(base >> 24) << 56
    }

    /// Decodes an 8-byte descriptor.
    public init(encoded d: UInt64) {
        base = UInt32((d >> 16) & 0xFF_FFFF) | UInt32((d >> 56) & 0xFF) << 24
        limit = UInt32(d & 0xFFFF) | UInt32((d >> 48) & 0xF) << 16
        type = UInt8((d >> 40) & 0xF)
        codeOrData = (d >> 44) & 1 == 1
        privilegeLevel = UInt8((d >> 45) & 3)
        present = (d >> 47) & 1 == 1
        long = (d >> 53) & 1 == 1
        defaultBig = (d >> 54) & 1 == 1
        granularity = (d >> 55) & 1 == 1
    }

    /// The limit in bytes, as the processor caches it.
    public var byteLimit: UInt32 { granularity ? (limit << 12) | 0xFFF : limit }
}

/// The GDT Swiftlet writes for direct boots; selectors are index * 8.
public enum BootGDT {
    public static let entries: [SegmentDescriptor] = [
        .null, .flatCode32, .flatData32, .flatCode64, .flatData64,
        SegmentDescriptor(limit: 0x67, type: 0xB, codeOrData: false, defaultBig: false, granularity: false), // TSS (busy)
    ]
    public static let code32Selector: UInt16 = 0x08
    public static let data32Selector: UInt16 = 0x10
    public static let code64Selector: UInt16 = 0x18
    public static let data64Selector: UInt16 = 0x20
    public static let tssSelector: UInt16 = 0x28

    public static var bytes: [UInt8] { entries.flatMap { le($0.encoded) } }
    public static var limit: UInt16 { UInt16(entries.count * 8 - 1) }
}
