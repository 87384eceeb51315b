// CRC32C: the Castagnoli CRC (polynomial 0x1EDC6F41, reflected 0x82F63B78), as iSCSI (RFC 3720 §B.4),
// ext4 and Firecracker's snapshot files use it. A snapshot's header and state section carry one, so a
// truncated or bit-flipped file is refused before any of it reaches KVM. Table-driven, one byte a step.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// Continues `crc` (start with 0) over `bytes`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return ~c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }
}
