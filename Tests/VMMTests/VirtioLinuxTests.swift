// Integration tests: Linux on the virtio console. Here (any KVM): the minimal kernel from guest/linux,
// booted with `--console virtio` (console=hvc0 and virtio_mmio.device=... on its command line), registers
// hvc0, its log reaches the host through virtio-console before "Run /init as init process", and the
// command's output follows; an interactive busybox shell over hvc0 through --console-socket. On hardware KVM
// only (skipped here with the reason printed): Debian's stock kernel finding the console over virtio-pci
// with the modules from its initramfs and running the command (Debian's kernel does not carry the change
// that runs 64-bit user space on kvm_pvm, guest/linux/patches).
//
// What Linux 6.1 sends through hvc0: only what it logs after the virtio console port is set up. When
// hvc_alloc registers the console, printk replays its buffer at once, but virtio_console's put_chars cannot
// find the port yet (init_port_console adds it to its list after hvc_alloc returns, drivers/char/
// virtio_console.c) and drops the replay with -EPIPE. The lines from then on — "Freeing initrd memory",
// "Freeing unused kernel image", "Run /init as init process", init's own output — all come through virtio.
import Glibc
import Testing
import TestSupport
import VMM

@Suite(
       .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct VirtioLinuxTests {
    @Test func theMinimalKernelLogsThroughHvc0UpToInit() {
        let log = "/tmp/swiftlet-test-hvc0-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(log) }
        let r = LinuxBootLock.serialize { ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", LinuxArtefacts.vmlinux, "--initrd", LinuxArtefacts.initramfs, "--memory", "64M",
            "--console", "virtio", "--console-file", log, "--timeout", "420", "-v", "--", "uname", "-r",
        ]) }
        let hvc0 = ProcessRunner.readFile(log)
        #expect(r.stderr.contains("kernel command line: console=hvc0 virtio_mmio.device=4K@0xd0000000:5 "), "\(r.stderr)")
        // The kernel's log came through the virtio console, before init...
        let lines = hvc0.split { $0 == "\n" || $0 == "\r\n" } // hvc adds "\r" before "\n"; "\r\n" is one Character
        let freeing = lines.firstIndex { $0.contains("Freeing unused kernel image") }
        let initLine = lines.firstIndex { $0.contains("Run /init as init process") }
        #expect(freeing != nil && initLine != nil, "hvc0 carried: \(hvc0)")
        if let freeing, let initLine { #expect(freeing < initLine) }
        // ...and none of it through the 8250 (stdout is COM1's output here).
        #expect(!r.stdout.contains("Run /init"), "the 8250 printed the log: \(r.stdout)")
        // The driver set the device up (multiport: port 0 became hvc0) and its kicks were ioeventfds.
        #expect(r.stderr.contains("driver features: "), "\(r.stderr)")
        #expect(r.stderr.contains("CONSOLE_F_MULTIPORT"))
        #expect(r.stderr.contains("ports ready: 0 (console)"))
        #expect(r.stderr.contains("kicks (ioeventfd, no VM exit)"))
        #expect(r.stderr.contains("first output on the virtio console"), "the timeline marks the first hvc0 output")
        #expect(r.stderr.contains("init started"), "the milestone scanner reads the hvc0 output")
        // The command ran in the guest's user space and its output came through hvc0 too.
        #expect(hvc0.contains("swiftlet-init: exit status 0"), "\(hvc0.suffix(2000))")
        #expect(hvc0.contains("-swiftlet\r\n") || hvc0.contains("-swiftlet\n"), "uname -r through hvc0")
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// `--console-socket`: the VM starts when a client connects; the busybox shell's prompt, what the client
    /// types and the shell's answer travel through the socket and hvc0; `exit 3` is the VM's status, and the
    /// socket file is gone afterwards.
    @Test func anInteractiveShellRunsOverHvc0ThroughTheConsoleSocket() throws {
        let path = "/tmp/swiftlet-test-shell-\(getpid()).sock"
        let (status, received, stderr) = try LinuxBootLock.serialize { try interactiveShell(path) }
        #expect(received.contains("virtio-shell-42"), "\(received.suffix(2000))\n\(stderr)")
        #expect(status == 3, "\(stderr)")
        #expect(access(path, F_OK) != 0, "the console socket is removed")
    }

    func interactiveShell(_ path: String) throws -> (Int32, String, String) {
        let child = try #require(Spawned.start(ProcessRunner.swiftletPath, [
            "boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs, "--memory", "64M",
            "--console", "virtio", "--console-socket", path, "--timeout", "240", "--", "sh",
        ]))
        var fd: Int32 = -1
        let connectBy = monotonicSeconds() + 30
        while fd < 0 && monotonicSeconds() < connectBy { fd = connectUnix(path); if fd < 0 { usleep(20_000) } }
        try #require(fd >= 0)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        /// Reads until `needle` arrives, the peer closes, or the deadline passes.
        func read(until needle: String, seconds: Double) -> Bool {
            let deadline = monotonicSeconds() + seconds
            while monotonicSeconds() < deadline {
                if String(decoding: received, as: UTF8.self).contains(needle) { return true }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 250) > 0 else { continue }
                let n = Glibc.read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                received += buffer[0..<n]
            }
            return String(decoding: received, as: UTF8.self).contains(needle)
        }
        #expect(read(until: "# ", seconds: 200), "the shell's prompt")
        let command = Array("echo virtio-shell-$((6*7)); exit 3\n".utf8)
        _ = command.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        _ = read(until: "\u{0}end\u{0}", seconds: 60) // until the VM closes the socket
        close(fd)
        let result = child.wait()
        return (result.status, String(decoding: received, as: UTF8.self), result.stderr)
    }

    func monotonicSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    @Test(.enabled(if: KVMRequirement.hardware, Comment(rawValue: KVMRequirement.hardwareReason)),
          .enabled(if: DebianKernel.present, Comment(rawValue: DebianKernel.reason)),
          .enabled(if: DebianVirtioInitramfs.present, Comment(rawValue: DebianVirtioInitramfs.reason)))
    func debiansStockKernelFindsTheConsoleOverVirtioPCI() {
        // Debian's cloud kernel has virtio_pci and virtio_console as modules and no command-line virtio-mmio:
        // DebianVirtioInitramfs must load them (modprobe virtio_pci virtio_console) before /init's command.
        let r = LinuxBootLock.serialize { ProcessRunner.run(ProcessRunner.swiftletPath, [
            "boot", "--kernel", DebianKernel.vmlinuz, "--initrd", DebianVirtioInitramfs.path, "--memory", "512M",
            "--console", "virtio", "--virtio-transport", "pci", "--timeout", "120", "--", "uname", "-r",
        ]) }
        #expect(r.stdout.contains("swiftlet-init: exit status 0"), "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("virtio-console (virtio-pci)"))
        #expect(r.status == 0, "the command's status is the VM's")
    }
}

/// An initramfs for Debian's stock kernel that loads its virtio_pci and virtio_console modules before
/// guest/linux/init.c runs the command: guest/debian/fetch.sh builds it (CI runs that) as
/// guest/debian/out/virtio-initramfs.cpio; SWIFTLET_DEBIAN_VIRTIO_INITRD names another.
enum DebianVirtioInitramfs {
    static var path: String {
        getenv("SWIFTLET_DEBIAN_VIRTIO_INITRD").map { String(cString: $0) } ?? DebianKernel.directory + "/virtio-initramfs.cpio"
    }
    static var present: Bool { Prerequisite.files(path) }
    static let reason = "no initramfs with Debian's virtio modules: run guest/debian/fetch.sh after guest/linux/build.sh (CI does)"
}
