// `swiftlet boot`: build a VM from the options and run it; the exit status is the guest's debug-exit
// status (odd), 0 for a halt or reset, or one of Swiftlet's even statuses (see VMM/VMMError.swift).
import ArgumentParser
import Glibc
import VMM

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot a tiny guest (default: the embedded 'hello') or a multiboot kernel.",
        discussion: """
        Exit status: odd = the guest's debug-exit value v as (v << 1) | 1 (QEMU's isa-debug-exit rule), \
        0 = guest halted or reset, 2 = bad input, 4 = KVM unavailable or failed, 6 = guest crashed \
        (triple fault, emulation failure), 8 = timeout.
        """
    )

    @Option(help: "Kernel to boot: a multiboot ELF file. Default: the embedded tiny guest.")
    var kernel: String?

    @Option(help: "Boot one of the embedded tiny guests: \(MachineConfiguration.embeddedGuests.joined(separator: ", ")).")
    var guest: String?

    @Option(help: "Guest RAM, with K, M or G (powers of 1024).")
    var memory: String = "64M"

    @Option(help: "direct: the VMM sets the kernel's entry state; firmware: start at the reset vector in Swiftlet's firmware.")
    var boot: String = "direct"

    @Option(help: "Stop the guest after this many seconds (status 8).")
    var timeout: Double?

    @Option(help: "Kernel command line passed in the multiboot information.")
    var cmdline: String = ""

    @Flag(help: "Print every VM exit and a table of exit counts and times at the end.")
    var traceExits = false

    @Flag(name: .shortAndLong, help: "Print what the VMM set up before the guest runs.")
    var verbose = false

    func run() throws {
        var c = MachineConfiguration()
        do {
            c.memorySize = try MachineConfiguration.parseSize(memory)
            guard let mode = BootMode(rawValue: boot) else {
                throw VMMError.invalidOption("--boot \(boot): unknown boot mode (use direct or firmware)")
            }
            c.bootMode = mode
            if kernel != nil && guest != nil { throw VMMError.invalidOption("give --kernel or --guest, not both") }
            if let kernel { c.kernel = .file(kernel) } else if let guest { c.kernel = .embedded(guest) }
            c.timeout = timeout
            c.traceExits = traceExits
            c.commandLine = cmdline
            let machine = try Machine.build(c)
            if verbose { for line in machine.bootNotes { printError("swiftlet: \(line)") } }
            let outcome = machine.run()
            if traceExits { printError(machine.tracer.summary()) }
            if let message = outcome.message { printError("swiftlet: \(message)") }
            throw ExitCode(outcome.exitStatus)
        } catch let error as VMMError {
            printError("swiftlet: \(error)")
            throw ExitCode(error.exitStatus)
        }
    }
}
