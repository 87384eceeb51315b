// Tests for the machine description a Linux boot shares: the e820 map, the identity page tables (walked
// like the MMU walks them), the MP table (checksums, entries, as Linux's mpparse reads them), the entry
// register state, and the low-memory map's lack of overlaps.
import GuestMemory
import Testing
@testable import X86Boot

@Suite struct E820Tests {
    func regions(_ size: UInt64) -> [AddressRange] {
        X86Layout.ramLayout(size: size).map { AddressRange(base: $0.base, length: $0.size)! }
    }

    @Test func splitsLowMemoryAroundTheEBDAAndROMHole() {
        let map = E820.map(ramRegions: regions(128 << 20))
        #expect(map == [
            E820.Entry(base: GuestAddress(0), length: 0x9_FC00, type: .ram),
            E820.Entry(base: GuestAddress(0x9_FC00), length: 0x10_0000 - 0x9_FC00, type: .reserved),
            E820.Entry(base: GuestAddress(0x10_0000), length: (128 << 20) - 0x10_0000, type: .ram),
        ])
        #expect(E820.lowRAMEnd(map) == 128 << 20)
    }

    @Test func putsRAMBeyond3GiBAbove4GiB() {
        let map = E820.map(ramRegions: regions(5 << 30))
        #expect(map.count == 4)
        #expect(map[2] == E820.Entry(base: GuestAddress(0x10_0000), length: 0xC000_0000 - 0x10_0000, type: .ram))
        #expect(map[3] == E820.Entry(base: GuestAddress(0x1_0000_0000), length: 2 << 30, type: .ram))
        #expect(E820.lowRAMEnd(map) == 0xC000_0000)
    }

    @Test func reservesTheFirmwareROMAndTheMPTable() {
        let map = E820.map(ramRegions: regions(64 << 20) + [AddressRange(base: X86Layout.firmwareBase, length: X86Layout.firmwareSize)!])
        #expect(map.last == E820.Entry(base: X86Layout.firmwareBase, length: 0x1_0000, type: .reserved))
        let mp = X86Layout.mpTable.rawValue
        #expect(map.contains { $0.type == .reserved && $0.base.rawValue <= mp && X86Layout.mpTableEnd.rawValue <= $0.end })
        #expect(!E820.isRAM(map, base: mp, length: 16))
    }

    @Test func matchesTheVMMsGuestMemory() throws {
        let memory = try LinuxFixtures.memory(megabytes: 8)
        #expect(E820.map(for: memory) == E820.map(ramRegions: regions(8 << 20)))
    }

    @Test func encodesTwentyBytesPerEntryForTheZeroPage() {
        let bytes = E820.encodeForZeroPage([E820.Entry(base: GuestAddress(0x10_0000), length: 0x200_0000, type: .ram),
                                            E820.Entry(base: GuestAddress(0x9_FC00), length: 0x400, type: .reserved)])
        #expect(bytes.count == 40)
        #expect(LinuxFixtures.u64(bytes, 0) == 0x10_0000)
        #expect(LinuxFixtures.u64(bytes, 8) == 0x200_0000)
        #expect(LinuxFixtures.u32(bytes, 16) == 1)
        #expect(LinuxFixtures.u32(bytes, 36) == 2)
    }
}

@Suite struct PageTableTests {
    /// A 4-level walk as the MMU does it, for 4 KiB-aligned tables in guest memory; nil when not present.
    func translate(_ virtual: UInt64, cr3: UInt64, memory: GuestMemory) throws -> UInt64? {
        let mask: UInt64 = 0x000F_FFFF_FFFF_F000
        let pml4e = try memory.read(UInt64.self, at: GuestAddress((cr3 & mask) + ((virtual >> 39) & 0x1FF) * 8))
        guard pml4e & 1 == 1 else { return nil }
        let pdpte = try memory.read(UInt64.self, at: GuestAddress((pml4e & mask) + ((virtual >> 30) & 0x1FF) * 8))
        guard pdpte & 1 == 1 else { return nil }
        if pdpte & 0x80 != 0 { return (pdpte & 0x000F_FFFF_C000_0000) | (virtual & 0x3FFF_FFFF) }
        let pde = try memory.read(UInt64.self, at: GuestAddress((pdpte & mask) + ((virtual >> 21) & 0x1FF) * 8))
        guard pde & 1 == 1 else { return nil }
        if pde & 0x80 != 0 { return (pde & 0x000F_FFFF_FFE0_0000) | (virtual & 0x1F_FFFF) }
        let pte = try memory.read(UInt64.self, at: GuestAddress((pde & mask) + ((virtual >> 12) & 0x1FF) * 8))
        guard pte & 1 == 1 else { return nil }
        return (pte & mask) | (virtual & 0xFFF)
    }

    @Test func identityMapsTheFirst4GiBWith2MiBPages() throws {
        let memory = try LinuxFixtures.memory(megabytes: 4)
        let cr3 = try PageTables.writeIdentityMap(into: memory)
        #expect(cr3 == 0x9000)
        for address: UInt64 in [0, 0x1000, 0x10_0200, 0x123_4567, 0x7FFF_FFFF, 0xC000_0000, 0xFEC0_0000, 0xFEE0_0000, 0xFFFF_FFFF] {
            #expect(try translate(address, cr3: cr3, memory: memory) == address, "0x\(String(address, radix: 16))")
        }
        #expect(try translate(0x1_0000_0000, cr3: cr3, memory: memory) == nil)
        #expect(try translate(0xFFFF_FFFF_8000_0000, cr3: cr3, memory: memory) == nil)
    }

    @Test func entriesArePresentWritableAndLarge() {
        let bytes = PageTables.identityMap()
        #expect(bytes.count == 6 * 4096)
        #expect(LinuxFixtures.u64(bytes, 0) == 0xA003)              // PML4[0] → PDPT
        #expect(LinuxFixtures.u64(bytes, 8) == 0)                   // PML4[1] absent
        #expect((0..<4).map { LinuxFixtures.u64(bytes, 0x1000 + $0 * 8) } == [0xB003, 0xC003, 0xD003, 0xE003])
        #expect(LinuxFixtures.u64(bytes, 0x1000 + 4 * 8) == 0)      // PDPT[4] absent
        #expect(LinuxFixtures.u64(bytes, 0x2000) == 0x83)           // first 2 MiB page
        #expect(LinuxFixtures.u64(bytes, 0x2000 + 4 * 4096 - 8) == 0xFFE0_0083) // last below 4 GiB
    }
}

@Suite struct MPTableTests {
    typealias F = LinuxFixtures

    /// The configuration table's entries, walked as Linux's smp_read_mpc does: (type, bytes).
    func entries(_ table: ArraySlice<UInt8>) -> [(type: UInt8, bytes: [UInt8])] {
        let t = Array(table)
        var result: [(UInt8, [UInt8])] = []
        var offset = 44
        let length = Int(F.u16(t, 4))
        while offset < length {
            let size = t[offset] == 0 ? 20 : 8
            result.append((t[offset], Array(t[offset..<offset + size])))
            offset += size
        }
        return result
    }

    func checksum(_ bytes: some Collection<UInt8>) -> UInt8 { bytes.reduce(0, &+) }

    @Test(arguments: [1, 2, 4, 8, 64, 254])
    func floatingPointerAndTableAreValid(cpus: Int) throws {
        let bytes = try MPTable.encode(cpus: cpus, routing: .pcCompatible)
        #expect(bytes.count == MPTable.size(cpus: cpus, routing: .pcCompatible))
        #expect(X86Layout.mpTable.rawValue + UInt64(bytes.count) <= X86Layout.mpTableEnd.rawValue)
        // Floating pointer: "_MP_", physptr, length 1, rev 4, checksum over 16 bytes.
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(F.u32(bytes, 4) == 0xF_0010)
        #expect(bytes[8] == 1 && bytes[9] == 4 && bytes[11] == 0)
        #expect(checksum(bytes[0..<16]) == 0)
        // Configuration table header.
        let table = bytes[16...]
        let t = Array(table)
        #expect(Array(t[0..<4]) == Array("PCMP".utf8))
        #expect(Int(F.u16(t, 4)) == t.count)
        #expect(t[6] == 4)
        #expect(checksum(t) == 0)
        #expect(String(decoding: t[8..<16], as: UTF8.self) == "SWIFTLET")
        #expect(F.u32(t, 36) == 0xFEE0_0000)
        #expect(Int(F.u16(t, 34)) == cpus + 1 + 1 + 15 + 2)
        #expect(entries(table).count == Int(F.u16(t, 34)))
        // Entries come in type order, as the spec requires.
        #expect(entries(table).map(\.type) == entries(table).map(\.type).sorted())
    }

    @Test func describesEachCPUTheBusTheIOAPICAndTheInterrupts() throws {
        let bytes = try MPTable.encode(cpus: 4, routing: .pcCompatible)
        let all = entries(bytes[16...])
        let processors = all.filter { $0.type == 0 }.map(\.bytes)
        #expect(processors.map { $0[1] } == [0, 1, 2, 3])               // APIC ids
        #expect(processors.allSatisfy { $0[2] == 0x14 })                // LAPIC version
        #expect(processors.map { $0[3] } == [3, 1, 1, 1])               // EN, and BP on CPU 0
        let bus = try #require(all.first { $0.type == 1 }).bytes
        #expect(bus[1] == 0 && String(decoding: bus[2..<8], as: UTF8.self) == "ISA   ")
        let ioapic = try #require(all.first { $0.type == 2 }).bytes
        #expect(ioapic[1] == 4 && ioapic[2] == 0x11 && ioapic[3] == 1 && F.u32(ioapic, 4) == 0xFEC0_0000)
        let interrupts = all.filter { $0.type == 3 }.map(\.bytes)
        #expect(interrupts.count == 15)
        #expect(interrupts.allSatisfy { $0[1] == 0 && $0[4] == 0 && $0[6] == 4 })  // INT, from ISA, to IOAPIC id 4
        let pins = Dictionary(uniqueKeysWithValues: interrupts.map { ($0[5], $0[7]) })
        #expect(pins[0] == 2)                                           // the timer on pin 2
        #expect(pins[2] == nil)                                         // the cascade is not listed
        #expect((1...15).filter { $0 != 2 }.allSatisfy { pins[UInt8($0)] == UInt8($0) })
        let locals = all.filter { $0.type == 4 }.map(\.bytes)
        #expect(locals.count == 2)
        #expect(locals[0][1] == 3 && locals[0][6] == 0 && locals[0][7] == 0)       // ExtINT → BSP LINT0
        #expect(locals[1][1] == 1 && locals[1][6] == 0xFF && locals[1][7] == 1)    // NMI → all LINT1
    }

    @Test func identityRoutingListsAllSixteenIRQsOnTheirOwnPins() throws {
        let bytes = try MPTable.encode(cpus: 1, routing: .identity)
        let interrupts = entries(bytes[16...]).filter { $0.type == 3 }.map(\.bytes)
        #expect(interrupts.map { $0[5] } == Array(0..<16))
        #expect(interrupts.map { $0[7] } == Array(0..<16))
        #expect(checksum(bytes[16...]) == 0)
        #expect(MPTable.InterruptRouting.identity.ioapicPin(forISAIRQ: 0) == 0)
        #expect(MPTable.InterruptRouting.pcCompatible.ioapicPin(forISAIRQ: 0) == 2)
        #expect(MPTable.InterruptRouting.pcCompatible.ioapicPin(forISAIRQ: 16) == nil)
    }

    @Test func refusesImpossibleCPUCounts() {
        #expect(throws: MPTableError.cpuCount(0)) { try MPTable.encode(cpus: 0, routing: .identity) }
        #expect(throws: MPTableError.cpuCount(255)) { try MPTable.encode(cpus: 255, routing: .identity) }
    }

    @Test func announcesAPCIBusAndItsINTxLines() throws {
        let pci = MPTable.PCIBus(interrupts: [
            .init(device: 1, pin: 1, ioapicPin: MPTable.PCIBus.defaultIOAPICPin(device: 1, pin: 1)),
            .init(device: 3, pin: 2, ioapicPin: 23),
        ])
        let bytes = try MPTable.encode(cpus: 2, routing: .identity, pciBus: pci)
        #expect(bytes.count == MPTable.size(cpus: 2, routing: .identity, pciBus: pci))
        let table = bytes[16...]
        #expect(checksum(table) == 0)
        let all = entries(table)
        #expect(Int(F.u16(Array(table), 34)) == all.count && all.count == 2 + 2 + 1 + 16 + 2 + 2)
        #expect(all.map(\.type) == all.map(\.type).sorted())
        // Bus 0 is PCI (Linux looks PCI interrupts up by the PCI bus number), ISA moves to bus 1.
        let buses = all.filter { $0.type == 1 }.map(\.bytes)
        #expect(buses.map { $0[1] } == [0, 1])
        #expect(buses.map { String(decoding: $0[2..<8], as: UTF8.self) } == ["PCI   ", "ISA   "])
        let interrupts = all.filter { $0.type == 3 }.map(\.bytes)
        #expect(interrupts.prefix(16).allSatisfy { $0[4] == 1 && $0[2] == 0 })   // ISA IRQs from bus 1, flags conform
        let pciEntries = Array(interrupts.suffix(2))
        // INT, level + active low, from bus 0, source IRQ (device << 2) | (pin - 1), to IOAPIC id 2.
        #expect(pciEntries[0] == [3, 0, 0x0F, 0, 0, 1 << 2 | 0, 2, 17])
        #expect(pciEntries[1] == [3, 0, 0x0F, 0, 0, 3 << 2 | 1, 2, 23])
        #expect(all.filter { $0.type == 4 }.allSatisfy { $0.bytes[4] == 1 })  // local interrupts name the ISA bus
    }

    @Test func aPCIBusWithoutINTxLinesIsStillAnnounced() throws {
        let bytes = try MPTable.encode(cpus: 1, routing: .identity, pciBus: MPTable.PCIBus())
        let buses = entries(bytes[16...]).filter { $0.type == 1 }
        #expect(buses.count == 2)
        #expect(try MPTable.encode(cpus: 1, routing: .identity).count == bytes.count - 8)
    }

    @Test func refusesImpossiblePCIInterrupts() {
        for bad in [MPTable.PCIBus.Interrupt(device: 32, pin: 1, ioapicPin: 16),
                    MPTable.PCIBus.Interrupt(device: 1, pin: 0, ioapicPin: 16),
                    MPTable.PCIBus.Interrupt(device: 1, pin: 5, ioapicPin: 16),
                    MPTable.PCIBus.Interrupt(device: 1, pin: 1, ioapicPin: 24)] {
            #expect(throws: MPTableError.pciInterrupt(device: bad.device, pin: bad.pin, ioapicPin: bad.ioapicPin)) {
                try MPTable.encode(cpus: 1, routing: .identity, pciBus: MPTable.PCIBus(interrupts: [bad]))
            }
        }
        #expect(MPTable.PCIBus.defaultIOAPICPin(device: 7, pin: 2) == 16)  // (7 + 1) mod 8
        #expect(MPTable.PCIBus.defaultIOAPICPin(device: 31, pin: 4) == 18)
    }

    @Test func writesIntoGuestMemoryWhereLinuxScans() throws {
        let memory = try F.memory(megabytes: 4)
        let placement = try MPTable.write(cpus: 2, into: memory, routing: .pcCompatible)
        #expect(placement.range.base == GuestAddress(0xF_0000))
        #expect(try memory.readBytes(at: GuestAddress(0xF_0000), count: 4) == Array("_MP_".utf8))
        #expect(X86Layout.mpTable.rawValue % 16 == 0)
    }
}

@Suite struct BootEntryStateTests {
    @Test func linux64EntersLongModeWithTheZeroPageInRSI() {
        let state = BootEntryState.linux64(entry: GuestAddress(0x10_0200), zeroPage: X86Layout.zeroPage, pageTableRoot: 0x9000)
        #expect(state.mode == .long64)
        #expect(state.rip == 0x10_0200 && state.rsi == 0x2000 && state.cr3 == 0x9000)
        #expect(state.cr0 == 0x8000_0011 && state.cr4 == 0x20 && state.efer == 0x500)
        #expect(state.cs.selector == BootGDT.code64Selector && state.cs.descriptor.long && !state.cs.descriptor.defaultBig)
        #expect(state.data.selector == BootGDT.data64Selector && state.data.descriptor.type == 0x3)
        #expect(state.tr.selector == BootGDT.tssSelector && state.tr.descriptor.limit == 0x67)
        #expect(state.gdtBase == X86Layout.gdt && state.gdtLimit == BootGDT.limit)
        #expect(state.rflags == 0x2)
    }

    @Test func pvhEntersFlat32BitProtectedModeWithStartInfoInEBX() {
        let state = BootEntryState.pvh(entry: GuestAddress(0x100_0020), startInfo: X86Layout.pvhStartInfo)
        #expect(state.mode == .protected32)
        #expect(state.rip == 0x100_0020 && state.rbx == 0x3000)
        #expect(state.cr0 == 0x11 && state.cr4 == 0 && state.efer == 0 && state.cr3 == 0)
        #expect(state.cs.selector == BootGDT.code32Selector && state.cs.descriptor.defaultBig && state.cs.descriptor.byteLimit == 0xFFFF_FFFF)
        #expect(state.data.selector == BootGDT.data32Selector && state.data.descriptor.base == 0)
        #expect(state.rflags & (1 << 9) == 0)
        #expect(state.summary.contains("EBX=0x3000"))
    }
}

@Suite struct LowMemoryMapTests {
    @Test func bootStructuresDoNotOverlap() {
        let areas: [(String, UInt64, UInt64)] = [
            ("firmware handoff", X86Layout.firmwareHandoff.rawValue, X86Layout.firmwareHandoff.rawValue + 12),
            ("GDT", X86Layout.gdt.rawValue, X86Layout.gdt.rawValue + UInt64(BootGDT.bytes.count)),
            ("zero page", X86Layout.zeroPage.rawValue, X86Layout.zeroPage.rawValue + 4096),
            ("PVH start info", X86Layout.pvhStartInfo.rawValue, X86Layout.pvhStartInfoEnd.rawValue),
            ("command line", X86Layout.commandLine.rawValue, X86Layout.commandLineEnd.rawValue),
            ("multiboot info", X86Layout.multibootInfo.rawValue, X86Layout.multibootInfoEnd.rawValue),
            ("page tables", X86Layout.pageTables.rawValue, X86Layout.pageTables.rawValue + UInt64(PageTables.size)),
            ("MP table", X86Layout.mpTable.rawValue, X86Layout.mpTableEnd.rawValue),
            ("ACPI tables", X86Layout.acpi.rawValue, X86Layout.acpi.rawValue + UInt64(ACPITables.size(cpus: 254, routing: .pcCompatible))),
        ]
        #expect(X86Layout.pageTables.rawValue + UInt64(PageTables.size) == X86Layout.pageTablesEnd.rawValue)
        for (i, a) in areas.enumerated() {
            #expect(a.2 <= X86Layout.highMemory.rawValue, "\(a.0) lies below 1 MiB")
            for b in areas[(i + 1)...] {
                #expect(a.2 <= b.1 || b.2 <= a.1, "\(a.0) overlaps \(b.0)")
            }
        }
        // The start info page holds the header, one module and well over the map's few entries.
        #expect(HVMStartInfo.size(modules: 1, memoryMapEntries: 128) <= 4096)
    }
}

@Suite struct PCIWindowLayoutTests {
    @Test func thePCIWindowLiesInTheMMIOHoleClearOfEveryFixedDevice() {
        let start = X86Layout.pciMemoryWindow.rawValue, end = X86Layout.pciMemoryWindowEnd.rawValue
        #expect(start >= X86Layout.mmioHoleStart.rawValue && end <= X86Layout.fourGiB.rawValue && start < end)
        let fixed: [(String, UInt64, UInt64)] = [
            ("IOAPIC", X86Layout.ioAPIC.rawValue, X86Layout.ioAPIC.rawValue + 0x1000),
            ("LAPIC", X86Layout.localAPIC.rawValue, X86Layout.localAPIC.rawValue + 0x1000),
            ("KVM identity map and TSS", X86Layout.kvmIdentityMap.rawValue, X86Layout.kvmTSS.rawValue + 3 * 0x1000),
            ("firmware ROM", X86Layout.firmwareBase.rawValue, X86Layout.firmwareBase.rawValue + X86Layout.firmwareSize),
            ("lab MMIO page", X86Layout.labMMIO.rawValue, X86Layout.labMMIO.rawValue + 0x1000),
        ]
        for (name, b, e) in fixed { #expect(e <= start || end <= b, "the PCI window overlaps the \(name)") }
        // Whatever the RAM size, the e820 map never calls any of the window RAM.
        for size: UInt64 in [64 << 20, 3 << 30, 6 << 30] {
            let ram = X86Layout.ramLayout(size: size).map { AddressRange(base: $0.base, length: $0.size)! }
            for entry in E820.map(ramRegions: ram) where entry.type == .ram {
                #expect(entry.end <= start || end <= entry.base.rawValue, "RAM \(entry) overlaps the PCI window")
            }
        }
    }
}
