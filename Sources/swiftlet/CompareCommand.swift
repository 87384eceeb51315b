// `swiftlet compare`: run the same work as a container and in a microVM and show both side by side. This
// file only parses and wires; the runs, measurements and renderers are the Compare library.
import ArgumentParser
import Compare
import Glibc
import VMM

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run COMMAND as a container and in a VM and compare them side by side (or --probe: ask both the same questions).",
        discussion: """
        The container runs with `swiftlet container run --rootfs DIR`; the VM boots the minimal Linux kernel \
        (guest/linux) with the initramfs built from the same rootfs (with --probe, the probe script and helper \
        run in its user space), or with --probe --tiny-vm (or no kernel) the probe tiny guest. Every \
        value is measured; a value that could not be measured says why. Exit status: 0 when both columns ran to \
        the end with status 0, 1 when a column failed (the report still shows both), 2 for bad usage.
        """
    )

    @Flag(help: "Ask a probe container and the VM (the minimal Linux's user space) the same questions instead of running a command.")
    var probe = false

    @Flag(name: .customLong("tiny-vm"), help: "With --probe: ask the probe tiny guest (no operating system, a 30 KB multiboot kernel) instead of the minimal Linux.")
    var tinyVM = false

    @Option(help: ArgumentHelp("Linux kernel for the VM (default: $SWIFTLET_LINUX_DIR or guest/linux/out, bzImage).", valueName: "FILE"))
    var kernel: String?

    @Option(help: ArgumentHelp("Initramfs for the VM (default: initramfs.cpio beside the default kernel).", valueName: "FILE"))
    var initrd: String?

    @Option(help: ArgumentHelp("Root filesystem for the container (default: guest/rootfs/out/rootfs).", valueName: "DIR"))
    var rootfs: String?

    @Option(help: "Guest RAM for the VM, with K, M or G.")
    var memory: String = "64M"

    @Option(help: "vCPUs for the Linux VM.")
    var cpus: Int = 1

    @Option(help: "Stop the VM after this many seconds.")
    var timeout: Double = 600

    @Flag(name: .customLong("no-syscalls"), help: "Do not run the container a third time under strace to count its system calls.")
    var noSyscalls = false

    @Flag(help: "Print the comparison as JSON (schema swiftlet-compare/1, docs/compare-schema.json) instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("Also write a self-contained HTML page with charts to FILE.", valueName: "FILE"))
    var html: String?

    @Flag(help: "In the table, show under each value how it was measured.")
    var sources = false

    @Flag(name: .shortAndLong, help: "Do not print progress lines on stderr.")
    var quiet = false

    @Option(name: .customLong("vm-snapshot"), help: ArgumentHelp("Restore the VM from this snapshot (`swiftlet boot --snapshot`, docs/10-snapshots.md) instead of booting it; every view says the VM was restored.", valueName: "FILE"))
    var vmSnapshot: String?

    @Argument(parsing: .postTerminator, help: "The command to run on both sides (after --).")
    var command: [String] = []

    /// What is wrong with the options, in one line; nil when nothing is.
    var usageProblem: String? {
        if probe && !command.isEmpty { return "give --probe or a command after --, not both" }
        if tinyVM && !probe { return "--tiny-vm goes with --probe" }
        if vmSnapshot != nil && probe { return "--vm-snapshot runs a command (the probe's helper is not inside a snapshot's guest): give -- COMMAND" }
        if vmSnapshot != nil && (kernel != nil || initrd != nil) { return "--vm-snapshot restores its own kernel and initramfs: leave out --kernel and --initrd" }
        if !probe && command.isEmpty { return "give a command after -- (e.g. -- uname -r), or --probe" }
        if cpus < 1 { return "--cpus \(cpus): give 1 or more" }
        do { try MachineConfiguration.validateTimeout(timeout) } catch { return error.description }
        return nil
    }

    func run() throws {
        if let problem = usageProblem {
            Self.printError("swiftlet compare: \(problem)")
            throw ExitCode(2)
        }
        var options = CompareOptions(swiftlet: Self.swiftletExecutable())
        options.probe = probe
        options.tinyVM = tinyVM
        options.command = command
        options.kernel = kernel
        options.initrd = initrd
        options.rootfs = rootfs
        options.memory = memory
        options.cpus = cpus
        options.timeout = timeout
        options.countSyscalls = !noSyscalls
        options.vmSnapshot = vmSnapshot
        // A command needs the Linux guest on the VM side: say so now rather than fill every VM cell with "unavailable".
        if !probe && vmSnapshot == nil {
            let directory = options.defaultLinuxDirectory
            for (given, path, what) in [(kernel, directory + "/bzImage", "--kernel"), (initrd, directory + "/initramfs.cpio", "--initrd")]
            where given == nil && access(path, R_OK) != 0 {
                Self.printError("swiftlet compare: -- COMMAND runs in a Linux VM, and there is no \(path): build the minimal Linux guest with guest/linux/build.sh, or give \(what) (compare --probe works without it)")
                throw ExitCode(2)
            }
        }
        let quiet = self.quiet
        let comparison = CompareRunner.run(options) { line in
            if !quiet { Self.printError("swiftlet compare: \(line)") }
        }
        if let html {
            if let failure = ChildProcess.writeBytes(Array(comparison.html().utf8), to: html) {
                Self.printError("swiftlet compare: cannot write \(html): \(failure)")
                throw ExitCode(2)
            }
            if !quiet { Self.printError("swiftlet compare: wrote \(html)") }
        }
        print(json ? comparison.json : comparison.text(showSources: sources), terminator: "")
        throw ExitCode(comparison.exitStatus)
    }

    /// The lean `swiftlet` beside this executable (it runs `boot` and `container run` itself); this one if absent.
    static func swiftletExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        let directory = exe.lastIndex(of: "/").map { String(exe[..<$0]) } ?? "."
        let lean = directory + "/swiftlet"
        return access(lean, X_OK) == 0 ? lean : exe
    }

    static func printError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
