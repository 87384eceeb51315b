// ControlSocket: `--control-socket PATH`, a Unix socket on which a running VM takes one-line text commands,
// and the pause signals. One client at a time; each command line gets one reply line, "ok ..." or
// "error ...". The run loop's thread polls the socket and does the work (Machine.run), so a command never
// races the end of the run.
//
//   pause            park every vCPU outside KVM_RUN         → ok paused
//   resume           let them run again                      → ok running
//   snapshot PATH    write a snapshot (pausing around it)    → ok snapshot PATH: ... (the summary line)
//   status           → ok running | ok paused
//   stop             end the run (status 130, as Ctrl-A x)   → ok stopping
//
// Signals: SIGUSR1 pauses the VM, SIGUSR2 resumes it (each through its own eventfd, ckvm_forward_signal_to_eventfd);
// with --snapshot FILE, SIGQUIT writes the snapshot now, as the guest's marker would, and stops the VM.
import CKVM
import Glibc

final class ControlSocket {
    let path: String
    let listenFD: Int32
    private(set) var clientFD: Int32 = -1
    private var pending: [UInt8] = []

    init(path: String) throws(VMMError) {
        self.path = path
        listenFD = try UnixSocketListener.listen(path: path, option: "--control-socket")
    }

    /// The fds to poll: the listener, and the client while one is connected.
    var pollFDs: [Int32] { clientFD >= 0 ? [listenFD, clientFD] : [listenFD] }

    /// Accepts a waiting client (a second one replaces the first).
    func accept() {
        let fd = Glibc.accept(listenFD, nil, nil)
        guard fd >= 0 else { return }
        if clientFD >= 0 { Glibc.close(clientFD) }
        clientFD = fd
        pending = []
    }

    /// Reads what the client sent; returns the complete command lines (empty when it hung up).
    func readCommands() -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(clientFD, &buffer, buffer.count)
        guard n > 0 else { Glibc.close(clientFD); clientFD = -1; pending = []; return [] }
        pending += buffer[0..<n]
        var lines: [String] = []
        while let newline = pending.firstIndex(of: 0x0A) {
            lines.append(String(decoding: pending[..<newline], as: UTF8.self).trimmingCharacters())
            pending.removeSubrange(...newline)
        }
        if pending.count > 4096 { pending = [] } // a line that long is not a command
        return lines
    }

    func reply(_ line: String) {
        guard clientFD >= 0 else { return }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { send(clientFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func close() {
        if clientFD >= 0 { Glibc.close(clientFD); clientFD = -1 }
        Glibc.close(listenFD)
        unlink(path)
    }
}

/// SIGUSR1 (pause) and SIGUSR2 (resume) as two eventfds the run loop polls.
final class PauseSignals {
    let pauseFD: Int32
    let resumeFD: Int32
    /// With `--snapshot FILE`: SIGQUIT, "save the state and quit", takes the snapshot now (-1 otherwise).
    let snapshotFD: Int32

    /// `enabled` false (--forward-signals: SIGUSR1 and SIGUSR2 belong to the guest's command): no fds, no handlers.
    init(enabled: Bool = true, snapshotOnQuit: Bool = false) {
        pauseFD = enabled ? ckvm_eventfd() : -1
        resumeFD = enabled ? ckvm_eventfd() : -1
        snapshotFD = snapshotOnQuit ? ckvm_eventfd() : -1
        if snapshotFD >= 0 { _ = ckvm_forward_signal_to_eventfd(SIGQUIT, snapshotFD); _ = ckvm_thread_signal_mask(SIGQUIT, 0) }
        if pauseFD >= 0 { _ = ckvm_forward_signal_to_eventfd(SIGUSR1, pauseFD); _ = ckvm_thread_signal_mask(SIGUSR1, 0) }
        if resumeFD >= 0 { _ = ckvm_forward_signal_to_eventfd(SIGUSR2, resumeFD); _ = ckvm_thread_signal_mask(SIGUSR2, 0) }
    }

    func remove() {
        if pauseFD >= 0 { _ = ckvm_forward_signal_to_eventfd(SIGUSR1, -1); _ = ckvm_close(pauseFD) }
        if resumeFD >= 0 { _ = ckvm_forward_signal_to_eventfd(SIGUSR2, -1); _ = ckvm_close(resumeFD) }
        if snapshotFD >= 0 { _ = ckvm_forward_signal_to_eventfd(SIGQUIT, -1); _ = ckvm_close(snapshotFD) }
    }
}

extension Machine {
    /// The lab port saw the snapshot marker (on a vCPU thread): with `--snapshot FILE`, that vCPU parks at
    /// its next loop turn, right after the marker's OUT, and the run loop writes the snapshot.
    func snapshotMarkerSeen() {
        guard configuration.snapshotPath != nil, !snapshotDue.load(ordering: .acquiring) else { return }
        pauseGate.request()
        snapshotDue.store(true, ordering: .releasing)
        let fd = wakeFD.load(ordering: .acquiring)
        if fd >= 0 { var byte: UInt8 = 2; _ = write(fd, &byte, 1) }
    }

    /// The run loop's side of `--snapshot FILE`: wait for the vCPUs to park, write the file, end the run.
    func takeMarkerSnapshot() {
        guard let path = configuration.snapshotPath else { return }
        guard pauseVCPUs() else { finish(.vmmFailure("cannot write snapshot \(path): the vCPUs did not stop within a second")); return }
        do {
            let summary = try writeSnapshot(to: path)
            finish(.snapshotWritten(summary: summary.line))
        } catch {
            finish(.vmmFailure("\(error)"))
        }
    }

    /// Runs one control-socket command; returns the reply line.
    func controlCommand(_ line: String) -> String {
        let words = line.split(separator: " ", maxSplits: 1).map(String.init)
        switch words.first ?? "" {
        case "pause":
            return pauseVCPUs() ? "ok paused" : "error the vCPUs did not stop within a second"
        case "resume":
            resumeVCPUs()
            return "ok running"
        case "status":
            return pauseGate.isPaused ? "ok paused" : "ok running"
        case "snapshot":
            guard words.count == 2, !words[1].isEmpty else { return "error give a path: snapshot PATH" }
            do { return "ok " + (try snapshotWhileRunning(to: words[1])).line } catch { return "error \(error)" }
        case "stop":
            finish(.stoppedByControlSocket)
            return "ok stopping"
        case "":
            return "error empty command (pause, resume, snapshot PATH, status, stop)"
        default:
            return "error unknown command '\(words[0])' (pause, resume, snapshot PATH, status, stop)"
        }
    }
}
