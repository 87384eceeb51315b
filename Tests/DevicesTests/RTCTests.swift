// Tests for the MC146818 RTC/CMOS model: driven register by register through ports 0x70/0x71 with a fixed clock.
import Devices
import Synchronization
import Testing

@Suite struct RTCTests {
    /// 2026-12-07 05:46:25 UTC, a Monday.
    static let monday: Int64 = 1_796_622_385

    func read(_ rtc: RTC, _ register: UInt8, nmiOff: Bool = false) -> UInt8 {
        rtc.write(offset: 0, size: 1, value: UInt64(register | (nmiOff ? 0x80 : 0)))
        return UInt8(rtc.read(offset: 1, size: 1))
    }

    func write(_ rtc: RTC, _ register: UInt8, _ value: UInt8) {
        rtc.write(offset: 0, size: 1, value: UInt64(register))
        rtc.write(offset: 1, size: 1, value: UInt64(value))
    }

    @Test func readsTheTimeOfDayInBCDAnd24HourFormByDefault() {
        let rtc = RTC(memoryBelow4GiB: 64 << 20, now: { Self.monday })
        #expect(read(rtc, 0x00) == 0x25)
        #expect(read(rtc, 0x02) == 0x46)
        #expect(read(rtc, 0x04) == 0x05)
        #expect(read(rtc, 0x06) == 0x02) // 1 = Sunday
        #expect(read(rtc, 0x07) == 0x07)
        #expect(read(rtc, 0x08) == 0x12)
        #expect(read(rtc, 0x09) == 0x26)
        #expect(read(rtc, 0x32) == 0x20)
        #expect(read(rtc, 0x0A) & 0x80 == 0, "update in progress must stay clear")
        #expect(read(rtc, 0x0D) == 0x80)
    }

    @Test func binaryAnd12HourModesFollowRegisterB() {
        let clock = Self.monday + 10 * 3600 // 15:46:25
        let rtc = RTC(memoryBelow4GiB: 64 << 20, now: { clock })
        write(rtc, 0x0B, RTC.bBinary) // binary, 12-hour
        #expect(read(rtc, 0x00) == 25)
        #expect(read(rtc, 0x04) == 0x83, "3 pm: hour 3 with the PM bit")
        write(rtc, 0x0B, RTC.bBinary | RTC.b24Hour)
        #expect(read(rtc, 0x04) == 15)
    }

    @Test func writingTheTimeMovesTheGuestClockOnly() {
        let host = Mutex<Int64>(Self.monday)
        let rtc = RTC(memoryBelow4GiB: 64 << 20, now: { host.withLock { $0 } })
        write(rtc, 0x0B, RTC.bSet | RTC.b24Hour)
        write(rtc, 0x09, 0x99)     // year 2099
        write(rtc, 0x04, 0x23)     // 23 h
        write(rtc, 0x0B, RTC.b24Hour)
        #expect(read(rtc, 0x09) == 0x99)
        #expect(read(rtc, 0x04) == 0x23)
        host.withLock { $0 += 61 }
        #expect(read(rtc, 0x02) == 0x47, "the guest clock keeps running with the host's")
        #expect(rtc.currentState.offsetSeconds != 0)
    }

    @Test func theIndexPortCarriesTheNMIMask() {
        let rtc = RTC(memoryBelow4GiB: 64 << 20, now: { 0 })
        _ = read(rtc, 0x0F, nmiOff: true)
        #expect(rtc.nmiDisabled)
        #expect(rtc.currentState.index == 0x0F)
        _ = read(rtc, 0x0F)
        #expect(!rtc.nmiDisabled)
    }

    @Test func memorySizeRegistersDescribeTheRAM() {
        let rtc = RTC(memoryBelow4GiB: 3 << 30, memoryAbove4GiB: 1 << 30, now: { 0 })
        func word(_ r: UInt8) -> Int { Int(read(rtc, r)) | Int(read(rtc, r + 1)) << 8 }
        #expect(word(0x15) == 640)
        #expect(word(0x17) == 0xFFFF, "extended memory in KiB saturates at 64 MiB - 1 KiB")
        #expect(word(0x30) == 0xFFFF)
        #expect(word(0x34) == ((3 << 30) - (16 << 20)) >> 16)
        let high = Int(read(rtc, 0x5B)) | Int(read(rtc, 0x5C)) << 8 | Int(read(rtc, 0x5D)) << 16
        #expect(high == (1 << 30) >> 16)

        let small = RTC(memoryBelow4GiB: 64 << 20, now: { 0 })
        #expect(Int(read(small, 0x17)) | Int(read(small, 0x18)) << 8 == 63 * 1024)
    }

    @Test func cmosRAMKeepsWhatTheGuestWritesAndRegisterCClearsOnRead() {
        let rtc = RTC(memoryBelow4GiB: 64 << 20, now: { 0 })
        write(rtc, 0x40, 0x5A)
        #expect(read(rtc, 0x40) == 0x5A)
        write(rtc, 0x0D, 0x00)
        #expect(read(rtc, 0x0D) == 0x80, "register D is read-only")
        var state = rtc.currentState
        state.cmos[0x0C] = 0x90
        let restored = RTC(state: state, now: { 0 })
        #expect(read(restored, 0x40) == 0x5A)
        #expect(read(restored, 0x0C) == 0x90)
        #expect(read(restored, 0x0C) == 0x00)
    }
}

@Suite struct IRQTestDeviceTests {
    @Test func aWriteToPort0x2000PlusNSetsLineN() {
        let lines = Mutex<[(UInt32, Bool)]>([])
        let device = IRQTestDevice { gsi, level in lines.withLock { $0.append((gsi, level)) } }
        device.write(offset: 0x0E, size: 1, value: 1)
        device.write(offset: 0x0E, size: 1, value: 0)
        device.write(offset: 30, size: 1, value: 1) // past the 24 pins: ignored
        let seen = lines.withLock { $0 }
        #expect(seen.map(\.0) == [14, 14])
        #expect(seen.map(\.1) == [true, false])
        #expect(device.read(offset: 0, size: 1) == 0)
    }
}
