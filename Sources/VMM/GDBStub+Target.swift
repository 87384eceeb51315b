// GDBStub+Target: gdb's view of the machine (GDBRemote.GDBTarget) over KVM and guest memory, used by the
// server thread while every vCPU is parked.
//
// Registers come from KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_FPU and IA32_KERNEL_GS_BASE (KVM_GET_MSRS);
// writing a segment selector loads its descriptor the way the CPU would (real mode: base = selector × 16;
// protected mode: the descriptor from the GDT). Memory addresses are guest-virtual, translated with the
// selected vCPU's own paging registers (PageWalk: paging off, 32-bit, PAE, 4- and 5-level) page by page;
// only RAM is read or written, never a device. A software breakpoint whose address does not translate yet
// (a kernel's high addresses before it turns paging on) is armed as a hardware breakpoint instead, where
// the backend honours those, so `break start_kernel` works from the first instruction. On kvm_pvm, write
// watchpoints are stepped watchpoints (GDBStub.swift), since the emulator ignores data breakpoints.
import GDBRemote
import GuestMemory
import KVM
import X86Boot

extension GDBStub: GDBTarget {
    var threadIDs: [Int] { machine.vcpus.map { Int($0.id) + 1 } }

    /// The vCPU behind a thread id, if it exists and is parked.
    func vcpu(_ thread: Int) -> VCPU? {
        guard thread >= 1, thread <= machine.vcpus.count, gate.isParked(thread - 1) else { return nil }
        return machine.vcpus[thread - 1]
    }

    static let kernelGSBaseMSR: UInt32 = 0xC000_0102

    func registers(thread: Int) -> X86Registers? {
        guard let vcpu = vcpu(thread), let r = try? vcpu.registers(), let s = try? vcpu.specialRegisters() else { return nil }
        var g = X86Registers()
        g.generalPurpose = [r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15]
        g.rip = r.rip
        g.rflags = r.rflags
        g.segmentSelectors = [s.cs.selector, s.ss.selector, s.ds.selector, s.es.selector, s.fs.selector, s.gs.selector]
        g.fsBase = s.fs.base
        g.gsBase = s.gs.base
        g.kernelGSBase = (try? vcpu.msrs([Self.kernelGSBaseMSR]).first) ?? 0
        (g.cr0, g.cr2, g.cr3, g.cr4, g.cr8, g.efer) = (s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer)
        if let f = try? vcpu.fpu() {
            withUnsafeBytes(of: f.fpr) { raw in
                for i in 0..<8 { g.x87[i] = Array(raw[(i * 16)..<(i * 16 + 10)]) }
            }
            withUnsafeBytes(of: f.xmm) { raw in
                for i in 0..<16 { g.xmm[i] = Array(raw[(i * 16)..<(i * 16 + 16)]) }
            }
            g.fctrl = UInt32(f.fcw)
            g.fstat = UInt32(f.fsw)
            g.ftag = Self.fullTagWord(abridged: f.ftwx)
            g.fioff = UInt32(truncatingIfNeeded: f.last_ip)
            g.fiseg = UInt32(truncatingIfNeeded: f.last_ip >> 32) & 0xFFFF
            g.fooff = UInt32(truncatingIfNeeded: f.last_dp)
            g.foseg = UInt32(truncatingIfNeeded: f.last_dp >> 32) & 0xFFFF
            g.fop = UInt32(f.last_opcode)
            g.mxcsr = f.mxcsr
        }
        return g
    }

    func setRegisters(_ g: X86Registers, thread: Int) -> Bool {
        guard let vcpu = vcpu(thread), var r = try? vcpu.registers(), var s = try? vcpu.specialRegisters() else { return false }
        let v = g.generalPurpose
        (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) = (v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15])
        r.rip = g.rip
        r.rflags = g.rflags | 0x2 // bit 1 is always one
        (s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer) = (g.cr0, g.cr2, g.cr3, g.cr4, g.cr8, g.efer)
        let selectors = g.segmentSelectors
        for (index, keyPath) in [\SpecialRegisters.cs, \.ss, \.ds, \.es, \.fs, \.gs].enumerated() where s[keyPath: keyPath].selector != selectors[index] {
            guard let loaded = loadSegment(selectors[index], special: s, vcpu: vcpu) else { return false }
            s[keyPath: keyPath] = loaded
        }
        s.fs.base = g.fsBase
        s.gs.base = g.gsBase
        do {
            try vcpu.setSpecialRegisters(s)
            try vcpu.setRegisters(r)
            if var f = try? vcpu.fpu() {
                withUnsafeMutableBytes(of: &f.fpr) { raw in
                    for i in 0..<8 { for k in 0..<10 { raw[i * 16 + k] = g.x87[i][k] } }
                }
                withUnsafeMutableBytes(of: &f.xmm) { raw in
                    for i in 0..<16 { for k in 0..<16 { raw[i * 16 + k] = g.xmm[i][k] } }
                }
                f.fcw = UInt16(truncatingIfNeeded: g.fctrl)
                f.fsw = UInt16(truncatingIfNeeded: g.fstat)
                f.ftwx = Self.abridgedTag(full: g.ftag)
                f.last_opcode = UInt16(truncatingIfNeeded: g.fop)
                f.last_ip = UInt64(g.fioff) | UInt64(g.fiseg & 0xFFFF) << 32
                f.last_dp = UInt64(g.fooff) | UInt64(g.foseg & 0xFFFF) << 32
                f.mxcsr = g.mxcsr
                try vcpu.setFPU(f)
            }
            if g.kernelGSBase != ((try? vcpu.msrs([Self.kernelGSBaseMSR]).first) ?? 0) {
                try vcpu.setMSRs([(index: Self.kernelGSBaseMSR, value: g.kernelGSBase)])
            }
        } catch { return false }
        return true
    }

    /// The descriptor cache a `mov` to a segment register would load (SDM Vol. 3A §3.4.3); nil when the
    /// GDT entry cannot be read.
    func loadSegment(_ selector: UInt16, special s: SpecialRegisters, vcpu: VCPU) -> Segment? {
        if s.cr0 & 1 == 0 {
            var segment = s.ds
            segment.selector = selector
            segment.base = UInt64(selector) << 4
            return segment
        }
        if selector & ~3 == 0 {
            var null = Segment()
            null.selector = selector
            null.unusable = 1
            return null
        }
        guard selector & 4 == 0, UInt64(selector & ~7) + 7 <= UInt64(s.gdt.limit),
              let bytes = try? readVirtual(s.gdt.base + UInt64(selector & ~7), count: 8, vcpu: vcpu), bytes.count == 8 else { return nil }
        let raw = bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        return Machine.segment(SegmentDescriptor(encoded: raw), selector: selector)
    }

    /// FXSAVE's abridged tag byte (bit i: physical register i is valid) as the x87 tag word gdb shows
    /// (two bits per register: 00 valid, 11 empty; zero and special are not told apart here).
    static func fullTagWord(abridged: UInt8) -> UInt32 {
        (0..<8).reduce(UInt32(0)) { $0 | (abridged & (1 << UInt8($1)) != 0 ? 0 : 3) << (2 * UInt32($1)) }
    }

    static func abridgedTag(full: UInt32) -> UInt8 {
        (0..<8).reduce(UInt8(0)) { $0 | ((full >> (2 * UInt32($1))) & 3 != 3 ? 1 << UInt8($1) : 0) }
    }

    // MARK: Memory

    func pagingRegisters(_ vcpu: VCPU) -> PagingRegisters? {
        guard let s = try? vcpu.specialRegisters() else { return nil }
        return PagingRegisters(cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer)
    }

    /// Walks the guest's page tables for `address` with `vcpu`'s paging registers.
    func translate(_ address: UInt64, vcpu: VCPU) -> Result<Translation, PageWalkFault>? {
        guard let paging = pagingRegisters(vcpu) else { return nil }
        let memory = machine.memory
        return PageWalk.translate(address, paging) { physical, size in
            if size == 4 { return (try? memory.read(UInt32.self, at: GuestAddress(physical))).map(UInt64.init) }
            return try? memory.read(UInt64.self, at: GuestAddress(physical))
        }
    }

    /// Up to `count` bytes at a guest-virtual address, stopping where the mapping or the RAM ends.
    func readVirtual(_ address: UInt64, count: Int, vcpu: VCPU) throws(GuestMemoryError) -> [UInt8] {
        var out: [UInt8] = []
        var at = address
        while out.count < count {
            guard case let .success(t)? = translate(at, vcpu: vcpu) else { break }
            let inPage = t.pageSize - (t.physical & (t.pageSize - 1))
            let n = Int(min(UInt64(count - out.count), inPage, 4096 - (at & 0xFFF)))
            guard let bytes = try? machine.memory.readBytes(at: GuestAddress(t.physical), count: n) else { break }
            out += bytes
            let (next, overflow) = at.addingReportingOverflow(UInt64(n))
            if overflow { break }
            at = next
        }
        return out
    }

    func readMemory(at address: UInt64, length: Int, thread: Int) -> [UInt8] {
        guard let vcpu = vcpu(thread) else { return [] }
        return (try? readVirtual(address, count: length, vcpu: vcpu)) ?? []
    }

    func writeMemory(_ bytes: [UInt8], at address: UInt64, thread: Int) -> Bool {
        guard let vcpu = vcpu(thread) else { return false }
        // Translate every page first, so a write that cannot finish changes nothing.
        var pieces: [(physical: UInt64, range: Range<Int>)] = []
        var offset = 0
        while offset < bytes.count {
            let (at, overflow) = address.addingReportingOverflow(UInt64(offset))
            guard !overflow, case let .success(t)? = translate(at, vcpu: vcpu) else { return false }
            let n = min(bytes.count - offset, Int(4096 - (at & 0xFFF)))
            guard machine.memory.contains(GuestAddress(t.physical), length: UInt64(n)) else { return false }
            pieces.append((t.physical, offset..<(offset + n)))
            offset += n
        }
        for piece in pieces {
            guard (try? machine.memory.write(bytes: bytes[piece.range], at: GuestAddress(piece.physical))) != nil else { return false }
        }
        return true
    }

    // MARK: Breakpoints

    /// Whether KVM honours debug-register breakpoints for the code gdb debugs here: always on hardware
    /// KVM; on kvm_pvm for execution breakpoints in kernel mode (the emulator checks DR7), never for data.
    func hardwareBreakpointsWork(_ type: BreakpointType) -> Bool {
        machine.backend.isHardware || (machine.backend == .pvm && !type.isWatchpoint)
    }

    func insertBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply {
        guard let vcpu = vcpu(thread) else { return .failed("vCPU not stopped") }
        switch request.type {
        case .software:
            if breakpoints.withLock({ $0.software[request.address] != nil || $0.slots.contains { $0?.request == request } }) { return .ok }
            guard case let .success(t)? = translate(request.address, vcpu: vcpu),
                  let original = try? machine.memory.read(UInt8.self, at: GuestAddress(t.physical)) else {
                // Not mapped (yet): a debug register watches the address instead, where that works.
                guard hardwareBreakpointsWork(.hardware) else { return .failed("not mapped") }
                return armHardware(request)
            }
            guard (try? machine.memory.write(UInt8(0xCC), at: GuestAddress(t.physical))) != nil else { return .failed("not RAM") }
            breakpoints.withLock { $0.addSoftware(SoftwareBreakpoint(address: request.address, physical: t.physical, original: original)) }
            return .ok
        case .hardware, .writeWatchpoint, .readWatchpoint, .accessWatchpoint:
            if request.type.isWatchpoint && machine.backend == .pvm { return addSteppedWatchpoint(request, vcpu: vcpu) }
            guard hardwareBreakpointsWork(request.type) else { return .unsupported }
            return armHardware(request)
        }
    }

    private func armHardware(_ request: BreakpointRequest) -> BreakpointReply {
        switch breakpoints.withLock({ $0.addHardware(request) }) {
        case .success: return .ok
        case let .failure(error): return .failed("\(error)")
        }
    }

    func removeBreakpoint(_ request: BreakpointRequest, thread: Int) -> BreakpointReply {
        if request.type == .software, let removed = breakpoints.withLock({ $0.removeSoftware(at: request.address) }) {
            restore(removed)
            return .ok
        }
        if request.type.isWatchpoint, removeSteppedWatchpoint(request) { return .ok }
        return breakpoints.withLock { $0.removeHardware(request) } ? .ok : .failed("no such breakpoint")
    }

    func threadDescription(_ thread: Int) -> String {
        guard thread >= 1, thread <= machine.vcpus.count else { return "no such vCPU" }
        let vcpu = machine.vcpus[thread - 1]
        guard gate.isParked(thread - 1), let s = try? vcpu.specialRegisters() else { return "vCPU \(vcpu.id), running" }
        if let state = try? vcpu.multiprocessingState(), state.isWaitingForStartup { return "vCPU \(vcpu.id), waiting for INIT/SIPI" }
        return "vCPU \(vcpu.id), \(Self.modeName(s)), CPL \(s.cs.dpl)"
    }

    static func modeName(_ s: SpecialRegisters) -> String {
        if s.cr0 & 1 == 0 { return "real mode" }
        if s.efer & (1 << 10) != 0 { return s.cs.l == 1 ? "64-bit" : "compatibility mode" }
        return s.cs.db == 1 ? "32-bit protected mode" : "16-bit protected mode"
    }
}
