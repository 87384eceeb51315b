// StopSignalTests: SIGTERM, SIGINT and SIGHUP stop a running VM the orderly way (status 128 + N, the
// report written, the console socket's file removed), as QEMU's "terminating on signal" does; a signal the
// VMM was started with ignored stays ignored. Runs the real swiftlet binary on /dev/kvm.
import Glibc
import Testing
import TestSupport

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct StopSignalTests {
    let swiftlet = ProcessRunner.swiftletPath

    /// Polls the child's stdout for `text`, for up to 30 s.
    func waitUntil(_ child: Spawned, prints text: String) -> Bool {
        for _ in 0..<300 {
            if child.stdoutSoFar().contains(text) { return true }
            usleep(100_000)
        }
        return false
    }

    @Test(arguments: [(SIGTERM, 143, "SIGTERM"), (SIGINT, 130, "SIGINT"), (SIGHUP, 129, "SIGHUP")])
    func aStopSignalShutsTheRunningVMDownCleanly(signal: Int32, status: Int32, name: String) throws {
        let report = "/tmp/swiftlet-test-stop-\(getpid())-\(signal)"
        defer { unlink(report) }
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--timeout", "60", "--report", report]))
        #expect(waitUntil(child, prints: "looping forever"), "the loop guest started")
        kill(child.pid, signal)
        let r = child.wait()
        #expect(r.status == status, "\(r.stderr)")
        #expect(r.stderr.contains("swiftlet: stopped by \(name): the VM was shut down (status \(status))"), "\(r.stderr)")
        let lines = ProcessRunner.readFile(report)
        #expect(lines.contains("outcome signal") && lines.contains("exit_status \(status)"), "\(lines)")
    }

    @Test func sigtermWhileWaitingForAConsoleClientRemovesTheSocket() throws {
        let path = "/tmp/swiftlet-test-stop-\(getpid()).sock"
        defer { unlink(path) }
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--console", "virtio",
                                                          "--console-socket", path, "--timeout", "60"]))
        var waiting = false
        for _ in 0..<300 where !waiting {
            waiting = child.stderrSoFar().contains("waiting for a client on \(path)")
            if !waiting { usleep(100_000) }
        }
        #expect(waiting && access(path, F_OK) == 0, "the VMM listens on its console socket")
        kill(child.pid, SIGTERM)
        let r = child.wait()
        #expect(r.status == 143, "\(r.stderr)")
        #expect(r.stderr.contains("swiftlet: stopped by SIGTERM"), "\(r.stderr)")
        #expect(access(path, F_OK) != 0, "the socket file is removed")
    }

    @Test func anIgnoredSIGINTStaysIgnored() {
        // A shell without job control starts background jobs with SIGINT ignored, so that Ctrl-C reaches
        // only the foreground: the VMM must not take SIGINT back.
        let r = ProcessRunner.run("/bin/sh", ["-c", "'\(swiftlet)' boot --guest loop --timeout 2 & p=$!; sleep 0.7; kill -INT $p; wait $p; echo status=$?"])
        #expect(r.stdout.contains("status=8"), "ran on until --timeout: \(r.stdout) \(r.stderr)")
        #expect(!r.stderr.contains("stopped by SIGINT"))
    }
}
