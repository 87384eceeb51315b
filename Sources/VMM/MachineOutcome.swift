// MachineOutcome: how a run ended, with the message the user reads and the process exit status.
import Devices
import Glibc

public enum MachineOutcome: Sendable, Equatable {
    /// The guest wrote `value` to the debug-exit port; `status` follows the machine's DebugExitRule.
    case debugExit(value: UInt32, status: Int32)
    /// A Linux guest's init reported the exit status of its command through the debug-exit port (the
    /// status of `swiftlet boot -- COMMAND`, like `docker run`'s).
    case commandExited(status: Int32)
    /// A Linux guest's kernel panicked (and rebooted or halted): the console's panic line.
    case kernelPanic(line: String)
    /// The guest executed HLT with nothing left to wake it.
    case halted(vcpu: UInt32)
    /// The guest pulsed the CPU reset line (i8042 command 0xFE).
    case reset(how: String)
    /// Triple fault: KVM_EXIT_SHUTDOWN, with a register dump.
    case tripleFault(vcpu: UInt32, registers: String)
    /// KVM's instruction emulator could not run an instruction.
    case emulationFailure(vcpu: UInt32, report: String)
    /// Other KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_FAIL_ENTRY, unknown exits.
    case crashed(vcpu: UInt32, report: String)
    /// --timeout expired while the guest was running.
    case timeout(seconds: Double)
    /// --timeout expired before a client connected to --console-socket: the guest never ran.
    case noConsoleClient(path: String, seconds: Double)
    /// The VMM itself failed while running (an ioctl error).
    case vmmFailure(String)
    /// The user pressed Ctrl-A x.
    case stoppedByUser
    /// `stop` on the control socket (status 130, as Ctrl-A x).
    case stoppedByControlSocket
    /// The VMM got SIGTERM, SIGINT or SIGHUP and shut the VM down (status 128 + the signal's number).
    case stoppedBySignal(Int32)
    /// `boot --snapshot FILE`: the guest wrote the snapshot marker and its state is in FILE (status 0).
    case snapshotWritten(summary: String)

    public var exitStatus: Int32 {
        switch self {
        case let .debugExit(_, status): status
        case let .commandExited(status): status
        case .halted, .reset, .snapshotWritten: ExitStatus.success
        case .tripleFault, .emulationFailure, .crashed, .kernelPanic: ExitStatus.guestCrashed
        case .timeout, .noConsoleClient: ExitStatus.timeout
        case .vmmFailure: ExitStatus.kvmUnavailable
        case .stoppedByUser, .stoppedByControlSocket: 130
        case let .stoppedBySignal(number): 128 + number
        }
    }

    /// The line printed to stderr when the run ends: how the guest ended and the status that gives.
    public var message: String? {
        switch self {
        case let .debugExit(value, status):
            status == Int32(min(value, 255)) ? "the guest wrote \(value) to the debug-exit port (status \(status))"
                : "the guest wrote \(value) to the debug-exit port (status \(status): QEMU's rule, (\(value) << 1) | 1)"
        case let .commandExited(status):
            status > 128 && status < 160 ? "the guest's command was killed by signal \(status - 128) (status \(status))"
                : "the guest's command exited with status \(status)"
        case let .kernelPanic(line): "the guest kernel panicked (status \(ExitStatus.guestCrashed)): \(line.trimmingCharacters())"
        case let .halted(vcpu): "guest halted (vCPU \(vcpu) executed HLT with nothing to wake it; status 0)"
        case let .reset(how): "guest reset the machine (\(how)); Swiftlet stops instead of rebooting (status 0)"
        case let .tripleFault(vcpu, registers): "guest triple-faulted on vCPU \(vcpu) (KVM_EXIT_SHUTDOWN): an exception occurred while the CPU could not deliver one (status \(ExitStatus.guestCrashed))\n\(registers)"
        case let .emulationFailure(vcpu, report): "vCPU \(vcpu): \(report)"
        case let .crashed(vcpu, report): "vCPU \(vcpu): \(report)"
        case let .timeout(seconds): "guest still running after --timeout \(formatSeconds(seconds)); stopped it (status \(ExitStatus.timeout))"
        case let .noConsoleClient(path, seconds): VMMError.noConsoleClient(path: path, seconds: seconds).description
        case let .vmmFailure(message): message
        case .stoppedByUser: "stopped by Ctrl-A x (status 130)"
        case .stoppedByControlSocket: "stopped by the control socket's stop command (status 130)"
        case let .snapshotWritten(summary): "\(summary); the VM was stopped (status 0; restore it with `swiftlet restore`)"
        case let .stoppedBySignal(number): "stopped by \(signalName(number)): the VM was shut down (status \(128 + number))"
        }
    }
}

/// "SIGTERM" for 15, and so on for the signals a VMM is asked to stop with; "signal N" otherwise.
func signalName(_ number: Int32) -> String {
    switch number {
    case SIGTERM: "SIGTERM"
    case SIGINT: "SIGINT"
    case SIGHUP: "SIGHUP"
    default: "signal \(number)"
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
}
