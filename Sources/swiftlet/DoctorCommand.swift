// `swiftlet doctor`: is /dev/kvm usable, which backend, and how fast guest kernel and user code run.
import ArgumentParser
import VMM

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check /dev/kvm, name its backend, and measure guest CPL0 vs CPL3 speed.",
        discussion: "Exit status: 0 all well, 4 /dev/kvm unusable, 6 the speed test failed."
    )

    @Flag(help: "Skip the speed test.")
    var noSpeedTest = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() throws {
        throw ExitCode(BootRunner.doctor(runSpeedTest: !noSpeedTest, json: json))
    }
}
