// SyscallsGuestTests: boots the embedded `syscalls` tiny guest (guest/tiny/syscalls.c), which enters user
// mode (CPL3) and tries each way back into its kernel, and checks its table row for row against what this
// host's KVM backend delivers: on kvm_pvm the table measured on this project's machines (SYSCALL's register
// half happens but not the switch to CPL0, so the guest kernel gets a #PF at LSTAR from user mode; `int
// $0x80` and `sysenter` arrive as #UD; SYSRETL returns to 64-bit code); on kvm_intel and kvm_amd what the
// Intel SDM and the AMD APM say for that vendor. docs/07-backends.md ("Ways into the kernel") explains
// each row; the line format is documented at the top of syscalls.c.
import Glibc
import KVM
import Testing
import TestSupport
import VMM

/// The rows the guest prints (without the `syscalls: ` prefix), by backend.
enum SyscallsGuestTable {
    /// kvm_pvm, measured with this guest under Swiftlet and under QEMU (`-accel kvm`) on this project's
    /// machines (AMD EPYC hosts; kvm_pvm on an Intel host has not been measured).
    static let pvm = [
        "syscall64 -> #PF err=0x5 cr2=LSTAR at CPL0 from cs=0x33 rip=LSTAR rcx=next r11=rflags+IF rflags=masked+RF rax=kept rsp=kept",
        "syscall64-nxe -> #PF err=0x15 cr2=LSTAR at CPL0 from cs=0x33 rip=LSTAR rcx=next r11=rflags+IF rflags=masked+RF rax=kept rsp=kept",
        "syscall32 -> CSTAR at CPL0 cs=0x8 rcx=next r11=rflags rflags=masked rax=kept rsp=kept",
        "int80 -> #UD at CPL0 from cs=0x33 rip=insn",
        "sysenter -> #UD at CPL0 from cs=0x33 rip=insn",
        "int3 -> #BP at CPL0 from cs=0x33 rip=next",
        "ud2 -> #UD at CPL0 from cs=0x33 rip=insn",
        "iretq -> #UD at CPL0 from cs=0x33 rip=insn user cs=0x33 ss=0x2b",
        "sysretq -> #UD at CPL0 from cs=0x33 rip=insn user cs=0x33 ss=0x2b",
        "sysretl -> #UD at CPL0 from cs=0x33 rip=insn user cs=0x33 ss=0x2b",
        "summary: 10 ways, 6 as the architecture says for AuthenticAMD; differ: syscall64 syscall64-nxe int80 sysretl",
    ]

    /// Hardware KVM: the architecture. Intel: SYSCALL in compatibility mode is #UD (KVM injects it with RF
    /// set, as for every fault) and SYSENTER in 64-bit mode reaches SYSENTER_EIP; AMD (and Hygon): SYSCALL
    /// in compatibility mode reaches CSTAR and SYSENTER in long mode is #UD.
    static func hardware(intel: Bool, vendor: String) -> [String] {
        let lstar = "LSTAR at CPL0 cs=0x8 rcx=next r11=rflags rflags=masked rax=kept rsp=kept"
        return [
            "syscall64 -> \(lstar)",
            "syscall64-nxe -> \(lstar)",
            intel ? "syscall32 -> #UD at CPL0 from cs=0x23 rip=insn rcx=kept r11=kept rflags=user+RF rax=kept rsp=kept"
                : "syscall32 -> CSTAR at CPL0 cs=0x8 rcx=next r11=rflags rflags=masked rax=kept rsp=kept",
            "int80 -> vector 0x80 at CPL0 from cs=0x33 rip=next",
            intel ? "sysenter -> SYSENTER_EIP at CPL0 cs=0x8 rsp=SYSENTER_ESP" : "sysenter -> #UD at CPL0 from cs=0x33 rip=insn",
            "int3 -> #BP at CPL0 from cs=0x33 rip=next",
            "ud2 -> #UD at CPL0 from cs=0x33 rip=insn",
            "iretq -> #UD at CPL0 from cs=0x33 rip=insn user cs=0x33 ss=0x2b",
            "sysretq -> #UD at CPL0 from cs=0x33 rip=insn user cs=0x33 ss=0x2b",
            "sysretl -> #UD at CPL0 from cs=0x23 rip=insn user cs=0x23 ss=0x2b",
            "summary: 10 ways, 10 as the architecture says for \(vendor)",
        ]
    }

    /// The vendor line and the rows of a run's output.
    static func parse(_ output: String) -> (vendor: String?, rows: [String]) {
        var vendor: String?
        var rows: [String] = []
        for line in output.split(separator: "\n") where line.hasPrefix("syscalls: ") {
            let row = String(line.dropFirst("syscalls: ".count))
            if row.hasPrefix("cpu vendor ") { vendor = String(row.dropFirst("cpu vendor ".count)) } else { rows.append(row) }
        }
        return (vendor, rows)
    }

    /// What this backend should print, given the vendor the guest read; nil (with an issue recorded) when
    /// there is no table for it.
    static func expected(backend: Backend, vendor: String?) -> [String]? {
        switch backend {
        case .pvm:
            #expect(vendor == "AuthenticAMD", "the kvm_pvm table was measured on AMD hosts; measure this one and add it")
            return pvm
        case .intel:
            #expect(vendor == "GenuineIntel")
            return hardware(intel: true, vendor: vendor ?? "?")
        case .amd:
            #expect(vendor == "AuthenticAMD" || vendor == "HygonGenuine")
            return hardware(intel: false, vendor: vendor ?? "?")
        case .unknown:
            Issue.record("no kvm_intel, kvm_amd or kvm_pvm module: no table to compare with")
            return nil
        }
    }
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct SyscallsGuestTests {
    @Test func eachWayIntoTheKernelArrivesAsThisBackendDeliversIt() throws {
        let (outcome, output, machine) = try boot("syscalls")
        #expect(outcome == .debugExit(value: 0, status: ExitStatus.guestExit(0)), "\(outcome): \(output)")
        #expect(output.hasPrefix("Swiftlet tiny guest: syscalls, each way from CPL3 into the kernel and back to CPL3\n"))
        let (vendor, rows) = SyscallsGuestTable.parse(output)
        guard let expected = SyscallsGuestTable.expected(backend: machine.backend, vendor: vendor) else { return }
        #expect(rows == expected, "\(machine.backend.rawValue) printed:\n\(rows.joined(separator: "\n"))")
        // The user-mode int3 reached the guest's IDT as #BP without the VMM's help: only kernel-mode int3 is
        // an emulation failure on kvm_pvm, and this guest runs none.
        #expect(machine.finishedInstructions.withLock { $0.isEmpty })
    }

    @Test func theCommandLineBootsItAndPrintsTheSameTable() {
        let r = ProcessRunner.run(swiftlet, ["boot", "--guest", "syscalls"])
        #expect(r.status == ExitStatus.guestExit(0), "isa-debug-exit 0: \(r.stderr)")
        let (vendor, rows) = SyscallsGuestTable.parse(r.stdout)
        guard let expected = SyscallsGuestTable.expected(backend: KVMSystem.backend(), vendor: vendor) else { return }
        #expect(rows == expected, "\(r.stdout)")
    }
}

@Suite struct SyscallsGuestImageTests {
    @Test func theGuestIsEmbeddedAndOfferedByBoot() {
        #expect(MachineConfiguration.embeddedGuests.contains("syscalls"))
    }
}
