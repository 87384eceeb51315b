// MachineOptions: the options that describe a machine, shared by `swiftlet boot` (which runs it) and
// `swiftlet explain` (which builds it and reads it back), so the two always take the same command line.
// Parsing of the values themselves lives in VMM (MachineConfiguration, BootArguments), shared with the
// lean front end's hand parser.
import ArgumentParser
import VMM

struct MachineOptions: ParsableArguments {
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

    @Option(help: "Linux: an initramfs (cpio) to load with the kernel; multiboot: module 0, as QEMU's -initrd.")
    var initrd: String?

    @Option(help: "Multiboot: a module FILE[,CMDLINE] to load after the kernel (repeatable, in order).")
    var module: [String] = []

    @Option(help: "Number of vCPUs (1-\(MachineConfiguration.maximumCPUs)); the application processors wait for INIT/SIPI.")
    var cpus: Int = 1

    @Option(help: "pc: interrupt controllers, PIT, RTC, MP and ACPI tables (default); bare: none of them (multiboot only).")
    var machine: String = "pc"

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

    @Flag(help: "Linux: do not add the backend profile's kernel parameters (on kvm_pvm: clearcpuid=..., noxsave, rodata=off, nopvspin, clocksource=kvm-clock).")
    var noBackendProfile = false

    @Flag(help: "Linux: unpack an LZ4 bzImage's kernel on the host and enter it through its PVH note (CONFIG_PVH) instead of running its decompressor in the guest.")
    var decompress = false

    @Flag(help: "Print every VM exit and a table of exit counts and times at the end.")
    var traceExits = false

    @Argument(parsing: .postTerminator, help: "Linux: the command the guest's init runs (after --).")
    var command: [String] = []

    /// The machine these options describe; a bad value is a VMMError naming the option.
    func configuration() throws(VMMError) -> MachineConfiguration {
        var c = MachineConfiguration()
        c.memorySize = try MachineConfiguration.parseSize(memory)
        guard let mode = BootMode(rawValue: boot) else {
            throw .invalidOption("--boot \(boot): unknown boot mode (use direct or firmware)")
        }
        c.bootMode = mode
        if kernel != nil && guest != nil { throw .invalidOption("give --kernel or --guest, not both") }
        if let kernel { c.kernel = .file(kernel) } else if let guest { c.kernel = .embedded(guest) }
        try BootArguments.applyConsoleOptions(console: console, virtioTransport: virtioTransport,
                                              socket: consoleSocket, file: consoleFile, to: &c)
        if let timeout { try MachineConfiguration.validateTimeout(timeout) }
        c.timeout = timeout
        c.traceExits = traceExits
        c.commandLine = cmdline
        c.initrd = initrd
        c.cpus = cpus
        guard let model = MachineModel(rawValue: machine) else { throw .invalidOption("--machine \(machine): unknown machine (use pc or bare)") }
        c.machine = model
        for m in module { c.modules.append(try ModuleSource.parse(m)) }
        c.initArguments = command
        c.backendProfile = !noBackendProfile
        c.decompressKernel = decompress
        return c
    }
}
