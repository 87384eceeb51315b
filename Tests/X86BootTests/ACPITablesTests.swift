// Tests for the ACPI tables (ACPI 6.5 §5.2): every table's checksum, signature, length and revision; the
// pointers from the RSDP through the XSDT to the FADT and MADT and from the FADT to the DSDT, followed in
// guest memory as Linux follows them; the MADT entries against the MP table's; placement and size limits;
// the DSDT's AML; and, where acpica-tools is installed, `iasl -d` decompiling the tables without errors.
import Glibc
import GuestMemory
import Testing
import TestSupport
@testable import X86Boot

/// The tables as Linux finds them in guest memory: from the RSDP through the XSDT.
struct ACPIInMemory {
    typealias F = LinuxFixtures
    var rsdp: [UInt8]
    /// Signature → (address, bytes) for the XSDT, every table it points to, and the FADT's DSDT.
    var tables: [String: (address: UInt64, bytes: [UInt8])] = [:]

    init(memory: GuestMemory, rsdp address: GuestAddress = X86Layout.acpi) throws {
        rsdp = try memory.readBytes(at: address, count: ACPITables.rsdpSize)
        func table(_ at: UInt64) throws -> [UInt8] {
            let length = try memory.read(UInt32.self, at: GuestAddress(at + 4))
            return try memory.readBytes(at: GuestAddress(at), count: Int(length))
        }
        let xsdtAddress = F.u64(rsdp, 24)
        let xsdt = try table(xsdtAddress)
        tables["XSDT"] = (xsdtAddress, xsdt)
        for i in stride(from: ACPITables.headerSize, to: xsdt.count, by: 8) {
            let at = F.u64(xsdt, i)
            let t = try table(at)
            tables[String(decoding: t[0..<4], as: UTF8.self)] = (at, t)
        }
        if let fadt = tables["FACP"]?.bytes {
            let at = F.u64(fadt, 140)
            tables["DSDT"] = (at, try table(at))
        }
    }

    func sum(_ bytes: some Collection<UInt8>) -> UInt8 { bytes.reduce(0, &+) }

    /// MADT structures after the 44-byte fixed part: (type, bytes).
    var madtEntries: [(type: UInt8, bytes: [UInt8])] {
        guard let madt = tables["APIC"]?.bytes else { return [] }
        var entries: [(UInt8, [UInt8])] = []
        var i = ACPITables.headerSize + 8
        while i + 2 <= madt.count, madt[i + 1] > 0 {
            entries.append((madt[i], Array(madt[i..<min(madt.count, i + Int(madt[i + 1]))])))
            i += Int(madt[i + 1])
        }
        return entries
    }
}

@Suite struct ACPITablesTests {
    typealias F = LinuxFixtures

    func written(cpus: Int, routing: MPTable.InterruptRouting = .identity, pciBus: MPTable.PCIBus? = nil) throws -> (GuestMemory, ACPIInMemory) {
        let memory = try F.memory(megabytes: 4)
        _ = try ACPITables.write(cpus: cpus, into: memory, routing: routing, pciBus: pciBus)
        return (memory, try ACPIInMemory(memory: memory))
    }

    @Test(arguments: [1, 2, 4, 64, 254])
    func everyTableIsFoundValidAndSumsToZero(cpus: Int) throws {
        let (_, acpi) = try written(cpus: cpus, pciBus: MPTable.PCIBus(interrupts: [.init(device: 1, pin: 1, ioapicPin: 16)]))
        // RSDP: signature, revision 2, length 36, both checksums.
        #expect(acpi.rsdp[0..<8].elementsEqual("RSD PTR ".utf8))
        #expect(acpi.rsdp[9..<15].elementsEqual("SWIFTL".utf8))
        #expect(acpi.rsdp[15] == 2)
        #expect(F.u32(acpi.rsdp, 16) == 0, "no RSDT: the XSDT serves")
        #expect(F.u32(acpi.rsdp, 20) == 36)
        #expect(acpi.sum(acpi.rsdp[0..<20]) == 0, "ACPI 1.0 checksum")
        #expect(acpi.sum(acpi.rsdp) == 0, "extended checksum")
        // Each table: signature, the length its header states, revision, OEM ids, zero sum.
        let expected: [String: (revision: UInt8, length: Int?)] = [
            "XSDT": (1, 36 + 16), "FACP": (6, 276), "APIC": (5, 36 + 8 + cpus * 8 + 12 + 6), "DSDT": (2, nil),
        ]
        #expect(Set(acpi.tables.keys) == Set(expected.keys))
        for (signature, want) in expected {
            let t = try #require(acpi.tables[signature], "\(signature) reachable from the RSDP")
            #expect(t.bytes[0..<4].elementsEqual(signature.utf8))
            if let length = want.length { #expect(t.bytes.count == length, "\(signature) length") }
            #expect(t.bytes[8] == want.revision, "\(signature) revision")
            #expect(t.bytes[10..<16].elementsEqual("SWIFTL".utf8))
            #expect(t.bytes[16..<24].elementsEqual("SWIFTLET".utf8))
            #expect(acpi.sum(t.bytes) == 0, "\(signature) checksum")
            #expect(t.address % 16 == 0, "\(signature) 16-byte aligned")
            #expect(t.address >= X86Layout.acpi.rawValue && t.address + UInt64(t.bytes.count) <= X86Layout.acpiEnd.rawValue,
                    "\(signature) lies in the ACPI area, below the MP table")
        }
    }

    /// ACPI 6.5 §5.2.5.1: on IA-PC systems the OS finds the RSDP on a 16-byte boundary in the BIOS area
    /// 0xE0000–0xFFFFF; Linux scans exactly there when no boot protocol hands the pointer over.
    @Test func theRSDPIsWhereLinuxScansForIt() throws {
        let memory = try F.memory(megabytes: 4)
        _ = try ACPITables.write(cpus: 2, into: memory, routing: .identity)
        var found: [UInt64] = []
        for address in stride(from: UInt64(0xE_0000), to: 0x10_0000, by: 16)
        where try memory.readBytes(at: GuestAddress(address), count: 8).elementsEqual("RSD PTR ".utf8) {
            found.append(address)
        }
        #expect(found == [0xE_0000], "one RSDP, at the start of the scanned area")
    }

    /// Every table the RSDP leads to lies inside the area the layout reserves (ACPITables.size), and no two
    /// overlap: what is written is what was reserved, checked by following the pointers in guest memory.
    @Test(arguments: [1, 2, 64, 254])
    func theTablesLieInsideTheReservedAreaWithoutOverlapping(cpus: Int) throws {
        let (_, acpi) = try written(cpus: cpus, pciBus: MPTable.PCIBus(interrupts: [.init(device: 1, pin: 1, ioapicPin: 16)]))
        let start = X86Layout.acpi.rawValue
        let end = start + UInt64(ACPITables.size(cpus: cpus, routing: .identity,
                                                   pciBus: MPTable.PCIBus(interrupts: [.init(device: 1, pin: 1, ioapicPin: 16)])))
        var ranges = [(start, start + UInt64(acpi.rsdp.count), "RSDP")]
        for (signature, t) in acpi.tables { ranges.append((t.address, t.address + UInt64(t.bytes.count), signature)) }
        for (lower, upper, name) in ranges { #expect(lower >= start && upper <= end, "\(name) [\(hex(lower)), \(hex(upper))) outside [\(hex(start)), \(hex(end)))") }
        let sorted = ranges.sorted { $0.0 < $1.0 }
        for (a, b) in zip(sorted, sorted.dropFirst()) { #expect(a.1 <= b.0, "\(a.2) overlaps \(b.2)") }
    }

    /// The pointers, followed in guest memory as Linux follows them: the RSDP's XsdtAddress (offset 24), the
    /// XSDT's entries (from offset 36), the FADT's X_DSDT (offset 140) each land on the signature they should.
    @Test func theXSDTPointsAtTheFADTAndTheMADTAndTheFADTAtTheDSDT() throws {
        let (memory, acpi) = try written(cpus: 2)
        func signature(at address: UInt64) throws -> String {
            String(decoding: try memory.readBytes(at: GuestAddress(address), count: 4), as: UTF8.self)
        }
        let xsdtAddress = F.u64(acpi.rsdp, 24)
        #expect(try signature(at: xsdtAddress) == "XSDT")
        let xsdt = try #require(acpi.tables["XSDT"]).bytes
        #expect(F.u32(xsdt, 4) == 36 + 2 * 8, "two 64-bit entries")
        #expect(try signature(at: F.u64(xsdt, 36)) == "FACP")
        #expect(try signature(at: F.u64(xsdt, 44)) == "APIC")
        let fadt = try #require(acpi.tables["FACP"]).bytes
        #expect(F.u32(fadt, 40) == 0, "the 32-bit DSDT stays zero when X_DSDT is set")
        #expect(try signature(at: F.u64(fadt, 140)) == "DSDT")
    }

    @Test func theFADTDescribesAHardwareReducedPlatform() throws {
        let (_, acpi) = try written(cpus: 1)
        let fadt = try #require(acpi.tables["FACP"]).bytes
        #expect(F.u32(fadt, 112) & (1 << 20) != 0, "HW_REDUCED_ACPI")
        #expect(fadt[131] == 5, "FADT minor version: ACPI 6.5")
        #expect(F.u16(fadt, 46) == 0, "no SCI")
        #expect(fadt[56..<96].allSatisfy { $0 == 0 }, "no PM1, PM2, PM timer or GPE blocks")
        #expect(F.u16(fadt, 109) & 0x2 != 0, "IAPC_BOOT_ARCH: 8042 present")
        #expect(fadt[268..<276].elementsEqual("SWIFTLET".utf8))
    }

    @Test(arguments: [1, 2, 8, 254])
    func theMADTHasOneLocalAPICPerCPUTheIOAPICAndLINT1NMI(cpus: Int) throws {
        let (_, acpi) = try written(cpus: cpus)
        let madt = try #require(acpi.tables["APIC"]).bytes
        #expect(F.u32(madt, 36) == 0xFEE0_0000)
        #expect(F.u32(madt, 40) == 1, "PCAT_COMPAT")
        let entries = acpi.madtEntries
        let lapics = entries.filter { $0.type == 0 }
        #expect(lapics.count == cpus)
        for (i, e) in lapics.enumerated() {
            #expect(e.bytes.count == 8)
            #expect(e.bytes[2] == UInt8(i) && e.bytes[3] == UInt8(i), "processor UID = APIC id = index")
            #expect(F.u32(e.bytes, 4) == 1, "enabled")
        }
        let ioapics = entries.filter { $0.type == 1 }
        #expect(ioapics.count == 1)
        let io = try #require(ioapics.first).bytes
        #expect(io[2] == UInt8(cpus), "the MP table's IOAPIC id")
        #expect(F.u32(io, 4) == 0xFEC0_0000)
        #expect(F.u32(io, 8) == 0, "GSI base")
        #expect(entries.filter { $0.type == 2 }.isEmpty, "identity routing needs no source override")
        let nmi = try #require(entries.first { $0.type == 4 }).bytes
        #expect(nmi == [4, 6, 0xFF, 0, 0, 1], "LINT1 of every processor, flags conforming")
        #expect(entries.count == cpus + 2)
    }

    @Test func overridesMirrorTheMPTablesRoutingExactly() throws {
        let (memory, acpi) = try written(cpus: 2, routing: .pcCompatible)
        _ = try MPTable.write(cpus: 2, into: memory, routing: .pcCompatible)
        let overrides = acpi.madtEntries.filter { $0.type == 2 }
        #expect(overrides.map(\.bytes) == [[2, 10, 0, 0] + F.le32(2) + [0, 0]], "IRQ 0 → GSI 2, bus ISA, conforming")
        // Every ISA IRQ lands on the same IOAPIC pin in both tables (ACPI: identity unless overridden).
        for irq in UInt8(0)..<16 where irq != 2 {
            let gsi = overrides.first { $0.bytes[3] == irq }.map { F.u32($0.bytes, 4) } ?? UInt32(irq)
            #expect(MPTable.InterruptRouting.pcCompatible.ioapicPin(forISAIRQ: irq).map(UInt32.init) == gsi, "IRQ \(irq)")
        }
    }

    @Test func theDSDTIsEmptyWithoutPCIAndDescribesTheHostBridgeWithIt() throws {
        let (_, plain) = try written(cpus: 1)
        #expect(try #require(plain.tables["DSDT"]).bytes.count == 36)
        let (_, pci) = try written(cpus: 1, pciBus: MPTable.PCIBus(interrupts: [.init(device: 1, pin: 1, ioapicPin: 17)]))
        let aml = Array(try #require(pci.tables["DSDT"]).bytes[36...])
        func contains(_ needle: [UInt8]) -> Bool {
            aml.indices.contains { i in i + needle.count <= aml.count && Array(aml[i..<i + needle.count]) == needle }
        }
        #expect(aml.first == 0x10, "Scope(\\_SB)")
        #expect(contains([0x5B, 0x82]) && contains(Array("PCI0".utf8)), "Device(PCI0)")
        #expect(contains([0x08] + Array("_HID".utf8) + [0x0C, 0x41, 0xD0, 0x0A, 0x03]), "EisaId(\"PNP0A03\")")
        #expect(contains([0x87, 0x17, 0x00, 0x00, 0x0C, 0x01, 0, 0, 0, 0] + F.le32(0xE000_0000) + F.le32(0xEFFF_FFFF)),
                "DWordMemory over the PCI window")
        #expect(contains([0x12, 0x0B, 0x04, 0x0C] + F.le32(0x1_FFFF) + [0x00, 0x00, 0x0A, 17]),
                "_PRT: device 1 INTA# → GSI 17")
    }

    @Test func amlPackageLengthsUseAsManyBytesAsNeeded() {
        #expect(AML.packageLength(0) == [1])
        #expect(AML.packageLength(62) == [63])
        #expect(AML.packageLength(63) == [0x41, 0x04], "65 = 0x41: two bytes, low nibble 1, then 0x04")
        #expect(AML.packageLength(0x1000) == [0x83, 0x00, 0x01], "4099 = 0x1003 needs three bytes")
        #expect(AML.integer(0) == [0x00] && AML.integer(1) == [0x01] && AML.integer(0x1FFFF) == [0x0C, 0xFF, 0xFF, 0x01, 0x00])
        #expect(AML.nameString("\\_SB.PCI0") == [0x5C, 0x2E] + Array("_SB_PCI0".utf8))
    }

    @Test func refusesImpossibleCPUCountsAndPlacements() {
        #expect(throws: ACPITablesError.cpuCount(0)) { try ACPITables.encode(cpus: 0, routing: .identity) }
        #expect(throws: ACPITablesError.cpuCount(255)) { try ACPITables.encode(cpus: 255, routing: .identity) }
        #expect(throws: ACPITablesError.misplaced(base: GuestAddress(0xE_0008))) {
            try ACPITables.encode(cpus: 1, at: GuestAddress(0xE_0008), routing: .identity)
        }
        #expect(throws: ACPITablesError.misplaced(base: GuestAddress(0x9_0000))) {
            try ACPITables.encode(cpus: 1, at: GuestAddress(0x9_0000), routing: .identity)
        }
        // 254 CPUs fit below the MP table; squeezed against it they do not, and say so.
        #expect(ACPITables.size(cpus: 254, routing: .pcCompatible) < 0x1_0000)
        let size = ACPITables.size(cpus: 254, routing: .identity)
        let tight = GuestAddress((X86Layout.acpiEnd.rawValue - UInt64(size) + 16) & ~0xF)
        #expect(throws: ACPITablesError.doesNotFit(size: size, base: tight, limit: X86Layout.acpiEnd)) {
            try ACPITables.encode(cpus: 254, at: tight, routing: .identity)
        }
        #expect(ACPITablesError.cpuCount(300).description.contains("--cpus 300"))
        #expect(!ACPITablesError.doesNotFit(size: 1, base: tight, limit: X86Layout.acpiEnd).description.contains("\n"))
    }

    @Test func theAreaIsReservedInTheE820MapAndClearOfTheMPTable() throws {
        let memory = try F.memory(megabytes: 64)
        let map = E820.map(for: memory)
        #expect(!E820.isRAM(map, base: X86Layout.acpi.rawValue, length: 1))
        #expect(map.contains { $0.type == .reserved && $0.base.rawValue <= X86Layout.acpi.rawValue && X86Layout.acpiEnd.rawValue <= $0.end })
        #expect(X86Layout.acpiEnd <= X86Layout.mpTable)
    }

    @Test func theBootProtocolsHandTheRSDPToTheKernel() throws {
        let rsdp = X86Layout.acpi
        // bzImage 2.15: boot_params.acpi_rsdp_addr at 0x070.
        let image = try LinuxBzImage(F.BzImage().bytes)
        let page = image.zeroPage(commandLine: X86Layout.commandLine, initrd: nil, memoryMap: [], acpiRSDP: rsdp)
        #expect(F.u64(page, 0x070) == 0xE_0000)
        // A 2.13 kernel does not read it: the field stays zero (it finds the RSDP by scanning).
        var old = F.BzImage(); old.version = 0x020D
        let oldPage = try LinuxBzImage(old.bytes).zeroPage(commandLine: X86Layout.commandLine, initrd: nil, memoryMap: [], acpiRSDP: rsdp)
        #expect(F.u64(oldPage, 0x070) == 0)
        // PVH: hvm_start_info.rsdp_paddr at +32.
        let info = HVMStartInfo.encode(at: X86Layout.pvhStartInfo, commandLine: X86Layout.commandLine, modules: [], memoryMap: [], rsdp: rsdp)
        #expect(F.u64(info, 32) == 0xE_0000)
        #expect(F.u64(HVMStartInfo.encode(at: X86Layout.pvhStartInfo, commandLine: nil, modules: [], memoryMap: []), 32) == 0)
    }
}

/// acpica-tools' disassembler as the independent judge: the tables dumped from guest memory, one file per
/// table as acpixtract would write them, decompiled by `iasl -d`, which reports bad checksums and lengths.
@Suite struct ACPITablesIASLTests {
    static let iasl: String? = ["/usr/bin/iasl", "/usr/local/bin/iasl"].first { (path: String) in access(path, X_OK) == 0 }
    static let reason = "iasl is not installed (apt-get install acpica-tools; setup.sh does)"

    @Test(.enabled(if: Prerequisite.available(iasl != nil), Comment(rawValue: reason)), arguments: [false, true])
    func iaslDecompilesEveryTableWithoutErrors(pci: Bool) throws {
        let iasl = try #require(Self.iasl)
        let memory = try LinuxFixtures.memory(megabytes: 4)
        let bus = pci ? MPTable.PCIBus(interrupts: [.init(device: 1, pin: 1, ioapicPin: 16)]) : nil
        _ = try ACPITables.write(cpus: 4, into: memory, routing: .pcCompatible, pciBus: bus)
        let acpi = try ACPIInMemory(memory: memory)
        // SWIFTLET_ACPI_DUMP=DIR keeps the .dat and .dsl files there, to read the tables as ASL.
        let keep = getenv("SWIFTLET_ACPI_DUMP").map { String(cString: $0) }
        let dir = keep.map { "\($0)/\(pci ? "pci" : "plain")" } ?? "/tmp/swiftlet-acpi-\(getpid())-\(pci)"
        if let keep { mkdir(keep, 0o755) }
        mkdir(dir, 0o755)
        defer { if keep == nil { _ = ProcessRunner.run("/bin/rm", ["-rf", dir]) } }
        // The RSDP has no table header: iasl (20200925, Debian 12) calls a lone RSDP "not a valid ACPI table",
        // so its two checksums are checked above and here only the tables it points to go to iasl.
        let files = acpi.tables.map { ($0.key.lowercased(), $0.value.bytes) }
        for (name, bytes) in files {
            ProcessRunner.writeFile("\(dir)/\(name).dat", bytes)
            let r = ProcessRunner.run(iasl, ["-p", "\(dir)/\(name)", "-d", "\(dir)/\(name).dat"])
            let output = r.stdout + r.stderr
            #expect(r.status == 0, "iasl -d \(name).dat: \(output)")
            #expect(!output.contains("Error") && !output.lowercased().contains("invalid checksum")
                    && !output.contains("Incorrect checksum"), "\(name): \(output)")
            let dsl = ProcessRunner.readFile("\(dir)/\(name).dsl")
            #expect(!dsl.isEmpty, "iasl wrote \(name).dsl")
            #expect(!dsl.contains("Incorrect checksum") && !dsl.contains("**** ") && !dsl.contains("Warning"),
                    "\(name).dsl flags a problem:\n\(dsl)")
            #expect(dsl.contains("Checksum"), "\(name).dsl has its header decoded")
            if name == "dsdt" && pci {
                #expect(dsl.contains("PNP0A03") && dsl.contains("_PRT") && dsl.contains("0xE0000000"), "\(dsl)")
            }
            if name == "apic" {
                #expect(dsl.contains("Processor Local APIC"), "\(dsl)")
                #expect(dsl.contains("Interrupt Source Override"), "\(dsl)")
            }
        }
    }
}
