// Multiboot, complete: modules (--module, --initrd as module 0), the a.out kludge, Multiboot2, and the bad
// input around them (corrupt headers, modules that do not fit, overlaps, a directory as a module): each
// refused with one line and status 2. The guests are synthetic: a few instructions that read what the
// loader handed over and write it to the debug-exit port, so the exit value is the assertion.
import Glibc
import GuestMemory
import KVM
import Testing
import TestSupport
import VMM
import X86Boot

enum MultibootFixtures {
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// A raw (not ELF) kernel with the a.out kludge: the multiboot header at file offset 0, loaded at
    /// `load`, entered right after the header; `bss` extra bytes of BSS.
    static func kludge(code: [UInt8], load: UInt32 = 0x10_0000, headerAddress: UInt32? = nil, bss: UInt32 = 0) -> [UInt8] {
        let flags: UInt32 = 0x0001_0002
        let header = le32(0x1BAD_B002) + le32(flags) + le32(0 &- (0x1BAD_B002 &+ flags))
        let size = UInt32(32 + code.count)
        let fields = le32(headerAddress ?? load) + le32(load) + le32(load + size) + le32(bss == 0 ? 0 : load + size + bss) + le32(load + 32)
        return header + fields + code
    }

    /// A Multiboot2 ELF: [ELF header, program header], a short jump over the 8-byte aligned header, the code.
    static func multiboot2(code: [UInt8], tags: [[UInt8]] = [], badChecksum: Bool = false) -> [UInt8] {
        var tagBytes: [UInt8] = []
        for t in tags { tagBytes += t; while tagBytes.count % 8 != 0 { tagBytes.append(0) } }
        tagBytes += [0, 0, 0, 0] + le32(8) // end tag
        let length = UInt32(16 + tagBytes.count)
        let checksum = 0 &- (0xE852_50D6 &+ 0 &+ length) &+ (badChecksum ? 1 : 0)
        let header = le32(0xE852_50D6) + le32(0) + le32(length) + le32(checksum) + tagBytes
        // The ELF's code starts at file offset 84: jmp short to 88 + header, two bytes of padding to 88.
        let jump: [UInt8] = [0xEB, UInt8(2 + header.count), 0x90, 0x90]
        return SyntheticELF.multiboot(code: jump + header + code, multibootHeader: false)
    }

    static func tag(_ type: UInt16, flags: UInt16 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        [UInt8(type & 0xFF), UInt8(type >> 8), UInt8(flags & 0xFF), UInt8(flags >> 8)] + le32(UInt32(8 + payload.count)) + payload
    }

    /// out 0xf4, eax
    static let exitWithEAX: [UInt8] = [0xE7, 0xF4]
}

func bootFile(_ image: [UInt8], modules: [(bytes: [UInt8], commandLine: String)] = [], initrd: [UInt8]? = nil,
              memory: UInt64 = 64 << 20) throws -> (outcome: MachineOutcome, machine: Machine) {
    let tag = UInt32.random(in: 0...UInt32.max)
    let kernel = "/tmp/swiftlet-mb-\(tag).bin"
    ProcessRunner.writeFile(kernel, image)
    var paths = [kernel]
    var c = MachineConfiguration()
    c.kernel = .file(kernel)
    c.memorySize = memory
    c.timeout = 30
    for (i, m) in modules.enumerated() {
        let path = "/tmp/swiftlet-mb-\(tag)-module\(i)"
        ProcessRunner.writeFile(path, m.bytes)
        paths.append(path)
        c.modules.append(ModuleSource(path: path, commandLine: m.commandLine))
    }
    if let initrd {
        let path = "/tmp/swiftlet-mb-\(tag)-initrd"
        ProcessRunner.writeFile(path, initrd)
        paths.append(path)
        c.initrd = path
    }
    defer { for p in paths { unlink(p) } }
    let machine = try Machine.build(c, console: ConsoleOutput(fd: -1, capture: true))
    return (machine.run(), machine)
}

@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct MultibootCompleteTests {
    @Test func modulesArePlacedAfterTheKernelAndListedInOrderWithTheirStrings() throws {
        // mov eax, [ebx+20] (mods_count); out 0xf4, eax
        let code: [UInt8] = [0x8B, 0x43, 0x14] + MultibootFixtures.exitWithEAX
        let (outcome, machine) = try bootFile(SyntheticELF.multiboot(code: code),
                                              modules: [([1, 2, 3], "first arg"), (Array(repeating: 7, count: 5000), "")],
                                              initrd: [9, 9])
        #expect(outcome == .debugExit(value: 3, status: ExitStatus.guestExit(3)), "\(outcome)")
        let modules = machine.modules
        #expect(modules.count == 3)
        #expect(modules[0].end - modules[0].start == 2, "--initrd is module 0")
        #expect(modules[1].commandLine == "first arg")
        #expect(modules.allSatisfy { $0.start % 4096 == 0 && $0.start >= 0x10_0000 })
        #expect(zip(modules, modules.dropFirst()).allSatisfy { $0.end <= $1.start })
        #expect(try machine.memory.readBytes(at: GuestAddress(modules[1].start), count: 3) == [1, 2, 3])
        // The information structure: flags bit 3, mods_addr → {start, end, string} per module.
        let info = GuestAddress(0x6000)
        let flags: UInt32 = try machine.memory.read(at: info)
        #expect(flags & (1 << 3) != 0)
        let list: UInt32 = try machine.memory.read(at: GuestAddress(0x6000 + 24))
        let start: UInt32 = try machine.memory.read(at: GuestAddress(UInt64(list) + 16))
        let string: UInt32 = try machine.memory.read(at: GuestAddress(UInt64(list) + 24))
        #expect(UInt64(start) == modules[1].start)
        #expect(try machine.memory.readBytes(at: GuestAddress(UInt64(string)), count: 10) == Array("first arg\0".utf8))
    }

    @Test func theGuestReadsItsModuleThroughTheInformationStructure() throws {
        // mov eax, [ebx+24]; mov eax, [eax] (mod_start); mov eax, [eax] (the module's first word); out
        let code: [UInt8] = [0x8B, 0x43, 0x18, 0x8B, 0x00, 0x8B, 0x00] + MultibootFixtures.exitWithEAX
        let (outcome, _) = try bootFile(SyntheticELF.multiboot(code: code), modules: [([42, 0, 0, 0], "")])
        #expect(outcome == .debugExit(value: 42, status: ExitStatus.guestExit(42)), "\(outcome)")
    }

    @Test func aKernelThatIsNotELFLoadsThroughTheAOutKludge() throws {
        let code: [UInt8] = [0xB8, 7, 0, 0, 0] + MultibootFixtures.exitWithEAX // mov eax, 7; out
        let (outcome, machine) = try bootFile(MultibootFixtures.kludge(code: code, bss: 0x2000))
        #expect(outcome == .debugExit(value: 7, status: ExitStatus.guestExit(7)), "\(outcome)")
        #expect(machine.bootNotes.contains { $0.contains("a.out kludge") })
    }

    @Test func aMultiboot2KernelGetsItsMagicAndTheBootInformationTags() throws {
        let (outcome, machine) = try bootFile(MultibootFixtures.multiboot2(code: MultibootFixtures.exitWithEAX), modules: [([5], "m2")])
        #expect(outcome == .debugExit(value: Multiboot2.bootloaderMagic, status: ExitStatus.guestExit(Multiboot2.bootloaderMagic)), "\(outcome)")
        // Walk the tags the VMM wrote: every type the issue names is there.
        let base: UInt64 = 0x6000
        let total: UInt32 = try machine.memory.read(at: GuestAddress(base))
        var at = base + 8, types: [UInt32] = []
        while at < base + UInt64(total) {
            let type: UInt32 = try machine.memory.read(at: GuestAddress(at))
            let size: UInt32 = try machine.memory.read(at: GuestAddress(at + 4))
            types.append(type)
            if type == 0 { break }
            at += (UInt64(size) + 7) & ~7
        }
        #expect(types == [1, 2, 3, 4, 6, 14, 15, 0], "\(types)")
    }

    @Test func aMultiboot2KernelWithAnAddressTagLoadsWhereItSays() throws {
        // A raw image: the header at offset 0 with address and entry tags; code right after the header.
        let load: UInt32 = 0x20_0000
        let address = MultibootFixtures.tag(2, MultibootFixtures.le32(load) + MultibootFixtures.le32(load) + MultibootFixtures.le32(0) + MultibootFixtures.le32(0))
        let headerLength = 16 + address.count + 16 + 8
        let entry = MultibootFixtures.tag(3, MultibootFixtures.le32(load + UInt32(headerLength)) + [0, 0, 0, 0])
        let tags = address + entry + [0, 0, 0, 0] + MultibootFixtures.le32(8)
        let length = UInt32(16 + tags.count)
        let header = MultibootFixtures.le32(0xE852_50D6) + MultibootFixtures.le32(0) + MultibootFixtures.le32(length)
            + MultibootFixtures.le32(0 &- (0xE852_50D6 &+ length)) + tags
        let code: [UInt8] = [0xB8, 9, 0, 0, 0] + MultibootFixtures.exitWithEAX
        let (outcome, _) = try bootFile(header + code)
        #expect(outcome == .debugExit(value: 9, status: ExitStatus.guestExit(9)), "\(outcome)")
    }
}

/// Bad input around multiboot: one line on stderr, status 2, never a crash.
@Suite(.enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct MultibootBadInputTests {
    func boot(_ image: [UInt8], _ extra: [String] = []) -> ProcessResult {
        let path = writeTemp("mbbad", image)
        defer { unlink(path) }
        return ProcessRunner.run(swiftlet, ["boot", "--kernel", path, "--timeout", "20"] + extra, deadline: 60)
    }

    func expectRefused(_ r: ProcessResult, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == ExitStatus.badInput, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func aCorruptMultibootChecksumIsRefused() {
        expectRefused(boot(SyntheticELF.multiboot(code: [0xF4], badChecksum: true)), "checksum is wrong")
    }

    @Test func aCorruptMultiboot2ChecksumIsRefused() {
        expectRefused(boot(MultibootFixtures.multiboot2(code: [0xF4], badChecksum: true)), "multiboot2: the header's checksum is wrong")
    }

    @Test func aMultiboot2TagThatRunsPastTheHeaderIsRefused() {
        var image = MultibootFixtures.multiboot2(code: [0xF4], tags: [MultibootFixtures.tag(4, [0, 0, 0, 0])])
        image[88 + 16 + 4] = 0xF0 // the console tag's size: far past header_length
        expectRefused(boot(image), "outside the header")
    }

    @Test(arguments: [(UInt16(7), "EFI boot services (type 7)"), (8, "EFI i386 entry address (type 8)"),
                      (9, "EFI amd64 entry address (type 9)"), (5, "framebuffer (type 5)")])
    func multiboot2TagsThatNeedEFIOrADisplayAreRefusedByName(type: UInt16, name: String) {
        let payload: [UInt8] = type == 5 ? Array(repeating: 0, count: 12) : type == 7 ? [] : [0, 0, 0, 0]
        expectRefused(boot(MultibootFixtures.multiboot2(code: [0xF4], tags: [MultibootFixtures.tag(type, payload)])), name)
    }

    @Test func anOptionalEFITagIsIgnored() {
        let r = boot(MultibootFixtures.multiboot2(code: [0xB8, 1, 0, 0, 0, 0xE7, 0xF4], tags: [MultibootFixtures.tag(7, flags: 1)]))
        #expect(r.status == ExitStatus.guestExit(1), "\(r.stderr)")
    }

    @Test func aRequiredInformationTagSwiftletDoesNotProvideIsRefused() {
        // Information request for type 12 (EFI 64-bit system table pointer).
        let r = boot(MultibootFixtures.multiboot2(code: [0xF4], tags: [MultibootFixtures.tag(1, MultibootFixtures.le32(12))]))
        expectRefused(r, "requires boot information tag type 12")
    }

    @Test func inconsistentAOutKludgeFieldsAreRefused() {
        // header_addr below load_addr.
        expectRefused(boot(MultibootFixtures.kludge(code: [0xF4], load: 0x10_0000, headerAddress: 0xF_F000)), "address fields are inconsistent")
    }

    @Test func aKernelOverlappingTheACPIAndMPTablesIsRefused() {
        expectRefused(boot(SyntheticELF.multiboot(code: [0xF4], loadAddress: 0xE_8000)), "overlaps the ACPI and MP tables")
    }

    @Test func aModuleThatDoesNotFitInRAMIsRefused() {
        let module = writeTemp("bigmodule", [UInt8](repeating: 1, count: 3 << 20))
        defer { unlink(module) }
        expectRefused(boot(SyntheticELF.multiboot(code: [0xF4]), ["--memory", "3M", "--module", module]), "does not fit in guest RAM (3 MiB)")
    }

    @Test func aDirectoryAsAModuleIsRefused() {
        expectRefused(boot(SyntheticELF.multiboot(code: [0xF4]), ["--module", "/tmp"]), "cannot read module /tmp: is a directory")
    }

    @Test func aModuleForALinuxKernelIsRefused() {
        let pvh = writeTemp("pvh", SyntheticELF.pvh(code: [0xF4]))
        defer { unlink(pvh) }
        let r = ProcessRunner.run(swiftlet, ["boot", "--kernel", pvh, "--module", "/etc/hostname"])
        expectRefused(r, "--module is for multiboot kernels")
    }
}
