// CompareLinuxTests: the tests that boot the minimal Linux kernel (about 20 s to the command on kvm_pvm, where
// guest kernel code is emulated): `swiftlet compare --json -- uname -r`, and `compare --probe` with the
// minimal Linux (the probe script and helper in the guest's user space) writing its HTML page too. The VM
// column's kernel release must be the minimal kernel's own version string, read independently from the
// bzImage's header (boot protocol field kernel_version at 0x20E, an offset from 0x200 to a NUL-terminated
// string). On every backend (kvm_pvm included: guest/linux/patches) every VM cell is the guest's own answer
// and compare exits 0.
import Compare
import Container
import Glibc
import KVM
import Testing
import TestSupport

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: CompareFixtures.canRunContainers, Comment(rawValue: CompareFixtures.containerReason)),
       .enabled(if: CompareFixtures.linuxPresent, Comment(rawValue: CompareFixtures.linuxReason)))
struct CompareLinuxTests {
    /// The version string in the bzImage's setup header, e.g. "6.1.192-swiftlet (swiftlet@swiftlet) #1 SMP ...".
    static func bzImageVersion(_ path: String) -> String? {
        guard let bytes = ChildProcess.readBytes(path), bytes.count > 0x210 else { return nil }
        let offset = Int(bytes[0x20E]) | Int(bytes[0x20F]) << 8
        let start = offset + 0x200
        guard offset != 0, start < bytes.count else { return nil }
        return String(decoding: bytes[start...].prefix { $0 != 0 }, as: UTF8.self)
    }

    @Test func unameInAContainerAndInTheMinimalLinuxVM() throws {
        // One Linux boot at a time across suites (TestSupport.LinuxBootLock); the VMM's --timeout starts after the wait.
        let r = LinuxBootLock.serialize { CompareFixtures.compare(["--json", "--rootfs", CompareFixtures.rootfs ?? "", "--kernel", CompareFixtures.bzImage,
                                         "--initrd", CompareFixtures.initramfs, "--timeout", "400", "--", "uname", "-r"], deadline: 460) }
        let (document, problems) = CompareFixtures.document(r)
        #expect(problems.isEmpty, "\(problems)")
        #expect(cellsAreValueXorReason(document).isEmpty)

        // The container shares the host's kernel.
        #expect(document.column("container")?["output"]?.string == CompareFixtures.hostRelease + "\n")
        #expect(document.value("kernel_release", "container") == CompareFixtures.hostRelease + " (the host's kernel)")

        // The VM runs the minimal kernel: its banner's release is the bzImage's own version.
        let version = try #require(Self.bzImageVersion(CompareFixtures.bzImage))
        let release = try #require(version.split(separator: " ").first.map(String.init))
        let vmRelease = try #require(document.value("kernel_release", "vm"))
        #expect(vmRelease == release, "bzImage says \(version)")
        // The banner has the compiler between "(user@host)" and "#1 ..."; the header string does not.
        let banner = document.value("kernel_version", "vm") ?? ""
        let build = try #require(version.firstIndex(of: "#").map { String(version[$0...]) })
        #expect(banner.hasPrefix("Linux version \(release) (") && banner.hasSuffix(build), "banner \(banner), bzImage \(version)")
        #expect(document.cell("kernel_release", "vm")?["host_visible"]?.bool == false)
        let details = document.column("vm")?["details"]?.array.compactMap { $0["title"]?.string } ?? []
        #expect(details.contains { $0.hasPrefix("memory map the guest kernel was given") }, "\(details)")
        #expect((document.cell("memory_visible", "vm")?["number"]?.number ?? 0) > 32 * 1024, "most of the 64 MiB")
        #expect((document.cell("memory_runtime", "vm")?["number"]?.number ?? 0) > 0)
        #expect(document.value("syscalls_or_exits", "vm")?.contains("VM exits") == true)

        #expect(r.status == 0, "\(r.stderr)")
        #expect(document.column("vm")?["completed"]?.bool == true)
        #expect(document.column("vm")?["output"]?.string == release, "the command's own output, from the guest")
        #expect(document.cell("kernel_release", "vm")?["source"]?.string?.hasPrefix("`uname -r` inside the guest") == true)
        #expect(document.value("hostname", "vm") == "swiftlet")
        #expect(document.value("pid1", "vm") == "init")
        #expect((document.cell("time_to_first_instruction", "vm")?["number"]?.number ?? 0) > 0)
        #expect(document.value("exit_status", "vm") == "0")
        let timeline = document.column("vm")?["timeline"]?.array.compactMap { $0["name"]?.string } ?? []
        #expect(timeline.contains("command starts (marker 5)") && timeline.contains("command ended (marker 6)"), "\(timeline)")
        #expect(timeline.filter { $0 == "kernel banner" }.count == 1, "once, though /proc/version repeats it: \(timeline)")
    }

    /// `compare --probe` with the minimal Linux: the probe script and helper run in the guest's user space
    /// (PID 1 is init, the hostname is the rootfs's, CPUID and the CPL come from a process in the guest),
    /// and the same run writes the HTML page, which says so.
    @Test func theProbeRunsInTheMinimalLinuxsUserSpace() throws {
        let html = "/tmp/swiftlet-test-compare-linux-probe-\(getpid()).html"
        defer { unlink(html) }
        let r = LinuxBootLock.serialize { CompareFixtures.compare(["--probe", "--json", "--rootfs", CompareFixtures.rootfs ?? "", "--kernel", CompareFixtures.bzImage,
                                         "--initrd", CompareFixtures.initramfs, "--timeout", "400", "--html", html], deadline: 460) }
        let (document, problems) = CompareFixtures.document(r)
        #expect(problems.isEmpty, "\(problems)")
        #expect(r.status == 0, "\(r.stderr)")
        let release = try #require(Self.bzImageVersion(CompareFixtures.bzImage)?.split(separator: " ").first.map(String.init))
        #expect(document.column("vm")?["title"]?.string == "VM (swiftlet boot, minimal Linux)")
        #expect(document.value("kernel_release", "vm") == release)
        #expect(document.value("pid1", "vm") == "init")
        #expect(document.value("hostname", "vm") == "swiftlet")
        #expect(document.value("cpl", "vm")?.hasPrefix("3") == true, "a process in the guest runs at CPL 3")
        #expect(document.cell("cpu_vendor", "vm")?["source"]?.string?.contains("a process in the guest") == true)
        #expect(document.value("read_past_end", "vm")?.hasSuffix("signal 11 (SIGSEGV)") == true)
        #expect(document.value("exit_status", "vm") == "0")
        let timeline = document.column("vm")?["timeline"]?.array.compactMap { $0["name"]?.string } ?? []
        #expect(timeline.contains("init executes the probe script (marker 4)"), "\(timeline)")
        let page = ChildProcess.readText(html)
        #expect(page.contains("VM (swiftlet boot, minimal Linux)") && page.contains(release), "the page shows the Linux VM's answers")
        #expect(!page.contains("cannot make system calls"), "no stale kvm_pvm note")
    }
}

/// The same probe script, helper and parsers under another VMM: this boots the same kernel and the same
/// initramfs-with-probe under QEMU's software emulator (TCG: no KVM at all, about ten seconds here), with
/// the command after `--` on the kernel command line (init's fallback when there is no /swiftlet/argv), and
/// reads its console with compare's parsers. It tests compare's guest side, not Swiftlet's VMM.
@Suite(.enabled(if: CompareFixtures.linuxPresent, Comment(rawValue: CompareFixtures.linuxReason)),
       .enabled(if: Prerequisite.available(ChildProcess.which("qemu-system-x86_64") != nil), "qemu-system-x86_64 is not installed (setup.sh installs qemu-system-x86)"))
struct ProbeInLinuxUserspaceTests {
    @Test func theProbeAnswersFromARealLinuxUserspace() throws {
        let base = try #require(ChildProcess.readBytes(CompareFixtures.initramfs))
        let initrd = "/tmp/swiftlet-test-probe-initrd-\(getpid()).cpio"
        #expect(ChildProcess.writeBytes(CompareRunner.probeInitramfs(base: base), to: initrd) == nil)
        defer { unlink(initrd) }
        let append = (["console=ttyS0", "reboot=k", "panic=-1", "--"] + CompareRunner.initArguments(["uname", "-r"])).joined(separator: " ")
        // QEMU's emulator keeps both CPUs busy: not while a Linux guest boots on kvm_pvm beside it.
        let qemu = LinuxBootLock.serialize { ChildProcess.run([ChildProcess.which("qemu-system-x86_64")!, "-M", "pc", "-accel", "tcg", "-m", "128M", "-nodefaults",
                                     "-nographic", "-no-reboot", "-display", "none", "-monitor", "none", "-serial", "stdio",
                                     "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", CompareFixtures.bzImage,
                                     "-initrd", initrd, "-append", append], deadline: 150, workDirectory: "/tmp") }
        #expect(qemu.status == 1, "init wrote status 0 to the debug-exit port: \(qemu.stdout.suffix(2000))")
        let answers = ProbeAnswers(qemu.stdout)
        let release = try #require(CompareLinuxTests.bzImageVersion(CompareFixtures.bzImage)?.split(separator: " ").first.map(String.init))
        #expect(answers["uname-r"] == release)
        #expect(KernelLog(qemu.stdout).release == release)
        #expect(Comparison.commandOutput(qemu.stdout) == release)
        #expect(answers["command-exit"] == "0")
        #expect(answers["pid1"] == "init")
        #expect(answers["sees-launcher"] == "no")
        #expect(answers["dev-kvm"] == "no")
        #expect(answers["hostname"] == "swiftlet", "guest/linux/init.c sets it from /etc/hostname")
        #expect(answers["cpl"] == "3")
        #expect(answers["read-past-end"]?.hasSuffix("signal 11 (SIGSEGV)") == true, "one line, whatever the kernel logs meanwhile")
        #expect(answers["port-io"] == "in 0x80 signal 11 (SIGSEGV)")
        #expect(answers["hypervisor-signature"] == "TCGTCGTCGTCG", "QEMU's software CPU names itself")
        #expect(answers.finished)
    }
}
