// VMMError and ExitStatus: how a Swiftlet run ends, as the one-line message and the process exit status.
//
// Exit statuses: 0 when the guest ended well (wrote 0 to the debug-exit port, halted, reset, or a Linux
// guest's command exited 0); a multiboot guest's debug-exit value or a Linux guest's command status as
// they are (`--qemu-exit-status` gives QEMU's (v << 1) | 1 instead, odd and never 0); the values below are
// Swiftlet's own. Every run ends with one line on stderr that says how it ended, so a status that could
// come from either side is never ambiguous to a reader (MachineOutcome.message).
import Devices
import GuestMemory
import KVM
import Snapshot
import X86Boot

public enum ExitStatus {
    /// The guest halted (HLT with interrupts off) or reset the machine.
    public static let success: Int32 = 0
    /// Bad input: options, sizes, kernel file.
    public static let badInput: Int32 = 2
    /// /dev/kvm missing, not permitted, or a KVM ioctl failed while building the VM.
    public static let kvmUnavailable: Int32 = 4
    /// The guest crashed: triple fault, emulation failure, entry failure, KVM internal error.
    public static let guestCrashed: Int32 = 6
    /// The guest was still running when --timeout expired.
    public static let timeout: Int32 = 8
    /// A VMM thread made a system call outside its seccomp allowlist (128 + SIGSYS; Confinement.swift).
    public static let seccompViolation: Int32 = 159

    /// The process exit status for a guest that wrote `value` to the debug-exit port. Tests compare
    /// against this rather than a literal, so that the convention has one definition.
    public static func guestExit(_ value: UInt32) -> Int32 { DebugExitRule.value.status(for: value) }
}

public enum VMMError: Error, CustomStringConvertible {
    case invalidOption(String)
    case kernelFile(path: String, reason: String)
    case kernel(path: String, KernelImageError)
    case memory(GuestMemoryError)
    case kvm(KVMError)
    case bus(String)
    case thread(String)
    /// `--console-socket`: no client connected within --timeout; the guest never ran.
    case noConsoleClient(path: String, seconds: Double)
    /// A snapshot file that was refused (bad input: status 2, no VM started).
    case snapshot(path: String, SnapshotError)
    /// Writing a snapshot failed (the disk, the file system).
    case snapshotWrite(path: String, String)

    public var description: String {
        switch self {
        case let .invalidOption(message): message
        case let .kernelFile(path, reason): "cannot read kernel \(path): \(reason)"
        case let .kernel(path, error): "kernel \(path): \(error)"
        case let .memory(error): "\(error)"
        case let .kvm(error): "\(error)"
        case let .bus(message): "machine layout: \(message)"
        case let .thread(message): "cannot start a vCPU thread: \(message)"
        case let .snapshot(path, error): "snapshot \(path): \(error)"
        case let .snapshotWrite(path, why): "cannot write snapshot \(path): \(why)"
        case let .noConsoleClient(path, seconds): "no client connected to --console-socket \(path) within --timeout \(formatSeconds(seconds)); the guest never ran"
        }
    }

    public var exitStatus: Int32 {
        switch self {
        case .kvm: ExitStatus.kvmUnavailable
        case .thread: ExitStatus.kvmUnavailable
        case .noConsoleClient: ExitStatus.timeout
        case .snapshotWrite: ExitStatus.kvmUnavailable
        default: ExitStatus.badInput
        }
    }
}
