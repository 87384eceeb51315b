// Tests for the snapshot format: a file that was written parses back to the same records, and every kind of
// damage (truncation, a flipped bit, a foreign file, a future version, bad regions) is refused with its error.
import Snapshot
import Testing

func sampleFile(memorySize: UInt64 = 2 * 4096, regions: [SnapshotRegion]? = nil) -> (bytes: [UInt8], fileSize: UInt64) {
    var machine = SnapshotMachine()
    machine.backend = "kvm_pvm"; machine.cpuVendor = "GenuineIntel"; machine.kernelFormat = "multiboot"
    machine.kernel = "embedded guest 'counter'"; machine.memorySize = memorySize; machine.cpus = 1; machine.console = "serial"
    var records = [SnapshotRecord("MACH", machine.encoded())]
    for (k, region) in (regions ?? [SnapshotRegion(guestAddress: 0, length: memorySize, fileOffset: 0)]).enumerated() {
        var w = StateWriter(); w.u64(region.guestAddress); w.u64(region.length); w.u64(region.fileOffset)
        records.append(SnapshotRecord("MEMR", index: UInt32(k), w.bytes))
    }
    records.append(SnapshotRecord("REGS", index: 0, [UInt8](repeating: 7, count: 144)))
    let (bytes, header) = SnapshotContents.encode(records: records, memoryLength: memorySize)
    return (bytes, header.memoryOffset + header.memoryLength)
}

@Suite struct SnapshotFileTests {
    @Test func writtenFileParsesBackToItsRecords() throws {
        let (bytes, size) = sampleFile()
        let contents = try SnapshotContents.decode(bytes, fileSize: size)
        #expect(contents.machine.cpuVendor == "GenuineIntel")
        #expect(contents.regions == [SnapshotRegion(guestAddress: 0, length: 8192, fileOffset: 0)])
        #expect(contents.record("REGS")?.payload == [UInt8](repeating: 7, count: 144))
        #expect(contents.header.memoryOffset % 4096 == 0)
    }

    @Test func everyFlippedBitIsCaught() {
        let (bytes, size) = sampleFile()
        for position in stride(from: 8, to: bytes.count, by: 7) {
            var damaged = bytes
            damaged[position] ^= 0x10
            #expect(throws: SnapshotError.self) { try SnapshotContents.decode(damaged, fileSize: size) }
        }
    }

    @Test func truncatedFileIsRefusedAsTruncated() {
        let (bytes, size) = sampleFile()
        #expect(throws: SnapshotError.self) { try SnapshotContents.decode(Array(bytes.prefix(40)), fileSize: 40) }
        do { _ = try SnapshotContents.decode(bytes, fileSize: size - 1); Issue.record("accepted a file shorter than its memory") } catch {
            guard case .truncated = error else { Issue.record("\(error)"); return }
        }
    }

    @Test func foreignFileIsRefusedAsForeign() {
        let elf: [UInt8] = [0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 100)
        #expect(throws: SnapshotError.foreign("the file does not start with \"SWFTSNAP\"")) { try SnapshotContents.decode(elf, fileSize: 104) }
    }

    @Test func futureVersionIsRefusedNamingBothVersions() {
        var (bytes, size) = sampleFile()
        bytes[8] = UInt8(SnapshotFormat.version + 1)
        #expect(throws: SnapshotError.futureVersion(found: SnapshotFormat.version + 1, supported: SnapshotFormat.version)) {
            try SnapshotContents.decode(bytes, fileSize: size)
        }
    }

    @Test func regionsThatOverlapOrMissMemoryAreRefused() {
        let overlapping = [SnapshotRegion(guestAddress: 0, length: 8192, fileOffset: 0), SnapshotRegion(guestAddress: 4096, length: 4096, fileOffset: 8192)]
        let (bytes, size) = sampleFile(memorySize: 8192, regions: overlapping)
        #expect(throws: SnapshotError.self) { try SnapshotContents.decode(bytes, fileSize: size + 4096) }
    }

    @Test func crc32cMatchesTheKnownCheckValue() {
        // RFC 3720 §B.4 / the CRC catalogue: CRC-32C of "123456789" is 0xE3069283.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func readerRefusesLengthsPastTheEnd() {
        var w = StateWriter(); w.u32(1000); w.raw([1, 2, 3])
        var r = StateReader(w.bytes, what: "test")
        #expect(throws: SnapshotError.self) { _ = try r.data() }
    }
}
