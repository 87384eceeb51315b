// Integration test: Debian's stock cloud kernel (CONFIG_X86_MPPARSE off, so it ignores the MP table) finds
// Swiftlet's ACPI tables and both vCPUs through the MADT. The kernel is unpacked on the host (--decompress)
// and entered at its PVH note, so hvm_start_info.rsdp_paddr hands it the RSDP; earlyprintk puts its messages
// on COM1 before the 8250 driver registers. The test stops the VM as soon as the lines have appeared
// (on kvm_pvm 32-38 s after start here; the kernel would need minutes more to reach init).
import Glibc
import KVM
import Testing
import TestSupport
import VMM

@Suite(.serialized,
       .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)),
       .enabled(if: DebianKernel.present, Comment(rawValue: DebianKernel.reason)))
struct DebianACPITests {
    @Test func stockCloudKernelFindsBothCPUsInTheMADT() {
        let lines = [
            "ACPI: RSDP 0x00000000000E0000 000024 (v02 SWIFTL)",
            "ACPI: APIC 0x",
            "ACPI: Using ACPI (MADT) for SMP configuration information",
            "smpboot: Allowing 2 CPUs, 0 hotplug CPUs",
        ]
        // Measured here (kvm_pvm, 2 cores): the lines 32-38 s after start; 120 s leaves room for a busy machine.
        // The VM is killed as soon as they appear.
        let limit = KVMRequirement.hardware ? 30 : 120
        let r = LinuxBootLock.serialize { () -> (found: Bool, status: Int32, stdout: String, stderr: String) in
            let start = monotonicNanoseconds()
            guard let child = Spawned.start(ProcessRunner.swiftletPath, [
                "boot", "--kernel", DebianKernel.vmlinuz, "--decompress", "--cpus", "2", "--memory", "256M",
                "--timeout", String(limit), "-v", "--cmdline", "earlyprintk=serial,ttyS0,115200",
            ]) else { return (false, -1, "", "spawn failed") }
            let r = child.waitForOutput(containing: lines, timeout: Double(limit))
            print("Debian kernel: MADT lines \(r.found ? "seen" : "not seen") after \((monotonicNanoseconds() - start) / 1_000_000) ms")
            return r
        }
        #expect(r.found, "\(r.stdout.suffix(3000))\n\(r.stderr)")
        for line in lines { #expect(r.stdout.contains(line), "\(line)") }
        #expect(r.stdout.contains("ACPI: LAPIC_NMI (acpi_id[0xff] dfl dfl lint[0x1])"))
        #expect(!r.stdout.contains("found SMP MP-table"), "this kernel has no MP table parser")
        #expect(r.stderr.contains("ACPI tables: RSDP"), "the VMM's -v note: \(r.stderr.prefix(2000))")
    }
}
