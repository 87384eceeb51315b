// SnapshotFuzzer: a libFuzzer target for the snapshot file parser (Sources/Snapshot: the header, the record
// list, the machine and region records, CRC32C) and the device states a restore hands to devices
// (Serial8250+State.swift), built and run by fuzz/run.sh. The input is a snapshot's header and state
// section, as `swiftlet restore` reads them; the file's size is the input's length shifted left by its
// low five bits, so inputs announcing memory beyond their own bytes are taken too (the counter seed is
// padded to a length whose low bits make room for its 64 MiB).
//
// A SnapshotError is expected; a trap never. What the parser accepts must keep its promises, checked with
// require(): the state and memory lie inside the file, every region is page-aligned inside the memory
// section and clear of the others, the regions add up to the machine's RAM; re-encoding the accepted
// records gives a file that parses to the same records; a device state the 8250 accepts saves back to the
// same bytes.
import Devices
import Snapshot

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let fileSize = UInt64(size) << UInt64(size & 31)
    let serial = Serial8250(output: { _ in })
    for record in (try? SnapshotContents.decode(bytes, fileSize: fileSize))?.records ?? [] where record.tag == "DEVC" {
        var r = StateReader(record.payload, what: "fuzz")
        guard (try? r.string()) != nil, let state = try? r.data() else { continue }
        if (try? serial.restoreState(state)) != nil { require(serial.saveState() == state, "the 8250 saved back other bytes than it accepted") }
    }
    // Device states straight from the input too (the 8250's decoder on its own).
    if (try? serial.restoreState(bytes)) != nil { require(serial.saveState() == bytes, "the 8250 saved back other bytes than it accepted") }
    guard let contents = try? SnapshotContents.decode(bytes, fileSize: fileSize) else { return 0 }
    let header = contents.header
    require(header.stateOffset + header.stateLength <= fileSize, "the state section past the end of the file got through")
    require(header.memoryOffset % SnapshotFormat.pageSize == 0 && header.memoryOffset + header.memoryLength <= fileSize, "memory outside the file got through")
    var total: UInt64 = 0
    for (k, region) in contents.regions.enumerated() {
        require(region.length > 0 && region.fileOffset % SnapshotFormat.pageSize == 0 && region.fileOffset + region.length <= header.memoryLength,
                "a region outside the memory section got through")
        for other in contents.regions[..<k] {
            require(region.fileOffset + region.length <= other.fileOffset || other.fileOffset + other.length <= region.fileOffset, "overlapping regions got through")
        }
        total += region.length
    }
    require(total == contents.machine.memorySize, "regions that do not add up to the machine's RAM got through")
    let (again, _) = SnapshotContents.encode(records: contents.records, memoryLength: header.memoryLength)
    let reparsed = try? SnapshotContents.decode(again, fileSize: max(fileSize, UInt64(again.count) + header.memoryLength + SnapshotFormat.pageSize))
    require(reparsed?.records == contents.records, "re-encoding the accepted records changed them")
    return 0
}
