// ConfinementTests: `swiftlet boot` confines itself once the machine is built (Confinement.swift): a
// confined run works, every thread carries a seccomp filter, no capability is left and no_new_privs is
// set, a forbidden call from a thread is reported in one line naming the thread and the call (status 159),
// and --no-confine turns it all off. The allowlists themselves are checked through the BPF interpreter.
import Glibc
import Seccomp
import Testing
import TestSupport
@testable import VMM

@Suite struct ConfinementAllowlistTests {
    func action(_ kind: VMMThreadKind, _ name: String, _ arguments: [UInt64] = []) throws -> SeccompAction? {
        BPFInterpreter(program: try Confinement.profile(for: kind).compile()).action(for: name, arguments: arguments)
    }

    @Test(arguments: VMMThreadKind.allCases)
    func whatAnAttackerWantsIsTrappedOnEveryThread(kind: VMMThreadKind) throws {
        #expect(try action(kind, "openat") == .errno(UInt16(EACCES)), "glibc's one read of overcommit_memory fails quietly")
        for name in ["execve", "execveat", "fork", "vfork", "clone", "clone3", "socket", "connect", "ptrace",
                     "mount", "setuid", "capset", "prctl", "seccomp", "bpf", "kill", "process_vm_writev", "memfd_create", "mprotect_does_not_exist"] {
            guard SeccompArchitecture.native.number(of: name) != nil else { continue }
            #expect(try action(kind, name) == .trap, "\(kind.rawValue): \(name)")
        }
        #expect(try action(kind, "write") == .allow)
        #expect(try action(kind, "exit_group") == .allow)   // the SIGSYS report needs write and exit_group
        // ioctl: KVM_CREATE_VM (0xAE01) and KVM_CREATE_VCPU (0xAE41) were needed only while building.
        #expect(try action(kind, "ioctl", [3, 0xAE01]) == .trap)
        #expect(try action(kind, "ioctl", [3, 0xAE41]) == .trap)
        #expect(try action(kind, "write", []) == .allow)
    }

    @Test func onlyVCPUThreadsRunTheGuest() throws {
        let kvmRun: UInt64 = 0xAE80
        #expect(try action(.vcpu, "ioctl", [5, kvmRun]) == .allow)
        #expect(try action(.vcpu, "ioctl", [5, 0xFFFF_FFFF_0000_AE80]) == .allow) // a sign-extended request is the same request to the kernel
        for kind in [VMMThreadKind.main, .virtio, .consoleInput, .gdb] { #expect(try action(kind, "ioctl", [5, kvmRun]) == .trap, "\(kind)") }
        #expect(try action(.virtio, "fcntl", [4, UInt64(F_SETFD), 1]) == .allow)
        #expect(try action(.virtio, "fcntl", [4, UInt64(F_SETFL), 0]) == .trap)
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ConfinementRunTests {
    let swiftlet = ProcessRunner.swiftletPath

    @Test func aConfinedRunHasNoCapabilitiesAndAFilterOnEveryThread() throws {
        let child = try #require(Spawned.start(swiftlet, ["boot", "--guest", "loop", "--timeout", "30"]))
        #expect(child.awaitOutput("looping forever", timeout: 60), "\(child.stderrSoFar())")
        let status = ProcessRunner.readFile("/proc/\(child.pid)/status")
        for field in ["CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"] {
            #expect(status.contains(field), "\(field) in \(status)")
        }
        var names: [String] = []
        var tasks = opendir("/proc/\(child.pid)/task")
        while let tasksDir = tasks, let entry = readdir(tasksDir) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if tid.hasPrefix(".") { continue }
            let comm = ProcessRunner.readFile("/proc/\(child.pid)/task/\(tid)/comm").trimmingSuffixNewline
            if comm.hasPrefix("kvm-") { continue } // KVM's own kernel worker, listed among the tasks
            names.append(comm)
            #expect(ProcessRunner.readFile("/proc/\(child.pid)/task/\(tid)/status").contains("Seccomp:\t2"), "thread \(comm) is filtered")
        }
        if let tasksDir = tasks { closedir(tasksDir); tasks = nil }
        #expect(names.contains("swiftlet") && names.contains("vcpu0"), "\(names)")
        kill(child.pid, SIGTERM)
        #expect(child.wait().status == 128 + SIGTERM)
    }

    @Test(arguments: [("vcpu", "vcpu0"), ("main", "swiftlet")])
    func aForbiddenCallIsReportedNamingTheThreadAndTheCall(kind: String, thread: String) {
        func run(_ arguments: [String]) -> (status: Int32, stderr: String) {
            guard let child = Spawned.start(swiftlet, arguments, environment: ["SWIFTLET_CONFINEMENT_SELFTEST": kind]) else { return (-1, "spawn failed") }
            let r = child.wait(deadline: 30)
            return (r.status, r.stderr)
        }
        let r = run(["boot"])
        #expect(r.status == ExitStatus.seccompViolation, "\(r.stderr)")
        #expect(r.stderr.contains("swiftlet: seccomp: thread \(thread) made system call 41 (socket), outside its seccomp allowlist; stopping"), "\(r.stderr)")
        let unconfined = run(["boot", "--no-confine"])
        #expect(unconfined.status == ExitStatus.guestExit(0), "--no-confine: the same call is harmless: \(unconfined.stderr)")
    }

    @Test func aConfinedRunStillWritesItsReport() {
        let report = "/tmp/swiftlet-test-confined-\(getpid()).report"
        defer { unlink(report) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--report", report], deadline: 30)
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr)")
        let text = ProcessRunner.readFile(report)
        #expect(text.contains("\"exit_status\": \(ExitStatus.guestExit(0))") && text.contains("\"seccomp_threads\""), "\(text)")
    }
}

@Suite(.enabled(if: KVMRequirement.available && geteuid() == 0, "needs /dev/kvm and root (namespaces, pivot_root)"))
struct JailTests {
    let swiftlet = ProcessRunner.swiftletPath

    @Test func aJailedGuestRunsToItsExitStatus() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--jail"], deadline: 30)
        #expect(r.status == ExitStatus.guestExit(0), "\(r.stderr)")
        #expect(r.stdout.contains("multiboot magic ok"))
    }

    @Test func theJailedVMMIsPID1InNewNamespacesWithAnEmptyRootAsNobody() throws {
        let child = try #require(Spawned.start(swiftlet, ["boot", "--jail", "--guest", "loop", "--timeout", "30"]))
        #expect(child.awaitOutput("looping forever", timeout: 60), "\(child.stderrSoFar())")
        // The launcher's only child is the jailed VMM.
        let children = ProcessRunner.readFile("/proc/\(child.pid)/task/\(child.pid)/children").split(separator: " ")
        let vmm = try #require(children.first.map(String.init))
        let status = ProcessRunner.readFile("/proc/\(vmm)/status")
        #expect(status.contains("Uid:\t65534\t65534\t65534\t65534"), "\(status)")
        #expect(status.contains("CapEff:\t0000000000000000") && status.contains("NoNewPrivs:\t1"), "\(status)")
        #expect(status.contains("NSpid:\t\(vmm)\t1"), "PID 1 of its own namespace: \(status)")
        for ns in ["net", "mnt", "pid", "ipc", "uts"] {
            var mine = [CChar](repeating: 0, count: 64), its = [CChar](repeating: 0, count: 64)
            _ = readlink("/proc/self/ns/\(ns)", &mine, 63)
            _ = readlink("/proc/\(vmm)/ns/\(ns)", &its, 63)
            #expect(String(cString: mine) != String(cString: its), "\(ns) namespace")
        }
        var entries: [String] = []
        if let dir = opendir("/proc/\(vmm)/root/") {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { entries.append(name) }
            }
            closedir(dir)
        }
        #expect(entries.isEmpty, "the root is empty: \(entries)")
        kill(child.pid, SIGTERM)   // the launcher forwards it
        #expect(child.wait().status == 128 + SIGTERM)
    }
}

extension String {
    var trimmingSuffixNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}

@Suite(.enabled(if: KVMRequirement.available && geteuid() == 0, "needs /dev/kvm and root (namespaces, pivot_root)"),
       .enabled(if: LinuxArtefacts.present, Comment(rawValue: LinuxArtefacts.reason)))
struct JailedLinuxTests {
    /// The minimal Linux, jailed and confined, over virtio-pci (ioeventfds and MSI from the confined threads).
    @Test func theMinimalLinuxRunsItsCommandJailedAndConfined() {
        let r = LinuxBootLock.serialize {
            ProcessRunner.run(ProcessRunner.swiftletPath, ["boot", "--jail", "--kernel", LinuxArtefacts.bzImage, "--initrd", LinuxArtefacts.initramfs,
                                                           "--console", "virtio", "--virtio-transport", "pci", "--", "uname", "-r"], deadline: 300)
        }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("-swiftlet"), "uname -r ran in the guest: \(r.stdout.suffix(500))")
        #expect(!r.stderr.contains("seccomp"), "\(r.stderr)")
    }
}
