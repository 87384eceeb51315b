// X86Registers: one vCPU's registers as gdb's x86-64 target sees them, and the target description
// (target.xml) that tells gdb their names, sizes and order.
//
// The order is gdb's own amd64 numbering (gdb/features/i386/64bit-core.xml and 64bit-sse.xml): rax, rbx,
// rcx, rdx, rsi, rdi, rbp, rsp, r8-r15, rip, eflags, the six segment selectors, st0-st7, the x87 control
// registers, xmm0-xmm15, mxcsr (0-56). After them: fs_base and gs_base as gdb's org.gnu.gdb.i386.segments
// feature names them, then what a kernel debugger wants and QEMU's gdbstub also gives, in a feature of our
// own: k_gs_base (the SWAPGS MSR), cr0, cr2, cr3, cr4, cr8 and efer, with their bits named. The `g` packet
// is every register in this order, each in target byte order (little-endian), st registers 10 bytes.
// Nothing here knows KVM: the VMM fills the value from KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_FPU and the MSRs.

public struct X86Registers: Equatable, Sendable {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8-r15 (gdb's order, not the hardware encoding's).
    public var generalPurpose = [UInt64](repeating: 0, count: 16)
    public var rip: UInt64 = 0
    /// RFLAGS (gdb shows the low 32 bits as eflags; the upper half is reserved).
    public var rflags: UInt64 = 0
    /// Selectors of cs, ss, ds, es, fs, gs.
    public var segmentSelectors = [UInt16](repeating: 0, count: 6)
    public var fsBase: UInt64 = 0
    public var gsBase: UInt64 = 0
    /// IA32_KERNEL_GS_BASE: what SWAPGS exchanges with gs_base.
    public var kernelGSBase: UInt64 = 0
    public var cr0: UInt64 = 0, cr2: UInt64 = 0, cr3: UInt64 = 0, cr4: UInt64 = 0, cr8: UInt64 = 0, efer: UInt64 = 0
    /// st0-st7, 10 bytes each (80-bit extended precision), in physical register order as FXSAVE keeps them.
    public var x87 = [[UInt8]](repeating: [UInt8](repeating: 0, count: 10), count: 8)
    public var fctrl: UInt32 = 0x37F, fstat: UInt32 = 0, ftag: UInt32 = 0xFFFF
    public var fiseg: UInt32 = 0, fioff: UInt32 = 0, foseg: UInt32 = 0, fooff: UInt32 = 0, fop: UInt32 = 0
    public var xmm = [[UInt8]](repeating: [UInt8](repeating: 0, count: 16), count: 16)
    public var mxcsr: UInt32 = 0x1F80

    public init() {}

    /// One register of the description: its name, width, gdb type, group and feature.
    public struct Info: Sendable {
        public let name: String
        public let bits: Int
        public let type: String
        public let group: String?
        public let feature: Feature
        public var bytes: Int { bits / 8 }
    }

    public enum Feature: String, Sendable, CaseIterable {
        case core = "org.gnu.gdb.i386.core"
        case sse = "org.gnu.gdb.i386.sse"
        case segments = "org.gnu.gdb.i386.segments"
        case system = "org.swiftlet.x86.system"
    }

    static let generalNames = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                               "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
    static let segmentNames = ["cs", "ss", "ds", "es", "fs", "gs"]
    static let x87ControlNames = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
    static let systemNames = ["k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"]

    /// Every register, in `g`-packet order; the index is gdb's register number.
    public static let layout: [Info] = {
        var r: [Info] = []
        for name in generalNames {
            let type = name == "rbp" || name == "rsp" ? "data_ptr" : "int64"
            r.append(Info(name: name, bits: 64, type: type, group: nil, feature: .core))
        }
        r.append(Info(name: "rip", bits: 64, type: "code_ptr", group: nil, feature: .core))
        r.append(Info(name: "eflags", bits: 32, type: "swiftlet_eflags", group: nil, feature: .core))
        for name in segmentNames { r.append(Info(name: name, bits: 32, type: "int32", group: nil, feature: .core)) }
        for i in 0..<8 { r.append(Info(name: "st\(i)", bits: 80, type: "i387_ext", group: nil, feature: .core)) }
        for name in x87ControlNames { r.append(Info(name: name, bits: 32, type: "int", group: "float", feature: .core)) }
        for i in 0..<16 { r.append(Info(name: "xmm\(i)", bits: 128, type: "vec128", group: nil, feature: .sse)) }
        r.append(Info(name: "mxcsr", bits: 32, type: "swiftlet_mxcsr", group: "vector", feature: .sse))
        r.append(Info(name: "fs_base", bits: 64, type: "int", group: nil, feature: .segments))
        r.append(Info(name: "gs_base", bits: 64, type: "int", group: nil, feature: .segments))
        for name in systemNames {
            let type = switch name {
            case "cr0": "swiftlet_cr0"
            case "cr4": "swiftlet_cr4"
            case "efer": "swiftlet_efer"
            default: "int64"
            }
            r.append(Info(name: name, bits: 64, type: type, group: "system", feature: .system))
        }
        return r
    }()

    /// Register numbers of a few registers the VMM and tests name.
    public enum Number {
        public static let rsp = 7
        public static let rip = 16
        public static let eflags = 17
        public static let cs = 18
        public static let st0 = 24
        public static let fctrl = 32
        public static let xmm0 = 40
        public static let mxcsr = 56
        public static let fsBase = 57
        public static let kernelGSBase = 59
        public static let cr0 = 60
        public static let efer = 65
    }

    public static var count: Int { layout.count }
    /// Bytes in a `g` reply (before hex encoding).
    public static let packetBytes: Int = layout.reduce(0) { $0 + $1.bytes }

    /// Register `number` in target byte order; nil for a number gdb was not given.
    public func value(of number: Int) -> [UInt8]? {
        switch number {
        case 0..<16: return le(generalPurpose[number], 8)
        case 16: return le(rip, 8)
        case 17: return le(rflags, 4)
        case 18..<24: return le(UInt64(segmentSelectors[number - 18]), 4)
        case 24..<32: return x87[number - 24]
        case 32..<40: return le(UInt64(x87Control[number - 32]), 4)
        case 40..<56: return xmm[number - 40]
        case 56: return le(UInt64(mxcsr), 4)
        case 57: return le(fsBase, 8)
        case 58: return le(gsBase, 8)
        case 59: return le(kernelGSBase, 8)
        case 60: return le(cr0, 8)
        case 61: return le(cr2, 8)
        case 62: return le(cr3, 8)
        case 63: return le(cr4, 8)
        case 64: return le(cr8, 8)
        case 65: return le(efer, 8)
        default: return nil
        }
    }

    /// Sets register `number` from target-order bytes; false for an unknown number or a wrong width.
    @discardableResult
    public mutating func set(_ number: Int, to bytes: [UInt8]) -> Bool {
        guard number >= 0, number < Self.layout.count, bytes.count == Self.layout[number].bytes else { return false }
        let v = Self.fromLE(bytes)
        switch number {
        case 0..<16: generalPurpose[number] = v
        case 16: rip = v
        case 17: rflags = (rflags & ~0xFFFF_FFFF) | v
        case 18..<24: segmentSelectors[number - 18] = UInt16(truncatingIfNeeded: v)
        case 24..<32: x87[number - 24] = bytes
        case 32..<40:
            var control = x87Control
            control[number - 32] = UInt32(truncatingIfNeeded: v)
            x87Control = control
        case 40..<56: xmm[number - 40] = bytes
        case 56: mxcsr = UInt32(truncatingIfNeeded: v)
        case 57: fsBase = v
        case 58: gsBase = v
        case 59: kernelGSBase = v
        case 60: cr0 = v
        case 61: cr2 = v
        case 62: cr3 = v
        case 63: cr4 = v
        case 64: cr8 = v
        case 65: efer = v
        default: return false
        }
        return true
    }

    /// The `g` reply's bytes: every register in order.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.packetBytes)
        for number in 0..<Self.layout.count { out += value(of: number) ?? [] }
        return out
    }

    /// Registers from a `G` packet's bytes (all of them, in order); nil when the length is wrong.
    public static func decode(_ bytes: [UInt8]) -> X86Registers? {
        guard bytes.count == packetBytes else { return nil }
        var registers = X86Registers()
        var offset = 0
        for (number, info) in layout.enumerated() {
            registers.set(number, to: Array(bytes[offset..<(offset + info.bytes)]))
            offset += info.bytes
        }
        return registers
    }

    var x87Control: [UInt32] {
        get { [fctrl, fstat, ftag, fiseg, fioff, foseg, fooff, fop] }
        set { (fctrl, fstat, ftag, fiseg, fioff, foseg, fooff, fop) = (newValue[0], newValue[1], newValue[2], newValue[3], newValue[4], newValue[5], newValue[6], newValue[7]) }
    }

    func le(_ value: UInt64, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }

    static func fromLE(_ bytes: [UInt8]) -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in bytes.prefix(8).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }
}

// MARK: The target description

extension X86Registers {
    /// target.xml (GDB manual, Appendix G "Target Descriptions"), served through qXfer:features:read.
    public static let targetDescription: String = {
        var xml = """
        <?xml version="1.0"?>
        <!DOCTYPE target SYSTEM "gdb-target.dtd">
        <target version="1.0">
        <architecture>i386:x86-64</architecture>

        """
        for feature in Feature.allCases {
            xml += "<feature name=\"\(feature.rawValue)\">\n"
            xml += types(for: feature)
            for (number, info) in layout.enumerated() where info.feature == feature {
                xml += "  <reg name=\"\(info.name)\" bitsize=\"\(info.bits)\" type=\"\(info.type)\" regnum=\"\(number)\""
                if let group = info.group { xml += " group=\"\(group)\"" }
                xml += "/>\n"
            }
            xml += "</feature>\n"
        }
        return xml + "</target>\n"
    }()

    static func flags(_ id: String, size: Int, _ fields: [(String, Int, Int)]) -> String {
        var s = "  <flags id=\"\(id)\" size=\"\(size)\">\n"
        for (name, start, end) in fields { s += "    <field name=\"\(name)\" start=\"\(start)\" end=\"\(end)\"/>\n" }
        return s + "  </flags>\n"
    }

    static func bits(_ names: [(String, Int)]) -> [(String, Int, Int)] { names.map { ($0.0, $0.1, $0.1) } }

    /// The types a feature's registers use: flag sets with the bits named (SDM Vol. 1 §3.4.3 EFLAGS,
    /// Vol. 3A §2.5 control registers, §2.2.1 IA32_EFER, Vol. 1 §10.2.3 MXCSR) and the vec128 union.
    static func types(for feature: Feature) -> String {
        switch feature {
        case .core:
            return flags("swiftlet_eflags", size: 4, bits([("CF", 0), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8),
                                                          ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17),
                                                          ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21)]) + [("IOPL", 12, 13)])
        case .sse:
            var s = ""
            for (id, type, count) in [("v4f", "ieee_single", 4), ("v2d", "ieee_double", 2),
                                      ("v16i8", "int8", 16), ("v8i16", "int16", 8), ("v4i32", "int32", 4), ("v2i64", "int64", 2)] {
                s += "  <vector id=\"\(id)\" type=\"\(type)\" count=\"\(count)\"/>\n"
            }
            s += "  <union id=\"vec128\">\n"
            for (name, type) in [("v4_float", "v4f"), ("v2_double", "v2d"), ("v16_int8", "v16i8"),
                                 ("v8_int16", "v8i16"), ("v4_int32", "v4i32"), ("v2_int64", "v2i64"), ("uint128", "uint128")] {
                s += "    <field name=\"\(name)\" type=\"\(type)\"/>\n"
            }
            s += "  </union>\n"
            return s + flags("swiftlet_mxcsr", size: 4, bits([("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6),
                                                             ("IM", 7), ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15)]))
        case .segments:
            return ""
        case .system:
            return flags("swiftlet_cr0", size: 8, bits([("PE", 0), ("MP", 1), ("EM", 2), ("TS", 3), ("ET", 4), ("NE", 5), ("WP", 16),
                                                       ("AM", 18), ("NW", 29), ("CD", 30), ("PG", 31)]))
                + flags("swiftlet_cr4", size: 8, bits([("VME", 0), ("PVI", 1), ("TSD", 2), ("DE", 3), ("PSE", 4), ("PAE", 5), ("MCE", 6),
                                                       ("PGE", 7), ("PCE", 8), ("OSFXSR", 9), ("OSXMMEXCPT", 10), ("UMIP", 11),
                                                       ("LA57", 12), ("VMXE", 13), ("SMXE", 14), ("FSGSBASE", 16), ("PCIDE", 17),
                                                       ("OSXSAVE", 18), ("SMEP", 20), ("SMAP", 21), ("PKE", 22)]))
                + flags("swiftlet_efer", size: 8, bits([("SCE", 0), ("LME", 8), ("LMA", 10), ("NXE", 11), ("SVME", 12), ("LMSLE", 13),
                                                        ("FFXSR", 14), ("TCE", 15)]))
        }
    }
}
