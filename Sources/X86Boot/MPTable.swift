// MPTable: the Intel MultiProcessor Specification 1.4 tables (chapter 4, "MP Configuration Table"), how a
// kernel without ACPI finds its CPUs, its IOAPIC and the wiring of the ISA interrupts (Linux:
// arch/x86/kernel/mpparse.c, CONFIG_X86_MPPARSE, which tinyconfig forces on without ACPI).
//
// At X86Layout.mpTable (0xF0000, in the BIOS ROM area Linux scans, e820 reserved):
//   +0x00  MP floating pointer structure (§4.1): "_MP_", pointer to the configuration table, length 1
//          (16 bytes), spec revision 4, checksum, feature byte 1 = 0 (a configuration table is present),
//          feature byte 2 = 0 (virtual-wire mode, no IMCR)
//   +0x10  configuration table header (§4.2): "PCMP", base table length, revision 4, checksum, OEM id
//          "SWIFTLET", product id, entry count, local APIC address 0xFEE00000
//   then the base table entries (§4.3), in the order the spec requires:
//          one processor entry per vCPU (APIC id = index, version 0x14, enabled, BSP on vCPU 0),
//          one bus entry "ISA   " (bus 0), one I/O APIC entry (id = number of CPUs, version 0x11,
//          0xFEC00000), the I/O interrupt assignments of ISA IRQs 0-15 (see InterruptRouting), and two
//          local interrupt assignments: ExtINT (the 8259) on LINT0 of the BSP, NMI on LINT1 of every CPU.
//          With a PCI bus (`PCIBus`), bus 0 is "PCI   " and ISA becomes bus 1, and after the ISA interrupts
//          comes one I/O interrupt assignment per wired INTx pin: source bus 0, source IRQ
//          (device << 2) | (pin - 1) (§D.3, "PCI interrupts"), level-triggered and active low as PCI INTx#
//          lines are. Linux matches these in IO_APIC_get_PCI_irq_vector: the MP bus id must equal the PCI
//          bus number, which is why the PCI bus takes id 0.
// Checksums make every byte of each structure sum to zero. Up to 254 CPUs: APIC ids are 8 bits, 0xFF is
// the broadcast id, and the IOAPIC takes the id after the last CPU's.
import GuestMemory

public enum MPTableError: Error, Equatable, Sendable, CustomStringConvertible {
    case cpuCount(Int)
    case pciInterrupt(device: UInt8, pin: UInt8, ioapicPin: UInt8)
    case memory(GuestMemoryError)

    public var description: String {
        switch self {
        case let .cpuCount(n):
            "--cpus \(n): the MP table describes 1 to \(MPTable.maximumCPUs) CPUs (8-bit APIC ids, 0xff is broadcast, the IOAPIC takes the next id)"
        case let .pciInterrupt(device, pin, ioapicPin):
            "PCI INTx of device \(device) pin \(pin) on IOAPIC pin \(ioapicPin): devices are 0-31, pins 1-4 (INTA#-INTD#), IOAPIC pins 0-23"
        case let .memory(error): "\(error)"
        }
    }
}

public enum MPTable {
    /// A PCI bus 0 to announce, with the IOAPIC pins its devices' INTx lines are wired to.
    public struct PCIBus: Sendable, Equatable {
        /// One INTx line: PCI device (slot) `device`'s pin `pin` (1 = INTA# ... 4 = INTD#) on IOAPIC pin `ioapicPin`.
        public struct Interrupt: Sendable, Equatable {
            public var device: UInt8
            public var pin: UInt8
            public var ioapicPin: UInt8
            public init(device: UInt8, pin: UInt8, ioapicPin: UInt8) {
                self.device = device; self.pin = pin; self.ioapicPin = ioapicPin
            }
        }

        public var interrupts: [Interrupt]
        public init(interrupts: [Interrupt] = []) { self.interrupts = interrupts }

        /// Flags of a PCI interrupt entry (Table 4-9): polarity 11 (active low), trigger mode 11 (level).
        public static let interruptFlags: UInt16 = 0x000F

        /// A default wiring onto IOAPIC pins 16-23, which no ISA IRQ uses and KVM's default GSI routing
        /// sends to the IOAPIC alone: the usual PCI rotation, device d's pin p on 16 + (d + p - 1) mod 8.
        public static func defaultIOAPICPin(device: UInt8, pin: UInt8) -> UInt8 {
            16 + UInt8((Int(device) + Int(pin) - 1) % 8)
        }
    }

    /// How the ISA IRQs reach IOAPIC pins. The table must agree with the VMM's KVM GSI routing, or the
    /// kernel waits on a pin its interrupts never reach (the timer check then falls back, slowly or not at all).
    public enum InterruptRouting: Sendable, Equatable {
        /// The PC wiring: the 8254 timer's IRQ 0 on pin 2, IRQ 2 (the 8259 cascade) not listed, the rest on
        /// their own pins — 15 entries, as SeaBIOS writes with "irq0-override". The VMM must route GSI 0 to
        /// IOAPIC pin 2 with KVM_SET_GSI_ROUTING (as QEMU and kvmtool do); KVM's default routing does not.
        case pcCompatible
        /// IRQ n on pin n for all 16 — 16 entries, matching the routing KVM installs with KVM_CREATE_IRQCHIP
        /// (GSI n → IOAPIC pin n and PIC pin n), as Firecracker relies on.
        case identity

        /// The IOAPIC pin ISA `irq` is wired to, or nil when it is not listed.
        public func ioapicPin(forISAIRQ irq: UInt8) -> UInt8? {
            guard irq < 16 else { return nil }
            switch self {
            case .identity: return irq
            case .pcCompatible: return irq == 0 ? 2 : irq == 2 ? nil : irq
            }
        }
    }

    public static let maximumCPUs = 254
    public static let floatingPointerSize = 16
    public static let headerSize = 44
    public static let processorEntrySize = 20
    /// Bus, I/O APIC, I/O interrupt and local interrupt entries.
    public static let shortEntrySize = 8
    public static let specRevision: UInt8 = 4
    public static let localAPICVersion: UInt8 = 0x14
    public static let ioAPICVersion: UInt8 = 0x11
    public static let oemID = "SWIFTLET"
    public static let productID = "SWIFTLET VM "

    /// Entry types (§4.3, Table 4-3).
    enum EntryType {
        static let processor: UInt8 = 0
        static let bus: UInt8 = 1
        static let ioAPIC: UInt8 = 2
        static let ioInterrupt: UInt8 = 3
        static let localInterrupt: UInt8 = 4
    }

    /// Interrupt types (Table 4-8).
    enum InterruptType {
        static let int: UInt8 = 0
        static let nmi: UInt8 = 1
        static let extINT: UInt8 = 3
    }

    /// How many IOAPIC pins the in-kernel IOAPIC has (KVM_IOAPIC_NUM_PINS).
    public static let ioAPICPins: UInt8 = 24

    /// The tables' size for `cpus` CPUs.
    public static func size(cpus: Int, routing: InterruptRouting, pciBus: PCIBus? = nil) -> Int {
        floatingPointerSize + headerSize + cpus * processorEntrySize
            + (2 + interruptCount(routing) + 2 + (pciBus.map { 1 + $0.interrupts.count } ?? 0)) * shortEntrySize
    }

    static func interruptCount(_ routing: InterruptRouting) -> Int {
        (0..<16).filter { routing.ioapicPin(forISAIRQ: UInt8($0)) != nil }.count
    }

    /// The floating pointer followed by the configuration table, for placement at `base`.
    public static func encode(cpus: Int, at base: GuestAddress = X86Layout.mpTable,
                              routing: InterruptRouting, pciBus: PCIBus? = nil) throws(MPTableError) -> [UInt8] {
        guard cpus >= 1, cpus <= maximumCPUs else { throw .cpuCount(cpus) }
        for i in pciBus?.interrupts ?? [] where i.device > 31 || !(1...4).contains(i.pin) || i.ioapicPin >= ioAPICPins {
            throw .pciInterrupt(device: i.device, pin: i.pin, ioapicPin: i.ioapicPin)
        }
        let ioAPICID = UInt8(cpus)
        let pciBusID: UInt8 = 0
        let isaBus: UInt8 = pciBus == nil ? 0 : 1

        var entries: [UInt8] = []
        var entryCount = 0
        for id in 0..<cpus {
            var e = [UInt8](repeating: 0, count: processorEntrySize)
            e[0] = EntryType.processor
            e[1] = UInt8(id)                                  // local APIC id
            e[2] = localAPICVersion
            e[3] = id == 0 ? 0x3 : 0x1                        // CPU flags: EN, and BP on the bootstrap processor
            put(&e, 4, UInt32(0x600))                         // CPU signature: family 6, model 0, stepping 0
            put(&e, 8, UInt32(0x201))                         // feature flags (CPUID.1:EDX): FPU, APIC
            entries += e; entryCount += 1
        }
        if pciBus != nil { entries += [EntryType.bus, pciBusID] + Array("PCI   ".utf8); entryCount += 1 }
        entries += [EntryType.bus, isaBus] + Array("ISA   ".utf8); entryCount += 1
        entries += [EntryType.ioAPIC, ioAPICID, ioAPICVersion, 0x1] + le(UInt32(X86Layout.ioAPIC.rawValue)); entryCount += 1
        for irq in UInt8(0)..<16 {
            guard let pin = routing.ioapicPin(forISAIRQ: irq) else { continue }
            // Flags 0: polarity and trigger mode conform to the bus (ISA: active high, edge).
            entries += [EntryType.ioInterrupt, InterruptType.int, 0, 0, isaBus, irq, ioAPICID, pin]; entryCount += 1
        }
        for i in pciBus?.interrupts ?? [] {
            entries += [EntryType.ioInterrupt, InterruptType.int] + le(PCIBus.interruptFlags)
                + [pciBusID, i.device << 2 | (i.pin - 1), ioAPICID, i.ioapicPin]; entryCount += 1
        }
        entries += [EntryType.localInterrupt, InterruptType.extINT, 0, 0, isaBus, 0, 0x00, 0]; entryCount += 1 // BSP LINT0
        entries += [EntryType.localInterrupt, InterruptType.nmi, 0, 0, isaBus, 0, 0xFF, 1]; entryCount += 1    // all LINT1

        let tableAddress = base.rawValue + UInt64(floatingPointerSize)
        var header = [UInt8](repeating: 0, count: headerSize)
        header.replaceSubrange(0..<4, with: Array("PCMP".utf8))
        put(&header, 4, UInt16(headerSize + entries.count))   // base table length
        header[6] = specRevision
        header.replaceSubrange(8..<16, with: Array(oemID.utf8))
        header.replaceSubrange(16..<28, with: Array(productID.utf8))
        put(&header, 34, UInt16(entryCount))
        put(&header, 36, UInt32(X86Layout.localAPIC.rawValue))
        var table = header + entries
        table[7] = checksum(table)

        var pointer = [UInt8](repeating: 0, count: floatingPointerSize)
        pointer.replaceSubrange(0..<4, with: Array("_MP_".utf8))
        put(&pointer, 4, UInt32(truncatingIfNeeded: tableAddress))
        pointer[8] = 1                                         // length in 16-byte units
        pointer[9] = specRevision
        pointer[10] = checksum(pointer)
        return pointer + table
    }

    /// Writes the tables at `base` (16-byte aligned, below 1 MiB) and says where they went.
    @discardableResult
    public static func write(cpus: Int, into memory: GuestMemory, at base: GuestAddress = X86Layout.mpTable,
                             routing: InterruptRouting, pciBus: PCIBus? = nil) throws(MPTableError) -> BootPlacement {
        let bytes = try encode(cpus: cpus, at: base, routing: routing, pciBus: pciBus)
        do { try memory.write(bytes: bytes, at: base) } catch { throw .memory(error) }
        let pci = pciBus.map { ", PCI bus 0 with \($0.interrupts.count) INTx line\($0.interrupts.count == 1 ? "" : "s")" } ?? ""
        return BootPlacement("MP table: floating pointer + configuration table (\(cpus) CPU\(cpus == 1 ? "" : "s"), IOAPIC id \(cpus), \(interruptCount(routing)) ISA interrupts, \(routing == .pcCompatible ? "IRQ0 on pin 2" : "IRQ n on pin n")\(pci))",
                             base: base, length: UInt64(bytes.count))
    }

    /// The byte that makes `bytes` sum to zero modulo 256 (with that byte itself counted as zero).
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(0, &+)
    }
}
