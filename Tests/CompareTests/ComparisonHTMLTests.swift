// Tests of the page `swiftlet compare --html` writes, from a Comparison built here (no runs): it fits a phone
// (viewport meta, a narrow-screen layout), follows the reader's dark setting, gives each memory legend entry
// its own colour in both schemes, says next to the start-up chart what the VM side boots, and writes a reason
// shared by several visibility cells once, as a note.
@testable import Compare
import Testing

@Suite struct ComparisonHTMLTests {
    static let tinyReason = "the probe guest has no operating system: no processes, files, hostname or kernel"

    /// A probe comparison with a tiny-guest VM column: measured memory, one visible and five hidden container
    /// cells, six VM cells unavailable for the same reason.
    static func comparison(vmGuest: String?) -> Comparison {
        var rows = [
            Row(id: "memory_runtime", label: "launcher / VMM process, peak resident memory", group: .memory,
                cells: ["container": .measured("7.9 MiB", number: 8090, unit: "KiB", source: "wait4"),
                        "vm": .measured("8.1 MiB", number: 8294, unit: "KiB", source: "wait4")]),
            Row(id: "memory_workload", label: "the workload's memory on the host", group: .memory,
                cells: ["container": .measured("1.6 MiB", number: 1638, unit: "KiB", source: "cgroup"),
                        "vm": .measured("32 KiB", number: 32, unit: "KiB", source: "mincore")]),
        ]
        for id in ["kernel_release", "host_processes", "hostname", "dev_kvm", "host_mounts", "kernel_modules"] {
            rows.append(Row(id: id, label: id, group: .visibility,
                            cells: ["container": .measured("answer to \(id)", source: "the probe", hostVisible: id == "kernel_release"),
                                    "vm": .unavailable(tinyReason)]))
        }
        var container = Column(id: "container", title: "container (swiftlet container run)")
        container.timeline = [TimelineMark(name: "launcher started", milliseconds: 0.7), TimelineMark(name: "launcher exited", milliseconds: 4.5)]
        var vm = Column(id: "vm", title: "VM (swiftlet boot --guest probe)")
        vm.timeline = [TimelineMark(name: "first KVM_RUN", milliseconds: 8.2), TimelineMark(name: "VMM exited", milliseconds: 52)]
        return Comparison(mode: .probe, command: [], backend: "kvm_pvm", backendNote: nil,
                          columns: [container, vm, Column(id: "host", title: "host (reference)")], rows: rows, vmGuest: vmGuest)
    }

    static let page = comparison(vmGuest: Comparison.describeVMGuest(VMSide())).html()

    /// The custom properties a CSS block sets: "--vm" → "#c2571a".
    static func properties(_ block: Substring) -> [String: String] {
        var result: [String: String] = [:]
        for declaration in block.split(separator: ";") {
            let parts = declaration.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let name = parts[0].split(separator: " ").last.map(String.init), name.hasPrefix("--") else { continue }
            result[name] = parts[1].split(separator: " ").first.map(String.init)
        }
        return result
    }

    static var lightScheme: [String: String] {
        let css = page.firstRange(of: ":root {").map { page[$0.upperBound...] } ?? ""
        return properties(css.prefix { $0 != "}" })
    }

    static var darkScheme: [String: String] {
        guard let media = page.firstRange(of: "@media (prefers-color-scheme: dark)") else { return [:] }
        let rest = page[media.upperBound...]
        guard let root = rest.firstRange(of: ":root {") else { return [:] }
        return properties(rest[root.upperBound...].prefix { $0 != "}" })
    }

    @Test func thePageFitsAPhone() {
        #expect(Self.page.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"))
        #expect(Self.page.contains("@media (max-width: 640px)"))
        #expect(Self.page.contains("viewBox=\"0 0 "), "the charts scale with the page")
        #expect(!Self.page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" width="), "no chart has a fixed pixel width")
    }

    @Test func darkModeRedefinesEveryColour() {
        let light = Self.lightScheme, dark = Self.darkScheme
        #expect(light.count >= 10, "\(light)")
        #expect(Set(dark.keys) == Set(light.keys), "the dark scheme sets every colour the light one does")
        #expect(dark["--bg"] != light["--bg"] && dark["--fg"] != light["--fg"])
    }

    @Test func eachMemoryLegendEntryHasItsOwnColourInBothSchemes() throws {
        // The swatches: <rect ... class="legend c-container"/>; each class fills with one variable.
        let classes = Self.page.split(separator: "class=\"legend ").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        #expect(classes.count == 4, "two parts per bar: \(classes)")
        #expect(Set(classes).count == 4)
        for scheme in [Self.lightScheme, Self.darkScheme] {
            let colours = try classes.map { style -> String in
                let rule = try #require(Self.page.firstRange(of: ".\(style) { fill: var("))
                let variable = String(Self.page[rule.upperBound...].prefix { $0 != ")" })
                return try #require(scheme[variable], "\(variable) is defined")
            }
            #expect(Set(colours).count == 4, "distinct colours: \(colours)")
        }
    }

    @Test func theStartUpChartSaysTheTinyVMHasNoOperatingSystem() throws {
        let chart = try #require(Self.page.firstRange(of: "<h2>Start-up timelines</h2>"))
        let note = Self.page[chart.upperBound...].prefix(700)
        #expect(note.contains("Which VM?"))
        #expect(note.contains("no operating system"))
        #expect(note.contains("not that VMs start faster than containers"))
        // The size is the embedded probe image's, read, not assumed.
        let size = try #require(CompareRunner.embedded("probe")?.count)
        #expect(note.contains("a \((size + 512) / 1024) KB multiboot kernel"))
        #expect(Self.page.contains("tiny guest, no OS"), "the VM lane's label says it too")
    }

    @Test func aLinuxVMIsNamedAsSuch() {
        var side = VMSide()
        side.kernel = "/nonexistent/bzImage"
        let text = Comparison.describeVMGuest(side)
        #expect(text.hasPrefix("The VM is a Linux kernel + busybox"))
        #expect(text.contains("the kernel's whole boot"))
    }

    @Test func aReasonSharedByTheVisibilityCellsIsWrittenOnce() throws {
        let start = try #require(Self.page.firstRange(of: "<table class=\"matrix\">"))
        let end = try #require(Self.page[start.upperBound...].firstRange(of: "<h2>"))
        let matrix = Self.page[start.lowerBound..<end.lowerBound]
        #expect(matrix.split(separator: "see note 1 below").count - 1 == 6, "each VM cell points at the note")
        #expect(matrix.split(separator: "<li>\(Self.tinyReason)</li>").count - 1 == 1, "the reason is written once, in full")
        #expect(!matrix.contains("…"), "nothing is cut short")
        #expect(matrix.contains("answer to kernel_modules"), "values are shown whole")
    }
}
