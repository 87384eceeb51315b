// Hex: the hexadecimal spellings the GDB remote protocol uses everywhere (GDB manual, Appendix E.1):
// numbers as big-endian hex digits without a prefix ("m1000,40"), and bytes as two lowercase hex digits
// each, in memory order (register values are therefore little-endian on x86). Every parser here is total:
// it returns nil for anything that is not what it expects, including numbers wider than 64 bits.

public enum Hex {
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The value of one hex digit (either case), or nil.
    @inline(__always)
    public static func digit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    public static func encode(byte: UInt8) -> [UInt8] { [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] }

    /// Two hex digits per byte.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return out
    }

    /// Bytes from pairs of hex digits; nil for an odd count or a non-hex character.
    public static func decode<Bytes: Collection>(_ text: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        guard text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var iterator = text.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = digit(high), let l = digit(low) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }

    /// A number written in hex digits (1 to 16 of them); nil otherwise.
    public static func number<Bytes: Collection>(_ text: Bytes) -> UInt64? where Bytes.Element == UInt8 {
        guard !text.isEmpty, text.count <= 16 else { return nil }
        var value: UInt64 = 0
        for byte in text {
            guard let d = digit(byte) else { return nil }
            value = value << 4 | UInt64(d)
        }
        return value
    }

    /// A number in lowercase hex without leading zeros ("0" for zero).
    public static func string(_ value: UInt64) -> String { String(value, radix: 16) }

    /// The bytes of a string as hex (qRcmd output, qThreadExtraInfo).
    public static func encode(text: String) -> [UInt8] { encode(Array(text.utf8)) }
}
