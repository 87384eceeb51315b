// Machine: a virtual machine built by a recipe that reads top to bottom, returned ready but not running.
//
// build(): open /dev/kvm → create the VM → guest RAM (and the firmware ROM) → memory slots → the PC's
// interrupt controllers and PIT (Machine+Platform.swift) → load the
// kernel → boot information (multiboot info, GDT, firmware handoff) → devices on the port bus → vCPUs
// with CPUID and the entry registers. Each step is a small method that throws a VMMError naming what failed.
// Running the machine (vCPU threads, exit dispatch) is in Machine+Run.swift.
import CGuestImages
import CKVM
import Devices
import Glibc
import GuestMemory
import KVM
import Synchronization
import Virtio
import X86Boot

public final class Machine: @unchecked Sendable {
    public let configuration: MachineConfiguration
    public let format: KernelFormat
    /// When build() began (monotonic ns): the zero of the boot timeline.
    public let started: UInt64
    /// Linux: the command line the kernel got, and the entry state of vCPU 0.
    public internal(set) var kernelCommandLine = ""
    var linuxEntry: BootEntryState?
    /// A bzImage's kernel unpacked on the host (`--decompress`, or the kvm_pvm profile): loaded instead of
    /// the bzImage's protected-mode code and entered at its startup_64 (UnpackedLinuxKernel).
    var unpackedKernel: [UInt8]?
    /// The serial port, so host input can reach the guest.
    public internal(set) var serial: Serial8250?
    /// The virtio console (`--console virtio`), its notification paths and its control port.
    public internal(set) var virtioConsole: VirtioConsoleAttachment?
    /// Boot milestones (name, ns since `started`), in order.
    public let milestones = Mutex<[(name: String, nanoseconds: UInt64)]>([])
    /// Instructions the VMM finished for KVM's emulator (int3, clac, stac, fwait), by mnemonic.
    public let finishedInstructions = Mutex<[String: Int]>([:])
    public let kvm: KVMSystem
    public let backend: Backend
    public let vm: VirtualMachine
    public let memory: GuestMemory
    public let portBus = Bus(name: "port I/O")
    public let mmioBus = Bus(name: "MMIO")
    public internal(set) var vcpus: [VCPU] = []
    public let console: ConsoleOutput
    public let tracer: ExitTracer
    /// Where each step of the boot put things, for `explain` and the learning lab.
    public private(set) var bootNotes: [String] = []
    /// The CPUID table vCPU 0 was given with KVM_SET_CPUID2 (what `explain` compares with the host's).
    public internal(set) var vcpu0CPUID: [CPUIDEntry] = []
    /// Timestamps (ns since the process's monotonic clock) of each lab-port marker the guest wrote.
    public let markers = Mutex<[(code: UInt32, nanoseconds: UInt64)]>([])
    /// Set once, by whichever vCPU or device ends the run first.
    let outcome = Mutex<MachineOutcome?>(nil)
    let stopRequested = Atomic<Bool>(false)
    var entryPoint: UInt32 = 0
    var multibootInfoAddress: UInt32 = 0
    /// The kernel carries a Multiboot2 header (EAX = 0x36d76289 at entry) rather than a Multiboot one.
    var multiboot2 = false
    var multibootMagic: UInt32 { multiboot2 ? Multiboot2.bootloaderMagic : Multiboot.bootloaderMagic }
    /// The modules placed after a multiboot kernel (`--initrd` first, then each `--module`).
    public internal(set) var modules: [Multiboot.Module] = []
    let unmappedReports = Atomic<Int>(0)
    /// The first accesses to guest-physical addresses with neither RAM nor a device (for the run report).
    public let unmappedAccesses = Mutex<[UnbackedAccess]>([])
    /// The first port accesses no device answered, and how many there were in all (for the run report).
    public let unassignedPortAccesses = Mutex<(first: [UnbackedAccess], count: Int)>(([], 0))
    let panicLine = Mutex<String?>(nil)
    /// The minimal kernel's syscall change as it last reported itself on the console ("on" or "off"), nil
    /// when the kernel never said (it does not carry the change).
    let syscallChange = Mutex<String?>(nil)
    /// The write end of the run loop's wake-up pipe while `run()` waits, else -1.
    let wakeFD = Atomic<Int32>(-1)
    let ripSamples = Mutex<[UInt32: [UInt64: Int]]>([:])
    let ripSamplingOn = Atomic<Bool>(false)
    /// Halt detection on the PC (Machine+Platform.swift): the current round, and each vCPU's last report.
    let haltRound = Atomic<Int>(0)
    let parkReports = Mutex<[UInt32: (round: Int, parkedSince: Int?)]>([:])
    /// VM exits per vCPU index, so the halt check kicks only vCPUs that have been quiet (a vCPU that keeps
    /// exiting is not parked, and an extra exit would only cost it time).
    let exitCounts = Mutex<[Int]>([])
    /// `--gdb`: the stub that stops and resumes the vCPUs for gdb (Machine+GDB.swift).
    var gdbStub: GDBStub?
    /// The keyboard controller (its state is saved in snapshots).
    var i8042: I8042?
    /// The lab ports: markers, parameters and the signal mailbox (`--forward-signals`).
    var labPorts: LabPorts?
    /// The MC146818 RTC/CMOS of the PC machine (nil on `--machine bare`), kept for snapshots.
    var rtc: RTC?
    /// Pause and resume (PauseGate.swift); the vCPU threads, so a pause can kick them.
    let pauseGate = PauseGate()
    let vcpuThreads = Mutex<[pthread_t]>([])
    /// Set by the snapshot marker (`--snapshot FILE`), taken by the run loop.
    let snapshotDue = Atomic<Bool>(false)
    /// Set when this machine was restored from a snapshot: the file, and how long the restore took (ns).
    public internal(set) var restoredFrom: (path: String, nanoseconds: UInt64)?
    /// Bytes to type on the serial console as the guest takes them (a restored init's command).
    let pendingConsoleInput = Mutex<[UInt8]>([])

    // MARK: The recipe

    /// Builds the machine described by `configuration`; the vCPUs are created but not started.
    public static func build(_ configuration: MachineConfiguration, console: ConsoleOutput = ConsoleOutput()) throws(VMMError) -> Machine {
        let started = ckvm_monotonic_ns()
        let image = try readKernelImage(configuration.kernel)
        let format = try detectFormat(image, name: configuration.kernel.displayName)
        let (unpacked, unpackNote) = try unpackOnHost(image, format: format, configuration, started: started)
        try validate(configuration, format: format)
        let kvm = try openKVM()
        let vm = try createVM(kvm)
        let memory = try createMemory(configuration)
        let machine = Machine(configuration: configuration, format: format, kvm: kvm, vm: vm, memory: memory, console: console, started: started)
        if let unpackNote { machine.note(unpackNote) }
        machine.unpackedKernel = unpacked
        try machine.setArchitectureAddresses()
        // Memory slots before the irqchip: KVM_SET_USER_MEMORY_REGION on a VM that already has an in-kernel
        // irqchip waits for an SRCU grace period (measured on kvm_pvm: 8-12 ms per boot; 0.04 ms this way round).
        try machine.registerMemorySlots()
        try machine.createInterruptControllers()
        switch format {
        case .multiboot:
            try machine.loadMultibootKernel(image)
            try machine.writeBootInformation()
        case .bzImage, .pvh:
            try machine.loadLinux(image)
        }
        try machine.attachDevices()
        if configuration.console == .virtio { try machine.attachVirtioConsole() }
        try machine.createVCPUs()
        if let endpoint = configuration.gdb { try machine.attachGDBStub(endpoint) }
        return machine
    }

    init(configuration: MachineConfiguration, format: KernelFormat, kvm: KVMSystem, vm: VirtualMachine,
                 memory: GuestMemory, console: ConsoleOutput, started: UInt64) {
        self.configuration = configuration
        self.format = format
        self.started = started
        self.kvm = kvm
        self.backend = KVMSystem.backend()
        self.vm = vm
        self.memory = memory
        self.console = console
        self.tracer = ExitTracer(printing: configuration.traceExits, settings: configuration.exitTrace)
        if format.isLinux {
            console.observeLines { [unowned self] line in self.scanForMilestone(line) }
        }
    }

    static func validate(_ c: MachineConfiguration, format: KernelFormat) throws(VMMError) {
        guard c.memorySize >= X86Layout.minimumRAM else {
            throw .invalidOption("--memory \(MachineConfiguration.describeSize(c.memorySize)) is too small: the guest needs at least \(X86Layout.minimumRAM >> 20)M")
        }
        let host = hostMemoryBytes()
        if host > 0 && c.memorySize > host {
            throw .invalidOption("--memory \(c.memorySize >> 20)M is more than this host has (\(host >> 20) MiB of RAM)")
        }
        if format == .multiboot {
            guard c.initArguments.isEmpty else {
                throw .invalidOption("a command after -- needs a Linux kernel: give --kernel bzImage --initrd initramfs.cpio (\(c.kernel.displayName) is a multiboot guest and runs no commands)")
            }
        }
        guard c.cpus >= 1, c.cpus <= MachineConfiguration.maximumCPUs else {
            throw .invalidOption("--cpus \(c.cpus): give 1 to \(MachineConfiguration.maximumCPUs)")
        }
        if c.machine == .bare {
            guard format == .multiboot else { throw .invalidOption("--machine bare is for multiboot kernels: Linux needs the PC's interrupt controllers (drop --machine bare)") }
            guard c.cpus == 1 else { throw .invalidOption("--cpus \(c.cpus): a bare machine has no LAPICs to start more vCPUs with (drop --machine bare)") }
        }
        if format != .multiboot {
            guard c.bootMode == .direct else { throw .invalidOption("--boot firmware boots multiboot kernels; Linux is booted directly") }
            guard c.modules.isEmpty else { throw .invalidOption("--module is for multiboot kernels; give Linux its initramfs with --initrd") }
        }
        if c.snapshotPath != nil, let refusal = snapshotRefusal(c) { throw .invalidOption("--snapshot: \(refusal)") }
        if let t = c.timeout, !(t > 0) { throw .invalidOption("--timeout must be a positive number of seconds") }
        try validateConsole(c)
    }

    static func openKVM() throws(VMMError) -> KVMSystem {
        do { return try KVMSystem() } catch { throw .kvm(error) }
    }

    static func createVM(_ kvm: KVMSystem) throws(VMMError) -> VirtualMachine {
        do { return try kvm.createVirtualMachine() } catch { throw .kvm(error) }
    }

    static func createMemory(_ c: MachineConfiguration) throws(VMMError) -> GuestMemory {
        var layout = X86Layout.ramLayout(size: c.memorySize)
        if c.bootMode == .firmware { layout.append((X86Layout.firmwareBase, X86Layout.firmwareSize)) }
        do { return try GuestMemory(layout: layout) } catch { throw .memory(error) }
    }

    /// KVM on Intel needs three pages for a real-mode TSS and one for an identity map, somewhere the guest
    /// never uses; AMD and PVM accept and ignore them.
    func setArchitectureAddresses() throws(VMMError) {
        do {
            try vm.setTSSAddress(X86Layout.kvmTSS.rawValue)
            if kvm.checkExtension(.setIdentityMapAddress) > 0 { try vm.setIdentityMapAddress(X86Layout.kvmIdentityMap.rawValue) }
        } catch { throw .kvm(error) }
    }

    func registerMemorySlots() throws(VMMError) {
        for (slot, region) in memory.regions.enumerated() {
            do {
                try vm.setUserMemoryRegion(slot: UInt32(slot), guestPhysicalAddress: region.range.base.rawValue,
                                           size: region.range.length, hostAddress: memory.hostAddress(of: region))
            } catch { throw .kvm(error) }
            note("memory slot \(slot): guest-physical \(region.range) ← \(region.range.length >> 10) KiB of host memory (mmap, touched on demand)")
        }
    }

    static func readKernelImage(_ kernel: KernelSource) throws(VMMError) -> [UInt8] {
        switch kernel {
        case let .embedded(name):
            guard !MachineConfiguration.embeddedNonGuests.contains(name), let image = Self.embeddedImage(name) else {
                throw .invalidOption("no embedded guest named '\(name)' (built in: \(MachineConfiguration.embeddedGuests.joined(separator: ", ")))")
            }
            return image
        case let .file(path):
            switch FileBytes.read(path) {
            case let .success(bytes): return bytes
            case let .failure(failure): throw .kernelFile(path: path, reason: failure.reason)
            }
        }
    }

    static func embeddedImage(_ name: String) -> [UInt8]? {
        var size = 0
        guard let bytes = swiftlet_guest_image(name, &size), size > 0 else { return nil }
        return Array(UnsafeBufferPointer(start: bytes, count: size))
    }

    /// Multiboot: validate the ELF and its header, then copy the segments to their physical addresses.
    func loadMultibootKernel(_ image: [UInt8]) throws(VMMError) {
        var reserved: [(range: AddressRange, what: String)] = [
            (AddressRange(base: GuestAddress(0), length: X86Layout.multibootInfoEnd.rawValue)!, "the boot information area below 0x8000"),
        ]
        if configuration.bootMode == .firmware {
            reserved.append((AddressRange(base: X86Layout.firmwareBase, length: X86Layout.firmwareSize)!, "the firmware ROM at 0xffff0000"))
        }
        if let tables = platformTableRange { reserved.append((tables, "the ACPI and MP tables at 0xe0000-0xfffff")) }
        let kernel: Multiboot.Kernel
        do throws(KernelImageError) {
            if Multiboot2.hasHeader(image) {
                guard configuration.bootMode == .direct else {
                    throw KernelImageError.multiboot2("--boot firmware hands over with the Multiboot (v1) magic; boot a Multiboot2 kernel directly")
                }
                kernel = try Multiboot2.validate(image: image, memory: memory, reserved: reserved).kernel
                multiboot2 = true
            } else {
                kernel = try Multiboot.validate(image: image, memory: memory, reserved: reserved)
            }
        } catch { throw .kernel(path: configuration.kernel.displayName, error) }
        do { try Multiboot.load(kernel, image: image, into: memory) } catch { throw .memory(error) }
        entryPoint = kernel.entry
        for r in kernel.loadedRanges {
            note("kernel segment: guest-physical \(rangeText(base: r.start, length: r.end &- r.start)) from \(kernel.header.flags & Multiboot.flagAddressFields != 0 ? "the header's a.out kludge address fields" : "the ELF's program headers")")
        }
        note("\(multiboot2 ? "multiboot2" : "multiboot") header at file offset 0x\(hex(kernel.header.offset))\(multiboot2 ? "" : ", flags 0x\(hex(kernel.header.flags))"); entry point 0x\(hex(kernel.entry))")
        try loadModules(after: kernel.end, reserved: reserved)
    }

    /// `--initrd` (module 0, as QEMU's -initrd does for multiboot kernels) and each `--module`, page-aligned
    /// after the kernel.
    func loadModules(after kernelEnd: UInt64, reserved: [(range: AddressRange, what: String)]) throws(VMMError) {
        let sources = (configuration.initrd.map { [ModuleSource(path: $0)] } ?? []) + configuration.modules
        guard !sources.isEmpty else { return }
        var files: [(name: String, bytes: [UInt8], commandLine: String)] = []
        for source in sources {
            switch FileBytes.read(source.path) {
            case let .success(bytes): files.append((source.path, bytes, source.commandLine.isEmpty ? source.path : source.commandLine))
            case let .failure(failure): throw .invalidOption("cannot read module \(source.path): \(failure.reason)")
            }
        }
        do {
            modules = try Multiboot.placeModules(sizes: files.map { ($0.name, UInt64($0.bytes.count), $0.commandLine) }, after: kernelEnd,
                                                 memory: memory, reserved: reserved)
        } catch { throw .kernel(path: configuration.kernel.displayName, error) }
        for (module, file) in zip(modules, files) {
            do { try memory.write(bytes: file.bytes, at: GuestAddress(module.start)) } catch { throw .memory(error) }
            note("module \(file.name): guest-physical \(rangeText(base: module.start, length: module.end &- module.start)), string \"\(module.commandLine)\"")
        }
    }

    func writeBootInformation() throws(VMMError) {
        let rsdp = try writePlatformTables()
        let base = X86Layout.multibootInfo
        // The virtio console is announced on the command line, in Linux's syntax, for the guest to parse.
        let commandLine = (virtioKernelParameters() + (configuration.commandLine.isEmpty ? [] : [configuration.commandLine])).joined(separator: " ")
        let map = Multiboot.memoryMap(for: memory)
        let info: [UInt8]
        if multiboot2 {
            let rsdpBytes = rsdp.flatMap { try? memory.readBytes(at: $0, count: 36) }
            info = Multiboot2.encodeInfo(base: base, memoryMap: map, commandLine: commandLine, modules: modules, acpiRSDP: rsdpBytes)
        } else {
            info = Multiboot.encodeInfo(base: base, memoryMap: map, commandLine: commandLine, modules: modules)
        }
        do {
            guard base.rawValue + UInt64(info.count) <= X86Layout.multibootInfoEnd.rawValue else {
                throw VMMError.invalidOption("the kernel command line and module strings are too long for the multiboot information area (\(info.count) bytes; at most \(X86Layout.multibootInfoEnd.rawValue - base.rawValue))")
            }
            try memory.write(bytes: info, at: base)
            try memory.write(bytes: BootGDT.bytes, at: X86Layout.gdt)
            if configuration.bootMode == .firmware {
                guard let rom = Self.embeddedImage("firmware"), rom.count == Int(X86Layout.firmwareSize) else {
                    throw VMMError.invalidOption("this swiftlet was built without its firmware image (run guest/build.sh)")
                }
                try memory.write(bytes: rom, at: X86Layout.firmwareBase)
                try memory.write(X86Layout.firmwareHandoffMagic, at: X86Layout.firmwareHandoff)
                try memory.write(entryPoint, at: GuestAddress(X86Layout.firmwareHandoff.rawValue + 4))
                try memory.write(UInt32(base.rawValue), at: GuestAddress(X86Layout.firmwareHandoff.rawValue + 8))
                note("firmware ROM at \(X86Layout.firmwareBase) (reset vector 0xfffffff0); handoff block at \(X86Layout.firmwareHandoff): 'SWFT', entry 0x\(hex(entryPoint)), info \(base)")
            }
        } catch let error as VMMError { throw error } catch let error as GuestMemoryError { throw .memory(error) } catch {
            throw .invalidOption("\(error)")
        }
        multibootInfoAddress = UInt32(base.rawValue)
        note("\(multiboot2 ? "multiboot2 boot information" : "multiboot information") at \(base) (\(info.count) bytes): memory map, command line, loader name\(modules.isEmpty ? "" : ", \(modules.count) module\(modules.count == 1 ? "" : "s")")\(multiboot2 && rsdp != nil ? ", ACPI old and new RSDP" : "")")
        note("GDT at \(X86Layout.gdt): null, code32 0x08, data32 0x10, code64 0x18, data64 0x20, TSS 0x28")
    }

    func attachDevices() throws(VMMError) {
        let console = self.console
        let vm = self.vm
        let irqchip = hasInterruptControllers
        let tracer = self.tracer
        let serial = Serial8250(output: { console.put($0) }, interruptLine: { level in
            guard irqchip else { return }
            try? vm.setIRQLine(4, level: level)
            if tracer.printing {
                tracer.printEvent(source: "COM1", kind: "IRQ", detail: "IRQ 4 line \(level ? "raised" : "lowered") (KVM_IRQ_LINE): IOAPIC pin 4 and PIC input 4 see it; the guest's redirection entry picks the vector")
            }
        })
        self.serial = serial
        // A Linux guest's init writes its command's exit status there: the VM ends with that status.
        let linux = format.isLinux
        let rule = configuration.debugExitRule
        let debugExit = DebugExit { [unowned self] value in
            self.finish(linux ? .commandExited(status: Int32(value & 0xFF)) : .debugExit(value: value, status: rule.status(for: value)))
        }
        let i8042 = I8042 { [unowned self] in self.finish(.reset(how: "i8042 reset command 0xFE on port 0x64")) }
        self.i8042 = i8042
        let lab = LabPorts(parameters: configuration.labParameters) { [unowned self] code in
            let now = ckvm_monotonic_ns()
            self.markers.withLock { $0.append((code, now)) }
            if code == snapshotReadyMarker || (linux && code == Self.linuxSnapshotMarker) { self.snapshotMarkerSeen() }
        }
        labPorts = lab
        do {
            try portBus.insert(serial, name: "COM1 (8250 UART)", base: 0x3F8, length: 8)
            try portBus.insert(debugExit, name: "debug-exit", base: DebugExit.defaultPort, length: 4)
            try portBus.insert(i8042, name: "i8042 (reset)", base: I8042.basePort, length: 5)
            try portBus.insert(lab, name: "lab ports", base: LabPorts.basePort, length: LabPorts.length)
            if configuration.machine == .pc {
                let rtc = makeRTC()
                self.rtc = rtc
                try portBus.insert(rtc, name: "RTC/CMOS (MC146818)", base: RTC.basePort, length: RTC.length)
                try portBus.insert(IRQTestDevice { gsi, level in try? vm.setIRQLine(gsi, level: level) },
                                   name: "IRQ test lines (QEMU pc-testdev)", base: IRQTestDevice.basePort, length: IRQTestDevice.length)
            }
            if !memory.contains(X86Layout.labMMIO, length: 0x20) {
                try mmioBus.insert(lab, name: "lab MMIO marker", base: X86Layout.labMMIO.rawValue, length: 4)
                try mmioBus.insert(debugExit, name: "lab MMIO debug-exit", base: X86Layout.labMMIO.rawValue + 0x10, length: 4)
            }
        } catch { throw .bus("\(error)") }
        for e in portBus.entries { note("port \(e.name) at \(rangeText(base: e.base, length: e.length))") }
        for e in mmioBus.entries { note("MMIO \(e.name) at \(rangeText(base: e.base, length: e.length))") }
    }

    func createVCPUs() throws(VMMError) {
        let maximum = Int(kvm.checkExtension(.maxVCPUs))
        if maximum > 0 && configuration.cpus > maximum {
            throw .invalidOption("--cpus \(configuration.cpus): this host's KVM allows at most \(maximum) vCPUs")
        }
        do {
            let cpuid = try CPUIDPolicy.entries(supported: kvm.supportedCPUID(), vcpuCount: configuration.cpus,
                                                tscDeadline: kvm.checkExtension(.tscDeadlineTimer) > 0)
            for id in 0..<configuration.cpus {
                let vcpu = try vm.createVCPU(id: UInt32(id))
                let table = CPUIDPolicy.forVCPU(UInt32(id), cpuid)
                try vcpu.setCPUID(table)
                if id == 0 { vcpu0CPUID = table }
                if configuration.machine == .pc { try configureLocalInterrupts(vcpu) }
                if format.isLinux {
                    setBootMSRs(vcpu)
                    // Only the bootstrap processor gets entry registers; the others wait for INIT/SIPI.
                    if id == 0, let entry = linuxEntry { try setLinuxEntryState(vcpu, entry) }
                } else if configuration.bootMode == .direct && id == 0 {
                    try setMultibootEntryState(vcpu)
                }
                vcpus.append(vcpu)
            }
        } catch { throw .kvm(error) }
        if let entry = linuxEntry {
            note("vCPU 0: \(entry.summary)")
            if configuration.cpus > 1 { note("vCPUs 1-\(configuration.cpus - 1): waiting for INIT/SIPI from the kernel (in-kernel LAPIC)") }
        } else if configuration.bootMode == .direct {
            note("vCPU 0: 32-bit protected mode, paging off, EIP=0x\(hex(entryPoint)), EAX=0x\(hex(multibootMagic)), EBX=0x\(hex(multibootInfoAddress)), ESP=0x\(hex(X86Layout.multibootStackTop.rawValue)) (\(multiboot2 ? "Multiboot2 §3.3" : "Multiboot §3.2"))")
        } else {
            note("vCPU 0: reset state, real mode, CS:IP = f000:fff0 (physical 0xfffffff0, the firmware's reset vector)")
        }
        if linuxEntry == nil && configuration.cpus > 1 {
            note("vCPUs 1-\(configuration.cpus - 1): waiting for INIT/SIPI from the guest's LAPIC (KVM_MP_STATE_UNINITIALIZED)")
        }
    }

    /// The machine state Multiboot §3.2 promises the kernel, set directly in the vCPU.
    func setMultibootEntryState(_ vcpu: VCPU) throws(KVMError) {
        var sregs = try vcpu.specialRegisters()
        sregs.cs = Self.segment(BootGDT.entries[1], selector: BootGDT.code32Selector)
        let data = Self.segment(BootGDT.entries[2], selector: BootGDT.data32Selector)
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = Self.segment(BootGDT.entries[5], selector: BootGDT.tssSelector)
        sregs.gdt.base = X86Layout.gdt.rawValue
        sregs.gdt.limit = BootGDT.limit
        sregs.cr0 = 0x11 // PE | ET
        sregs.cr4 = 0
        sregs.efer = 0
        try vcpu.setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = UInt64(entryPoint)
        regs.rax = UInt64(multibootMagic)
        regs.rbx = UInt64(multibootInfoAddress)
        regs.rsp = X86Layout.multibootStackTop.rawValue // undefined by the spec; GRUB and QEMU leave a usable one
        regs.rflags = 0x2
        try vcpu.setRegisters(regs)
    }

    static func segment(_ d: SegmentDescriptor, selector: UInt16) -> Segment {
        var s = Segment()
        s.base = UInt64(d.base)
        s.limit = d.byteLimit
        s.selector = selector
        s.type = d.type
        s.present = d.present ? 1 : 0
        s.dpl = d.privilegeLevel
        s.db = d.defaultBig ? 1 : 0
        s.s = d.codeOrData ? 1 : 0
        s.l = d.long ? 1 : 0
        s.g = d.granularity ? 1 : 0
        return s
    }

    func note(_ line: String) { bootNotes.append(line) }
}

/// Total host RAM in bytes (sysconf), 0 if unknown.
func hostMemoryBytes() -> UInt64 {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
    guard pages > 0, pageSize > 0 else { return 0 }
    return UInt64(pages) * UInt64(pageSize)
}
