// LZ4Fuzzer: a libFuzzer target for the LZ4 decoder (Sources/X86Boot/LZ4.swift), built and run by
// fuzz/run.sh. The first input byte picks what is decoded: the rest as a legacy frame (what a bzImage's
// payload is), or as one raw block after an output prefix (matches may reach back into it).
//
// The decoder is checked against a reference written here for clarity, not speed (LZ4's block format:
// token, literal-length bytes, literals, 16-bit offset, match-length bytes; the last sequence literals
// only): both must accept the same blocks and produce the same bytes, and neither may exceed the limit.
// An LZ4Error is expected; a trap never.
import X86Boot

let limit = 1 << 20

/// The reference decoder: one block appended to `output`, nil where the block is invalid.
func referenceBlock(_ block: [UInt8], prefix: [UInt8], limit: Int) -> [UInt8]? {
    var out = prefix
    if out.count > limit { return nil }
    var i = 0
    func length(_ nibble: Int) -> Int? {
        var total = nibble
        if nibble != 15 { return total }
        while true {
            guard i < block.count else { return nil }
            let byte = Int(block[i]); i += 1
            total += byte
            if total > limit { return nil }
            if byte != 255 { return total }
        }
    }
    while i < block.count {
        let token = Int(block[i]); i += 1
        guard let literals = length(token >> 4), literals <= block.count - i, out.count + literals <= limit else { return nil }
        out += block[i..<(i + literals)]
        i += literals
        if i == block.count { return out }
        guard block.count - i >= 2 else { return nil }
        let offset = Int(block[i]) | Int(block[i + 1]) << 8
        i += 2
        guard let extra = length(token & 15) else { return nil }
        let match = extra + 4
        guard offset > 0, offset <= out.count, out.count + match <= limit else { return nil }
        for _ in 0..<match { out.append(out[out.count - offset]) }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.u8()
    if mode & 1 == 0 {
        let frame = input.rest()
        if let output = try? LZ4.decompressLegacyFrame(frame[...], limit: limit) {
            trace("frame decoded: \(output.count) bytes")
            require(output.count <= limit, "a frame decoded past the limit")
        }
        return 0
    }
    let prefix = [UInt8](repeating: mode, count: Int(input.u8()))
    let block = input.rest()
    var output = prefix
    let decoded: [UInt8]?
    do { try LZ4.decompressBlock(block[...], into: &output, limit: limit); decoded = output } catch { decoded = nil }
    let reference = referenceBlock(block, prefix: prefix, limit: limit)
    trace("block: decoder \(decoded?.count ?? -1), reference \(reference?.count ?? -1)")
    require((decoded == nil) == (reference == nil), "the decoder and the reference disagree on whether the block is valid")
    require(decoded == reference, "the decoder and the reference produce different bytes")
    return 0
}
