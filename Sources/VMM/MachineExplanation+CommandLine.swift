// MachineExplanation+CommandLine: the kernel command line as the kernel reads it from guest memory, split
// into who put each part there and why: the VMM's own parameters (Machine+Linux.swift composeCommandLine),
// the backend profile (BackendProfile), and the user's --cmdline. The command after `swiftlet boot --` is
// not on it (Linux would split it at spaces and add every parameter it does not know to init's arguments:
// Documentation/admin-guide/kernel-parameters.rst); it travels in /swiftlet/argv of a cpio appended to the
// initramfs (X86Boot/InitCommand.swift), and is listed last, as the init command.
// It classifies the final text, not the recipe's inputs alone, so a parameter some later step adds still
// shows up, as "VMM".
import GuestMemory
import KVM
import X86Boot

/// Where one part of the command line came from.
public enum CommandLineOrigin: String, Sendable, Equatable {
    case vmm = "VMM"
    case backendProfile = "backend profile"
    case user = "--cmdline"
    case initCommand = "init command"
}

public struct CommandLinePart: Sendable, Equatable {
    public var text: String
    public var origin: CommandLineOrigin
    public var reason: String
}

public struct CommandLineExplanation: Sendable {
    /// The command line the kernel reads, NUL excluded.
    public var final: String
    /// Where it lies in guest memory.
    public var address: GuestAddress
    public var parts: [CommandLinePart]

    /// Splits `final` into parts; `profile` are the backend profile's parameters when the VMM applied it.
    public static func explain(final: String, address: GuestAddress, userCommandLine: String, initArguments: [String],
                               isLinux: Bool, profile: [String], backend: Backend) -> CommandLineExplanation {
        let words = final.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        var tail: [CommandLinePart] = []
        if isLinux, !initArguments.isEmpty {
            tail.append(CommandLinePart(text: shellQuoted(initArguments), origin: .initCommand,
                                        reason: "not on the command line: the words after `--`, each exactly as given, in \(InitCommand.argumentsPath) of a cpio appended to the initramfs; Swiftlet's init runs them and reports the status through the debug-exit port"))
        }
        // The user's --cmdline: the last place its words occur, in order.
        let userWords = userCommandLine.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        var userRange: Range<Int>?
        if !userWords.isEmpty, words.count >= userWords.count {
            for start in stride(from: words.count - userWords.count, through: 0, by: -1)
            where Array(words[start..<start + userWords.count]) == userWords {
                userRange = start..<start + userWords.count
                break
            }
        }
        var parts: [CommandLinePart] = []
        for (index, word) in words.enumerated() {
            if let r = userRange, r.contains(index) {
                parts.append(CommandLinePart(text: word, origin: .user, reason: isLinux ? "yours (--cmdline), placed after the VMM's parameters" : "yours (--cmdline); a multiboot kernel gets exactly what you give"))
            } else if profile.contains(word) {
                parts.append(CommandLinePart(text: word, origin: .backendProfile, reason: profileReason(word, backend: backend)))
            } else {
                parts.append(CommandLinePart(text: word, origin: .vmm, reason: vmmReason(word)))
            }
        }
        return CommandLineExplanation(final: final, address: address, parts: parts + tail)
    }

    static func vmmReason(_ word: String) -> String {
        let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
        switch name {
        case "console": return "kernel messages go to the 8250 UART at 0x3f8 (COM1), which the VMM emulates and prints on stdout"
        case "reboot": return word == "reboot=k"
            ? "reboot through the keyboard controller: the i8042 reset (0xfe to port 0x64) ends the VM"
            : "how the kernel reboots; the VMM ends the VM on the i8042 reset or a triple fault"
        case "pci": return "pci=off: this machine has no PCI host bridge (no virtio-pci device), so the kernel need not probe for one"
        case "panic": return "panic=-1: reboot at once on a panic, so a crashed kernel ends the VM instead of waiting forever"
        case "virtio_mmio.device": return "announces a virtio-mmio device (SIZE@BASE:IRQ): no ACPI or device tree here (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES)"
        case Machine.snapshotParameter: return "--snapshot: Swiftlet's init stops before the command, marks the snapshot point (lab marker 7) and waits for the command a restore types on the console"
        case BackendProfile.signalsParameter: return "--forward-signals: Swiftlet's init polls the signal mailbox (lab port 0x443) every 100 ms while the command runs and sends it what the VMM was sent"
        default: return "added by the VMM"
        }
    }

    static func profileReason(_ word: String, backend: Backend) -> String {
        let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
        let on = backend == .pvm ? "kvm_pvm" : backend.rawValue
        switch name {
        case BackendProfile.pvmSyscallParameter: return "\(on): a 64-bit SYSCALL from user mode arrives as a page fault at the syscall entry; Swiftlet's minimal kernel (guest/linux/patches) then runs it as the system call. Without it init dies at its first system call; kernels without the change ignore it"
        case "rodata": return "\(on): the kernel skips write-protecting its read-only data, measured to save about 7 s of emulated boot"
        case "nopvspin": return "\(on): no paravirtual spinlocks, whose halted waiters stalled SMP boots here (measured with --cpus 2)"
        case "retain_initrd": return "\(on): keep the initramfs's memory instead of freeing it page by page, each page first poisoned by a memset that the emulator runs store by store (about 1 s for the minimal initramfs)"
        case "clocksource": return "\(on): stay on kvmclock; the switch to the TSC is a stop_machine() of every CPU that stalled for minutes under the emulator"
        case "clearcpuid": return "\(on): CPUID cannot hide features here, so the kernel is told not to use what the emulator lacks (XSAVE/XRSTOR, popcnt, cmpxchg16b, SMAP's clac/stac, …)"
        default: return "\(on) backend profile"
        }
    }

    /// Words as a POSIX shell would need them quoted to give the same argv (for display).
    static func shellQuoted(_ words: [String]) -> String {
        words.map { word in
            let plain = !word.isEmpty && word.unicodeScalars.allSatisfy { c in
                (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "-_./=:,+@%".unicodeScalars.contains(c)
            }
            guard !plain else { return word }
            var quoted = "'"
            for c in word { quoted += c == "'" ? "'\\''" : String(c) }
            return quoted + "'"
        }.joined(separator: " ")
    }

    /// `virtio_mmio.device=SIZE@BASE:IRQ[:ID]` parameters (sizes with K/M/G, numbers decimal or 0x hex).
    static func virtioMMIODevices(in commandLine: String) -> [(base: UInt64, irq: UInt32)] {
        var devices: [(base: UInt64, irq: UInt32)] = []
        for word in commandLine.split(separator: " ") where word.hasPrefix("virtio_mmio.device=") {
            let value = word.dropFirst("virtio_mmio.device=".count)
            // SIZE@BASE:IRQ[:ID] (drivers/virtio/virtio_mmio.c, vm_cmdline_set)
            guard let at = value.firstIndex(of: "@") else { continue }
            let fields = value[value.index(after: at)...].split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 2, let base = parseNumber(fields[0]), let irq = parseNumber(fields[1]), irq <= UInt64(UInt32.max) else { continue }
            devices.append((base, UInt32(irq)))
        }
        return devices
    }

    static func parseNumber<S: StringProtocol>(_ text: S) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }
}
