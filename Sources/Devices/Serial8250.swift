// Serial8250: a 16550A UART (the PC's COM port) as a state machine, driven register by register.
//
// Implements the register set of the National Semiconductor PC16550D datasheet as Linux's 8250 driver
// probes it: RBR/THR, IER, IIR/FCR, LCR (with the divisor latch), MCR (with loopback), LSR, MSR and the
// scratch register, a 16-byte receive FIFO and the interrupt priorities (line status > received data >
// transmitter empty > modem status). Transmitted bytes go to an output sink; host input is queued with
// `enqueueInput`. The interrupt line is level-triggered through a callback (IRQ 4 for COM1).
import Synchronization

public final class Serial8250: BusDevice, @unchecked Sendable {
    // Register offsets (datasheet abbreviations).
    public static let rbr: UInt64 = 0, thr: UInt64 = 0, dll: UInt64 = 0
    public static let ier: UInt64 = 1, dlm: UInt64 = 1
    public static let iir: UInt64 = 2, fcr: UInt64 = 2
    public static let lcr: UInt64 = 3, mcr: UInt64 = 4, lsr: UInt64 = 5, msr: UInt64 = 6, scr: UInt64 = 7

    // IER bits.
    static let ierReceivedData: UInt8 = 0x01, ierTransmitterEmpty: UInt8 = 0x02
    static let ierLineStatus: UInt8 = 0x04, ierModemStatus: UInt8 = 0x08
    // IIR values.
    static let iirNoInterrupt: UInt8 = 0x01, iirModemStatus: UInt8 = 0x00, iirTransmitterEmpty: UInt8 = 0x02
    static let iirReceivedData: UInt8 = 0x04, iirLineStatus: UInt8 = 0x06, iirCharacterTimeout: UInt8 = 0x0C
    static let iirFIFOEnabled: UInt8 = 0xC0
    // LSR bits.
    static let lsrDataReady: UInt8 = 0x01, lsrOverrun: UInt8 = 0x02
    static let lsrTHREmpty: UInt8 = 0x20, lsrTransmitterEmpty: UInt8 = 0x40
    // LCR / MCR bits.
    static let lcrDLAB: UInt8 = 0x80
    static let mcrLoopback: UInt8 = 0x10

    public static let fifoSize = 16

    struct State {
        var ier: UInt8 = 0
        var lcr: UInt8 = 0x03
        var mcr: UInt8 = 0x08
        var lsr: UInt8 = lsrTHREmpty | lsrTransmitterEmpty
        var msr: UInt8 = 0xB0 // DCD, DSR, CTS asserted: a terminal is attached
        var scr: UInt8 = 0
        var dll: UInt8 = 0x0C // 9600 baud
        var dlm: UInt8 = 0
        var fifoEnabled = false
        var rx: [UInt8] = []
        /// THR-empty interrupt pending: set when THR empties (or ETBEI is enabled with THR empty),
        /// cleared by reading IIR when it reports it or by writing THR.
        var thrInterruptPending = true
        var lineLevel = false
    }

    let state = Mutex(State())
    private let output: @Sendable (UInt8) -> Void
    private let setInterruptLine: @Sendable (Bool) -> Void

    /// - Parameters:
    ///   - output: receives each transmitted byte.
    ///   - interruptLine: called with the new level whenever the UART's interrupt output changes.
    public init(output: @escaping @Sendable (UInt8) -> Void, interruptLine: @escaping @Sendable (Bool) -> Void = { _ in }) {
        self.output = output
        self.setInterruptLine = interruptLine
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        UInt64(state.withLock { s in readRegister(&s, offset) })
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        state.withLock { s in writeRegister(&s, offset, UInt8(truncatingIfNeeded: value)) }
    }

    /// Queues host input for the guest, as much as the receive FIFO has room for, and returns how many bytes
    /// it took. The caller keeps the rest and offers it again once the guest has read (flow control, as
    /// RTS/CTS gives a real terminal): nothing is lost, so the overrun bit is not set. (It was, and a paste
    /// into a Linux guest's console logged "ttyS0: 1 input overrun(s)" though every byte arrived.)
    @discardableResult
    public func enqueueInput<C: Collection<UInt8>>(_ bytes: C) -> Int {
        state.withLock { s in
            var accepted = 0
            for byte in bytes {
                if s.rx.count >= Self.fifoSize { break }
                s.rx.append(byte)
                accepted += 1
            }
            if !s.rx.isEmpty { s.lsr |= Self.lsrDataReady }
            updateInterrupt(&s)
            return accepted
        }
    }

    /// The register at `offset` by its datasheet name; offsets 0 and 1 depend on LCR's divisor latch bit (DLAB),
    /// offsets 0 and 2 on the direction.
    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        let dlab = state.withLock { $0.lcr & Self.lcrDLAB != 0 }
        return switch offset {
        case Self.rbr where dlab: BusRegister("DLL", meaning: "Divisor Latch, low byte (LCR.DLAB set): the baud rate divisor")
        case Self.rbr where isWrite: BusRegister("THR", meaning: "Transmitter Holding Register: the byte to send")
        case Self.rbr: BusRegister("RBR", meaning: "Receiver Buffer Register: the next received byte")
        case Self.ier where dlab: BusRegister("DLM", meaning: "Divisor Latch, high byte (LCR.DLAB set)")
        case Self.ier: BusRegister("IER", meaning: "Interrupt Enable Register")
        case Self.fcr where isWrite: BusRegister("FCR", meaning: "FIFO Control Register: bit 0 enables the FIFOs, bits 1-2 clear them")
        case Self.iir: BusRegister("IIR", meaning: "Interrupt Identification Register: bits 7:6 set when the FIFOs are on, bit 0 set when no interrupt is pending")
        case Self.lcr: BusRegister("LCR", meaning: "Line Control Register: word length, parity, stop bits, bit 7 DLAB")
        case Self.mcr: BusRegister("MCR", meaning: "Modem Control Register: DTR, RTS, OUT2 (gates the interrupt), loopback")
        case Self.lsr: BusRegister("LSR", meaning: "Line Status Register: bit 0 data ready, bit 5 THR empty, bit 6 transmitter empty")
        case Self.msr: BusRegister("MSR", meaning: "Modem Status Register: CTS, DSR, RI, DCD")
        case Self.scr: BusRegister("SCR", meaning: "Scratch Register: no effect, used to probe for the UART")
        default: nil
        }
    }

    /// Free space in the receive FIFO.
    public var inputSpace: Int { state.withLock { Self.fifoSize - $0.rx.count } }

    // MARK: Register logic

    private func readRegister(_ s: inout State, _ offset: UInt64) -> UInt8 {
        let dlab = s.lcr & Self.lcrDLAB != 0
        switch offset {
        case Self.rbr where dlab: return s.dll
        case Self.rbr:
            guard !s.rx.isEmpty else { return 0 }
            let byte = s.rx.removeFirst()
            if s.rx.isEmpty { s.lsr &= ~Self.lsrDataReady }
            updateInterrupt(&s)
            return byte
        case Self.ier where dlab: return s.dlm
        case Self.ier: return s.ier
        case Self.iir:
            let id = pendingInterrupt(s)
            if id == Self.iirTransmitterEmpty { s.thrInterruptPending = false; updateInterrupt(&s) }
            return id | (s.fifoEnabled ? Self.iirFIFOEnabled : 0)
        case Self.lcr: return s.lcr
        case Self.mcr: return s.mcr
        case Self.lsr:
            let value = s.lsr
            s.lsr &= ~Self.lsrOverrun // error bits clear on read
            updateInterrupt(&s)
            return value
        case Self.msr:
            if s.mcr & Self.mcrLoopback != 0 {
                // Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
                let m = s.mcr
                return ((m & 0x01) << 5) | ((m & 0x02) << 3) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
            }
            return s.msr
        case Self.scr: return s.scr
        default: return 0xFF
        }
    }

    private func writeRegister(_ s: inout State, _ offset: UInt64, _ value: UInt8) {
        let dlab = s.lcr & Self.lcrDLAB != 0
        switch offset {
        case Self.thr where dlab: s.dll = value
        case Self.thr:
            if s.mcr & Self.mcrLoopback != 0 {
                if s.rx.count < Self.fifoSize { s.rx.append(value); s.lsr |= Self.lsrDataReady } else { s.lsr |= Self.lsrOverrun }
            } else {
                output(value)
            }
            // The byte leaves at once: THR is empty again and, if enabled, says so by interrupt.
            s.thrInterruptPending = true
            updateInterrupt(&s)
        case Self.ier where dlab: s.dlm = value
        case Self.ier:
            let enablingTHRE = value & Self.ierTransmitterEmpty != 0 && s.ier & Self.ierTransmitterEmpty == 0
            s.ier = value & 0x0F
            if enablingTHRE { s.thrInterruptPending = true }
            updateInterrupt(&s)
        case Self.fcr:
            s.fifoEnabled = value & 0x01 != 0
            if value & 0x02 != 0 { s.rx.removeAll(); s.lsr &= ~Self.lsrDataReady }
            updateInterrupt(&s)
        case Self.lcr: s.lcr = value
        case Self.mcr:
            s.mcr = value & 0x1F
            updateInterrupt(&s)
        case Self.lsr, Self.msr: break // read-only (factory test writes are ignored)
        case Self.scr: s.scr = value
        default: break
        }
    }

    private func pendingInterrupt(_ s: State) -> UInt8 {
        if s.ier & Self.ierLineStatus != 0 && s.lsr & Self.lsrOverrun != 0 { return Self.iirLineStatus }
        if s.ier & Self.ierReceivedData != 0 && s.lsr & Self.lsrDataReady != 0 { return Self.iirReceivedData }
        if s.ier & Self.ierTransmitterEmpty != 0 && s.thrInterruptPending { return Self.iirTransmitterEmpty }
        return Self.iirNoInterrupt
    }

    private func updateInterrupt(_ s: inout State) {
        // OUT2 gates the interrupt output onto the ISA bus on a PC; Linux sets it before enabling interrupts.
        let level = pendingInterrupt(s) != Self.iirNoInterrupt && s.mcr & 0x08 != 0 && s.mcr & Self.mcrLoopback == 0
        if level != s.lineLevel {
            s.lineLevel = level
            setInterruptLine(level)
        }
    }
}
