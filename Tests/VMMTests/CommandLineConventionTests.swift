// The command-line conventions a newcomer relies on (issue "a newcomer's first hour"): 0 for a guest that
// ended well and one stderr line saying how it ended; usage errors that exit 2 with a suggestion, alike in the
// lean front end and swiftlet-cli (one option table, BootOptions); --memory in MiB; --version, --help, the man
// page and the bash completion generated from the same table. Run through the built binaries.
import Glibc
import Testing
import TestSupport
import VMM

private let cli = ProcessRunner.swiftletPath + "-cli"

@Suite struct UsageErrorTests {
    /// Each case: arguments, a phrase of the one-line error. Every one exits 2.
    static let cases: [([String], String)] = [
        (["boot", "extra"], "unexpected argument 'extra': a command for a Linux guest goes after --"),
        (["boot", "--memroy", "64"], "unknown option --memroy for swiftlet boot (did you mean --memory?)"),
        (["boot", "--trace-exit"], "(did you mean --trace-exits?)"),
        (["boot", "--memory"], "--memory needs a value (SIZE)"),
        (["boot", "--memory", "64", "--memory", "32"], "--memory was given twice"),
        (["boot", "--decompress=yes"], "--decompress takes no value"),
        (["bot"], "unknown subcommand 'bot' (did you mean boot?)"),
        (["explian"], "(did you mean explain?)"),
        (["compare", "--prob"], "Did you mean '--probe'?"),
        (["explain", "--timeout", "3"], "--timeout is for swiftlet boot: explain builds the machine and runs nothing"),
        (["explain", "--trace-exits"], "--trace-exits is for swiftlet boot"),
        (["boot", "--", "uname", "-r"], "a command after -- needs a Linux kernel: give --kernel bzImage --initrd initramfs.cpio"),
    ]

    @Test(arguments: cases)
    func exitsTwoWithOneLine(arguments: [String], phrase: String) {
        let r = ProcessRunner.run(swiftlet, arguments)
        #expect(r.status == ExitStatus.badInput, "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains(phrase), "\(arguments): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }

    /// The lean front end and swiftlet-cli read boot's options from one table: the same words give the same
    /// status and the same message.
    @Test(arguments: [["boot", "extra"], ["boot", "--memroy", "64"], ["boot", "--memory", "1"], ["boot", "--cpus", "x"],
                      ["boot", "--console", "tty"], ["boot", "--", "true"]])
    func bothParsersAgree(arguments: [String]) {
        let lean = ProcessRunner.run(swiftlet, arguments)
        let full = ProcessRunner.run(cli, arguments)
        #expect(lean.status == ExitStatus.badInput && full.status == lean.status, "\(lean.stderr) / \(full.stderr)")
        #expect(lean.stderr == full.stderr)
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct ExitConventionTests {
    @Test func aGuestThatEndsWellExitsZeroAndSaysSo() {
        let r = ProcessRunner.run(swiftlet, ["boot"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "swiftlet: the guest wrote 0 to the debug-exit port (status 0)\n")
        let shell = ProcessRunner.run("/bin/sh", ["-c", "\"$0\" boot >/dev/null 2>&1 && echo ok", swiftlet])
        #expect(shell.stdout == "ok\n", "swiftlet boot && echo ok")
    }

    @Test func qemusRuleIsOneOptionAway() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--qemu-exit-status"])
        #expect(r.status == 1, "(0 << 1) | 1: \(r.stderr)")
        #expect(r.stderr.contains("the guest wrote 0 to the debug-exit port (status 1: QEMU's rule, (0 << 1) | 1)"))
    }

    @Test func aBareMemorySizeIsMiB() {
        let r = ProcessRunner.run(cli, ["explain", "--memory", "48"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("48 MiB of RAM"), "\(r.stdout.prefix(300))")
        let small = ProcessRunner.run(swiftlet, ["boot", "--memory", "1"])
        #expect(small.status == ExitStatus.badInput && small.stderr.contains("--memory 1M is too small"), "\(small.stderr)")
    }
}

@Suite struct GeneratedInterfaceTests {
    @Test func versionIsPrintedByBothFrontEnds() {
        let lean = ProcessRunner.run(swiftlet, ["--version"])
        let full = ProcessRunner.run(cli, ["--version"])
        #expect(lean.status == 0 && lean.stdout.hasPrefix("swiftlet \(SwiftletVersion.number) "), "\(lean.stdout)")
        #expect(full.status == 0 && full.stdout == lean.stdout)
    }

    @Test func helpListsEveryOptionOfTheTable() {
        let boot = ProcessRunner.run(swiftlet, ["boot", "--help"])
        #expect(boot.status == 0)
        for option in BootOptions.options(for: "boot") { #expect(boot.stdout.contains(option.name), "\(option.name)") }
        #expect(boot.stdout.contains("EXIT STATUS:"))
        let explain = ProcessRunner.run(swiftlet, ["explain", "--help"])
        #expect(explain.status == 0 && explain.stdout.contains("--memory SIZE"))
        #expect(!explain.stdout.contains("--timeout"), "explain runs nothing: no --timeout in its help")
    }

    @Test func theManPageIsGeneratedFromTheTable() {
        let r = ProcessRunner.run(cli, ["manual"])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix(".TH SWIFTLET 1 "))
        for option in BootOptions.all { #expect(r.stdout.contains("\\fB" + option.name.replacingDashes() + "\\fR"), "\(option.name)") }
        #expect(r.stdout.contains(".SH \"EXIT STATUS\""))
        // groff reads it without a warning, when groff is here.
        if access("/usr/bin/groff", X_OK) == 0 {
            let path = "/tmp/swiftlet-test-man-\(getpid()).1"
            defer { unlink(path) }
            ProcessRunner.writeFile(path, Array(r.stdout.utf8))
            let rendered = ProcessRunner.run("/usr/bin/groff", ["-man", "-Tutf8", "-ww", "-z", path])
            #expect(rendered.status == 0 && rendered.stderr.isEmpty, "\(rendered.stderr)")
        }
    }

    /// The real bash completion script, sourced in bash, completing words as a user's Tab would.
    @Test func bashCompletesOptionsGuestNamesChoicesAndFiles() {
        let script = """
        source <("$1-cli" --generate-completion-script bash)
        try() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=(); _swiftlet; echo "${COMPREPLY[*]}"; }
        try "$1" boot --gu
        try "$1" boot --guest he
        try "$1" boot --console ""
        try "$1" boot --kernel /etc/hostn
        try "$1" explain --tim
        """
        let r = ProcessRunner.run("/bin/bash", ["-c", script, "bash", swiftlet])
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(lines.prefix(5) == ["--guest", "hello", "serial virtio", "/etc/hostname", ""], "\(r.stdout) \(r.stderr)")
    }
}

private extension String {
    /// An option name as roff writes it: every '-' escaped.
    func replacingDashes() -> String { split(separator: "-", omittingEmptySubsequences: false).joined(separator: "\\-") }
}

@Suite struct CompareFromAnywhereTests {
    /// `compare -- COMMAND` needs the Linux guest for its VM side: without one it says so at once.
    @Test func aCommandWithoutTheLinuxGuestStopsEarlyWithTheReason() {
        let r = ProcessRunner.run("/bin/sh", ["-c", "cd / && SWIFTLET_LINUX_DIR=/nonexistent exec \"$0\" compare -- true", swiftlet])
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)")
        #expect(r.stderr == "swiftlet compare: -- COMMAND runs in a Linux VM, and there is no /nonexistent/bzImage: build the minimal Linux guest with guest/linux/build.sh, or give --kernel (compare --probe works without it)\n")
        #expect(r.stdout.isEmpty, "no table of unavailable cells")
    }

    /// Run from / (not the checkout), compare still finds the checkout's busybox rootfs beside its binary.
    @Test(.enabled(if: KVMRequirement.available && access("guest/rootfs/out/rootfs/bin/busybox", X_OK) == 0 && getuid() == 0,
                   "needs /dev/kvm, root and the busybox rootfs (guest/rootfs/build.sh)"))
    func theRootfsIsFoundFromAnyDirectory() {
        let r = ProcessRunner.run("/bin/sh", ["-c", "cd / && exec \"$0\" compare --probe --tiny-vm --no-syscalls --quiet --json", swiftlet], deadline: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("no root filesystem"), "\(r.stdout.prefix(2000))")
        #expect(r.stdout.contains("\"succeeded\": true"), "\(r.stdout.prefix(2000))")
    }
}
