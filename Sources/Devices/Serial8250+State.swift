// Serial8250+State: the UART's registers, receive FIFO and interrupt bookkeeping saved into a snapshot and
// put back on restore (PersistentState, docs/10-snapshots.md). Layout version 1: version u8, then IER, LCR,
// MCR, LSR, MSR, SCR, DLL, DLM (u8 each), FIFO enabled, THR interrupt pending, line level (flags), the
// receive FIFO (u32 count, at most 16 bytes). The interrupt line itself lives in the irqchip's saved state.
import Snapshot

extension Serial8250: PersistentState {
    public var stateKey: String { "serial-com1" }

    public func saveState() -> [UInt8] {
        state.withLock { s in
            var w = StateWriter()
            w.u8(1)
            for v in [s.ier, s.lcr, s.mcr, s.lsr, s.msr, s.scr, s.dll, s.dlm] { w.u8(v) }
            w.bool(s.fifoEnabled); w.bool(s.thrInterruptPending); w.bool(s.lineLevel)
            w.data(s.rx)
            return w.bytes
        }
    }

    public func restoreState(_ bytes: [UInt8]) throws(SnapshotError) {
        var r = StateReader(bytes, what: "the 8250's state")
        let version = try r.u8()
        guard version == 1 else { throw .malformed("the 8250's state has layout version \(version), this swiftlet reads 1") }
        var s = State()
        s.ier = try r.u8(); s.lcr = try r.u8(); s.mcr = try r.u8(); s.lsr = try r.u8()
        s.msr = try r.u8(); s.scr = try r.u8(); s.dll = try r.u8(); s.dlm = try r.u8()
        s.fifoEnabled = try r.bool(); s.thrInterruptPending = try r.bool(); s.lineLevel = try r.bool()
        s.rx = try r.data(limit: Self.fifoSize)
        try r.finish()
        guard s.ier & 0xF0 == 0 else { throw .malformed("the 8250's IER has reserved bits set (0x\(String(s.ier, radix: 16)))") }
        let restored = s
        state.withLock { $0 = restored }
    }
}

extension I8042: PersistentState {
    public var stateKey: String { "i8042" }
    /// The controller keeps no state (it answers every read with 0); version byte only.
    public func saveState() -> [UInt8] { [1] }
    public func restoreState(_ bytes: [UInt8]) throws(SnapshotError) {
        guard bytes == [1] else { throw .malformed("the i8042's state is not the one version-1 byte") }
    }
}
