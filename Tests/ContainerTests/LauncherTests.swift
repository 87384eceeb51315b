// LauncherTests: real containers on this machine, with real namespaces and cgroups, running the
// busybox rootfs. They need root (the rootless case drops to nobody itself) and run one at a time,
// because some compare the host's mount table and cgroup trees before and after.
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
        let reboot = Run.container(["sh", "-c", "reboot -f; echo status=$?"])
        #expect(reboot.output.contains("Operation not permitted") || reboot.output.contains("status=1"))
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
        // PID 1 starts the bomb and spins on a builtin; the test kills the container after 2 s.
        let current = Box<Int?>(nil)
        let run = Run.container(["sh", "-c", "b() { b | b & }; b; while :; do :; done"], configure: {
            $0.resources.pids = 32
            $0.resources.cpuQuotaMicroseconds = 50_000
            $0.resources.cpuPeriodMicroseconds = 100_000
        }, options: { options in
            options.onStart = { pid in
                Pause.sleep(seconds: 2)
                current.value = Int(HostCgroup.read("pids", "pids.current", of: pid) ?? "")
                kill(pid, SIGKILL)
            }
        })
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
        // exiting tasks to the root css), so a fast command under load would race the onStart read.
        let run = Run.container(["sh", "-c", "grep ':cpu:' /proc/self/cgroup; sleep 2"], configure: {
            $0.resources.cpuQuotaMicroseconds = 50_000
            $0.resources.cpuPeriodMicroseconds = 100_000
        }, options: { options in
            options.onStart = { pid in quota.value = HostCgroup.read("cpu", "cpu.cfs_quota_us", of: pid) }
        })
        #expect(run.status == 0)
        #expect(run.output == "1:cpu:/\n", "the cgroup namespace is rooted at the container's cgroup")
        #expect(quota.value == "50000")
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

    @Test func hundredRunsLeaveMountsAndCgroupsAsTheyWere() {
        let before = HostState.capture()
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

    @Test func killedLauncherLeavesNothingRunning() throws {
        // A launcher in a child process, SIGKILLed while its container sleeps: the container dies
        // with it (PR_SET_PDEATHSIG) and the next run removes the cgroup it left.
        let before = HostState.capture()
        let (_, output) = Shell.run("""
            SWIFTLET_LAUNCHER_PROBE=1 SWIFTLET_PROBE_ROOTFS='\(Fixtures.rootfsPath)' \(Self.testBinary) --testing-library swift-testing \
            --filter launcherProbe >/dev/null 2>&1 & probe=$!
            for i in $(seq 100); do ps -eo args | grep -q '^[s]leep 4242' && break; sleep 0.05; done
            echo started=$(ps -eo args | grep -c '^[s]leep 4242')
            kill -KILL $probe; wait $probe 2>/dev/null; sleep 0.3
            echo left=$(ps -eo args | grep -c '^[s]leep 4242')
            """)
        #expect(output.contains("started=1"), "\(output)")
        #expect(output.contains("left=0"), "the container's sleep died with its launcher: \(output)")
        #expect(HostState.capture().cgroups != before.cgroups, "the killed launcher could not remove its cgroup")
        #expect(Run.container(["true"]).status == 0)
        #expect(HostState.capture().cgroups == before.cgroups, "the next run removed it")
    }

    @Test func badInputIsOneLineAndLeavesNothingBehind() throws {
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

        let tooMuch = Run.container(["true"]) { $0.resources.memoryBytes = 1 << 62 }
        #expect(tooMuch.status == 125 || tooMuch.status == 0, "a huge limit is either accepted or refused in one line")

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

/// The host state container runs must not change.
struct HostState: Equatable {
    var mountinfo: String
    var cgroups: [String: Set<String>]

    static func capture() -> HostState {
        var cgroups: [String: Set<String>] = [:]
        for controller in ["memory", "pids", "cpu", "unified"] {
            cgroups[controller] = FileSystemProbe.directories(under: "/sys/fs/cgroup/" + controller)
        }
        return HostState(mountinfo: FileSystemProbe.read("/proc/self/mountinfo") ?? "", cgroups: cgroups)
    }
}

/// Reads a file of the host cgroup a container process is in (v1 layout, as on this machine).
enum HostCgroup {
    static func read(_ controller: String, _ file: String, of pid: pid_t) -> String? {
        let membership = FileSystemProbe.read("/proc/\(pid)/cgroup") ?? ""
        guard let line = membership.split(separator: "\n").first(where: { $0.split(separator: ":").dropFirst().first == Substring(controller) }) else {
            return nil
        }
        let path = "/sys/fs/cgroup/\(controller)" + line.split(separator: ":", maxSplits: 2)[2]
        return FileSystemProbe.read(path + "/" + file)?.trimmingCharacters(in: "\n")
    }
}

/// A value a @Sendable callback sets for the test to check afterwards.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

enum Pause {
    static func sleep(seconds: Double) {
        usleep(UInt32(seconds * 1_000_000))
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text = text.dropFirst() }
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}
