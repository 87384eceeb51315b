// MachineExplanation+MPTable: the Intel MultiProcessor Specification 1.4 tables as a kernel without ACPI
// finds them (chapter 4): the floating pointer "_MP_" in the BIOS area, the configuration table "PCMP" it
// points to, and the entries — processors (local APIC ids), the I/O APIC, and which IOAPIC pin each ISA
// IRQ arrives on. Read back from guest memory; Linux reads the same bytes in arch/x86/kernel/mpparse.c.
import GuestMemory
import X86Boot

extension MachineExplanation {
    public struct MPTableSummary: Sendable {
        public struct Processor: Sendable, Equatable {
            public var apicID: UInt8
            public var bootstrap: Bool
            public var enabled: Bool
        }

        public struct LocalInterrupt: Sendable, Equatable {
            /// "ExtINT", "NMI".
            public var type: String
            /// 0xFF: every local APIC.
            public var apicID: UInt8
            public var lint: UInt8
        }

        public var floatingPointer: GuestAddress
        public var configurationTable: GuestAddress
        public var oemID: String
        public var localAPIC: UInt64
        public var processors: [Processor]
        public var ioAPIC: (id: UInt8, address: UInt64)?
        /// ISA IRQ → IOAPIC pin.
        public var isaInterrupts: [(irq: UInt8, pin: UInt8)]
        public var localInterrupts: [LocalInterrupt]

        /// The IOAPIC pin ISA `irq` arrives on, by the table.
        public func pin(forISAIRQ irq: UInt8) -> UInt8? { isaInterrupts.first { $0.irq == irq }?.pin }

        /// Reads the tables at `address`; nil when there is no valid "_MP_" / "PCMP" pair there.
        init?(memory: GuestMemory, at address: GuestAddress = X86Layout.mpTable) throws(GuestMemoryError) {
            let pointer = try memory.readBytes(at: address, count: MPTable.floatingPointerSize)
            guard pointer.prefix(4).elementsEqual("_MP_".utf8) else { return nil }
            let tableAddress = UInt64(pointer[4]) | UInt64(pointer[5]) << 8 | UInt64(pointer[6]) << 16 | UInt64(pointer[7]) << 24
            let header = try memory.readBytes(at: GuestAddress(tableAddress), count: MPTable.headerSize)
            guard header.prefix(4).elementsEqual("PCMP".utf8) else { return nil }
            func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
            func u32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(u16(b, i)) | UInt32(u16(b, i + 2)) << 16 }
            floatingPointer = address
            configurationTable = GuestAddress(tableAddress)
            oemID = String(decoding: header[8..<16], as: UTF8.self)
            localAPIC = UInt64(u32(header, 36))
            let count = Int(u16(header, 34))
            let length = Int(u16(header, 4))
            let body = try memory.readBytes(at: GuestAddress(tableAddress + UInt64(MPTable.headerSize)),
                                            count: max(0, length - MPTable.headerSize))
            var processors: [Processor] = []
            var ioAPIC: (id: UInt8, address: UInt64)?
            var isa: [(irq: UInt8, pin: UInt8)] = []
            var local: [LocalInterrupt] = []
            var offset = 0
            for _ in 0..<count {
                guard offset < body.count else { break }
                let type = body[offset]
                let size = type == 0 ? MPTable.processorEntrySize : MPTable.shortEntrySize
                guard offset + size <= body.count else { break }
                let e = Array(body[offset..<offset + size])
                switch type {
                case 0: processors.append(Processor(apicID: e[1], bootstrap: e[3] & 2 != 0, enabled: e[3] & 1 != 0))
                case 2: ioAPIC = (e[1], UInt64(u32(e, 4)))
                case 3: isa.append((e[5], e[7]))
                case 4: local.append(LocalInterrupt(type: e[1] == 3 ? "ExtINT" : e[1] == 1 ? "NMI" : "type \(e[1])", apicID: e[6], lint: e[7]))
                default: break
                }
                offset += size
            }
            self.processors = processors
            self.ioAPIC = ioAPIC
            self.isaInterrupts = isa
            self.localInterrupts = local
        }
    }
}
