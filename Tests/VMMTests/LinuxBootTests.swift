// Integration tests: boot the minimal Linux kernel from guest/linux (PVH vmlinux and bzImage) on the real
// /dev/kvm, and the bad-input cases of the Linux loaders through the CLI.
//
// On kvm_pvm the guest kernel runs in KVM's emulator: a boot to init takes tens of seconds, so there are
// few such boots and each is bounded by a timeout. The kernel, vmlinux and initramfs come from
// guest/linux/build.sh (CI runs it); without them these tests skip with that reason.
import Glibc
import KVM
import Testing
import TestSupport
import VMM

enum LinuxArtefacts {
    static let directory: String = {
        // SWIFTLET_LINUX_DIR: a guest/linux/out built elsewhere (a worktree without its own kernel build).
        if let dir = getenv("SWIFTLET_LINUX_DIR") { return String(cString: dir) }
        return ProcessRunner.packageRoot + "/guest/linux/out"
    }()
    static var bzImage: String { directory + "/bzImage" }
    static var vmlinux: String { directory + "/vmlinux" }
    static var initramfs: String { directory + "/initramfs.cpio" }
    static var present: Bool { Prerequisite.files(bzImage, vmlinux, initramfs) }
    static let reason = "guest/linux/out has no kernel: run guest/linux/build.sh (CI does), or set SWIFTLET_LINUX_DIR"
}

// One boot at a time: each already keeps both of CI's cores busy with two vCPUs under the emulator.
@Suite(.serialized,
       .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct LinuxBootTests {
    /// Boots through the `swiftlet` binary, as a user does: stdout is the guest's serial console, stderr
    /// the VMM's notes (-v), boot timeline and final report.
    func bootLinux(_ kernel: String, cpus: Int, timeout: Int) -> ProcessResult {
        LinuxBootLock.serialize { ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", kernel, "--initrd", LinuxArtefacts.initramfs, "--cpus", String(cpus),
            "--memory", "64M", "--timeout", String(timeout), "-v", "--", "uname", "-r",
        ]) }
    }

    /// What every backend must show: the kernel ran on our machine model up to init.
    func expectBootedToInit(_ r: ProcessResult, cpus: Int) {
        let output = r.stdout
        #expect(output.contains("Linux version"))
        #expect(output.contains("found SMP MP-table"))
        #expect(output.contains("Unpacking initramfs") || output.contains("Trying to unpack rootfs"))
        #expect(output.contains("ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A"))
        #expect(output.contains("Run /init as init process"))
        if cpus > 1 {
            #expect(output.contains("smpboot: Total of \(cpus) processors"))
            if !KVMRequirement.hardware {
                // The kernel's IPIs went through PV hypercalls that KVM's emulator leaves to the VMM.
                #expect(r.stderr.contains("KVM_HC_SEND_IPI ×"), "\(r.stderr)")
            }
        }
        #expect(r.stderr.contains("init started"), "the VMM's timeline marks init: \(r.stderr)")
    }

    func expectEnding(_ r: ProcessResult) {
        if KVMRequirement.hardware {
            // init runs `uname -r`, reports status 0 through the debug port: (0 << 1) | 1.
            #expect(r.stdout.contains("swiftlet-init: exit status 0"))
            #expect(r.status == 1, "\(r.stderr)")
        } else {
            // kvm_pvm: init dies on its first system call; the kernel panics and resets through the i8042.
            #expect(r.status != ExitStatus.timeout, "the VM must stop by itself, not hang: \(r.stderr)")
            #expect(r.stderr.contains("the guest kernel panicked"), "\(r.stderr)")
            #expect(r.stderr.contains("Linux userspace cannot run here"))
            #expect(r.stderr.contains("int3 ×1"), "Linux's int3 self-test was finished by the VMM")
        }
    }

    @Test func pvhEntryBootsTheMinimalKernelToInitOnTwoCPUs() {
        let r = bootLinux(LinuxArtefacts.vmlinux, cpus: 2, timeout: 420)
        expectBootedToInit(r, cpus: 2)
        expectEnding(r)
    }

    @Test func bzImageBootsTheMinimalKernelToInitOnTwoCPUs() {
        let r = bootLinux(LinuxArtefacts.bzImage, cpus: 2, timeout: 420)
        expectBootedToInit(r, cpus: 2)
        expectEnding(r)
    }

    @Test(.enabled(if: KVMRequirement.hardware, Comment(rawValue: KVMRequirement.hardwareReason)))
    func fourCPUsAndTheMemoryAreSeenByTheGuest() {
        let r = LinuxBootLock.serialize { ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs, "--cpus", "4",
            "--memory", "256M", "--timeout", "60", "--", "nproc",
        ]) }
        #expect(r.stdout.contains("smpboot: Total of 4 processors"))
        #expect(r.stdout.contains("swiftlet-init: nproc=4"))
        #expect(r.stdout.contains("memtotal=2"), "about 250000 kB of 256 MiB: \(r.stdout)")
        #expect(r.status == 1)
    }
}

@Suite(.enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct LinuxBadInputTests {
    func run(_ arguments: [String]) -> ProcessResult { ProcessRunner.run(ProcessRunner.swiftletPath, arguments) }

    func expectOneLineError(_ r: ProcessResult, _ phrase: String) {
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)")
        #expect(r.stderr.contains(phrase), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }

    @Test func truncatedBzImage() {
        let bytes = ProcessRunner.readBytes(LinuxArtefacts.bzImage)
        let path = "/tmp/swiftlet-test-truncated-\(getpid())"
        ProcessRunner.writeFile(path, Array(bytes.prefix(0x1000)))
        defer { unlink(path) }
        expectOneLineError(run(["boot", "--kernel", path]), "truncated")
    }

    @Test func bzImageWithAnOldBootProtocol() {
        var bytes = ProcessRunner.readBytes(LinuxArtefacts.bzImage)
        bytes[0x206] = 0x04; bytes[0x207] = 0x02 // protocol 2.04
        let path = "/tmp/swiftlet-test-oldproto-\(getpid())"
        ProcessRunner.writeFile(path, bytes)
        defer { unlink(path) }
        expectOneLineError(run(["boot", "--kernel", path]), "2.04")
    }

    @Test func initrdLargerThanMemory() {
        let path = "/tmp/swiftlet-test-bigrd-\(getpid())"
        ProcessRunner.writeFile(path, [UInt8](repeating: 0, count: 40 << 20))
        defer { unlink(path) }
        let r = run(["boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", path, "--memory", "32M"])
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)")
        #expect(r.stderr.contains("initrd"), "\(r.stderr)")
    }

    @Test func commandLineLongerThanTheKernelAccepts() {
        let long = String(repeating: "x", count: 5000)
        expectOneLineError(run(["boot", "--kernel", LinuxArtefacts.bzImage, "--cmdline", long]), "command line")
    }

    @Test(arguments: ["0", "1000", "two"])
    func cpuCountOutOfRange(cpus: String) {
        let r = run(["boot", "--kernel", LinuxArtefacts.vmlinux, "--cpus", cpus])
        expectOneLineError(r, "--cpus \(cpus)")
    }

    @Test func memoryTooSmallForKernelAndInitrd() {
        let r = run(["boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs, "--memory", "8M"])
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }
}

/// Debian's stock cloud kernel (guest/debian/fetch.sh: linux-image-*-cloud-amd64, unmodified; CI fetches it).
enum DebianKernel {
    static let directory = ProcessRunner.packageRoot + "/guest/debian/out"
    static var vmlinuz: String { directory + "/vmlinuz" }
    static var present: Bool { Prerequisite.files(vmlinuz) }
    static let reason = "guest/debian/out has no vmlinuz: run guest/debian/fetch.sh (CI does)"
    /// "6.1.0-56-cloud-amd64" from the package name fetch.sh recorded.
    static var release: String? {
        let text = String(decoding: ProcessRunner.readBytes(directory + "/version"), as: UTF8.self)
        guard let name = text.split(separator: " ").first, name.hasPrefix("linux-image-") else { return nil }
        return String(name.dropFirst("linux-image-".count))
    }
}

@Suite(.serialized,
       .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: DebianKernel.present, Comment(rawValue: DebianKernel.reason)),
       .enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct DebianKernelTests {
    /// The loader takes Debian's bzImage as it is (boot protocol, relocatable, KASLR-capable, 14 MB): the VM
    /// is built and runs; whatever the backend, the VMM ends it itself and says how.
    @Test func stockCloudKernelIsLoadedAndRun() {
        let r = ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", DebianKernel.vmlinuz, "--initrd", LinuxArtefacts.initramfs, "--memory", "256M",
            "--timeout", "5", "-v", "--", "true",
        ])
        #expect(r.stderr.contains("protected-mode kernel"), "\(r.stderr)")
        #expect(r.stderr.contains("64-bit boot protocol"), "\(r.stderr)")
        #expect(r.stderr.contains("first KVM_RUN"), "\(r.stderr)")
        #expect(r.status != ExitStatus.badInput && r.status != ExitStatus.kvmUnavailable, "\(r.stderr)")
    }

    /// Unpacked on the host (--decompress) and entered through its PVH note, Debian's kernel skips its
    /// decompressor, which kvm_pvm would run instruction by instruction, and prints its banner on COM1
    /// within minutes here (earlyprintk, so the messages come before the 8250 driver registers ttyS0).
    @Test func stockCloudKernelPrintsItsBannerWhenUnpackedOnTheHost() throws {
        let release = try #require(DebianKernel.release)
        let r = LinuxBootLock.serialize { ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", DebianKernel.vmlinuz, "--decompress", "--initrd", LinuxArtefacts.initramfs,
            "--memory", "256M", "--timeout", KVMRequirement.hardware ? "60" : "150", "-v",
            "--cmdline", "earlyprintk=serial,ttyS0,115200", "--", "uname", "-r",
        ]) }
        #expect(r.stderr.contains("unpacked on the host"), "\(r.stderr)")
        #expect(r.stdout.contains("Linux version \(release)"), "\(r.stdout.suffix(2000))")
        #expect(r.stdout.contains("Hypervisor detected: KVM"))
        #expect(r.status != ExitStatus.badInput && r.status != ExitStatus.kvmUnavailable, "\(r.stderr)")
        if KVMRequirement.hardware {
            #expect(r.stdout.contains("swiftlet-init: exit status 0"))
            #expect(r.status == 1)
        }
    }

    @Test func gzipOrOtherPayloadsAreRefusedWithTheWayOut() {
        var bytes = ProcessRunner.readBytes(DebianKernel.vmlinuz)
        // Overwrite the LZ4 magic at the payload's start with gzip's.
        let setup = Int(bytes[0x1F1]) + 1
        let offset = setup * 512 + Int(UInt32(bytes[0x248]) | UInt32(bytes[0x249]) << 8 | UInt32(bytes[0x24A]) << 16 | UInt32(bytes[0x24B]) << 24)
        bytes[offset] = 0x1F; bytes[offset + 1] = 0x8B
        let path = "/tmp/swiftlet-test-gzip-payload-\(getpid())"
        ProcessRunner.writeFile(path, bytes)
        defer { unlink(path) }
        let r = ProcessRunner.run(ProcessRunner.swiftletPath, ["boot", "--kernel", path, "--decompress"])
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)")
        #expect(r.stderr.contains("gzip-compressed"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    /// On hardware KVM: Debian's kernel boots into our initramfs's /init with the serial console and no
    /// modules; the command's output and exit status come back (init reports through /dev/mem, as
    /// Debian's kernel has no /dev/port).
    @Test(.enabled(if: KVMRequirement.hardware, Comment(rawValue: KVMRequirement.hardwareReason)))
    func stockCloudKernelRunsTheCommandOnHardwareKVM() throws {
        let release = try #require(DebianKernel.release)
        let r = LinuxBootLock.serialize { ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", DebianKernel.vmlinuz, "--initrd", LinuxArtefacts.initramfs, "--memory", "256M",
            "--timeout", "60", "--", "uname", "-r",
        ]) }
        #expect(r.stdout.contains("Linux version \(release)"))
        #expect(r.stdout.contains("Run /init as init process"))
        #expect(r.stdout.contains("\n\(release)"), "uname -r printed the stock kernel's release: \(r.stdout)")
        #expect(r.stdout.contains("swiftlet-init: exit status 0"))
        #expect(r.status == 1, "debug-exit status (0 << 1) | 1: \(r.stderr)")
    }
}
