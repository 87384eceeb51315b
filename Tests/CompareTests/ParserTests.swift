// ParserTests: the texts compare reads back, on real output captured on this project's machines: the
// minimal Linux kernel's serial console under Swiftlet on kvm_pvm, strace -f of `swiftlet container run
// -- uname -r`, and run reports; and the initramfs addition, checked with the real cpio tool.
import Compare
import Container
import Glibc
import JSON
import Testing
import TestSupport
import X86Boot

struct ReportAndProbeParsingTests {
    @Test func runReportKeepsEveryRecordAndJoinsMultiLineValues() throws {
        let text = """
        {"format": "swiftlet-run-report", "version": 2, "side": "vm",
         "markers": [{"code": 1, "ns": 100}, {"code": 2, "ns": 250}],
         "steps": [{"side": "launcher", "name": "exec done", "at_ns": 900}],
         "message": "guest triple-faulted on vCPU 0\\n  rip 0000000000100000", "exit_status": 6}
        """
        let report = try #require(ReportFile(text))
        #expect(report.version == 2)
        #expect(report.all("step") == ["launcher exec done 900"])
        #expect(report.all("marker") == ["1 100", "2 250"])
        #expect(report.text("message") == "guest triple-faulted on vCPU 0\n  rip 0000000000100000")
        #expect(report.integer("exit_status") == 6)
        #expect(report.first("missing") == nil)
    }

    @Test func theJSONLayoutRoundTripsWhatTheWritersRecord() throws {
        let written: [(key: String, value: String)] = [
            ("side", "container"), ("started_ns", "4503599627370496"), ("milestone", "1200 kernel entered at startup_64"),
            ("exit", "io 12 3400 5600"), ("unmapped", "read 0x4000000 4 0xffffffff"), ("step", "container pivot_root 77"),
            ("step", "launcher exec done 99"), ("message", "line one"), ("message", "  line two"), ("exit_status", "0"),
        ]
        let document = RunReportFormat.json(written)
        let text = document.formatted()
        #expect(text.contains("\"started_ns\": 4503599627370496,"), "integers above 2^32 stay exact: \(text)")
        #expect(text.contains("\"name\": \"kernel entered at startup_64\""))
        let report = try #require(ReportFile(text))
        #expect(report.entries.map(\.key) == ["side", "started_ns", "milestone", "exit", "unmapped", "step", "step", "message", "message", "exit_status"])
        #expect(report.entries.map(\.value) == written.map(\.value))
    }

    @Test func textWithoutTheHeaderIsNotAReport() {
        #expect(ReportFile("side vm\nexit_status 0\n") == nil)
        #expect(ReportFile("{\"side\": \"vm\", \"exit_status\": 0}") == nil)
        #expect(ReportFile("") == nil)
    }

    @Test func probeAnswersComeFromAnywhereInTheConsole() {
        let serial = """
        Swiftlet tiny guest: probe, answering swiftlet compare's questions
        swiftlet-probe: cpu-vendor AuthenticAMD
        [    3.1] some kernel line
        swiftlet-probe: memory-kib 65152\r
        swiftlet-probe: done ok
        """
        let answers = ProbeAnswers(serial)
        #expect(answers["cpu-vendor"] == "AuthenticAMD")
        #expect(answers["memory-kib"] == "65152")
        #expect(answers.finished)
        #expect(answers.keys == ["cpu-vendor", "memory-kib", "done"])
        #expect(!ProbeAnswers("swiftlet-probe: cpu-vendor X").finished)
    }
}

struct KernelLogTests {
    /// Lines of the minimal kernel's console, booted by `swiftlet boot` with 64 MiB on kvm_pvm.
    static let serial = """
    [    0.000000] Linux version 6.1.192-swiftlet (swiftlet@swiftlet) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP Thu Jan  1 00:00:00 UTC 1970
    [    0.000000] BIOS-provided physical RAM map:
    [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
    [    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved
    [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x0000000003ffffff] usable
    [    0.000000] NX (Execute Disable) protection: active
    [    0.000000] Hypervisor detected: KVM
    [   20.561146] Memory: 49936K/65144K available (4096K kernel code, 625K rwdata, 276K rodata, 668K init, 724K bss, 14952K reserved, 0K cma-reserved)
    [   25.131483] smpboot: Total of 1 processors activated (4890.81 BogoMIPS)
    """

    @Test func readsTheBannerAndItsRelease() {
        let log = KernelLog(Self.serial)
        #expect(log.release == "6.1.192-swiftlet")
        #expect(log.banner?.hasPrefix("Linux version 6.1.192-swiftlet (swiftlet@swiftlet)") == true)
    }

    @Test func readsTheMemoryMapTheKernelWasGiven() {
        let map = KernelLog(Self.serial).memoryMap
        #expect(map.count == 3)
        #expect(map[0] == KernelLog.MemoryRange(start: 0, end: 0x9_FBFF, type: "usable"))
        #expect(map[1].type == "reserved")
        #expect(map[2] == KernelLog.MemoryRange(start: 0x10_0000, end: 0x3FF_FFFF, type: "usable"))
    }

    @Test func readsMemoryTotalHypervisorAndProcessors() {
        let log = KernelLog(Self.serial)
        #expect(log.memoryTotalKiB == 65144)
        #expect(log.hypervisor == "KVM")
        #expect(log.processors == 1)
        #expect(log.panic == nil)
    }

    @Test func consoleLinesEndInCarriageReturnLineFeed() {
        // What the VMM really captures: the guest's serial driver sends "\r\n".
        let log = KernelLog(Self.serial.split(separator: "\n").joined(separator: "\r\n") + "\r\n")
        #expect(log.release == "6.1.192-swiftlet")
        #expect(log.memoryMap.count == 3)
        #expect(log.memoryTotalKiB == 65144)
        #expect(log.processors == 1)
    }

    @Test func anEmptyConsoleHasNothing() {
        let log = KernelLog("")
        #expect(log.banner == nil && log.release == nil && log.memoryMap.isEmpty && log.memoryTotalKiB == nil)
    }
}

struct SyscallCountTests {
    /// From `strace -f -qq -o FILE swiftlet container run --rootfs ... --report R -- uname -r` (28112: the
    /// launcher; 28113: the container's PID 1; run report "pid 28113"), lines cut for length.
    static let trace = """
    28112 execve(".build/debug/swiftlet", [".build/debug/swiftlet", "container", "run"], 0x7ffdc0259ed0 /* 35 vars */) = 0
    28112 brk(NULL)                         = 0x561f120f9000
    28112 clone(child_stack=NULL, flags=CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD) = 28113
    28113 rt_sigprocmask(SIG_SETMASK, [], NULL, 8) = 0
    28113 execve("/usr/bin/uname", ["uname", "-r"], 0x561f12112c40 /* 2 vars */) = -1 ENOENT (No such file or directory)
    28113 execve("/sbin/uname", ["uname", "-r"], 0x561f12112c40 /* 2 vars */) = -1 ENOENT (No such file or directory)
    28113 execve("/bin/uname", ["uname", "-r"], 0x561f12112c40 /* 2 vars */ <unfinished ...>
    28112 <... read resumed>"", 528)        = 0
    28113 <... execve resumed>)             = 0
    28112 close(5 <unfinished ...>
    28113 brk(NULL <unfinished ...>
    28112 <... close resumed>)              = 0
    28113 <... brk resumed>)                = 0x14ba2000
    28112 wait4(28113,  <unfinished ...>
    28113 brk(0x14ba2d40)                   = 0x14ba2d40
    28113 arch_prctl(ARCH_SET_FS, 0x14ba23c0) = 0
    28113 set_tid_address(0x14ba2690)       = 1
    28113 set_robust_list(0x14ba26a0, 24)   = 0
    28113 rseq(0x14ba2ce0, 0x20, 0, 0x53053053) = 0
    28113 prlimit64(0, RLIMIT_STACK, NULL, {rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}) = 0
    28113 readlink("/proc/self/exe", "/bin/busybox", 4096) = 12
    28113 getrandom("\\x1f\\x20\\xe4\\x06\\x6b\\x01\\x6b\\x22", 8, GRND_NONBLOCK) = 8
    28113 brk(NULL)                         = 0x14ba2d40
    28113 brk(0x14bc3d40)                   = 0x14bc3d40
    28113 brk(0x14bc4000)                   = 0x14bc4000
    28113 mprotect(0x5db000, 28672, PROT_READ) = 0
    28113 prctl(PR_GET_NAME, "uname")       = 0
    28113 getuid()                          = 0
    28113 uname({sysname="Linux", nodename="swiftlet", ...}) = 0
    28113 newfstatat(1, "", {st_mode=S_IFREG|0644, st_size=0, ...}, AT_EMPTY_PATH) = 0
    28113 write(1, "6.18.44-fc-v782\\n", 16) = 16
    28113 exit_group(0)                     = ?
    28112 <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 28113
    28112 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=28113, si_uid=0, si_status=0} ---
    28112 getrusage(RUSAGE_SELF, {ru_utime={tv_sec=0, tv_usec=11550}, ...}) = 0
    28112 exit_group(0)                     = ?
    """

    @Test func countsTheWorkloadFromItsExecveOn() {
        let count = SyscallCount(straceOutput: Self.trace, containerPID: 28113)
        #expect(count.sawExec)
        #expect(count.workloadTotal == 19)
        #expect(count.workload["brk"] == 5, "a call split by <unfinished ...> counts once")
        #expect(count.workload["execve"] == nil, "the execve itself belongs to the launcher's side")
        #expect(count.workload["write"] == 1 && count.workload["uname"] == 1 && count.workload["exit_group"] == 1)
    }

    @Test func theLauncherAndThePreExecChildAreTheLaunchersCalls() {
        let count = SyscallCount(straceOutput: Self.trace, containerPID: 28113)
        // launcher: execve, brk, clone, close, wait4, getrusage, exit_group; child before exec: rt_sigprocmask, 3 execve.
        #expect(count.launcherTotal == 11)
        #expect(count.launcher["execve"] == 4)
    }

    @Test func aFailedExecMeansNoWorkload() {
        let failed = """
        500 clone(child_stack=NULL, flags=CLONE_NEWPID|SIGCHLD) = 501
        501 execve("/bin/nosuch", ["nosuch"], 0x1 /* 2 vars */) = -1 ENOENT (No such file or directory)
        501 exit_group(127)                     = ?
        """
        let count = SyscallCount(straceOutput: failed, containerPID: 501)
        #expect(!count.sawExec)
        #expect(count.workloadTotal == 0)
    }
}

struct CpioTests {
    static let archive = Cpio.archive([
        Cpio.File(path: "/swiftlet-probe.sh", mode: 0o755, bytes: Array("echo hi\n".utf8)),
        Cpio.File(path: "/swiftlet-probe-helper", mode: 0o755, bytes: [0x7F, 0x45, 0x4C, 0x46, 1]),
    ])

    @Test func theAdditionIsANewcArchive() {
        #expect(Self.archive.count % 4 == 0)
        #expect(Array(Self.archive.prefix(6)) == Array("070701".utf8))
    }

    @Test(.enabled(if: Prerequisite.available(ChildProcess.which("cpio") != nil), "cpio is not installed (apt-get install cpio; setup.sh does)"))
    func cpioListsTheAddition() throws {
        let cpio = try #require(ChildProcess.which("cpio"), "cpio is not installed (apt-get install cpio)")
        let path = "/tmp/swiftlet-test-cpio-\(getpid()).cpio"
        #expect(ChildProcess.writeBytes(Self.archive, to: path) == nil)
        defer { unlink(path) }
        let listing = ChildProcess.run(["/bin/sh", "-c", "\(cpio) -itv < \(path)"], deadline: 60, workDirectory: "/tmp")
        #expect(listing.status == 0, "\(listing.stderr)")
        #expect(listing.stdout.contains("swiftlet-probe.sh") && listing.stdout.contains("swiftlet-probe-helper"))
        #expect(listing.stdout.contains("-rwxr-xr-x"), "\(listing.stdout)")
    }

    @Test func concatenationPadsTheFirstArchiveToFourBytes() {
        let joined = Cpio.concatenate([1, 2, 3, 4, 5], [9])
        #expect(joined == [1, 2, 3, 4, 5, 0, 0, 0, 9])
    }
}
