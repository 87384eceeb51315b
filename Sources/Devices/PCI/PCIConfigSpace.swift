// PCIConfigSpace: the 256 bytes of a PCI function's configuration space, with the rules for what software
// may change: each bit is read-only, read-write, or write-1-to-clear.
//
// Layout of the type-0 header (PCI Local Bus Specification 3.0, §6.1, Figure 6-1; PCI Express Base 4.0
// §7.5.1 keeps it): the first 64 bytes are standard, capabilities live in 0x40-0xFF.
//   0x00 vendor ID (RO)         0x02 device ID (RO)
//   0x04 command (RW bits)      0x06 status (RO and RW1C bits)
//   0x08 revision ID (RO)       0x09 class code: programming interface, subclass, base class (RO)
//   0x0C cache line size (RW)   0x0D latency timer (RO 0)   0x0E header type (RO 0)   0x0F BIST (RO 0)
//   0x10-0x27 base address registers 0-5 (address bits RW, the rest RO)
//   0x28 CardBus CIS pointer (RO 0)
//   0x2C subsystem vendor ID (RO)   0x2E subsystem ID (RO)
//   0x30 expansion ROM base address (RO 0: no ROM)
//   0x34 capabilities pointer (RO)
//   0x3C interrupt line (RW: firmware or the OS writes which IRQ it routed the pin to; the device ignores it)
//   0x3D interrupt pin (RO: 0 none, 1-4 INTA#-INTD#)   0x3E Min_Gnt, 0x3F Max_Lat (RO 0)
// Accesses are 1, 2 or 4 bytes little-endian inside one dword, as configuration transactions are.
// Only 256 bytes: configuration mechanism #1 cannot reach the PCI Express extended space (0x100-0xFFF),
// which needs ECAM (memory-mapped configuration) announced by ACPI's MCFG table.

/// Offsets of the type-0 header registers (Linux: include/uapi/linux/pci_regs.h spells them PCI_*).
public enum PCIHeader {
    public static let vendorID = 0x00
    public static let deviceID = 0x02
    public static let command = 0x04
    public static let status = 0x06
    public static let revisionID = 0x08
    public static let programmingInterface = 0x09
    public static let subclass = 0x0A
    public static let baseClass = 0x0B
    public static let cacheLineSize = 0x0C
    public static let latencyTimer = 0x0D
    public static let headerType = 0x0E
    public static let bist = 0x0F
    /// BAR 0; BAR n is at `bar(n)`.
    public static let bar0 = 0x10
    public static let cardbusCIS = 0x28
    public static let subsystemVendorID = 0x2C
    public static let subsystemID = 0x2E
    public static let expansionROM = 0x30
    public static let capabilitiesPointer = 0x34
    public static let interruptLine = 0x3C
    public static let interruptPin = 0x3D
    /// End of the standard header: capabilities start here.
    public static let size = 0x40
    public static let barCount = 6

    /// Offset of base address register `index` (0-5).
    public static func bar(_ index: Int) -> Int { bar0 + 4 * index }
}

/// The command register (0x04). Software enables the function's decoders and bus mastering here.
public struct PCICommand: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Bit 0: respond to I/O space accesses (Swiftlet's functions have no I/O BARs: hardwired 0).
    public static let ioSpace = PCICommand(rawValue: 1 << 0)
    /// Bit 1: respond to memory space accesses, i.e. decode the memory BARs.
    public static let memorySpace = PCICommand(rawValue: 1 << 1)
    /// Bit 2: the function may master the bus (DMA, and MSI, which is a memory write).
    public static let busMaster = PCICommand(rawValue: 1 << 2)
    /// Bit 6: report parity errors.
    public static let parityErrorResponse = PCICommand(rawValue: 1 << 6)
    /// Bit 8: SERR# enable.
    public static let serrEnable = PCICommand(rawValue: 1 << 8)
    /// Bit 10: INTx emulation disable: the function must not assert its INTx pin.
    public static let interruptDisable = PCICommand(rawValue: 1 << 10)

    /// The bits a Swiftlet function lets software write.
    public static let writable: PCICommand = [.memorySpace, .busMaster, .parityErrorResponse, .serrEnable, .interruptDisable]
}

/// The status register (0x06). Error bits are write-1-to-clear: writing 1 clears, writing 0 leaves them.
public struct PCIStatus: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Bit 3 (RO): the function's INTx is asserted internally, whatever the command register's disable bit says.
    public static let interruptStatus = PCIStatus(rawValue: 1 << 3)
    /// Bit 4 (RO): the capabilities pointer at 0x34 is valid.
    public static let capabilitiesList = PCIStatus(rawValue: 1 << 4)
    /// Bit 8 (RW1C): master data parity error.
    public static let masterDataParityError = PCIStatus(rawValue: 1 << 8)
    /// Bit 11 (RW1C): the function, as a target, ended a transaction with target-abort.
    public static let signaledTargetAbort = PCIStatus(rawValue: 1 << 11)
    /// Bit 12 (RW1C): the function, as a master, saw its transaction target-aborted.
    public static let receivedTargetAbort = PCIStatus(rawValue: 1 << 12)
    /// Bit 13 (RW1C): the function, as a master, saw its transaction master-aborted (nobody answered).
    public static let receivedMasterAbort = PCIStatus(rawValue: 1 << 13)
    /// Bit 14 (RW1C): the function asserted SERR#.
    public static let signaledSystemError = PCIStatus(rawValue: 1 << 14)
    /// Bit 15 (RW1C): the function detected a parity error.
    public static let detectedParityError = PCIStatus(rawValue: 1 << 15)

    /// The write-1-to-clear error bits.
    public static let writeOneToClear: PCIStatus = [.masterDataParityError, .signaledTargetAbort, .receivedTargetAbort,
                                                    .receivedMasterAbort, .signaledSystemError, .detectedParityError]
}

/// 256 bytes of configuration space with a per-bit access rule. A value type: `PCIFunction` keeps one
/// under its lock; set-up code fills it with the `set` methods, which ignore the rules.
public struct PCIConfigSpace: Sendable, Equatable {
    public static let size = 256

    private(set) var bytes: [UInt8]
    /// Bits software may write (the rest are read-only).
    private(set) var writableMask: [UInt8]
    /// Bits a 1 written by software clears (a 0 leaves them).
    private(set) var writeOneToClearMask: [UInt8]

    /// All zero and read-only.
    public init() {
        bytes = [UInt8](repeating: 0, count: Self.size)
        writableMask = bytes
        writeOneToClearMask = bytes
    }

    /// Whether [offset, offset + size) is a valid access: 1, 2 or 4 bytes, inside one dword, inside the space.
    public static func isValidAccess(offset: Int, size: Int) -> Bool {
        (size == 1 || size == 2 || size == 4) && offset >= 0 && offset + size <= Self.size
            && offset / 4 == (offset + size - 1) / 4
    }

    /// The little-endian value of `size` bytes at `offset`; all ones for an invalid access.
    public func read(offset: Int, size: Int) -> UInt32 {
        guard Self.isValidAccess(offset: offset, size: size) else { return Self.allOnes(size) }
        return value(at: offset, size: size)
    }

    /// A software write: read-write bits take the new value, write-1-to-clear bits clear where it has ones,
    /// read-only bits stay. An invalid access is dropped.
    public mutating func write(offset: Int, size: Int, value: UInt32) {
        guard Self.isValidAccess(offset: offset, size: size) else { return }
        for i in 0..<size {
            let new = UInt8(truncatingIfNeeded: value >> (8 * i))
            let at = offset + i
            let kept = bytes[at] & ~writableMask[at] & ~(writeOneToClearMask[at] & new)
            bytes[at] = kept | (new & writableMask[at])
        }
    }

    // MARK: Set-up and device-side changes (no access rules)

    /// Stores `size` bytes of `value` at `offset`, whatever the bits' rules.
    public mutating func set(offset: Int, size: Int, value: UInt64) {
        precondition(offset >= 0 && size > 0 && offset + size <= Self.size, "configuration space set out of range")
        for i in 0..<size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    public mutating func set8(_ offset: Int, _ value: UInt8) { set(offset: offset, size: 1, value: UInt64(value)) }
    public mutating func set16(_ offset: Int, _ value: UInt16) { set(offset: offset, size: 2, value: UInt64(value)) }
    public mutating func set32(_ offset: Int, _ value: UInt32) { set(offset: offset, size: 4, value: UInt64(value)) }

    /// Makes the bits of `mask` (`size` bytes at `offset`) writable by software.
    public mutating func setWritable(offset: Int, size: Int, mask: UInt64) {
        precondition(offset >= 0 && size > 0 && offset + size <= Self.size, "configuration space mask out of range")
        for i in 0..<size { writableMask[offset + i] = UInt8(truncatingIfNeeded: mask >> (8 * i)) }
    }

    /// Makes the bits of `mask` write-1-to-clear.
    public mutating func setWriteOneToClear(offset: Int, size: Int, mask: UInt64) {
        precondition(offset >= 0 && size > 0 && offset + size <= Self.size, "configuration space mask out of range")
        for i in 0..<size { writeOneToClearMask[offset + i] = UInt8(truncatingIfNeeded: mask >> (8 * i)) }
    }

    /// The value at `offset` without access checks (set-up and the function's own bookkeeping).
    public func value(at offset: Int, size: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<size { v |= UInt32(bytes[offset + i]) << (8 * i) }
        return v
    }

    public func value8(_ offset: Int) -> UInt8 { bytes[offset] }
    public func value16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: value(at: offset, size: 2)) }
    public func value32(_ offset: Int) -> UInt32 { value(at: offset, size: 4) }

    /// All ones in `size` bytes: what a read of nothing returns.
    public static func allOnes(_ size: Int) -> UInt32 {
        size >= 4 ? 0xFFFF_FFFF : (UInt32(1) << (8 * UInt32(max(size, 0)))) - 1
    }
}
