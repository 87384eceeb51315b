// PCIFunction: one PCI function's generic state machine — its configuration space (type-0 header, BARs,
// capability list), the MSI-X table and pending bits, and the INTx pin — built from a PCIFunctionDefinition.
// A device (the virtio-pci transport) owns one and adds its own registers behind the BARs; the host
// bridge forwards configuration cycles to it and the MMIO window forwards BAR accesses.
//
// Implements, from PCI Local Bus Specification 3.0:
//   §6.1-6.2   the header: read-only identity, the command register's enables, write-1-to-clear status bits,
//              the interrupt line (writable) and pin (read-only)
//   §6.2.5.1   BAR sizing: address bits below the size read back as 0, so writing all ones and reading back
//              gives ~(size - 1) | type bits; a 64-bit BAR's high register takes the upper address bits
//   §6.7       the capability list: pointer at 0x34, status bit 4, each capability's next pointer
//   §6.8.2     MSI-X: message control (table size, function mask bit 14, enable bit 15), table entries
//              (address, data, vector control with its mask bit), the pending-bit array; a masked vector's
//              message is held as a pending bit and sent when it is unmasked
//   §6.8       while MSI-X is enabled the function does not use INTx; the command register's interrupt
//              disable bit (10) gates INTx too, and status bit 3 shows the internal INTx level either way
// Callbacks (`PCIInterruptWiring`) run while the function's lock is held: they must not call back into the
// function. What a device does not implement reads as zero and ignores writes (no I/O BARs, no expansion ROM).
import Synchronization

/// Where a function's interrupts go; the VMM supplies it (KVM_SIGNAL_MSI or an irqfd, KVM_IRQ_LINE).
public struct PCIInterruptWiring: Sendable {
    /// A change of MSI-X state the VMM may mirror (an irqfd route per vector, for example).
    public enum MSIXChange: Equatable, Sendable {
        /// The guest rewrote table entry `vector`.
        case entry(vector: Int, MSIXTableEntry)
        /// The guest changed message control: MSI-X enable and function mask.
        case control(enabled: Bool, functionMasked: Bool)
    }

    /// Sends the message of MSI-X vector `vector`.
    public var msi: @Sendable (_ vector: Int, _ message: MSIMessage) -> Void
    /// Drives the INTx pin: true asserts it (level-triggered; the VMM raises and lowers its IRQ line).
    public var intx: @Sendable (_ asserted: Bool) -> Void
    /// Told of every MSI-X table or message-control change the guest makes.
    public var msixChanged: @Sendable (_ change: MSIXChange) -> Void

    public init(msi: @escaping @Sendable (_ vector: Int, _ message: MSIMessage) -> Void = { _, _ in },
                intx: @escaping @Sendable (_ asserted: Bool) -> Void = { _ in },
                msixChanged: @escaping @Sendable (_ change: MSIXChange) -> Void = { _ in }) {
        self.msi = msi; self.intx = intx; self.msixChanged = msixChanged
    }
}

/// A BAR the function decodes now: memory space is enabled and the BAR holds `range`.
public struct PCIBARMapping: Hashable, Sendable, CustomStringConvertible {
    public let bar: Int
    public let range: PCIMemoryRange
    public init(bar: Int, range: PCIMemoryRange) { self.bar = bar; self.range = range }
    public var description: String { "BAR \(bar) at \(range)" }
}

public final class PCIFunction: Sendable {
    public let definition: PCIFunctionDefinition
    /// Configuration-space offset of each of `definition.capabilities`, in the same order.
    public let capabilityOffsets: [Int]
    /// Configuration-space offset of the MSI-X capability, when there is one (it comes first, at 0x40).
    public let msixCapabilityOffset: Int?

    private let wiring: PCIInterruptWiring
    private let initialState: State
    private let state: Mutex<State>

    struct MSIXState: Sendable {
        var entries: [MSIXTableEntry]
        var pending: [UInt64]
        var enabled = false
        var functionMasked = false

        func isPending(_ vector: Int) -> Bool { pending[vector / 64] & (1 << UInt64(vector % 64)) != 0 }
        mutating func setPending(_ vector: Int, _ on: Bool) {
            if on { pending[vector / 64] |= 1 << UInt64(vector % 64) } else { pending[vector / 64] &= ~(1 << UInt64(vector % 64)) }
        }
    }

    struct State: Sendable {
        var config: PCIConfigSpace
        var msix: MSIXState?
        /// The device's own INTx level.
        var intxAsserted = false
        /// What the pin shows after interrupt disable and MSI-X gate it.
        var intxOutput = false
    }

    /// Lays out the configuration space of `definition`; refuses impossible BARs, capabilities or MSI-X placement.
    public init(_ definition: PCIFunctionDefinition, interrupts: PCIInterruptWiring = PCIInterruptWiring()) throws(PCIError) {
        guard definition.vendorID != 0xFFFF else { throw .vendorID(definition.vendorID) }
        var c = PCIConfigSpace()
        c.set16(PCIHeader.vendorID, definition.vendorID)
        c.set16(PCIHeader.deviceID, definition.deviceID)
        c.set8(PCIHeader.revisionID, definition.revisionID)
        c.set8(PCIHeader.programmingInterface, definition.classCode.programmingInterface)
        c.set8(PCIHeader.subclass, definition.classCode.subclass)
        c.set8(PCIHeader.baseClass, definition.classCode.baseClass)
        c.set16(PCIHeader.subsystemVendorID, definition.subsystemVendorID)
        c.set16(PCIHeader.subsystemID, definition.subsystemID)
        c.set8(PCIHeader.interruptPin, definition.interruptPin?.rawValue ?? 0)
        c.setWritable(offset: PCIHeader.command, size: 2, mask: UInt64(PCICommand.writable.rawValue))
        c.setWriteOneToClear(offset: PCIHeader.status, size: 2, mask: UInt64(PCIStatus.writeOneToClear.rawValue))
        c.setWritable(offset: PCIHeader.cacheLineSize, size: 1, mask: 0xFF)
        c.setWritable(offset: PCIHeader.interruptLine, size: 1, mask: 0xFF)

        // BARs: read-only type bits, writable address bits above the size.
        var claimed = Set<Int>()
        for bar in definition.bars {
            let registers = bar.width == .bits64 ? [bar.index, bar.index + 1] : [bar.index]
            guard registers.allSatisfy({ (0..<PCIHeader.barCount).contains($0) }) else { throw .barIndex(bar.index) }
            let size = bar.sizeInBytes
            guard size >= PCIBARDefinition.minimumSize, size & (size - 1) == 0,
                  bar.width == .bits64 || size <= 1 << 31 else { throw .barSize(index: bar.index, size: size) }
            for r in registers { guard claimed.insert(r).inserted else { throw .barsOverlap(r) } }
            let addressMask = ~(size - 1)
            c.set32(PCIHeader.bar(bar.index), bar.typeBits)
            c.setWritable(offset: PCIHeader.bar(bar.index), size: 4, mask: addressMask & 0xFFFF_FFF0)
            if bar.width == .bits64 {
                c.setWritable(offset: PCIHeader.bar(bar.index + 1), size: 4, mask: addressMask >> 32)
            }
        }

        // MSI-X: the table and PBA must sit inside BARs the function has.
        var msixState: MSIXState?
        var capabilities: [PCICapability] = []
        if let m = definition.msix {
            guard m.vectorCount >= 1, m.vectorCount <= PCIMSIXDefinition.maximumVectors else { throw .msixVectorCount(m.vectorCount) }
            func region(_ what: String, _ barIndex: Int, _ offset: UInt32, _ length: UInt64) throws(PCIError) -> (Int, UInt64, UInt64) {
                guard let bar = definition.bars.first(where: { $0.index == barIndex }) else {
                    throw .msixPlacement("\(what) is in BAR \(barIndex), which the function does not define")
                }
                guard offset % 8 == 0, UInt64(offset) + length <= bar.sizeInBytes else {
                    throw .msixPlacement("\(what) at offset 0x\(String(offset, radix: 16)) (\(length) bytes) must be 8-byte aligned and inside BAR \(barIndex) (\(bar.sizeInBytes) bytes)")
                }
                return (barIndex, UInt64(offset), length)
            }
            let table = try region("table", m.tableBAR, m.tableOffset, m.tableLength)
            let pba = try region("pending-bit array", m.pendingBitArrayBAR, m.pendingBitArrayOffset, m.pendingBitArrayLength)
            if table.0 == pba.0, table.1 < pba.1 + pba.2, pba.1 < table.1 + table.2 {
                throw .msixPlacement("table and pending-bit array overlap in BAR \(table.0)")
            }
            msixState = MSIXState(entries: Array(repeating: MSIXTableEntry(), count: m.vectorCount),
                                  pending: Array(repeating: 0, count: (m.vectorCount + 63) / 64))
            var body = [UInt8](repeating: 0, count: PCIMSIXDefinition.capabilityLength - 2)
            let control = UInt16(m.vectorCount - 1)
            let tableRegister = m.tableOffset | UInt32(m.tableBAR)
            let pbaRegister = m.pendingBitArrayOffset | UInt32(m.pendingBitArrayBAR)
            for i in 0..<2 { body[i] = UInt8(truncatingIfNeeded: control >> (8 * i)) }
            for i in 0..<4 { body[2 + i] = UInt8(truncatingIfNeeded: tableRegister >> (8 * i)) }
            for i in 0..<4 { body[6 + i] = UInt8(truncatingIfNeeded: pbaRegister >> (8 * i)) }
            var mask = [UInt8](repeating: 0, count: body.count)
            mask[1] = 0xC0 // message control bits 15 (enable) and 14 (function mask)
            capabilities.append(PCICapability(id: PCICapability.ID.msix, body: body, writableMask: mask))
        }
        capabilities += definition.capabilities

        // The capability list: dword-aligned from 0x40, each pointing at the next, the last at 0.
        var offsets: [Int] = []
        var next = PCIHeader.size
        for cap in capabilities {
            guard cap.writableMask.isEmpty || cap.writableMask.count == cap.body.count else { throw .capabilityMask(id: cap.id) }
            offsets.append(next)
            next = (next + cap.length + 3) & ~3
        }
        guard offsets.last.map({ $0 + capabilities.last!.length }) ?? 0 <= PCIConfigSpace.size else {
            throw .capabilitiesTooLong(needed: offsets.last! + capabilities.last!.length - PCIHeader.size)
        }
        for (i, cap) in capabilities.enumerated() {
            let at = offsets[i]
            c.set8(at, cap.id)
            c.set8(at + 1, i + 1 < offsets.count ? UInt8(offsets[i + 1]) : 0)
            for (j, byte) in cap.body.enumerated() { c.set8(at + 2 + j, byte) }
            for (j, mask) in cap.writableMask.enumerated() { c.setWritable(offset: at + 2 + j, size: 1, mask: UInt64(mask)) }
        }
        if let first = offsets.first {
            c.set8(PCIHeader.capabilitiesPointer, UInt8(first))
            c.set16(PCIHeader.status, PCIStatus.capabilitiesList.rawValue)
        }

        self.definition = definition
        self.msixCapabilityOffset = definition.msix == nil ? nil : offsets[0]
        self.capabilityOffsets = Array(offsets.dropFirst(definition.msix == nil ? 0 : 1))
        self.wiring = interrupts
        self.initialState = State(config: c, msix: msixState)
        self.state = Mutex(initialState)
    }

    // MARK: Configuration space (what the host bridge forwards)

    /// A configuration read of `size` (1, 2, 4) bytes at `offset`, inside one dword; all ones when invalid.
    public func readConfig(offset: Int, size: Int) -> UInt32 {
        state.withLock { $0.config.read(offset: offset, size: size) }
    }

    /// A configuration write, with the per-bit rules; then the function acts on what changed (INTx gating,
    /// MSI-X enable and function mask).
    public func writeConfig(offset: Int, size: Int, value: UInt32) {
        state.withLock { s in
            s.config.write(offset: offset, size: size, value: value)
            syncMSIXControl(&s)
            updateINTx(&s)
        }
    }

    /// Puts BAR `index` at `address` (low bits beyond the BAR's alignment are dropped, as the register drops
    /// them). The VMM uses it to place BARs as firmware would; it does not enable memory decoding.
    public func setBARAddress(_ index: Int, _ address: UInt64) {
        guard let bar = definition.bars.first(where: { $0.index == index }) else { return }
        state.withLock { s in
            s.config.write(offset: PCIHeader.bar(index), size: 4, value: UInt32(truncatingIfNeeded: address))
            if bar.width == .bits64 {
                s.config.write(offset: PCIHeader.bar(index + 1), size: 4, value: UInt32(truncatingIfNeeded: address >> 32))
            }
        }
    }

    /// Restores the state after reset: everything the guest wrote is forgotten, INTx is released and
    /// MSI-X is off with every vector masked (told to `msixChanged` when that changes anything).
    public func reset() {
        state.withLock { s in
            let before = s
            s = initialState
            if before.intxOutput { wiring.intx(false) }
            guard let old = before.msix else { return }
            if old.enabled || old.functionMasked { wiring.msixChanged(.control(enabled: false, functionMasked: false)) }
            for (vector, entry) in old.entries.enumerated() where entry != MSIXTableEntry() {
                wiring.msixChanged(.entry(vector: vector, MSIXTableEntry()))
            }
        }
    }

    public var command: PCICommand { state.withLock { PCICommand(rawValue: $0.config.value16(PCIHeader.command)) } }
    public var status: PCIStatus { state.withLock { PCIStatus(rawValue: $0.config.value16(PCIHeader.status)) } }

    /// The address BAR `index` holds now (nil when the function has no such BAR).
    public func barAddress(_ index: Int) -> UInt64? {
        guard let bar = definition.bars.first(where: { $0.index == index }) else { return nil }
        return state.withLock { Self.address(of: bar, in: $0.config) }
    }

    /// The BARs the function decodes now: memory space enabled, each at the address its registers hold.
    public var memoryMappings: [PCIBARMapping] {
        state.withLock { s in
            guard PCICommand(rawValue: s.config.value16(PCIHeader.command)).contains(.memorySpace) else { return [] }
            return definition.bars.compactMap { bar in
                PCIMemoryRange(base: Self.address(of: bar, in: s.config), length: bar.sizeInBytes).map { PCIBARMapping(bar: bar.index, range: $0) }
            }
        }
    }

    static func address(of bar: PCIBARDefinition, in config: PCIConfigSpace) -> UInt64 {
        let low = UInt64(config.value32(PCIHeader.bar(bar.index)) & 0xFFFF_FFF0)
        guard bar.width == .bits64 else { return low }
        return low | UInt64(config.value32(PCIHeader.bar(bar.index + 1))) << 32
    }

    /// Sets status error bits the device detected (only the write-1-to-clear ones; software clears them).
    public func reportStatus(_ bits: PCIStatus) {
        let bits = bits.intersection(.writeOneToClear)
        state.withLock { s in
            s.config.set16(PCIHeader.status, s.config.value16(PCIHeader.status) | bits.rawValue)
        }
    }

    // MARK: Interrupts (the device's side)

    /// Signals MSI-X vector `vector`: sent now, held pending while masked, or refused when MSI-X is off.
    @discardableResult
    public func signal(vector: Int) -> PCIInterruptDelivery {
        state.withLock { s in
            guard var m = s.msix, m.enabled else { return .msixDisabled }
            guard vector >= 0, vector < m.entries.count else { return .noSuchVector }
            if m.functionMasked || m.entries[vector].isMasked {
                m.setPending(vector, true)
                s.msix = m
                return .pending
            }
            let message = m.entries[vector].message
            wiring.msi(vector, message)
            return .delivered(message)
        }
    }

    /// Sets the device's INTx level; the pin follows unless interrupt disable or MSI-X gates it.
    public func setINTx(_ asserted: Bool) {
        state.withLock { s in
            s.intxAsserted = asserted
            updateINTx(&s)
        }
    }

    /// What the INTx pin shows now.
    public var intxLevel: Bool { state.withLock { $0.intxOutput } }
    public var isMSIXEnabled: Bool { state.withLock { $0.msix?.enabled ?? false } }
    public var isMSIXFunctionMasked: Bool { state.withLock { $0.msix?.functionMasked ?? false } }

    /// Table entry `vector` as the guest programmed it.
    public func msixEntry(_ vector: Int) -> MSIXTableEntry? {
        state.withLock { s in s.msix.flatMap { vector >= 0 && vector < $0.entries.count ? $0.entries[vector] : nil } }
    }

    /// Whether vector `vector` waits in the pending-bit array.
    public func isMSIXPending(_ vector: Int) -> Bool {
        state.withLock { s in s.msix.map { vector >= 0 && vector < $0.entries.count && $0.isPending(vector) } ?? false }
    }

    private func updateINTx(_ s: inout State) {
        var status = PCIStatus(rawValue: s.config.value16(PCIHeader.status))
        if s.intxAsserted { status.insert(.interruptStatus) } else { status.remove(.interruptStatus) }
        s.config.set16(PCIHeader.status, status.rawValue)
        let disabled = PCICommand(rawValue: s.config.value16(PCIHeader.command)).contains(.interruptDisable)
        let output = s.intxAsserted && definition.interruptPin != nil && !disabled && !(s.msix?.enabled ?? false)
        if output != s.intxOutput {
            s.intxOutput = output
            wiring.intx(output)
        }
    }

    private func syncMSIXControl(_ s: inout State) {
        guard var m = s.msix, let at = msixCapabilityOffset else { return }
        let control = s.config.value16(at + 2)
        let enabled = control & 0x8000 != 0, masked = control & 0x4000 != 0
        guard enabled != m.enabled || masked != m.functionMasked else { return }
        m.enabled = enabled
        m.functionMasked = masked
        wiring.msixChanged(.control(enabled: enabled, functionMasked: masked))
        if enabled && !masked {
            for v in 0..<m.entries.count where m.isPending(v) && !m.entries[v].isMasked { deliverPending(&m, v) }
        }
        s.msix = m
    }

    private func deliverPending(_ m: inout MSIXState, _ vector: Int) {
        m.setPending(vector, false)
        wiring.msi(vector, m.entries[vector].message)
    }

    // MARK: MSI-X table and pending-bit array (reached through the BARs)

    /// Serves a read that falls in the MSI-X table or pending-bit array of BAR `bar`; nil when it falls
    /// elsewhere (the device's own registers). Only aligned 4- and 8-byte accesses are defined; others read 0.
    /// "MSI-X table entry 2 message data" or "MSI-X pending bits" when `offset` into `bar` is there, for `--trace-exits`.
    public func msixRegisterName(bar: Int, offset: UInt64) -> String? {
        guard let m = definition.msix else { return nil }
        if bar == m.tableBAR, let rel = Self.relative(offset, UInt64(m.tableOffset), m.tableLength) {
            let field = ["message address (low)", "message address (high)", "message data", "vector control"][Int(rel % 16 / 4)]
            return "MSI-X table entry \(rel / 16) \(field)"
        }
        if bar == m.pendingBitArrayBAR, Self.relative(offset, UInt64(m.pendingBitArrayOffset), m.pendingBitArrayLength) != nil {
            return "MSI-X pending bits"
        }
        return nil
    }

    public func readMSIX(bar: Int, offset: UInt64, size: Int) -> UInt64? {
        guard let m = definition.msix else { return nil }
        if bar == m.tableBAR, let rel = Self.relative(offset, UInt64(m.tableOffset), m.tableLength) {
            return state.withLock { s in
                guard let table = s.msix, Self.isAlignedQwordOrDword(rel, size) else { return 0 }
                let e = table.entries[Int(rel / 16)]
                let field = rel % 16
                let dwords: [UInt32] = [UInt32(truncatingIfNeeded: e.messageAddress), UInt32(truncatingIfNeeded: e.messageAddress >> 32),
                                        e.messageData, e.vectorControl]
                let low = UInt64(dwords[Int(field / 4)])
                return size == 8 ? low | UInt64(dwords[Int(field / 4) + 1]) << 32 : low
            }
        }
        if bar == m.pendingBitArrayBAR, let rel = Self.relative(offset, UInt64(m.pendingBitArrayOffset), m.pendingBitArrayLength) {
            return state.withLock { s in
                guard let table = s.msix, Self.isAlignedQwordOrDword(rel, size) else { return 0 }
                let qword = table.pending[Int(rel / 8)]
                return size == 8 ? qword : (qword >> (8 * (rel % 8))) & 0xFFFF_FFFF
            }
        }
        return nil
    }

    /// Serves a write that falls in the MSI-X table or pending-bit array; false when it falls elsewhere.
    /// The pending-bit array is read-only; in the table only vector control bit 0 (mask) and the address
    /// and data are writable. Unmasking a pending vector sends its message.
    @discardableResult
    public func writeMSIX(bar: Int, offset: UInt64, size: Int, value: UInt64) -> Bool {
        guard let m = definition.msix else { return false }
        if bar == m.pendingBitArrayBAR, Self.relative(offset, UInt64(m.pendingBitArrayOffset), m.pendingBitArrayLength) != nil {
            return true
        }
        guard bar == m.tableBAR, let rel = Self.relative(offset, UInt64(m.tableOffset), m.tableLength) else { return false }
        state.withLock { s in
            guard var table = s.msix, Self.isAlignedQwordOrDword(rel, size) else { return }
            let vector = Int(rel / 16)
            var e = table.entries[vector]
            let before = e
            func store(_ field: UInt64, _ v: UInt32) {
                switch field {
                case 0: e.messageAddress = e.messageAddress & 0xFFFF_FFFF_0000_0000 | UInt64(v)
                case 4: e.messageAddress = e.messageAddress & 0xFFFF_FFFF | UInt64(v) << 32
                case 8: e.messageData = v
                default: e.vectorControl = v & 1
                }
            }
            store(rel % 16, UInt32(truncatingIfNeeded: value))
            if size == 8 { store(rel % 16 + 4, UInt32(truncatingIfNeeded: value >> 32)) }
            guard e != before else { return }
            table.entries[vector] = e
            wiring.msixChanged(.entry(vector: vector, e))
            if before.isMasked, !e.isMasked, table.enabled, !table.functionMasked, table.isPending(vector) {
                deliverPending(&table, vector)
            }
            s.msix = table
        }
        return true
    }

    /// `offset - base` when `offset` lies in [base, base + length).
    private static func relative(_ offset: UInt64, _ base: UInt64, _ length: UInt64) -> UInt64? {
        offset >= base && offset - base < length ? offset - base : nil
    }

    private static func isAlignedQwordOrDword(_ rel: UInt64, _ size: Int) -> Bool {
        (size == 4 && rel % 4 == 0) || (size == 8 && rel % 8 == 0)
    }
}
