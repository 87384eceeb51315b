// swiftlet: the command-line front end. It only parses and wires; the work is in the libraries.
// One file per subcommand: BootCommand.swift, ExplainCommand.swift, DoctorCommand.swift, ContainerCommand.swift,
// CompareCommand.swift.
import ArgumentParser

@main
struct Swiftlet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftlet",
        abstract: "A tiny KVM hypervisor and container launcher: run the same thing both ways and see the difference.",
        subcommands: [BootCommand.self, RestoreCommand.self, ExplainCommand.self, DoctorCommand.self, ContainerCommand.self, CompareCommand.self]
    )
}
