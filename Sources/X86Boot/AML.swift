// AML: the few ACPI Machine Language encodings the DSDT needs (ACPI 6.5 §20.2, "AML Grammar Definition"):
// package lengths (§20.2.4 PkgLength), name strings (§20.2.2), integer constants (§20.2.3), Name, Scope,
// Device, Buffer and Package terms (§20.2.5), EisaId values (§19.6.35), and the resource descriptors of a
// PCI host bridge's _CRS (§6.4: I/O port, Word and DWord Address Space descriptors, End Tag).
//
// Pure encoding into bytes, nothing evaluated: each function returns the bytes of one term, built from the
// bytes of its parts, so a definition block reads like the ASL it stands for. `iasl -d` decompiles it back.
enum AML {
    // MARK: Opcodes (§20.3)

    static let zeroOp: UInt8 = 0x00
    static let oneOp: UInt8 = 0x01
    static let nameOp: UInt8 = 0x08
    static let bytePrefix: UInt8 = 0x0A
    static let wordPrefix: UInt8 = 0x0B
    static let dwordPrefix: UInt8 = 0x0C
    static let qwordPrefix: UInt8 = 0x0E
    static let scopeOp: UInt8 = 0x10
    static let bufferOp: UInt8 = 0x11
    static let packageOp: UInt8 = 0x12
    static let dualNamePrefix: UInt8 = 0x2E
    static let rootChar: UInt8 = 0x5C
    static let extOpPrefix: UInt8 = 0x5B
    static let deviceOp: UInt8 = 0x82

    // MARK: Encodings

    /// PkgLength for `contentLength` bytes that follow it: the encoded length counts its own bytes too.
    /// One byte up to 63; else bits 7-6 of the lead byte give 1-3 following bytes, its bits 3-0 the low nibble.
    static func packageLength(_ contentLength: Int) -> [UInt8] {
        if contentLength + 1 < 0x40 { return [UInt8(contentLength + 1)] }
        for extra in 1...3 {
            let total = contentLength + 1 + extra
            guard total < 1 << (4 + 8 * extra) else { continue }
            var bytes = [UInt8(extra << 6) | UInt8(total & 0xF)]
            for i in 0..<extra { bytes.append(UInt8(truncatingIfNeeded: total >> (4 + 8 * i))) }
            return bytes
        }
        preconditionFailure("AML package of \(contentLength) bytes exceeds PkgLength's 2^28")
    }

    /// One NameSeg: four characters, short names padded with "_".
    static func nameSegment(_ name: Substring) -> [UInt8] {
        precondition(!name.isEmpty && name.count <= 4, "an AML NameSeg has 1 to 4 characters: \(name)")
        return Array(name.utf8) + [UInt8](repeating: UInt8(ascii: "_"), count: 4 - name.count)
    }

    /// A NameString: "\\" for the root, then one segment or two joined by DualNamePrefix ("\\_SB.PCI0").
    static func nameString(_ path: String) -> [UInt8] {
        var rest = Substring(path)
        var bytes: [UInt8] = []
        if rest.first == "\\" { bytes.append(rootChar); rest = rest.dropFirst() }
        let segments = rest.split(separator: ".")
        precondition(segments.count == 1 || segments.count == 2, "nameString takes one or two segments: \(path)")
        if segments.count == 2 { bytes.append(dualNamePrefix) }
        for segment in segments { bytes += nameSegment(segment) }
        return bytes
    }

    /// The shortest integer constant for `value`: ZeroOp, OneOp, or a Byte/Word/DWord/QWord prefix.
    static func integer(_ value: UInt64) -> [UInt8] {
        switch value {
        case 0: [zeroOp]
        case 1: [oneOp]
        case ...0xFF: [bytePrefix, UInt8(value)]
        case ...0xFFFF: [wordPrefix] + le(UInt16(value))
        case ...0xFFFF_FFFF: [dwordPrefix] + le(UInt32(value))
        default: [qwordPrefix] + le(value)
        }
    }

    /// EisaId("PNP0A03"): three letters in 5 bits each and four hex digits, as a big-endian DWord constant.
    static func eisaID(_ id: String) -> [UInt8] {
        let c = Array(id.utf8)
        precondition(c.count == 7, "an EISA id is 3 letters and 4 hex digits: \(id)")
        let vendor = (UInt16(c[0] - 0x40) << 10) | (UInt16(c[1] - 0x40) << 5) | UInt16(c[2] - 0x40)
        let product = UInt16(String(decoding: c[3...], as: UTF8.self), radix: 16) ?? 0
        return [dwordPrefix, UInt8(vendor >> 8), UInt8(vendor & 0xFF), UInt8(product >> 8), UInt8(product & 0xFF)]
    }

    /// Name(path, value).
    static func name(_ path: String, _ value: [UInt8]) -> [UInt8] { [nameOp] + nameString(path) + value }

    /// Scope(path) { body }.
    static func scope(_ path: String, _ body: [UInt8]) -> [UInt8] {
        let content = nameString(path) + body
        return [scopeOp] + packageLength(content.count) + content
    }

    /// Device(path) { body }.
    static func device(_ path: String, _ body: [UInt8]) -> [UInt8] {
        let content = nameString(path) + body
        return [extOpPrefix, deviceOp] + packageLength(content.count) + content
    }

    /// Buffer() { bytes }, its size given as an integer constant.
    static func buffer(_ bytes: [UInt8]) -> [UInt8] {
        let content = integer(UInt64(bytes.count)) + bytes
        return [bufferOp] + packageLength(content.count) + content
    }

    /// Package() { elements }.
    static func package(_ elements: [[UInt8]]) -> [UInt8] {
        precondition(elements.count <= 0xFF, "a Package holds at most 255 elements")
        let content = [UInt8(elements.count)] + elements.joined()
        return [packageOp] + packageLength(content.count) + content
    }

    // MARK: Resource descriptors (§6.4)

    /// ResourceTemplate() { descriptors }: a buffer ending in the End Tag (checksum 0: "treat as correct").
    static func resourceTemplate(_ descriptors: [[UInt8]]) -> [UInt8] {
        buffer(Array(descriptors.joined()) + [0x79, 0x00])
    }

    /// IO(Decode16, min, max, alignment, length): the small I/O Port descriptor (§6.4.2.5).
    static func ioPort(minimum: UInt16, maximum: UInt16, alignment: UInt8, length: UInt8) -> [UInt8] {
        [0x47, 0x01] + le(minimum) + le(maximum) + [alignment, length]
    }

    /// General flags of a producer range with fixed minimum and maximum, positive decode (§6.4.3.5.1).
    static let fixedProducer: UInt8 = 0x0C

    /// WordBusNumber / WordIO (§6.4.3.5.3): resource type 2 (bus numbers) or 1 (I/O), no translation.
    static func wordAddressSpace(resourceType: UInt8, typeFlags: UInt8, minimum: UInt16, maximum: UInt16) -> [UInt8] {
        [0x88] + le(UInt16(0x0D)) + [resourceType, fixedProducer, typeFlags]
            + le(UInt16(0)) + le(minimum) + le(maximum) + le(UInt16(0)) + le(maximum - minimum + 1)
    }

    /// DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite) (§6.4.3.5.2).
    static func dwordMemory(minimum: UInt32, maximum: UInt32) -> [UInt8] {
        [0x87] + le(UInt16(0x17)) + [0, fixedProducer, 0x01]
            + le(UInt32(0)) + le(minimum) + le(maximum) + le(UInt32(0)) + le(maximum - minimum + 1)
    }
}
