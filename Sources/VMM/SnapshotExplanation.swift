// SnapshotExplanation: `swiftlet explain --snapshot FILE`, a snapshot read back for a learner: what a VM's
// state is, record by record (docs/10-snapshots.md walks through the same output). It checks the file as a
// restore does (header, checksum, records) but creates no VM: the KVM structures are decoded from the
// record bytes with the kernel headers' layouts (Intel SDM vol. 3A for registers and the LAPIC page, the
// 8259A and 82093AA datasheets for the PICs and the IOAPIC, the 8254 datasheet for the PIT).
import CKVM
import Glibc
import GuestMemory
import KVM
import Snapshot

public enum SnapshotExplanation {
    /// The explanation of the snapshot at `path`; throws the error a restore would for a bad file.
    public static func render(path: String) throws(VMMError) -> String {
        let file = try SnapshotFileHandle(path: path)
        let c = file.contents
        let m = c.machine
        var out: [String] = []
        func line(_ s: String) { out.append(s) }
        func h(_ v: UInt64, _ width: Int = 0) -> String { "0x" + hex(v, width: width) }

        line("snapshot \(path): Swiftlet snapshot format version \(c.header.version), \(file.fileSize) bytes (\(c.header.recordCount) records, checksum CRC32C \(h(UInt64(c.header.checksum), 8)) ok)")
        line("")
        line("machine (MACH): what must match for a restore")
        line("  KVM backend     \(m.backend)")
        line("  CPU vendor      \(m.cpuVendor)")
        line("  kernel          \(KernelSource(snapshotName: m.kernel)?.displayName ?? m.kernel) (\(m.kernelFormat))")
        line("  RAM             \(MachineConfiguration.describeSize(m.memorySize)), \(m.cpus) vCPU\(m.cpus == 1 ? "" : "s"), console \(m.console)")
        if !m.commandLine.isEmpty { line("  command line    \(m.commandLine)") }
        line("  in-kernel       \(m.irqchip ? "irqchip (PICs, IOAPIC, LAPICs)" : "no irqchip")\(m.pit ? ", PIT" : "")")
        var seconds = m.takenAt / 1_000_000_000
        var tm = tm()
        if m.takenAt > 0, gmtime_r(withUnsafePointer(to: &seconds) { $0.withMemoryRebound(to: time_t.self, capacity: 1) { $0 } }, &tm) != nil {
            line("  taken           \(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) UTC")
        }
        line("")
        line("guest memory (MEMR): mapped copy-on-write from the file at restore; zero pages are holes")
        var totalData: UInt64 = 0
        for (k, region) in c.regions.enumerated() {
            let start = c.header.memoryOffset + region.fileOffset
            let data = dataBytes(file.fd, from: start, length: region.length)
            totalData += data
            line("  region \(k): guest-physical [\(h(region.guestAddress)), \(h(region.guestAddress + region.length))) at file offset \(h(start)): \(data >> 10) KiB of \(region.length >> 10) KiB stored")
        }
        line("  on disk: \(totalData >> 10) KiB of guest RAM (\(totalData / SnapshotFormat.pageSize) pages)")
        for id in 0..<m.cpus {
            line("")
            line("vCPU \(id)")
            explainVCPU(c, id: id, into: &out)
        }
        if !c.records("IRQC").isEmpty || c.record("PIT2") != nil || c.record("CLCK") != nil {
            line("")
            line("VM-wide state")
        }
        for record in c.records("IRQC") {
            let b = record.payload
            guard b.count >= 8 + 32 + 24 * 8 else { continue }
            if record.index < 2 {
                line("  IRQC \(IRQChipID(rawValue: record.index)?.name ?? "chip \(record.index)"): IRR \(bits(b[9])), IMR \(bits(b[10])), ISR \(bits(b[11])), vectors from \(h(UInt64(b[13]), 2))")
            } else {
                var unmasked: [String] = []
                for pin in 0..<24 {
                    let entry = le64(b, 32 + pin * 8)
                    if entry & (1 << 16) == 0 { unmasked.append("pin \(pin)→vector \(h(entry & 0xFF, 2))") }
                }
                line("  IRQC IOAPIC at \(h(le64(b, 8))): IRR \(h(UInt64(le32(b, 24)), 8)); unmasked: \(unmasked.isEmpty ? "none" : unmasked.joined(separator: ", "))")
            }
        }
        if let pit = c.record("PIT2"), pit.payload.count >= 76 {
            let b = pit.payload
            line("  PIT2 i8254 channel 0: count \(le32(b, 0)), mode \(b[13]), gate \(b[15])  (channels 1 and 2 follow; flags \(h(UInt64(le32(b, 72)))))")
        }
        if let clock = c.record("CLCK"), clock.payload.count >= 8 {
            let ns = le64(clock.payload, 0)
            line("  CLCK KVM clock: \(ns / 1_000_000) ms of guest time (kvmclock's base; KVM_SET_CLOCK puts it back so guest time does not jump)")
        }
        let devices = c.records("DEVC")
        if !devices.isEmpty {
            line("")
            line("devices (DEVC): each device's own saved state (PersistentState)")
            for record in devices {
                var r = StateReader(record.payload, what: "device record")
                let key = (try? r.string(limit: 64)) ?? "?"
                let state = (try? r.data()) ?? []
                line("  \(key): \(state.count) bytes: \(state.prefix(24).map { hex($0, width: 2) }.joined(separator: " "))")
            }
        }
        line("")
        line("restore with: swiftlet restore \(path)\(m.commandLine.contains(Machine.snapshotParameter) ? " -- COMMAND" : "")")
        return out.joined(separator: "\n") + "\n"
    }

    static func explainVCPU(_ c: SnapshotContents, id: UInt32, into out: inout [String]) {
        func h(_ v: UInt64, _ width: Int = 0) -> String { "0x" + hex(v, width: width) }
        if let p = c.record("REGS", index: id)?.payload, let r = try? fromRawBytes(p, as: Registers.self, "REGS") {
            out.append("  REGS  rip \(h(r.rip)) rsp \(h(r.rsp)) rflags \(h(r.rflags)) rax \(h(r.rax)) rbx \(h(r.rbx))")
        }
        if let p = c.record("SREG", index: id)?.payload, let s = try? fromRawBytes(p, as: SpecialRegisters.self, "SREG") {
            let mode = s.efer & 0x400 != 0 ? (s.cs.l == 1 ? "64-bit long mode" : "compatibility mode") : s.cr0 & 1 != 0 ? "protected mode" : "real mode"
            out.append("  SREG  \(mode), CPL \(s.cs.selector & 3); cr0 \(h(s.cr0)) cr3 \(h(s.cr3)) cr4 \(h(s.cr4)) efer \(h(s.efer)); cs \(h(UInt64(s.cs.selector), 4)) gdt \(h(s.gdt.base)) idt \(h(s.idt.base))")
        }
        if let p = c.record("FPU_", index: id)?.payload, let f = try? fromRawBytes(p, as: FPUState.self, "FPU_") {
            out.append("  FPU_  x87 control \(h(UInt64(f.fcw), 4)) status \(h(UInt64(f.fsw), 4)), MXCSR \(h(UInt64(f.mxcsr), 8)), 8 x87 and 16 XMM registers")
        }
        if let p = c.record("XCRS", index: id)?.payload, p.count >= 24 {
            out.append("  XCRS  \(le32(p, 0)) XCR\(le32(p, 0) == 1 ? "" : "s"); XCR0 \(h(le64(p, 16)))")
        }
        if let p = c.record("XSAV", index: id)?.payload, p.count >= 520 {
            out.append("  XSAV  \(p.count)-byte XSAVE area; components present (XSTATE_BV) \(h(le64(p, 512)))")
        }
        if let p = c.record("DBGR", index: id)?.payload, p.count >= 48 {
            out.append("  DBGR  dr6 \(h(le64(p, 32))) dr7 \(h(le64(p, 40)))")
        }
        if let p = c.record("MSRS", index: id)?.payload, p.count >= 4 {
            let count = Int(le32(p, 0))
            var named: [String] = []
            let names: [UInt32: String] = [0x10: "TSC", 0x1B: "APIC_BASE", 0xC000_0080: "EFER", 0xC000_0082: "LSTAR",
                                           0x4B56_4D00: "KVM_WALL_CLOCK_NEW", 0x4B56_4D01: "KVM_SYSTEM_TIME_NEW", 0x6E0: "TSC_DEADLINE"]
            for k in 0..<count where 4 + k * 12 + 12 <= p.count {
                let index = le32(p, 4 + k * 12)
                if let name = names[index] { named.append("\(name) \(h(le64(p, 4 + k * 12 + 4)))") }
            }
            out.append("  MSRS  \(count) MSRs (every one KVM_GET_MSR_INDEX_LIST names that the vCPU answered); \(named.joined(separator: ", "))")
        }
        if let p = c.record("LAPC", index: id)?.payload, p.count >= 0x400 {
            out.append("  LAPC  APIC id \(le32(p, 0x20) >> 24), TPR \(h(UInt64(le32(p, 0x80)), 2)), SVR \(h(UInt64(le32(p, 0xF0)), 3)), LVT timer \(h(UInt64(le32(p, 0x320)), 5)), timer count \(le32(p, 0x390)) of \(le32(p, 0x380))")
        }
        if let p = c.record("EVNT", index: id)?.payload, let e = try? fromRawBytes(p, as: VCPUEvents.self, "EVNT") {
            out.append("  EVNT  exception \(e.exception.injected != 0 ? "pending: vector \(e.exception.nr)" : "none"), interrupt \(e.interrupt.injected != 0 ? "pending: vector \(e.interrupt.nr)" : "none"), NMI \(e.nmi.pending != 0 ? "pending" : "none"), interrupt shadow \(e.interrupt.shadow)")
        }
        if let p = c.record("MPST", index: id)?.payload, p.count == 4 {
            out.append("  MPST  \(MultiprocessingState(rawValue: le32(p, 0)).description)")
        }
        if let p = c.record("CPID", index: id)?.payload {
            out.append("  CPID  \(p.count / 28) CPUID leaves (the table the vCPU was given)")
        }
    }

    /// Bytes of [start, start + length) the file holds data for (SEEK_DATA / SEEK_HOLE, lseek(2)).
    static func dataBytes(_ fd: Int32, from start: UInt64, length: UInt64) -> UInt64 {
        var total: UInt64 = 0
        var at = off_t(start)
        let end = off_t(start + length)
        while at < end {
            let data = lseek(fd, at, 3 /* SEEK_DATA */)
            guard data >= 0, data < end else { break }
            let hole = min(lseek(fd, data, 4 /* SEEK_HOLE */), end)
            guard hole > data else { break }
            total += UInt64(hole - data)
            at = hole
        }
        return total
    }

    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }
    static func le64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }
    /// An 8-bit register as eight binary digits, bit 7 first.
    static func bits(_ v: UInt8) -> String { (0..<8).reversed().map { v >> UInt8($0) & 1 == 1 ? "1" : "0" }.joined() }
    static func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
}
