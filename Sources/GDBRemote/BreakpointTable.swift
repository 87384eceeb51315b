// BreakpointTable: the breakpoints and watchpoints gdb has inserted, and the debug-register values that
// arm the hardware ones. Pure bookkeeping: the VMM writes the int3 bytes and hands `debugRegisters` to
// KVM_SET_GUEST_DEBUG.
//
// Software breakpoints (Z0) replace the byte at the address with int3 (0xCC); the table keeps where that
// byte lives (the guest-physical address the page walk gave when it was inserted) and what was there, so
// removal restores it even if the guest has since changed its page tables. Hardware breakpoints and
// watchpoints (Z1-Z4) use DR0-DR3 and DR7 (Intel SDM Vol. 3B §18.2: L0-L3 enable bits 0, 2, 4, 6; R/W
// bits 16+4n: 00 execute, 01 write, 11 read or write; LEN bits 18+4n: 00 one byte, 01 two, 11 four,
// 10 eight; each range aligned to its length). A watched range that is not one aligned 1/2/4/8-byte unit
// takes several registers, as gdb's own x86 code splits it. x86 cannot watch reads alone: a read
// watchpoint (Z3) is armed as read-or-write, as gdb itself does natively.

public struct SoftwareBreakpoint: Equatable, Sendable {
    /// The guest-virtual address gdb gave.
    public var address: UInt64
    /// Where the replaced byte lives in guest-physical memory.
    public var physical: UInt64
    /// The byte the int3 replaced.
    public var original: UInt8

    public init(address: UInt64, physical: UInt64, original: UInt8) {
        self.address = address; self.physical = physical; self.original = original
    }
}

/// One debug register in use: the request it serves and the aligned piece of it this register watches.
public struct DebugRegisterSlot: Equatable, Sendable {
    public var request: BreakpointRequest
    public var address: UInt64
    public var length: Int
}

public enum HardwareBreakpointError: Error, Equatable, Sendable, CustomStringConvertible {
    case noFreeRegister(needed: Int, free: Int)
    case badLength(Int)

    public var description: String {
        switch self {
        case let .noFreeRegister(needed, free): "needs \(needed) debug register\(needed == 1 ? "" : "s"), \(free) free (x86 has four: DR0-DR3)"
        case let .badLength(length): "cannot watch \(length) bytes (1 to 32 in up to four aligned pieces)"
        }
    }
}

public struct BreakpointTable: Sendable {
    public private(set) var software: [UInt64: SoftwareBreakpoint] = [:]
    /// DR0-DR3.
    public private(set) var slots: [DebugRegisterSlot?] = [nil, nil, nil, nil]

    public init() {}

    public var isEmpty: Bool { software.isEmpty && slots.allSatisfy { $0 == nil } }
    public var hasHardware: Bool { slots.contains { $0 != nil } }

    public mutating func addSoftware(_ breakpoint: SoftwareBreakpoint) { software[breakpoint.address] = breakpoint }

    public mutating func removeSoftware(at address: UInt64) -> SoftwareBreakpoint? { software.removeValue(forKey: address) }

    public mutating func removeAllSoftware() -> [SoftwareBreakpoint] {
        defer { software = [:] }
        return Array(software.values)
    }

    /// Arms a hardware breakpoint (Z1) or watchpoint (Z2-Z4); returns the registers it took.
    public mutating func addHardware(_ request: BreakpointRequest) -> Result<[Int], HardwareBreakpointError> {
        let pieces: [(address: UInt64, length: Int)]
        if request.type == .hardware {
            pieces = [(request.address, 1)]
        } else {
            guard request.length >= 1, request.length <= 32, let split = Self.alignedPieces(request.address, request.length) else {
                return .failure(.badLength(request.length))
            }
            pieces = split
        }
        let free = slots.indices.filter { slots[$0] == nil }
        guard pieces.count <= free.count else { return .failure(.noFreeRegister(needed: pieces.count, free: free.count)) }
        for (slot, piece) in zip(free, pieces) { slots[slot] = DebugRegisterSlot(request: request, address: piece.address, length: piece.length) }
        return .success(Array(free.prefix(pieces.count)))
    }

    /// Disarms every register serving `request`; false when none did.
    public mutating func removeHardware(_ request: BreakpointRequest) -> Bool {
        var found = false
        for i in slots.indices where slots[i]?.request == request {
            slots[i] = nil
            found = true
        }
        return found
    }

    public mutating func removeAllHardware() { slots = [nil, nil, nil, nil] }

    /// DR0-DR7 for KVM_SET_GUEST_DEBUG (DR4 and DR5 unused, DR6 zero).
    public var debugRegisters: [UInt64] {
        var registers = [UInt64](repeating: 0, count: 8)
        var dr7: UInt64 = 1 << 10 // bit 10 reads as one
        for (n, slot) in slots.enumerated() {
            guard let slot else { continue }
            registers[n] = slot.address
            let rw: UInt64 = switch slot.request.type {
            case .software, .hardware: 0b00
            case .writeWatchpoint: 0b01
            case .readWatchpoint, .accessWatchpoint: 0b11
            }
            let len: UInt64 = switch slot.length {
            case 2: 0b01
            case 4: 0b11
            case 8: 0b10
            default: 0b00
            }
            dr7 |= 1 << UInt64(2 * n)                       // Ln
            dr7 |= (rw | len << 2) << UInt64(16 + 4 * n)    // R/Wn, LENn
        }
        if hasHardware { dr7 |= 1 << 9 }                    // GE, as QEMU sets it
        registers[7] = dr7
        return registers
    }

    /// The request behind the first of the matched registers (DR6.B0-B3), if the table armed it.
    public func request(matching registers: [Int]) -> BreakpointRequest? {
        for n in registers where n >= 0 && n < 4 { if let slot = slots[n] { return slot.request } }
        return nil
    }

    /// [address, address + length) as naturally aligned 1, 2, 4 or 8-byte pieces; nil if it needs more than four.
    static func alignedPieces(_ address: UInt64, _ length: Int) -> [(address: UInt64, length: Int)]? {
        var pieces: [(UInt64, Int)] = []
        var at = address
        var left = length
        while left > 0 {
            var size = 8
            while size > 1 && (at % UInt64(size) != 0 || size > left) { size /= 2 }
            pieces.append((at, size))
            guard pieces.count <= 4 else { return nil }
            let (next, overflow) = at.addingReportingOverflow(UInt64(size))
            if overflow && left > size { return nil }
            at = next
            left -= size
        }
        return pieces
    }
}
