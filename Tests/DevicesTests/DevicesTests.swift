// Tests for the bus (decoding, offsets, overlap refusal) and the device state machines.
import Devices
import Synchronization
import Testing

final class Recorder: BusDevice, @unchecked Sendable {
    let log = Mutex<[(String, UInt64, Int, UInt64)]>([])
    func read(offset: UInt64, size: Int) -> UInt64 { log.withLock { $0.append(("r", offset, size, 0)) }; return 0xAB }
    func write(offset: UInt64, size: Int, value: UInt64) { log.withLock { $0.append(("w", offset, size, value)) } }
}

@Suite struct BusTests {
    @Test func devicesSeeOffsetsNotAddresses() throws {
        let bus = Bus(name: "test")
        let device = Recorder()
        try bus.insert(device, name: "dev", base: 0x3F8, length: 8)
        #expect(bus.read(0x3FD, size: 1) == 0xAB)
        #expect(bus.write(0x3F8, size: 1, value: 0x41))
        let log = device.log.withLock { $0 }
        #expect(log.count == 2)
        #expect(log[0].1 == 5 && log[1].1 == 0 && log[1].3 == 0x41)
    }

    @Test func unclaimedAddressesReportNoDevice() throws {
        let bus = Bus(name: "test")
        try bus.insert(Recorder(), name: "dev", base: 0x100, length: 0x10)
        #expect(bus.read(0xFF, size: 1) == nil)
        #expect(bus.read(0x110, size: 1) == nil)
        #expect(!bus.write(0x110, size: 1, value: 0))
    }

    @Test func refusesOverlappingRanges() throws {
        let bus = Bus(name: "test")
        try bus.insert(Recorder(), name: "a", base: 0x100, length: 0x10)
        #expect(throws: BusError.self) { try bus.insert(Recorder(), name: "b", base: 0x10F, length: 1) }
        #expect(throws: BusError.self) { try bus.insert(Recorder(), name: "c", base: 0xF0, length: 0x20) }
        #expect(throws: BusError.self) { try bus.insert(Recorder(), name: "d", base: 0x200, length: 0) }
        try bus.insert(Recorder(), name: "e", base: 0x110, length: 1)
        #expect(bus.entries.map(\.name) == ["a", "e"])
    }

    @Test func findsEntriesAmongMany() throws {
        let bus = Bus(name: "test")
        for i in stride(from: 0, to: 0x1000, by: 0x100) { try bus.insert(Recorder(), name: "d\(i)", base: UInt64(i), length: 0x80) }
        #expect(bus.entry(containing: 0x57F)?.name == "d1280")
        #expect(bus.entry(containing: 0x580) == nil)
    }
}

@Suite struct Serial8250Tests {
    final class Wires: @unchecked Sendable {
        let output = Mutex<[UInt8]>([])
        let irq = Mutex<[Bool]>([])
    }

    func makeUART() -> (Serial8250, Wires) {
        let wires = Wires()
        let uart = Serial8250(output: { b in wires.output.withLock { $0.append(b) } },
                              interruptLine: { l in wires.irq.withLock { $0.append(l) } })
        return (uart, wires)
    }

    @Test func transmitsWrittenBytesAndReportsTHREmpty() {
        let (uart, wires) = makeUART()
        for b in "hi\n".utf8 { uart.write(offset: Serial8250.thr, size: 1, value: UInt64(b)) }
        #expect(wires.output.withLock { $0 } == Array("hi\n".utf8))
        #expect(uart.read(offset: Serial8250.lsr, size: 1) & 0x60 == 0x60)
    }

    @Test func raisesInterruptWhenTransmitterEmptyIsEnabled() {
        let (uart, wires) = makeUART()
        uart.write(offset: Serial8250.mcr, size: 1, value: 0x08) // OUT2 routes the interrupt
        uart.write(offset: Serial8250.ier, size: 1, value: 0x02)
        #expect(wires.irq.withLock { $0 } == [true])
        #expect(uart.read(offset: Serial8250.iir, size: 1) & 0x0F == 0x02)
        // Reading IIR while it reports THRE clears that interrupt.
        #expect(wires.irq.withLock { $0 } == [true, false])
        #expect(uart.read(offset: Serial8250.iir, size: 1) & 0x01 == 0x01)
    }

    @Test func receivedBytesSetDataReadyAndInterrupt() {
        let (uart, wires) = makeUART()
        uart.write(offset: Serial8250.mcr, size: 1, value: 0x08)
        uart.write(offset: Serial8250.ier, size: 1, value: 0x01)
        #expect(uart.enqueueInput(Array("ok".utf8)) == 2)
        #expect(wires.irq.withLock { $0.last } == true)
        #expect(uart.read(offset: Serial8250.lsr, size: 1) & 0x01 == 1)
        #expect(uart.read(offset: Serial8250.iir, size: 1) & 0x0F == 0x04)
        #expect(uart.read(offset: Serial8250.rbr, size: 1) == UInt64(UInt8(ascii: "o")))
        #expect(uart.read(offset: Serial8250.rbr, size: 1) == UInt64(UInt8(ascii: "k")))
        #expect(uart.read(offset: Serial8250.lsr, size: 1) & 0x01 == 0)
        #expect(wires.irq.withLock { $0.last } == false)
    }

    /// Host input is flow-controlled: a full 16-byte FIFO takes nothing more, reports no overrun (the host
    /// keeps the bytes), and takes the rest once the guest has read.
    @Test func aFullFIFOTakesNoMoreAndLosesNothing() {
        let (uart, _) = makeUART()
        let input = (0..<20).map { UInt8(0x41 + $0) }
        #expect(uart.enqueueInput(input) == 16)
        #expect(uart.read(offset: Serial8250.lsr, size: 1) & 0x02 == 0, "no overrun: nothing was dropped")
        var received: [UInt8] = []
        for _ in 0..<16 { received.append(UInt8(uart.read(offset: Serial8250.rbr, size: 1))) }
        #expect(uart.read(offset: Serial8250.lsr, size: 1) & 0x01 == 0, "empty")
        #expect(uart.enqueueInput(input[16...]) == 4)
        for _ in 0..<4 { received.append(UInt8(uart.read(offset: Serial8250.rbr, size: 1))) }
        #expect(received == input)
    }

    /// In loopback mode (MCR bit 4) the transmitter feeds the receiver: a 17th byte overruns it.
    @Test func loopbackPastTheFIFOSetsOverrun() {
        let (uart, _) = makeUART()
        uart.write(offset: Serial8250.mcr, size: 1, value: 0x10)
        for i in 0..<17 { uart.write(offset: Serial8250.thr, size: 1, value: UInt64(i)) }
        #expect(uart.read(offset: Serial8250.lsr, size: 1) & 0x02 == 0x02)
        #expect(uart.read(offset: Serial8250.lsr, size: 1) & 0x02 == 0) // cleared by the read
    }

    @Test func scratchDivisorAndLoopbackBehaveLikeA16550A() {
        let (uart, wires) = makeUART()
        uart.write(offset: Serial8250.scr, size: 1, value: 0x5A)
        #expect(uart.read(offset: Serial8250.scr, size: 1) == 0x5A)
        uart.write(offset: Serial8250.lcr, size: 1, value: 0x83) // DLAB
        uart.write(offset: Serial8250.dll, size: 1, value: 0x01)
        uart.write(offset: Serial8250.dlm, size: 1, value: 0x00)
        #expect(uart.read(offset: Serial8250.dll, size: 1) == 1)
        uart.write(offset: Serial8250.lcr, size: 1, value: 0x03)
        // The 8250 driver's loopback probe: MCR = loop | OUT2 | RTS → MSR high nibble 0x90.
        uart.write(offset: Serial8250.mcr, size: 1, value: 0x1A)
        #expect(uart.read(offset: Serial8250.msr, size: 1) & 0xF0 == 0x90)
        uart.write(offset: Serial8250.thr, size: 1, value: 0x55)
        #expect(wires.output.withLock { $0 }.isEmpty)
        #expect(uart.read(offset: Serial8250.rbr, size: 1) == 0x55)
        // FIFO enable shows in IIR bits 7:6 (how Linux tells a 16550A).
        uart.write(offset: Serial8250.fcr, size: 1, value: 0x07)
        #expect(uart.read(offset: Serial8250.iir, size: 1) & 0xC0 == 0xC0)
    }
}

@Suite struct SmallDeviceTests {
    @Test func debugExitReportsTheValueAndEachRuleMakesItsStatus() {
        let seen = Mutex<[UInt32]>([])
        let device = DebugExit { v in seen.withLock { $0.append(v) } }
        device.write(offset: 0, size: 4, value: 3)
        device.write(offset: 0, size: 1, value: 0)
        #expect(seen.withLock { $0 } == [3, 0])
        // The default: the value itself, so 0 is success; above 255 it saturates (256 must not read as 0).
        #expect([0, 3, 255, 256, 0xFFFF_FFFF].map { DebugExitRule.value.status(for: $0) } == [0, 3, 255, 255, 255])
        // --qemu-exit-status: QEMU's isa-debug-exit rule, (v << 1) | 1 in 8 bits.
        #expect([0, 3, 0x7F, 0x80].map { DebugExitRule.qemu.status(for: $0) } == [1, 7, 255, 1])
    }

    @Test func i8042ResetsOnlyOnCommand0xFE() {
        let resets = Mutex(0)
        let device = I8042 { resets.withLock { $0 += 1 } }
        device.write(offset: 0, size: 1, value: 0xFE) // data port: not a command
        device.write(offset: 4, size: 1, value: 0xAA)
        #expect(resets.withLock { $0 } == 0)
        device.write(offset: 4, size: 1, value: 0xFE)
        #expect(resets.withLock { $0 } == 1)
        #expect(device.read(offset: 4, size: 1) == 0)
    }

    @Test func labPortsHandOutParametersAndReportMarkers() {
        let markers = Mutex<[UInt32]>([])
        let lab = LabPorts(parameters: [20000, 7]) { m in markers.withLock { $0.append(m) } }
        #expect(lab.read(offset: 1, size: 4) == 20000)
        #expect(lab.read(offset: 2, size: 4) == 7)
        #expect(lab.read(offset: 3, size: 4) == 0)
        lab.write(offset: 0, size: 4, value: 2)
        #expect(markers.withLock { $0 } == [2])
    }

    @Test func theSignalMailboxHoldsOneSignalUntilTheGuestReadsIt() {
        let lab = LabPorts(parameters: []) { _ in }
        #expect(lab.read(offset: LabPorts.signalMailboxOffset, size: 1) == 0, "empty")
        #expect(lab.post(signal: 15))
        #expect(!lab.post(signal: 2), "a second signal while the first waits is refused (the VMM then stops the VM)")
        #expect(lab.register(at: 3, size: 1, isWrite: false)?.name == "SIGNAL")
        #expect(lab.read(offset: LabPorts.signalMailboxOffset, size: 1) == 15)
        #expect(lab.read(offset: LabPorts.signalMailboxOffset, size: 1) == 0, "reading took it")
        #expect(!lab.post(signal: 0) && !lab.post(signal: 65), "not signals")
        #expect(lab.waitingSignal == 0)
        #expect(lab.post(signal: 10) && lab.waitingSignal == 10)
    }
}
