// swiftlet: the command-line front end. It only parses and wires; the work is in the libraries.
// One file per subcommand: BootCommand.swift, ExplainCommand.swift, DoctorCommand.swift, ContainerCommand.swift,
// CompareCommand.swift, ManualCommand.swift (the man page; shell completion is
// ArgumentParser's --generate-completion-script, with boot's and explain's words completed from BootOptions).
//
// Usage errors end with status 2 (ExitStatus.badInput), like every other bad input, not ArgumentParser's 64;
// a mistyped subcommand gets the closest name, as a mistyped option does.
import ArgumentParser
import Glibc
import VMM

@main
struct Swiftlet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftlet",
        abstract: "A tiny KVM hypervisor and container launcher: run the same thing both ways and see the difference.",
        version: SwiftletVersion.line,
        subcommands: [BootCommand.self, RestoreCommand.self, ExplainCommand.self, DoctorCommand.self, ContainerCommand.self, CompareCommand.self,
                      ManualCommand.self]
    )

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, !first.hasPrefix("-"), first != "help" {
            let names = subcommandNames
            if !names.contains(first) && first != ManualCommand.configuration.commandName {
                let hint = BootOptions.suggestion(for: first, among: names).map { " (did you mean \($0)?)" } ?? ""
                printError("swiftlet: unknown subcommand '\(first)'\(hint); the subcommands are \(names.joined(separator: ", "))")
                Glibc.exit(ExitStatus.badInput)
            }
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success && !(error is ExitCode) {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            if code == .validationFailure {
                printError("swiftlet: " + message(for: error) + " (see swiftlet \(arguments.first.map { "\($0) " } ?? "")--help)")
                Glibc.exit(ExitStatus.badInput)
            }
            exit(withError: error)
        }
    }

    /// The names of the subcommands, for suggestions and shell completion.
    static var subcommandNames: [String] {
        configuration.subcommands.filter { $0.configuration.shouldDisplay }.compactMap { $0.configuration.commandName } + ["help"]
    }
}
