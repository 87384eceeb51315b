// GuestAddress and AddressRange: guest-physical addresses as types, so a host pointer, a guest address
// and a length can never be mixed up. Arithmetic that could overflow returns nil instead of trapping.

/// A guest-physical address.
public struct GuestAddress: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// `self + length`, or nil if that wraps past 2^64.
    public func adding(_ length: UInt64) -> GuestAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(length)
        return overflow ? nil : GuestAddress(sum)
    }

    /// The distance from `base` up to `self`, or nil if `self` is below `base`.
    public func offset(from base: GuestAddress) -> UInt64? {
        rawValue >= base.rawValue ? rawValue - base.rawValue : nil
    }

    public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "0x" + hex(rawValue) }
}

/// A non-empty range of guest-physical addresses [base, base + length).
public struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    public let base: GuestAddress
    public let length: UInt64

    /// Rejects a zero length and a range that wraps past 2^64 (its last byte must be addressable).
    public init?(base: GuestAddress, length: UInt64) {
        guard length > 0, base.adding(length - 1) != nil else { return nil }
        self.base = base
        self.length = length
    }

    /// The address one past the last byte (may be 2^64, so given as a UInt64 sum that saturates).
    public var end: UInt64 { base.rawValue &+ length }
    public var last: GuestAddress { GuestAddress(base.rawValue + (length - 1)) }

    public func contains(_ address: GuestAddress) -> Bool {
        address >= base && address.rawValue - base.rawValue < length
    }

    /// True if `[address, address + length)` lies wholly inside this range.
    public func contains(_ address: GuestAddress, length: UInt64) -> Bool {
        guard let offset = address.offset(from: base) else { return false }
        return offset <= self.length && length <= self.length - offset
    }

    public func overlaps(_ other: AddressRange) -> Bool {
        base <= other.last && other.base <= last
    }

    /// "[0x100000, 0x10a2d4)": see `rangeText`.
    public var description: String { rangeText(base: base.rawValue, length: length) }
}

/// The one way Swiftlet writes a range of addresses (guest-physical memory, ports, MMIO), in `swiftlet boot -v`,
/// `swiftlet explain`, the gdb stub's monitor and error messages: half-open, the first address and the one just
/// past the last, `[0x3f8, 0x400)` for the 8 ports of COM1. `width` pads both numbers with zeros. A range that
/// ends at the top of the 64-bit space ends at 0x10000000000000000.
public func rangeText(base: UInt64, length: UInt64, width: Int = 0) -> String {
    let (end, wrapped) = base.addingReportingOverflow(length)
    return "[0x\(hex(base, width: width)), 0x\(wrapped ? "1" + hex(end, width: 16) : hex(end, width: width)))"
}

/// Lowercase hexadecimal without a prefix, padded to `width` digits.
public func hex<T: BinaryInteger>(_ value: T, width: Int = 0) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
