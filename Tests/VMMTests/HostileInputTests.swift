// Issue 14, "nothing a user, a file or a guest gives it can crash it": the inputs that once trapped (SIGILL),
// hung or read without bound, each given to the `swiftlet` binary, which must answer with one line and
// status 2 (or 8 for a timeout), in bounded time and memory. The loaders' own refusals are unit-tested in
// X86BootTests; the fuzz targets in fuzz/ look for the ones nobody thought of.
import Glibc
import KVM
import Testing
import TestSupport
@testable import VMM

/// The bzImage of issue 14: not relocatable, pref_address 0xfffffffffffff000 and init_size 1 MiB, so its run
/// area wraps past 2^64 (setup_sects 1, syssize 0x100, protocol 2.15, LOADED_HIGH, XLF_KERNEL_64).
func wrappingBzImage() -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 0x1400)
    func put<T: FixedWidthInteger>(_ at: Int, _ value: T) {
        for i in 0..<MemoryLayout<T>.size { b[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
    b[0x1F1] = 1                                  // setup_sects
    put(0x1F4, UInt32(0x100))                     // syssize (paragraphs)
    put(0x1FE, UInt16(0xAA55))                    // boot_flag
    b[0x200] = 0xEB; b[0x201] = 0x6A              // jmp to 0x26c: the 2.15 header
    put(0x202, UInt32(0x5372_6448))               // "HdrS"
    put(0x206, UInt16(0x020F))                    // version 2.15
    b[0x211] = 1                                  // loadflags: LOADED_HIGH
    put(0x230, UInt32(2047))                      // kernel_alignment (not a power of two)
    b[0x234] = 0                                  // relocatable_kernel: no
    put(0x236, UInt16(1))                         // xloadflags: XLF_KERNEL_64
    put(0x238, UInt32(2047))                      // cmdline_size
    put(0x258, UInt64(0xFFFF_FFFF_FFFF_F000))     // pref_address
    put(0x260, UInt32(0x10_0000))                 // init_size
    return b
}

/// A FIFO nobody writes to: open(2) for reading would wait for a writer forever.
func makeFIFO(_ name: String) -> String {
    let path = "/tmp/swiftlet-test-\(getpidString())-\(name).fifo"
    unlink(path)
    precondition(mkfifo(path, 0o600) == 0, "mkfifo \(path)")
    return path
}

func expectOneLine(_ r: ProcessResult, status: Int32, _ phrase: String, _ what: String,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == status, "\(what): status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains(phrase), "\(what): \(r.stderr)", sourceLocation: sourceLocation)
    #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Swift runtime failure"), "\(what): a trap", sourceLocation: sourceLocation)
    #expect(r.stderr.split(separator: "\n").count == 1, "\(what): one line: \(r.stderr)", sourceLocation: sourceLocation)
}

/// Refused while the options are parsed: no /dev/kvm needed.
@Suite struct HostileOptionTests {
    static let timeouts: [(String, String)] = [
        ("inf", "--timeout inf: at most 31536000 seconds (365 days)"),
        ("1e308", "--timeout 1e308: at most 31536000 seconds (365 days)"),
        ("18446744073", "--timeout 18446744073: at most 31536000 seconds (365 days)"),
        ("31536001", "--timeout 31536001: at most 31536000 seconds (365 days)"),
        ("nan", "--timeout must be a positive number of seconds"),
        ("-inf", "--timeout must be a positive number of seconds"),
    ]

    @Test(arguments: timeouts)
    func anAbsurdTimeoutIsOneLineAndStatus2(timeout: String, phrase: String) {
        expectOneLine(ProcessRunner.run(swiftlet, ["boot", "--timeout", timeout]), status: 2, phrase, "boot --timeout \(timeout)")
    }

    @Test func explainAndCompareRefuseItToo() {
        expectOneLine(ProcessRunner.run(swiftlet, ["explain", "--timeout", "inf"]), status: 2,
                      "--timeout is for swiftlet boot: explain builds the machine and runs nothing", "explain --timeout inf")
        let compare = ProcessRunner.run(swiftlet, ["compare", "--probe", "--timeout", "1e308"])
        #expect(compare.status == 2, "\(compare.stderr)")
        #expect(compare.stderr.contains("--timeout 1e+308: at most 31536000 seconds (365 days)"), "\(compare.stderr)")
        #expect(!compare.stderr.contains("Fatal error"))
    }

    @Test func theTimeoutDeadlineSaturatesInsteadOfTrapping() {
        #expect(Machine.deadline(after: .infinity, from: 5) == UInt64.max)
        #expect(Machine.deadline(after: 1e308, from: 5) == UInt64.max)
        #expect(Machine.deadline(after: 18_446_744_073, from: UInt64.max - 10) == UInt64.max)
        #expect(Machine.deadline(after: .nan, from: 5) == 5)
        #expect(Machine.deadline(after: 1.5, from: 5) == 1_500_000_005)
    }

    static let memories: [(String, String)] = [
        ("1", "--memory 1M is too small: the guest needs at least 2M"),
        ("1000K", "--memory 1000K is too small: the guest needs at least 2M"),
        ("1K", "--memory 1K is too small: the guest needs at least 2M"),
        ("1023K", "--memory 1023K is too small: the guest needs at least 2M"),
    ]

    @Test(arguments: memories)
    func aTinyMemorySizeIsNamedAsGiven(memory: String, phrase: String) {
        expectOneLine(ProcessRunner.run(swiftlet, ["boot", "--memory", memory]), status: 2, phrase, "--memory \(memory)")
    }
}

/// Kernel files that are not regular files, or too large: refused by their type and size, before a byte is
/// read, and without waiting (a FIFO once blocked open(2) forever; /dev/zero was read to 1 GiB).
@Suite struct HostileKernelFileTests {
    @Test func aFIFOAsTheKernelIsRefusedAtOnce() {
        let fifo = makeFIFO("kernel")
        defer { unlink(fifo) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--kernel", fifo], deadline: 20)
        expectOneLine(r, status: 2, "cannot read kernel \(fifo): is a FIFO (named pipe), not a regular file", "FIFO kernel")
    }

    @Test func devZeroAsTheKernelIsRefusedByItsType() {
        let link = "/tmp/swiftlet-test-\(getpidString())-zero-link"
        symlink("/dev/zero", link)
        defer { unlink(link) }
        for path in ["/dev/zero", link] {
            let r = ProcessRunner.run(swiftlet, ["boot", "--kernel", path], deadline: 20)
            expectOneLine(r, status: 2, "cannot read kernel \(path): is a character device, not a regular file", path)
        }
    }

    @Test func aKernelLargerThanTheLimitIsRefusedByItsSize() {
        let path = "/tmp/swiftlet-test-\(getpidString())-sparse"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0 && ftruncate(fd, off_t(FileBytes.defaultLimit) + 1) == 0)
        close(fd)
        defer { unlink(path) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--kernel", path], deadline: 20)
        expectOneLine(r, status: 2, "cannot read kernel \(path): the file is 1025 MiB, larger than the 1 GiB Swiftlet reads", "1 GiB + 1")
    }

    @Test func theReaderNamesWhatItRefuses() {
        guard case let .failure(f) = FileBytes.read("/dev/null") else { Issue.record("read /dev/null"); return }
        #expect(f.reason == "is a character device, not a regular file")
        guard case let .failure(g) = FileBytes.read("/proc/self/status", limit: 10) else { Issue.record("read past the limit"); return }
        #expect(g.reason == "the file grew past the 10 bytes Swiftlet reads")
        guard case let .success(bytes) = FileBytes.read("/proc/self/status") else { Issue.record("read /proc/self/status"); return }
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("Name:"))
    }
}

/// The inputs that reach the VMM only after /dev/kvm is open: the initrd, the loaders, the console endpoints.
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct HostileInputWithKVMTests {
    @Test(arguments: ["boot", "explain"])
    func aBzImageWhoseRunAreaWrapsIsRefused(command: String) {
        let path = writeTemp("wrap-bzimage", wrappingBzImage())
        defer { unlink(path) }
        let r = ProcessRunner.run(swiftlet, [command, "--kernel", path], deadline: 60)
        expectOneLine(r, status: 2, "not a Linux bzImage: its run area (pref_address 0xfffffffffffff000 + init_size 0x100000) wraps past the end of the address space",
                      "\(command) of the wrapping bzImage")
    }

    @Test func aFIFOOrDevZeroAsTheInitrdIsRefused() {
        let kernel = writeTemp("pvh-initrd", SyntheticELF.pvh(code: SyntheticELF.printCommandLine))
        let fifo = makeFIFO("initrd")
        defer { unlink(kernel); unlink(fifo) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--kernel", kernel, "--initrd", fifo], deadline: 60)
        expectOneLine(r, status: 2, "cannot read initrd \(fifo): is a FIFO (named pipe), not a regular file", "FIFO initrd")
        let zero = ProcessRunner.run(swiftlet, ["boot", "--kernel", kernel, "--initrd", "/dev/zero"], deadline: 60)
        expectOneLine(zero, status: 2, "cannot read initrd /dev/zero: is a character device, not a regular file", "/dev/zero initrd")
    }

    @Test func noConsoleSocketClientBeforeTheTimeoutIsStatus8() {
        let path = "/tmp/swiftlet-test-\(getpidString())-noclient.sock"
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--console-socket", path, "--timeout", "0.5"], deadline: 60)
        #expect(r.status == 8, "\(r.stderr)")
        #expect(r.stderr.contains("swiftlet: no client connected to --console-socket \(path) within --timeout 0.5s; the guest never ran"), "\(r.stderr)")
        #expect(access(path, F_OK) != 0, "the socket file is removed")
    }

    @Test func aConsoleFileOnAFullDeviceReportsTheLoss() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--console-file", "/dev/full", "--timeout", "60"], deadline: 90)
        #expect(r.status == ExitStatus.guestExit(0), "the guest ran to its debug exit: \(r.stderr)")
        #expect(r.stderr.contains("swiftlet: --console-file /dev/full: cannot write the guest's console output: No space left on device; output is being lost"), "\(r.stderr)")
        #expect(r.stderr.contains("bytes of the guest's console output did not reach the file (No space left on device)"), "\(r.stderr)")
    }

    @Test func aConsoleFileFIFOWithNoReaderIsRefused() {
        let fifo = makeFIFO("console")
        defer { unlink(fifo) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--console", "virtio", "--console-file", fifo, "--timeout", "10"], deadline: 30)
        expectOneLine(r, status: 2, "--console-file \(fifo): cannot open it for writing: a FIFO with no reader", "FIFO console file")
    }
}
