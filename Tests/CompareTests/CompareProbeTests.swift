// CompareProbeTests: `swiftlet compare --probe` on the real /dev/kvm and real containers, through the built
// binary: the JSON conforms to docs/compare-schema.json, and every answer in the table matches what each
// side shows when it is run on its own (the probe guest booted directly, commands run in a container
// directly, the host's own files). One compare run is shared by the tests; it takes about a second.
import Compare
import Container
import Glibc
import KVM
import Testing
import TestSupport
import VMM

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: CompareFixtures.canRunContainers, Comment(rawValue: CompareFixtures.containerReason)))
struct CompareProbeTests {
    static let htmlPath = "/tmp/swiftlet-test-compare-probe-\(getpid()).html"
    static let run = CompareFixtures.compare(["--probe", "--tiny-vm", "--json", "--rootfs", CompareFixtures.rootfs ?? "", "--html", htmlPath], deadline: 120)
    static let parsed = CompareFixtures.document(run)
    var document: JSONValue { Self.parsed.0 }

    @Test func theJSONConformsToTheSchema() {
        #expect(Self.run.status == 0, "\(Self.run.stderr)")
        #expect(Self.parsed.1.isEmpty, "\(Self.parsed.1)")
        #expect(cellsAreValueXorReason(document).isEmpty, "\(cellsAreValueXorReason(document))")
        #expect(document["schema"]?.string == "swiftlet-compare/1")
        #expect(document["mode"]?.string == "probe")
        #expect(document["succeeded"]?.bool == true)
        #expect(document["backend"]?.string == KVMSystem.backend().rawValue)
    }

    @Test func theContainerSeesTheHostsKernel() {
        #expect(document.value("kernel_release", "container") == CompareFixtures.hostRelease + " (the host's kernel)")
        #expect(document.cell("kernel_release", "container")?["host_visible"]?.bool == true)
        #expect(document.value("kernel_release", "host") == CompareFixtures.hostRelease)
        let procVersion = ChildProcess.readText("/proc/version").split(separator: "\n").first.map(String.init)
        #expect(document.value("kernel_version", "container") == procVersion)
    }

    @Test func theProbeGuestsAnswersAreWhatItPrintsWhenBootedAlone() throws {
        let alone = ProcessRunner.run(ProcessRunner.swiftletPath, ["boot", "--guest", "probe", "--memory", "64M"])
        #expect(alone.status == ExitStatus.guestExit(0), "debug-exit value 0: \(alone.stderr)")
        let answers = ProbeAnswers(alone.stdout)
        let vendor = try #require(answers["cpu-vendor"])
        #expect(document.value("cpu_vendor", "vm") == vendor)
        #expect(document.cell("memory_visible", "vm")?["number"]?.number == Double(try #require(answers["memory-kib"])))
        let pastEnd = try #require(answers["read-past-end"])
        #expect(document.value("read_past_end", "vm")?.hasPrefix(pastEnd) == true)
        #expect(pastEnd.hasPrefix(try #require(answers["memory-end"])), "the probe reads right at the end of RAM")
        #expect(document.value("read_past_end", "vm")?.contains("MMIO exit") == true)
        #expect(alone.stderr.contains("unmapped guest-physical"), "the VMM reports the read past RAM: \(alone.stderr)")
        #expect(document.value("port_io", "vm")?.hasPrefix("in 0x80 read 0x000000ff") == true)
        #expect(document.value("cpl", "vm") == "0 (kernel mode)")
    }

    @Test func theGuestsMemoryIsTheMultibootTotalTheHelloGuestReports() throws {
        // A second guest, the hello guest, prints the same multiboot numbers in its own words.
        let hello = ProcessRunner.run(ProcessRunner.swiftletPath, ["boot", "--guest", "hello", "--memory", "64M"])
        let line = try #require(hello.stdout.split(separator: "\n").first { $0.hasPrefix("memory: lower") })
        let total = try #require(line.split(separator: " ").drop { $0 != "total" }.dropFirst().first.flatMap { Double($0) })
        #expect(document.cell("memory_visible", "vm")?["number"]?.number == total)
    }

    @Test func theProbeContainersAnswersAreWhatTheContainerShowsOnItsOwn() throws {
        let rootfs = try #require(CompareFixtures.rootfs)
        func inContainer(_ command: [String]) -> String {
            let r = ProcessRunner.run(ProcessRunner.swiftletPath, ["container", "run", "--rootfs", rootfs, "--"] + command)
            return r.stdout.split(separator: "\n").first.map(String.init) ?? ""
        }
        #expect(document.value("hostname", "container") == inContainer(["cat", "/proc/sys/kernel/hostname"]))
        #expect(document.value("cpus", "container")?.hasPrefix(inContainer(["nproc"])) == true)
        #expect(document.value("dev_kvm", "container") == "absent")
        #expect(document.cell("dev_kvm", "container")?["host_visible"]?.bool == false)
        #expect(document.cell("host_processes", "container")?["host_visible"]?.bool == false)
        #expect(document.value("host_processes", "container")?.contains("none of them the host process that launched it") == true)
        // CPUID from a container process is the host CPU's: the kernel records the same vendor in /proc/cpuinfo.
        let vendor = ChildProcess.readText("/proc/cpuinfo").split(separator: "\n").first { $0.hasPrefix("vendor_id") }?
            .split(separator: ":").last.map { $0.trimmingCharacters() }
        #expect(document.value("cpu_vendor", "container") == vendor)
        #expect(document.value("cpu_vendor", "host") == vendor)
        #expect(document.value("read_past_end", "container")?.hasSuffix("signal 11 (SIGSEGV)") == true)
        #expect(document.value("port_io", "container") == "in 0x80 signal 11 (SIGSEGV)")
        #expect(document.value("cpl", "container") == "3 (user mode)")
    }

    @Test func memoryAndTimesAreMeasuredOnBothSides() {
        for row in ["time_to_first_instruction", "time_total", "memory_runtime", "memory_workload", "memory_total"] {
            for column in ["container", "vm"] {
                let number = document.cell(row, column)?["number"]?.number
                #expect(number != nil && number! > 0, "\(row).\(column) is measured: \(String(describing: document.cell(row, column)))")
            }
        }
        // The VM's first instruction comes before it exits; the container's execve before the launcher exits.
        for column in ["container", "vm"] {
            let first = document.cell("time_to_first_instruction", column)?["number"]?.number ?? 0
            let total = document.cell("time_total", column)?["number"]?.number ?? 0
            #expect(first < total, "\(column): \(first) ms < \(total) ms")
        }
        let exits = document.value("syscalls_or_exits", "vm") ?? ""
        #expect(exits.contains("VM exits") && exits.contains("IO ×"), "\(exits)")
        let calls = document.value("syscalls_or_exits", "container") ?? document.cell("syscalls_or_exits", "container")?["unavailable"]?.string ?? ""
        if ChildProcess.which("strace") != nil { #expect(calls.contains("host system calls"), "\(calls)") }
        // Both sides' seccomp surfaces are measured from the installed programs: the confined VMM allows a
        // small fraction of what a container's default profile does.
        let containerSurface = document.cell("host_kernel_surface", "container")?["number"]?.number ?? 0
        let vmSurface = document.cell("host_kernel_surface", "vm")?["number"]?.number ?? 0
        #expect(containerSurface > 200 && vmSurface > 10 && vmSurface * 4 < containerSurface, "\(containerSurface) vs \(vmSurface)")
    }

    @Test(.enabled(if: Prerequisite.available(ChildProcess.which("chromium") != nil || ChildProcess.which("chromium-browser") != nil),
                   "chromium is not installed (bench/render-html.sh installs Debian's chromium with apt-get; .ci/run does)"))
    func theHTMLPageRendersInHeadlessChromium() {
        #expect(Self.run.status == 0, "the compare run that writes the page: \(Self.run.stderr)")
        let png = Self.htmlPath + ".png"
        defer { unlink(png) }
        let page = ChildProcess.readText(Self.htmlPath)
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.contains("<svg") && !page.contains("<script"), "one self-contained page")
        #expect(!page.contains("src=") && !page.contains("href=") && !page.contains("url("), "no external resources")
        let render = ChildProcess.run([CompareFixtures.repositoryRoot + "/bench/render-html.sh", Self.htmlPath, png], deadline: 180, workDirectory: "/tmp")
        #expect(render.status == 0, "\(render.stdout)\(render.stderr)")
        #expect(render.stdout.contains("non-white"), "\(render.stdout)")
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
