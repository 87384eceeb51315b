// Bus: the address decoder between a VM exit and the device that owns the address.
//
// One Bus serves port I/O (addresses 0...0xFFFF), another MMIO. Devices register a range and from then
// on see only offsets into it, the way a chip-select line works; the bus refuses ranges that overlap, so a
// misconfigured machine fails while it is being built instead of sending accesses to the wrong device.
// Devices synchronize themselves (they may be reached from several vCPU threads and a console thread).

/// A device on a bus: reads and writes of 1, 2, 4 or 8 bytes at an offset into its range.
public protocol BusDevice: AnyObject, Sendable {
    func read(offset: UInt64, size: Int) -> UInt64
    func write(offset: UInt64, size: Int, value: UInt64)
    /// The register an access of `size` bytes at `offset` reaches, in the datasheet's or specification's
    /// words, as the device decodes it now: ask after the access (a UART's divisor-latch bit, the function
    /// CONFIG_ADDRESS names). nil when the device has no name for it (the default). Only the learning lab's
    /// exit trace asks, so an answer may allocate.
    func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister?
}

extension BusDevice {
    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? { nil }
}

/// A register as `--trace-exits` names it: "LSR", with what it is for a reader ("Line Status Register") and,
/// where the device decodes more than the offset, what this access selected ("00:01.0 register 0x10").
public struct BusRegister: Equatable, Sendable {
    public let name: String
    public let meaning: String?
    public let detail: String?

    public init(_ name: String, meaning: String? = nil, detail: String? = nil) {
        self.name = name
        self.meaning = meaning
        self.detail = detail
    }

    /// "LSR", or "CONFIG_DATA (00:01.0 register 0x10)".
    public var text: String { detail.map { "\(name) (\($0))" } ?? name }
}

public enum BusError: Error, Equatable, Sendable, CustomStringConvertible {
    case overlap(new: String, existing: String)
    case emptyRange(String)

    public var description: String {
        switch self {
        case let .overlap(new, existing): "cannot place \(new): its range overlaps \(existing)"
        case let .emptyRange(name): "cannot place \(name): empty or wrapping range"
        }
    }
}

public final class Bus: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let base: UInt64
        public let length: UInt64
        public let device: any BusDevice
        var last: UInt64 { base + (length - 1) }
        public var description: String { "\(name) at 0x\(String(base, radix: 16))-0x\(String(last, radix: 16))" }
    }

    /// Sorted by base; written only while the machine is built, before any vCPU runs.
    public private(set) var entries: [Entry] = []
    public let name: String

    public init(name: String) { self.name = name }

    /// Places `device` at [base, base + length); refuses an empty, wrapping or overlapping range.
    public func insert(_ device: any BusDevice, name: String, base: UInt64, length: UInt64) throws(BusError) {
        guard length > 0, base.addingReportingOverflow(length - 1).overflow == false else { throw .emptyRange(name) }
        let entry = Entry(name: name, base: base, length: length, device: device)
        if let clash = entries.first(where: { $0.base <= entry.last && entry.base <= $0.last }) {
            throw .overlap(new: entry.description, existing: clash.description)
        }
        entries.append(entry)
        entries.sort { $0.base < $1.base }
    }

    /// The entry whose range holds `address`, by binary search.
    public func entry(containing address: UInt64) -> Entry? {
        var low = 0, high = entries.count - 1
        while low <= high {
            let mid = (low + high) / 2
            let e = entries[mid]
            if address < e.base { high = mid - 1 } else if address > e.last { low = mid + 1 } else { return e }
        }
        return nil
    }

    /// Reads `size` bytes at `address`; nil when no device is there.
    public func read(_ address: UInt64, size: Int) -> UInt64? {
        guard let e = entry(containing: address) else { return nil }
        return e.device.read(offset: address - e.base, size: size)
    }

    /// Writes `size` bytes at `address`; false when no device is there.
    @discardableResult
    public func write(_ address: UInt64, size: Int, value: UInt64) -> Bool {
        guard let e = entry(containing: address) else { return false }
        e.device.write(offset: address - e.base, size: size, value: value)
        return true
    }
}
