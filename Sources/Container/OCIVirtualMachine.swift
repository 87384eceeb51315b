// OCIVirtualMachine: `swiftlet-vm create`, the same OCI bundle run in a Swiftlet microVM instead of in
// namespaces. What maps where:
//   root.path                  packed into a cpio under /container and appended to the guest's initramfs
//                              (at `start`, by `swiftlet oci-vm-boot`: SwiftletLauncher/OCIVirtualMachineBoot)
//   process.args, env, cwd     the guest's init runs `chroot /container sh -c 'mount proc, devtmpfs; exec "$@"' sh
//                              env -i ENV... sh -c 'cd CWD && exec "$@"' CWD ARGS...`
//   process.user               `nsenter -S UID -G GID` (busybox's: setgid, setgroups(0), setuid) inside the chroot
//   resources.memory.limit     the VM's RAM (at least 64 MiB, what the minimal kernel needs; 128 MiB without a limit)
//   resources.cpu quota/period the VM's vCPUs, rounded up
//   the container's process    the VMM process: its pid is the container's, its exit status the command's
//                              (the guest's init reports it through the debug-exit port)
//   kill                       a signal to the VMM, which boots with --forward-signals: SIGTERM, SIGINT, SIGHUP,
//                              SIGQUIT, SIGUSR1, SIGUSR2 go on to the command in the guest (init polls the
//                              lab ports' signal mailbox); SIGKILL ends the VMM and the command with it
// The kernel and initramfs: $SWIFTLET_VM_KERNEL and $SWIFTLET_VM_INITRD, else guest/linux/out/bzImage and
// initramfs.cpio of the checkout the binary was built in (.build/<configuration>/swiftlet).
// A terminal (podman -t): a pty, the master to --console-socket, the slave the VMM's stdio (its interactive
// console). Not supported in a VM: exec (refused in one line); namespaces and mounts beyond the rootfs are
// not used (the VM is the isolation).

import CLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum OCIVirtualMachine {
    /// The minimal kernel and its busybox initramfs boot in 64 MiB (the Linux boot tests use that); without
    /// a limit the VM gets 128 MiB.
    static let minimumMemoryMiB: UInt64 = 64
    static let defaultMemoryMiB: UInt64 = 128

    static func create(spec: ContainerSpec, id: String, bundle: String, directory: String, startFD: Int32,
                       consoleSocket: String?, warn: (String) -> Void) throws(ContainerError) -> OCIState {
        let executable = selfExecutable()
        let (kernel, initrd) = try guestFiles(executable: executable)
        let arguments = vmmArguments(spec: spec, kernel: kernel, initrd: initrd, directory: directory)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, startFD, 3)
        // A terminal (podman -t): a pty whose master goes to the console socket and whose slave is the VMM's
        // stdio, so the VMM runs its interactive console (raw mode, Ctrl-A x) on it, as `swiftlet boot` on a terminal.
        var slave: Int32 = -1
        defer { if slave >= 0 { close(slave) } }
        if spec.process.terminal {
            guard let consoleSocket else {
                throw ContainerError(step: "vm", "process.terminal is true but no --console-socket was given")
            }
            slave = try terminal(sendingMasterTo: consoleSocket)
            for fd in Int32(0)...2 { posix_spawn_file_actions_adddup2(&actions, slave, fd) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, 0x80) // POSIX_SPAWN_SETSID (glibc): its own session, away from conmon's
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw ContainerError(step: "vm", "cannot start \(executable)", errno: .init(rawValue: spawned)) }
        let startTime = OCIState.processStat(pid)?.startTime ?? 0
        var state = OCIState(id: id, pid: pid, startTime: startTime, bundle: bundle, rootfs: spec.rootPath, created: OCIState.timestamp())
        state.mode = "vm"
        return state
    }

    /// The VMM's command line: `oci-vm-boot` waits for `start`, then boots the bundle's command with
    /// --forward-signals, so that `kill` reaches the command in the guest rather than stopping the VM.
    static func vmmArguments(spec: ContainerSpec, kernel: String, initrd: String, directory: String) -> [String] {
        ["swiftlet", "oci-vm-boot", "--start-fd", "3", "--rootfs", spec.rootPath, "--base-initrd", initrd,
         "--initrd-out", directory + "/initrd.cpio", "boot", "--kernel", kernel, "--initrd", directory + "/initrd.cpio",
         "--memory", "\(memoryMiB(spec))M", "--cpus", String(cpus(spec)), "--cmdline", "quiet", "--forward-signals", "--"]
            + guestCommand(spec.process)
    }

    /// A new pty: the master sent to `socket` (SCM_RIGHTS), the slave returned.
    static func terminal(sendingMasterTo socket: String) throws(ContainerError) -> Int32 {
        var slave: Int32 = -1
        let master = sl_open_pty(&slave)
        guard master >= 0 else { throw ContainerError(step: "terminal", "cannot create a pty", errno: .init(rawValue: -master)) }
        let sent = sl_send_fd_to_socket(socket, master)
        close(master)
        guard sent == 0 else {
            close(slave)
            throw ContainerError(step: "terminal", "cannot send the pty to the console socket \(socket)", errno: .init(rawValue: -sent))
        }
        return slave
    }

    /// The guest's command: into the bundle's rootfs, with the spec's environment, user and cwd.
    static func guestCommand(_ process: ContainerSpec.Process) -> [String] {
        // Inside the chroot, first (as root) the container's own /proc and /dev: the guest's are mounted outside it.
        var command = ["chroot", "/container", "sh", "-c", mountsThenExec, "sh"]
        if process.user.uid != 0 || process.user.gid != 0 {
            command += ["nsenter", "-S", String(process.user.uid), "-G", String(process.user.gid)]
        }
        command += ["env", "-i"] + process.env
        command += ["sh", "-c", "cd \"$0\" && exec \"$@\"", process.cwd] + process.args
        return command
    }

    /// Two busybox mounts (a fork+exec each, about 1.5 s apiece on kvm_pvm), quietly skipped where the image
    /// lacks the directory or the tool; then the rest of the command line.
    static let mountsThenExec = "mount -t proc proc /proc 2>/dev/null; mount -t devtmpfs devtmpfs /dev 2>/dev/null; exec \"$@\""

    static func memoryMiB(_ spec: ContainerSpec) -> UInt64 {
        spec.resources.memoryBytes.map { max(minimumMemoryMiB, $0 >> 20) } ?? defaultMemoryMiB
    }

    static func cpus(_ spec: ContainerSpec) -> Int {
        guard let quota = spec.resources.cpuQuotaMicroseconds, quota > 0 else { return 1 }
        let period = Int64(clamping: spec.resources.cpuPeriodMicroseconds ?? ResourceLimits.defaultCPUPeriod)
        let (rounded, overflow) = quota.addingReportingOverflow(max(period, 1) - 1)
        return overflow ? 1 : Int(min(max(rounded / max(period, 1), 1), 64))
    }

    static func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "/proc/self/exe"
    }

    static func guestFiles(executable: String) throws(ContainerError) -> (String, String) {
        // .build/<triple>/<configuration>/swiftlet: the checkout is what comes before /.build/.
        let parts = executable.split(separator: "/", omittingEmptySubsequences: false)
        let checkout = parts.firstIndex(of: ".build").map { parts[..<$0].joined(separator: "/") } ?? "."
        let kernel = getenv("SWIFTLET_VM_KERNEL").map { String(cString: $0) } ?? checkout + "/guest/linux/out/bzImage"
        let initrd = getenv("SWIFTLET_VM_INITRD").map { String(cString: $0) } ?? checkout + "/guest/linux/out/initramfs.cpio"
        for path in [kernel, initrd] where !FileSystem.exists(path) {
            throw ContainerError(step: "vm", "\(path) is missing", hint: "build it with guest/linux/build.sh, or set SWIFTLET_VM_KERNEL and SWIFTLET_VM_INITRD")
        }
        return (kernel, initrd)
    }
}
