// GDBStub+Monitor: what gdb's `monitor` command does here (the text arrives as qRcmd): the learning lab's
// views of a stopped machine — the exit table so far, the last exits, the selected vCPU explained, a page
// walk, guest-physical memory, and what this KVM backend lets a debugger do.
import GDBRemote
import GuestMemory
import KVM

extension GDBStub {
    func monitor(_ command: String, thread: Int) -> String {
        switch MonitorCommand.parse(command) {
        case .help:
            return MonitorCommand.helpText
        case .exits:
            return machine.tracer.summary().drop { $0 == "\n" } + "\n"
        case let .lastExits(count):
            return history.render(last: count, ports: machine.portBus, mmio: machine.mmioBus)
        case let .explain(number):
            let chosen = number.map { $0 + 1 } ?? thread
            guard let vcpu = vcpu(chosen) else { return "no stopped vCPU \(chosen - 1) (this machine has \(machine.vcpus.count))\n" }
            return explain(vcpu)
        case let .translate(address, number):
            let chosen = number.map { $0 + 1 } ?? thread
            guard let vcpu = vcpu(chosen) else { return "no stopped vCPU \(chosen - 1) (this machine has \(machine.vcpus.count))\n" }
            return describeTranslation(address, vcpu: vcpu)
        case let .readPhysical(address, length):
            guard let bytes = try? machine.memory.readBytes(at: GuestAddress(address), count: length) else {
                return "guest-physical \(rangeText(base: address, length: UInt64(length))) is not all RAM (RAM: \(machine.memory.regions.map { "\($0.range)" }.joined(separator: ", ")))\n"
            }
            return Self.hexDump(bytes, at: address)
        case let .writePhysical(address, bytes):
            guard (try? machine.memory.write(bytes: bytes, at: GuestAddress(address))) != nil else {
                return "guest-physical \(rangeText(base: address, length: UInt64(bytes.count))) is not all RAM; nothing written\n"
            }
            return "wrote \(bytes.count) byte\(bytes.count == 1 ? "" : "s") at guest-physical 0x\(hex(address))\n"
        case .backend:
            return backendReport()
        case let .invalid(reason):
            return reason + "\n"
        }
    }

    /// 16 bytes a line: address, hex, ASCII.
    static func hexDump(_ bytes: [UInt8], at address: UInt64) -> String {
        var lines: [String] = []
        var offset = 0
        while offset < bytes.count {
            let line = bytes[offset..<min(offset + 16, bytes.count)]
            let hexPart = line.map { hex($0, width: 2) }.joined(separator: " ")
            let text = String(line.map { $0 >= 0x20 && $0 < 0x7F ? Character(Unicode.Scalar($0)) : "." })
            lines.append("\(hex(address &+ UInt64(offset), width: 16))  \(pad(hexPart, 47, left: false))  \(text)")
            offset += 16
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func describeTranslation(_ address: UInt64, vcpu: VCPU) -> String {
        guard let paging = pagingRegisters(vcpu), let result = translate(address, vcpu: vcpu) else { return "cannot read vCPU \(vcpu.id)'s registers\n" }
        var lines = ["0x\(hex(address)) on vCPU \(vcpu.id): \(PagingMode(paging).rawValue), CR3 0x\(hex(paging.cr3))"]
        let steps: [PageWalkStep]
        switch result {
        case let .success(t): steps = t.steps
        case let .failure(.notPresent(_, s)): steps = s
        case .failure: steps = []
        }
        for step in steps {
            lines.append("  \(pad(step.level, 6, left: false)) at guest-physical 0x\(hex(step.entryAddress, width: 9)) = 0x\(hex(step.entry, width: 16))  \(Self.entryFlags(step.entry))")
        }
        switch result {
        case let .success(t):
            let size = t.pageSize >= 1 << 30 ? "\(t.pageSize >> 30) GiB" : t.pageSize >= 1 << 20 ? "\(t.pageSize >> 20) MiB" : "\(t.pageSize >> 10) KiB"
            let backing = machine.memory.contains(GuestAddress(t.physical)) ? "RAM" : "no RAM (a device, or nothing)"
            lines.append("  → guest-physical 0x\(hex(t.physical)) in a \(size) page, \(t.writable ? "writable" : "read-only"), \(t.user ? "user" : "supervisor only"); \(backing)")
        case let .failure(fault):
            lines.append("  → \(fault)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func entryFlags(_ entry: UInt64) -> String {
        var flags: [String] = []
        if entry & 1 != 0 { flags.append("P") } else { return "not present" }
        flags.append(entry & 2 != 0 ? "RW" : "RO")
        flags.append(entry & 4 != 0 ? "US" : "S")
        if entry & 0x20 != 0 { flags.append("A") }
        if entry & 0x40 != 0 { flags.append("D") }
        if entry & 0x80 != 0 { flags.append("PS") }
        if entry & (1 << 63) != 0 { flags.append("NX") }
        return flags.joined(separator: " ")
    }

    /// The selected vCPU explained for a learner: where it is, in which mode, with which privileges, and
    /// what the debugger can do there on this backend.
    func explain(_ vcpu: VCPU) -> String {
        guard let r = try? vcpu.registers(), let s = try? vcpu.specialRegisters() else { return "cannot read vCPU \(vcpu.id)'s registers\n" }
        var lines: [String] = []
        let cpl = s.cs.dpl
        let paging = PagingRegisters(cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer)
        let linear = s.cr0 & 1 == 0 || s.efer & (1 << 10) == 0 ? s.cs.base &+ r.rip : r.rip
        lines.append("vCPU \(vcpu.id) stopped at RIP 0x\(hex(r.rip))\(linear != r.rip ? " (linear 0x\(hex(linear)): CS base 0x\(hex(s.cs.base)) + RIP)" : "")")
        lines.append("  mode: \(Self.modeName(s)), \(PagingMode(paging).rawValue); CPL \(cpl) (\(cpl == 0 ? "kernel mode" : cpl == 3 ? "user mode" : "ring \(cpl)"))")
        if let state = try? vcpu.multiprocessingState() {
            lines.append("  state: \(state.description)\(state.isWaitingForStartup ? "; the in-kernel LAPIC starts it when the kernel sends INIT and SIPI" : "")")
        }
        if machine.backend == .pvm {
            lines.append(cpl == 0
                ? "  kvm_pvm: CPL0 code runs in KVM's instruction emulator (~1 µs an instruction): breakpoints, single step and hardware execution breakpoints stop here; write watchpoints work by the VMM's stepping"
                : "  kvm_pvm: CPL\(cpl) code runs natively: KVM does not intercept int3, single steps or debug registers here, so breakpoints and steps in this code do not stop (the guest gets the #BP/#DB)")
        }
        if let bytes = try? readVirtual(linear, count: 15, vcpu: vcpu), !bytes.isEmpty {
            let hint = InstructionHint.mnemonic(bytes).map { " (\($0))" } ?? ""
            lines.append("  instruction bytes at RIP: \(bytes.map { hex($0, width: 2) }.joined(separator: " "))\(hint)")
        } else {
            lines.append("  instruction at RIP: not readable (not mapped, or not RAM)")
        }
        func bits(_ value: UInt64, _ names: [(UInt64, String)]) -> String {
            let set = names.filter { value & (1 << $0.0) != 0 }.map(\.1)
            return set.isEmpty ? "(none of the named bits)" : set.joined(separator: " ")
        }
        let flagNames: [(UInt64, String)] = [(0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (8, "TF"), (9, "IF"), (10, "DF"), (11, "OF"), (16, "RF"), (17, "VM"), (18, "AC"), (21, "ID")]
        lines.append("  rflags 0x\(hex(r.rflags)): \(bits(r.rflags, flagNames)); interrupts \(r.rflags & (1 << 9) != 0 ? "enabled (IF=1)" : "disabled (IF=0)"), IOPL \((r.rflags >> 12) & 3)")
        lines.append("  rsp 0x\(hex(r.rsp))  rbp 0x\(hex(r.rbp))")
        for (name, seg) in [("cs", s.cs), ("ss", s.ss), ("ds", s.ds), ("es", s.es), ("fs", s.fs), ("gs", s.gs), ("tr", s.tr)] {
            let kind = seg.unusable == 1 || seg.present == 0 ? "unusable" : seg.s == 0 ? "system type 0x\(hex(seg.type))" : seg.type & 8 != 0 ? "code, \(seg.l == 1 ? "64-bit" : seg.db == 1 ? "32-bit" : "16-bit")" : "data"
            lines.append("  \(name) 0x\(hex(seg.selector, width: 4)): base 0x\(hex(seg.base)), limit 0x\(hex(seg.limit)), DPL \(seg.dpl), \(kind)")
        }
        lines.append("  gdtr base 0x\(hex(s.gdt.base)) limit 0x\(hex(s.gdt.limit)); idtr base 0x\(hex(s.idt.base)) limit 0x\(hex(s.idt.limit))")
        lines.append("  cr0 0x\(hex(s.cr0)): \(bits(s.cr0, [(0, "PE"), (1, "MP"), (2, "EM"), (3, "TS"), (4, "ET"), (5, "NE"), (16, "WP"), (18, "AM"), (29, "NW"), (30, "CD"), (31, "PG")]))")
        lines.append("  cr3 0x\(hex(s.cr3)): the page-table root\(paging.cr0 & (1 << 31) == 0 ? " (unused: paging is off)" : "")")
        lines.append("  cr4 0x\(hex(s.cr4)): \(bits(s.cr4, [(4, "PSE"), (5, "PAE"), (7, "PGE"), (9, "OSFXSR"), (10, "OSXMMEXCPT"), (12, "LA57"), (16, "FSGSBASE"), (17, "PCIDE"), (18, "OSXSAVE"), (20, "SMEP"), (21, "SMAP")]))")
        lines.append("  efer 0x\(hex(s.efer)): \(bits(s.efer, [(0, "SCE"), (8, "LME"), (10, "LMA"), (11, "NXE")]))")
        lines.append("  cr2 0x\(hex(s.cr2)) (the last page-fault address)")
        if let events = try? vcpu.events() {
            var pending: [String] = []
            if events.exception.injected != 0 || events.exception.pending != 0 { pending.append("exception \(events.exception.nr)") }
            if events.interrupt.injected != 0 { pending.append("interrupt vector \(events.interrupt.nr)") }
            if events.nmi.injected != 0 || events.nmi.pending != 0 { pending.append("NMI") }
            lines.append("  pending events: \(pending.isEmpty ? "none" : pending.joined(separator: ", "))")
        }
        if case let .success(t)? = translate(linear, vcpu: vcpu), !t.steps.isEmpty {
            lines.append("  RIP's page: " + t.steps.map { "\($0.level) 0x\(hex($0.entry))" }.joined(separator: " → ") + " → guest-physical 0x\(hex(t.physical))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func backendReport() -> String {
        let backend = machine.backend
        var lines = ["KVM backend: \(backend.rawValue); KVM_CAP_SET_GUEST_DEBUG2 accepts 0x\(hex(acceptedDebugBits))"]
        if backend == .pvm {
            lines += [
                "kvm_pvm runs guest kernel code (CPL0) in KVM's instruction emulator and user code (CPL3) natively. Measured:",
                "  software breakpoints  CPL0: yes. The emulator cannot run int3 and stops (emulation failure) at the stub's int3;",
                "                        CPL3: no. The guest takes the #BP itself; KVM_GUESTDBG_USE_SW_BP does not intercept it",
                "  single step           CPL0: yes, KVM_GUESTDBG_SINGLESTEP (KVM_EXIT_DEBUG, DR6.BS); CPL3: no, the guest gets the #DB",
                "  hardware breakpoints  CPL0: yes, DR0-DR3 execution breakpoints (the emulator checks DR7); CPL3: no",
                "  watchpoints           the emulator does not check data breakpoints. Write watchpoints (gdb's `watch`) are kept",
                "                        by the VMM: it single-steps kernel code while one is set and compares the bytes after",
                "                        each instruction (user-mode code runs unstepped and is not watched); rwatch and",
                "                        awatch are not available (a read changes nothing to compare)",
                "  a software breakpoint at an address the page tables do not map yet is armed as a hardware breakpoint",
            ]
        } else if backend.isHardware {
            lines += [
                "hardware virtualization: software breakpoints (int3 with KVM_GUESTDBG_USE_SW_BP), single step",
                "(KVM_GUESTDBG_SINGLESTEP\(acceptedDebugBits & GuestDebugSettings.blockInterrupts != 0 ? " with BLOCKIRQ" : "")), hardware breakpoints and watchpoints (DR0-DR3) at every privilege level",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
