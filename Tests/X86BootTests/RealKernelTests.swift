// Tests against the minimal kernel that guest/linux/build.sh produces in guest/linux/out/ (or
// $SWIFTLET_LINUX_DIR, as every other test finds it): parse and load its bzImage and vmlinux. Skipped, with
// the reason, where the kernel has not been built; in CI (SWIFTLET_REQUIRE_ARTEFACTS=1) a failure instead.
import GuestMemory
import Testing
import TestSupport
@testable import X86Boot

@Suite struct RealKernelTests {
    typealias F = LinuxFixtures

    @Test(.enabled(if: Prerequisite.files(MinimalKernel.bzImage), "guest/linux/out/bzImage is absent: build it with guest/linux/build.sh (CI does), or set SWIFTLET_LINUX_DIR"))
    func loadsTheMinimalKernelsBzImage() throws {
        let bytes = MinimalKernel.read(MinimalKernel.bzImage)
        try #require(!bytes.isEmpty, "cannot read \(MinimalKernel.bzImage)")
        let image = try LinuxBzImage(bytes)
        #expect(image.protocolVersion >= 0x020C)
        #expect(image.xLoadFlags & LinuxBzImage.xlfKernel64 != 0)
        #expect(image.commandLineSize == 2047)
        let memory = try F.memory(megabytes: 128)
        let layout = try image.load(into: memory, commandLine: "console=ttyS0 reboot=t panic=-1",
                                    initrd: [UInt8](repeating: 0x30, count: 1 << 20))
        // startup_64 begins with cld; cli (arch/x86/boot/compressed/head_64.S).
        #expect(try memory.readBytes(at: layout.entry, count: 2) == [0xFC, 0xFA])
        let page = try memory.readBytes(at: X86Layout.zeroPage, count: 4096)
        #expect(F.u32(page, 0x202) == 0x5372_6448)
        #expect(page[0x1E8] == 3)
        for placement in layout.placements { print("bzImage: \(placement)") }
    }

    @Test(.enabled(if: Prerequisite.files(MinimalKernel.vmlinux), "guest/linux/out/vmlinux is absent: build it with guest/linux/build.sh (CI does), or set SWIFTLET_LINUX_DIR"))
    func loadsTheMinimalKernelsVmlinuxAtItsPVHEntry() throws {
        let bytes = MinimalKernel.read(MinimalKernel.vmlinux)
        try #require(!bytes.isEmpty, "cannot read \(MinimalKernel.vmlinux)")
        let kernel = try PVHKernel(bytes)
        #expect(kernel.elf.is64Bit)
        let memory = try F.memory(megabytes: 128)
        let layout = try kernel.load(into: memory, commandLine: "console=ttyS0", initrd: [UInt8](repeating: 0x30, count: 1 << 20))
        #expect(layout.segments.contains { $0.contains(kernel.entry) })
        // pvh_start_xen begins with cld (arch/x86/platform/pvh/head.S).
        #expect(try memory.read(UInt8.self, at: kernel.entry) == 0xFC)
        #expect(try memory.read(UInt32.self, at: X86Layout.pvhStartInfo) == HVMStartInfo.magic)
        for placement in layout.placements { print("vmlinux: \(placement)") }
    }
}
