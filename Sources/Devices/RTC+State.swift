// RTC+State: the MC146818's saved state in a snapshot (PersistentState, docs/10-snapshots.md). Layout
// version 1: version u8, the selected register u8, the NMI-disable bit (flag), the 128 CMOS bytes (u32 count
// then the bytes) and the guest-minus-host clock offset in seconds (u64, two's complement). The time
// registers are computed from the host's clock plus that offset, so a restored guest's clock reads the
// restore's time of day, moved by what the guest itself set.
import Snapshot

extension RTC: PersistentState {
    public var stateKey: String { "rtc-cmos" }

    public func saveState() -> [UInt8] {
        state.withLock { s in
            var w = StateWriter()
            w.u8(1)
            w.u8(s.index)
            w.bool(s.nmiDisabled)
            w.data(s.cmos)
            w.u64(UInt64(bitPattern: s.offsetSeconds))
            return w.bytes
        }
    }

    public func restoreState(_ bytes: [UInt8]) throws(SnapshotError) {
        var r = StateReader(bytes, what: "the RTC's state")
        let version = try r.u8()
        guard version == 1 else { throw .malformed("the RTC's state has layout version \(version), this swiftlet reads 1") }
        var s = State()
        s.index = try r.u8()
        s.nmiDisabled = try r.bool()
        s.cmos = try r.data(limit: 128)
        s.offsetSeconds = Int64(bitPattern: try r.u64())
        try r.finish()
        guard s.cmos.count == 128, s.index < 128 else {
            throw .malformed("the RTC's state holds \(s.cmos.count) CMOS bytes and register \(s.index); it must hold 128 and select one of them")
        }
        let restored = s
        state.withLock { $0 = restored }
    }
}
