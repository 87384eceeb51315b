// Integration tests: boot the minimal Linux kernel from guest/linux (PVH vmlinux and bzImage) on the real
// /dev/kvm and run its busybox user space (on kvm_pvm too: the kernel's syscall-by-page-fault change,
// guest/linux/patches), and the bad-input cases of the Linux loaders through the CLI.
//
// On kvm_pvm the guest kernel runs in KVM's emulator: a boot to the command takes about 20 s, so there
// are few such boots and each is bounded by a timeout. The kernel, vmlinux and initramfs come from
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

// One boot at a time: each already keeps both of CI's cores busy. On kvm_pvm a boot to the command takes
// about 20 s (the guest kernel runs in KVM's emulator); each test shares one boot between its assertions.
@Suite(.serialized,
       .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct LinuxBootTests {
    /// Boots through the `swiftlet` binary, as a user does: stdout is the guest's serial console, stderr
    /// the VMM's notes (-v), boot timeline and final report.
    func bootLinux(_ command: [String], kernel: String = LinuxArtefacts.bzImage, cpus: Int = 1, timeout: Int = 240, extra: [String] = []) -> ProcessResult {
        LinuxBootLock.serialize { ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", kernel, "--initrd", LinuxArtefacts.initramfs, "--cpus", String(cpus),
            "--memory", "64M", "--timeout", String(timeout), "-v"] + extra + ["--"] + command) }
    }

    /// The release in the kernel's own banner on the console ("Linux version 6.1.192-swiftlet (...").
    func bannerRelease(_ console: String) -> String? {
        guard let line = console.split(separator: "\n").first(where: { $0.contains("Linux version ") }),
              let words = Optional(line.split(separator: " ")), let at = words.firstIndex(of: "version"), at + 1 < words.count else { return nil }
        return String(words[at + 1])
    }

    /// The console's lines, "\r\n" or "\n" ended (a Swift String holds "\r\n" as one Character).
    func consoleLines(_ console: String) -> [String] {
        console.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { String($0.filter { $0 != "\r" }) }
    }

    /// What every backend must show: the kernel ran on our machine model up to init.
    func expectBootedToInit(_ r: ProcessResult, cpus: Int) {
        let output = r.stdout
        #expect(output.contains("Linux version"))
        #expect(output.contains("found SMP MP-table"))
        #expect(output.contains("Unpacking initramfs") || output.contains("Trying to unpack rootfs"))
        #expect(output.contains("ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A"))
        #expect(output.contains("Run /init as init process"))
        // Nothing but the command: no unknown parameter and no command words reach init's argv.
        #expect(output.contains("swiftlet-init: started, 0 arguments from the kernel"), "\(output.suffix(3000))")
        if cpus > 1 {
            #expect(output.contains("smpboot: Total of \(cpus) processors"))
            if !KVMRequirement.hardware {
                // The kernel's IPIs went through PV hypercalls that KVM's emulator leaves to the VMM.
                #expect(r.stderr.contains("KVM_HC_SEND_IPI ×"), "\(r.stderr)")
            }
        }
        #expect(r.stderr.contains("init started"), "the VMM's timeline marks init: \(r.stderr)")
        #expect(r.stderr.contains("command starts"), "the timeline marks init's execve of the command: \(r.stderr)")
    }

    /// The command gets exactly the words after `--` (spaces, quotes, an empty word), prints the guest's
    /// release (not the host's), and its exit status is the VMM's.
    @Test func aCommandGetsExactlyItsArgumentsAndItsStatusIsTheVMs() {
        let script = #"uname -r; for a in "$@"; do echo "[$a]"; done; exit 7"#
        let r = bootLinux(["sh", "-c", script, "argv0", "a b", #"c"d"#, "e'f", "", "$HOME"])
        expectBootedToInit(r, cpus: 1)
        let release = bannerRelease(r.stdout)
        #expect(release?.hasSuffix("-swiftlet") == true, "the minimal kernel's banner: \(r.stdout.suffix(3000))")
        if let release { #expect(consoleLines(r.stdout).contains(release), "uname -r printed the guest's release") }
        var host = utsname()
        uname(&host)
        let hostRelease = withUnsafeBytes(of: host.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(release != hostRelease)
        for word in ["[a b]", #"[c"d]"#, "[e'f]", "[]", "[$HOME]"] { #expect(consoleLines(r.stdout).contains(word), "\(word) in \(r.stdout.suffix(2000))") }
        #expect(r.status == 7, "\(r.stderr)")
        #expect(r.stderr.contains("the guest's command exited with status 7"), "\(r.stderr)")
        #expect(!r.stderr.contains("panicked"))
    }

    @Test func aMissingCommandIs127() {
        let r = bootLinux(["no-such-command"])
        #expect(r.stdout.contains("swiftlet-init: no-such-command: not found"), "\(r.stdout.suffix(2000))")
        #expect(r.status == 127, "\(r.stderr)")
    }

    /// A command killed by a signal: 128 + N, and the VMM is gone afterwards (nothing left running).
    @Test func aCommandKilledBySignalNIs128PlusN() {
        let r = bootLinux(["sh", "-c", "kill -SEGV $$"])
        #expect(r.status == 128 + SIGSEGV, "\(r.stderr)")
        #expect(r.stderr.contains("killed by signal 11"), "\(r.stderr)")
    }

    /// The PVH entry (vmlinux), two vCPUs: the guest's user space sees both.
    @Test func pvhVmlinuxOnTwoCPUsRunsNproc() {
        let r = bootLinux(["nproc"], kernel: LinuxArtefacts.vmlinux, cpus: 2, timeout: 420)
        expectBootedToInit(r, cpus: 2)
        #expect(r.stdout.contains("swiftlet-init: nproc=2"))
        #expect(consoleLines(r.stdout).contains("2"), "nproc printed 2: \(r.stdout.suffix(1500))")
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A command that runs past --timeout while flooding the console: status 8, the VMM stops it.
    @Test func aCommandThatHangsAndFloodsIsStoppedByTheTimeout() {
        let r = bootLinux(["sh", "-c", "while :; do echo flood-flood-flood-flood; done"], timeout: 40)
        #expect(r.status == ExitStatus.timeout, "\(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("flood-flood"), "the flood reached the console")
        #expect(r.stderr.contains("--timeout"), "\(r.stderr.suffix(1000))")
    }

    /// A kernel whose syscall-by-page-fault entry is off (`swiftlet.pvm_syscall=0` after the profile's
    /// `swiftlet.pvm_syscall`: the last one wins), which is what a kernel without Swiftlet's change is.
    /// On kvm_pvm init dies at its first system call and the VMM says why in one line; on hardware KVM
    /// SYSCALL works as usual and the parameter changes nothing.
    @Test func withoutTheChangeInitDiesAtItsFirstSystemCallAndTheVMMSaysWhy() {
        let r = bootLinux(["true"], extra: ["--cmdline", "swiftlet.pvm_syscall=0"])
        if KVMRequirement.hardware {
            #expect(r.status == 0, "\(r.stderr)")
        } else {
            #expect(r.status == ExitStatus.guestCrashed, "\(r.stderr)")
            #expect(r.stderr.contains("the guest kernel panicked"), "\(r.stderr)")
            let lines = r.stderr.split(separator: "\n").filter { $0.contains("init died of SIGSEGV at its first system call") }
            #expect(lines.count == 1, "one line that names the cause: \(r.stderr)")
            #expect(lines.first?.contains("swiftlet.pvm_syscall=0") == true && lines.first?.contains("hardware KVM") == true, "the way out: \(lines)")
        }
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
        #expect(r.status == 0)
    }

    /// An interactive busybox shell on a terminal (a pseudo-terminal here): what is typed reaches the guest's
    /// shell through the 8250, its answer comes back, `exit 5` ends the VM with 5, and the terminal's settings
    /// are what they were before.
    @Test func anInteractiveShellOnATerminal() throws {
        let terminal = try #require(PseudoTerminal())
        let before = terminal.attributes
        let (status, shown) = try LinuxBootLock.serialize { () throws -> (Int32, String) in
            let child = try #require(Spawned.start(ProcessRunner.swiftletPath, ["boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs,
                                                                               "--memory", "64M", "--timeout", "240", "--", "sh"], terminal: terminal.slavePath))
            #expect(terminal.awaitOutput("swiftlet-init: nproc=", from: child, timeout: 200), "init runs: \(terminal.text.suffix(2000))")
            #expect(terminal.awaitOutput("# ", from: child, timeout: 60), "the shell's prompt: \(terminal.text.suffix(2000))")
            terminal.type(Array("echo tty-$((6*7))\r".utf8))
            #expect(terminal.awaitOutput("tty-42", from: child, timeout: 60), "\(terminal.text.suffix(2000))")
            terminal.type(Array("exit 5\r".utf8))
            let r = child.wait(deadline: 60)
            return (r.status, terminal.text)
        }
        #expect(status == 5, "\(shown.suffix(2000))")
        let after = terminal.attributes
        #expect(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag && after.c_oflag == before.c_oflag,
                "the terminal's settings are back")
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
    /// is built and runs; whatever the backend, the VMM ends it itself and says how. (Without the backend
    /// profile, which on kvm_pvm would unpack the kernel on the host instead.)
    @Test func stockCloudKernelIsLoadedAndRun() {
        let r = ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", DebianKernel.vmlinuz, "--initrd", LinuxArtefacts.initramfs, "--memory", "256M",
            "--timeout", "5", "-v", "--no-backend-profile", "--", "true",
        ])
        #expect(r.stderr.contains("protected-mode kernel"), "\(r.stderr)")
        #expect(r.stderr.contains("64-bit boot protocol"), "\(r.stderr)")
        #expect(r.stderr.contains("first KVM_RUN"), "\(r.stderr)")
        #expect(r.status != ExitStatus.badInput && r.status != ExitStatus.kvmUnavailable, "\(r.stderr)")
    }

    /// Unpacked on the host (--decompress) and entered at its startup_64, Debian's kernel skips its
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
            #expect(r.status == 0)
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
        let lines = r.stdout.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { String($0.filter { $0 != "\r" }) }
        #expect(lines.contains(release), "uname -r printed the stock kernel's release: \(r.stdout)")
        #expect(r.stdout.contains("swiftlet-init: exit status 0"))
        #expect(r.status == 0, "the command's status: \(r.stderr)")
    }
}

extension LinuxBootTests {
    /// `--forward-signals` (what swiftlet-vm boots with, so that `kill` reaches the container's process): a
    /// SIGTERM to the VMM lands in the lab ports' signal mailbox, init takes it and sends it to the command,
    /// whose own trap runs and picks the status; the VM is not stopped under it. One boot for the whole path.
    @Test func aForwardedSIGTERMReachesTheCommandsOwnTrap() throws {
        try LinuxBootLock.serialize {
            let child = try #require(Spawned.start(ProcessRunner.swiftletPath, [
                "boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs, "--memory", "64M",
                "--timeout", "300", "--forward-signals", "--",
                "sh", "-c", "trap 'echo the command caught TERM; exit 3' TERM; echo ready for a signal; while :; do :; done",
            ]))
            #expect(child.awaitOutput("ready for a signal", timeout: 280), "\(child.stdoutSoFar().suffix(2000)) \(child.stderrSoFar())")
            kill(child.pid, SIGTERM)
            let r = child.wait()
            #expect(r.stdout.contains("the command caught TERM"), "\(r.stdout.suffix(2000))")
            #expect(r.stdout.contains("swiftlet-init: exit status 3"), "\(r.stdout.suffix(2000))")
            #expect(r.status == 3, "the command's own status, not 143 for a stopped VM: \(r.stderr)")
            #expect(!r.stderr.contains("stopped by SIGTERM"), "\(r.stderr)")
        }
    }
}
