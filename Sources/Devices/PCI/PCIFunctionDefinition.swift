// PCIFunctionDefinition: what a device says about itself to the PCI layer before the machine runs — its
// identity, its memory BARs, its capabilities (vendor-specific ones with any payload, and MSI-X) and its
// INTx pin. PCIFunction turns a definition into a configuration space; nothing here changes at run time.
//
// BARs follow PCI Local Bus Specification 3.0 §6.2.5.1: a memory BAR is naturally aligned, its size a power
// of two of at least 16 bytes (Swiftlet asks for 4 KiB or more so each BAR can own whole pages); bit 0 is 0
// (memory), bits 2:1 are 00 for a 32-bit BAR and 10 for a 64-bit one, which takes two registers (low dword
// first), bit 3 says prefetchable. Capabilities follow §6.7: each starts with an ID byte and a next-pointer
// byte, dword-aligned in 0x40-0xFF. MSI-X is §6.8.2 (the capability, ID 0x11, and its table and pending-bit
// array in a BAR).

/// The three class-code bytes at 0x09-0x0B (PCI Code and ID Assignment Specification).
public struct PCIClassCode: Equatable, Sendable {
    public var baseClass: UInt8
    public var subclass: UInt8
    public var programmingInterface: UInt8

    public init(baseClass: UInt8, subclass: UInt8, programmingInterface: UInt8 = 0) {
        self.baseClass = baseClass; self.subclass = subclass; self.programmingInterface = programmingInterface
    }

    /// Base class 0x06, subclass 0x00: a host bridge.
    public static let hostBridge = PCIClassCode(baseClass: 0x06, subclass: 0x00)
    /// Base class 0x07, subclass 0x80: "other" communication controller (what virtio-console reports).
    public static let otherCommunicationController = PCIClassCode(baseClass: 0x07, subclass: 0x80)
    /// Base class 0xFF: fits no defined class.
    public static let unassigned = PCIClassCode(baseClass: 0xFF, subclass: 0x00)
}

/// The interrupt pin register (0x3D): which INTx# line a function uses.
public enum PCIInterruptPin: UInt8, Sendable, CaseIterable {
    case intA = 1, intB = 2, intC = 3, intD = 4
}

/// A range of guest-physical addresses (on x86 a PCI memory address is a guest-physical address).
public struct PCIMemoryRange: Hashable, Sendable, CustomStringConvertible {
    public let base: UInt64
    public let length: UInt64

    /// Nil when empty or when it would wrap past 2^64.
    public init?(base: UInt64, length: UInt64) {
        guard length > 0, base.addingReportingOverflow(length - 1).overflow == false else { return nil }
        self.base = base; self.length = length
    }

    public var last: UInt64 { base + (length - 1) }
    public func contains(_ address: UInt64) -> Bool { address >= base && address <= last }
    public func overlaps(_ other: PCIMemoryRange) -> Bool { base <= other.last && other.base <= last }

    public var description: String { "0x\(String(base, radix: 16))-0x\(String(last, radix: 16))" }
}

/// One memory BAR the function implements.
public struct PCIBARDefinition: Equatable, Sendable {
    public enum Width: Equatable, Sendable {
        /// One register; the BAR must be placed below 4 GiB.
        case bits32
        /// Two registers (this index and the next); the BAR may be placed anywhere.
        case bits64
    }

    /// The BAR register index, 0-5 (a 64-bit BAR also takes index + 1).
    public var index: Int
    public var sizeInBytes: UInt64
    public var width: Width
    public var prefetchable: Bool

    public init(index: Int, sizeInBytes: UInt64, width: Width = .bits32, prefetchable: Bool = false) {
        self.index = index; self.sizeInBytes = sizeInBytes; self.width = width; self.prefetchable = prefetchable
    }

    /// The smallest BAR Swiftlet accepts: one page.
    public static let minimumSize: UInt64 = 4096

    /// The read-only low bits of the (low) register: memory space, type, prefetchable.
    var typeBits: UInt32 { (width == .bits64 ? 0b100 : 0) | (prefetchable ? 0b1000 : 0) }
}

/// A capability in the list at 0x34: an ID and the bytes after the capability's next pointer.
public struct PCICapability: Equatable, Sendable {
    /// Capability IDs (PCI Code and ID Assignment Specification, "Capability IDs").
    public enum ID {
        public static let msi: UInt8 = 0x05
        public static let vendorSpecific: UInt8 = 0x09
        public static let pciExpress: UInt8 = 0x10
        public static let msix: UInt8 = 0x11
    }

    public var id: UInt8
    /// The bytes from offset 2 of the capability on (the ID and next pointer come first).
    public var body: [UInt8]
    /// Which bits of `body` software may write (same length as `body`; empty means all read-only).
    public var writableMask: [UInt8]

    public init(id: UInt8, body: [UInt8], writableMask: [UInt8] = []) {
        self.id = id; self.body = body; self.writableMask = writableMask
    }

    /// A vendor-specific capability (ID 0x09, §6.7 and Appendix H): byte 2 is the capability's length,
    /// counted from its first byte (3 + the payload), the payload follows. Virtio's `struct virtio_pci_cap`
    /// is one: its `cap_len` is this length byte and its `cfg_type` the first payload byte.
    public static func vendorSpecific(payload: [UInt8], writableMask: [UInt8] = []) -> PCICapability {
        PCICapability(id: ID.vendorSpecific, body: [UInt8(truncatingIfNeeded: 3 + payload.count)] + payload,
                      writableMask: writableMask.isEmpty ? [] : [0] + writableMask)
    }

    /// Bytes the capability occupies in configuration space.
    public var length: Int { 2 + body.count }
}

/// Where a function's MSI-X table and pending-bit array live (PCI 3.0 §6.8.2).
public struct PCIMSIXDefinition: Equatable, Sendable {
    /// Number of vectors (table entries), 1-2048.
    public var vectorCount: Int
    /// BAR index holding the table, and the table's offset in it (8-byte aligned).
    public var tableBAR: Int
    public var tableOffset: UInt32
    /// BAR index holding the pending-bit array, and its offset (8-byte aligned).
    public var pendingBitArrayBAR: Int
    public var pendingBitArrayOffset: UInt32

    public init(vectorCount: Int, tableBAR: Int, tableOffset: UInt32, pendingBitArrayBAR: Int, pendingBitArrayOffset: UInt32) {
        self.vectorCount = vectorCount; self.tableBAR = tableBAR; self.tableOffset = tableOffset
        self.pendingBitArrayBAR = pendingBitArrayBAR; self.pendingBitArrayOffset = pendingBitArrayOffset
    }

    public static let maximumVectors = 2048
    public static let entrySize = 16
    /// The capability's size in configuration space: ID, next, message control, table and PBA registers.
    public static let capabilityLength = 12

    /// Bytes of the table: 16 per vector.
    public var tableLength: UInt64 { UInt64(vectorCount * Self.entrySize) }
    /// Bytes of the pending-bit array: one bit per vector, in whole qwords.
    public var pendingBitArrayLength: UInt64 { UInt64((vectorCount + 63) / 64 * 8) }
}

/// Everything a function is before software touches it.
public struct PCIFunctionDefinition: Equatable, Sendable {
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var revisionID: UInt8
    public var classCode: PCIClassCode
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16
    /// The INTx pin the function uses, or nil for none.
    public var interruptPin: PCIInterruptPin?
    public var bars: [PCIBARDefinition]
    /// Placed in this order from 0x40, after the MSI-X capability when there is one.
    public var capabilities: [PCICapability]
    public var msix: PCIMSIXDefinition?

    public init(vendorID: UInt16, deviceID: UInt16, revisionID: UInt8 = 0, classCode: PCIClassCode,
                subsystemVendorID: UInt16 = 0, subsystemID: UInt16 = 0, interruptPin: PCIInterruptPin? = nil,
                bars: [PCIBARDefinition] = [], capabilities: [PCICapability] = [], msix: PCIMSIXDefinition? = nil) {
        self.vendorID = vendorID; self.deviceID = deviceID; self.revisionID = revisionID; self.classCode = classCode
        self.subsystemVendorID = subsystemVendorID; self.subsystemID = subsystemID; self.interruptPin = interruptPin
        self.bars = bars; self.capabilities = capabilities; self.msix = msix
    }
}

/// Why a function, a slot or a BAR assignment was refused. The texts say what to change.
public enum PCIError: Error, Equatable, Sendable, CustomStringConvertible {
    case vendorID(UInt16)
    case barIndex(Int)
    case barSize(index: Int, size: UInt64)
    case barsOverlap(Int)
    case capabilitiesTooLong(needed: Int)
    case capabilityMask(id: UInt8)
    case msixVectorCount(Int)
    case msixPlacement(String)
    case slot(UInt8)
    case slotTaken(PCIAddress)
    case windowFull(device: PCIAddress, bar: Int, size: UInt64, window: PCIMemoryRange)

    public var description: String {
        switch self {
        case let .vendorID(id):
            "PCI vendor ID 0x\(String(id, radix: 16)) is not allowed: 0xffff means 'no function here'"
        case let .barIndex(i):
            "PCI BAR index \(i) is out of range: BARs are 0-5 and a 64-bit BAR also takes the next index"
        case let .barSize(i, size):
            "PCI BAR \(i) size \(size) is not a power of two of at least \(PCIBARDefinition.minimumSize) bytes (32-bit BARs: below 4 GiB)"
        case let .barsOverlap(i):
            "PCI BAR register \(i) is claimed twice"
        case let .capabilitiesTooLong(needed):
            "PCI capabilities need \(needed) bytes but only \(PCIConfigSpace.size - PCIHeader.size) fit in 0x40-0xff"
        case let .capabilityMask(id):
            "PCI capability 0x\(String(id, radix: 16)): its writable mask must be as long as its body"
        case let .msixVectorCount(n):
            "MSI-X with \(n) vectors: a function has 1 to \(PCIMSIXDefinition.maximumVectors)"
        case let .msixPlacement(what):
            "MSI-X \(what)"
        case let .slot(s):
            "PCI slot \(s) does not exist: bus 0 has device numbers 1-31 (0 is the host bridge)"
        case let .slotTaken(address):
            "PCI slot \(address) is already taken"
        case let .windowFull(device, bar, size, window):
            "cannot place BAR \(bar) of \(device) (\(size) bytes): the PCI memory window \(window) is full"
        }
    }
}
