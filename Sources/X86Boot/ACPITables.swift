// ACPITables: the ACPI tables through which a kernel built with ACPI finds its CPUs, its IOAPIC and the
// interrupt wiring (ACPI 6.5 §5.2, "ACPI System Description Tables"). Debian's stock kernels have
// CONFIG_X86_MPPARSE off and read only these; kernels without ACPI read the MP table (MPTable.swift),
// which the VMM keeps writing. Both describe the same machine: same APIC ids, same IOAPIC id and address,
// same ISA interrupt routing (MPTable.InterruptRouting) and, with a PCI bus, the same INTx pins.
//
// At X86Layout.acpi (0xE0000, in the BIOS area Linux scans on 16-byte boundaries for "RSD PTR ", e820
// reserved), each structure 16-byte aligned, in this order:
//   RSDP (§5.2.5.3): "RSD PTR ", revision 2, RSDT address 0, XSDT address, checksum over the first 20
//        bytes and extended checksum over all 36
//   XSDT (§5.2.8):   64-bit pointers to the FADT and the MADT
//   FADT (§5.2.9):   revision 6.5; flags HW_REDUCED_ACPI (no PM timer, SCI, GPE or PM1 blocks: their
//        fields stay zero), power and sleep buttons as control-method devices (none here); IA-PC boot
//        architecture: an 8042, no VGA; X_DSDT → the DSDT (the 32-bit DSDT field stays zero, §5.2.9)
//   MADT (§5.2.12):  local APIC address 0xFEE00000, flags PCAT_COMPAT (KVM_CREATE_IRQCHIP's 8259s exist);
//        one Processor Local APIC structure per vCPU (§5.2.12.2: ACPI processor UID = APIC id = index,
//        enabled), one I/O APIC structure (§5.2.12.3: id = number of CPUs, as in the MP table, 0xFEC00000,
//        GSI base 0), an Interrupt Source Override (§5.2.12.5) for each ISA IRQ the routing puts on
//        another pin, and a Local APIC NMI structure (§5.2.12.7): LINT1 of every processor (UID 0xFF)
//   DSDT (§5.2.11.1): a definition block; with a PCI bus, \_SB.PCI0 (PNP0A03, segment 0, bus 0) with the
//        _CRS windows Linux needs to accept the BARs the VMM assigned (config ports 0xCF8-0xCFF, I/O, the
//        PCI memory window) and a _PRT (§6.2.13) giving each INTx line its GSI (= IOAPIC pin); else empty
// Every table starts with the 36-byte System Description Table Header (§5.2.6) whose checksum makes the
// whole table sum to zero. APIC ids are 8 bits (0xFF broadcast), so 1 to 254 CPUs, as the MP table.
import GuestMemory

public enum ACPITablesError: Error, Equatable, Sendable, CustomStringConvertible {
    case cpuCount(Int)
    case pciInterrupt(device: UInt8, pin: UInt8, ioapicPin: UInt8)
    case misplaced(base: GuestAddress)
    case doesNotFit(size: Int, base: GuestAddress, limit: GuestAddress)
    case memory(GuestMemoryError)

    public var description: String {
        switch self {
        case let .cpuCount(n):
            "--cpus \(n): the ACPI MADT describes 1 to \(ACPITables.maximumCPUs) CPUs (8-bit APIC ids, as the MP table)"
        case let .pciInterrupt(device, pin, ioapicPin):
            "ACPI _PRT entry for PCI device \(device) pin \(pin) on IOAPIC pin \(ioapicPin): devices are 0-31, pins 1-4 (INTA#-INTD#), IOAPIC pins 0-23"
        case let .misplaced(base):
            "ACPI tables at \(base): the RSDP must lie on a 16-byte boundary in 0xe0000-0xfffff, where Linux scans for it"
        case let .doesNotFit(size, base, limit):
            "ACPI tables of \(size) bytes at \(base) do not fit below \(limit)"
        case let .memory(error): "writing the ACPI tables: \(error)"
        }
    }
}

public enum ACPITables {
    public static let maximumCPUs = MPTable.maximumCPUs
    /// OEMID of the RSDP and every header (6 bytes), OEM table id (8 bytes), creator id (4 bytes).
    public static let oemID = "SWIFTL"
    public static let oemTableID = "SWIFTLET"
    public static let creatorID = "SWFT"

    public static let rsdpSignature = "RSD PTR "
    /// ACPI 2.0+ RSDP: 36 bytes, with the XSDT address and the extended checksum.
    public static let rsdpRevision: UInt8 = 2
    public static let rsdpSize = 36
    /// The RSDP's legacy checksum covers its first 20 bytes (the ACPI 1.0 structure).
    public static let rsdpChecksumLength = 20
    public static let headerSize = 36
    /// Revisions: XSDT 1, FADT 6 (minor 5: ACPI 6.5), MADT 5 (ACPI 6.3+), DSDT 2 (64-bit AML integers).
    public static let xsdtRevision: UInt8 = 1
    public static let fadtRevision: UInt8 = 6
    public static let fadtMinorRevision: UInt8 = 5
    public static let madtRevision: UInt8 = 5
    public static let dsdtRevision: UInt8 = 2
    /// sizeof(FADT) for revision 6: through the Hypervisor Vendor Identity.
    public static let fadtSize = 276

    /// FADT Fixed Feature Flags (§5.2.9, Table 5.10).
    public enum FADTFlag {
        public static let powerButton: UInt32 = 1 << 4
        public static let sleepButton: UInt32 = 1 << 5
        public static let hardwareReducedACPI: UInt32 = 1 << 20
    }

    /// IA-PC Boot Architecture Flags (§5.2.9.3).
    public enum BootArchitectureFlag {
        public static let has8042: UInt16 = 1 << 1
        public static let vgaNotPresent: UInt16 = 1 << 2
    }

    /// MADT flags (§5.2.12, Table 5.43) and structure types (Table 5.44).
    public enum MADT {
        public static let pcatCompatible: UInt32 = 1
        public static let localAPIC: UInt8 = 0
        public static let ioAPIC: UInt8 = 1
        public static let interruptSourceOverride: UInt8 = 2
        public static let localAPICNMI: UInt8 = 4
        public static let localAPICSize = 8
        public static let ioAPICSize = 12
        public static let interruptSourceOverrideSize = 10
        public static let localAPICNMISize = 6
        /// Local APIC flags: Enabled.
        public static let enabled: UInt32 = 1
        /// ACPI processor UID meaning "all processors" in a Local APIC NMI structure.
        public static let allProcessors: UInt8 = 0xFF
    }

    /// Where each table went.
    public struct Layout: Sendable, Equatable {
        public var rsdp: GuestAddress
        public var xsdt: GuestAddress
        public var fadt: GuestAddress
        public var madt: GuestAddress
        public var dsdt: GuestAddress
        /// All of it, from the RSDP to the DSDT's last byte.
        public var size: Int
    }

    /// The encoded tables: `bytes` go at `layout.rsdp`.
    public struct Encoded: Sendable {
        public var layout: Layout
        public var bytes: [UInt8]
    }

    /// The ISA IRQs the routing puts on a pin other than their own: the MADT's interrupt source overrides.
    public static func overrides(_ routing: MPTable.InterruptRouting) -> [(irq: UInt8, gsi: UInt8)] {
        (UInt8(0)..<16).compactMap { irq in
            guard let pin = routing.ioapicPin(forISAIRQ: irq), pin != irq else { return nil }
            return (irq, pin)
        }
    }

    /// The tables' size for `cpus` CPUs (each table 16-byte aligned).
    public static func size(cpus: Int, routing: MPTable.InterruptRouting, pciBus: MPTable.PCIBus? = nil) -> Int {
        let sizes = [rsdpSize, headerSize + 16, fadtSize, madtSize(cpus: cpus, routing: routing),
                     headerSize + dsdtBody(pciBus: pciBus).count]
        return sizes.dropLast().map(align16).reduce(0, +) + sizes.last!
    }

    static func madtSize(cpus: Int, routing: MPTable.InterruptRouting) -> Int {
        headerSize + 8 + cpus * MADT.localAPICSize + MADT.ioAPICSize
            + overrides(routing).count * MADT.interruptSourceOverrideSize + MADT.localAPICNMISize
    }

    static func align16(_ n: Int) -> Int { (n + 15) & ~15 }

    /// RSDP, XSDT, FADT, MADT and DSDT for placement at `base`.
    public static func encode(cpus: Int, at base: GuestAddress = X86Layout.acpi, routing: MPTable.InterruptRouting,
                              pciBus: MPTable.PCIBus? = nil) throws(ACPITablesError) -> Encoded {
        guard cpus >= 1, cpus <= maximumCPUs else { throw .cpuCount(cpus) }
        for i in pciBus?.interrupts ?? [] where i.device > 31 || !(1...4).contains(i.pin) || i.ioapicPin >= MPTable.ioAPICPins {
            throw .pciInterrupt(device: i.device, pin: i.pin, ioapicPin: i.ioapicPin)
        }
        guard base.rawValue % 16 == 0, base >= X86Layout.acpi, base < X86Layout.highMemory else { throw .misplaced(base: base) }
        let limit = base < X86Layout.acpiEnd ? X86Layout.acpiEnd : X86Layout.highMemory
        let total = size(cpus: cpus, routing: routing, pciBus: pciBus)
        guard UInt64(total) <= limit.rawValue - base.rawValue else { throw .doesNotFit(size: total, base: base, limit: limit) }

        let dsdtTable = table("DSDT", revision: dsdtRevision, body: dsdtBody(pciBus: pciBus))
        let madtTable = table("APIC", revision: madtRevision, body: madtBody(cpus: cpus, routing: routing))
        let xsdtAddress = base.rawValue + UInt64(align16(rsdpSize))
        let fadtAddress = xsdtAddress + UInt64(align16(headerSize + 16))
        let madtAddress = fadtAddress + UInt64(align16(fadtSize))
        let dsdtAddress = madtAddress + UInt64(align16(madtTable.count))
        let fadtTable = table("FACP", revision: fadtRevision, body: fadtBody(dsdt: dsdtAddress))
        let xsdtTable = table("XSDT", revision: xsdtRevision, body: le(fadtAddress) + le(madtAddress))

        var bytes = rsdp(xsdt: xsdtAddress)
        for (address, t) in [(xsdtAddress, xsdtTable), (fadtAddress, fadtTable), (madtAddress, madtTable), (dsdtAddress, dsdtTable)] {
            bytes += [UInt8](repeating: 0, count: Int(address - base.rawValue) - bytes.count) + t
        }
        precondition(bytes.count == total, "ACPI size() and encode() disagree")
        return Encoded(layout: Layout(rsdp: base, xsdt: GuestAddress(xsdtAddress), fadt: GuestAddress(fadtAddress),
                                      madt: GuestAddress(madtAddress), dsdt: GuestAddress(dsdtAddress), size: total),
                       bytes: bytes)
    }

    /// Writes the tables at `base` and says where they went; the RSDP's address is `layout.rsdp`.
    public static func write(cpus: Int, into memory: GuestMemory, at base: GuestAddress = X86Layout.acpi,
                             routing: MPTable.InterruptRouting, pciBus: MPTable.PCIBus? = nil) throws(ACPITablesError) -> (layout: Layout, placement: BootPlacement) {
        let encoded = try encode(cpus: cpus, at: base, routing: routing, pciBus: pciBus)
        do { try memory.write(bytes: encoded.bytes, at: base) } catch { throw .memory(error) }
        let l = encoded.layout
        let isos = overrides(routing).count
        let pci = pciBus.map { ", DSDT with \\_SB.PCI0 and \($0.interrupts.count) _PRT entr\($0.interrupts.count == 1 ? "y" : "ies")" } ?? ", empty DSDT"
        let what = "ACPI tables: RSDP → XSDT \(l.xsdt) → FADT \(l.fadt) (HW-reduced, X_DSDT \(l.dsdt)), MADT \(l.madt) (\(cpus) local APIC\(cpus == 1 ? "" : "s"), IOAPIC id \(cpus), \(isos) interrupt source override\(isos == 1 ? "" : "s"), LINT1 NMI)\(pci)"
        return (l, BootPlacement(what, base: base, length: UInt64(encoded.bytes.count)))
    }

    // MARK: The structures

    static func rsdp(xsdt: UInt64) -> [UInt8] {
        var r = [UInt8](repeating: 0, count: rsdpSize)
        r.replaceSubrange(0..<8, with: Array(rsdpSignature.utf8))
        r.replaceSubrange(9..<15, with: Array(oemID.utf8))
        r[15] = rsdpRevision
        put(&r, 16, UInt32(0))                                  // RsdtAddress: none, the XSDT serves
        put(&r, 20, UInt32(rsdpSize))                           // Length
        put(&r, 24, xsdt)                                       // XsdtAddress
        r[8] = MPTable.checksum(Array(r[0..<rsdpChecksumLength]))
        r[32] = MPTable.checksum(r)                             // Extended Checksum (bytes 33-35 reserved)
        return r
    }

    /// The System Description Table Header (§5.2.6) followed by `body`, with the checksum that zeroes the sum.
    static func table(_ signature: String, revision: UInt8, body: [UInt8]) -> [UInt8] {
        var t = [UInt8](repeating: 0, count: headerSize)
        t.replaceSubrange(0..<4, with: Array(signature.utf8))
        put(&t, 4, UInt32(headerSize + body.count))
        t[8] = revision
        t.replaceSubrange(10..<16, with: Array(oemID.utf8))
        t.replaceSubrange(16..<24, with: Array(oemTableID.utf8))
        put(&t, 24, UInt32(1))                                  // OEM Revision
        t.replaceSubrange(28..<32, with: Array(creatorID.utf8))
        put(&t, 32, UInt32(1))                                  // Creator Revision
        t += body
        t[9] = MPTable.checksum(t)
        return t
    }

    /// The FADT after its header (offsets below are from the table's start).
    static func fadtBody(dsdt: UInt64) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: fadtSize)
        // 36 FIRMWARE_CTRL, 40 DSDT: zero (no FACS; X_DSDT below). 46 SCI_INT, 48 SMI_CMD, the PM and GPE
        // blocks 56-95: zero, as a hardware-reduced platform has none.
        put(&f, 109, BootArchitectureFlag.has8042 | BootArchitectureFlag.vgaNotPresent) // IAPC_BOOT_ARCH
        put(&f, 112, FADTFlag.hardwareReducedACPI | FADTFlag.powerButton | FADTFlag.sleepButton)
        f[131] = fadtMinorRevision
        put(&f, 140, dsdt)                                      // X_DSDT
        f.replaceSubrange(268..<276, with: Array("SWIFTLET".utf8)) // Hypervisor Vendor Identity
        return Array(f[headerSize...])
    }

    static func madtBody(cpus: Int, routing: MPTable.InterruptRouting) -> [UInt8] {
        var m = le(UInt32(X86Layout.localAPIC.rawValue)) + le(MADT.pcatCompatible)
        for id in 0..<cpus {
            // ACPI Processor UID = APIC id = vCPU index.
            m += [MADT.localAPIC, UInt8(MADT.localAPICSize), UInt8(id), UInt8(id)] + le(MADT.enabled)
        }
        m += [MADT.ioAPIC, UInt8(MADT.ioAPICSize), UInt8(cpus), 0] + le(UInt32(X86Layout.ioAPIC.rawValue)) + le(UInt32(0))
        for o in overrides(routing) {
            // Bus 0 (ISA), flags 0: polarity and trigger mode conform to the bus (active high, edge), as in the MP table.
            m += [MADT.interruptSourceOverride, UInt8(MADT.interruptSourceOverrideSize), 0, o.irq] + le(UInt32(o.gsi)) + le(UInt16(0))
        }
        m += [MADT.localAPICNMI, UInt8(MADT.localAPICNMISize), MADT.allProcessors] + le(UInt16(0)) + [1] // LINT1
        return m
    }

    /// The DSDT's AML: nothing without PCI; with it, the host bridge Linux's acpi_pci_root driver binds to.
    static func dsdtBody(pciBus: MPTable.PCIBus?) -> [UInt8] {
        guard let pciBus else { return [] }
        let window = X86Layout.pciMemoryWindow.rawValue, windowEnd = X86Layout.pciMemoryWindowEnd.rawValue
        let resources = AML.resourceTemplate([
            AML.wordAddressSpace(resourceType: 2, typeFlags: 0, minimum: 0, maximum: 0),          // bus 0
            AML.ioPort(minimum: 0xCF8, maximum: 0xCF8, alignment: 1, length: 8),                  // CONFIG_ADDRESS/DATA
            AML.wordAddressSpace(resourceType: 1, typeFlags: 3, minimum: 0x0000, maximum: 0x0CF7), // I/O below them
            AML.wordAddressSpace(resourceType: 1, typeFlags: 3, minimum: 0x0D00, maximum: 0xFFFF), // and above
            AML.dwordMemory(minimum: UInt32(window), maximum: UInt32(windowEnd - 1)),              // the BAR window
        ])
        // _PRT entries (§6.2.13): { address 0xDDDDFFFF (device, any function), pin 0-3, source 0 (a GSI), GSI }.
        let routes = pciBus.interrupts.map { i in
            AML.package([AML.integer(UInt64(i.device) << 16 | 0xFFFF), AML.integer(UInt64(i.pin - 1)),
                         AML.integer(0), AML.integer(UInt64(i.ioapicPin))])
        }
        let bridge = AML.name("_HID", AML.eisaID("PNP0A03")) + AML.name("_UID", AML.integer(0))
            + AML.name("_SEG", AML.integer(0)) + AML.name("_BBN", AML.integer(0))
            + AML.name("_CRS", resources) + AML.name("_PRT", AML.package(routes))
        return AML.scope("\\_SB", AML.device("PCI0", bridge))
    }
}
