// `swiftlet boot`: build a VM from the options and run it. The options are not declared here: they come from
// the one table in VMM (BootOptions), which the lean front end parses with the same BootArguments.parse, so
// `swiftlet boot` and `swiftlet-cli boot` accept, reject and explain exactly the same words.
import ArgumentParser
import Glibc
import VMM

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: BootOptions.abstract(for: "boot"),
        discussion: BootOptions.helpBody(for: "boot")
    )

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The options above, and -- COMMAND for a Linux guest.", valueName: "options"),
              completion: .custom { words, index, prefix in BootCompletion.candidates(subcommand: "boot", words: words, index: index, prefix: prefix) })
    var arguments: [String] = []

    func run() throws {
        throw ExitCode(Self.run(arguments))
    }

    /// Parses `arguments` with BootOptions' table and runs the machine; prints help or the usage error.
    static func run(_ arguments: [String]) -> Int32 {
        do {
            let parsed = try BootArguments.parse(arguments)
            if parsed.helpRequested {
                print(BootOptions.helpText(for: "boot"), terminator: "")
                return 0
            }
            return BootRunner.run(parsed)
        } catch {
            printError("swiftlet: \(error)")
            return error.exitStatus
        }
    }
}
