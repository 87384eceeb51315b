// StopSignals: SIGTERM, SIGINT and SIGHUP as a readable eventfd, so that Machine.run stops the VM the
// orderly way (devices stopped, console socket removed, terminal restored, the report written) and ends
// with status 128 + N, as QEMU's "terminating on signal" does.
//
// A C handler (ckvm_forward_signal_to_eventfd) turns each signal into a write to the eventfd, which the run
// loop polls next to its wake-up pipe; no signal masks are needed beyond unblocking the three in the
// thread that starts the others. A signal the VMM was started with ignored stays ignored (nohup's SIGHUP,
// SIGINT in a shell's background job), as the shell that arranged it expects. With --forward-signals the same
// eventfd also carries SIGQUIT, SIGUSR1 and SIGUSR2, and the run loop hands each to the guest's command.
import CKVM
import Glibc

final class StopSignals {
    /// Readable once a stop signal arrived; -1 when no eventfd could be made (the signals then keep their
    /// default action: the process ends without the orderly stop).
    let fd: Int32
    private let signals: [Int32]

    init(forwarding: Bool = false) {
        fd = ckvm_eventfd()
        signals = fd >= 0 ? ([SIGTERM, SIGINT, SIGHUP] + (forwarding ? [SIGQUIT, SIGUSR1, SIGUSR2] : [])).filter { ckvm_signal_is_ignored($0) == 0 } : []
        for signal in signals {
            // The handler first: a stop signal already pending (blocked by whoever started us) then arrives
            // as an orderly stop, not as the default action.
            _ = ckvm_forward_signal_to_eventfd(signal, fd)
            _ = ckvm_thread_signal_mask(signal, 0)
        }
    }

    /// The signal that arrived since the last call, if one did.
    func take() -> Int32? {
        fd >= 0 && ckvm_eventfd_drain(fd) > 0 ? Int32(ckvm_last_forwarded_signal()) : nil
    }

    /// Gives the signals back their earlier actions and closes the eventfd.
    func remove() {
        for signal in signals { _ = ckvm_forward_signal_to_eventfd(signal, -1) }
        if fd >= 0 { _ = ckvm_close(fd) }
    }
}
