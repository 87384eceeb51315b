// FuzzInput: the byte reader every fuzz target in fuzz/ shares (compiled into each by fuzz/run.sh): a
// libFuzzer input taken apart as little-endian fields, zeros once it runs out, so every input is a valid
// program of operations and the fuzzer's mutations land on meaningful values.

#if canImport(Glibc)
import Glibc
#endif

struct FuzzInput {
    var bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    init(_ data: UnsafePointer<UInt8>, _ size: Int) { bytes = UnsafeBufferPointer(start: data, count: size) }

    var isEmpty: Bool { position >= bytes.count }
    var remaining: Int { max(0, bytes.count - position) }

    mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }
    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// The rest of the input as an array.
    mutating func rest() -> [UInt8] {
        defer { position = bytes.count }
        return position < bytes.count ? Array(bytes[position...]) : []
    }

    /// An access size a bus can produce: mostly 1, 2, 4 and 8, sometimes an odd one.
    mutating func accessSize() -> Int { [1, 2, 4, 8, 4, 1, 3, 2][Int(u8() & 7)] }
}

/// A promise the code under test must keep: if not, the message (file and line) and a trap libFuzzer
/// reports. Not `precondition`, whose message -O drops.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "a promise broken", file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError(message(), file: file, line: line) }
}

/// FUZZ_TRACE=1: each target says how far an input got (to see that the seeds reach the paths that matter:
/// `FUZZ_TRACE=1 fuzz/out/TARGET-fuzzer fuzz/corpus/TARGET/*`).
let tracing = getenv("FUZZ_TRACE") != nil
func trace(_ line: @autoclosure () -> String) { if tracing { print("trace: " + line()) } }
