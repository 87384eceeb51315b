// KVMSystem: the handle on /dev/kvm, first link of the chain KVMSystem → VirtualMachine → VCPU.
//
// It owns the system fd and answers the system ioctls: API version, capabilities, the size of the
// vCPU's kvm_run area and the CPUID the kernel can virtualize. Reference: Documentation/virt/kvm/api.rst §4.
import CKVM
import SystemPackage

public final class KVMSystem: @unchecked Sendable {
    /// The system file descriptor (owned; closed on deinit).
    public let fd: Int32
    public let path: String

    /// Opens the KVM device and checks that it speaks API version 12.
    public init(path: String = "/dev/kvm") throws(KVMError) {
        let result = ckvm_open(path)
        if result < 0 { throw KVMError.open(path: path, errno: Errno(rawValue: -result)) }
        fd = result
        self.path = path
        let version = ckvm_ioctl_none(fd, CKVM_GET_API_VERSION)
        if version != KVM_API_VERSION {
            _ = ckvm_close(fd)
            if version < 0 { throw KVMError.ioctl("KVM_GET_API_VERSION", Errno(rawValue: -version)) }
            throw KVMError.apiVersion(found: version)
        }
    }

    deinit { _ = ckvm_close(fd) }

    /// The KVM API version. The corresponding ioctl is `KVM_GET_API_VERSION`.
    public func apiVersion() throws(KVMError) -> Int32 {
        try KVMError.check(ckvm_ioctl_none(fd, CKVM_GET_API_VERSION), "KVM_GET_API_VERSION")
    }

    /// The value of a capability (0 when absent). The corresponding ioctl is `KVM_CHECK_EXTENSION`.
    public func checkExtension(_ capability: Capability) -> Int32 {
        max(0, ckvm_ioctl_int(fd, CKVM_CHECK_EXTENSION, capability.rawValue))
    }

    /// Size of the vCPU's shared kvm_run area. The corresponding ioctl is `KVM_GET_VCPU_MMAP_SIZE`.
    public func vcpuMmapSize() throws(KVMError) -> Int {
        Int(try KVMError.check(ckvm_ioctl_none(fd, CKVM_GET_VCPU_MMAP_SIZE), "KVM_GET_VCPU_MMAP_SIZE"))
    }

    /// The CPUID leaves KVM can present to a guest. The corresponding ioctl is `KVM_GET_SUPPORTED_CPUID`.
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        var capacity: UInt32 = 128
        while true {
            guard let table = ckvm_cpuid_alloc(capacity) else { throw KVMError.ioctl("KVM_GET_SUPPORTED_CPUID", .noMemory) }
            defer { ckvm_cpuid_free(table) }
            let result = ckvm_ioctl_ptr(fd, CKVM_GET_SUPPORTED_CPUID, table)
            if result == -Errno.argListTooLong.rawValue && capacity < 4096 { capacity *= 2; continue }
            _ = try KVMError.check(result, "KVM_GET_SUPPORTED_CPUID")
            return (0..<table.pointee.nent).map { CPUIDEntry(ckvm_cpuid_entry(table, $0).pointee) }
        }
    }

    /// Creates a virtual machine. The corresponding ioctl is `KVM_CREATE_VM`.
    public func createVirtualMachine() throws(KVMError) -> VirtualMachine {
        let vmFD = try KVMError.check(ckvm_ioctl_int(fd, CKVM_CREATE_VM, 0), "KVM_CREATE_VM")
        return VirtualMachine(fd: vmFD, system: self)
    }

    /// Which kernel module provides /dev/kvm, read from /sys/module.
    public static func backend(sysModule: String = "/sys/module") -> Backend {
        for backend in [Backend.intel, .amd, .pvm] where directoryExists("\(sysModule)/\(backend.moduleName)") {
            return backend
        }
        return .unknown
    }
}

/// The kernel module behind /dev/kvm.
public enum Backend: String, Sendable {
    case intel = "kvm_intel", amd = "kvm_amd", pvm = "kvm_pvm", unknown

    public var moduleName: String { rawValue }

    /// True when guest kernel code runs on the CPU (VT-x / AMD-V), not in KVM's instruction emulator.
    public var isHardware: Bool { self == .intel || self == .amd }

    public var summary: String {
        switch self {
        case .intel: "kvm_intel: hardware virtualization (Intel VT-x)"
        case .amd: "kvm_amd: hardware virtualization (AMD-V)"
        case .pvm: "kvm_pvm: software KVM (PVM): guest kernel code runs in KVM's instruction emulator"
        case .unknown: "unknown (no kvm_intel, kvm_amd or kvm_pvm in /sys/module)"
        }
    }
}

func directoryExists(_ path: String) -> Bool {
    guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.directory, .closeOnExec]) else {
        return false
    }
    try? fd.close()
    return true
}
