// RTC: the Motorola MC146818 real-time clock and its CMOS RAM, as a PC wires it at ports 0x70/0x71.
//
// Implements the MC146818A datasheet's register file (time registers 0x00-0x09, registers A-D at 0x0A-0x0D,
// 114 bytes of RAM at 0x0E-0x7F) behind the PC/AT index/data pair: a write to 0x70 selects a register
// (bits 0-6) and sets the NMI mask (bit 7: 1 = NMI disabled, the "NMI enable" bit of the AT's port 0x70);
// 0x71 reads or writes the selected register. The time of day is the host's clock plus an offset the guest
// moves by writing the time registers, shown in BCD or binary (register B bit 2, DM) and in 24- or 12-hour
// form (register B bit 1). Register A reports a 32.768 kHz time base and never "update in progress";
// register D always "valid RAM and time". No interrupt is raised (IRQ 8: no periodic, alarm or update
// interrupts), which guests that only read the clock never notice.
//
// The CMOS bytes PC firmware leaves for the operating system, as SeaBIOS and QEMU fill them: 0x15/0x16 base
// memory in KiB (640), 0x17/0x18 and 0x30/0x31 extended memory above 1 MiB in KiB (at most 65535), 0x34/0x35
// memory above 16 MiB in 64 KiB units (below 4 GiB), 0x5B-0x5D memory above 4 GiB in 64 KiB units, 0x32
// the century in BCD. All state is in `State`, a plain value a snapshot can save and restore.
import Synchronization

public final class RTC: BusDevice, Sendable {
    public static let basePort: UInt64 = 0x70
    public static let length: UInt64 = 2

    /// Register numbers (MC146818A datasheet, "Address Map").
    public enum Register {
        public static let seconds: UInt8 = 0x00
        public static let minutes: UInt8 = 0x02
        public static let hours: UInt8 = 0x04
        public static let dayOfWeek: UInt8 = 0x06
        public static let dayOfMonth: UInt8 = 0x07
        public static let month: UInt8 = 0x08
        public static let year: UInt8 = 0x09
        public static let a: UInt8 = 0x0A
        public static let b: UInt8 = 0x0B
        public static let c: UInt8 = 0x0C
        public static let d: UInt8 = 0x0D
        public static let baseMemoryLow: UInt8 = 0x15
        public static let extendedMemoryLow: UInt8 = 0x17
        public static let extendedMemoryLow2: UInt8 = 0x30
        public static let century: UInt8 = 0x32
        public static let memoryAbove16MLow: UInt8 = 0x34
        public static let memoryAbove4GLow: UInt8 = 0x5B
    }

    /// Register B bits: SET (updates stopped while the guest writes the time), DM (binary, not BCD), 24/12.
    public static let bSet: UInt8 = 0x80
    public static let bBinary: UInt8 = 0x04
    public static let b24Hour: UInt8 = 0x02

    /// Everything the device holds, as one value (for snapshots and tests).
    public struct State: Sendable, Equatable {
        /// The selected register (port 0x70 bits 0-6).
        public var index: UInt8 = 0
        /// Port 0x70 bit 7: non-maskable interrupts are disabled.
        public var nmiDisabled = false
        /// The 128 bytes of registers and RAM; the time registers 0x00-0x09 are computed, not stored here.
        public var cmos = [UInt8](repeating: 0, count: 128)
        /// Guest time minus host time, in seconds (the guest moves its clock by writing the time registers).
        public var offsetSeconds: Int64 = 0
    }

    let state: Mutex<State>
    /// Seconds since 1970-01-01 00:00 UTC (the host's clock; tests give their own).
    private let now: @Sendable () -> Int64

    /// An RTC whose CMOS reports `memoryBelow4GiB` bytes of RAM from address 0 and `memoryAbove4GiB` from 4 GiB.
    public init(memoryBelow4GiB: UInt64, memoryAbove4GiB: UInt64 = 0, now: @escaping @Sendable () -> Int64) {
        self.now = now
        var s = State()
        s.cmos[Int(Register.a)] = 0x26              // 32.768 kHz time base, 1024 Hz rate; UIP clear
        s.cmos[Int(Register.b)] = Self.b24Hour       // 24-hour, BCD, no interrupts
        s.cmos[Int(Register.d)] = 0x80               // VRT: RAM and time valid
        Self.putMemorySizes(&s.cmos, below4GiB: memoryBelow4GiB, above4GiB: memoryAbove4GiB)
        state = Mutex(s)
    }

    public init(state: State, now: @escaping @Sendable () -> Int64) {
        self.now = now
        self.state = Mutex(state)
    }

    /// The device's state now (for a snapshot).
    public var currentState: State { state.withLock { $0 } }
    /// Port 0x70 bit 7 as the guest last wrote it.
    public var nmiDisabled: Bool { state.withLock { $0.nmiDisabled } }

    static func putMemorySizes(_ cmos: inout [UInt8], below4GiB: UInt64, above4GiB: UInt64) {
        func put16(_ register: UInt8, _ value: UInt64) {
            let v = min(value, 0xFFFF)
            cmos[Int(register)] = UInt8(v & 0xFF)
            cmos[Int(register) + 1] = UInt8(v >> 8)
        }
        put16(Register.baseMemoryLow, 640)
        let extendedKiB = below4GiB > 1 << 20 ? (below4GiB - (1 << 20)) >> 10 : 0
        put16(Register.extendedMemoryLow, extendedKiB)
        put16(Register.extendedMemoryLow2, extendedKiB)
        put16(Register.memoryAbove16MLow, below4GiB > 16 << 20 ? (below4GiB - (16 << 20)) >> 16 : 0)
        let high = min(above4GiB >> 16, 0xFF_FFFF)
        cmos[Int(Register.memoryAbove4GLow)] = UInt8(high & 0xFF)
        cmos[Int(Register.memoryAbove4GLow) + 1] = UInt8((high >> 8) & 0xFF)
        cmos[Int(Register.memoryAbove4GLow) + 2] = UInt8(high >> 16)
        cmos[Int(Register.century)] = 0x20
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        guard offset == 1 else { return 0xFF } // the index port is write-only on the AT
        return UInt64(state.withLock { s -> UInt8 in
            let index = s.index
            if index <= Register.year {
                return Self.timeRegister(index, time: now() &+ s.offsetSeconds, b: s.cmos[Int(Register.b)])
            }
            let value = s.cmos[Int(index)]
            if index == Register.c { s.cmos[Int(Register.c)] = 0 } // reading C clears the interrupt flags
            if index == Register.century {
                let year = Self.civil(now() &+ s.offsetSeconds).year
                return Self.bcd(UInt8(clamping: year / 100))
            }
            return value
        })
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        let byte = UInt8(truncatingIfNeeded: value)
        state.withLock { s in
            if offset == 0 {
                s.index = byte & 0x7F
                s.nmiDisabled = byte & 0x80 != 0
                return
            }
            let index = s.index
            switch index {
            case Register.c, Register.d: return // read-only
            case Register.a: s.cmos[Int(index)] = byte & 0x7F // UIP is read-only
            case 0...Register.year:
                if index & 1 == 1 && index < Register.dayOfWeek { s.cmos[Int(index)] = byte; return } // alarms
                s.offsetSeconds = Self.offset(afterWriting: byte, to: index, offset: s.offsetSeconds, now: now(), b: s.cmos[Int(Register.b)])
            default: s.cmos[Int(index)] = byte
            }
        }
    }

    // MARK: Time of day

    static func bcd(_ v: UInt8) -> UInt8 { (v / 10) << 4 | (v % 10) }
    static func fromBCD(_ v: UInt8) -> UInt8 { (v >> 4) &* 10 &+ (v & 0xF) }

    /// A time register's value for `time` (seconds since 1970) in the format register B selects.
    static func timeRegister(_ index: UInt8, time: Int64, b: UInt8) -> UInt8 {
        let t = civil(time)
        let binary = b & bBinary != 0
        func encode(_ v: Int) -> UInt8 { binary ? UInt8(clamping: v) : bcd(UInt8(clamping: v)) }
        switch index {
        case Register.seconds: return encode(t.second)
        case Register.minutes: return encode(t.minute)
        case Register.hours:
            if b & b24Hour != 0 { return encode(t.hour) }
            let h12 = t.hour % 12 == 0 ? 12 : t.hour % 12
            return encode(h12) | (t.hour >= 12 ? 0x80 : 0)
        case Register.dayOfWeek: return encode(t.weekday + 1) // 1 = Sunday
        case Register.dayOfMonth: return encode(t.day)
        case Register.month: return encode(t.month)
        case Register.year: return encode(t.year % 100)
        default: return 0 // the alarm registers are stored in the CMOS array
        }
    }

    /// The new guest-minus-host offset after the guest writes `byte` to time register `index`.
    static func offset(afterWriting byte: UInt8, to index: UInt8, offset: Int64, now: Int64, b: UInt8) -> Int64 {
        var t = civil(now &+ offset)
        let binary = b & bBinary != 0
        let field = index == Register.hours ? byte & 0x7F : byte // bit 7 of the hour is PM in 12-hour form
        var v = Int(binary ? field : fromBCD(field))
        switch index {
        case Register.seconds: t.second = min(v, 59)
        case Register.minutes: t.minute = min(v, 59)
        case Register.hours:
            if b & b24Hour == 0 { v = v % 12 + (byte & 0x80 != 0 ? 12 : 0) }
            t.hour = min(v, 23)
        case Register.dayOfMonth: t.day = max(1, min(v, 31))
        case Register.month: t.month = max(1, min(v, 12))
        case Register.year: t.year = (t.year / 100) * 100 + min(v, 99)
        default: return offset // day of week follows from the date
        }
        return seconds(t) &- now
    }

    struct CivilTime: Equatable {
        var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, weekday: Int
    }

    /// Seconds since 1970 to a UTC calendar date (Howard Hinnant's days-from-civil algorithm, inverted).
    static func civil(_ time: Int64) -> CivilTime {
        let days = Int(time >= 0 ? time / 86_400 : (time - 86_399) / 86_400)
        let secs = Int(time - Int64(days) * 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 11) % 7 // 1970-01-01 was a Thursday (4)
        return CivilTime(year: year, month: month, day: day, hour: secs / 3600, minute: secs / 60 % 60, second: secs % 60, weekday: weekday)
    }

    /// A UTC calendar date to seconds since 1970 (days_from_civil).
    static func seconds(_ t: CivilTime) -> Int64 {
        let y = t.month <= 2 ? t.year - 1 : t.year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (t.month + (t.month > 2 ? -3 : 9)) + 2) / 5 + t.day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Int64(days) * 86_400 + Int64(t.hour * 3600 + t.minute * 60 + t.second)
    }
}
