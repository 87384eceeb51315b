// `swiftlet explain`: build the machine `swiftlet boot` would build, do not run it, and print what the
// guest will find: RAM and its memory map, vCPU 0's entry registers, the GDT, the page tables, the boot
// information block field by field, CPUID as given vs the host's, the devices, and the kernel command line
// with who added each part. The facts come from VMM.MachineExplanation (read back from guest memory and
// the vCPU); this file only parses the options and lays the text out.
import ArgumentParser
import GuestMemory
import KVM
import VMM

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Build the VM `swiftlet boot` would build, without running it, and explain what the guest gets.",
        discussion: BootOptions.helpBody(for: "explain")
    )

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The options of swiftlet boot that describe the machine (see swiftlet explain --help).", valueName: "options"),
              completion: .custom { words, index, prefix in BootCompletion.candidates(subcommand: "explain", words: words, index: index, prefix: prefix) })
    var arguments: [String] = []

    @Option(help: ArgumentHelp("Explain a snapshot file instead: the machine, RAM, every vCPU's registers, MSRs, LAPIC and events, the PICs, IOAPIC, PIT, KVM clock and each device's state. Creates no VM.", valueName: "FILE"))
    var snapshot: String?

    func run() throws {
        if let snapshot {
            do { print(try SnapshotExplanation.render(path: snapshot), terminator: "") } catch {
                printError("swiftlet: \(error)")
                throw ExitCode(error.exitStatus)
            }
            return
        }
        do {
            let parsed = try BootArguments.parse(arguments, for: "explain")
            if parsed.helpRequested {
                print(BootOptions.helpText(for: "explain"), terminator: "")
                return
            }
            let built = try Machine.build(parsed.configuration)
            let explanation = try MachineExplanation(machine: built)
            print(ExplainText.render(explanation, verbose: parsed.verbose), terminator: "")
        } catch {
            printError("swiftlet: \(error)")
            throw ExitCode(error.exitStatus)
        }
    }
}

/// The text layout of an explanation: one section per topic, aligned columns, every number from the model.
enum ExplainText {
    static func render(_ e: MachineExplanation, verbose: Bool) -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        func section(_ title: String) { line(); line("== \(title)") }

        let formatName = switch e.format {
        case .multiboot: "multiboot ELF, \(e.bootMode == .direct ? "direct boot" : "through the reset-vector firmware")"
        case .bzImage: "Linux bzImage, 64-bit boot protocol"
        case .pvh: "ELF vmlinux, PVH entry"
        }
        line("\(e.kernel): \(formatName); \(size(e.memorySize)) of RAM, \(e.cpus) vCPU\(e.cpus == 1 ? "" : "s"); /dev/kvm backend \(e.backend.rawValue)")
        line("Nothing ran: this is the machine Machine.build returned, read back from guest memory and vCPU 0's registers.")

        section("Guest RAM (KVM_SET_USER_MEMORY_REGION)")
        for s in e.memorySlots {
            line("  slot \(s.slot)  guest-physical \(s.range)  \(size(s.range.length)) of the VMM's anonymous mmap, touched on demand")
        }

        section("Memory map the kernel is given: \(e.memoryMap.source)")
        for m in e.memoryMap.entries {
            line("  \(rangeText(base: m.base, length: m.length, width: 9))  \(pad(m.typeName, 9))  \(pad(size(m.length), 10))  \(memoryNote(m))")
        }

        section("vCPU 0 before its first KVM_RUN (KVM_GET_REGS, KVM_GET_SREGS)")
        let r = e.entry
        line("  mode    \(r.mode)")
        for role in r.roles { line("  \(pad(role.register, 6))  0x\(pad(hex(role.value), 8))  \(role.meaning)") }
        if let handoff = e.firmwareHandoff {
            line("  firmware handoff block at 0x500, which the ROM reads after switching to protected mode:")
            for f in handoff { line("    +0x\(hex(f.offset)) \(pad(f.name, 15)) 0x\(pad(hex(f.value), 10)) \(f.meaning)") }
        }
        line("  CR0 0x\(hex(r.cr0)) (\(bits(r.cr0, [(0, "PE"), (4, "ET"), (29, "NW"), (30, "CD"), (31, "PG")])))  CR3 0x\(hex(r.cr3))  CR4 0x\(hex(r.cr4))\(r.cr4 & 0x20 != 0 ? " (PAE)" : "")  EFER 0x\(hex(r.efer))\(r.efer != 0 ? " (\(bits(r.efer, [(8, "LME"), (10, "LMA")])))" : "")")
        line("  RFLAGS 0x\(hex(r.rflags))\(r.rflags & 0x200 == 0 ? " (interrupts off)" : "")  GDTR 0x\(hex(r.gdtBase)) limit 0x\(hex(r.gdtLimit))  IDTR 0x\(hex(r.idtBase)) limit 0x\(hex(r.idtLimit))\(r.idtLimit == 0 && r.protectedMode ? " (no IDT: the kernel sets its own before enabling interrupts)" : "")")
        var segmentText: [String] = []
        for s in r.segments {
            if s.name == "TR" {
                segmentText.append("TR=0x\(hex(s.selector)) (TSS, base 0x\(hex(s.base)), limit 0x\(hex(s.limit)))")
            } else {
                let kind = !r.protectedMode ? "real mode" : s.long ? "64-bit" : s.defaultBig ? "32-bit" : "16-bit"
                segmentText.append("\(s.name)=0x\(hex(s.selector)) (base 0x\(hex(s.base)), \(kind))")
            }
        }
        line("  " + segmentText.prefix(4).joined(separator: "  "))
        line("  " + segmentText.dropFirst(4).joined(separator: "  "))

        if let gdt = e.gdt {
            section("GDT at \(gdt.base), limit 0x\(hex(gdt.limit)): \(gdt.entries.count) descriptors read from guest memory (Intel SDM 3A §3.4.5)")
            for d in gdt.entries {
                let users = d.loadedIn.isEmpty ? "" : "  ← \(d.loadedIn.joined(separator: " "))"
                line("  0x\(hex(d.selector, width: 2))  \(hex(d.raw, width: 16))  \(d.meaning)\(users)")
            }
        } else {
            section("GDT")
            line("  none loaded: the vCPU starts in real mode; the firmware loads the GDT in its ROM before switching to protected mode (firmware/README.md)")
        }

        section("Page tables")
        let p = e.pageTables
        if p.enabled && !p.levels.isEmpty {
            let leafLevel = p.levels.last?.name ?? ""
            line("  CR3 → 0x\(hex(p.root)): 4-level paging (CR4.PAE, EFER.LMA), walked in guest memory: \(p.levels.map(\.name).joined(separator: " → "))\(leafLevel == "PT" ? "" : " (PS=1 in the \(leafLevel) ends the walk: no page tables below it)")")
            for level in p.levels {
                let addresses = level.tables.count <= 4 ? level.tables.map { "0x\(hex($0))" }.joined(separator: " ")
                    : "0x\(hex(level.tables.min()!))…0x\(hex(level.tables.max()!))"
                line("  \(pad(level.name, 5)) \(level.tables.count) table\(level.tables.count == 1 ? "" : "s") at \(addresses), \(level.presentEntries) present entr\(level.presentEntries == 1 ? "y" : "ies")")
            }
            for m in p.mappings {
                let identity = m.virtualBase == m.physicalBase ? "identity, " : ""
                line("  maps virtual \(rangeText(base: m.virtualBase, length: m.length)) → physical \(rangeText(base: m.physicalBase, length: m.length)): \(identity)\(size(m.pageSize)) pages, \(m.writable ? "writable" : "read-only"), \(m.user ? "user" : "supervisor only")")
            }
            line("  \(p.note)")
        } else {
            line("  \(p.note)")
        }

        let b = e.bootInformation
        section("\(b.title) at \(b.address), \(b.register) at entry (\(b.specification))")
        for f in b.fields {
            line("  +0x\(pad(hex(f.offset), 3)) \(pad(f.name, 18)) 0x\(pad(hex(f.value), 10)) \(f.meaning)")
        }
        let multiboot = b.title.hasPrefix("multiboot")
        for (i, m) in b.modules.enumerated() {
            line("  \(multiboot ? "module \(i)" : "initrd"): \(rangeText(base: m.base.rawValue, length: m.length)) (\(m.length) bytes)")
        }

        section("CPUID: the table vCPU 0 was given (KVM_SET_CPUID2) vs this host's CPUID")
        line("  leaf           vCPU table: eax      ebx      ecx      edx       host: eax      ebx      ecx      edx")
        for row in e.cpuid.rows {
            let leaf = "0x\(hex(row.leaf, width: 8))" + (row.leaf == 7 ? ".\(row.subleaf)" : "  ")
            line("  \(leaf)   \(registers(row.given))      \(registers(row.host))   \(row.title)")
            for note in row.notes { line("                \(note)") }
        }
        line("  \(e.cpuid.guestSees)")

        if let mp = e.mpTable {
            section("MP table (Intel MultiProcessor Specification 1.4): how a kernel without ACPI finds CPUs and interrupts")
            line("  floating pointer \"_MP_\" at \(mp.floatingPointer) → configuration table \"PCMP\" at \(mp.configurationTable), OEM \"\(mp.oemID)\", local APICs at 0x\(hex(mp.localAPIC))")
            line("  CPUs: " + mp.processors.map { "APIC id \($0.apicID)\($0.bootstrap ? " (bootstrap)" : "")\($0.enabled ? "" : " (disabled)")" }.joined(separator: ", "))
            if let io = mp.ioAPIC { line("  I/O APIC: id \(io.id) at 0x\(hex(io.address))") }
            line("  ISA IRQ → IOAPIC pin: " + mp.isaInterrupts.map { "\($0.irq)→\($0.pin)" }.joined(separator: " "))
            line("  local interrupts: " + mp.localInterrupts.map { "\($0.type) on LINT\($0.lint) of \($0.apicID == 0xFF ? "every CPU" : "APIC \($0.apicID)")" }.joined(separator: ", "))
        }

        if let a = e.acpi {
            section("ACPI tables (ACPI 6.5 §5.2): how a kernel with ACPI finds CPUs and interrupts (Debian's kernels read only these)")
            line("  RSDP \"RSD PTR \" at \(a.rsdp), revision \(a.rsdpRevision), OEM \"\(a.rsdpOEMID)\", checksums \(a.rsdpChecksumsValid ? "ok" : "BAD") → XSDT at 0x\(hex(a.xsdt?.address ?? 0))")
            for t in [a.xsdt].compactMap({ $0 }) + a.tables {
                let role: String
                switch t.signature {
                case "XSDT": role = "pointers to " + a.tables.filter { $0.signature != "DSDT" }.map(\.signature).joined(separator: ", ")
                case "FACP": role = "FADT: flags 0x\(hex(a.fadtFlags ?? 0))\(a.hardwareReduced ? " (HW_REDUCED_ACPI: no PM timer, SCI or legacy PM blocks)" : ""), X_DSDT → 0x\(hex(a.dsdtAddress ?? 0))"
                case "APIC": role = "MADT: local APICs at 0x\(hex(a.localAPICAddress ?? 0))\((a.madtFlags ?? 0) & 1 != 0 ? ", PCAT_COMPAT (8259s present)" : "")"
                case "DSDT": role = t.length > 36 ? "definition block, \(t.length - 36) bytes of AML" : "definition block, empty"
                default: role = ""
                }
                line("  \(t.signature) at 0x\(hex(t.address)), \(t.length) bytes, revision \(t.revision), checksum \(t.checksumValid ? "ok" : "BAD"): \(role)")
            }
            line("  MADT CPUs: " + a.processors.map { "UID \($0.uid) APIC id \($0.apicID)\($0.enabled ? "" : " (disabled)")" }.joined(separator: ", "))
            for io in a.ioAPICs { line("  MADT I/O APIC: id \(io.id) at 0x\(hex(io.address)), GSI base \(io.gsiBase)") }
            line("  MADT interrupt source overrides: " + (a.overrides.isEmpty ? "none (ISA IRQ n is GSI n, as the MP table routes them)"
                : a.overrides.map { "IRQ \($0.irq) → GSI \($0.gsi)\($0.flags == 0 ? "" : " flags 0x\(hex($0.flags))")" }.joined(separator: ", ")))
            line("  MADT local APIC NMIs: " + a.localNMIs.map { "LINT\($0.lint) of \($0.uid == 0xFF ? "every processor" : "UID \($0.uid)")" }.joined(separator: ", "))
            for p in a.problems { line("  problem: \(p)") }
        }

        section("Devices (VMM: every access is a VM exit, KVM_EXIT_IO or KVM_EXIT_MMIO, that the VMM's bus answers; KVM: emulated inside the kernel, no exit to the VMM)")
        line("  \(pad("space", 4)) \(pad("addresses", 25)) \(pad("device", 26)) \(pad("handled by", 16)) interrupt")
        for d in e.devices {
            let where_ = "\(pad(d.space.rawValue, 4)) \(pad(rangeText(base: d.base, length: d.length), 25))"
            line("  \(where_) \(pad(d.name, 26)) \(pad(d.handledBy, 16)) \(d.interrupt ?? "—")")
            if !d.note.isEmpty { line("  \(String(repeating: " ", count: 31))\(d.note)") }
        }

        let c = e.commandLine
        section("Kernel command line at \(c.address) (\(c.final.utf8.count) bytes, read through the boot information's pointer)")
        line("  \(c.final.isEmpty ? "(empty)" : c.final)")
        for part in c.parts {
            line("  \(pad(part.origin.rawValue, 15)) \(part.text)")
            line("  \(String(repeating: " ", count: 15)) \(part.reason)")
        }

        if verbose {
            section("The recipe's notes (swiftlet boot -v)")
            for note in e.recipe { line("  \(note)") }
        }
        section(e.confinement.isEmpty ? "Confinement" : "Confinement once the guest runs (swiftlet boot without --no-confine): no capabilities, no_new_privs, one seccomp allowlist per thread; any other call is reported and ends the VMM (status 159)")
        for t in e.confinement {
            line("  \(t.threads.joined(separator: ", ")) (\(t.kind.rawValue)): \(t.kind.role)")
            line("    \(t.calls.count) system calls, \(t.instructions) BPF instructions: \(t.calls.joined(separator: " "))")
            if !t.ioctls.isEmpty { line("    ioctl only with: \(t.ioctls.joined(separator: " "))") }
        }
        return out
    }

    static func memoryNote(_ m: MachineExplanation.MemoryMapEntry) -> String {
        if m.type == 2 && m.base < 0x10_0000 && m.end <= 0x10_0000 {
            return m.base == 0xA_0000 ? "VGA and option-ROM hole" : "EBDA, VGA and option-ROM hole, ACPI tables at 0xe0000, MP table at 0xf0000"
        }
        if m.type == 2 && m.base == 0xFFFF_0000 { return "firmware ROM" }
        if m.type == 1 && m.base == 0 { return "conventional memory" }
        if m.type == 1 && m.base == 0x10_0000 { return "from 1 MiB: the kernel, the initrd" }
        if m.type == 1 && m.base >= 0x1_0000_0000 { return "above 4 GiB (the rest of RAM, past the 32-bit MMIO hole)" }
        return ""
    }

    static func registers(_ e: CPUIDEntry?) -> String {
        guard let e else { return pad("(none)", 35) }
        return [e.eax, e.ebx, e.ecx, e.edx].map { hex($0, width: 8) }.joined(separator: " ")
    }

    static func bits(_ value: UInt64, _ names: [(Int, String)]) -> String {
        names.filter { value & (1 << UInt64($0.0)) != 0 }.map(\.1).joined(separator: " ")
    }

    static func size(_ bytes: UInt64) -> String {
        if bytes >= 1 << 30, bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        if bytes >= 1 << 20 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
