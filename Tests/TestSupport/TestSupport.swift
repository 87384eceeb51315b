// TestSupport: what several test targets share.
//
// - `KVMRequirement`: the rule for tests that need /dev/kvm: they run where it works, skip with a stated
//   reason where it is absent, and run (and so fail) when SWIFTLET_REQUIRE_KVM=1 is set, as in CI.
// - `Prerequisite`: the same rule for the files CI builds and the tools it installs (the minimal kernel,
//   Debian's kernel, the rootfs, iasl, chromium, script(1)...), under SWIFTLET_REQUIRE_ARTEFACTS=1.
// - `ProcessRunner`, `Spawned`: child processes with a deadline; a child still running at its deadline is
//   killed and the test fails with what it printed.
// - `SyntheticELF`: builds small multiboot ELF32 kernels from machine code, so loader error paths and
//   special guests (one that runs int3, say) need no cross toolchain.
import Glibc
import KVM
import Testing

public enum KVMRequirement {
    /// True when /dev/kvm opens, or when CI demands KVM (then the test runs and fails loudly).
    public static var available: Bool {
        if (try? KVMSystem()) != nil { return true }
        return required
    }

    public static var required: Bool {
        guard let value = getenv("SWIFTLET_REQUIRE_KVM") else { return false }
        return String(cString: value) == "1"
    }

    public static let reason = "/dev/kvm is not usable here (set SWIFTLET_REQUIRE_KVM=1 to make this a failure)"

    /// True on hardware KVM (kvm_intel / kvm_amd).
    public static var hardware: Bool { KVMSystem.backend().isHardware }
    public static let hardwareReason = "needs hardware KVM (kvm_intel or kvm_amd); this host's /dev/kvm is \(KVMSystem.backend().rawValue)"
}

/// What a test needs besides /dev/kvm: a file CI builds (guest/linux/build.sh, guest/debian/fetch.sh,
/// guest/rootfs/build.sh), a tool CI installs (setup.sh --deps, chromium), root, or a host property CI's
/// machines have. Where it is missing the test skips with its reason; with SWIFTLET_REQUIRE_ARTEFACTS=1
/// (.ci/run sets it) the test runs anyway and fails on what is missing, as SWIFTLET_REQUIRE_KVM=1 does
/// for /dev/kvm, so CI cannot pass with a test skipped for want of something it was meant to build.
public enum Prerequisite {
    public static var required: Bool {
        guard let value = getenv("SWIFTLET_REQUIRE_ARTEFACTS") else { return false }
        return String(cString: value) == "1"
    }

    /// True when `met`, or when CI requires every prerequisite (then the test runs and fails loudly).
    public static func available(_ met: Bool) -> Bool { met || required }

    /// True when every file in `paths` is readable, or when CI requires them.
    public static func files(_ paths: String...) -> Bool { available(paths.allSatisfy { access($0, R_OK) == 0 }) }

    /// The first of `names` found as an executable in PATH, /usr/sbin or /sbin.
    public static func tool(_ names: String...) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        for name in names {
            for directory in directories where access(directory + "/" + name, X_OK) == 0 { return directory + "/" + name }
        }
        return nil
    }
}

/// Polls `condition` every `interval` seconds until it holds or `timeout` seconds pass; true when it held.
/// For readiness ("the guest printed its marker"), never as a fixed sleep.
public func pollUntil(timeout: Double, interval: Double = 0.02, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicSeconds() + timeout
    while true {
        if condition() { return true }
        if monotonicSeconds() > deadline { return false }
        usleep(UInt32(interval * 1_000_000))
    }
}

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// One Linux boot at a time, across every suite and test process on this machine: a boot under kvm_pvm
/// keeps both of CI's cores busy for minutes, and boots run side by side each take longer than their
/// timeout. Tests that boot a Linux kernel wrap the boot in `LinuxBootLock.serialize`; the wait for the
/// lock does not count against the VMM's own `--timeout`, which starts when the VMM does.
public enum LinuxBootLock {
    public static let path = "/tmp/swiftlet-linux-boot.lock"

    public static func serialize<T>(_ body: () throws -> T) rethrows -> T {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        if fd >= 0 {
            while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        }
        defer { if fd >= 0 { flock(fd, LOCK_UN); close(fd) } }
        return try body()
    }
}

public enum SyntheticELF {
    /// An ELF32 i386 executable with one PT_LOAD segment at `loadAddress` holding [ELF header, program
    /// header, multiboot header (if asked), code]; entry = the first code byte.
    public static func multiboot(code: [UInt8], loadAddress: UInt32 = 0x10_0000, extraMemory: UInt32 = 0,
                                 multibootHeader: Bool = true, badChecksum: Bool = false, machine: UInt16 = 3,
                                 multibootFlags: UInt32 = 0x2) -> [UInt8] {
        var mbHeader: [UInt8] = []
        if multibootHeader {
            let magic: UInt32 = 0x1BAD_B002
            let checksum = 0 &- (magic &+ multibootFlags) &+ (badChecksum ? 1 : 0)
            mbHeader = le32(magic) + le32(multibootFlags) + le32(checksum)
        }
        let headerSize = 52 + 32
        let codeOffset = headerSize + mbHeader.count
        let fileSize = UInt32(codeOffset + code.count)
        var elf: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 1, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        elf += le16(2) + le16(machine) + le32(1)
        elf += le32(loadAddress + UInt32(codeOffset)) // e_entry
        elf += le32(52) + le32(0) + le32(0)          // e_phoff, e_shoff, e_flags
        elf += le16(52) + le16(32) + le16(1) + le16(40) + le16(0) + le16(0)
        // Program header: PT_LOAD, offset 0, vaddr, paddr, filesz, memsz, flags RWX, align 4 KiB.
        elf += le32(1) + le32(0) + le32(loadAddress) + le32(loadAddress) + le32(fileSize) + le32(fileSize + extraMemory) + le32(7) + le32(0x1000)
        return elf + mbHeader + code
    }

    /// An ELF64 executable with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, owner "Xen", type 18) and one
    /// PT_LOAD of `code` at physical `loadAddress`, entered in 32-bit protected mode at its first byte with
    /// EBX = hvm_start_info: a "Linux" kernel to the VMM (the PVH path, backend profile and all), without Linux.
    public static func pvh(code: [UInt8], loadAddress: UInt32 = 0x10_0000) -> [UInt8] {
        let note = le32(4) + le32(4) + le32(18) + Array("Xen\0".utf8) + le32(loadAddress)
        let phnum: UInt16 = 2
        let noteOffset = 64 + 56 * Int(phnum)
        let codeOffset = (noteOffset + note.count + 15) & ~15
        var elf: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        elf += le16(2) + le16(62) + le32(1)                     // ET_EXEC, EM_X86_64, version
        elf += le64(UInt64(loadAddress)) + le64(64) + le64(0)   // e_entry, e_phoff, e_shoff
        elf += le32(0) + le16(64) + le16(56) + le16(phnum) + le16(64) + le16(0) + le16(0)
        // PT_NOTE, then PT_LOAD (RWX), both as p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align.
        elf += le32(4) + le32(4) + le64(UInt64(noteOffset)) + le64(0) + le64(0) + le64(UInt64(note.count)) + le64(UInt64(note.count)) + le64(4)
        elf += le32(1) + le32(7) + le64(UInt64(codeOffset)) + le64(UInt64(loadAddress)) + le64(UInt64(loadAddress))
            + le64(UInt64(code.count)) + le64(UInt64(code.count)) + le64(16)
        elf += note
        elf += [UInt8](repeating: 0, count: codeOffset - elf.count)
        return elf + code
    }

    /// 32-bit PVH code: copies the kernel command line (hvm_start_info.cmdline_paddr, at EBX + 24) to COM1
    /// byte by byte; `printCommandLine` then writes 0 to the debug-exit port (stdout is the command line the
    /// guest found), `printCommandLineThenLoop` a newline and spins forever with interrupts off.
    static let copyCommandLineToCOM1: [UInt8] = [
        0x8B, 0x73, 0x18,             // mov esi, [ebx + 24]
        0x66, 0xBA, 0xF8, 0x03,       // mov dx, 0x3f8
        0xAC,                         // 1: lodsb
        0x84, 0xC0,                   //    test al, al
        0x74, 0x03,                   //    jz 2f
        0xEE,                         //    out dx, al
        0xEB, 0xF8,                   //    jmp 1b
    ]                                 // 2:
    public static let printCommandLine: [UInt8] = copyCommandLineToCOM1 + debugExit(0) + [0xF4]
    public static let printCommandLineThenLoop: [UInt8] = copyCommandLineToCOM1 + [0xB0, 0x0A, 0xEE, 0xEB, 0xFE] // mov al, 10; out dx, al; jmp $

    /// 32-bit code: write `value` to the debug-exit port 0xF4 (mov eax, imm32; out 0xf4, eax).
    public static func debugExit(_ value: UInt32) -> [UInt8] { [0xB8] + le32(value) + [0xE7, 0xF4] }

    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// Runs a program to completion, capturing stdout and stderr (through temporary files) and its status.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum ProcessRunner {
    /// The package's root folder (this file is Tests/TestSupport/TestSupport.swift).
    public static let packageRoot: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()

    /// The `swiftlet` executable built next to the test bundle.
    public static var swiftletPath: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var dir = exe
        if let slash = dir.lastIndex(of: "/") { dir = String(dir[..<slash]) }
        return dir + "/swiftlet"
    }

    /// Runs `path` with `arguments` (stdin /dev/null) and waits for it, at most `deadline` seconds: a child
    /// still running then is killed (status 137) and the test fails with what it printed.
    public static func run(_ path: String, _ arguments: [String], deadline: Double = Spawned.defaultDeadline,
                           sourceLocation: SourceLocation = #_sourceLocation) -> ProcessResult {
        guard let child = Spawned.start(path, arguments) else {
            return ProcessResult(status: -1, stdout: "", stderr: "spawn \(path) failed")
        }
        let r = child.wait(deadline: deadline, sourceLocation: sourceLocation)
        return ProcessResult(status: r.status, stdout: r.stdout, stderr: r.stderr)
    }

    public static func readFile(_ path: String) -> String {
        String(decoding: readBytes(path), as: UTF8.self)
    }

    public static func writeFile(_ path: String, _ bytes: [UInt8]) {
        guard let f = fopen(path, "w") else { return }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }
}

extension ProcessRunner {
    public static func readBytes(_ path: String) -> [UInt8] {
        guard let f = fopen(path, "r") else { return [] }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }
}

/// A child process started without waiting (ProcessRunner.run waits), stdin /dev/null, stdout and stderr
/// in files read back by wait().
public struct Spawned: Sendable {
    public let pid: pid_t
    /// The command line, for messages.
    public let command: String
    let outPath: String
    let errPath: String

    /// Starts `path`. `environment` is added to the test process's own; `resetSignals` gives the child an
    /// empty signal mask and default dispositions (a child of the test runner otherwise inherits the mask of
    /// the libdispatch thread that runs the test, which blocks nearly every signal); `terminal`, a pseudo-
    /// terminal's slave path, makes it the child's stdin, stdout, stderr and controlling terminal (a new
    /// session), and then nothing goes to the output files.
    public static func start(_ path: String, _ arguments: [String], environment: [String: String] = [:],
                             resetSignals: Bool = false, terminal: String? = nil) -> Spawned? {
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let outPath = "/tmp/swiftlet-test-\(tag).out", errPath = "/tmp/swiftlet-test-\(tag).err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let terminal {
            // Opened after setsid (glibc applies the attributes first): it becomes the controlling terminal.
            close(open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600))
            close(open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600))
            posix_spawn_file_actions_addopen(&actions, 0, terminal, O_RDWR, 0)
            posix_spawn_file_actions_adddup2(&actions, 0, 1)
            posix_spawn_file_actions_adddup2(&actions, 0, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags: Int32 = 0
        if resetSignals || terminal != nil {
            var none = sigset_t(), all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setsigdefault(&attributes, &all)
            flags |= Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        }
        if terminal != nil { flags |= 0x80 } // POSIX_SPAWN_SETSID (glibc's spawn.h, under _GNU_SOURCE: not imported)
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var env: [UnsafeMutablePointer<CChar>?] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if environment[name] == nil { env.append(strdup(entry)) }
            index += 1
        }
        env += environment.map { strdup("\($0.key)=\($0.value)") }
        env.append(nil)
        defer { env.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, path, &actions, &attributes, argv, env) == 0 else {
            unlink(outPath); unlink(errPath)
            return nil
        }
        return Spawned(pid: pid, command: ([path] + arguments).joined(separator: " "), outPath: outPath, errPath: errPath)
    }

    /// What the child has written to stdout so far.
    public func stdoutSoFar() -> String { ProcessRunner.readFile(outPath) }
    /// What the child has written to stderr so far.
    public func stderrSoFar() -> String { ProcessRunner.readFile(errPath) }

    /// Polls stdout until it contains every one of `needles`, the child exits, or `timeout` seconds pass,
    /// then stops a child still running and waits for it. `found` is true when every needle appeared.
    /// SIGKILL, not SIGTERM: it ends the child at once, whatever it is doing. (A child spawned from the
    /// test runner inherits its blocked-signal mask, SIGTERM among them, measured; `swiftlet boot` unblocks
    /// SIGTERM only once its VM runs, so a SIGTERM before that would wait for the child's own timeout.)
    public func waitForOutput(containing needles: [String], timeout: Double) -> (found: Bool, status: Int32, stdout: String, stderr: String) {
        var start = timespec(), now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var found = false
        while true {
            let text = stdoutSoFar()
            if needles.allSatisfy({ text.contains($0) }) { found = true; break }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                // Exited on its own: reap it here, so report its status as wait() would.
                defer { unlink(outPath); unlink(errPath) }
                let exitStatus: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
                let out = ProcessRunner.readFile(outPath)
                return (needles.allSatisfy { out.contains($0) }, exitStatus, out, ProcessRunner.readFile(errPath))
            }
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9 > timeout { break }
            usleep(250_000)
        }
        kill(pid, SIGKILL)
        let r = wait()
        return (found, r.status, r.stdout, r.stderr)
    }

    /// Polls until the child's stdout (or stderr) contains `text`, the child exits, or `timeout` seconds
    /// pass; true when the text appeared. The child is left running (and unreaped) either way.
    public func awaitOutput(_ text: String, onStderr: Bool = false, timeout: Double = 60) -> Bool {
        var appeared = false
        _ = pollUntil(timeout: timeout) {
            appeared = (onStderr ? stderrSoFar() : stdoutSoFar()).contains(text)
            return appeared || hasExited
        }
        return appeared || (onStderr ? stderrSoFar() : stdoutSoFar()).contains(text)
    }

    /// True once the child has exited (it stays a zombie for wait() to reap).
    public var hasExited: Bool {
        var info = siginfo_t()
        return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == pid
    }

    /// How long a test's child process may run unless the test says otherwise: far beyond any test's own
    /// timeouts (the longest Linux boot here is bounded at 150 s by swiftlet's --timeout), so that only a
    /// hang reaches it.
    public static let defaultDeadline: Double = 300

    /// Waits for the child, at most `deadline` seconds from now; the status as a shell reports it (128 +
    /// signal when killed). A child still running at the deadline is killed with SIGKILL and the test fails
    /// with an issue that quotes its output.
    public func wait(deadline: Double = Spawned.defaultDeadline,
                     sourceLocation: SourceLocation = #_sourceLocation) -> (status: Int32, stdout: String, stderr: String) {
        var status: Int32 = 0
        let limit = monotonicSeconds() + deadline
        var killed = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { break }
            if r == 0 && !killed && monotonicSeconds() > limit {
                kill(pid, SIGKILL)
                killed = true
            }
            if r == 0 { usleep(killed ? 1000 : 10_000) }
        }
        defer { unlink(outPath); unlink(errPath) }
        let exitStatus: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let out = ProcessRunner.readFile(outPath), err = ProcessRunner.readFile(errPath)
        if killed {
            Issue.record("\(command) was still running after its \(Int(deadline)) s deadline; the test killed it.\nstdout: \(out.suffix(4000))\nstderr: \(err.suffix(4000))",
                         sourceLocation: sourceLocation)
        }
        return (exitStatus, out, err)
    }
}

/// A pseudo-terminal pair for a child that needs a terminal (an interactive console): the test holds the
/// master, writes what a user types and reads what the terminal shows, and reads the terminal's settings
/// through a slave descriptor of its own (the same termios the child changes).
public final class PseudoTerminal: @unchecked Sendable {
    public let master: Int32
    public let slavePath: String
    /// The test's own descriptor on the slave side (O_NOCTTY), for tcgetattr.
    public let slave: Int32
    /// Everything read from the master so far.
    public private(set) var output: [UInt8] = []

    /// /dev/ptmx, unlocked, and its slave's path (what posix_openpt, unlockpt and ptsname do; Swift's Glibc
    /// module does not import them, so the two ioctls of asm-generic/ioctls.h are spelled out).
    public init?() {
        let tiocsptlck: UInt = 0x4004_5431  // TIOCSPTLCK: _IOW('T', 0x31, int), lock or unlock the slave
        let tiocgptn: UInt = 0x8004_5430    // TIOCGPTN: _IOR('T', 0x30, unsigned int), the pty number
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, tiocsptlck, &unlock) == 0, ioctl(master, tiocgptn, &number) == 0 else { return nil }
        slavePath = "/dev/pts/\(number)"
        slave = open(slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard slave >= 0 else { return nil }
    }

    deinit {
        close(master)
        close(slave)
    }

    /// The terminal's current settings.
    public var attributes: termios {
        var t = termios()
        tcgetattr(slave, &t)
        return t
    }

    /// Reads what is there to read, without waiting.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var pfd = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&pfd, 1, 0) > 0, pfd.revents & Int16(POLLIN) != 0 else { return }
            let n = read(master, &buffer, buffer.count)
            if n <= 0 { return }
            output += buffer[0..<n]
        }
    }

    public var text: String {
        drain()
        return String(decoding: output, as: UTF8.self)
    }

    /// Polls until the terminal has shown `needle`, `child` has exited, or `timeout` passes.
    public func awaitOutput(_ needle: String, from child: Spawned, timeout: Double = 60) -> Bool {
        var seen = false
        _ = pollUntil(timeout: timeout) {
            seen = text.contains(needle)
            return seen || child.hasExited
        }
        return seen || text.contains(needle)
    }

    /// Types `bytes` at the terminal.
    public func type(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }
}
