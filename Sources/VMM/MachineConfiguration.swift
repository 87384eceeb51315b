// MachineConfiguration: everything `swiftlet boot` can be told, validated at the edge.
//
// Raw strings from the command line become typed values here ("64M" → bytes, "firmware" → BootMode),
// and every refusal is a one-line VMMError naming the option and what to give instead.
import Devices
import CGuestImages

public enum BootMode: String, Sendable, CaseIterable {
    /// The VMM puts the vCPU straight into the kernel's entry state (multiboot: 32-bit protected mode).
    case direct
    /// The vCPU starts at the reset vector in Swiftlet's firmware, which switches modes and enters the kernel.
    case firmware
}

/// What kind of kernel a file is, detected from its bytes.
public enum KernelFormat: String, Sendable {
    /// A multiboot (v1) ELF: the tiny guests, kvm-unit-tests style kernels.
    case multiboot
    /// A Linux bzImage entered through the 64-bit boot protocol at startup_64.
    case bzImage
    /// An ELF vmlinux entered at its PVH note (XEN_ELFNOTE_PHYS32_ENTRY).
    case pvh

    public var isLinux: Bool { self != .multiboot }
}

/// Which machine the guest gets.
public enum MachineModel: String, Sendable, CaseIterable {
    /// The standard PC every boot path gets: KVM's in-kernel irqchip (two 8259 PICs, the IOAPIC, a LAPIC
    /// per vCPU) and 8254 PIT, the 8250 on IRQ 4, the MC146818 RTC/CMOS, the i8042, and MP and ACPI tables.
    case pc
    /// Multiboot only: no interrupt controllers, no PIT, no RTC, no MP or ACPI tables, one vCPU (the machine
    /// multiboot guests had before the PC: the APIC page reads all ones). For measuring what the PC costs.
    case bare
}

/// A multiboot module (`--module FILE[,CMDLINE]`): a file the loader places in guest memory, and its string.
public struct ModuleSource: Sendable, Equatable {
    public var path: String
    public var commandLine: String
    public init(path: String, commandLine: String = "") { self.path = path; self.commandLine = commandLine }

    /// Parses `FILE[,CMDLINE]`: the string is everything after the first comma (it may hold more commas).
    public static func parse(_ text: String) throws(VMMError) -> ModuleSource {
        let path: Substring, line: Substring
        if let comma = text.firstIndex(of: ",") { path = text[..<comma]; line = text[text.index(after: comma)...] } else { path = Substring(text); line = "" }
        guard !path.isEmpty else { throw .invalidOption("--module \(text): give a file, optionally followed by ,CMDLINE") }
        return ModuleSource(path: String(path), commandLine: String(line))
    }
}

/// Which device is the guest's console.
public enum ConsoleKind: String, Sendable, CaseIterable {
    /// The 8250 UART on COM1 (Linux: console=ttyS0).
    case serial
    /// A virtio console (Linux: console=hvc0), on the transport `--virtio-transport` chooses.
    case virtio
}

/// How virtio devices reach the guest.
public enum VirtioTransportKind: String, Sendable, CaseIterable {
    /// virtio-mmio v2 register blocks announced on the kernel command line.
    case mmio
    /// virtio-pci (modern) functions behind a PCI host bridge.
    case pci
}

/// Where the host side of the virtio console's port 0 goes.
public enum ConsoleEndpoint: Sendable, Equatable {
    /// stdout, and stdin when it is a terminal or a pipe.
    case terminal
    /// Output appended to a file; no input.
    case file(String)
    /// A Unix socket the VMM listens on; one client at a time gets the output and provides the input.
    case socket(String)
}

public enum KernelSource: Sendable, Equatable {
    /// One of the tiny guests built into the binary (`embeddedGuests`: hello, doctor, syscalls, ...).
    case embedded(String)
    case file(String)

    public var displayName: String {
        switch self {
        case let .embedded(name): "embedded guest '\(name)'"
        case let .file(path): path
        }
    }
}

public struct MachineConfiguration: Sendable {
    public var kernel: KernelSource = .embedded("hello")
    public var memorySize: UInt64 = 64 << 20
    public var cpus: Int = 1
    /// The machine model (`--machine`): the PC, or the bare machine for multiboot speed measurements.
    public var machine: MachineModel = .pc
    /// Multiboot modules in order (`--module`, repeatable); a multiboot kernel's `--initrd` goes before them.
    public var modules: [ModuleSource] = []
    public var bootMode: BootMode = .direct
    /// Seconds before a still-running guest is stopped; nil for no limit.
    public var timeout: Double? = nil
    public var traceExits = false
    /// What --trace-exits prints (`--trace-exits=summary`, `=all`, `=io,mmio`...: ExitTraceSettings).
    public var exitTrace = ExitTraceSettings()
    /// The kernel command line the user gave (Linux: the VMM adds its own parameters in front).
    public var commandLine = ""
    /// Linux: an initramfs (cpio) to load beside the kernel.
    public var initrd: String? = nil
    /// Linux: the command the guest's init runs, passed after `--` on the kernel command line.
    public var initArguments: [String] = []
    /// Linux: apply the backend profile (on kvm_pvm: hide what KVM's emulator cannot run).
    public var backendProfile = true
    /// Linux: unpack an LZ4 bzImage's kernel on the host and enter it through its PVH note, instead of
    /// running the kernel's decompressor as guest code (`--decompress`).
    public var decompressKernel = false
    /// Values the lab ports 0x441... hand to the guest.
    public var labParameters: [UInt32] = []
    /// The guest's console device.
    public var console: ConsoleKind = .serial
    /// The transport of virtio devices (nil: not given, mmio).
    public var virtioTransport: VirtioTransportKind? = nil
    /// The host side of the virtio console.
    public var consoleEndpoint: ConsoleEndpoint = .terminal
    /// Use KVM_IOEVENTFD and KVM_IRQFD for virtio notifications where KVM has them (false: MMIO exits and
    /// KVM_IRQ_LINE, the fallback; SWIFTLET_VIRTIO_EVENTFD=0 sets it too).
    public var virtioEventFDs = true
    /// `--gdb`: where a gdb stub listens; the guest waits for gdb before its first instruction.
    public var gdb: GDBEndpoint? = nil
    /// How a multiboot guest's debug-exit value becomes the exit status (`--qemu-exit-status`: QEMU's rule).
    public var debugExitRule: DebugExitRule = .value
    /// `--snapshot FILE`: write a snapshot when the guest writes the snapshot marker, then stop.
    public var snapshotPath: String? = nil
    /// `--control-socket PATH`: a Unix socket taking one-line commands (pause, resume, snapshot PATH, ...).
    public var controlSocket: String? = nil
    /// Confine the VMM once the machine is built: no_new_privs, no capabilities, a seccomp allowlist per
    /// thread (Confinement.swift). On for `swiftlet boot` (BootArguments, BootCommand) unless --no-confine;
    /// off for a Machine run in code, whose process (a test runner) must not lose its capabilities.
    public var confine = false
    /// `--forward-signals`: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 go to the guest's command
    /// (the lab ports' signal mailbox, which the minimal Linux's init polls: kernel parameter
    /// `swiftlet.signals`) instead of stopping the VM; a second one while the first waits stops it as usual.
    /// `swiftlet-vm` boots with it, so that `kill` reaches the container's process.
    public var forwardSignals = false
    /// `--jail`: run the VMM as PID 1 of new PID, mount, network, IPC and UTS namespaces, pivoted into an
    /// empty tmpfs once the machine is built, as an unprivileged uid (BootRunner, CLinux confine.c).
    public var jail = false

    public init() {}

    /// The longest --timeout: 365 days. Anything longer is not a timeout, and a deadline in nanoseconds
    /// must stay far from 2^64 (`inf` or 1e308 seconds cannot be one).
    public static let maximumTimeout: Double = 365 * 86_400

    /// Checks a --timeout value: a positive number of seconds, at most `maximumTimeout`.
    public static func validateTimeout(_ seconds: Double, as text: String? = nil, option: String = "--timeout") throws(VMMError) {
        guard seconds > 0 else { throw .invalidOption("\(option) must be a positive number of seconds") }
        guard seconds <= maximumTimeout else {
            throw .invalidOption("\(option) \(text ?? "\(seconds)"): at most \(Int(maximumTimeout)) seconds (365 days)")
        }
    }

    /// Parses a size with an optional K/M/G suffix (powers of 1024), e.g. "64M", "1G"; a bare number is MiB,
    /// as QEMU's -m and lkvm's --mem read it ("64" = 64 MiB).
    public static func parseSize(_ text: String, option: String = "--memory") throws(VMMError) -> UInt64 {
        var digits = Substring(text)
        var shift: UInt64 = 20
        if let last = digits.last, !last.isNumber {
            digits = digits.dropLast()
            if digits.last == "i" || digits.last == "I" { digits = digits.dropLast() }
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw .invalidOption("\(option) \(text): not a size (give a number of MiB, or with K, M or G, e.g. 64M)")
            }
            switch last {
            case "K", "k": shift = 10
            case "M", "m": shift = 20
            case "G", "g": shift = 30
            default:
                throw .invalidOption("\(option) \(text): unknown unit '\(last)' (use K, M or G, e.g. 64M)")
            }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt64(digits) else {
            throw .invalidOption("\(option) \(text): not a size (give a number with K, M or G, e.g. 64M)")
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw .invalidOption("\(option) \(text): too large") }
        return bytes
    }

    /// A size as --memory spells it, exactly: "1 byte", "1000 bytes", "512K", "64M", "2G".
    public static func describeSize(_ bytes: UInt64) -> String {
        if bytes == 1 { return "1 byte" }
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes) bytes"
    }

    /// Embedded images that are not guests: the reset-vector firmware, and the probe helper (a Linux
    /// program `swiftlet compare --probe` runs in its container).
    public static let embeddedNonGuests: Set = ["firmware", "probe-helper"]

    /// Names of the guests built into the binary.
    public static var embeddedGuests: [String] {
        var names: [String] = []
        var index = 0
        while let name = swiftlet_guest_image_name(index) {
            let s = String(cString: name)
            if !embeddedNonGuests.contains(s) { names.append(s) }
            index += 1
        }
        return names
    }
}
