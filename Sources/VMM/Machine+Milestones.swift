// Machine+Milestones: the boot timeline, read off the guest's serial console.
//
// The VMM timestamps its own steps (build start, first KVM_RUN) and the lines a Linux guest prints that
// mark boot phases: the kernel banner, all CPUs up, the initramfs unpacked, the 8250 driver finding
// ttyS0, init started, the init script's own marker. A kernel panic line is kept for the final report.
import CKVM
import KVM

extension Machine {
    /// (line prefix or fragment, milestone name) pairs, in boot order.
    static let milestonePatterns: [(String, String)] = [
        ("Linux version", "kernel banner"),
        ("smpboot: Total of", "all CPUs up"),
        ("Unpacking initramfs", "initramfs unpacking"),
        ("Freeing initrd memory", "initramfs unpacked"),
        ("ttyS0 at I/O 0x3f8", "8250 driver: ttyS0"),
        ("Run /init as init process", "init started"),
        ("swiftlet-init: started", "init script running"),
        ("Kernel panic", "kernel panic"),
    ]

    func mark(_ name: String) {
        let now = ckvm_monotonic_ns()
        milestones.withLock { $0.append((name, now - started)) }
    }

    /// Each milestone is marked once, at its first line (a guest's user space may print "Linux version"
    /// again, from /proc/version).
    func scanForMilestone(_ line: String) {
        // The minimal kernel's change says whether it is on (guest/linux/patches): kept for diagnosis().
        if line.contains(Self.syscallChangeLine) {
            let state = line.hasSuffix("off") || line.hasSuffix("off\r") ? "off" : "on"
            syscallChange.withLock { $0 = state }
        }
        // A restored machine did not boot: only a panic is a milestone then (a "Linux version" line is the
        // guest's user space printing /proc/version).
        let restored = restoredFrom != nil
        for (pattern, name) in Self.milestonePatterns where line.contains(pattern) && (!restored || name == "kernel panic") {
            guard !milestones.withLock({ $0.contains { $0.name == name } }) else { continue }
            mark(name)
            if name == "kernel panic" { panicLine.withLock { if $0 == nil { $0 = line } } }
        }
    }

    /// What Swiftlet's Linux init (guest/linux/init.c) means by each lab marker it writes.
    static let initMarkerNames: [UInt32: String] = [3: "init reached (lab marker 3)", 4: "command starts: init's execve (lab marker 4)",
                                                    7: "ready for a command: the snapshot point (lab marker 7)"]

    /// The timeline as text: the milestones read off the console and the guest's lab markers, in order.
    public func timeline() -> String {
        var marks = milestones.withLock { $0 }
        for marker in markers.withLock({ $0 }) where marker.nanoseconds >= started {
            marks.append((Self.initMarkerNames[marker.code] ?? "lab marker \(marker.code)", marker.nanoseconds - started))
        }
        marks.sort { $0.nanoseconds < $1.nanoseconds }
        var lines = ["boot timeline (ms since swiftlet started building the VM):"]
        for m in marks { lines.append("  \(pad(fixed(Double(m.nanoseconds) / 1e6, 1), 9)) ms  \(m.name)") }
        return lines.joined(separator: "\n")
    }

    /// What the minimal kernel's syscall-by-page-fault change prints when its parameter is parsed
    /// (guest/linux/patches/0001-...), ending in "run as system calls" or "off"; the last one counts.
    static let syscallChangeLine = "swiftlet: system calls that arrive as page faults at entry_SYSCALL_64: "

    /// A sentence on why a Linux guest's kernel panicked, where the console shows a known cause, with the
    /// way out (the panic line itself is the outcome's message).
    public func diagnosis() -> String? {
        guard let panic = panicLine.withLock({ $0 }) else { return nil }
        if backend == .pvm && panic.contains("Attempted to kill init") && panic.contains("exitcode=0x0000000b") {
            let profile = configuration.backendProfile && kernelCommandLine.contains(BackendProfile.pvmSyscallParameter)
            let state = syscallChange.withLock { $0 }
            let why: String
            if !profile {
                why = "--no-backend-profile left out \(BackendProfile.pvmSyscallParameter), which turns on the minimal kernel's change that runs it"
            } else if state == "off" {
                why = "this kernel's change that runs it was turned off again (\(BackendProfile.pvmSyscallParameter)=0 on the command line); leave that out, or use hardware KVM (kvm_intel/kvm_amd)"
            } else {
                why = "this kernel does not carry Swiftlet's change that runs it (boot guest/linux/out/bzImage from guest/linux/build.sh, or use hardware KVM: kvm_intel/kvm_amd)"
            }
            return "init died of SIGSEGV at its first system call: on kvm_pvm a SYSCALL from user mode arrives as a page fault at the syscall entry, and " + why
        }
        return nil
    }

    /// How many instructions the VMM finished for KVM's emulator, as text ("int3 ×1"), or nil.
    public func finishedInstructionSummary() -> String? {
        let counts = finishedInstructions.withLock { $0 }
        guard !counts.isEmpty else { return nil }
        return "instructions KVM's emulator could not run and Swiftlet finished: " + counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\r" || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\r" || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
