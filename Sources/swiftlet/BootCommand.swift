// `swiftlet boot`: build a VM from the options and run it; the exit status is the guest's debug-exit
// status (odd), 0 for a halt or reset, or one of Swiftlet's even statuses (see VMM/VMMError.swift).
import ArgumentParser
import Glibc
import VMM

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot a tiny guest (default: the embedded 'hello'), a multiboot kernel or Linux.",
        discussion: """
        Exit status: odd = the guest's debug-exit value v as (v << 1) | 1 (QEMU's isa-debug-exit rule), \
        0 = guest halted or reset, 2 = bad input, 4 = KVM unavailable or failed, 6 = guest crashed \
        (triple fault, emulation failure), 8 = timeout.
        """
    )

    @Option(help: "Kernel to boot: a multiboot ELF, a Linux bzImage, or a vmlinux with a PVH note. Default: the embedded tiny guest.")
    var kernel: String?

    @Option(help: "Boot one of the embedded tiny guests: \(MachineConfiguration.embeddedGuests.joined(separator: ", ")).")
    var guest: String?

    @Option(help: "Guest RAM, with K, M or G (powers of 1024).")
    var memory: String = "64M"

    @Option(help: "direct: the VMM sets the kernel's entry state; firmware: start at the reset vector in Swiftlet's firmware.")
    var boot: String = "direct"

    @Option(help: "Stop the guest after this many seconds (status 8).")
    var timeout: Double?

    @Option(help: "Linux: an initramfs (cpio) to load with the kernel.")
    var initrd: String?

    @Option(help: "Linux: number of vCPUs (1-\(MachineConfiguration.maximumCPUs)).")
    var cpus: Int = 1

    @Option(help: "Kernel command line (Linux: Swiftlet adds console=ttyS0 (or hvc0 and virtio_mmio.device=...) reboot=k panic=-1 and the backend profile in front).")
    var cmdline: String = ""

    @Option(help: "The guest's console: serial (the 8250 UART, Linux console=ttyS0) or virtio (virtio-console, Linux console=hvc0).")
    var console: String = "serial"

    @Option(help: "How virtio devices reach the guest: mmio (virtio-mmio, announced on the kernel command line) or pci.")
    var virtioTransport: String?

    @Option(help: "With --console virtio: listen on this Unix socket; its client gets the guest's console and types into it.")
    var consoleSocket: String?

    @Option(help: "With --console virtio: write the guest's console output to this file.")
    var consoleFile: String?

    @Flag(help: "Linux: do not add the backend profile's kernel parameters (on kvm_pvm: clearcpuid=..., noxsave, rodata=off).")
    var noBackendProfile = false

    @Flag(help: "Linux: unpack an LZ4 bzImage's kernel on the host and enter it through its PVH note (CONFIG_PVH) instead of running its decompressor in the guest.")
    var decompress = false

    @Argument(parsing: .postTerminator, help: "Linux: the command the guest's init runs (after --).")
    var command: [String] = []

    @Flag(help: "Print every VM exit and a table of exit counts and times at the end.")
    var traceExits = false

    @Flag(name: .shortAndLong, help: "Print what the VMM set up before the guest runs.")
    var verbose = false

    @Option(help: ArgumentHelp("Write a machine-readable run report (milestones, markers, VM exits, memory) to FILE.", valueName: "FILE"))
    var report: String?

    func run() throws {
        var arguments = BootArguments()
        var c = MachineConfiguration()
        do {
            c.memorySize = try MachineConfiguration.parseSize(memory)
            guard let mode = BootMode(rawValue: boot) else {
                throw VMMError.invalidOption("--boot \(boot): unknown boot mode (use direct or firmware)")
            }
            c.bootMode = mode
            if kernel != nil && guest != nil { throw VMMError.invalidOption("give --kernel or --guest, not both") }
            if let kernel { c.kernel = .file(kernel) } else if let guest { c.kernel = .embedded(guest) }
            try BootArguments.applyConsoleOptions(console: console, virtioTransport: virtioTransport,
                                                  socket: consoleSocket, file: consoleFile, to: &c)
        } catch let error as VMMError {
            printError("swiftlet: \(error)")
            throw ExitCode(error.exitStatus)
        }
        c.timeout = timeout
        c.traceExits = traceExits
        c.commandLine = cmdline
        c.initrd = initrd
        c.cpus = cpus
        c.initArguments = command
        c.backendProfile = !noBackendProfile
        c.decompressKernel = decompress
        arguments.configuration = c
        arguments.verbose = verbose
        arguments.reportPath = report
        throw ExitCode(BootRunner.run(arguments))
    }
}
