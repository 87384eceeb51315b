// LZ4: the decoder for the payload of an LZ4-compressed bzImage (CONFIG_KERNEL_LZ4, what Debian's cloud
// kernel and Swiftlet's minimal kernel use), so the VMM can unpack a kernel on the host instead of
// running its decompressor as guest code.
//
// Formats (the kernel's lib/decompress_unlz4.c reads the same): the "legacy" LZ4 frame that `lz4 -l`
// writes — magic 0x184C2102 (little-endian), then blocks, each a 32-bit little-endian compressed size and
// that many bytes of one LZ4 block (at most 8 MiB decompressed). The kernel's build appends the
// decompressed size as 4 more bytes, so a stream ends when fewer than a block header remain or the size
// read is the appended one. An LZ4 block is a run of sequences: a token (literal length in the high nibble,
// match length − 4 in the low; 15 means more length bytes follow, each added, until one is not 255), the
// literals, then a 16-bit little-endian match offset back into the output and the match; the last sequence
// has literals only. Every length and offset is checked: a bad stream is an error, never a trap.
public enum LZ4Error: Error, Equatable, CustomStringConvertible {
    case notLegacyFrame
    case truncated(at: Int)
    case badOffset(offset: Int, at: Int)
    case tooLarge(limit: Int)

    public var description: String {
        switch self {
        case .notLegacyFrame: "not an LZ4 legacy frame (no magic 0x184c2102)"
        case let .truncated(at): "the LZ4 data is truncated or corrupt at byte \(at)"
        case let .badOffset(offset, at): "an LZ4 match at byte \(at) points \(offset) bytes back, before the start of the output"
        case let .tooLarge(limit): "the LZ4 data decompresses to more than \(limit >> 20) MiB"
        }
    }
}

public enum LZ4 {
    public static let legacyMagic: UInt32 = 0x184C_2102
    /// The largest block `lz4 -l` writes (and the kernel's decompressor accepts).
    static let maximumBlock = 8 << 20

    /// Whether `bytes` starts with the legacy frame magic.
    public static func isLegacyFrame(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.count >= 4 && readLE32(bytes, bytes.startIndex) == legacyMagic
    }

    /// Decompresses a legacy frame (with the kernel's appended size allowed at the end).
    public static func decompressLegacyFrame(_ input: ArraySlice<UInt8>, limit: Int = 512 << 20) throws(LZ4Error) -> [UInt8] {
        guard isLegacyFrame(input) else { throw .notLegacyFrame }
        // The kernel appends the decompressed size as the frame's last 4 bytes: when it is plausible, the
        // output is allocated once at that size (no doubling, no second copy: 41 -> 32 MiB peak RSS for
        // booting the minimal kernel unpacked on the host). It is only a hint; every write is still checked.
        var hint = max(input.count * 4, 1 << 16)
        if input.count >= 8 {
            let appended = Int(readLE32(input, input.endIndex - 4))
            if appended >= input.count, appended <= limit { hint = appended }
        }
        var output = OutputBuffer(capacity: min(limit, hint), limit: limit)
        var position = input.startIndex + 4
        while input.endIndex - position >= 4 {
            let size = Int(readLE32(input, position))
            if UInt32(size) == legacyMagic { position += 4; continue } // another frame follows
            // The kernel's appended decompressed size: exactly the last 4 bytes.
            if input.endIndex - position == 4 { break }
            position += 4
            guard size > 0, size <= input.endIndex - position, size <= maximumBlock + maximumBlock / 255 + 16 else {
                throw .truncated(at: position - input.startIndex)
            }
            try decompressBlock(input[position..<(position + size)], into: &output, origin: input.startIndex)
            position += size
        }
        return output.take()
    }

    /// Decompresses one raw LZ4 block, appending to `output` (at most `limit` bytes in all).
    public static func decompressBlock(_ block: ArraySlice<UInt8>, into output: inout [UInt8], limit: Int) throws(LZ4Error) {
        var buffer = OutputBuffer(capacity: max(output.count * 2, 1 << 12), limit: limit)
        try buffer.append(output[...])
        try decompressBlock(block, into: &buffer, origin: block.startIndex)
        output = buffer.array
    }

    /// Errors name byte positions relative to `origin` (the frame's first byte).
    static func decompressBlock(_ block: ArraySlice<UInt8>, into output: inout OutputBuffer, origin: Int) throws(LZ4Error) {
        var i = block.startIndex
        let end = block.endIndex
        func length(_ nibble: Int) throws(LZ4Error) -> Int {
            var total = nibble
            guard nibble == 15 else { return total }
            while true {
                guard i < end else { throw .truncated(at: i - origin) }
                let byte = Int(block[i]); i += 1
                total += byte
                if byte != 255 { return total }
                guard total < output.limit else { throw .tooLarge(limit: output.limit) }
            }
        }
        while i < end {
            let token = Int(block[i]); i += 1
            let literals = try length(token >> 4)
            guard literals <= end - i else { throw .truncated(at: i - origin) }
            try output.append(block[i..<(i + literals)])
            i += literals
            if i == end { return } // the last sequence: literals only
            guard end - i >= 2 else { throw .truncated(at: i - origin) }
            let offset = Int(block[i]) | Int(block[i + 1]) << 8
            i += 2
            let match = try length(token & 0xF) + 4
            guard offset > 0, offset <= output.count else { throw .badOffset(offset: offset, at: i - origin) }
            try output.copyMatch(offset: offset, length: match)
        }
    }

    /// A growable byte buffer with a hard size limit; matches copy forward byte by byte when they
    /// overlap their own output (offset < length), as LZ4 requires.
    struct OutputBuffer {
        private(set) var storage: [UInt8]
        private(set) var count = 0
        let limit: Int

        init(capacity: Int, limit: Int) {
            storage = [UInt8](repeating: 0, count: max(capacity, 16))
            self.limit = limit
        }

        var array: [UInt8] { Array(storage[0..<count]) }

        /// The output, handed over without a copy (the buffer is not used afterwards).
        mutating func take() -> [UInt8] {
            if storage.count > count { storage.removeSubrange(count...) }
            return storage
        }

        mutating func reserve(_ extra: Int) throws(LZ4Error) {
            guard extra <= limit - count else { throw .tooLarge(limit: limit) }
            if count + extra > storage.count {
                var size = storage.count
                while size < count + extra { size *= 2 }
                storage.append(contentsOf: repeatElement(0, count: min(size, limit) - storage.count))
            }
        }

        mutating func append(_ bytes: ArraySlice<UInt8>) throws(LZ4Error) {
            try reserve(bytes.count)
            let at = count
            storage.withUnsafeMutableBufferPointer { out in
                bytes.withUnsafeBufferPointer { src in
                    if let base = src.baseAddress, !src.isEmpty {
                        // SAFETY: reserve() made out[at..<at + src.count] exist; src and out are distinct arrays.
                        (out.baseAddress! + at).update(from: base, count: src.count)
                    }
                }
            }
            count += bytes.count
        }

        mutating func copyMatch(offset: Int, length: Int) throws(LZ4Error) {
            try reserve(length)
            let at = count
            storage.withUnsafeMutableBufferPointer { out in
                // SAFETY: the caller checked 0 < offset <= count; reserve() made out[at..<at + length] exist.
                let p = out.baseAddress!
                var from = at - offset, to = at
                for _ in 0..<length { p[to] = p[from]; to += 1; from += 1 }
            }
            count += length
        }
    }

    static func readLE32(_ bytes: ArraySlice<UInt8>, _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}
