// Machine+Linux: the recipe steps for booting a Linux kernel (bzImage through the 64-bit boot protocol,
// or an ELF vmlinux through its PVH entry), and the backend profile.
//
// Linux needs more machine than a multiboot guest: the in-kernel interrupt controllers (PIC, IOAPIC,
// LAPICs) and PIT; an MP table so a kernel without ACPI finds its CPUs and IOAPIC, and ACPI tables (RSDP,
// XSDT, FADT, MADT, DSDT) that tell a kernel with ACPI the same; an e820 map; the kernel command line (the
// VMM's part first: console, reboot method, backend profile); and for SMP one vCPU thread per CPU, the
// application processors waiting in the in-kernel LAPIC for INIT/SIPI.
import CKVM
import Glibc
import GuestMemory
import KVM
import X86Boot

extension MachineConfiguration {
    /// The most vCPUs Swiftlet gives a guest (the MP table holds up to 254; KVM's own limit also applies).
    public static let maximumCPUs = 64
}

/// The kvm_pvm profile (measured, see docs/backends.md): Linux must not use what KVM's instruction
/// emulator cannot execute. CPUID cannot hide features on this backend, so the kernel command line does.
public enum BackendProfile {
    ///
    /// SMP (measured with --cpus 2): `nopvspin` keeps the kernel off PV spinlocks, whose waiters halt with
    /// interrupts off until a KVM_HC_KICK_CPU that this backend never completes (Machine+Hypercalls.swift);
    /// `clocksource=kvm-clock` keeps kvmclock instead of switching to the TSC once it is registered: that
    /// switch is a stop_machine() rendezvous of every CPU, and the boot stalled there for minutes with
    /// vCPU 1 spinning in multi_cpu_stop while vCPU 0 was still in the (emulated) timer interrupt path.
    ///
    /// User space (measured with guest/tiny/syscalls.c): a 64-bit SYSCALL from guest user mode arrives in
    /// the guest kernel as a #PF at the syscall entry. `swiftlet.pvm_syscall` turns on the change that
    /// Swiftlet's minimal kernel carries for it (guest/linux/patches/), which runs such a fault as the
    /// system call; kernels without the change ignore the parameter (a dotted name is never passed to init).
    ///
    /// `retain_initrd`: the kernel keeps the initramfs's memory instead of freeing it page by page with a
    /// poisoning memset, ~1 s of emulated stores for the minimal initramfs (measured); it costs its size.
    ///
    /// Every parameter here must be one the kernel knows: Linux hands unknown words to init as arguments.
    /// (`clearcpuid=xsave` does what `noxsave` did; `nopvspin` is known to kernels with
    /// PARAVIRT_SPINLOCKS, which the minimal kernel now has.)
    public static let pvmParameters = [
        "rodata=off", "nopvspin", "clocksource=kvm-clock", "retain_initrd", pvmSyscallParameter,
        "clearcpuid=smap,smep,popcnt,cx16,xsave,avx,avx2,bmi1,bmi2,erms,fsrm,movbe,rdrand,rdseed,fsgsbase,sse4_1,sse4_2,ssse3,aes,pclmulqdq",
    ]

    /// The parameter that turns on the minimal kernel's syscall-by-page-fault entry
    /// (guest/linux/patches/0001-x86-mm-run-syscalls-that-arrive-as-page-faults.patch).
    public static let pvmSyscallParameter = "swiftlet.pvm_syscall"
    /// The kernel parameter that makes Swiftlet's init poll the signal mailbox (port 0x443) while its command
    /// runs and send the command what it finds there (guest/linux/init.c; `--forward-signals`).
    public static let signalsParameter = "swiftlet.signals"

    public static func parameters(for backend: Backend) -> [String] { backend == .pvm ? pvmParameters : [] }

    /// How often the VMM kicks vCPUs out of KVM_RUN on kvm_pvm so pending interrupts get delivered.
    public static let pvmTickMilliseconds: Int32 = 4
}

extension Machine {
    /// The kernel's format from its bytes: multiboot ELF, PVH vmlinux, or bzImage.
    static func detectFormat(_ image: [UInt8], name: String) throws(VMMError) -> KernelFormat {
        let isELF = image.count >= 4 && image[0] == 0x7F && image[1] == 0x45 && image[2] == 0x4C && image[3] == 0x46
        // Multiboot2, then Multiboot: an ELF with the header, or any file whose header has the a.out kludge.
        if Multiboot2.hasHeader(image) {
            do { _ = try Multiboot2.findHeader(in: image); return .multiboot } catch { throw .kernel(path: name, error) }
        }
        do {
            let header = try Multiboot.findHeader(in: image)
            if isELF || header.flags & Multiboot.flagAddressFields != 0 { return .multiboot }
            throw VMMError.kernel(path: name, .badAddressFields("a kernel that is not ELF needs the a.out kludge (multiboot header flag 16) to say where it loads"))
        } catch KernelImageError.noMultibootHeader {
            // Not multiboot: a vmlinux with a PVH note, or a bzImage?
        } catch let error as VMMError { throw error } catch let error as KernelImageError { throw .kernel(path: name, error) } catch {
            throw .invalidOption("kernel \(name): \(error)")
        }
        if isELF {
            do { _ = try PVHKernel(image); return .pvh } catch .noPVHNote {
                throw .invalidOption("kernel \(name): an ELF file with neither a multiboot header nor a PVH note (XEN_ELFNOTE_PHYS32_ENTRY); give a multiboot kernel, a vmlinux built with CONFIG_PVH=y, or a bzImage")
            } catch { throw .invalidOption("kernel \(name): \(error)") }
        }
        if image.count >= 0x206, image[0x202] == 0x48, image[0x203] == 0x64, image[0x204] == 0x72, image[0x205] == 0x53 {
            return .bzImage
        }
        if image.isEmpty { throw .kernel(path: name, .empty) }
        throw .invalidOption("kernel \(name): not a kernel Swiftlet can boot: neither an ELF file (multiboot or PVH vmlinux), a multiboot kernel with the a.out kludge, nor a Linux bzImage (no \"HdrS\" at offset 0x202)")
    }

    /// The recipe's unpacking step: with `--decompress`, or on kvm_pvm with the backend profile (whose
    /// guest-side decompressor is emulated CPL0 code: ~27 s for the minimal kernel, minutes for Debian's),
    /// a bzImage's LZ4 payload is unpacked here, to be loaded instead of the bzImage's protected-mode code
    /// and entered at its startup_64. The profile leaves any other kernel as it is. Returns the ELF (or nil)
    /// and a note for -v.
    static func unpackOnHost(_ image: [UInt8], format: KernelFormat, _ configuration: MachineConfiguration,
                             started: UInt64) throws(VMMError) -> (elf: [UInt8]?, note: String?) {
        let profile = !configuration.decompressKernel
        guard configuration.decompressKernel || (format == .bzImage && configuration.backendProfile && KVMSystem.backend() == .pvm) else {
            return (nil, nil)
        }
        let result: (elf: [UInt8], compressed: Int)
        if profile {
            guard let unpacked = try? decompressOnHost(image, format: format) else {
                return (nil, "backend profile kvm_pvm: the bzImage's payload is not an LZ4-compressed x86-64 ELF, so its own decompressor runs in the guest (slow on this backend)")
            }
            result = unpacked
        } else {
            result = try decompressOnHost(image, format: format)
        }
        let milliseconds = (ckvm_monotonic_ns() - started) / 1_000_000
        let why = profile ? "the guest's decompressor would run in KVM's emulator; --no-backend-profile boots the bzImage as it is" : "--decompress"
        return (result.elf, "\(profile ? "backend profile kvm_pvm: " : "")bzImage payload (lz4, \(result.compressed) bytes) unpacked on the host into a \(result.elf.count)-byte ELF in \(milliseconds) ms; entering its startup_64 through the 64-bit boot protocol (\(why))")
    }

    /// `--decompress`: the kernel ELF inside an LZ4 bzImage, checked to be an x86-64 ELF.
    static func decompressOnHost(_ image: [UInt8], format: KernelFormat) throws(VMMError) -> (elf: [UInt8], compressed: Int) {
        let name = "bzImage"
        guard format == .bzImage else {
            throw .invalidOption("--decompress unpacks a bzImage's kernel; this kernel is \(format == .pvh ? "already an ELF vmlinux" : "a multiboot ELF")")
        }
        do {
            let kernel = try LinuxBzImage(image)
            let payload = try kernel.compressedPayload()
            let elf = try kernel.decompressedKernel()
            _ = try UnpackedLinuxKernel(setup: kernel, kernel: elf)
            return (elf, payload.count)
        } catch { throw .invalidOption("\(name): \(error)") }
    }

    /// 32 bytes from the host's /dev/urandom for the kernel's SETUP_RNG_SEED (nil if it cannot be read).
    static func randomSeed() -> [UInt8]? {
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var seed = [UInt8](repeating: 0, count: UnpackedLinuxKernel.seedLength)
        let n = seed.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n == seed.count ? seed : nil
    }

    /// The command line the kernel gets: the VMM's parameters, the backend profile, then the user's. The
    /// command after `--` does not go here: it travels in the initramfs (`initCommandArchive()`).
    func composeCommandLine() -> String {
        let virtio = virtioKernelParameters()
        var parts = (virtio.isEmpty ? ["console=ttyS0"] : virtio) + ["reboot=k", "panic=-1"]
        // No PCI host bridge in this machine: the kernel need not probe for one (1.3 s of emulated probing
        // on kvm_pvm; Firecracker passes the same).
        if mpTablePCIBus() == nil { parts.append("pci=off") }
        if configuration.backendProfile { parts += BackendProfile.parameters(for: backend) }
        // `--snapshot FILE`: Swiftlet's init stops before the command, marks the snapshot point and waits for
        // the command a restore types on the console (guest/linux/init.c, docs/10-snapshots.md).
        if configuration.snapshotPath != nil { parts.append(Self.snapshotParameter) }
        // `--forward-signals`: init polls the lab ports' signal mailbox while the command runs.
        if configuration.forwardSignals { parts.append(BackendProfile.signalsParameter) }
        if !configuration.commandLine.isEmpty { parts.append(configuration.commandLine) }
        return parts.joined(separator: " ")
    }

    /// The environment init passes to the command: the host's TERM, so a shell on the console knows it.
    static func initEnvironment() -> [String] {
        guard let term = getenv("TERM") else { return [] }
        let value = String(cString: term)
        return value.isEmpty ? [] : ["TERM=" + value]
    }

    /// The cpio archive appended to the initramfs: /swiftlet/argv (the words after `--`, exactly) and
    /// /swiftlet/env, which guest/linux/init.c runs (InitCommand.swift); nil when there is nothing to pass.
    func initCommandArchive() -> [UInt8]? {
        let environment = Self.initEnvironment()
        guard !configuration.initArguments.isEmpty || !environment.isEmpty else { return nil }
        return InitCommand.archive(arguments: configuration.initArguments, environment: environment)
    }

    func loadLinux(_ image: [UInt8]) throws(VMMError) {
        var initrd: [UInt8] = []
        if let path = configuration.initrd {
            switch FileBytes.read(path) {
            case let .success(bytes): initrd = bytes
            case let .failure(failure): throw .invalidOption("cannot read initrd \(path): \(failure.reason)")
            }
        }
        if let addition = initCommandArchive() {
            let base = initrd.count
            initrd = Cpio.concatenate(initrd, addition)
            note("initramfs: \(configuration.initrd ?? "(none)") (\(base) bytes) + a \(addition.count)-byte cpio with \(InitCommand.argumentsPath) (\(configuration.initArguments.count) words after --) and \(InitCommand.environmentPath), read by Swiftlet's init")
        }
        kernelCommandLine = composeCommandLine()
        let name = configuration.kernel.displayName
        do {
            try memory.write(bytes: BootGDT.bytes, at: X86Layout.gdt)
            let rsdp = try writePlatformTables()
            switch format {
            case .bzImage:
                let kernel = try LinuxBzImage(image)
                let layout = if let unpacked = unpackedKernel {
                    try UnpackedLinuxKernel(setup: kernel, kernel: unpacked)
                        .load(into: memory, commandLine: kernelCommandLine, initrd: initrd, acpiRSDP: rsdp, randomSeed: Self.randomSeed())
                } else {
                    try kernel.load(into: memory, commandLine: kernelCommandLine, initrd: initrd, acpiRSDP: rsdp)
                }
                let cr3 = try PageTables.writeIdentityMap(into: memory)
                for placement in layout.placements { note("\(placement)") }
                note("identity page tables at \(X86Layout.pageTables) (2 MiB pages, first 4 GiB), CR3 = 0x\(hex(cr3))")
                linuxEntry = BootEntryState.linux64(entry: layout.entry, zeroPage: layout.zeroPage, pageTableRoot: cr3)
            case .pvh:
                let kernel = try PVHKernel(image)
                let layout = try kernel.load(into: memory, commandLine: kernelCommandLine, initrd: initrd, acpiRSDP: rsdp)
                for placement in layout.placements { note("\(placement)") }
                linuxEntry = BootEntryState.pvh(entry: layout.entry, startInfo: layout.startInfo)
            case .multiboot:
                break
            }
        } catch let error as LinuxBootError {
            throw .invalidOption("kernel \(name): \(error)")
        } catch let error as VMMError {
            throw error
        } catch let error as GuestMemoryError {
            throw .memory(error)
        } catch {
            throw .invalidOption("kernel \(name): \(error)")
        }
        unpackedKernel = nil // in guest memory now: the host copy is not needed for the run
        note("kernel command line: \(kernelCommandLine)")
        if configuration.backendProfile, backend == .pvm {
            note("backend profile kvm_pvm: every vCPU is kicked out of KVM_RUN every \(BackendProfile.pvmTickMilliseconds) ms so interrupts that became pending inside KVM's emulator are delivered")
            note("backend profile kvm_pvm: added \(BackendProfile.pvmParameters.joined(separator: " ")) (the emulator lacks XSAVE, POPCNT, SMAP's CLAC/STAC...; disable with --no-backend-profile)")
        }
    }

    /// vCPU 0's registers for the Linux entry (long mode at startup_64, or 32-bit PVH).
    func setLinuxEntryState(_ vcpu: VCPU, _ entry: BootEntryState) throws(KVMError) {
        var sregs = try vcpu.specialRegisters()
        sregs.cs = Self.segment(entry.cs.descriptor, selector: entry.cs.selector)
        let data = Self.segment(entry.data.descriptor, selector: entry.data.selector)
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = Self.segment(entry.tr.descriptor, selector: entry.tr.selector)
        sregs.gdt.base = entry.gdtBase.rawValue
        sregs.gdt.limit = entry.gdtLimit
        sregs.cr0 = entry.cr0
        sregs.cr3 = entry.cr3
        sregs.cr4 = entry.cr4
        sregs.efer = entry.efer
        try vcpu.setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = entry.rip
        regs.rsi = entry.rsi
        regs.rbx = entry.rbx
        regs.rflags = entry.rflags
        try vcpu.setRegisters(regs)
    }

    /// LAPIC LINT0 as ExtINT (the PIC's output, for virtual-wire mode) and LINT1 as NMI, as a PC wires them.
    func configureLocalInterrupts(_ vcpu: VCPU) throws(KVMError) {
        var state = try vcpu.localAPIC()
        withUnsafeMutableBytes(of: &state.regs) { regs in
            func set(_ offset: Int, mode: UInt32) {
                var value = regs.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                value = (value & ~0x700) | (mode << 8)
                regs.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
            }
            set(0x350, mode: 7) // LVT LINT0: ExtINT
            set(0x360, mode: 4) // LVT LINT1: NMI
        }
        try vcpu.setLocalAPIC(state)
    }

    /// Boot MSRs: fast string operations enabled (IA32_MISC_ENABLE bit 0), as firmware leaves them.
    func setBootMSRs(_ vcpu: VCPU) {
        do { try vcpu.setMSRs([(index: 0x1A0, value: 1)]) } catch {
            if vcpu.id == 0 { note("boot MSRs: IA32_MISC_ENABLE not set (\(error))") }
        }
    }

    /// On kvm_pvm a vCPU that stays inside KVM's emulator does not take interrupts that became pending
    /// meanwhile (the LAPIC timer): a kernel spinning on jiffies then waits minutes. Measured: the minimal
    /// kernel stalled ~200 s after "Switched to clocksource kvm-clock" without kicks and did not with them.
    /// The profile kicks every vCPU out of KVM_RUN every few milliseconds, so KVM injects what is pending.
    func tickInterval() -> Int32? {
        guard format.isLinux, configuration.backendProfile, backend == .pvm else { return nil }
        if let value = getenv("SWIFTLET_PVM_TICK_MS"), let ms = Int32(String(cString: value)), ms > 0 { return ms }
        return BackendProfile.pvmTickMilliseconds
    }

    // MARK: Finishing instructions for KVM's emulator

    /// On an emulation failure, finishes the few instructions that are safe to complete in the VMM:
    /// `int3` (advance RIP, inject #BP), `int n` in ring 0 (advance RIP, deliver vector n), a 32-bit
    /// protected-mode `iret` to the same privilege level (ProtectedModeIRET), `clac`/`stac` (flip RFLAGS.AC, advance RIP) and `fwait` (SDM
    /// vol. 2A "WAIT/FWAIT": #NM if CR0.MP and CR0.TS are both set, #MF if an unmasked x87 exception is
    /// pending (FSW.ES), else nothing: advance RIP; only that last case is finished here). Returns the
    /// mnemonic when it did, nil when the failure must stop the VM.
    func finishInstruction(_ vcpu: VCPU, data: [UInt64]) -> String? {
        guard var regs = try? vcpu.registers() else { return nil }
        var bytes = emulationFailureInstructionBytes(data)
        if bytes == nil, let physical = try? vcpu.translate(regs.rip) ?? nil {
            bytes = try? memory.readBytes(at: GuestAddress(physical), count: 3)
        }
        guard let bytes, !bytes.isEmpty else { return nil }
        let ac: UInt64 = 1 << 18
        do {
            if bytes[0] == 0xCC {
                regs.rip &+= 1 // wrapping: a guest RIP at the top of the address space must not trap the VMM
                try vcpu.setRegisters(regs)
                var events = try vcpu.events()
                events.exception.injected = 1
                events.exception.nr = 3 // #BP, a trap: the handler sees RIP after the int3
                events.exception.has_error_code = 0
                events.exception.pending = 0
                try vcpu.setEvents(events)
                return "int3"
            }
            if bytes[0] == 0x9B {
                let cr0 = try vcpu.specialRegisters().cr0
                let monitorAndTaskSwitched = cr0 & 0x2 != 0 && cr0 & 0x8 != 0
                let pendingException = try vcpu.fpu().fsw & 0x80 != 0
                guard !monitorAndTaskSwitched, !pendingException else { return nil }
                regs.rip &+= 1 // wrapping: a guest RIP at the top of the address space must not trap the VMM
                try vcpu.setRegisters(regs)
                return "fwait"
            }
            if bytes[0] == 0xCF { return try finishProtectedModeIRET(vcpu, regs) }
            if bytes[0] == 0xCD, bytes.count >= 2 { return try finishSoftwareInterrupt(vcpu, regs, vector: bytes[1]) }
            if bytes.count >= 3, bytes[0] == 0x0F, bytes[1] == 0x01, bytes[2] == 0xCA || bytes[2] == 0xCB {
                let stac = bytes[2] == 0xCB
                regs.rflags = stac ? regs.rflags | ac : regs.rflags & ~ac
                regs.rip &+= 3 // wrapping: a guest RIP at the top of the address space must not trap the VMM
                try vcpu.setRegisters(regs)
                return stac ? "stac" : "clac"
            }
        } catch { return nil }
        return nil
    }

    /// Finishes `iret` in 32-bit protected mode (paging on or off) when ProtectedModeIRET accepts it: reads
    /// the frame at SS:ESP and the CS descriptor through the vCPU's own translation, loads EIP, CS, EFLAGS
    /// and ESP, and ends NMI blocking as IRET does. Returns "iret", or nil to let the failure stop the VM.
    func finishProtectedModeIRET(_ vcpu: VCPU, _ regs: Registers) throws(KVMError) -> String? {
        var sregs = try vcpu.specialRegisters()
        let longMode: UInt64 = 1 << 10
        guard sregs.cr0 & 1 == 1, sregs.efer & longMode == 0 else { return nil }
        func linearDword(_ linear: UInt64) -> UInt32? {
            guard let physical = try? vcpu.translate(linear) ?? nil else { return nil }
            return try? memory.read(UInt32.self, at: GuestAddress(physical))
        }
        let before = ProtectedModeIRET.Before(cpl: UInt8(sregs.cs.selector & 3), eflags: UInt32(truncatingIfNeeded: regs.rflags),
                                              esp: UInt32(truncatingIfNeeded: regs.rsp), codeIs32Bit: sregs.cs.db == 1)
        let stackBase = UInt32(truncatingIfNeeded: sregs.ss.base)
        let ldt = sregs.ldt
        let after = ProtectedModeIRET.returnState(before, stack: { offset in
            linearDword(UInt64(stackBase &+ before.esp &+ offset))
        }, descriptor: { selector in
            let inLDT = selector & 4 != 0
            let (base, limit) = inLDT ? (ldt.base, UInt64(ldt.limit)) : (sregs.gdt.base, UInt64(sregs.gdt.limit))
            let offset = UInt64(selector & ~7)
            guard offset + 7 <= limit, !(inLDT && ldt.unusable == 1),
                  let low = linearDword(base &+ offset), let high = linearDword(base &+ offset &+ 4) else { return nil }
            return SegmentDescriptor(encoded: UInt64(high) << 32 | UInt64(low))
        })
        guard let after else { return nil }
        sregs.cs = Self.segment(after.csDescriptor, selector: after.cs)
        try vcpu.setSpecialRegisters(sregs)
        var regs = regs
        regs.rip = UInt64(after.eip)
        regs.rflags = UInt64(after.eflags)
        regs.rsp = UInt64(after.esp)
        try vcpu.setRegisters(regs)
        var events = try vcpu.events()
        if events.nmi.masked != 0 {
            events.nmi.masked = 0
            try vcpu.setEvents(events)
        }
        return "iret"
    }

    /// Finishes `int n` (CD ib) executed in ring 0 (the only place KVM's emulator meets it here: user mode
    /// runs natively), outside real mode: RIP moves past the two bytes, then vector n is delivered through the
    /// guest's IDT. Vectors below 32 go in as an exception without an error code (INT n pushes none; #BP is
    /// the int3 case above), the others as an interrupt KVM delivers at the next entry, IF regardless. At
    /// CPL 0 the gate's DPL check of INT n (SDM Vol. 3A §6.12.1.1) always passes, so both deliveries are
    /// what the instruction would do. Vector 2 (NMI), or an event already in flight, is not finished.
    func finishSoftwareInterrupt(_ vcpu: VCPU, _ regs: Registers, vector: UInt8) throws(KVMError) -> String? {
        let sregs = try vcpu.specialRegisters()
        let virtual8086: UInt64 = 1 << 17 // RFLAGS.VM: CS holds a real-mode segment there, not a selector with an RPL
        guard sregs.cr0 & 1 == 1, regs.rflags & virtual8086 == 0, sregs.cs.selector & 3 == 0, vector != 2 else { return nil }
        var events = try vcpu.events()
        guard events.exception.injected == 0, events.exception.pending == 0, events.interrupt.injected == 0 else { return nil }
        var regs = regs
        regs.rip &+= 2 // wrapping: a guest RIP at the top of the address space must not trap the VMM
        try vcpu.setRegisters(regs)
        if vector < 32 {
            events.exception.injected = 1
            events.exception.nr = vector
            events.exception.has_error_code = 0
            events.exception.pending = 0
        } else {
            events.interrupt.injected = 1
            events.interrupt.nr = vector
            events.interrupt.soft = 0
        }
        try vcpu.setEvents(events)
        return "int 0x\(hex(vector, width: 2))"
    }
}
