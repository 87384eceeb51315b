// SnapshotRestoreTests: a running tiny guest is snapshotted and restored on the real /dev/kvm, and the
// restored guest carries on where it stopped: the counter guest prints 1-5 before its snapshot marker and
// only 6-10 after a restore, and ends with the sum 55 that needs both its RAM and its registers back.
// Several restores of one file run at once; a control socket pauses, snapshots and resumes a running VM;
// and every kind of bad snapshot file is refused with one line and status 2 before any VM exists.
import Glibc
import Snapshot
import Testing
import TestSupport
import VMM

/// Boots the counter guest with `--snapshot path` in this process; returns the outcome and what it printed.
func snapshotCounter(to path: String) throws -> (outcome: MachineOutcome, output: String) {
    var c = MachineConfiguration()
    c.kernel = .embedded("counter")
    c.timeout = 60
    c.snapshotPath = path
    let console = ConsoleOutput(fd: -1, capture: true)
    let machine = try Machine.build(c, console: console)
    let outcome = machine.run()
    return (outcome, String(decoding: console.captured, as: UTF8.self))
}

/// A one-line client of `--control-socket`: sends `command`, returns the reply line.
func controlSocketCommand(_ path: String, _ command: String, timeout: Double = 20) -> String? {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        let bytes = Array(path.utf8)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else { return nil }
    let line = Array((command + "\n").utf8)
    guard write(fd, line, line.count) == line.count else { return nil }
    var reply: [UInt8] = []
    let deadline = monotonicSeconds() + timeout
    while !reply.contains(0x0A) && monotonicSeconds() < deadline {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 100) >= 0 else { return nil }
        if p.revents == 0 { continue }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { break }
        reply += buffer[0..<n]
    }
    return reply.firstIndex(of: 0x0A).map { String(decoding: reply[..<$0], as: UTF8.self) }
}

/// Rewrites a snapshot's machine record (same lengths, so the memory stays where it is) with a valid checksum.
func tamperMachine(_ path: String, to output: String, _ change: (inout SnapshotMachine) -> Void) throws {
    let bytes = ProcessRunner.readBytes(path)
    let contents = try SnapshotContents.decode(bytes, fileSize: UInt64(bytes.count))
    var records = contents.records
    var machine = contents.machine
    change(&machine)
    let index = try #require(records.firstIndex { $0.tag == "MACH" })
    records[index] = SnapshotRecord("MACH", machine.encoded())
    let (head, header) = SnapshotContents.encode(records: records, memoryLength: contents.header.memoryLength)
    try #require(header.memoryOffset == contents.header.memoryOffset, "the change kept the state's length")
    ProcessRunner.writeFile(output, head + bytes[head.count...])
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct SnapshotRestoreTests {
    let swiftlet = ProcessRunner.swiftletPath
    let path = "/tmp/swiftlet-test-snapshot-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).snap"

    @Test func counterKeepsCountingAfterARestore() throws {
        defer { unlink(path) }
        let (outcome, before) = try snapshotCounter(to: path)
        guard case .snapshotWritten = outcome else { Issue.record("\(outcome)"); return }
        #expect(outcome.exitStatus == ExitStatus.success)
        #expect(before.contains("counter: 5\n") && !before.contains("counter: 6"), "\(before)")

        let console = ConsoleOutput(fd: -1, capture: true)
        let restored = try Machine.restore(from: path, timeout: 60, console: console)
        #expect(restored.restoredFrom?.path == path)
        let result = restored.run()
        let after = String(decoding: console.captured, as: UTF8.self)
        #expect(after.hasPrefix("counter: 6\n") && after.contains("counter: 10\n"), "\(after)")
        #expect(!after.contains("counter: 1\n") && !after.contains("counting to 10"), "a restore does not boot: \(after)")
        #expect(result.exitStatus == ExitStatus.guestExit(55), "RAM and registers came back: \(result)")
    }

    @Test func sparseFileHoldsOnlyTheTouchedPages() throws {
        defer { unlink(path) }
        _ = try snapshotCounter(to: path)
        var info = stat()
        try #require(stat(path, &info) == 0)
        #expect(info.st_size >= 64 << 20, "the file spans the guest's 64 MiB")
        #expect(Int(info.st_blocks) * 512 < 1 << 20, "but only the touched pages take disk: \(info.st_blocks * 512) bytes")
    }

    @Test func explainReadsTheSnapshotBack() throws {
        defer { unlink(path) }
        _ = try snapshotCounter(to: path)
        let r = ProcessRunner.run(swiftlet, ["explain", "--snapshot", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("kernel          embedded guest 'counter' (multiboot)"), "\(r.stdout)")
        // The counter's running sum 1 + ... + 5 is in RBX at the marker, and the marker's value in RAX.
        #expect(r.stdout.contains("rax 0x534e4150 rbx 0xf"), "\(r.stdout)")
        #expect(r.stdout.contains("64-bit long mode, CPL 0"), "\(r.stdout)")
        #expect(r.stdout.contains("serial-com1: 16 bytes"), "\(r.stdout)")
        let foreign = ProcessRunner.run(swiftlet, ["explain", "--snapshot", "/proc/self/status"])
        #expect(foreign.status == ExitStatus.badInput, "\(foreign.stderr)")
    }

    @Test func manyRestoresOfOneFileRunAtOnce() throws {
        defer { unlink(path) }
        _ = try snapshotCounter(to: path)
        let children = (0..<4).compactMap { _ in Spawned.start(swiftlet, ["restore", path, "--timeout", "60"]) }
        #expect(children.count == 4)
        for child in children {
            let r = child.wait()
            #expect(r.status == ExitStatus.guestExit(55), "\(r.stderr)")
            #expect(r.stdout.hasPrefix("counter: 6\n") && r.stdout.contains("counter: 10\n"), "\(r.stdout)")
        }
    }

    @Test func badFilesAreRefusedWithOneLineAndStatus2() throws {
        defer { unlink(path) }
        _ = try snapshotCounter(to: path)
        let good = ProcessRunner.readBytes(path)
        let bad = path + ".bad"
        defer { unlink(bad) }
        func refused(_ bytes: [UInt8]?, _ extra: [String] = [], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
            if let bytes { ProcessRunner.writeFile(bad, bytes) }
            let r = ProcessRunner.run(swiftlet, ["restore", bytes == nil ? path : bad] + extra)
            #expect(r.status == ExitStatus.badInput, "\(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.contains(expected), "\(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)", sourceLocation: sourceLocation)
            #expect(!r.stdout.contains("counter:"), "no VM ran", sourceLocation: sourceLocation)
        }
        refused(Array(good.prefix(30)), [], "truncated")
        refused(Array(good.prefix(good.count - 4096)), [], "truncated")
        var flipped = good; flipped[200] ^= 0x01
        refused(flipped, [], "corrupted: CRC32C")
        refused(Array("#!/bin/sh\necho not a snapshot\n".utf8), [], "not a Swiftlet snapshot")
        var future = good; future[8] = 99
        refused(future, [], "format version 99 is newer than this swiftlet reads")
        try tamperMachine(path, to: bad) { $0.backend = $0.backend == "kvm_amd" ? "kvm_pvm" : "kvm_amd" }
        let r = ProcessRunner.run(swiftlet, ["restore", bad])
        #expect(r.status == ExitStatus.badInput && r.stderr.contains("does not fit: taken on kvm_"), "\(r.stderr)")
        try tamperMachine(path, to: bad) { $0.cpuVendor = $0.cpuVendor == "AuthenticAMD" ? "GenuineIntel" : "AuthenticAMD" }
        let vendor = ProcessRunner.run(swiftlet, ["restore", bad])
        #expect(vendor.status == ExitStatus.badInput && vendor.stderr.contains("CPU, this host's is"), "\(vendor.stderr)")
        refused(nil, ["--memory", "128M"], "does not fit: --memory 128M, the snapshot's machine has 64M")
        refused(nil, ["--cpus", "2"], "does not fit: --cpus 2, the snapshot's machine has 1")
    }

    @Test func recordsOfTheWrongSizeAreExplainedWithoutTrappingAndRefusedByRestore() throws {
        defer { unlink(path) }
        _ = try snapshotCounter(to: path)
        let bytes = ProcessRunner.readBytes(path)
        let contents = try SnapshotContents.decode(bytes, fileSize: UInt64(bytes.count))
        let shortened = path + ".short"
        defer { unlink(shortened) }
        for tag in ["REGS", "SREG", "FPU_", "XSAV", "XCRS", "DBGR", "MSRS", "EVNT", "MPST", "CPID", "CLCK", "DEVC"] {
            let records = contents.records.map { $0.tag == tag ? SnapshotRecord($0.tag, index: $0.index, [1]) : $0 }
            let (head, header) = SnapshotContents.encode(records: records, memoryLength: contents.header.memoryLength)
            ProcessRunner.writeFile(shortened, head)
            try #require(truncate(shortened, off_t(header.memoryOffset + header.memoryLength)) == 0)
            let explained = ProcessRunner.run(swiftlet, ["explain", "--snapshot", shortened])
            #expect(explained.status == 0, "explain reads what it can: \(tag): \(explained.stderr)")
            let restored = ProcessRunner.run(swiftlet, ["restore", shortened])
            #expect(restored.status == ExitStatus.badInput, "\(tag): \(restored.stderr)")
            #expect(restored.stderr.hasPrefix("swiftlet: snapshot \(shortened): "), "\(tag): \(restored.stderr)")
        }
    }

    @Test func machinesWhoseStateIsNotSavedAreRefusedBeforeTheyBoot() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--guest", "counter", "--console", "virtio", "--snapshot", path])
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)")
        #expect(r.stderr.contains("--snapshot: the virtio console's queues are not saved yet"), "\(r.stderr)")
        #expect(!r.stdout.contains("counter:"), "the guest never ran")
        #expect(access(path, F_OK) != 0, "no file was written")
    }

    @Test func controlSocketPausesSnapshotsAndResumesARunningVM() throws {
        let socketPath = path + ".sock"
        defer { unlink(path); unlink(socketPath) }
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--timeout", "60", "--control-socket", socketPath]))
        #expect(child.awaitOutput("looping forever", timeout: 60), "\(child.stderrSoFar())")
        #expect(controlSocketCommand(socketPath, "status") == "ok running")
        #expect(controlSocketCommand(socketPath, "pause") == "ok paused")
        #expect(controlSocketCommand(socketPath, "status") == "ok paused")
        let reply = controlSocketCommand(socketPath, "snapshot \(path)") ?? ""
        #expect(reply.hasPrefix("ok snapshot \(path): 1 vCPU"), "\(reply)")
        #expect(controlSocketCommand(socketPath, "resume") == "ok running")
        kill(child.pid, SIGUSR1)
        #expect(pollUntil(timeout: 10) { controlSocketCommand(socketPath, "status") == "ok paused" }, "SIGUSR1 pauses")
        kill(child.pid, SIGUSR2)
        #expect(pollUntil(timeout: 10) { controlSocketCommand(socketPath, "status") == "ok running" }, "SIGUSR2 resumes")
        #expect(controlSocketCommand(socketPath, "bogus")?.hasPrefix("error unknown command 'bogus'") == true)
        #expect(controlSocketCommand(socketPath, "stop") == "ok stopping")
        let r = child.wait()
        #expect(r.status == 130, "\(r.stderr)")
        // The snapshot of the looping guest restores into the same loop: it runs until --timeout, printing nothing new.
        let restored = ProcessRunner.run(swiftlet, ["restore", path, "--timeout", "1"])
        #expect(restored.status == ExitStatus.timeout, "\(restored.stderr)")
        #expect(!restored.stdout.contains("looping forever"), "it was restored past its greeting: \(restored.stdout)")
    }

    @Test func sigquitSnapshotsARunningVMWithSnapshotFile() throws {
        defer { unlink(path) }
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--timeout", "60", "--snapshot", path]))
        #expect(child.awaitOutput("looping forever", timeout: 60), "\(child.stderrSoFar())")
        kill(child.pid, SIGQUIT)
        let r = child.wait()
        #expect(r.status == 0, "a snapshot taken on request is a run that ended well: \(r.stderr)")
        #expect(r.stderr.contains("swiftlet: snapshot \(path): 1 vCPU"), "\(r.stderr)")
        let restored = ProcessRunner.run(swiftlet, ["restore", path, "--timeout", "1"])
        #expect(restored.status == ExitStatus.timeout, "the loop goes on from where SIGQUIT left it: \(restored.stderr)")
        #expect(!restored.stdout.contains("looping forever"), "\(restored.stdout)")
    }
}
