// CpioSymlinkTests: symbolic links in Swiftlet's newc writer (swiftlet-vm packs a bundle's rootfs, whose
// /bin is mostly links to busybox), read back by the host's cpio(1) as the kernel would unpack them.
import Testing
import TestSupport
import X86Boot

#if canImport(Glibc)
import Glibc
#endif

struct CpioSymlinkTests {
    @Test func aSymlinkIsModeLinkWithItsTargetAsData() {
        let archive = Cpio.archive([.directory("/container"), .symlink("/container/sh", target: "/bin/busybox")])
        let text = String(decoding: archive, as: UTF8.self)
        // The second header: mode 0o120777 (S_IFLNK | 0777) = 0xA1FF, filesize 12 = len("/bin/busybox").
        #expect(text.contains("0000A1FF"))
        #expect(text.contains("container/sh\0") && text.contains("/bin/busybox"))
    }

    @Test(.enabled(if: Prerequisite.available(Prerequisite.tool("cpio") != nil), "cpio is not installed (apt-get install cpio; setup.sh does)"))
    func cpioReadsTheLinkBack() throws {
        let cpio = try #require(Prerequisite.tool("cpio"))
        let path = "/tmp/swiftlet-test-symlink-\(getpid()).cpio"
        ProcessRunner.writeFile(path, Cpio.archive([.directory("/c"), .symlink("/c/sh", target: "/bin/busybox"),
                                                    Cpio.File(path: "/c/f", mode: 0o644, bytes: Array("x\n".utf8))]))
        defer { unlink(path) }
        let r = ProcessRunner.run("/bin/sh", ["-c", "\(cpio) -itv < \(path)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("lrwxrwxrwx") && r.stdout.contains("c/sh -> /bin/busybox"), "\(r.stdout)")
        #expect(r.stdout.contains("-rw-r--r--") && r.stdout.contains("c/f"), "\(r.stdout)")
    }
}
