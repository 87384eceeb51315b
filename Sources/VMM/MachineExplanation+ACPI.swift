// MachineExplanation+ACPI: the ACPI tables as a kernel built with ACPI finds them (ACPI 6.5 §5.2): the RSDP
// at the address the boot protocol hands over (hvm_start_info.rsdp_paddr, boot_params.acpi_rsdp_addr) or,
// failing that, at 0xE0000 where Linux's legacy scan finds it; the XSDT it points to; each table the XSDT
// lists, plus the DSDT the FADT's X_DSDT names; and the MADT's structures decoded — local APICs, I/O APICs,
// interrupt source overrides, local APIC NMIs. Read back from guest memory and checked as Linux checks
// them (acpi_tb_validate_rsdp, acpi_tb_verify_checksum): signature, length, checksum. What fails a check
// is listed in `problems`, one line each, rather than thrown, so `explain` still shows the rest.
import GuestMemory
import X86Boot

extension MachineExplanation {
    public struct ACPISummary: Sendable {
        /// One System Description Table, by its header.
        public struct Table: Sendable, Equatable {
            public var signature: String
            public var address: UInt64
            public var length: Int
            public var revision: UInt8
            public var oemID: String
            public var oemTableID: String
            /// The bytes of the whole table sum to zero.
            public var checksumValid: Bool
        }

        public struct Processor: Sendable, Equatable {
            public var uid: UInt8
            public var apicID: UInt8
            public var enabled: Bool
        }

        public struct IOAPIC: Sendable, Equatable {
            public var id: UInt8
            public var address: UInt64
            public var gsiBase: UInt32
        }

        public struct SourceOverride: Sendable, Equatable {
            public var bus: UInt8
            public var irq: UInt8
            public var gsi: UInt32
            public var flags: UInt16
        }

        public struct LocalNMI: Sendable, Equatable {
            /// 0xFF: every processor.
            public var uid: UInt8
            public var lint: UInt8
            public var flags: UInt16
        }

        public var rsdp: GuestAddress
        public var rsdpRevision: UInt8
        public var rsdpOEMID: String
        /// Both the ACPI 1.0 checksum (first 20 bytes) and the extended checksum (all 36) are right.
        public var rsdpChecksumsValid: Bool
        public var xsdt: Table?
        /// The XSDT's entries in order, then the DSDT.
        public var tables: [Table]
        public var fadtFlags: UInt32?
        public var dsdtAddress: UInt64?
        public var localAPICAddress: UInt64?
        public var madtFlags: UInt32?
        public var processors: [Processor] = []
        public var ioAPICs: [IOAPIC] = []
        public var overrides: [SourceOverride] = []
        public var localNMIs: [LocalNMI] = []
        /// Checks that failed, one line each; empty for tables Linux accepts.
        public var problems: [String] = []

        public func table(_ signature: String) -> Table? { tables.first { $0.signature == signature } }
        public var hardwareReduced: Bool { (fadtFlags ?? 0) & ACPITables.FADTFlag.hardwareReducedACPI != 0 }
        /// The GSI ISA `irq` arrives on by the MADT: its override, else the same number (ACPI's default).
        public func gsi(forISAIRQ irq: UInt8) -> UInt32 { overrides.first { $0.bus == 0 && $0.irq == irq }?.gsi ?? UInt32(irq) }

        /// Reads the tables whose RSDP is at `address`; nil when there is no "RSD PTR " there.
        init?(memory: GuestMemory, rsdp address: GuestAddress = X86Layout.acpi) throws(GuestMemoryError) {
            let r = try memory.readBytes(at: address, count: ACPITables.rsdpSize)
            guard r.prefix(8).elementsEqual(ACPITables.rsdpSignature.utf8) else { return nil }
            func sum(_ b: some Collection<UInt8>) -> UInt8 { b.reduce(0, &+) }
            rsdp = address
            rsdpRevision = r[15]
            rsdpOEMID = Self.text(r[9..<15])
            rsdpChecksumsValid = sum(r.prefix(ACPITables.rsdpChecksumLength)) == 0
                && (r[15] < 2 || sum(r.prefix(min(max(Int(Self.u32(r, 20)), 20), ACPITables.rsdpSize))) == 0)
            tables = []
            xsdt = nil
            if !rsdpChecksumsValid { problems.append("RSDP at \(address): checksum does not sum to zero") }
            guard rsdpRevision >= 2 else {
                problems.append("RSDP at \(address): revision \(rsdpRevision) has no XSDT address (ACPI 1.0)")
                return
            }
            let xsdtAddress = Self.u64(r, 24)
            guard let xsdtRead = try read(memory, at: xsdtAddress, expecting: "XSDT") else { return }
            xsdt = xsdtRead.table
            let xsdtBytes = xsdtRead.bytes
            for offset in stride(from: ACPITables.headerSize, to: xsdtBytes.count - 7, by: 8) {
                let at = Self.u64(xsdtBytes, offset)
                guard let entry = try read(memory, at: at, expecting: nil) else { continue }
                let (table, bytes) = (entry.table, entry.bytes)
                tables.append(table)
                switch table.signature {
                case "FACP": decodeFADT(bytes)
                case "APIC": decodeMADT(bytes)
                default: break
                }
            }
            if let dsdt = dsdtAddress, dsdt != 0 {
                if let entry = try read(memory, at: dsdt, expecting: "DSDT") { tables.append(entry.table) }
            } else if table("FACP") != nil {
                problems.append("FADT: no X_DSDT or DSDT address")
            }
        }

        /// The table at `at`, checked: signature (when one is expected), a length of at least a header that
        /// stays inside guest memory, and the checksum. Nil (with a problem noted) when unreadable.
        mutating func read(_ memory: GuestMemory, at: UInt64, expecting signature: String?) throws(GuestMemoryError) -> (table: Table, bytes: [UInt8])? {
            let header: [UInt8]
            do { header = try memory.readBytes(at: GuestAddress(at), count: ACPITables.headerSize) } catch {
                problems.append("table at 0x\(hex(at)): outside guest memory"); return nil
            }
            let found = Self.text(header[0..<4])
            if let signature, found != signature {
                problems.append("table at 0x\(hex(at)): signature \"\(found)\", expected \"\(signature)\""); return nil
            }
            let length = Int(Self.u32(header, 4))
            guard length >= ACPITables.headerSize, length <= 1 << 20 else {
                problems.append("\(found) at 0x\(hex(at)): length \(length) is impossible"); return nil
            }
            let bytes: [UInt8]
            do { bytes = try memory.readBytes(at: GuestAddress(at), count: length) } catch {
                problems.append("\(found) at 0x\(hex(at)): its \(length) bytes run outside guest memory"); return nil
            }
            let valid = bytes.reduce(0, &+) == 0
            if !valid { problems.append("\(found) at 0x\(hex(at)): checksum does not sum to zero") }
            let table = Table(signature: found, address: at, length: length, revision: header[8],
                              oemID: Self.text(header[10..<16]), oemTableID: Self.text(header[16..<24]), checksumValid: valid)
            return (table: table, bytes: bytes)
        }

        mutating func decodeFADT(_ f: [UInt8]) {
            guard f.count >= 116 else { problems.append("FADT: \(f.count) bytes, too short for its flags"); return }
            fadtFlags = Self.u32(f, 112)
            let xDSDT = f.count >= 148 ? Self.u64(f, 140) : 0
            dsdtAddress = xDSDT != 0 ? xDSDT : UInt64(Self.u32(f, 40))
        }

        mutating func decodeMADT(_ m: [UInt8]) {
            guard m.count >= ACPITables.headerSize + 8 else { problems.append("MADT: \(m.count) bytes, too short"); return }
            localAPICAddress = UInt64(Self.u32(m, 36))
            madtFlags = Self.u32(m, 40)
            var i = ACPITables.headerSize + 8
            while i + 2 <= m.count {
                let type = m[i], length = Int(m[i + 1])
                guard length >= 2, i + length <= m.count else {
                    problems.append("MADT: structure of type \(type) at +0x\(hex(i)) has length \(length)\(length < 2 ? ", shorter than its own type and length" : ", past the table's end")"); break
                }
                let e = Array(m[i..<i + length])
                switch (type, length) {
                case (ACPITables.MADT.localAPIC, 8):
                    processors.append(Processor(uid: e[2], apicID: e[3], enabled: Self.u32(e, 4) & 1 != 0))
                case (ACPITables.MADT.ioAPIC, 12):
                    ioAPICs.append(IOAPIC(id: e[2], address: UInt64(Self.u32(e, 4)), gsiBase: Self.u32(e, 8)))
                case (ACPITables.MADT.interruptSourceOverride, 10):
                    overrides.append(SourceOverride(bus: e[2], irq: e[3], gsi: Self.u32(e, 4), flags: Self.u16(e, 8)))
                case (ACPITables.MADT.localAPICNMI, 6):
                    localNMIs.append(LocalNMI(uid: e[2], lint: e[5], flags: Self.u16(e, 3)))
                default:
                    break
                }
                i += length
            }
        }

        static func text(_ b: ArraySlice<UInt8>) -> String {
            String(decoding: b.prefix { $0 != 0 }, as: UTF8.self).trimmingSuffix(" ")
        }
        static func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
        static func u32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(u16(b, i)) | UInt32(u16(b, i + 2)) << 16 }
        static func u64(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(u32(b, i)) | UInt64(u32(b, i + 4)) << 32 }
    }
}

extension String {
    fileprivate func trimmingSuffix(_ character: Character) -> String {
        var s = Substring(self)
        while s.last == character { s = s.dropLast() }
        return String(s)
    }
}
