// VirtqueueFuzzer: a libFuzzer target for the device side of Swiftlet's virtio (Sources/Virtio), built and
// run by fuzz/run.sh (not part of `swift build`, not CI).
//
// Each input is a guest: its first bytes choose a mode and a queue layout, the rest is copied into a small
// guest RAM (16 KiB at 0 and 4 KiB at 0x8000, so chains can straddle a hole). Then:
//   mode 0 (queue): enable the queue, pop every available chain, write into its writable buffers, push
//            it used, ask whether to interrupt — exactly what a device does on a kick;
//   mode 1 (device): drive a virtio console through its virtio-mmio registers with (offset, value) pairs
//            taken from the input, kicks included, then feed it host input.
// Faults (VirtioFault) are expected; what must never happen is a trap, or a chain that breaks the rules
// the parser promises: every buffer inside guest RAM, no more buffers than the queue size, readable
// buffers before writable ones. Those are checked with preconditions, so a violation is a crash libFuzzer
// reports.
import GuestMemory
import Virtio

let memory = try! GuestMemory(layout: [(GuestAddress(0), 0x4000), (GuestAddress(0x8000), 0x1000)])
let ramBytes = 0x4000

struct Input {
    var bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    mutating func u8() -> UInt8 { position < bytes.count ? bytes[postIncrement()] : 0 }
    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    private mutating func postIncrement() -> Int { defer { position += 1 }; return position }
}

func check(_ chain: DescriptorChain, queueSize: UInt16) {
    precondition(chain.buffers.count <= Int(queueSize), "chain longer than the queue size got through")
    var sawWritable = false
    for buffer in chain.buffers {
        if buffer.length > 0 {
            precondition(memory.contains(buffer.address, length: UInt64(buffer.length)), "buffer outside RAM got through")
        }
        if buffer.writable { sawWritable = true } else { precondition(!sawWritable, "readable after writable got through") }
    }
    precondition(chain.readableLength <= UInt64(UInt32.max) && chain.writableLength <= UInt64(UInt32.max))
}

func fuzzQueue(_ input: inout Input) {
    let size = UInt16(1) << UInt16(input.u8() % 9)           // 1...256
    let features = UInt64(input.u8() & 3) << 28               // INDIRECT_DESC, EVENT_IDX
    var queue = Virtqueue(index: 0, maxSize: 256)
    queue.size = input.u8() & 0x80 != 0 ? UInt16(input.u8()) : size // sometimes an impossible size
    // Mostly inside the first region (bit 15 set: anywhere in 64 KiB, holes and all).
    func address() -> GuestAddress {
        let raw = UInt64(input.u16())
        return GuestAddress(raw & 0x8000 != 0 ? raw & 0x7FFF : raw & 0x3FFF)
    }
    queue.descriptorTable = GuestAddress(address().rawValue & ~0xF)
    queue.driverArea = address()
    queue.deviceArea = address()
    queue.ready = true
    do { try queue.enable(memory: memory, features: features) } catch { return }
    var rounds = 0
    while rounds < 64 {
        rounds += 1
        let chain: DescriptorChain?
        do { chain = try queue.pop(memory: memory) } catch { return }
        guard let chain else { break }
        check(chain, queueSize: queue.size)
        let bytes = (try? chain.readableBytes(in: memory, limit: 4096)) ?? []
        let written = (try? chain.write(bytes.reversed(), to: memory)) ?? 0
        do {
            try queue.pushUsed(memory: memory, head: chain.head, length: UInt32(written))
            _ = try queue.needsInterrupt(memory: memory)
        } catch { return }
    }
}

final class Sink: @unchecked Sendable { var count = 0 }

func fuzzDevice(_ input: inout Input) {
    let sink = Sink()
    let ports = [VirtioConsole.Port(name: nil, output: { sink.count += $0.count }),
                 VirtioConsole.Port(name: "fuzz", output: { sink.count += $0.count })]
    let device = VirtioDevice(model: VirtioConsole(ports: ports, size: (80, 25)), memory: memory, log: { _ in })
    let mmio = VirtioMMIOTransport(device: device, interrupt: { _ in })
    var steps = 0
    while input.position < input.bytes.count && steps < 256 {
        steps += 1
        let op = input.u8()
        let offset = UInt64(input.u8()) << 2 | UInt64(op & 3) // mostly aligned, sometimes not
        let size = [1, 2, 4, 4, 4, 8, 4, 4][Int(op >> 2) & 7]
        if op & 0x80 != 0 {
            _ = mmio.read(offset: offset, size: size)
        } else {
            mmio.write(offset: offset, size: size, value: UInt64(input.u32()))
        }
        if op & 0x40 != 0 { device.enqueueInput(port: Int(op & 1), [op, 0x0A]) }
    }
    device.resize(columns: 100, rows: 40)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = Input(bytes: UnsafeBufferPointer(start: data, count: size))
    let mode = input.u8() & 1
    let header = input.position + 16
    // Guest RAM: zeros, then the input after the header at 0 (and its start again in the second region).
    try! memory.zero(at: GuestAddress(0), count: UInt64(ramBytes))
    try! memory.zero(at: GuestAddress(0x8000), count: 0x1000)
    if size > header {
        let body = UnsafeBufferPointer(start: data + header, count: min(size - header, ramBytes))
        try! memory.write(bytes: body, at: GuestAddress(0))
        try! memory.write(bytes: body.prefix(0x1000), at: GuestAddress(0x8000))
    }
    if mode == 0 { fuzzQueue(&input) } else { fuzzDevice(&input) }
    return 0
}
