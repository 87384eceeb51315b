// CompareSnapshotTests: `swiftlet compare --vm-snapshot FILE` must never present a restore as a boot. The
// views are rendered from a comparison whose VM column was restored (no VM needed), and every one names the
// restore; the options that cannot go with a snapshot are refused.
@testable import Compare
import Testing
import TestSupport

@Suite struct CompareSnapshotTests {
    func restoredComparison() -> Comparison {
        var vm = Column(id: "vm", title: "VM (swiftlet restore linux.snap: minimal Linux restored from a snapshot, not booted)")
        vm.restoredFrom = "linux.snap"
        vm.completed = true
        vm.commandStatus = 0
        vm.timeline = [TimelineMark(name: "VMM started restoring the machine from its snapshot", milliseconds: 1),
                       TimelineMark(name: "command starts (marker 5)", milliseconds: 120)]
        var container = Column(id: "container", title: "container (swiftlet container run)")
        container.completed = true
        container.commandStatus = 0
        let row = Row(id: "time_to_first_instruction", label: "time to the command's first instruction", group: .startup,
                      cells: ["container": .measured("12 ms", number: 12, unit: "ms", source: "test"),
                              "vm": .measured("120 ms", number: 120, unit: "ms", source: "test")])
        return Comparison(mode: .command, command: ["true"], backend: "kvm_pvm", backendNote: nil,
                          columns: [container, vm, Column(id: "host", title: "host (reference)")], rows: [row])
    }

    @Test func everyViewSaysTheVMWasRestored() {
        let comparison = restoredComparison()
        #expect(comparison.column("vm")?.shortName == "VM (restored)")
        let text = comparison.text(showSources: false)
        #expect(text.contains("VM (restored) 120 ms"), "\(text)")
        #expect(text.contains("restored from a snapshot, not booted"), "\(text)")
        #expect(comparison.json.contains("\"restored_from\": \"linux.snap\"") || comparison.json.contains("\"restored_from\":\"linux.snap\""), "\(comparison.json)")
        #expect(comparison.html().contains("VM (restored)"))
        let booted = { var c = comparison; c.columns[1].restoredFrom = nil; return c }()
        #expect(!booted.text(showSources: false).contains("(restored)"), "a booted VM is not called restored")
    }

    @Test func probeAndKernelOptionsAreRefusedWithASnapshot() {
        let probe = ProcessRunner.run(ProcessRunner.swiftletPath, ["compare", "--vm-snapshot", "x.snap", "--probe"])
        #expect(probe.status == 2 && probe.stderr.contains("--vm-snapshot runs a command"), "\(probe.stderr)")
        let kernel = ProcessRunner.run(ProcessRunner.swiftletPath, ["compare", "--vm-snapshot", "x.snap", "--kernel", "k", "--", "true"])
        #expect(kernel.status == 2 && kernel.stderr.contains("leave out --kernel and --initrd"), "\(kernel.stderr)")
    }
}
