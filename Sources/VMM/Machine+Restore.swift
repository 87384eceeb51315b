// Machine+Restore: a machine rebuilt from a snapshot file instead of booted (`swiftlet restore FILE`).
//
// The file is checked before anything is created: header, checksum and records (SnapshotContents.decode),
// then that this host can be that machine (same KVM backend, same CPU vendor, the RAM layout this swiftlet
// gives that size) and that the options given agree with it. Then the recipe: open /dev/kvm → create the
// VM → the irqchip and PIT if the snapshot has them → guest RAM mapped from the file MAP_PRIVATE (each
// page is read from the file when the guest first touches it, and stays private to this process, so many
// restores of one file share its page cache) → memory slots → devices → vCPUs with the saved CPUID → the
// VM's state (PICs, IOAPIC, PIT, clock) → each vCPU's state → each device's state. No kernel is loaded.
// Order of the vCPU's state (as Firecracker's): MP state, registers, special registers, FPU, XCRs, the
// XSAVE area, debug registers, LAPIC, MSRs (after SREGS and the LAPIC: APIC_BASE and EFER), events last.
import CKVM
import Devices
import Glibc
import GuestMemory
import KVM
import Snapshot
import X86Boot

/// What `swiftlet restore` was told about the machine it expects; each given value must match the snapshot.
public struct RestoreExpectations: Sendable {
    public var memorySize: UInt64? = nil
    public var cpus: Int? = nil
    public var console: ConsoleKind? = nil
    public init() {}
}

/// A snapshot file opened and checked: its fd (for mapping RAM) and its parsed contents.
public struct SnapshotFileHandle: ~Copyable {
    public let fd: Int32
    public let contents: SnapshotContents
    public let fileSize: UInt64

    /// Opens `path` and reads and checks its header and state section.
    public init(path: String) throws(VMMError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .snapshot(path: path, .io("cannot open: \(String(cString: strerror(errno)))")) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .snapshot(path: path, .io("not a regular file"))
        }
        let size = UInt64(info.st_size)
        do {
            let head = try Self.read(fd, count: min(Int(size), SnapshotFormat.headerSize), at: 0)
            let header = try SnapshotHeader.parse(head, fileSize: size)
            let rest = try Self.read(fd, count: Int(header.stateLength), at: off_t(SnapshotFormat.headerSize))
            contents = try SnapshotContents.decode(head + rest, fileSize: size)
        } catch {
            close(fd)
            throw .snapshot(path: path, error)
        }
        self.fd = fd
        self.fileSize = size
    }

    deinit { close(fd) }

    static func read(_ fd: Int32, count: Int, at offset: off_t) throws(SnapshotError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, offset + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .truncated("the file ends at \(offset + off_t(done)) while \(count - done) more bytes were expected") }
            done += n
        }
        return bytes
    }
}

extension SnapshotMachine {
    /// Refuses a snapshot this host cannot be, naming what differs.
    func checkHost(backend: String, cpuVendor: String) throws(SnapshotError) {
        guard self.backend == backend else {
            throw .mismatch("taken on \(self.backend), this host's KVM is \(backend) (guest state is not portable between them)")
        }
        guard self.cpuVendor == cpuVendor else {
            throw .mismatch("taken on a \(self.cpuVendor) CPU, this host's is \(cpuVendor) (the guest saw that CPU's features)")
        }
    }

    func check(_ expected: RestoreExpectations) throws(SnapshotError) {
        if let memory = expected.memorySize, memory != memorySize {
            throw .mismatch("--memory \(MachineConfiguration.describeSize(memory)), the snapshot's machine has \(MachineConfiguration.describeSize(memorySize))")
        }
        if let cpus = expected.cpus, cpus != Int(self.cpus) {
            throw .mismatch("--cpus \(cpus), the snapshot's machine has \(self.cpus)")
        }
        if let console = expected.console, console.rawValue != self.console {
            throw .mismatch("--console \(console.rawValue), the snapshot's machine has --console \(self.console)")
        }
    }
}

extension Machine {
    /// Rebuilds the machine saved in `path`, ready to run; throws (and creates no VM) when the file is refused.
    public static func restore(from path: String, expecting expected: RestoreExpectations = RestoreExpectations(),
                               timeout: Double? = nil, controlSocket: String? = nil, command: [String] = [],
                               confine: Bool = false, console: ConsoleOutput = ConsoleOutput()) throws(VMMError) -> Machine {
        let started = ckvm_monotonic_ns()
        let file = try SnapshotFileHandle(path: path)
        let saved = file.contents.machine
        func refuse(_ error: SnapshotError) -> VMMError { .snapshot(path: path, error) }
        do {
            try saved.checkHost(backend: KVMSystem.backend().rawValue, cpuVendor: hostCPUVendor())
            try saved.check(expected)
        } catch { throw refuse(error) }
        guard let format = KernelFormat(rawValue: saved.kernelFormat), let kernel = KernelSource(snapshotName: saved.kernel),
              let consoleKind = ConsoleKind(rawValue: saved.console), consoleKind == .serial else {
            throw refuse(.malformed("the machine record names a kernel format, kernel or console this swiftlet does not know"))
        }
        guard saved.memorySize >= X86Layout.minimumRAM, Int(saved.cpus) <= MachineConfiguration.maximumCPUs else {
            throw refuse(.malformed("a machine of \(saved.memorySize) bytes and \(saved.cpus) vCPUs is not one swiftlet builds"))
        }
        var configuration = MachineConfiguration()
        configuration.kernel = kernel
        configuration.memorySize = saved.memorySize
        configuration.cpus = Int(saved.cpus)
        configuration.console = consoleKind
        configuration.commandLine = saved.commandLine
        configuration.timeout = timeout
        configuration.controlSocket = controlSocket
        configuration.initArguments = command
        // Confined as a boot is, unless the control socket may be asked to write a snapshot (a file).
        configuration.confine = confine && controlSocket == nil
        let layout = X86Layout.ramLayout(size: saved.memorySize)
        let regions = file.contents.regions.sorted { $0.guestAddress < $1.guestAddress }
        guard layout.count == regions.count, zip(layout, regions).allSatisfy({ $0.base.rawValue == $1.guestAddress && $0.size == $1.length }) else {
            throw refuse(.mismatch("its RAM regions are not the layout this swiftlet gives \(MachineConfiguration.describeSize(saved.memorySize)) of RAM"))
        }
        for id in 0..<saved.cpus {
            for tag in ["CPID", "REGS", "SREG", "FPU_", "MSRS", "EVNT", "MPST"] where file.contents.record(tag, index: id) == nil {
                throw refuse(.malformed("vCPU \(id) has no \(tag) record"))
            }
        }

        let kvm = try openKVM()
        let vm = try createVM(kvm)
        let memory: GuestMemory
        do {
            memory = try GuestMemory(mappingFile: file.fd, layout: regions.map {
                (GuestAddress($0.guestAddress), $0.length, file.contents.header.memoryOffset + $0.fileOffset)
            })
        } catch { throw .memory(error) }
        let machine = Machine(configuration: configuration, format: format, kvm: kvm, vm: vm, memory: memory, console: console, started: started)
        machine.kernelCommandLine = saved.commandLine
        try machine.setArchitectureAddresses()
        // Memory slots first, as build() does: on a VM that already has an in-kernel irqchip,
        // KVM_SET_USER_MEMORY_REGION waits for an SRCU grace period (7.5 ms of a 30 ms counter restore here).
        try machine.registerMemorySlots()
        do {
            if saved.irqchip { try vm.createIRQChip() }
            if saved.pit { try vm.createPIT() }
        } catch { throw .kvm(error) }
        try machine.attachDevices()
        do {
            try machine.restoreState(file.contents)
        } catch let error as SnapshotError { throw refuse(error) } catch let error as KVMError { throw .kvm(error) } catch {
            throw .invalidOption("\(error)")
        }
        if format.isLinux && saved.commandLine.contains(Machine.snapshotParameter) {
            // Init waits at its snapshot point for a command on the console (none: it starts a shell).
            machine.pendingConsoleInput.withLock { $0 = Machine.commandMessage(command) }
        } else if !command.isEmpty {
            throw refuse(.mismatch("a command was given, but the snapshot's guest does not wait for one (only a minimal Linux snapshotted by `boot --snapshot` does)"))
        }
        machine.restoredFrom = (path, ckvm_monotonic_ns() - started)
        machine.note("restored from snapshot \(path) (taken of \(kernel.displayName), \(saved.cpus) vCPU\(saved.cpus == 1 ? "" : "s"), \(MachineConfiguration.describeSize(saved.memorySize)) of RAM, \(saved.backend))")
        return machine
    }

    /// Writes the saved MSRs. KVM refuses a few on a vCPU whose CPUID lacks their feature (the kvmclock
    /// poll-control MSR 0x4b564d06 here) although it listed and read them: one that holds the value a new
    /// vCPU has anyway (its reset value, what the guest never changed) is left out; any other refusal fails
    /// the restore, naming the MSR.
    func restoreMSRs(_ saved: [(index: UInt32, value: UInt64)], on vcpu: VCPU) throws {
        var rest = saved[...]
        while !rest.isEmpty {
            do {
                try vcpu.setMSRs(Array(rest))
                return
            } catch {
                // setMSRs names the refused MSR; find it by writing one at a time from the start of `rest`.
                var refused: Int? = nil
                for (k, msr) in rest.enumerated() {
                    if (try? vcpu.setMSRs([msr])) == nil { refused = k; break }
                }
                guard let k = refused else { return } // all went in one by one
                let msr = rest[rest.startIndex + k]
                let current = try? vcpu.msrs([msr.index]).first
                guard current == msr.value || (current == nil && msr.value == 0) else {
                    throw SnapshotError.mismatch("this host's KVM refuses MSR 0x\(String(msr.index, radix: 16)) = 0x\(String(msr.value, radix: 16)) for vCPU \(vcpu.id)")
                }
                rest = rest.dropFirst(k + 1)
            }
        }
    }

    /// The timeline of a restored machine: its milestones and the guest's lab markers since the restore began.
    public func restoreTimeline() -> String {
        let lines = timeline().split(separator: "\n", omittingEmptySubsequences: false).dropFirst()
        return (["restore timeline (ms since swiftlet began restoring; this VM was restored from a snapshot, not booted):"] + lines.map(String.init))
            .joined(separator: "\n")
    }

    /// Creates the vCPUs and puts the VM's, the vCPUs' and the devices' state back.
    func restoreState(_ contents: SnapshotContents) throws {
        // The VM's interrupt controllers, PIT and clock first: the LAPIC and MSRs below refer to them.
        for record in contents.records("IRQC") {
            guard IRQChipID(rawValue: record.index) != nil else { throw SnapshotError.malformed("IRQC record for chip \(record.index)") }
            try vm.setIRQChip(try fromRawBytes(record.payload, as: IRQChipState.self, "IRQC"))
        }
        if let pit = contents.record("PIT2") { try vm.setPITState(try fromRawBytes(pit.payload, as: PITState.self, "PIT2")) }
        if let clock = contents.record("CLCK") { try vm.setClock(try fromRawBytes(clock.payload, as: ClockState.self, "CLCK")) }
        for id in 0..<UInt32(configuration.cpus) {
            let vcpu = try vm.createVCPU(id: id)
            func payload(_ tag: String) -> [UInt8]? { contents.record(tag, index: id)?.payload }
            var cpuid = StateReader(payload("CPID") ?? [], what: "vCPU \(id)'s CPUID")
            var entries: [CPUIDEntry] = []
            while !cpuid.isAtEnd {
                entries.append(CPUIDEntry(function: try cpuid.u32(), index: try cpuid.u32(), flags: try cpuid.u32(),
                                          eax: try cpuid.u32(), ebx: try cpuid.u32(), ecx: try cpuid.u32(), edx: try cpuid.u32()))
                guard entries.count <= 4096 else { throw SnapshotError.malformed("vCPU \(id)'s CPUID has too many entries") }
            }
            try vcpu.setCPUID(entries)
            if id == 0 { vcpu0CPUID = entries }
            var mp = StateReader(payload("MPST") ?? [], what: "vCPU \(id)'s MP state")
            try vcpu.setMultiprocessingState(MultiprocessingState(rawValue: try mp.u32()))
            try vcpu.setRegisters(try fromRawBytes(payload("REGS") ?? [], as: Registers.self, "REGS"))
            try vcpu.setSpecialRegisters(try fromRawBytes(payload("SREG") ?? [], as: SpecialRegisters.self, "SREG"))
            try vcpu.setFPU(try fromRawBytes(payload("FPU_") ?? [], as: FPUState.self, "FPU_"))
            // XCR0 before the XSAVE area (it says which components the area may hold); the area after the FPU
            // (it holds the same x87/SSE state and more).
            if let xcrs = payload("XCRS") { try vcpu.setExtendedControlRegisters(try fromRawBytes(xcrs, as: ExtendedControlRegisters.self, "XCRS")) }
            if let xsave = payload("XSAV") { try vcpu.setXSAVEState(try fromRawBytes(xsave, as: XSAVEState.self, "XSAV")) }
            if let debug = payload("DBGR") { try vcpu.setDebugRegisters(try fromRawBytes(debug, as: DebugRegisters.self, "DBGR")) }
            if let lapic = payload("LAPC") { try vcpu.setLocalAPIC(try fromRawBytes(lapic, as: LocalAPICState.self, "LAPC")) }
            var msrs = StateReader(payload("MSRS") ?? [], what: "vCPU \(id)'s MSRs")
            let count = Int(try msrs.u32())
            guard count <= 4096 else { throw SnapshotError.malformed("vCPU \(id) has \(count) MSRs") }
            var list: [(index: UInt32, value: UInt64)] = []
            for _ in 0..<count { list.append((try msrs.u32(), try msrs.u64())) }
            try msrs.finish()
            try restoreMSRs(list, on: vcpu)
            try vcpu.setEvents(try fromRawBytes(payload("EVNT") ?? [], as: VCPUEvents.self, "EVNT"))
            vcpus.append(vcpu)
        }
        let devices = Dictionary(persistentDevices.map { ($0.stateKey, $0) }, uniquingKeysWith: { a, _ in a })
        var restored: Set<String> = []
        for record in contents.records("DEVC") {
            var r = StateReader(record.payload, what: "device record \(record.index)")
            let key = try r.string(limit: 64)
            let state = try r.data()
            try r.finish()
            guard let device = devices[key] else { throw SnapshotError.mismatch("it saved a device '\(key)' this machine does not have") }
            try device.restoreState(state)
            restored.insert(key)
        }
        if let missing = devices.keys.sorted().first(where: { !restored.contains($0) }) {
            throw SnapshotError.malformed("no saved state for device '\(missing)'")
        }
    }
}
