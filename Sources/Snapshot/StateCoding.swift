// StateCoding: the little-endian byte codec every piece of saved state uses (a snapshot's records, each
// device's state). StateWriter appends; StateReader reads with every length checked against what is left,
// so a hostile or truncated input ends in a SnapshotError, never a trap.
public struct StateWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { append(v) }
    public mutating func u32(_ v: UInt32) { append(v) }
    public mutating func u64(_ v: UInt64) { append(v) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    /// A length (u32) and the bytes.
    public mutating func data(_ v: [UInt8]) { u32(UInt32(truncatingIfNeeded: v.count)); bytes += v }
    /// A length (u32) and the UTF-8 bytes.
    public mutating func string(_ v: String) { data(Array(v.utf8)) }
    public mutating func raw(_ v: [UInt8]) { bytes += v }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes += $0 }
    }
}

public struct StateReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var position = 0
    /// What is being read, for errors: "the 8250's state".
    let what: String

    public init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    public var remaining: Int { bytes.count - position }
    public var isAtEnd: Bool { position == bytes.count }

    public mutating func u8() throws(SnapshotError) -> UInt8 { try take(1)[0] }
    public mutating func u16() throws(SnapshotError) -> UInt16 { UInt16(try integer(2)) }
    public mutating func u32() throws(SnapshotError) -> UInt32 { UInt32(try integer(4)) }
    public mutating func u64() throws(SnapshotError) -> UInt64 { try integer(8) }
    public mutating func bool() throws(SnapshotError) -> Bool {
        let v = try u8()
        guard v <= 1 else { throw .malformed("\(what): a flag is \(v), not 0 or 1") }
        return v == 1
    }
    public mutating func data(limit: Int = 1 << 24) throws(SnapshotError) -> [UInt8] {
        let count = Int(try u32())
        guard count <= limit else { throw .malformed("\(what): a field of \(count) bytes (at most \(limit))") }
        return try take(count)
    }
    public mutating func string(limit: Int = 1 << 16) throws(SnapshotError) -> String {
        let raw = try data(limit: limit)
        guard let s = String(validating: raw, as: UTF8.self) else { throw .malformed("\(what): a text field is not UTF-8") }
        return s
    }
    public mutating func take(_ count: Int) throws(SnapshotError) -> [UInt8] {
        guard count >= 0, count <= remaining else {
            throw .truncated("\(what): needs \(count) more bytes at offset \(position), \(remaining) left")
        }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }
    /// Throws unless everything was read.
    public func finish() throws(SnapshotError) {
        guard isAtEnd else { throw .malformed("\(what): \(remaining) bytes left over") }
    }

    private mutating func integer(_ size: Int) throws(SnapshotError) -> UInt64 {
        let slice = try take(size)
        var v: UInt64 = 0
        for (k, b) in slice.enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
        return v
    }
}

/// Something whose state a snapshot saves and a restore puts back (Firecracker's `Persist` shape): the
/// owner of the state encodes it, versioned, and decodes it, refusing what it does not understand. Devices
/// conform; the machine's snapshot is the list of its owners' states, keyed by `stateKey`.
public protocol PersistentState: AnyObject {
    /// A stable name, unique in a machine: "serial-com1", "i8042". The snapshot's device record carries it.
    var stateKey: String { get }
    /// The state as bytes (the first byte a version of the layout, by convention).
    func saveState() -> [UInt8]
    /// Puts a saved state back; throws SnapshotError for bytes it cannot take.
    func restoreState(_ bytes: [UInt8]) throws(SnapshotError)
}
