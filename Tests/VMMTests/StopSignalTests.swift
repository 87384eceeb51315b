// StopSignalTests: SIGTERM, SIGINT and SIGHUP stop a running VM the orderly way (status 128 + N, the
// report written, the console socket's file removed), as QEMU's "terminating on signal" does; a signal the
// VMM was started with ignored stays ignored. Runs the real swiftlet binary on /dev/kvm.
import Glibc
import Testing
import TestSupport

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct StopSignalTests {
    let swiftlet = ProcessRunner.swiftletPath

    @Test(arguments: [(SIGTERM, 143, "SIGTERM"), (SIGINT, 130, "SIGINT"), (SIGHUP, 129, "SIGHUP")])
    func aStopSignalShutsTheRunningVMDownCleanly(signal: Int32, status: Int32, name: String) throws {
        let report = "/tmp/swiftlet-test-stop-\(getpid())-\(signal)"
        defer { unlink(report) }
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--timeout", "60", "--report", report]))
        #expect(child.awaitOutput("looping forever", timeout: 60), "the loop guest started: \(child.stderrSoFar())")
        kill(child.pid, signal)
        let r = child.wait()
        #expect(r.status == status, "\(r.stderr)")
        #expect(r.stderr.contains("swiftlet: stopped by \(name): the VM was shut down (status \(status))"), "\(r.stderr)")
        let lines = ProcessRunner.readFile(report)
        #expect(lines.contains("\"outcome\": \"signal\"") && lines.contains("\"exit_status\": \(status)"), "\(lines)")
    }

    @Test func sigtermWhileWaitingForAConsoleClientRemovesTheSocket() throws {
        let path = "/tmp/swiftlet-test-stop-\(getpid()).sock"
        defer { unlink(path) }
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--console", "virtio",
                                                          "--console-socket", path, "--timeout", "60"]))
        let waiting = child.awaitOutput("waiting for a client on \(path)", onStderr: true, timeout: 60)
        #expect(waiting && access(path, F_OK) == 0, "the VMM listens on its console socket: \(child.stderrSoFar())")
        kill(child.pid, SIGTERM)
        let r = child.wait()
        #expect(r.status == 143, "\(r.stderr)")
        #expect(r.stderr.contains("swiftlet: stopped by SIGTERM"), "\(r.stderr)")
        #expect(access(path, F_OK) != 0, "the socket file is removed")
    }

    @Test func anIgnoredSIGINTStaysIgnored() {
        // A shell without job control starts background jobs with SIGINT ignored, so that Ctrl-C reaches
        // only the foreground: the VMM must not take SIGINT back. The signal goes once the guest has printed
        // its line, so the VMM has set up its stop signals by then (a SIGINT before that proves nothing).
        let out = "/tmp/swiftlet-test-ignored-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(out) }
        let r = ProcessRunner.run("/bin/sh", ["-c", """
            '\(swiftlet)' boot --guest loop --timeout 4 > \(out) & p=$!
            i=0; until grep -q 'looping forever' \(out) || [ $i -ge 3000 ]; do i=$((i+1)); sleep 0.01; done
            grep -q 'looping forever' \(out) && echo guest-running
            kill -INT $p; wait $p; echo status=$?
            """], deadline: 120)
        #expect(r.stdout.contains("guest-running\n"), "the loop guest printed its line within 30 s: \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("status=8"), "ran on until --timeout: \(r.stdout) \(r.stderr)")
        #expect(!r.stderr.contains("stopped by SIGINT"))
    }
}
