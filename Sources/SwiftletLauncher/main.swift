// swiftlet: the lean front end. `boot`, `restore`, `doctor`, `container run` and the OCI runtime (`oci`, or this binary
// run as swiftlet-runtime / swiftlet-vm) run here, with the VMM and the container launcher linked in but no
// ArgumentParser and no Foundation, so they cost the least time and memory (see docs/benchmarks.md).
// `boot`'s options come from the one table in VMM (BootOptions), which swiftlet-cli reads too, so both
// parse, explain and reject them alike. Every other subcommand is handed unchanged to `swiftlet-cli` (the
// swift-argument-parser CLI) by execv: the copy beside this binary, else the one on PATH.
import Container
import Glibc
import VMM

let arguments = Array(CommandLine.arguments.dropFirst())

// The OCI runtime (podman, conmon and containerd call `RUNTIME [global options] create ...`): by the
// name this binary was run as (swiftlet-runtime, swiftlet-vm: symlinks to swiftlet), or `swiftlet oci`.
let invokedAs = CommandLine.arguments.first?.split(separator: "/").last.map(String.init) ?? ""
if invokedAs.hasPrefix("swiftlet-runtime") { exit(OCIRuntime.main(arguments, mode: .process)) }
if invokedAs.hasPrefix("swiftlet-vm") { exit(OCIRuntime.main(arguments, mode: .vm)) }

switch arguments.first {
case "oci":
    let rest = Array(arguments.dropFirst())
    if rest.first == "--vm" { exit(OCIRuntime.main(Array(rest.dropFirst()), mode: .vm)) }
    exit(OCIRuntime.main(rest, mode: .process))
case "oci-vm-boot":
    exit(OCIVirtualMachineBoot.main(Array(arguments.dropFirst())))
case "boot":
    do {
        let parsed = try BootArguments.parse(Array(arguments.dropFirst()))
        if parsed.helpRequested {
            ConsoleOutput.writeAll(1, Array(BootOptions.helpText(for: "boot").utf8))
            exit(0)
        }
        exit(BootRunner.run(parsed))
    } catch {
        printError("swiftlet: \(error)")
        exit(error.exitStatus)
    }
case "restore":
    do {
        if let parsed = try RestoreArguments.parse(Array(arguments.dropFirst())) { exit(RestoreRunner.run(parsed)) }
    } catch {
        printError("swiftlet: \(error)")
        exit(error.exitStatus)
    }
case "doctor":
    let rest = Array(arguments.dropFirst())
    var speedTest = true, json = false, known = true
    for word in rest {
        switch word {
        case "--no-speed-test": speedTest = false
        case "--json": json = true
        default: known = false
        }
    }
    if known { exit(BootRunner.doctor(runSpeedTest: speedTest, json: json)) }
case "--version", "version":
    if arguments.count == 1 {
        ConsoleOutput.writeAll(1, Array((SwiftletVersion.line + "\n").utf8))
        exit(0)
    }
case "container":
    if let status = ContainerCLI.fastPath(arguments) { exit(status) }
default:
    break
}

// Hand over to swiftlet-cli: the one next to this executable, else the first on PATH.
func executable(_ path: String) -> Bool { access(path, X_OK) == 0 }
var buffer = [CChar](repeating: 0, count: 4096)
let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
var directory = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
if let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) } else { directory = "." }
var cli = directory + "/swiftlet-cli"
if !executable(cli), let path = getenv("PATH") {
    for entry in String(cString: path).split(separator: ":") where executable("\(entry)/swiftlet-cli") {
        cli = "\(entry)/swiftlet-cli"
        break
    }
}
let argv = (["swiftlet"] + arguments).map { strdup($0) } + [nil]
execv(cli, argv)
printError("swiftlet: this subcommand needs swiftlet-cli, which is neither beside \(directory)/swiftlet nor on PATH (./setup.sh installs both; or `swift build --product swiftlet-cli`)")
exit(ExitStatus.badInput)
