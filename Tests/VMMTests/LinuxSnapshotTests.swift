// LinuxSnapshotTests: the minimal Linux is booted once to its init's snapshot point (`boot --snapshot`),
// and each restore runs a different command in the VM that snapshot froze, ending with that command's
// status, without the kernel booting again (no banner on the console). Two restores run at once.
import Glibc
import Testing
import TestSupport
import VMM

@Suite(.serialized,
       .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct LinuxSnapshotTests {
    @Test func oneBootManyCommands() throws {
        let path = "/tmp/swiftlet-test-linux-\(getpid()).snap"
        defer { unlink(path) }
        let boot = LinuxBootLock.serialize {
            ProcessRunner.run(ProcessRunner.swiftletPath, ["boot", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs,
                                                           "--memory", "128M", "--timeout", "240", "--snapshot", path], deadline: 300)
        }
        #expect(boot.status == ExitStatus.success, "\(boot.stderr)")
        #expect(boot.stdout.contains("swiftlet-init: ready for a command (snapshot point)"), "\(boot.stdout)")
        #expect(boot.stderr.contains("swiftlet: snapshot \(path): 1 vCPU"), "\(boot.stderr)")

        let r = ProcessRunner.run(ProcessRunner.swiftletPath, ["restore", path, "--timeout", "60", "-v", "--",
                                                               "/bin/sh", "-c", "echo restored $((6 * 7)); exit 7"], deadline: 120)
        #expect(r.status == 7, "the command's status: \(r.stderr)")
        #expect(r.stdout.contains("restored 42"), "\(r.stdout)")
        #expect(!r.stdout.contains("Linux version"), "the kernel did not boot again: \(r.stdout)")
        #expect(r.stderr.contains("this VM was restored from a snapshot, not booted"), "\(r.stderr)")
        #expect(r.stderr.contains("command starts: init's execve (lab marker 4)"), "\(r.stderr)")

        let children = ["3", "5"].compactMap { status in
            Spawned.start(ProcessRunner.swiftletPath, ["restore", path, "--timeout", "60", "--", "/bin/sh", "-c", "exit \(status)"])
        }
        #expect(children.count == 2)
        let statuses = children.map { $0.wait().status }
        #expect(statuses == [3, 5], "each restore ran its own command")
    }
}
