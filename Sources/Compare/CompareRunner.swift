// CompareRunner: runs the same work as a container and in a VM, each through the `swiftlet` binary a user
// would run, and measures both from outside; Comparison+Rows.swift turns what it gathered into rows.
//
// The runs, in order (each a child process: ChildProcess measures its wall time and peak RSS with wait4):
//   host       the probe script and the probe helper on the host itself: the reference answers
//   container  command mode: `swiftlet container run --rootfs DIR --report F -- COMMAND` (times, memory,
//              exit status, output); then the probe script with the helper bound in (--bind) for the
//              questions; then the first run again under `strace -f` to count the workload's system calls
//              (a separate run, so tracing slows none of the measured ones).
//              probe mode: the probe run (times, answers), then the same under strace.
//   vm         command mode: `swiftlet boot --kernel K --initrd I' --report F -- /bin/sh /swiftlet-probe.sh
//              COMMAND`, where I' is the initramfs with the probe script and helper appended (Cpio.swift):
//              guest/linux/init.c runs the script, which runs the command between two lab markers and then
//              answers the questions on the serial console.
//              probe mode: the same minimal Linux with the probe script and no command
//              (`-- /bin/sh /swiftlet-probe.sh`): the guest's own user space answers, the probe helper
//              included; without a kernel and initramfs, `swiftlet boot --guest probe --report F`: the probe
//              tiny guest (no operating system) answers what it can.
// Every file compare writes goes into one temporary directory, removed at the end.
import CGuestImages
import X86Boot
import Glibc
import KVM

public struct CompareOptions: Sendable {
    public var command: [String] = []
    public var probe = false
    /// With `probe`: the probe tiny guest answers, not the minimal Linux (`--tiny-vm`).
    public var tinyVM = false
    public var kernel: String?
    public var initrd: String?
    public var rootfs: String?
    public var memory = "64M"
    public var cpus = 1
    /// Seconds before the VM is stopped (swiftlet boot --timeout).
    public var timeout: Double = 600
    /// Count the container workload's system calls with strace (a third container run).
    public var countSyscalls = true
    /// `--vm-snapshot FILE`: the VM column restores this snapshot instead of booting (`swiftlet restore`).
    public var vmSnapshot: String?
    /// The `swiftlet` executable to run (the lean front end, or swiftlet-cli).
    public var swiftlet: String

    public init(swiftlet: String) { self.swiftlet = swiftlet }

    /// Where the minimal Linux kernel and initramfs are looked for when --kernel/--initrd are not given:
    /// $SWIFTLET_LINUX_DIR, else guest/linux/out found by `guestDirectory`.
    public var defaultLinuxDirectory: String {
        if let value = getenv("SWIFTLET_LINUX_DIR") { return String(cString: value) }
        return Self.guestDirectory("linux/out", besides: swiftlet)
    }

    /// The busybox root filesystem for the container side when --rootfs is not given.
    public var defaultRootfs: String { Self.guestDirectory("rootfs/out/rootfs", besides: swiftlet) }

    /// `guest/RELATIVE` of the checkout Swiftlet came from, so compare works from any directory: under the
    /// current directory; else beside the executable's build directory (CHECKOUT/.build/[TRIPLE/]release/);
    /// else PREFIX/share/swiftlet/guest, which setup.sh links to the checkout's guest/ when it installs
    /// into PREFIX/bin. The first that exists; the current directory's path when none does (for the message).
    public static func guestDirectory(_ relative: String, besides executable: String) -> String {
        let here = "guest/" + relative
        let directory = executable.lastIndex(of: "/").map { String(executable[..<$0]) } ?? "."
        let candidates = [here, directory + "/../../guest/" + relative, directory + "/../../../guest/" + relative,
                          directory + "/../share/swiftlet/guest/" + relative]
        guard let found = candidates.first(where: { access($0, F_OK) == 0 }) else { return here }
        guard found != here, let resolved = realpath(found, nil) else { return found }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// Everything gathered on one side, before it becomes rows.
struct ContainerSide {
    var rootfs: String?
    var failure: String?
    /// The run that measures time and memory (command mode: the command itself; probe mode: the probe).
    var timed: ChildRun?
    var timedReport: ReportFile?
    var probe: ChildRun?
    var probeReport: ReportFile?
    var answers = ProbeAnswers("")
    var syscalls: SyscallCount?
    var syscallProblem: String?
}

struct VMSide {
    var failure: String?
    var run: ChildRun?
    var report: ReportFile?
    var answers = ProbeAnswers("")
    var log = KernelLog("")
    var serial = ""
    var kernel: String?
    var initrd: String?
    /// The snapshot the VM was restored from (`--vm-snapshot`), nil when it booted.
    var restoredFrom: String?
}

struct HostSide {
    var answers = ProbeAnswers("")
    var backend = "unknown"
}

public enum CompareRunner {
    /// Runs both columns and returns the comparison; `progress` receives one line per step.
    public static func run(_ options: CompareOptions, progress: (String) -> Void = { _ in }) -> Comparison {
        let work = makeWorkDirectory()
        // SWIFTLET_COMPARE_KEEP=1 keeps the files compare made (reports, the initramfs with the probe, the strace log).
        let keep = getenv("SWIFTLET_COMPARE_KEEP").map { String(cString: $0) == "1" } ?? false
        defer { if keep { progress("kept the files in \(work)") } else { removeTree(work) } }
        var helperPath: String? = nil
        if let helper = embedded("probe-helper") {
            let directory = work + "/helper"
            mkdir(directory, 0o755)
            let path = directory + "/" + ProbeScript.helperName
            if ChildProcess.writeBytes(helper, to: path, mode: 0o755) == nil { helperPath = path }
        }

        progress("host: asking the host itself the same questions")
        var host = HostSide()
        host.backend = KVMSystem.backend().rawValue
        let hostRun = ChildProcess.run(["/bin/sh", "-c", ProbeScript.text, "swiftlet-probe"], deadline: 30, workDirectory: work)
        var hostText = hostRun.stdout
        if let helperPath { hostText += ChildProcess.run([helperPath], deadline: 30, workDirectory: work).stdout }
        host.answers = ProbeAnswers(hostText)

        let container = runContainer(options, work: work, helperPath: helperPath, progress: progress)
        let vm = runVM(options, work: work, progress: progress)
        return Comparison.assemble(options: options, host: host, container: container, vm: vm)
    }

    // MARK: The container column

    static func runContainer(_ options: CompareOptions, work: String, helperPath: String?, progress: (String) -> Void) -> ContainerSide {
        var side = ContainerSide()
        let rootfs = options.rootfs ?? (isDirectory(options.defaultRootfs) ? options.defaultRootfs : nil)
        guard let rootfs else {
            side.failure = "no root filesystem: give --rootfs DIR (guest/rootfs/build.sh builds the busybox one in \(options.defaultRootfs))"
            return side
        }
        side.rootfs = rootfs
        let base = [options.swiftlet, "container", "run", "--rootfs", rootfs]
        let bindPoint = ProbeScript.containerBindPoints.first { isDirectory(rootfs + $0) } ?? ProbeScript.fallbackBindPoint
        let probeArguments = (helperPath.map { ["--bind", dirname($0) + ":" + bindPoint] } ?? [])
            + ["--", "/bin/sh", "-c", ProbeScript.text, "swiftlet-probe"]

        // 1. The measured run.
        let timedArguments: [String] = options.probe ? probeArguments : ["--"] + options.command
        let timedReportPath = work + "/container-timed.report"
        progress("container: swiftlet container run --rootfs \(rootfs) -- \(options.probe ? "(the probe script)" : options.command.joined(separator: " "))")
        side.timed = ChildProcess.run(base + ["--report", timedReportPath] + timedArguments, deadline: 120, workDirectory: work)
        side.timedReport = ReportFile(ChildProcess.readText(timedReportPath))

        // 2. The questions (probe mode: the measured run was the probe).
        if options.probe {
            side.probe = side.timed
            side.probeReport = side.timedReport
        } else {
            let probeReportPath = work + "/container-probe.report"
            progress("container: the probe script and helper in a second container")
            side.probe = ChildProcess.run(base + ["--report", probeReportPath] + probeArguments, deadline: 120, workDirectory: work)
            side.probeReport = ReportFile(ChildProcess.readText(probeReportPath))
        }
        side.answers = ProbeAnswers(side.probe?.stdout ?? "")

        // 3. System calls, in a traced copy of the measured run.
        if options.countSyscalls {
            if let strace = ChildProcess.which("strace") {
                let tracePath = work + "/container.strace", reportPath = work + "/container-traced.report"
                progress("container: the measured run again under strace -f, to count the workload's system calls")
                let traced = ChildProcess.run([strace, "-f", "-qq", "-o", tracePath, "--"] + base + ["--report", reportPath] + timedArguments,
                                              deadline: 120, workDirectory: work)
                if let report = ReportFile(ChildProcess.readText(reportPath)), let pid = report.integer("pid") {
                    let count = SyscallCount(straceOutput: ChildProcess.readText(tracePath), containerPID: pid)
                    if count.sawExec { side.syscalls = count } else { side.syscallProblem = "the traced run never executed the command" }
                } else {
                    side.syscallProblem = "the traced run did not start the command: " + (traced.lastErrorLine ?? "no report")
                }
            } else {
                side.syscallProblem = "strace is not installed (apt-get install strace)"
            }
        } else {
            side.syscallProblem = "not counted (--no-syscalls)"
        }
        return side
    }

    // MARK: The VM column

    static func runVM(_ options: CompareOptions, work: String, progress: (String) -> Void) -> VMSide {
        if let snapshot = options.vmSnapshot { return restoreVM(options, snapshot: snapshot, work: work, progress: progress) }
        var side = VMSide()
        let reportPath = work + "/vm.report"
        var arguments = [options.swiftlet, "boot", "--report", reportPath, "--memory", options.memory,
                         "--timeout", formatTimeout(options.timeout)]
        let directory = options.defaultLinuxDirectory
        let kernel = options.kernel ?? directory + "/bzImage"
        let initrd = options.initrd ?? directory + "/initramfs.cpio"
        let linux = !options.probe || (!options.tinyVM && (options.kernel != nil || (access(kernel, R_OK) == 0 && access(initrd, R_OK) == 0)))
        if !linux {
            arguments += ["--guest", "probe"]
            progress("vm: swiftlet boot --guest probe (\(options.tinyVM ? "--tiny-vm" : "no Linux kernel in \(directory)"): the probe tiny guest, which has no operating system)")
        } else {
            side.kernel = kernel
            side.initrd = initrd
            guard let base = ChildProcess.readBytes(initrd) else {
                side.failure = "cannot read the initramfs \(initrd): \(String(cString: strerror(errno))) (give --initrd, or build it with guest/linux/build.sh)"
                return side
            }
            let probeInitrd = work + "/initramfs-with-probe.cpio"
            if let failure = ChildProcess.writeBytes(probeInitramfs(base: base), to: probeInitrd) {
                side.failure = "cannot write \(probeInitrd): \(failure)"
                return side
            }
            arguments += ["--kernel", kernel, "--initrd", probeInitrd, "--cpus", String(options.cpus), "--"]
                + initArguments(options.probe ? [] : options.command)
            let slow = KVMSystem.backend().isHardware ? "" : " (this host's KVM is \(KVMSystem.backend().rawValue): the guest kernel runs in KVM's instruction emulator, expect about 20 s)"
            let what = options.probe ? "(the probe script)" : options.command.joined(separator: " ")
            progress("vm: swiftlet boot --kernel \(kernel) --initrd \(initrd)+probe -- \(what)\(slow)")
        }
        // The VMM stops the guest at --timeout; compare's own deadline is a backstop.
        let run = ChildProcess.run(arguments, deadline: options.timeout + 60, workDirectory: work)
        side.run = run
        side.serial = run.stdout
        side.report = ReportFile(ChildProcess.readText(reportPath))
        side.answers = ProbeAnswers(run.stdout)
        side.log = KernelLog(run.stdout)
        return side
    }

    /// `--vm-snapshot FILE`: the VM column restores a snapshot of the minimal Linux taken at its init's
    /// snapshot point and gives it the probe script's text as the command (`sh -c SCRIPT swiftlet-probe
    /// COMMAND`: the script is not in the snapshot's initramfs), so the command runs between the same markers
    /// and the same questions are answered as after a boot.
    static func restoreVM(_ options: CompareOptions, snapshot: String, work: String, progress: (String) -> Void) -> VMSide {
        var side = VMSide()
        side.restoredFrom = snapshot
        side.kernel = snapshot
        let reportPath = work + "/vm.report"
        let arguments = [options.swiftlet, "restore", snapshot, "--report", reportPath, "--timeout", formatTimeout(options.timeout), "--",
                         "/bin/sh", "-c", ProbeScript.text, "swiftlet-probe"] + options.command
        progress("vm: swiftlet restore \(snapshot) -- \(options.command.joined(separator: " ")) (restored from a snapshot, not booted)")
        let run = ChildProcess.run(arguments, deadline: options.timeout + 60, workDirectory: work)
        side.run = run
        side.serial = run.stdout
        side.report = ReportFile(ChildProcess.readText(reportPath))
        side.answers = ProbeAnswers(run.stdout)
        side.log = KernelLog(run.stdout)
        return side
    }

    /// The guest's initramfs with the probe script (/swiftlet-probe.sh) and helper (/swiftlet-probe-helper)
    /// appended as a second cpio archive.
    public static func probeInitramfs(base: [UInt8]) -> [UInt8] {
        var files = [Cpio.File(path: "/swiftlet-probe.sh", mode: 0o755, bytes: Array(ProbeScript.text.utf8))]
        if let helper = embedded("probe-helper") { files.append(Cpio.File(path: "/" + ProbeScript.helperName, mode: 0o755, bytes: helper)) }
        return Cpio.concatenate(base, Cpio.archive(files))
    }

    /// What guest/linux/init.c is asked to run (InitCommand: /swiftlet/argv in the initramfs).
    public static func initArguments(_ command: [String]) -> [String] {
        ["/bin/sh", "/swiftlet-probe.sh"] + command
    }

    // MARK: Helpers

    static func embedded(_ name: String) -> [UInt8]? {
        var size = 0
        guard let bytes = swiftlet_guest_image(name, &size), size > 0 else { return nil }
        return Array(UnsafeBufferPointer(start: bytes, count: size))
    }

    static func formatTimeout(_ seconds: Double) -> String {
        seconds == seconds.rounded() && abs(seconds) < 1e15 ? String(Int(seconds)) : String(seconds)
    }

    static func isDirectory(_ path: String) -> Bool {
        var s = stat()
        return stat(path, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR
    }

    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func makeWorkDirectory() -> String {
        var template = Array("/tmp/swiftlet-compare-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { return "/tmp" }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Removes the files compare wrote (one level of subdirectories), then the directory.
    static func removeTree(_ path: String) {
        guard path != "/tmp", let directory = opendir(path) else { return }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names {
            let full = path + "/" + name
            if unlink(full) != 0 { removeTree(full) }
        }
        rmdir(path)
    }
}
