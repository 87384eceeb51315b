// CompareFailureTests: bad input never loses the report. An unknown command, a missing kernel, a file that
// is not a kernel, a root filesystem that does not exist: compare still prints the whole comparison (text,
// JSON conforming to the schema, HTML), puts each failure in the column that failed, in the words of the
// launcher or VMM that failed, and exits 1. None of these boots Linux: the VM side fails while building.
import Compare
import Container
import Glibc
import KVM
import Testing
import TestSupport

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: CompareFixtures.canRunContainers, Comment(rawValue: CompareFixtures.containerReason)))
struct CompareFailureTests {
    var rootfs: String { CompareFixtures.rootfs ?? "" }

    func expectRenderedWithFailures(_ run: ChildRun, container: String?, vm: String?) {
        #expect(run.status == 1, "\(run.stderr)")
        let (document, problems) = CompareFixtures.document(run)
        #expect(problems.isEmpty, "\(problems)")
        #expect(cellsAreValueXorReason(document).isEmpty)
        #expect(document["succeeded"]?.bool == false)
        #expect(document["exit_status"]?.number == 1)
        if let container {
            let failure = document.column("container")?["failure"]?.string ?? ""
            #expect(failure.contains(container), "container failure: \(failure)")
            #expect(document.cell("time_to_first_instruction", "container")?["unavailable"]?.string?.contains(container) == true)
        }
        if let vm {
            let failure = document.column("vm")?["failure"]?.string ?? ""
            #expect(failure.contains(vm), "VM failure: \(failure)")
            #expect(document.column("vm")?["completed"]?.bool == false)
            #expect(document.cell("kernel_release", "vm")?["value"] == .null)
        }
        // The host column is still there: the reference does not depend on either side.
        #expect(document.value("kernel_release", "host") == CompareFixtures.hostRelease)
    }

    @Test func unknownCommandAndMissingKernel() {
        let r = CompareFixtures.compare(["--json", "--rootfs", rootfs, "--kernel", "/nonexistent/bzImage",
                                         "--initrd", CompareFixtures.repositoryRoot + "/Package.swift", "--", "no-such-command"])
        expectRenderedWithFailures(r, container: "no-such-command: command not found in the container", vm: "/nonexistent/bzImage")
        let (document, _) = CompareFixtures.document(r)
        #expect(document.column("container")?["command_status"]?.number == 127)
    }

    @Test func aFileThatIsNotAKernel() {
        let r = CompareFixtures.compare(["--json", "--rootfs", rootfs, "--kernel", CompareFixtures.repositoryRoot + "/Package.swift",
                                         "--initrd", CompareFixtures.repositoryRoot + "/Package.swift", "--", "true"])
        expectRenderedWithFailures(r, container: nil, vm: "not a kernel Swiftlet can boot")
        let (document, _) = CompareFixtures.document(r)
        #expect(document.column("container")?["completed"]?.bool == true)
        #expect(document.value("exit_status", "container") == "0")
    }

    @Test func aMissingInitramfsIsTheVMColumnsFailure() {
        let r = CompareFixtures.compare(["--json", "--rootfs", rootfs, "--initrd", "/nonexistent/initramfs.cpio", "--", "true"])
        expectRenderedWithFailures(r, container: nil, vm: "cannot read the initramfs /nonexistent/initramfs.cpio")
    }

    @Test func aRootFilesystemThatDoesNotExist() {
        let r = CompareFixtures.compare(["--json", "--probe", "--tiny-vm", "--rootfs", "/nonexistent/rootfs"], deadline: 120)
        expectRenderedWithFailures(r, container: "rootfs: cannot use /nonexistent/rootfs", vm: nil)
        let (document, _) = CompareFixtures.document(r)
        #expect(document.column("vm")?["completed"]?.bool == true, "the probe guest still answers")
    }

    @Test func theTextReportShowsTheFailureAndTheHTMLPageIsWritten() {
        let html = "/tmp/swiftlet-test-compare-fail-\(getpid()).html"
        defer { unlink(html) }
        let r = CompareFixtures.compare(["--rootfs", "/nonexistent/rootfs", "--kernel", "/nonexistent/bzImage", "--html", html, "--", "true"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("failure: swiftlet container: rootfs: cannot use /nonexistent/rootfs"), "\(r.stdout)")
        #expect(r.stdout.contains("unavailable: the container did not run"))
        #expect(r.stdout.hasSuffix("see its failure above\n"))
        let page = ChildProcess.readText(html)
        #expect(page.contains("rootfs: cannot use /nonexistent/rootfs") && page.contains("</html>"))
    }

    @Test(arguments: [[String](), ["--probe", "--", "true"], ["--tiny-vm", "--", "true"], ["--cpus", "0", "--", "true"]])
    func badUsageIsStatusTwoWithOneMessage(arguments: [String]) {
        let r = CompareFixtures.compare(arguments, deadline: 30)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("swiftlet compare: "), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }
}
