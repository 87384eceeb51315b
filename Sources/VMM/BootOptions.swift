// BootOptions: the one definition of `swiftlet boot`'s and `swiftlet explain`'s command line: each option's
// names, its value, its help line, what completes it and which subcommands take it. Everything that shows or
// reads these options is driven from this table: the parser (BootArguments.parse, used by the lean front end
// and by swiftlet-cli alike), `--help`, the "did you mean" suggestions, the man page and the shell completion.
// What a value means is applied in BootArguments.apply (BootRunner.swift), one switch over the table's names.
// Usage errors are VMMError.usage: one line, exit status 2 (ExitStatus.badInput), like every other bad input.

/// One command-line option.
public struct OptionDefinition: Sendable {
    /// What the shell should offer for the option's value.
    public enum Completion: Sendable, Equatable {
        case none
        case file
        case guestName
        case choices([String])
    }

    /// Which subcommands take the option: both, or only `boot` (things that need the guest to run).
    public enum Scope: Sendable, Equatable { case machine, runOnly }

    /// The long name ("--memory"); `short` is a one-letter alias ("-v").
    public let name: String
    public let short: String?
    /// The value's placeholder in help ("SIZE"); nil for a flag.
    public let valueName: String?
    /// A flag that may also be given as `--name=VALUE` (`--trace-exits=summary`): the value's placeholder.
    public let inlineValueName: String?
    public let help: String
    public let completion: Completion
    public let scope: Scope
    /// May be given more than once (each value kept, in order).
    public let repeatable: Bool

    public init(_ name: String, short: String? = nil, value: String? = nil, inlineValue: String? = nil, help: String,
                completion: Completion = .none, scope: Scope = .machine, repeatable: Bool = false) {
        self.name = name
        self.short = short
        self.valueName = value
        self.inlineValueName = inlineValue
        self.help = help
        self.completion = completion
        self.scope = scope
        self.repeatable = repeatable
    }

    public var isFlag: Bool { valueName == nil }
}

/// `swiftlet boot` and `swiftlet explain`: the table, and the text generated from it.
public enum BootOptions {
    public static let all: [OptionDefinition] = [
        OptionDefinition("--kernel", value: "PATH", help: "Kernel to boot: a multiboot (v1) ELF, a Linux bzImage, or a vmlinux with a PVH note. Default: the embedded hello guest.", completion: .file),
        OptionDefinition("--guest", value: "NAME", help: "Boot one of the embedded tiny guests: \(MachineConfiguration.embeddedGuests.joined(separator: ", ")).", completion: .guestName),
        OptionDefinition("--memory", value: "SIZE", help: "Guest RAM: a number of MiB (64), or with K, M or G (powers of 1024). Default 64M.", completion: .none),
        OptionDefinition("--boot", value: "MODE", help: "direct: the VMM sets the kernel's entry state (default); firmware: start at the reset vector in Swiftlet's firmware.", completion: .choices(["direct", "firmware"])),
        OptionDefinition("--cpus", value: "N", help: "Number of vCPUs (1-\(MachineConfiguration.maximumCPUs)); the application processors wait for INIT/SIPI.", completion: .none),
        OptionDefinition("--machine", value: "MODEL", help: "pc: interrupt controllers, PIT, RTC, MP and ACPI tables (default); bare: none of them (multiboot only).", completion: .choices(["pc", "bare"])),
        OptionDefinition("--initrd", value: "PATH", help: "Linux: an initramfs (cpio) to load with the kernel; multiboot: module 0, as QEMU's -initrd.", completion: .file),
        OptionDefinition("--module", value: "FILE[,CMDLINE]", help: "Multiboot: a module to load after the kernel (repeatable, in order).", completion: .file, repeatable: true),
        OptionDefinition("--cmdline", value: "TEXT", help: "Kernel command line (Linux: Swiftlet adds console=..., reboot=k panic=-1 and the backend profile in front).", completion: .none),
        OptionDefinition("--console", value: "KIND", help: "The guest's console: serial (the 8250 UART, Linux console=ttyS0; default) or virtio (virtio-console, Linux console=hvc0).", completion: .choices(["serial", "virtio"])),
        OptionDefinition("--virtio-transport", value: "KIND", help: "How virtio devices reach the guest: mmio (announced on the kernel command line) or pci.", completion: .choices(["mmio", "pci"])),
        OptionDefinition("--console-socket", value: "PATH", help: "With --console virtio: listen on this Unix socket; its client gets the guest's console and types into it.", completion: .file),
        OptionDefinition("--console-file", value: "PATH", help: "With --console virtio: write the guest's console output to this file.", completion: .file),
        OptionDefinition("--no-backend-profile", help: "Linux: do not add the backend profile's kernel parameters (on kvm_pvm: clearcpuid=..., rodata=off, nopvspin, ...)."),
        OptionDefinition("--decompress", help: "Linux: unpack an LZ4 bzImage's kernel on the host and enter it through its PVH note instead of running its decompressor in the guest."),
        OptionDefinition("--timeout", value: "SECONDS", help: "Stop the guest after this many seconds (status 8).", scope: .runOnly),
        OptionDefinition("--trace-exits", inlineValue: "WORDS", help: "Print the VM exits (repeats of one register folded into one line) and a table of exit counts and times at the end. --trace-exits=summary: the table only; =all: every exit on its own line; =\(ExitTraceSettings.kindWords.map(\.word).joined(separator: ",")): only those kinds (words combine).", completion: .choices(["summary", "all"] + ExitTraceSettings.kindWords.map(\.word)), scope: .runOnly),
        OptionDefinition("--report", value: "FILE", help: "Write a JSON run report (milestones, markers, VM exits, memory, how the run ended) to FILE.", completion: .file, scope: .runOnly),
        OptionDefinition("--gdb", value: "ADDRESS", help: "Wait for gdb on ADDRESS before the first instruction: 127.0.0.1:PORT (:PORT, PORT; 0 picks a free port) or a Unix socket path. Loopback only.", scope: .runOnly),
        OptionDefinition("--snapshot", value: "FILE", help: "Write a snapshot to FILE when the guest writes the snapshot marker (the minimal Linux's init: when it is ready for a command), then stop; SIGQUIT writes it at once. Restore it with `swiftlet restore FILE`.", completion: .file, scope: .runOnly),
        OptionDefinition("--control-socket", value: "PATH", help: "Take one-line commands on a Unix socket at PATH: pause, resume, snapshot FILE, status, stop. SIGUSR1 pauses, SIGUSR2 resumes.", completion: .file, scope: .runOnly),
        OptionDefinition("--qemu-exit-status", help: "End with QEMU's isa-debug-exit status, (v << 1) | 1 for a guest that wrote v, instead of v itself.", scope: .runOnly),
        OptionDefinition("--forward-signals", help: "Linux: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 go to the guest's command (Swiftlet's init sends them on) instead of stopping the VM; a second signal before the guest took the first stops the VM. swiftlet-vm uses it for kill."),
        OptionDefinition("--no-confine", help: "Do not confine the VMM (per-thread seccomp allowlists, no capabilities, no_new_privs): for debugging under strace or gdb. See docs/hardening.md.", scope: .runOnly),
        OptionDefinition("--jail", help: "Run the VMM jailed: PID 1 of new PID, mount, network, IPC and UTS namespaces, its root an empty tmpfs once the machine is built, as uid 65534 with /dev/kvm's group. Needs root.", scope: .runOnly),
        OptionDefinition("--verbose", short: "-v", help: "Print what the VMM set up (the recipe's notes); after the run, exit counts and the boot timeline."),
    ]

    /// The options `subcommand` ("boot" or "explain") takes.
    public static func options(for subcommand: String) -> [OptionDefinition] {
        subcommand == "boot" ? all : all.filter { $0.scope == .machine }
    }

    /// The definition a command-line word names ("--memory", "-v"), if any.
    public static func definition(named word: String, for subcommand: String) -> OptionDefinition? {
        options(for: subcommand).first { $0.name == word || $0.short == word }
    }

    public static func abstract(for subcommand: String) -> String {
        subcommand == "boot"
            ? "Boot a tiny guest (default: the embedded hello), a multiboot kernel or Linux."
            : "Build the VM `swiftlet boot` would build, without running it, and explain what the guest gets."
    }

    /// What `swiftlet boot` exits with, for help and the man page.
    public static let exitStatusText = """
        0 the guest ended well (it wrote 0 to the debug-exit port, halted, or reset; a Linux guest's command \
        exited 0); 1-255 a multiboot guest's debug-exit value, or a Linux guest's command's status; \
        2 bad input; 4 KVM unavailable or failed; 6 the guest crashed (triple fault, emulation failure, \
        kernel panic); 8 timeout; 128+N stopped by signal N (159: a VMM thread made a system call outside its \
        seccomp allowlist, named on the line before). --qemu-exit-status gives QEMU's (v << 1) | 1 \
        for a debug-exit value v instead. One line on stderr always says how the guest ended.
        """

    /// `swiftlet boot --help` / `swiftlet explain --help`, laid out from the table.
    public static func helpText(for subcommand: String) -> String {
        "OVERVIEW: \(abstract(for: subcommand))\n\n" + helpBody(for: subcommand)
    }

    /// The help without its overview line (what `swiftlet help boot` shows under ArgumentParser's own).
    public static func helpBody(for subcommand: String) -> String {
        var out = "USAGE: swiftlet \(subcommand) [OPTIONS]\(subcommand == "boot" ? " [-- COMMAND ...]" : "")\n\n"
        out += "OPTIONS:\n"
        for option in options(for: subcommand) {
            var left = option.short.map { "\($0), " } ?? ""
            left += option.name
            if let value = option.valueName { left += " \(value)" }
            if let value = option.inlineValueName { left += "[=\(value)]" }
            out += "  " + left.padding(to: 28) + wrap(option.help, width: 72, indent: 30) + "\n"
        }
        out += "  " + "-h, --help".padding(to: 28) + "Show this help.\n"
        if subcommand == "boot" {
            out += "\n  -- COMMAND ...                Linux: the command the guest's init runs (needs --kernel and --initrd).\n"
            out += "\nEXIT STATUS:\n" + "  " + wrap(exitStatusText, width: 96, indent: 2) + "\n"
        } else {
            out += "\nNothing runs: the machine is built and read back. Exit status: 0, or what `swiftlet boot` gives for the same bad input.\n"
        }
        return out
    }

    /// The closest name in `candidates` to a mistyped `word`, if it is close enough to be a likely typo.
    public static func suggestion(for word: String, among candidates: [String]) -> String? {
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let d = editDistance(Array(word.utf8), Array(candidate.utf8))
            if d < (best?.distance ?? Int.max) { best = (candidate, d) }
        }
        guard let best, best.distance <= max(2, best.name.utf8.count / 3) else { return nil }
        return best.name
    }

    /// Levenshtein distance between two byte strings.
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// Wraps `text` at `width` columns; continuation lines are indented by `indent` spaces.
    static func wrap(_ text: String, width: Int, indent: Int) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.utf8.count + 1 + word.utf8.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        let pad = String(repeating: " ", count: indent)
        return lines.joined(separator: "\n" + pad)
    }
}

extension String {
    /// The string padded with spaces to `width` columns, or followed by a newline and `width` spaces if longer.
    func padding(to width: Int) -> String {
        let n = utf8.count
        return n < width ? self + String(repeating: " ", count: width - n) : self + "\n" + String(repeating: " ", count: width + 2)
    }
}

/// The version `swiftlet --version` prints.
public enum SwiftletVersion {
    public static let number = "0.6.0"
    public static var line: String { "swiftlet \(number) (KVM API 12; the VMM and the container launcher in one binary, swiftlet-cli beside it)" }
}
