// swiftlet: the lean front end. `boot`, `restore`, `doctor` and `container run` run here, parsed by hand, with the VMM
// and the container launcher linked in but no ArgumentParser and no Foundation, so they cost the least
// time and memory (see
// docs/benchmarks.md). Every other subcommand, --help, and anything this parser does not recognise is
// handed unchanged to `swiftlet-cli` (the swift-argument-parser CLI installed beside this binary) by execv.
import Container
import Glibc
import VMM

let arguments = Array(CommandLine.arguments.dropFirst())

switch arguments.first {
case "boot":
    do {
        if let parsed = try BootArguments.parse(Array(arguments.dropFirst())) { exit(BootRunner.run(parsed)) }
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
    let rest = arguments.dropFirst()
    if rest.isEmpty { exit(BootRunner.doctor(runSpeedTest: true)) }
    if Array(rest) == ["--no-speed-test"] { exit(BootRunner.doctor(runSpeedTest: false)) }
case "container":
    if let status = ContainerCLI.fastPath(arguments) { exit(status) }
default:
    break
}

// Hand over to swiftlet-cli, found next to this executable.
var buffer = [CChar](repeating: 0, count: 4096)
let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
var directory = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
if let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) } else { directory = "." }
let cli = directory + "/swiftlet-cli"
let argv = (["swiftlet"] + arguments).map { strdup($0) } + [nil]
execv(cli, argv)
printError("swiftlet: cannot run \(cli): \(String(cString: strerror(errno))) (build it with `swift build --product swiftlet-cli`)")
exit(ExitStatus.badInput)
