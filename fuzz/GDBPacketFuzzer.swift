// GDBPacketFuzzer: a libFuzzer target for the gdb stub's protocol code (Sources/GDBRemote), built and run
// by `fuzz/run.sh gdb` (not part of `swift build`, not CI).
//
// Each input is what a hostile client sends: its first byte chooses how the bytes are cut into reads
// (so packets, escapes and checksums straddle read boundaries), the rest goes to a GDBConnection over a
// fake target (64 KiB of "guest memory" at 0x1000, two threads, four debug registers' worth of
// BreakpointTable). Each packet payload the decoder delivers is also parsed on its own, and monitor texts
// and page walks over the input's bytes are exercised. What must never happen: a trap, a reply that is
// not a well-framed packet, an ack or a nack, a reply longer than the PacketSize the stub announces, or
// memory read or written outside the fake target's RAM. Those are preconditions: a violation is a crash
// libFuzzer reports.
import GDBRemote

final class FuzzTarget: GDBTarget {
    var ram = [UInt8](repeating: 0x90, count: 0x10000)
    let base: UInt64 = 0x1000
    var files: [Int: X86Registers] = [1: X86Registers(), 2: X86Registers()]
    var table = BreakpointTable()
    var threadIDs: [Int] { [1, 2] }

    func index(_ address: UInt64) -> Int? {
        guard address >= base, address - base < UInt64(ram.count) else { return nil }
        return Int(address - base)
    }
    func registers(thread: Int) -> X86Registers? { files[thread] }
    func setRegisters(_ registers: X86Registers, thread: Int) -> Bool {
        precondition(registers.encoded().count == X86Registers.packetBytes)
        guard files[thread] != nil else { return false }
        files[thread] = registers
        return true
    }
    func readMemory(at address: UInt64, length: Int, thread: Int) -> [UInt8] {
        precondition(length <= GDBLimits.memoryTransfer, "the session must clamp reads")
        var out: [UInt8] = []
        for i in 0..<length {
            let (a, overflow) = address.addingReportingOverflow(UInt64(i))
            guard !overflow, let at = index(a) else { break }
            out.append(ram[at])
        }
        return out
    }
    func writeMemory(_ bytes: [UInt8], at address: UInt64, thread: Int) -> Bool {
        for i in bytes.indices {
            let (a, overflow) = address.addingReportingOverflow(UInt64(i))
            guard !overflow, index(a) != nil else { return false }
        }
        for (i, byte) in bytes.enumerated() { ram[index(address + UInt64(i))!] = byte }
        return true
    }
    func insertBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply {
        if request.type == .software {
            guard let at = index(request.address) else { return .failed("unmapped") }
            table.addSoftware(SoftwareBreakpoint(address: request.address, physical: UInt64(at), original: ram[at]))
            ram[at] = 0xCC
            return .ok
        }
        switch table.addHardware(request) {
        case .success: _ = table.debugRegisters; return .ok
        case let .failure(error): return .failed("\(error)")
        }
    }
    func removeBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply {
        if request.type == .software, let removed = table.removeSoftware(at: request.address) {
            ram[Int(removed.physical)] = removed.original
            return .ok
        }
        return table.removeHardware(request) ? .ok : .failed("none")
    }
    func monitor(_ command: String, thread: Int) -> String {
        switch MonitorCommand.parse(command) {
        case .help: return MonitorCommand.helpText
        case let .readPhysical(address, length): return String(repeating: "x", count: length) + "\(address)"
        case let .invalid(reason): return reason
        default: return "ok"
        }
    }
    func threadDescription(_ thread: Int) -> String { "vCPU \(thread - 1)" }
}

struct Input {
    var bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    mutating func u8() -> UInt8 { position < bytes.count ? bytes[postIncrement()] : 0 }
    mutating func u64() -> UInt64 { (0..<8).reduce(0) { v, i in v | UInt64(u8()) << (8 * UInt64(i)) } }
    private mutating func postIncrement() -> Int { defer { position += 1 }; return position }
}

/// Every reply must decode into well-formed events, each packet within the announced size.
func checkOutput(_ output: [UInt8]) {
    var decoder = PacketDecoder(maximumPayload: 2 * GDBLimits.packetSize + 16)
    for event in decoder.feed(output) {
        switch event {
        case let .packet(payload):
            let plain = PacketDecoder.unescape(payload)
            precondition(plain != nil, "a reply ends in a lone escape")
            precondition(plain!.count <= GDBLimits.packetSize, "a reply longer than PacketSize")
        case .ack, .nack: break
        case .interrupt, .badChecksum, .overlong: preconditionFailure("the stub sent a malformed packet: \(event)")
        }
    }
    precondition(!decoder.isInsidePacket, "the stub left a packet unfinished")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = Input(bytes: UnsafeBufferPointer(start: data, count: size))
    let chunk = Int(input.u8() % 64) + 1
    let target = FuzzTarget()
    let connection = GDBConnection(session: GDBSession(target: target, stoppedBy: StopEvent(thread: 1, reason: .attached)))
    let rest = Array(input.bytes[min(input.position, size)...])
    var offset = 0
    var stops = 0
    var decoder = PacketDecoder()
    while offset < rest.count {
        let piece = rest[offset..<min(offset + chunk, rest.count)]
        offset += chunk
        let (output, actions) = connection.receive(piece)
        checkOutput(output)
        for event in decoder.feed(piece) {
            if case let .packet(payload) = event { _ = GDBCommand.parse(payload) }
        }
        for action in actions {
            if case .resume = action, stops < 64 {
                // The guest "stops" at once: the session must be able to say so, for any thread.
                stops += 1
                checkOutput(connection.stopped(StopEvent(thread: stops % 3, reason: stops % 2 == 0 ? .step : .softwareBreakpoint)))
            }
        }
    }
    // Monitor texts and page walks from the same bytes.
    _ = MonitorCommand.parse(String(decoding: rest.prefix(64), as: UTF8.self))
    var walk = Input(bytes: input.bytes)
    let registers = PagingRegisters(cr0: walk.u64(), cr3: walk.u64(), cr4: walk.u64(), efer: walk.u64())
    let address = walk.u64()
    _ = PageWalk.translate(address, registers) { physical, width in
        guard physical < UInt64(size), physical + UInt64(width) <= UInt64(size) else { return nil }
        var v: UInt64 = 0
        for i in 0..<width { v |= UInt64(data[Int(physical) + i]) << (8 * UInt64(i)) }
        return v
    }
    var table = BreakpointTable()
    _ = table.addHardware(BreakpointRequest(type: BreakpointType(rawValue: Int(walk.u8() % 5)) ?? .hardware, address: walk.u64(), length: Int(walk.u8())))
    _ = table.debugRegisters
    return 0
}
