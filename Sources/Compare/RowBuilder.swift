// RowBuilder: one method per question, each returning the container's, the VM's and the host's cells.
// The order here is the order of the table. What the VM side can answer depends on what ran: the probe tiny
// guest (no operating system), or the minimal Linux, whose userspace answers only where it can run
// (on kvm_pvm too, with Swiftlet's minimal kernel); where the guest's user space did not answer, the Linux
// column says what the guest kernel itself printed and why the rest is missing.

struct RowBuilder {
    let options: CompareOptions
    let host: HostSide
    let container: ContainerSide
    let vm: VMSide
    let containerColumn: Column
    let vmColumn: Column

    var probe: Bool { options.probe }
    /// The VM column is the probe tiny guest (probe mode without a Linux kernel), not a Linux guest.
    var tinyVM: Bool { probe && vm.kernel == nil }
    var c: ProbeAnswers { container.answers }
    var v: ProbeAnswers { vm.answers }
    var h: ProbeAnswers { host.answers }

    func rows() -> [Row] {
        [
            timeToFirstInstruction(), totalTime(),
            runtimeMemory(), workloadMemory(), totalMemory(),
            kernelRelease(), kernelVersion(), pid1(),
            cpus(), memoryVisible(),
            processes(), hostname(), devKVM(), mounts(), modules(),
            cpuVendor(), hypervisor(), privilege(),
            readPastEnd(), portIO(), syscallsAndExits(), hostKernelSurface(), exitStatus(),
        ]
    }

    func row(_ id: String, _ label: String, _ group: Row.Group, container: Cell, vm: Cell, host: Cell? = nil) -> Row {
        var cells = ["container": container, "vm": vm]
        if let host { cells["host"] = host }
        return Row(id: id, label: label, group: group, cells: cells)
    }

    // MARK: Why a cell is empty

    /// The container column's reason for every cell it cannot fill.
    var containerMissing: String {
        containerColumn.failure.map { "the container did not run: \($0)" } ?? "the probe run printed no answer"
    }

    /// The VM column's reason for a question only the guest's userspace (or the probe guest) can answer.
    var vmMissing: String {
        if let failure = vmColumn.failure, vm.report == nil || vm.report?.first("outcome") == "build-failed" || vm.run == nil {
            return "the VM did not run: \(failure.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).first ?? "")"
        }
        if tinyVM { return "the probe guest printed no answer" }
        var reason = "the guest's userspace never answered"
        if let panic = vm.log.panic {
            reason += " (\(panic))"
        } else if let failure = vmColumn.failure {
            reason += " (" + (failure.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).first.map(String.init) ?? failure) + ")"
        }
        if let furthest = vmColumn.timeline.last(where: { $0.name != "VMM exited" && $0.name != "kernel panic" }) {
            reason += "; furthest point reached: \(furthest.name) at \(formatMilliseconds(furthest.milliseconds))"
        }
        if vm.report?.first("backend") == "kvm_pvm", vm.log.panic?.contains("Attempted to kill init") == true {
            reason += "; on kvm_pvm a kernel without Swiftlet's change (guest/linux/patches) kills init at its first system call"
        }
        return reason
    }

    /// Questions a tiny guest cannot be asked: it has no operating system.
    let noOS = "the probe guest has no operating system: no processes, files, hostname or kernel; its whole world is its RAM and the devices the VMM emulates"

    func answer(_ answers: ProbeAnswers, _ key: String, missing: String, source: String) -> Cell {
        guard let value = answers[key], !value.isEmpty else { return .unavailable(missing) }
        return .measured(value, source: source)
    }

    // MARK: Start-up

    func timeToFirstInstruction() -> Row {
        var containerCell = Cell.unavailable(containerMissing)
        if let run = container.timed, let report = container.timedReport,
           let done = report.all("step").first(where: { $0.hasPrefix("launcher exec done ") }),
           let at = UInt64(done.split(separator: " ").last ?? "") {
            let value = Comparison.ms(at, since: run.spawnNanoseconds)
            var text = formatMilliseconds(value)
            if let call = report.all("step").first(where: { $0.hasPrefix("container exec ") }), let started = UInt64(call.split(separator: " ").last ?? "") {
                text += " (PID 1 called execve at \(formatMilliseconds(Comparison.ms(started, since: run.spawnNanoseconds))))"
            }
            containerCell = .measured(text, number: value, unit: "ms",
                                      source: "from compare's posix_spawn of `swiftlet container run` to the launcher seeing \(probe ? "the probe script's" : "the command's") execve succeed (its close-on-exec pipe closed), an upper bound; the container's PID 1 timestamps its execve call, a lower bound; CLOCK_MONOTONIC")
        }
        var vmCell = Cell.unavailable(vmMissing)
        if let run = vm.run, let report = vm.report {
            let code = tinyVM ? "1" : probe ? "4" : "5"
            if let marker = report.all("marker").first(where: { $0.hasPrefix(code + " ") }), let at = UInt64(marker.split(separator: " ")[1]) {
                let value = Comparison.ms(at, since: run.spawnNanoseconds)
                let restored = vm.restoredFrom != nil
                vmCell = .measured(formatMilliseconds(value), number: value, unit: "ms",
                                   source: restored ? "from compare's posix_spawn of `swiftlet restore` (the VM restored from a snapshot, not booted) to lab marker 5, which the probe script writes just before it runs the command"
                                                 : tinyVM ? "from compare's posix_spawn of `swiftlet boot` to the probe guest's first C statement, a write to lab port 0x440 the VMM timestamps"
                                                 : probe ? "from compare's posix_spawn of `swiftlet boot` to lab marker 4, which the guest's init writes just before it executes the probe script"
                                                 : "from compare's posix_spawn of `swiftlet boot` to lab marker 5, which the probe script writes just before it runs the command")
            }
        }
        return row("time_to_first_instruction", probe ? "time to the workload's first instruction" : "time to the command's first instruction",
                   .startup, container: containerCell, vm: vmCell)
    }

    func totalTime() -> Row {
        func cell(_ run: ChildRun?, _ what: String, missing: String) -> Cell {
            guard let run, run.started else { return .unavailable(missing) }
            let value = Double(run.wallNanoseconds) / 1e6
            return .measured(formatMilliseconds(value), number: value, unit: "ms", source: "compare's clock from posix_spawn to wait4 of `\(what)`, whatever the outcome")
        }
        return row("time_total", "total time, start to exit", .startup,
                   container: cell(container.timed, "swiftlet container run", missing: containerMissing),
                   vm: cell(vm.run, vm.restoredFrom == nil ? "swiftlet boot" : "swiftlet restore", missing: vmColumn.failure ?? "the VM did not run"))
    }

    // MARK: Memory

    func runtimeMemory() -> Row {
        var containerCell = Cell.unavailable(containerMissing)
        if let kib = container.timedReport?.integer("maxrss_launcher_kib") {
            containerCell = .measured(formatKiB(Double(kib)), number: Double(kib), unit: "KiB", source: "the launcher's own peak RSS: getrusage(RUSAGE_SELF) ru_maxrss at its end")
        }
        var vmCell = Cell.unavailable(vmColumn.failure ?? "the VM did not run")
        if let run = vm.run, run.started, run.maxRSSKiB > 0 {
            vmCell = .measured(formatKiB(Double(run.maxRSSKiB)), number: Double(run.maxRSSKiB), unit: "KiB",
                               source: "the VMM process's peak RSS: wait4 ru_maxrss; the guest RAM it touched is part of it")
        }
        return row("memory_runtime", "launcher / VMM process, peak resident memory", .memory, container: containerCell, vm: vmCell)
    }

    func workloadMemory() -> Row {
        var containerCell = Cell.unavailable(containerMissing)
        if let kib = container.timedReport?.integer("maxrss_contained_kib") {
            containerCell = .measured(formatKiB(Double(kib)), number: Double(kib), unit: "KiB",
                                      source: "the largest peak RSS among the contained processes: the launcher's getrusage(RUSAGE_CHILDREN) ru_maxrss (a maximum, not a sum)")
        }
        var vmCell = Cell.unavailable(vmColumn.failure ?? "the VM did not run")
        if let report = vm.report, let resident = report.unsigned("ram_resident_bytes"), let total = report.unsigned("ram_bytes") {
            let kib = Double(resident) / 1024
            vmCell = .measured("\(formatKiB(kib)) of \(formatKiB(Double(total) / 1024)) guest RAM", number: kib, unit: "KiB",
                               source: "guest RAM resident in host memory when the VM stopped: mincore(2) over the VMM's guest-memory mappings (pages the loader or the guest touched)")
        }
        return row("memory_workload", "the workload's memory on the host", .memory, container: containerCell, vm: vmCell)
    }

    func totalMemory() -> Row {
        var containerCell = Cell.unavailable(containerMissing)
        if let launcher = container.timedReport?.integer("maxrss_launcher_kib"), let contained = container.timedReport?.integer("maxrss_contained_kib") {
            let kib = Double(launcher + contained)
            containerCell = .measured(formatKiB(kib), number: kib, unit: "KiB", source: "launcher peak + largest contained process peak (two peaks added: an upper bound)")
        }
        var vmCell = Cell.unavailable(vmColumn.failure ?? "the VM did not run")
        if let run = vm.run, run.started, run.maxRSSKiB > 0 {
            vmCell = .measured(formatKiB(Double(run.maxRSSKiB)), number: Double(run.maxRSSKiB), unit: "KiB",
                               source: "the VMM's peak RSS, which already holds the touched guest RAM")
        }
        return row("memory_total", "host memory cost", .memory, container: containerCell, vm: vmCell)
    }

    // MARK: Kernel and PID 1

    func kernelRelease() -> Row {
        let hostRelease = h["uname-r"]
        var containerCell = answer(c, "uname-r", missing: containerMissing, source: "`uname -r` inside the container")
        containerCell.hostVisible = containerCell.value.map { $0 == hostRelease }
        if containerCell.hostVisible == true { containerCell.value! += " (the host's kernel)" }
        var vmCell: Cell
        if tinyVM {
            vmCell = .unavailable(noOS)
        } else if let release = v["uname-r"], !release.isEmpty {
            vmCell = .measured(release, source: "`uname -r` inside the guest" + (vm.log.release == release ? "; the same as the guest kernel's banner" : ""))
        } else if let release = vm.log.release {
            vmCell = .measured(release, source: "the guest kernel's own banner on its serial console (\"Linux version \(release) ...\"); `uname -r` needs the guest's userspace: \(vmMissing)")
        } else {
            vmCell = .unavailable(vmColumn.failure.map { "the guest kernel printed no banner: \($0.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).first ?? "")" } ?? "the guest kernel printed no banner")
        }
        if let value = vmCell.value { vmCell.hostVisible = (value == hostRelease) }
        return row("kernel_release", "kernel release (uname -r)", .kernel, container: containerCell, vm: vmCell,
                   host: answer(h, "uname-r", missing: "the host probe printed nothing", source: "`uname -r` on the host"))
    }

    func kernelVersion() -> Row {
        let containerCell = answer(c, "proc-version", missing: containerMissing, source: "/proc/version inside the container: the running kernel's banner")
        var vmCell: Cell
        if tinyVM {
            vmCell = .unavailable(noOS)
        } else if let banner = vm.log.banner {
            vmCell = .measured(banner, source: "the guest kernel's banner on its serial console")
        } else {
            vmCell = .unavailable(vmColumn.failure ?? "the guest kernel printed no banner")
        }
        return row("kernel_version", "kernel banner", .kernel, container: containerCell, vm: vmCell,
                   host: answer(h, "proc-version", missing: "the host probe printed nothing", source: "/proc/version on the host"))
    }

    func pid1() -> Row {
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let comm = answers["pid1"], !comm.isEmpty else { return .unavailable(missing) }
            var value = comm
            if answers["self-pid"] == "1" { value += " (the probe itself: PID 1 is whatever the launcher started)" }
            return .measured(value, source: "/proc/1/comm \(place)")
        }
        return row("pid1", "PID 1", .kernel,
                   container: cell(c, missing: containerMissing, place: "inside the container (the probe run)"),
                   vm: tinyVM ? .unavailable(noOS) : cell(v, missing: vmMissing, place: "inside the guest"),
                   host: cell(h, missing: "the host probe printed nothing", place: "on the host"))
    }

    // MARK: CPUs and memory visible

    func cpus() -> Row {
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let n = answers["nproc"], let count = Double(n) else { return .unavailable(missing) }
            var value = n
            if let listed = answers["cpuinfo-processors"], listed != n { value += " (/proc/cpuinfo lists \(listed))" }
            return .measured(value, number: count, unit: "count", source: "`nproc` \(place)")
        }
        var vmCell: Cell
        if tinyVM {
            vmCell = .unavailable("the probe guest does not count CPUs (a multiboot guest gets no MP table or ACPI to count them from); the VMM gave it 1 vCPU")
        } else if v["nproc"] != nil {
            vmCell = cell(v, missing: vmMissing, place: "inside the guest")
        } else if let n = vm.log.processors {
            vmCell = .measured(String(n), number: Double(n), unit: "count", source: "the guest kernel's log (\"smpboot: Total of \(n) processors activated\"); `nproc` needs its userspace")
        } else {
            vmCell = .unavailable(vmMissing)
        }
        return row("cpus", "CPUs visible", .resources, container: cell(c, missing: containerMissing, place: "inside the container"), vm: vmCell,
                   host: cell(h, missing: "the host probe printed nothing", place: "on the host"))
    }

    func memoryVisible() -> Row {
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let text = answers["memtotal-kib"], let kib = Double(text) else { return .unavailable(missing) }
            return .measured(formatKiB(kib), number: kib, unit: "KiB", source: "MemTotal in /proc/meminfo \(place)")
        }
        var vmCell: Cell
        if tinyVM {
            if let text = v["memory-kib"], let kib = Double(text) {
                vmCell = .measured(formatKiB(kib), number: kib, unit: "KiB", source: "the probe guest's multiboot information: mem_lower + mem_upper")
            } else {
                vmCell = .unavailable(vmMissing)
            }
        } else if v["memtotal-kib"] != nil {
            vmCell = cell(v, missing: vmMissing, place: "inside the guest")
        } else if let kib = vm.log.memoryTotalKiB {
            vmCell = .measured(formatKiB(Double(kib)), number: Double(kib), unit: "KiB", source: "the guest kernel's log: \(vm.log.memoryLine ?? "")")
        } else {
            vmCell = .unavailable(vmMissing)
        }
        return row("memory_visible", "memory visible", .resources, container: cell(c, missing: containerMissing, place: "inside the container"),
                   vm: vmCell, host: cell(h, missing: "the host probe printed nothing", place: "on the host"))
    }

    // MARK: Visibility of the host

    func processes() -> Row {
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let n = answers["processes"], let number = Double(n), let sees = answers["sees-launcher"] else { return .unavailable(missing) }
            let value = sees == "yes" ? "\(count(Int(number), "process", "processes")), among them the host process that launched it"
                                      : "\(count(Int(number), "process", "processes")), none of them the host process that launched it"
            return .measured(value, number: number, unit: "count", source: "the processes listed in /proc \(place), and whether one's command line is the launching `swiftlet ... --report` process",
                             hostVisible: sees == "yes")
        }
        var hostCell: Cell? = nil
        if let n = h["processes"], let number = Double(n) { hostCell = .measured(count(Int(number), "process", "processes"), number: number, unit: "count", source: "the processes listed in /proc on the host") }
        return row("host_processes", "host processes visible", .visibility,
                   container: cell(c, missing: containerMissing, place: "inside the container"),
                   vm: tinyVM ? .unavailable(noOS) : cell(v, missing: vmMissing, place: "inside the guest"),
                   host: hostCell ?? .unavailable("the host probe printed nothing"))
    }

    func hostname() -> Row {
        let hostName = h["hostname"]
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let name = answers["hostname"], !name.isEmpty else { return .unavailable(missing) }
            let same = name == hostName
            return .measured(same ? "\(name) (the host's)" : name, source: "`uname -n` \(place)", hostVisible: same)
        }
        return row("hostname", "hostname", .visibility,
                   container: cell(c, missing: containerMissing, place: "inside the container"),
                   vm: tinyVM ? .unavailable(noOS) : cell(v, missing: vmMissing, place: "inside the guest"),
                   host: answer(h, "hostname", missing: "the host probe printed nothing", source: "`uname -n` on the host"))
    }

    func devKVM() -> Row {
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let seen = answers["dev-kvm"] else { return .unavailable(missing) }
            return .measured(seen == "yes" ? "present" : "absent", source: "test -e /dev/kvm \(place)", hostVisible: seen == "yes")
        }
        return row("dev_kvm", "/dev/kvm", .visibility,
                   container: cell(c, missing: containerMissing, place: "inside the container"),
                   vm: tinyVM ? .unavailable(noOS) : cell(v, missing: vmMissing, place: "inside the guest"),
                   host: cell(h, missing: "the host probe printed nothing", place: "on the host"))
    }

    /// Mount points every container or guest makes for itself; seeing one of these says nothing about the host.
    static let ownMountPoints: Set = ["/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup", "/tmp", "/run", "/mnt", "/.swiftlet-probe"]

    func mounts() -> Row {
        let hostPoints = Set((h["mounts"] ?? "").split(separator: " ").map(String.init))
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let text = answers["mounts"] else { return .unavailable(missing) }
            let points = text.split(separator: " ").map(String.init)
            let hostOnly = Set(points).intersection(hostPoints).subtracting(Self.ownMountPoints).sorted()
            let value = hostOnly.isEmpty ? "\(points.count) mount points, none of the host's own"
                                         : "\(points.count) mount points, \(hostOnly.count) of them the host's (\(hostOnly.prefix(3).joined(separator: ", "))\(hostOnly.count > 3 ? ", ..." : ""))"
            return .measured(value, number: Double(points.count), unit: "count",
                             source: "/proc/mounts \(place), compared with the host's mount points (leaving out /, /proc, /sys, /dev... which every container and guest mounts for itself)",
                             hostVisible: !hostOnly.isEmpty)
        }
        var hostCell: Cell = .unavailable("the host probe printed nothing")
        if !hostPoints.isEmpty { hostCell = .measured("\(hostPoints.count) mount points", number: Double(hostPoints.count), unit: "count", source: "/proc/mounts on the host") }
        return row("host_mounts", "host mounts visible", .visibility,
                   container: cell(c, missing: containerMissing, place: "inside the container"),
                   vm: tinyVM ? .unavailable(noOS) : cell(v, missing: vmMissing, place: "inside the guest"), host: hostCell)
    }

    func modules() -> Row {
        // /proc/modules where the kernel has loadable modules, else /sys/module (built-in modules with parameters).
        func list(_ answers: ProbeAnswers) -> (names: [String], file: String)? {
            if let text = answers["modules"] { return (text.split(separator: " ").map(String.init), "/proc/modules") }
            if let text = answers["sys-modules"] { return (text.split(separator: " ").map(String.init), "/sys/module") }
            return nil
        }
        let hostList = list(h)
        func cell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard answers["uname-r"] != nil else { return .unavailable(missing) }
            guard let (names, file) = list(answers) else {
                return .measured("none listed (no /proc/modules, no /sys/module)", number: 0, unit: "count", source: "/proc/modules and /sys/module \(place)", hostVisible: false)
            }
            var same: Bool? = nil
            if let hostList, hostList.file == file, !hostList.names.isEmpty { same = Set(names) == Set(hostList.names) }
            let value = same == true ? "\(count(names.count, "module")) in \(file): the host kernel's own list" : "\(count(names.count, "module")) in \(file)"
            return .measured(value, number: Double(names.count), unit: "count", source: "\(file) \(place), compared with the host's", hostVisible: same)
        }
        var hostCell: Cell = .unavailable("the host probe printed nothing")
        if let hostList { hostCell = .measured("\(count(hostList.names.count, "module")) in \(hostList.file)", number: Double(hostList.names.count), unit: "count", source: "\(hostList.file) on the host") }
        return row("kernel_modules", "host kernel modules visible", .visibility,
                   container: cell(c, missing: containerMissing, place: "inside the container"),
                   vm: tinyVM ? .unavailable(noOS) : cell(v, missing: vmMissing, place: "inside the guest"), host: hostCell)
    }

    // MARK: CPU identity

    var vmCPUSource: String { tinyVM ? "the CPUID instruction in the probe guest (CPL 0)" : "the CPUID instruction in the probe helper, a process in the guest" }
    var vmCPUMissing: String {
        if tinyVM { return vmMissing }
        if let hypervisor = vm.log.hypervisor { return vmMissing + "; the guest kernel itself printed \"Hypervisor detected: \(hypervisor)\"" }
        return vmMissing
    }

    func cpuVendor() -> Row {
        row("cpu_vendor", "CPU vendor (CPUID leaf 0)", .cpu,
            container: answer(c, "cpu-vendor", missing: containerMissing, source: "the CPUID instruction in the probe helper, a process in the container"),
            vm: answer(v, "cpu-vendor", missing: vmCPUMissing, source: vmCPUSource),
            host: answer(h, "cpu-vendor", missing: "the host probe printed nothing", source: "the CPUID instruction in the probe helper on the host"))
    }

    func hypervisor() -> Row {
        func cell(_ answers: ProbeAnswers, missing: String, source: String) -> Cell {
            guard let bit = answers["hypervisor-bit"], let signature = answers["hypervisor-signature"] else { return .unavailable(missing) }
            let value = bit == "1" ? "present, signature \(signature)" : "not present (CPUID.1:ECX bit 31 clear)"
            return .measured(value, source: source + ": CPUID.1:ECX bit 31 and leaf 0x40000000")
        }
        return row("hypervisor", "hypervisor leaf (CPUID 0x40000000)", .cpu,
                   container: cell(c, missing: containerMissing, source: "the probe helper in the container"),
                   vm: cell(v, missing: vmCPUMissing, source: tinyVM ? "the probe guest" : "the probe helper in the guest"),
                   host: cell(h, missing: "the host probe printed nothing", source: "the probe helper on the host"))
    }

    func privilege() -> Row {
        func cell(_ answers: ProbeAnswers, missing: String, source: String) -> Cell {
            guard let cpl = answers["cpl"] else { return .unavailable(missing) }
            let meaning = cpl == "0" ? "kernel mode" : cpl == "3" ? "user mode" : "ring \(cpl)"
            return .measured("\(cpl) (\(meaning))", source: source)
        }
        return row("cpl", "privilege level the workload runs at", .cpu,
                   container: cell(c, missing: containerMissing, source: "CS & 3 in the probe helper"),
                   vm: cell(v, missing: vmCPUMissing, source: tinyVM ? "CS & 3 in the probe guest" : "CS & 3 in the probe helper in the guest"),
                   host: cell(h, missing: "the host probe printed nothing", source: "CS & 3 in the probe helper on the host"))
    }

    // MARK: The boundary

    func readPastEnd() -> Row {
        func processCell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let text = answers["read-past-end"] else { return .unavailable(missing) }
            return .measured(text, source: "the probe helper \(place) forks a child that reads the first page past its data segment (brk) and reports how the child ended")
        }
        var vmCell: Cell
        if tinyVM {
            if let text = v["read-past-end"] {
                var value = text
                if let access = vm.report?.all("unmapped").first(where: { $0.hasPrefix("read") }) {
                    let words = access.split(separator: " ")
                    if words.count >= 4 { value += "; the VMM saw an MMIO exit: \(words[2])-byte read at \(words[1]), no RAM or device there, answered \(words[3])" }
                }
                vmCell = .measured(value, source: "the probe guest reads 4 bytes at the end of the RAM its multiboot memory map reports; the VMM's run report records the MMIO exit")
            } else {
                vmCell = .unavailable(vmMissing)
            }
        } else {
            vmCell = processCell(v, missing: vmCPUMissing, place: "in the guest")
        }
        return row("read_past_end", "reading past the end of memory", .boundary,
                   container: processCell(c, missing: containerMissing, place: "in the container"), vm: vmCell)
    }

    func portIO() -> Row {
        func processCell(_ answers: ProbeAnswers, missing: String, place: String) -> Cell {
            guard let text = answers["port-io"] else { return .unavailable(missing) }
            return .measured(text, source: "the probe helper \(place) forks a child that executes IN from port 0x80 and reports how the child ended")
        }
        var vmCell: Cell
        if tinyVM {
            if let text = v["port-io"] {
                var value = text
                if let access = vm.report?.all("port_unassigned").first(where: { $0.hasPrefix("read 0x80 ") }) {
                    let words = access.split(separator: " ")
                    value += "; the VMM saw a port-I/O exit: no device at port 0x80, answered \(words.count >= 4 ? String(words[3]) : "?")"
                }
                vmCell = .measured(value, source: "the probe guest executes IN from port 0x80 at CPL 0; the VMM's run report records the exit")
            } else {
                vmCell = .unavailable(vmMissing)
            }
        } else {
            vmCell = processCell(v, missing: vmCPUMissing, place: "in the guest")
        }
        return row("port_io", "port I/O (IN from port 0x80)", .boundary,
                   container: processCell(c, missing: containerMissing, place: "in the container"), vm: vmCell)
    }

    func syscallsAndExits() -> Row {
        var containerCell: Cell
        if let count = container.syscalls {
            let top = SyscallCount.top(count.workload, 4).joined(separator: ", ")
            containerCell = .measured("\(count.workloadTotal) host system calls (\(top)); the launcher made \(count.launcherTotal) more setting it up",
                                      number: Double(count.workloadTotal), unit: "count",
                                      source: "strace -f of a separate copy of the run: every call of the command after its execve, and of its descendants")
        } else {
            containerCell = .unavailable(container.syscallProblem ?? containerMissing)
        }
        var vmCell = Cell.unavailable(vmColumn.failure ?? "the VM did not run")
        if let report = vm.report, report.first("outcome") != "build-failed" {
            var exits: [(String, Int)] = []
            for value in report.all("exit") {
                let words = value.split(separator: " ")
                if words.count >= 2, let n = Int(words[1]) { exits.append((String(words[0]), n)) }
            }
            let total = exits.reduce(0) { $0 + $1.1 }
            let top = exits.sorted { $0.1 > $1.1 }.prefix(4).map { "\($0.0) ×\($0.1)" }.joined(separator: ", ")
            vmCell = .measured("\(total) VM exits (\(top)); the guest's own system calls never reach the host", number: Double(total), unit: "count",
                               source: "the VMM's exit counters (every KVM_RUN return), for the whole run\(tinyVM ? "" : ", boot included")")
        }
        return row("syscalls_or_exits", "what reaches the host kernel: system calls vs VM exits", .boundary, container: containerCell, vm: vmCell)
    }

    /// What the host-side process may ask of the host kernel: the container's seccomp filter vs the VMM's
    /// per-thread allowlists, both measured by running the installed programs over every call (the reports'
    /// seccomp_surface and seccomp_thread lines), not taken from the profiles.
    func hostKernelSurface() -> Row {
        var containerCell = Cell.unavailable(containerColumn.failure ?? "the container wrote no report")
        if let surface = container.timedReport?.first("seccomp_surface") {
            let words = surface.split(separator: " ")
            if surface == "none" {
                containerCell = .measured("no seccomp filter: every system call", source: "the launcher's run report")
            } else if words.count >= 6, let native = Double(words[1]) {
                containerCell = .measured("\(words[1]) system calls (x86_64), plus \(words[3]) through int 0x80 (i386) and \(words[5]) x32; ioctl with any request",
                                          number: native, unit: "count",
                                          source: "the container's seccomp program run over every call of the x86 tables (Docker's default profile unless config.json has one)")
            }
        }
        var vmCell = Cell.unavailable(vmColumn.failure ?? "the VM did not run")
        if let report = vm.report {
            var union = Set<String>(), parts: [String] = [], ioctls = 0
            for line in report.all("seccomp_thread") {
                let words = line.split(separator: " ")
                guard words.count == 3, let requests = Int(words[2]) else { continue }
                let calls = words[1].split(separator: ",").map(String.init)
                union.formUnion(calls)
                ioctls = max(ioctls, requests)
                parts.append("\(words[0]) \(calls.count)")
            }
            vmCell = parts.isEmpty
                ? .measured("not confined (--no-confine): every system call", source: "the VMM's run report")
                : .measured("\(union.count) system calls across its threads (\(parts.joined(separator: ", "))), ioctl only with listed requests (at most \(ioctls) per thread); no capabilities",
                            number: Double(union.count), unit: "count",
                            source: "each VMM thread's seccomp program run over every x86_64 call (Confinement.swift); i386 and x32 calls end the VMM")
        }
        return row("host_kernel_surface", "what the host-side process may ask of the host kernel (seccomp, measured)", .boundary,
                   container: containerCell, vm: vmCell)
    }

    func exitStatus() -> Row {
        func cell(_ column: Column, missing: String, source: String) -> Cell {
            guard let status = column.commandStatus else { return .unavailable(missing) }
            return .measured(String(status), number: Double(status), unit: "status", source: source)
        }
        return row("exit_status", probe ? "the probe's exit status" : "the command's exit status", .boundary,
                   container: cell(containerColumn, missing: containerMissing, source: "the status of the container's PID 1 (wait4 in the launcher)"),
                   vm: cell(vmColumn, missing: vmMissing, source: tinyVM ? "the value the probe guest wrote to the debug-exit port"
                                : probe ? "the probe script's status, which init wrote to the debug-exit port"
                                : "the status the probe script reported (command-exit) before init wrote it to the debug-exit port"))
    }
}

/// "1 module", "3 modules".
func count(_ n: Int, _ singular: String, _ plural: String? = nil) -> String {
    "\(n) \(n == 1 ? singular : plural ?? singular + "s")"
}
