// Namespace: the kinds of Linux namespace a container can get (namespaces(7)), with the OCI type name,
// the clone flag that creates one, and the /proc/self/ns entry that shows the kernel supports it.
import CLinux

public enum NamespaceKind: String, CaseIterable, Sendable, Comparable {
    case user, pid, mount, uts, ipc, network, cgroup

    /// The OCI `linux.namespaces[].type` spelling.
    public var ociType: String { rawValue }

    /// The entry under /proc/self/ns.
    public var procName: String {
        switch self {
        case .user: return "user"
        case .pid: return "pid"
        case .mount: return "mnt"
        case .uts: return "uts"
        case .ipc: return "ipc"
        case .network: return "net"
        case .cgroup: return "cgroup"
        }
    }

    /// The CLONE_NEW* flag.
    public var cloneFlag: UInt {
        switch self {
        case .user: return UInt(sl_clone_newuser)
        case .pid: return UInt(sl_clone_newpid)
        case .mount: return UInt(sl_clone_newns)
        case .uts: return UInt(sl_clone_newuts)
        case .ipc: return UInt(sl_clone_newipc)
        case .network: return UInt(sl_clone_newnet)
        case .cgroup: return UInt(sl_clone_newcgroup)
        }
    }

    /// What the namespace isolates, for messages and docs.
    public var isolates: String {
        switch self {
        case .user: return "user and group ids, capabilities"
        case .pid: return "process ids"
        case .mount: return "the mount table"
        case .uts: return "hostname and domain name"
        case .ipc: return "System V IPC and POSIX message queues"
        case .network: return "network devices, addresses, ports, routes"
        case .cgroup: return "the view of the cgroup hierarchy"
        }
    }

    public static func < (a: NamespaceKind, b: NamespaceKind) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
