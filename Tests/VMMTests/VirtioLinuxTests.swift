// Integration tests: Linux on the virtio console. Here (any KVM): the minimal kernel from guest/linux,
// booted with `--console virtio` (console=hvc0 and virtio_mmio.device=... on its command line), registers
// hvc0 and its log reaches the host through virtio-console before "Run /init as init process". On hardware
// KVM only (skipped here with the reason printed): an interactive busybox shell over hvc0, and Debian's
// stock kernel finding the console over virtio-pci with the modules from its initramfs.
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
        if KVMRequirement.hardware {
            #expect(hvc0.contains("swiftlet-init: exit status 0"))
            #expect(r.status == 1, "\(r.stderr)")
        } else {
            // kvm_pvm: init dies on its first system call and the kernel panics (on hvc0), then resets.
            #expect(r.status != ExitStatus.timeout, "the VM must stop by itself: \(r.stderr)")
            #expect(r.stderr.contains("the guest kernel panicked"), "\(r.stderr)")
        }
    }

    @Test(.enabled(if: KVMRequirement.hardware, Comment(rawValue: KVMRequirement.hardwareReason)))
    func anInteractiveShellRunsOverHvc0() throws {
        // The busybox initramfs's /init starts a shell when given `sh`; its input comes from the console
        // socket, its output goes back through it.
        let path = "/tmp/swiftlet-test-shell-\(getpid()).sock"
        try LinuxBootLock.serialize { try interactiveShell(path) }
    }

    func interactiveShell(_ path: String) throws {
        let child = try #require(Spawned.start(ProcessRunner.swiftletPath, [
            "boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs, "--memory", "128M",
            "--console", "virtio", "--console-socket", path, "--timeout", "120", "--", "sh",
        ]))
        var fd: Int32 = -1
        for _ in 0..<500 where fd < 0 { fd = connectUnix(path); if fd < 0 { usleep(20_000) } }
        try #require(fd >= 0)
        let command = Array("echo virtio-shell-$((6*7)); reboot -f\n".utf8)
        usleep(3_000_000)
        _ = command.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true { let n = read(fd, &buffer, buffer.count); if n <= 0 { break }; received += buffer[0..<n] }
        close(fd)
        let result = child.wait()
        #expect(String(decoding: received, as: UTF8.self).contains("virtio-shell-42"), "\(result.stderr)")
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
        #expect(r.status == 1)
    }
}

/// An initramfs for Debian's stock kernel that loads its virtio_pci and virtio_console modules before
/// guest/linux/init runs the command: guest/debian/fetch.sh builds it (CI runs that) as
/// guest/debian/out/virtio-initramfs.cpio; SWIFTLET_DEBIAN_VIRTIO_INITRD names another.
enum DebianVirtioInitramfs {
    static var path: String {
        getenv("SWIFTLET_DEBIAN_VIRTIO_INITRD").map { String(cString: $0) } ?? DebianKernel.directory + "/virtio-initramfs.cpio"
    }
    static var present: Bool { Prerequisite.files(path) }
    static let reason = "no initramfs with Debian's virtio modules: run guest/debian/fetch.sh after guest/linux/build.sh (CI does)"
}
