// Machine+Snapshot: pausing a running machine and writing its whole state to a snapshot file
// (docs/10-snapshots.md; the format is Sources/Snapshot/SnapshotFile.swift).
//
// What a VM's state is, in the order it is saved: the machine (backend, CPU vendor, configuration), its RAM
// regions, then per vCPU the CPUID table, general registers (KVM_GET_REGS), special registers (SREGS), x87/SSE
// (FPU), the XSAVE area, XCRs, debug registers, every MSR in KVM_GET_MSR_INDEX_LIST that the vCPU answers (TSC, kvmclock's
// system time and wall clock MSRs, EFER, STAR/LSTAR, ...), the LAPIC page, pending events and the MP state;
// then the in-kernel PICs and IOAPIC, the PIT, the KVM clock, and each device's own saved state
// (PersistentState). Everything is read while every vCPU is parked outside KVM_RUN (PauseGate).
//
// The file is written atomically: a temporary file beside the target (O_EXCL), the header and state, the
// non-zero pages of RAM with pwrite (zero pages stay holes), ftruncate to the full size, fsync, rename over
// the target, fsync of the directory. A crash at any point leaves either the old file or none: never one
// whose checksum passes with parts missing.
import CKVM
import CGuestImages
import Devices
import Glibc
import GuestMemory
import KVM
import Snapshot

/// What a written snapshot holds, for the line the user reads.
public struct SnapshotSummary: Sendable {
    public var path: String
    public var vcpus: Int
    public var stateBytes: UInt64
    public var memoryPages: Int
    public var fileBytes: UInt64
    public var nanoseconds: UInt64

    public var line: String {
        "snapshot \(path): \(vcpus) vCPU\(vcpus == 1 ? "" : "s"), \(stateBytes) bytes of state, \(memoryPages) non-zero pages of RAM (\(memoryPages * 4) KiB on disk), written in \(nanoseconds / 1_000_000) ms"
    }
}

/// The lab marker a guest writes when it is ready to be snapshotted (`boot --snapshot FILE`): "SNAP".
public let snapshotReadyMarker: UInt32 = 0x534E_4150

/// A KVM structure's bytes as the kernel laid them out (plain C structs: no pointers inside).
func rawBytes<T>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

/// The KVM structure `T` from a record's bytes, which must be exactly its size.
func fromRawBytes<T>(_ bytes: [UInt8], as _: T.Type, _ name: String) throws(SnapshotError) -> T {
    let size = MemoryLayout<T>.size
    guard bytes.count == size else {
        throw .mismatch("the \(name) record is \(bytes.count) bytes; this host's KVM structure is \(size)")
    }
    // SAFETY: T is one of <linux/kvm.h>'s plain structs (integers and arrays only), so every byte pattern
    // of its size is a value of it; the buffer is aligned for T and freed after the load copies it out.
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<T>.alignment)
    defer { buffer.deallocate() }
    bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: size) }
    return buffer.load(as: T.self)
}

/// The host CPU's vendor string from CPUID leaf 0 ("GenuineIntel", "AuthenticAMD").
func hostCPUVendor() -> String {
    var r: [UInt32] = [0, 0, 0, 0]
    ckvm_host_cpuid(0, 0, &r)
    var bytes: [UInt8] = []
    for word in [r[1], r[3], r[2]] { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: word >> (8 * UInt32(k)))) } }
    return String(decoding: bytes, as: UTF8.self)
}

extension Machine {
    /// The kernel parameter that puts Swiftlet's init in snapshot mode (unknown to the kernel, which
    /// ignores a dotted parameter it has no module for; init reads it in /proc/cmdline).
    static let snapshotParameter = "swiftlet.snapshot"
    /// The byte Swiftlet's init writes to the lab marker port at its snapshot point (through /dev/port,
    /// one byte: the 32-bit "SNAP" marker is for tiny guests; 5 and 6 are compare's probe script's).
    static let linuxSnapshotMarker: UInt32 = 7

    /// The bytes a restore types on a Linux guest's console for init in snapshot mode: "N:" and N bytes of
    /// NUL-ended words (guest/linux/init.c, receive_command).
    static func commandMessage(_ words: [String]) -> [UInt8] {
        var body: [UInt8] = []
        for word in words { body += Array(word.utf8) + [0] }
        return Array("\(body.count):".utf8) + body
    }

    // MARK: Pause and resume

    /// Parks every vCPU outside KVM_RUN; true once all are parked (false if the run ended first or they
    /// did not park within a second).
    func pauseVCPUs() -> Bool {
        pauseGate.request()
        for vcpu in vcpus { vcpu.setImmediateExit(true) }
        for thread in vcpuThreads.withLock({ $0 }) { _ = ckvm_kick_thread(UInt(thread), kickSignal) }
        return pauseGate.waitUntilParked(count: vcpuThreads.withLock { $0.count }, milliseconds: 1000)
    }

    func resumeVCPUs() { pauseGate.release() }

    /// vCPU side: completes the exit just handled inside KVM (one KVM_RUN with immediate_exit set returns
    /// EINTR without entering the guest), then parks until resumed.
    func parkForPause(_ vcpu: VCPU) {
        vcpu.setImmediateExit(true)
        _ = try? vcpu.run()
        vcpu.setImmediateExit(false)
        pauseGate.park()
    }

    // MARK: Capturing the state

    /// Why this machine cannot be snapshotted, or nil.
    func snapshotRefusal() -> String? { Self.snapshotRefusal(configuration) }

    /// Why a machine so configured cannot be snapshotted, or nil (checked again at `--snapshot`'s start).
    static func snapshotRefusal(_ configuration: MachineConfiguration) -> String? {
        if configuration.console == .virtio { return "the virtio console's queues are not saved yet; snapshot a machine with --console serial" }
        if configuration.gdb != nil { return "a machine under --gdb cannot be snapshotted" }
        if configuration.bootMode == .firmware { return "--boot firmware machines cannot be snapshotted (their ROM slot is not saved)" }
        return nil
    }

    /// The devices that save state, in a fixed order.
    var persistentDevices: [any PersistentState] {
        var list: [any PersistentState] = []
        if let serial { list.append(serial) }
        if let i8042 { list.append(i8042) }
        if let rtc { list.append(rtc) }
        return list
    }

    /// Every record of the state section; the machine must be paused.
    func captureRecords() throws(VMMError) -> [SnapshotRecord] {
        var machine = SnapshotMachine()
        machine.backend = backend.rawValue
        machine.cpuVendor = hostCPUVendor()
        machine.kernelFormat = format.rawValue
        machine.kernel = configuration.kernel.snapshotName
        machine.memorySize = memory.totalSize
        machine.cpus = UInt32(vcpus.count)
        machine.console = configuration.console.rawValue
        machine.commandLine = kernelCommandLine.isEmpty ? configuration.commandLine : kernelCommandLine
        machine.irqchip = (try? vm.irqChip(.picMaster)) != nil
        machine.pit = (try? vm.pitState()) != nil
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        machine.takenAt = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        var records = [SnapshotRecord("MACH", machine.encoded())]
        var offset: UInt64 = 0
        for (k, region) in memory.regions.enumerated() {
            var w = StateWriter(); w.u64(region.range.base.rawValue); w.u64(region.range.length); w.u64(offset)
            records.append(SnapshotRecord("MEMR", index: UInt32(k), w.bytes))
            offset += (region.range.length + SnapshotFormat.pageSize - 1) / SnapshotFormat.pageSize * SnapshotFormat.pageSize
        }
        do {
            let msrIndices = try kvm.msrIndexList()
            for vcpu in vcpus {
                let id = vcpu.id
                var cpuid = StateWriter()
                for e in try vcpu.cpuid() { for v in [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx] { cpuid.u32(v) } }
                records.append(SnapshotRecord("CPID", index: id, cpuid.bytes))
                records.append(SnapshotRecord("REGS", index: id, rawBytes(try vcpu.registers())))
                records.append(SnapshotRecord("SREG", index: id, rawBytes(try vcpu.specialRegisters())))
                records.append(SnapshotRecord("FPU_", index: id, rawBytes(try vcpu.fpu())))
                // The XSAVE area holds what KVM_GET_FPU cannot (AVX's upper halves and later state components).
                if let xsave = try? vcpu.xsaveState() { records.append(SnapshotRecord("XSAV", index: id, rawBytes(xsave))) }
                if let xcrs = try? vcpu.extendedControlRegisters() { records.append(SnapshotRecord("XCRS", index: id, rawBytes(xcrs))) }
                if let debug = try? vcpu.debugRegisters() { records.append(SnapshotRecord("DBGR", index: id, rawBytes(debug))) }
                var msrs = StateWriter()
                let values = try vcpu.readableMSRs(msrIndices)
                msrs.u32(UInt32(values.count))
                for msr in values { msrs.u32(msr.index); msrs.u64(msr.value) }
                records.append(SnapshotRecord("MSRS", index: id, msrs.bytes))
                if machine.irqchip { records.append(SnapshotRecord("LAPC", index: id, rawBytes(try vcpu.localAPIC()))) }
                records.append(SnapshotRecord("EVNT", index: id, rawBytes(try vcpu.events())))
                var mp = StateWriter(); mp.u32(try vcpu.multiprocessingState().rawValue)
                records.append(SnapshotRecord("MPST", index: id, mp.bytes))
            }
            if machine.irqchip {
                for chip in IRQChipID.allCases { records.append(SnapshotRecord("IRQC", index: chip.rawValue, rawBytes(try vm.irqChip(chip)))) }
            }
            if machine.pit { records.append(SnapshotRecord("PIT2", rawBytes(try vm.pitState()))) }
            if let clock = try? vm.clock() { records.append(SnapshotRecord("CLCK", rawBytes(clock))) }
        } catch { throw .kvm(error) }
        for (k, device) in persistentDevices.enumerated() {
            var w = StateWriter(); w.string(device.stateKey); w.data(device.saveState())
            records.append(SnapshotRecord("DEVC", index: UInt32(k), w.bytes))
        }
        return records
    }

    /// Writes a snapshot of this (paused) machine to `path`, atomically.
    public func writeSnapshot(to path: String) throws(VMMError) -> SnapshotSummary {
        let begin = ckvm_monotonic_ns()
        if let refusal = snapshotRefusal() { throw .invalidOption("cannot snapshot: \(refusal)") }
        let records = try captureRecords()
        let memoryLength = memory.regions.reduce(UInt64(0)) { $0 + ($1.range.length + SnapshotFormat.pageSize - 1) / SnapshotFormat.pageSize * SnapshotFormat.pageSize }
        let (bytes, header) = SnapshotContents.encode(records: records, memoryLength: memoryLength)
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .snapshotWrite(path: path, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var written = false
        defer {
            close(fd)
            if !written { unlink(temporary) }
        }
        func fail(_ what: String) -> VMMError { .snapshotWrite(path: path, "\(what): \(String(cString: strerror(errno)))") }
        guard writeFully(fd, bytes, at: 0) else { throw fail("cannot write the header and state") }
        let page = Int(SnapshotFormat.pageSize)
        var pages = 0
        var regionOffset = header.memoryOffset
        for region in memory.regions {
            let length = Int(region.range.length)
            let host = memory.hostAddress(of: region)
            var at = 0
            while at < length {
                let size = min(page, length - at)
                if ckvm_is_zero(host + at, size) == 0 {
                    guard pwrite(fd, host + at, size, off_t(regionOffset) + off_t(at)) == size else { throw fail("cannot write guest memory") }
                    pages += 1
                }
                at += page
            }
            regionOffset += (region.range.length + SnapshotFormat.pageSize - 1) / SnapshotFormat.pageSize * SnapshotFormat.pageSize
        }
        let total = header.memoryOffset + header.memoryLength
        guard ftruncate(fd, off_t(total)) == 0 else { throw fail("cannot size the file") }
        guard fsync(fd) == 0 else { throw fail("cannot flush the file") }
        guard rename(temporary, path) == 0 else { throw fail("cannot rename \(temporary) to \(path)") }
        written = true
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let directoryFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 { _ = fsync(directoryFD); close(directoryFD) }
        return SnapshotSummary(path: path, vcpus: vcpus.count, stateBytes: header.stateLength, memoryPages: pages,
                               fileBytes: total, nanoseconds: ckvm_monotonic_ns() - begin)
    }

    /// Pauses (unless paused), writes the snapshot, and resumes if it was running.
    func snapshotWhileRunning(to path: String) throws(VMMError) -> SnapshotSummary {
        let wasPaused = pauseGate.isPaused && pauseGate.waitUntilParked(count: vcpuThreads.withLock { $0.count }, milliseconds: 0)
        if !wasPaused {
            guard pauseVCPUs() else { throw .snapshotWrite(path: path, "the vCPUs did not stop within a second") }
        }
        defer { if !wasPaused { resumeVCPUs() } }
        return try writeSnapshot(to: path)
    }
}

func writeFully(_ fd: Int32, _ bytes: [UInt8], at offset: off_t) -> Bool {
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, offset + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }
}

extension KernelSource {
    /// How a snapshot records what was booted: "embedded:NAME" or "file:PATH".
    var snapshotName: String {
        switch self {
        case let .embedded(name): "embedded:\(name)"
        case let .file(path): "file:\(path)"
        }
    }

    init?(snapshotName: String) {
        if snapshotName.hasPrefix("embedded:") { self = .embedded(String(snapshotName.dropFirst(9))) }
        else if snapshotName.hasPrefix("file:") { self = .file(String(snapshotName.dropFirst(5))) }
        else { return nil }
    }
}
