// Serial8250Fuzzer: a libFuzzer target for the 8250 UART (Sources/Devices/Serial8250.swift), built and run by
// fuzz/run.sh. The input is what a guest and the host do to the port: register reads and writes at any
// offset, size and value, with and without DLAB and loopback, and host input offered to the receive FIFO.
//
// Nothing may trap, and the device must keep its promises (checked with require(), which traps with its message): the receive FIFO
// never holds more than 16 bytes, the host is told how much input was taken and no more, the interrupt line
// changes level on every call it makes (never the same level twice), and with OUT2 clear or in loopback
// the line stays low.
import Devices
import Synchronization

final class Wire: @unchecked Sendable {
    var level = false
    var calls = 0
    var transmitted = 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let wire = Wire()
    let uart = Serial8250(output: { _ in wire.transmitted += 1 }, interruptLine: { level in
        require(level != wire.level, "the interrupt line was set to the level it already had")
        wire.level = level
        wire.calls += 1
    })
    var mcr: UInt8 = 0x08 // Serial8250's reset value: OUT2 set, so a guest that never writes MCR still gets interrupts
    var steps = 0
    while !input.isEmpty && steps < 4096 {
        steps += 1
        let op = input.u8()
        // Mostly the eight registers; sometimes an offset past them (a wider access, or a bus bug).
        let offset = op & 0x80 != 0 ? UInt64(input.u8()) : UInt64(op & 7)
        let size = input.accessSize()
        switch (op >> 3) & 3 {
        case 0, 1:
            let value = UInt64(input.u32())
            if offset == 4 { mcr = UInt8(truncatingIfNeeded: value) & 0x1F }
            uart.write(offset: offset, size: size, value: value)
        case 2:
            let value = uart.read(offset: offset, size: size)
            require(value <= 0xFF, "a register read wider than a byte")
        default:
            let count = Int(input.u8() & 31)
            let space = uart.inputSpace
            let taken = uart.enqueueInput([UInt8](repeating: op, count: count))
            require(taken == min(count, space), "enqueueInput took \(taken) of \(count) with \(space) free")
        }
        require((0...Serial8250.fifoSize).contains(uart.inputSpace), "the receive FIFO holds more than 16 bytes")
        if mcr & 0x08 == 0 || mcr & 0x10 != 0 { require(!wire.level, "the line is high with OUT2 clear or in loopback") }
    }
    trace("8250: \(steps) operations, \(wire.transmitted) bytes out, \(wire.calls) line changes")
    return 0
}
