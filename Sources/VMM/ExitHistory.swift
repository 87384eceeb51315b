// ExitHistory: the last VM exits, kept while gdb is attached (`monitor last-exits`), in a ring of fixed-size
// records: recording one costs a lock and a copy, no allocation. What the ExitTracer prints with
// --trace-exits, but remembered instead, so a learner stopped at a breakpoint can ask "what did the guest
// just do?". The guest's RIP is not recorded (it would cost a KVM_GET_REGS per exit).
import CKVM
import Devices
import GuestMemory
import KVM
import Synchronization

final class ExitHistory: @unchecked Sendable {
    struct Record {
        var nanoseconds: UInt64 = 0
        var vcpu: UInt32 = 0
        var reason: ExitTracer.Reason = .other
        /// Port or guest-physical address (I/O, MMIO); suberror (INTERNAL_ERROR); DR6 (DEBUG).
        var address: UInt64 = 0
        var value: UInt64 = 0
        var size: UInt8 = 0
        var isWrite = false
    }

    static let capacity = 256
    private let ring = Mutex<(records: [Record], next: Int, total: Int)>(([Record](repeating: Record(), count: ExitHistory.capacity), 0, 0))
    private let start = ckvm_monotonic_ns()

    func record(_ exit: VCPUExit, reason: ExitTracer.Reason, vcpu: UInt32) {
        var r = Record(nanoseconds: ckvm_monotonic_ns() - start, vcpu: vcpu, reason: reason)
        switch exit {
        case let .io(io):
            r.address = UInt64(io.port)
            r.size = UInt8(truncatingIfNeeded: io.size)
            r.isWrite = io.isWrite
            for (k, byte) in io.data.prefix(8).enumerated() { r.value |= UInt64(byte) << (8 * UInt64(k)) }
        case let .mmio(mmio):
            r.address = mmio.address
            r.size = UInt8(truncatingIfNeeded: mmio.data.count)
            r.isWrite = mmio.isWrite
            for (k, byte) in mmio.data.prefix(8).enumerated() { r.value |= UInt64(byte) << (8 * UInt64(k)) }
        case let .internalError(suberror, _): r.address = UInt64(suberror)
        case let .debug(debug): r.address = debug.dr6; r.value = debug.pc
        default: break
        }
        ring.withLock { ring in
            ring.records[ring.next] = r
            ring.next = (ring.next + 1) % Self.capacity
            ring.total += 1
        }
    }

    /// The last `count` exits as lines, oldest first, in the --trace-exits format (ExitTracer.Access), with the
    /// device each access reached on `ports` or `mmio`. Register names are left out: a device names a register
    /// from its state now (a UART's DLAB, the PCI function CONFIG_ADDRESS selects), which may not be its state then.
    func render(last count: Int, ports: Bus, mmio: Bus) -> String {
        let (records, next, total) = ring.withLock { ($0.records, $0.next, $0.total) }
        let n = min(count, total, Self.capacity)
        guard n > 0 else { return "no VM exits yet\n" }
        var lines = ["the last \(n) of \(total) VM exits since the gdb stub started (time since then):"]
        for i in 0..<n {
            let r = records[(next - n + i + Self.capacity) % Self.capacity]
            var detail: String
            switch r.reason {
            case .io, .mmio:
                let bus = r.reason == .io ? ports : mmio
                let entry = bus.entry(containing: r.address)
                detail = ExitTracer.Access(vcpu: r.vcpu, isPort: r.reason == .io, isWrite: r.isWrite, address: r.address,
                                           size: Int(r.size), value: r.value, device: entry.map { ($0.name, r.address - $0.base) },
                                           register: nil).detail
            case .internalError: detail = "suberror \(r.address) (\(internalErrorName(UInt32(truncatingIfNeeded: r.address))))"
            case .debug: detail = "DR6 0x\(hex(r.address)) at 0x\(hex(r.value))"
            default: detail = r.reason.explanation
            }
            lines.append("[\(pad(fixed(Double(r.nanoseconds) / 1000, 1), 12)) µs] vcpu\(r.vcpu) \(pad(r.reason.name, 14, left: false)) \(detail)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
