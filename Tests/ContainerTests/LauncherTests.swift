// LauncherTests: real containers on this machine, with real namespaces and cgroups, running the
// busybox rootfs. They need root (the rootless case drops to nobody itself) and run one at a time,
// because some compare the host's mount table and cgroup trees before and after (HostState: every
// cgroup hierarchy mounted, v1 or v2, less the cgroups other launchers name as theirs, such as those
// of CLITests' and CompareTests' `swiftlet container run` children running meanwhile).
@testable import Container
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .enabled(if: Fixtures.canRunContainers, Comment(rawValue: Fixtures.containerProblem)))
struct LauncherTests {
    // MARK: - isolation

    @Test func commandIsPID1() {
        let run = Run.container(["sh", "-c", "echo $$"])
        #expect(run.status == 0)
        #expect(run.output == "1\n")
    }

    @Test func hostnameIsTheContainers() {
        #expect(Run.container(["hostname"]).output == "swiftlet\n")
        let named = Run.container(["hostname"]) { $0.hostname = "box-7" }
        #expect(named.output == "box-7\n")
    }

    @Test func hostProcessesAreInvisible() {
        let me = getpid()
        let run = Run.container(["sh", "-c", "ls /proc | grep '^[0-9]' | tr '\\n' ' '; test -e /proc/\(me) && echo VISIBLE"])
        let pids = run.output.split(separator: " ").compactMap { Int($0) }
        #expect(run.status == 1, "the test for the launcher's pid fails: \(run.output)")
        #expect(pids.contains(1))
        #expect(pids.count <= 4, "only the container's own processes: \(pids)")
        #expect(!run.output.contains("VISIBLE"))
    }

    @Test func onlyLoopbackExistsAndIsUp() {
        let run = Run.container(["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate; ip -o link | cut -d: -f2"])
        #expect(run.status == 0)
        let lines = run.output.split(separator: "\n").map { $0.trimmingCharacters(in: " ") }
        #expect(lines.first == "lo")
        #expect(lines.filter { $0 == "lo" }.count == 2, "only lo in /sys/class/net and in ip link: \(run.output)")
        #expect(run.output.contains("unknown"), "lo is up (operstate unknown, as loopback reports it)")
    }

    @Test func capEffIsTheOCIDefaultSet() {
        let run = Run.container(["grep", "-E", "^Cap(Eff|Bnd|Prm|Amb)", "/proc/self/status"])
        #expect(run.output.contains("CapEff:\t0000000020000420"))
        #expect(run.output.contains("CapBnd:\t0000000020000420"))
        #expect(run.output.contains("CapPrm:\t0000000020000420"))
    }

    @Test func deniedSyscallReturnsEPERM() {
        // unshare(CLONE_NEWUSER) needs no capability, so without the filter it succeeds; with it,
        // seccomp answers EPERM.
        let denied = Run.container(["unshare", "-U", "true"])
        #expect(denied.status != 0)
        #expect(denied.output.contains("Operation not permitted"))
        let unfiltered = Run.container(["unshare", "-U", "true"]) { $0.seccomp = false }
        #expect(unfiltered.status == 0, "without seccomp the same call works: \(unfiltered.output)")
        // reboot(2) needs CAP_SYS_BOOT, outside the OCI default set (and the filter denies it too): busybox
        // reports EPERM and fails with 1, and the shell (PID 1) lives on to say so.
        let reboot = Run.container(["sh", "-c", "reboot -f; echo status=$?"])
        #expect(reboot.status == 0)
        #expect(reboot.output.contains("reboot: (null): Operation not permitted\n"), "\(reboot.output)")
        #expect(reboot.output.contains("status=1\n"), "\(reboot.output)")
    }

    @Test func maskedAndReadOnlyPathsHoldInsideTheContainer() {
        let run = Run.container(["sh", "-c", """
            wc -c < /proc/keys; ls /sys/firmware | wc -l
            echo 1 > /proc/sys/kernel/printk_ratelimit 2>/dev/null && echo WROTE-PROC-SYS
            echo x > /sys/kernel/x 2>/dev/null && echo WROTE-SYS
            grep -c ' /sys sysfs ro' /proc/mounts
            """])
        let lines = run.output.split(separator: "\n").map { $0.trimmingCharacters(in: " ") }
        #expect(lines.prefix(2) == ["0", "0"], "masked /proc/keys and /sys/firmware are empty: \(run.output)")
        #expect(!run.output.contains("WROTE"))
        #expect(lines.last == "1")
    }

    @Test func readOnlyRootRefusesWrites() {
        let run = Run.container(["sh", "-c", "touch /etc/x 2>&1; touch /dev/shm/ok && echo shm-ok"]) { $0.rootReadonly = true }
        #expect(run.output.contains("Read-only file system"))
        #expect(run.output.contains("shm-ok"))
    }

    // MARK: - cgroups

    @Test func memoryHogIsOOMKilledAndReported() throws {
        let run = Run.container(["sh", "-c", "a=0123456789; while true; do a=\"$a$a\"; done"]) {
            $0.resources.memoryBytes = 32 << 20
        }
        #expect(run.status == 137)
        let result = try #require(run.result)
        #expect((result.cgroup?.oomKills ?? 0) >= 1)
        #expect(result.notices.contains { $0.hasPrefix("out of memory: the container reached its memory limit of 32 MiB") })
    }

    @Test func forkBombIsContainedByPidsLimit() throws {
        // PID 1 starts the bomb and spins on a builtin; the test kills the container once the pids
        // controller has refused a fork (pids.events "max" above 0), or after 60 s.
        let current = Box<Int?>(nil)
        let refused = Box(false)
        let run = Run.container(["sh", "-c", "b() { b | b & }; b; while :; do :; done"], configure: {
            $0.resources.pids = 32
            $0.resources.cpuQuotaMicroseconds = 50_000
            $0.resources.cpuPeriodMicroseconds = 100_000
        }, options: { options in
            options.onStart = { pid in
                refused.value = pollUntil(timeout: 60, interval: 0.05) {
                    (ContainerCgroup.counter("max", in: (HostCgroup.directory("pids", of: pid) ?? "/nonexistent") + "/pids.events") ?? 0) > 0
                }
                current.value = Int(HostCgroup.read("pids", "pids.current", of: pid) ?? "")
                kill(pid, SIGKILL)
            }
        })
        #expect(refused.value, "the pids limit refused a fork within 60 s")
        #expect(run.status == 137)
        let result = try #require(run.result)
        #expect((result.cgroup?.pidsLimitHits ?? 0) > 0)
        #expect(result.notices.contains { $0.hasPrefix("process limit: the container reached its pids limit of 32") })
        let seen = try #require(current.value)
        #expect(seen <= 32)
    }

    @Test func cpuLimitIsWrittenToTheCgroup() {
        let quota = Box<String?>(nil)
        // The command outlives the read: a process that has exited is back in the root cgroup (v1 moves
        // exiting tasks to the root css), so it waits on its stdin until the test has read the limit.
        let hold = Hold()
        let run = Run.container(["sh", "-c", "grep ':cpu:' /proc/self/cgroup; read _ || :"], configure: {
            $0.resources.cpuQuotaMicroseconds = 50_000
            $0.resources.cpuPeriodMicroseconds = 100_000
        }, options: { options in
            options.stdin = hold.readEnd
            options.onStart = { pid in
                quota.value = HostCgroup.read("cpu", "cpu.cfs_quota_us", of: pid) ?? HostCgroup.read("cpu", "cpu.max", of: pid)
                hold.release()
            }
        })
        #expect(run.status == 0)
        #expect(run.output == "1:cpu:/\n", "the cgroup namespace is rooted at the container's cgroup")
        #expect(quota.value == "50000" || quota.value == "50000 100000", "v1 cpu.cfs_quota_us or v2 cpu.max: \(quota.value ?? "nil")")
    }

    // MARK: - process

    @Test(arguments: [
        (["true"], false, Int32(0)),
        (["sh", "-c", "exit 7"], false, 7),
        (["sh", "-c", "kill -INT $$"], true, 130),
        (["sh", "-c", "kill -KILL $$"], true, 137),
    ])
    func exitStatusesPropagate(command: [String], initProcess: Bool, expected: Int32) {
        let run = Run.container(command) { $0.initProcess = initProcess }
        #expect(run.status == expected, "\(command): \(run.output)")
    }

    @Test func killedPID1Gives137() {
        let run = Run.container(["sleep", "30"], options: { $0.onStart = { pid in kill(pid, SIGKILL) } })
        #expect(run.status == 137)
        #expect(run.result?.signal == SIGKILL)
    }

    @Test func launcherForwardsSIGTERMThroughInit() {
        let run = Run.container(["sleep", "30"], configure: { $0.initProcess = true }, options: { options in
            options.forwardSignals = true
            options.onStart = { _ in kill(getpid(), SIGTERM) }
        })
        #expect(run.status == 143)
    }

    @Test func initIsPID1AndTheCommandItsChild() {
        let run = Run.container(["sh", "-c", "echo $$; cat /proc/1/status | grep PPid"]) { $0.initProcess = true }
        #expect(run.output == "2\nPPid:\t0\n")
    }

    // MARK: - cleanup and bad input

    @Test(.changesHostState) func hundredRunsLeaveMountsAndCgroupsAsTheyWere() {
        let before = HostState.capture()
        // The snapshot must see a container's cgroups, or comparing two of them proves nothing.
        let during = Box<HostState?>(nil)
        let hold = Hold()
        let first = Run.container(["sh", "-c", "read _ || :"], configure: {
            $0.resources.memoryBytes = 64 << 20
            $0.resources.pids = 64
        }, options: { options in
            options.stdin = hold.readEnd
            options.onStart = { _ in during.value = HostState.capture(); hold.release() }
        })
        #expect(first.status == 0)
        let added = during.value.map { $0.cgroupPaths.subtracting(before.cgroupPaths) } ?? []
        // One directory per hierarchy holding memory, pids and the device rules (v1 devices, else cgroup2).
        let layout = try? CgroupLayout.detect()
        let hierarchies = Set([CgroupController.memory, .pids, .devices].compactMap {
            (layout?.controllers[$0] ?? ($0 == .devices ? layout?.unified : nil))?.mountPoint
        })
        #expect(added.count == hierarchies.count && added.allSatisfy { $0.contains("/\(ContainerCgroup.prefix)\(getpid())-") },
                "a memory, a pids and a devices cgroup of this launcher, seen by the snapshot: \(added)")
        var failures = 0
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            // With limits, so every run creates, joins and removes a memory and a pids cgroup.
            for _ in 0..<100 {
                let run = Run.container(["true"]) {
                    $0.resources.memoryBytes = 64 << 20
                    $0.resources.pids = 64
                }
                if run.status != 0 { failures += 1 }
            }
        }
        #expect(failures == 0)
        let after = HostState.capture()
        #expect(after.mountinfo == before.mountinfo)
        #expect(after.cgroups == before.cgroups)
        print("100 container runs took \(elapsed)")
    }

    @Test func staleCgroupOfAKilledLauncherIsRemovedByTheNextRun() throws {
        let pidMax = Int(FileSystemProbe.read("/proc/sys/kernel/pid_max")?.trimmingCharacters(in: "\n") ?? "") ?? 4_194_304
        let stale = "/sys/fs/cgroup/pids/\(ContainerCgroup.prefix)\(pidMax + 1)-1"
        #expect(mkdir(stale, 0o755) == 0)
        #expect(Run.container(["true"]).status == 0)
        #expect(!FileSystemProbe.exists(stale))
    }

    @Test(.changesHostState) func killedLauncherLeavesNothingRunning() throws {
        // A launcher in a child process, SIGKILLed while its container sleeps: the container dies
        // with it (PR_SET_PDEATHSIG) and the next run removes the cgroup it left.
        let probe = try #require(Spawned.start(Self.testBinary, ["--testing-library", "swift-testing", "--filter", "launcherProbe"],
                                               environment: ["SWIFTLET_LAUNCHER_PROBE": "1", "SWIFTLET_PROBE_ROOTFS": Fixtures.rootfsPath]))
        let before = HostState.capture(launchers: [probe.pid])
        let started = pollUntil(timeout: 60) { HostProcesses.count(commandLine: ["sleep", "4242"]) == 1 || probe.hasExited }
        #expect(started && HostProcesses.count(commandLine: ["sleep", "4242"]) == 1, "the probe's container runs sleep 4242: \(probe.stdoutSoFar())")
        let whileRunning = HostState.capture(launchers: [probe.pid])
        kill(probe.pid, SIGKILL)
        _ = probe.wait(deadline: 30)
        // PR_SET_PDEATHSIG is delivered as the launcher dies; the container's PID 1 then takes a moment.
        let gone = pollUntil(timeout: 30) { HostProcesses.count(commandLine: ["sleep", "4242"]) == 0 }
        #expect(gone, "the container's sleep died with its launcher")
        #expect(whileRunning.cgroups != before.cgroups, "the snapshot sees the probe's cgroup")
        // The killed launcher could not remove its cgroup; the next run's sweep does. (Any launcher sweeps:
        // a CLITests or CompareTests container started meanwhile may have done it already.)
        #expect(Run.container(["true"]).status == 0)
        #expect(HostState.capture(launchers: [probe.pid]).cgroups == before.cgroups, "the next run removed it")
    }

    @Test(.changesHostState) func badInputIsOneLineAndLeavesNothingBehind() throws {
        let before = HostState.capture()
        let missing = Run.container(spec: ContainerSpec.standard(rootPath: "/nonexistent/rootfs", args: ["true"]))
        #expect(missing.status == 125)
        #expect(missing.error?.description == "rootfs: cannot use /nonexistent/rootfs (No such file or directory)")

        let notFound = Run.container(["no-such-command"])
        #expect(notFound.status == 127)
        #expect(notFound.error?.description == "exec: no-such-command: command not found in the container (No such file or directory)")

        let notExecutable = Run.container(["/etc/passwd"])
        #expect(notExecutable.status == 126)

        let badCwd = Run.container(["true"]) { $0.process.cwd = "/no/such/dir" }
        #expect(badCwd.status == 125)
        #expect(badCwd.error?.description == "cwd: cannot change to /no/such/dir in the container (No such file or directory)")

        let badUser = Run.container(["true"]) { $0.process.user.uid = 5; $0.uidMappings = [IDMapping(containerID: 0, hostID: 0, size: 1)] }
        #expect(badUser.error?.description == "spec: process uid 5 is not mapped in the user namespace")

        // A limit beyond the host's memory is the kernel's to accept: memory.limit_in_bytes (v1) and
        // memory.max (v2) take any page-aligned value up to PAGE_COUNTER_MAX pages (2^51 of 4 KiB), and 2^62
        // bytes is 2^50 pages. The container runs under exactly that limit.
        let limit = Box<String?>(nil)
        let hold = Hold()
        let tooMuch = Run.container(["sh", "-c", "read _ || :"], configure: { $0.resources.memoryBytes = 1 << 62 }, options: { options in
            options.stdin = hold.readEnd
            options.onStart = { pid in
                limit.value = HostCgroup.read("memory", "memory.limit_in_bytes", of: pid) ?? HostCgroup.read("memory", "memory.max", of: pid)
                hold.release()
            }
        })
        #expect(tooMuch.status == 0, "\(tooMuch.output) \(tooMuch.error?.description ?? "")")
        #expect(limit.value == "4611686018427387904")

        for run in [missing, notFound, notExecutable, badCwd, badUser] {
            #expect(!(run.error?.description.contains("\n") ?? true))
        }
        let after = HostState.capture()
        #expect(after.mountinfo == before.mountinfo)
        #expect(after.cgroups == before.cgroups)
    }

    // MARK: - rootless

    static var testBinary: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "/proc/self/exe"
    }

    static var userNamespacesForUnprivileged: Bool {
        let max = Int(FileSystemProbe.read("/proc/sys/user/max_user_namespaces")?.trimmingCharacters(in: "\n") ?? "0") ?? 0
        let clone = FileSystemProbe.read("/proc/sys/kernel/unprivileged_userns_clone")?.trimmingCharacters(in: "\n") ?? "1"
        return Prerequisite.available(max > 0 && clone != "0" && FileSystemProbe.exists("/usr/bin/setpriv"))
    }

    @Test(.enabled(if: userNamespacesForUnprivileged, "needs unprivileged user namespaces and setpriv"))
    func rootlessRunAsNobody() {
        let (status, output) = Shell.run("""
            SWIFTLET_ROOTLESS_PROBE=1 SWIFTLET_PROBE_ROOTFS='\(Fixtures.rootfsPath)' setpriv --reuid 65534 --regid 65534 --clear-groups \
            \(Self.testBinary) --testing-library swift-testing --filter rootlessProbe
            """)
        #expect(status == 0, "\(output)")
        #expect(output.contains("PROBE uid=0 map=0 65534 1 caps=0000000020000420 host=swiftlet pid=1\nstatus=0"), "\(output)")
    }
}

/// The halves of LauncherTests that run in a child process the test starts: as nobody (rootless)
/// or as a launcher the test then kills. Skipped unless that child process sets their variable.
@Suite struct LauncherProbes {
    @Test(.enabled(if: getenv("SWIFTLET_LAUNCHER_PROBE") != nil, "the child half of a launcher test: runs only inside the process that test starts"))
    func launcherProbe() {
        var spec = ContainerSpec.standard(rootPath: String(cString: getenv("SWIFTLET_PROBE_ROOTFS")), args: ["sleep", "4242"])
        spec.resources.pids = 100
        _ = try? Launcher.run(spec)
    }

    @Test(.enabled(if: getenv("SWIFTLET_ROOTLESS_PROBE") != nil, "the child half of the rootless test: runs only inside the process that test starts as nobody"))
    func rootlessProbe() throws {
        #expect(geteuid() == 65534)
        let rootfs = String(cString: getenv("SWIFTLET_PROBE_ROOTFS"))
        let script = #"printf 'PROBE uid=%s map=%s caps=%s host=%s pid=%s\n' "$(id -u)" "$(tr -s ' ' < /proc/self/uid_map | sed 's/^ //')" "$(grep CapEff /proc/self/status | cut -f2)" "$(hostname)" $$"#
        let spec = ContainerSpec.standard(rootPath: rootfs, args: ["sh", "-c", script])
        let result = try Launcher.run(spec)
        print("status=\(result.exitStatus)")
        #expect(result.exitStatus == 0)
        // A limit needs a cgroup an unprivileged user cannot create here: one clear error.
        var limited = spec
        limited.resources.memoryBytes = 32 << 20
        #expect(throws: ContainerError.self) { try Launcher.run(limited) }
    }
}

/// The host state container runs must not change: the test process's mount table, and the directories of
/// every cgroup hierarchy mounted (v1 controllers, the v2 tree, wherever they are), less the cgroups that
/// other launchers name as theirs (`swiftlet-PID-N` for a PID not this process's nor in `launchers`):
/// CLITests and CompareTests run `swiftlet container run` children at the same time as LauncherTests.
struct HostState: Equatable {
    var mountinfo: String
    /// Mount point → the directories below it.
    var cgroups: [String: Set<String>]

    /// Every cgroup directory, as mount point + relative path.
    var cgroupPaths: Set<String> { Set(cgroups.flatMap { mount, directories in directories.map { mount + $0 } }) }

    static func capture(launchers: [pid_t] = []) -> HostState {
        let ours = Set([getpid()] + launchers).map { "\(ContainerCgroup.prefix)\($0)-" }
        func otherLaunchers(_ path: String) -> Bool {
            path.split(separator: "/").contains { component in
                component.hasPrefix(ContainerCgroup.prefix) && !ours.contains { component.hasPrefix($0) }
            }
        }
        var cgroups: [String: Set<String>] = [:]
        for mount in (try? MountInfo.current()) ?? [] where mount.fsType == "cgroup" || mount.fsType == "cgroup2" {
            cgroups[mount.mountPoint] = FileSystemProbe.directories(under: mount.mountPoint).filter { !otherLaunchers($0) }
        }
        return HostState(mountinfo: FileSystemProbe.read("/proc/self/mountinfo") ?? "", cgroups: cgroups)
    }
}

/// Reads a file of the host cgroup a container process is in: the v1 hierarchy that has `controller`, or
/// else the v2 tree (cgroup2 at /sys/fs/cgroup, or at /sys/fs/cgroup/unified on a hybrid host).
enum HostCgroup {
    static func directory(_ controller: String, of pid: pid_t) -> String? {
        let membership = (FileSystemProbe.read("/proc/\(pid)/cgroup") ?? "").split(separator: "\n")
        let mounts = (try? MountInfo.current()) ?? []
        for line in membership {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[1].split(separator: ",").contains(Substring(controller)) else { continue }
            guard let mount = mounts.first(where: { $0.fsType == "cgroup" && $0.superOptions.split(separator: ",").contains(Substring(controller)) }) else { return nil }
            return mount.mountPoint + (fields[2] == "/" ? "" : String(fields[2]))
        }
        guard let line = membership.first(where: { $0.hasPrefix("0::") }),
              let mount = mounts.first(where: { $0.fsType == "cgroup2" }) else { return nil }
        let path = line.dropFirst(3)
        return mount.mountPoint + (path == "/" ? "" : String(path))
    }

    static func read(_ controller: String, _ file: String, of pid: pid_t) -> String? {
        guard let directory = directory(controller, of: pid) else { return nil }
        return FileSystemProbe.read(directory + "/" + file)?.trimmingCharacters(in: "\n")
    }
}

/// Processes on the host, from /proc.
enum HostProcesses {
    /// How many processes run exactly `commandLine` (their /proc/PID/cmdline).
    static func count(commandLine: [String]) -> Int {
        let wanted = commandLine.joined(separator: "\0") + "\0"
        guard let dir = opendir("/proc") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard Int32(name) != nil else { continue }
            let bytes = ProcessRunner.readBytes("/proc/\(name)/cmdline")
            if String(decoding: bytes, as: UTF8.self) == wanted { count += 1 }
        }
        return count
    }
}

/// A value a @Sendable callback sets for the test to check afterwards.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

extension StringProtocol {
    func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text = text.dropFirst() }
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}
