// KVMError: what went wrong while talking to /dev/kvm, phrased as the message a user reads.
//
// Every case names the operation (usually the ioctl) and keeps the errno, so "KVM_CREATE_VM failed:
// Cannot allocate memory" is what reaches the terminal, with a hint where one helps.
import SystemPackage

public enum KVMError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Opening the device failed.
    case open(path: String, errno: Errno)
    /// The kernel speaks a KVM API version other than 12.
    case apiVersion(found: Int32)
    /// An ioctl failed.
    case ioctl(String, Errno)
    /// The kernel lacks a capability Swiftlet needs.
    case missingCapability(Capability)
    /// mmap of the vCPU's kvm_run area failed.
    case mapRunArea(Errno)

    public var description: String {
        switch self {
        case let .open(path, errno):
            var hint = ""
            switch errno {
            case .noSuchFileOrDirectory:
                hint = " (is the kvm module loaded? `modprobe kvm_intel` or `kvm_amd`; in a VM, enable nested virtualization)"
            case .permissionDenied:
                hint = " (is your user in the kvm group? `sudo usermod -aG kvm $USER`, then log in again)"
            default: break
            }
            return "cannot open \(path): \(errno)\(hint)"
        case let .apiVersion(found):
            return "KVM API version is \(found), Swiftlet needs 12 (the stable API since Linux 2.6.22)"
        case let .ioctl(name, errno):
            return "\(name) failed: \(errno)"
        case let .missingCapability(cap):
            return "KVM lacks \(cap.name), which Swiftlet needs"
        case let .mapRunArea(errno):
            return "cannot map the vCPU's kvm_run area: \(errno)"
        }
    }

    /// Turns a CKVM return value (result or -errno) into a result or a thrown `.ioctl` error.
    @inline(__always)
    static func check(_ result: Int32, _ name: StaticString) throws(KVMError) -> Int32 {
        if result < 0 { throw KVMError.ioctl("\(name)", Errno(rawValue: -result)) }
        return result
    }
}
