// Comparison+Rows: from what CompareRunner gathered to columns and rows. Each cell says where its value
// came from; a question a side could not answer gets the reason, never a stand-in value.
import Glibc
import KVM

extension Comparison {
    static func assemble(options: CompareOptions, host: HostSide, container: ContainerSide, vm: VMSide) -> Comparison {
        let backend = KVMSystem.backend()
        let hardware = backend.isHardware
        var note: String? = nil
        if backend == .pvm {
            note = "This host's /dev/kvm is kvm_pvm, not hardware virtualization: guest kernel code runs in KVM's instruction emulator (about 1 µs per instruction) while guest user mode runs on the CPU, so the Linux guest takes about 20 s to reach its command and each of its system calls about 0.6 ms. A 64-bit SYSCALL from guest user mode arrives in the guest kernel as a page fault here; Swiftlet's minimal kernel runs it as the system call (guest/linux/patches), so the VM column's answers come from the guest's own user space. On kvm_intel or kvm_amd the same run takes milliseconds in the guest."
        } else if !hardware {
            note = "Which module provides /dev/kvm here is unknown (or there is no /dev/kvm; `swiftlet doctor` tells): the VM column shows what the VMM managed."
        }
        var comparison = Comparison(
            mode: options.probe ? .probe : .command, command: options.command, backend: host.backend,
            backendNote: note, columns: [], rows: [])
        let containerColumn = Self.containerColumn(options, container)
        let vmColumn = Self.vmColumn(options, vm, hardware: hardware)
        comparison.columns = [containerColumn, vmColumn, Column(id: "host", title: "host (reference)")]
        comparison.columns[2].completed = !host.answers.isEmpty
        comparison.vmGuest = Self.describeVMGuest(vm)
        comparison.rows = RowBuilder(options: options, host: host, container: container, vm: vm,
                                     containerColumn: containerColumn, vmColumn: vmColumn).rows()
        return comparison
    }

    /// The VM side in one sentence, with the sizes of what it boots (read here, not assumed).
    static func describeVMGuest(_ side: VMSide) -> String {
        if let kernel = side.kernel {
            let sizes = [("bzImage", kernel), ("initramfs", side.initrd)].compactMap { name, path in
                path.flatMap(fileSize).map { "\(name) \(formatKiB(Double($0) / 1024))" }
            }
            return "The VM is a Linux kernel + busybox (Swiftlet's minimal Linux\(sizes.isEmpty ? "" : ": " + sizes.joined(separator: ", "))): its start-up includes the kernel's whole boot before the workload's first instruction."
        }
        let size = CompareRunner.embedded("probe").map { " \(($0.count + 512) / 1024) KB" } ?? ""
        return "The VM is the probe tiny guest: a\(size) multiboot kernel with no operating system (guest/tiny/probe.c). Nothing boots, so its start-up shows that creating and entering a VM is cheap, not that VMs start faster than containers: a Linux VM boots its kernel first (compare --probe without --tiny-vm)."
    }

    static func fileSize(_ path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt64(info.st_size)
    }

    // MARK: Columns

    static func containerColumn(_ options: CompareOptions, _ side: ContainerSide) -> Column {
        var column = Column(id: "container", title: "container (swiftlet container run)")
        for run in [side.timed, options.probe ? nil : side.probe].compactMap({ $0 }) { column.runs.append(describe(run.arguments)) }
        if let failure = side.failure {
            column.failure = failure
            return column
        }
        guard let run = side.timed else { return column }
        if let report = side.timedReport, let error = report.text("error") {
            column.failure = "swiftlet container: \(error)"
            column.commandStatus = Int32(report.integer("exit_status") ?? Int(run.status))
        } else if side.timedReport == nil {
            column.failure = run.problem ?? run.lastErrorLine ?? "swiftlet container run exited with status \(run.status) and wrote no report"
        } else {
            column.commandStatus = run.status
            column.completed = !options.probe || side.answers.finished
            if !column.completed { column.failure = "the probe did not finish: \(run.lastErrorLine ?? "no answer")" }
            if column.commandStatus != 0 && column.failure == nil { column.failure = "the command exited with status \(run.status)" }
        }
        column.output = options.probe ? "" : run.stdout
        if let report = side.timedReport, let started = report.unsigned("started_ns") {
            column.timeline.append(TimelineMark(name: "launcher started", milliseconds: ms(started, since: run.spawnNanoseconds)))
            let wanted: [(String, String)] = [("clone", "clone (new namespaces)"), ("pivot_root", "pivot_root"),
                                              ("exec", "execve of the command begins"), ("exec done", "execve done: the command runs"),
                                              ("command ran", "the command exited")]
            let steps = report.all("step").compactMap { value -> (String, UInt64)? in
                let words = value.split(separator: " ")
                guard words.count >= 3, let at = UInt64(words.last!) else { return nil }
                return (words.dropFirst().dropLast().joined(separator: " "), at)
            }
            for (step, name) in wanted {
                if let at = steps.first(where: { $0.0 == step })?.1 { column.timeline.append(TimelineMark(name: name, milliseconds: ms(at, since: run.spawnNanoseconds))) }
            }
        }
        column.timeline.append(TimelineMark(name: "launcher exited", milliseconds: Double(run.wallNanoseconds) / 1e6))
        return column
    }

    static func vmColumn(_ options: CompareOptions, _ side: VMSide, hardware: Bool) -> Column {
        var column = Column(id: "vm", title: side.restoredFrom.map { "VM (swiftlet restore \($0): minimal Linux restored from a snapshot, not booted)" }
                            ?? (side.kernel == nil ? "VM (swiftlet boot --guest probe)" : "VM (swiftlet boot, minimal Linux)"))
        column.restoredFrom = side.restoredFrom
        let tinyGuest = side.kernel == nil
        if let run = side.run { column.runs.append(describe(run.arguments)) }
        if let failure = side.failure {
            column.failure = failure
            return column
        }
        guard let run = side.run else { return column }
        guard let report = side.report else {
            column.failure = run.problem ?? run.lastErrorLine ?? "swiftlet boot exited with status \(run.status) and wrote no report"
            return column
        }
        let outcome = report.first("outcome") ?? "unknown"
        if outcome == "build-failed" {
            column.failure = "swiftlet: " + (report.text("message") ?? "the VM could not be built")
            return column
        }
        let reported = outcome == "debug-exit" ? report.integer("debug_exit_value")
            : outcome == "command-exit" ? report.integer("command_status") : nil
        if let value = reported {
            if options.probe {
                column.commandStatus = Int32(value)
                column.completed = side.answers.finished
                if !column.completed { column.failure = side.kernel == nil ? "the probe guest ended without answering every question" : "the guest's probe script ended without answering every question" }
            } else {
                column.commandStatus = side.answers["command-exit"].flatMap { Int32($0) } ?? Int32(value)
                column.completed = side.answers["command-exit"] != nil
                if !column.completed { column.failure = "the guest's init ended with status \(value) before the command ran" }
            }
            if column.completed && column.commandStatus != 0 { column.failure = "the command exited with status \(column.commandStatus!)" }
        } else {
            var text = report.text("message") ?? "the VM stopped (\(outcome))"
            if let diagnosis = report.text("diagnosis") { text += "\n" + diagnosis }
            column.failure = text
        }
        // Timeline: the VMM's own steps, the guest's boot milestones, the guest's lab markers.
        if let started = report.unsigned("started_ns") {
            column.timeline.append(TimelineMark(name: side.restoredFrom == nil ? "VMM started building the machine" : "VMM started restoring the machine from its snapshot",
                                                milliseconds: ms(started, since: run.spawnNanoseconds)))
            if let restore = report.unsigned("restore_ns") {
                column.timeline.append(TimelineMark(name: "machine restored (RAM mapped, state set)", milliseconds: ms(started + restore, since: run.spawnNanoseconds)))
            }
            for value in report.all("milestone") {
                guard let space = value.firstIndex(of: " "), let offset = UInt64(value[..<space]) else { continue }
                column.timeline.append(TimelineMark(name: String(value[value.index(after: space)...]), milliseconds: ms(started + offset, since: run.spawnNanoseconds)))
            }
        }
        for value in report.all("marker") {
            let words = value.split(separator: " ")
            guard words.count == 2, let code = Int(words[0]), let at = UInt64(words[1]) else { continue }
            let name: String
            switch (tinyGuest, code) {
            case (true, 1): name = "probe guest's first instruction (marker 1)"
            case (true, 2): name = "probe guest done (marker 2)"
            case (false, 3): name = "init reached (marker 3)"
            case (false, 4): name = "init executes the \(options.probe ? "probe script" : "probe script and command") (marker 4)"
            case (false, 5): name = "command starts (marker 5)"
            case (false, 6): name = "command ended (marker 6)"
            case (false, 7): name = "init's snapshot point (marker 7)"
            default: name = "marker \(code)"
            }
            column.timeline.append(TimelineMark(name: name, milliseconds: ms(at, since: run.spawnNanoseconds)))
        }
        column.timeline.append(TimelineMark(name: "VMM exited", milliseconds: Double(run.wallNanoseconds) / 1e6))
        column.timeline.sort { $0.milliseconds < $1.milliseconds }
        if !tinyGuest {
            if !options.probe { column.output = commandOutput(side.serial) }
            // A restored guest printed no boot log: a "Linux version" line on its console is the probe's answer.
            if let banner = side.log.banner, side.restoredFrom == nil { column.details.append(.init(title: "guest kernel banner (serial console)", text: banner)) }
            if let snapshot = side.restoredFrom {
                column.details.append(.init(title: "restored, not booted", text: "this VM was restored from the snapshot \(snapshot) (swiftlet restore): its kernel booted once, when the snapshot was taken, and its times start at the restore"))
            }
            if !side.log.memoryMap.isEmpty {
                column.details.append(.init(title: "memory map the guest kernel was given (its BIOS-e820 lines)",
                                            text: side.log.memoryMap.map { "[0x\(hex($0.start))-0x\(hex($0.end))] \($0.type)" }.joined(separator: "\n")))
            }
            if let memory = side.log.memoryLine { column.details.append(.init(title: "guest kernel's memory count", text: memory)) }
            if let cmdline = report.first("cmdline") { column.details.append(.init(title: "kernel command line (composed by the VMM)", text: cmdline)) }
        }
        if let diagnosis = report.text("diagnosis") { column.details.append(.init(title: "VMM diagnosis", text: diagnosis)) }
        let unmapped = report.all("unmapped")
        if !unmapped.isEmpty { column.details.append(.init(title: "accesses with no RAM or device behind them (MMIO exits)", text: unmapped.joined(separator: "\n"))) }
        return column
    }

    /// The command's lines on the serial console: after init's nproc line, before the probe's command-exit.
    public static func commandOutput(_ serial: String) -> String {
        var lines: [Substring] = []
        var inside = false
        for line in textLines(serial, omittingEmpty: false) {
            if line.contains("swiftlet-init: nproc=") { inside = true; continue }
            if line.contains("swiftlet-probe: command-exit") { break }
            if inside { lines.append(Substring(line.filter { $0 != "\r" })) }
        }
        return lines.joined(separator: "\n")
    }

    static func describe(_ arguments: [String]) -> String {
        arguments.map { argument in
            if argument == ProbeScript.text { return "'<the probe script>'" }
            if argument.isEmpty || argument.contains(where: { " \"'$\\\n".contains($0) }) { return "'" + argument.replacingQuote() + "'" }
            return argument
        }.joined(separator: " ")
    }

    static func ms(_ at: UInt64, since start: UInt64) -> Double { (Double(at) - Double(start)) / 1e6 }
}

extension String {
    func replacingQuote() -> String {
        var out = ""
        for c in self { if c == "'" { out += "'\\''" } else { out.append(c) } }
        return out
    }
}

func hex(_ value: UInt64) -> String { String(value, radix: 16) }

/// Formats milliseconds for a reader: "0.84 ms", "12.3 ms", "183.2 s".
public func formatMilliseconds(_ ms: Double) -> String {
    if ms >= 10_000 { return fixed(ms / 1000, 1) + " s" }
    if ms >= 10 { return fixed(ms, 1) + " ms" }
    return fixed(ms, 2) + " ms"
}

public func formatKiB(_ kib: Double) -> String {
    if kib >= 1024 { return fixed(kib / 1024, 1) + " MiB" }
    return fixed(kib, 0) + " KiB"
}

