// SnapshotFile: the on-disk format of a Swiftlet VM snapshot (docs/10-snapshots.md documents it field by
// field). Pure: bytes in, values out, no fds and no KVM, so the parser is unit-tested and fuzzed.
//
//   offset 0   header, 64 bytes, little-endian:
//              magic "SWFTSNAP" · version u32 · header size u32 (64) · page size u32 (4096) · record count u32
//              state offset u64 (64) · state length u64 · memory offset u64 · memory length u64
//              CRC32C u32 (over the header with this field zero, then the state section) · reserved u32 (0)
//   offset 64  state section: records, each tag (4 ASCII bytes) · index u32 · length u32 · payload
//   memory     at `memory offset` (page-aligned): each RAM region's bytes at its own page-aligned offset,
//              full length, with the pages that were zero left as holes (a sparse file: only touched pages
//              cost disk), so a restore maps each region straight from the file, copy-on-write.
//
// What the records hold (tags): MACH the machine (backend, CPU vendor, configuration), MEMR one RAM region,
// CPID/REGS/SREG/FPU_/XSAV/XCRS/DBGR/MSRS/LAPC/EVNT/MPST one vCPU's state (index: the vCPU id), IRQC one
// in-kernel interrupt controller (index: the chip), PIT2 the PIT, CLCK the KVM clock, DEVC one device.
// The parser checks structure (bounds, counts, UTF-8, the checksum, region layout); the VMM checks that the
// raw KVM structures have the sizes its kernel headers give them.
public enum SnapshotFormat {
    public static let magic: [UInt8] = Array("SWFTSNAP".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 64
    public static let pageSize: UInt64 = 4096
    /// The state section is read into memory whole; real ones are tens of KiB (4 KiB per vCPU's MSRs and LAPIC).
    public static let maximumStateLength: UInt64 = 64 << 20
    public static let maximumRecords = 1 << 16
    public static let maximumRegions = 16
    static let crcOffset = 56
}

/// The fixed header at offset 0.
public struct SnapshotHeader: Equatable, Sendable {
    public var version: UInt32 = SnapshotFormat.version
    public var pageSize: UInt32 = UInt32(SnapshotFormat.pageSize)
    public var recordCount: UInt32 = 0
    public var stateOffset: UInt64 = UInt64(SnapshotFormat.headerSize)
    public var stateLength: UInt64 = 0
    public var memoryOffset: UInt64 = 0
    public var memoryLength: UInt64 = 0
    public var checksum: UInt32 = 0

    public init() {}

    public func encoded() -> [UInt8] {
        var w = StateWriter()
        w.raw(SnapshotFormat.magic)
        w.u32(version); w.u32(UInt32(SnapshotFormat.headerSize)); w.u32(pageSize); w.u32(recordCount)
        w.u64(stateOffset); w.u64(stateLength); w.u64(memoryOffset); w.u64(memoryLength)
        w.u32(checksum); w.u32(0)
        return w.bytes
    }

    /// Parses and checks the header against the file's size; what it announces must fit in the file.
    public static func parse(_ bytes: [UInt8], fileSize: UInt64) throws(SnapshotError) -> SnapshotHeader {
        guard bytes.count >= SnapshotFormat.magic.count, Array(bytes.prefix(8)) == SnapshotFormat.magic else {
            throw .foreign("the file does not start with \"SWFTSNAP\"")
        }
        guard bytes.count >= SnapshotFormat.headerSize else {
            throw .truncated("the file has \(bytes.count) bytes, less than the 64-byte header")
        }
        var r = StateReader(Array(bytes.prefix(SnapshotFormat.headerSize)), what: "the header")
        _ = try r.take(8)
        var h = SnapshotHeader()
        h.version = try r.u32()
        guard h.version <= SnapshotFormat.version else { throw .futureVersion(found: h.version, supported: SnapshotFormat.version) }
        guard h.version >= 1 else { throw .malformed("format version 0 does not exist") }
        let headerSize = try r.u32()
        guard headerSize == UInt32(SnapshotFormat.headerSize) else { throw .malformed("header size \(headerSize), expected 64") }
        h.pageSize = try r.u32()
        guard UInt64(h.pageSize) == SnapshotFormat.pageSize else { throw .malformed("page size \(h.pageSize), expected 4096") }
        h.recordCount = try r.u32()
        h.stateOffset = try r.u64(); h.stateLength = try r.u64()
        h.memoryOffset = try r.u64(); h.memoryLength = try r.u64()
        h.checksum = try r.u32()
        guard try r.u32() == 0 else { throw .malformed("the header's reserved field is not zero") }
        guard h.stateOffset == UInt64(SnapshotFormat.headerSize) else { throw .malformed("state offset \(h.stateOffset), expected 64") }
        guard h.stateLength <= SnapshotFormat.maximumStateLength else {
            throw .malformed("a state section of \(h.stateLength) bytes (at most \(SnapshotFormat.maximumStateLength))")
        }
        guard Int(h.recordCount) <= SnapshotFormat.maximumRecords else { throw .malformed("\(h.recordCount) records (at most \(SnapshotFormat.maximumRecords))") }
        let stateEnd = h.stateOffset + h.stateLength // both bounded above: no overflow
        guard h.memoryOffset >= stateEnd, h.memoryOffset % SnapshotFormat.pageSize == 0 else {
            throw .malformed("memory offset 0x\(String(h.memoryOffset, radix: 16)) overlaps the state or is not page-aligned")
        }
        let (memoryEnd, overflow) = h.memoryOffset.addingReportingOverflow(h.memoryLength)
        guard !overflow else { throw .malformed("memory offset plus length overflows") }
        guard stateEnd <= fileSize, memoryEnd <= fileSize else {
            throw .truncated("the file has \(fileSize) bytes, the header announces \(max(stateEnd, memoryEnd))")
        }
        return h
    }
}

/// One record of the state section.
public struct SnapshotRecord: Equatable, Sendable {
    public var tag: String
    public var index: UInt32
    public var payload: [UInt8]

    public init(_ tag: String, index: UInt32 = 0, _ payload: [UInt8]) {
        precondition(tag.utf8.count == 4, "record tags are four ASCII bytes")
        self.tag = tag
        self.index = index
        self.payload = payload
    }
}

/// One RAM region: where it sits in the guest and where its bytes are in the file (relative to the
/// memory offset).
public struct SnapshotRegion: Equatable, Sendable {
    public var guestAddress: UInt64
    public var length: UInt64
    public var fileOffset: UInt64
    public init(guestAddress: UInt64, length: UInt64, fileOffset: UInt64) {
        self.guestAddress = guestAddress; self.length = length; self.fileOffset = fileOffset
    }
}

/// The machine a snapshot was taken of: what must match for a restore.
public struct SnapshotMachine: Equatable, Sendable {
    /// kvm_intel, kvm_amd or kvm_pvm: guest state differs between them (VMX/SVM nested state, PVM's modes).
    public var backend = ""
    /// CPUID leaf 0's vendor string ("GenuineIntel", "AuthenticAMD"): the guest saw that CPU's features.
    public var cpuVendor = ""
    /// multiboot, bzImage or pvh (KernelFormat's raw value).
    public var kernelFormat = ""
    /// What was booted, for people: "embedded guest 'counter'", a path.
    public var kernel = ""
    public var memorySize: UInt64 = 0
    public var cpus: UInt32 = 0
    /// serial or virtio.
    public var console = ""
    public var commandLine = ""
    /// Whether the in-kernel irqchip and PIT exist (they are part of the state then).
    public var irqchip = false
    public var pit = false
    /// ns of CLOCK_REALTIME when the snapshot was taken (for `explain`).
    public var takenAt: UInt64 = 0

    public init() {}

    public func encoded() -> [UInt8] {
        var w = StateWriter()
        w.string(backend); w.string(cpuVendor); w.string(kernelFormat); w.string(kernel)
        w.u64(memorySize); w.u32(cpus); w.string(console); w.string(commandLine)
        w.bool(irqchip); w.bool(pit); w.u64(takenAt)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(SnapshotError) -> SnapshotMachine {
        var r = StateReader(bytes, what: "the machine record")
        var m = SnapshotMachine()
        m.backend = try r.string(limit: 64); m.cpuVendor = try r.string(limit: 64)
        m.kernelFormat = try r.string(limit: 64); m.kernel = try r.string(limit: 4096)
        m.memorySize = try r.u64(); m.cpus = try r.u32(); m.console = try r.string(limit: 64)
        m.commandLine = try r.string(limit: 65536)
        m.irqchip = try r.bool(); m.pit = try r.bool(); m.takenAt = try r.u64()
        try r.finish()
        guard m.cpus >= 1, m.cpus <= 1024 else { throw .malformed("the machine has \(m.cpus) vCPUs") }
        return m
    }
}

/// A parsed snapshot: header, machine, regions and every record, checked for structure and checksum.
public struct SnapshotContents: Sendable {
    public var header: SnapshotHeader
    public var machine: SnapshotMachine
    public var regions: [SnapshotRegion]
    public var records: [SnapshotRecord]

    /// The records with `tag` (and `index`, if given), in file order.
    public func records(_ tag: String, index: UInt32? = nil) -> [SnapshotRecord] {
        records.filter { $0.tag == tag && (index == nil || $0.index == index) }
    }

    public func record(_ tag: String, index: UInt32 = 0) -> SnapshotRecord? {
        records.first { $0.tag == tag && $0.index == index }
    }

    /// Encodes header and state section for `records` (MACH and MEMR included by the caller), with the
    /// memory placed at the first page boundary after the state. Returns the bytes and the header.
    public static func encode(records: [SnapshotRecord], memoryLength: UInt64) -> (bytes: [UInt8], header: SnapshotHeader) {
        var state = StateWriter()
        for record in records {
            state.raw(Array(record.tag.utf8)); state.u32(record.index); state.u32(UInt32(record.payload.count))
            state.raw(record.payload)
        }
        var header = SnapshotHeader()
        header.recordCount = UInt32(records.count)
        header.stateLength = UInt64(state.bytes.count)
        let stateEnd = UInt64(SnapshotFormat.headerSize) + header.stateLength
        header.memoryOffset = (stateEnd + SnapshotFormat.pageSize - 1) / SnapshotFormat.pageSize * SnapshotFormat.pageSize
        header.memoryLength = memoryLength
        var crc = CRC32C.checksum(header.encoded())
        crc = state.bytes.withUnsafeBytes { CRC32C.update(crc, $0) }
        header.checksum = crc
        return (header.encoded() + state.bytes, header)
    }

    /// Parses `headerAndState` (the file's first 64 + state length bytes) of a file of `fileSize` bytes.
    public static func decode(_ headerAndState: [UInt8], fileSize: UInt64) throws(SnapshotError) -> SnapshotContents {
        let header = try SnapshotHeader.parse(headerAndState, fileSize: fileSize)
        let stateEnd = SnapshotFormat.headerSize + Int(header.stateLength)
        guard headerAndState.count >= stateEnd else {
            throw .truncated("the state section needs \(header.stateLength) bytes, \(headerAndState.count - SnapshotFormat.headerSize) are there")
        }
        var zeroed = Array(headerAndState[0..<SnapshotFormat.headerSize])
        for k in SnapshotFormat.crcOffset..<SnapshotFormat.crcOffset + 4 { zeroed[k] = 0 }
        var crc = CRC32C.checksum(zeroed)
        crc = headerAndState[SnapshotFormat.headerSize..<stateEnd].withUnsafeBytes { CRC32C.update(crc, $0) }
        guard crc == header.checksum else {
            throw .corrupted("CRC32C of header and state is 0x\(String(crc, radix: 16)), the header says 0x\(String(header.checksum, radix: 16))")
        }
        var r = StateReader(Array(headerAndState[SnapshotFormat.headerSize..<stateEnd]), what: "the state section")
        var records: [SnapshotRecord] = []
        for _ in 0..<header.recordCount {
            let tagBytes = try r.take(4)
            guard tagBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { throw .malformed("record \(records.count) has a tag that is not ASCII") }
            let index = try r.u32()
            let length = Int(try r.u32())
            let payload = try r.take(length)
            records.append(SnapshotRecord(String(decoding: tagBytes, as: UTF8.self), index: index, payload))
        }
        try r.finish()
        guard let machineRecord = records.first(where: { $0.tag == "MACH" }) else { throw .malformed("no machine record (MACH)") }
        let machine = try SnapshotMachine.decode(machineRecord.payload)
        let regions = try decodeRegions(records.filter { $0.tag == "MEMR" }, header: header, machine: machine)
        return SnapshotContents(header: header, machine: machine, regions: regions, records: records)
    }

    static func decodeRegions(_ records: [SnapshotRecord], header: SnapshotHeader, machine: SnapshotMachine) throws(SnapshotError) -> [SnapshotRegion] {
        guard !records.isEmpty, records.count <= SnapshotFormat.maximumRegions else {
            throw .malformed("\(records.count) memory regions (1 to \(SnapshotFormat.maximumRegions))")
        }
        var regions: [SnapshotRegion] = []
        var total: UInt64 = 0
        for record in records {
            var r = StateReader(record.payload, what: "memory region \(record.index)")
            let region = SnapshotRegion(guestAddress: try r.u64(), length: try r.u64(), fileOffset: try r.u64())
            try r.finish()
            let page = SnapshotFormat.pageSize
            guard region.length > 0, region.length % page == 0, region.guestAddress % page == 0, region.fileOffset % page == 0 else {
                throw .malformed("memory region \(record.index) is empty or not page-aligned")
            }
            let (guestEnd, o1) = region.guestAddress.addingReportingOverflow(region.length)
            let (fileEnd, o2) = region.fileOffset.addingReportingOverflow(region.length)
            guard !o1, !o2, fileEnd <= header.memoryLength else {
                throw .malformed("memory region \(record.index) lies outside the memory section")
            }
            for other in regions {
                let otherGuestEnd = other.guestAddress + other.length, otherFileEnd = other.fileOffset + other.length
                if region.guestAddress < otherGuestEnd && other.guestAddress < guestEnd { throw .malformed("memory regions overlap in the guest") }
                if region.fileOffset < otherFileEnd && other.fileOffset < fileEnd { throw .malformed("memory regions overlap in the file") }
            }
            total += region.length // at most 16 regions, each within memoryLength: no overflow
            regions.append(region)
        }
        guard total == machine.memorySize else {
            throw .malformed("the memory regions hold \(total) bytes, the machine has \(machine.memorySize)")
        }
        return regions
    }
}
