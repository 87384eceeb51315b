// BzImageFuzzer: a libFuzzer target for the Linux bzImage loader and the kernel unpacked from it
// (Sources/X86Boot: LinuxBzImage, its LZ4 payload through LZ4.swift, UnpackedLinuxKernel), built and run by
// fuzz/run.sh. The input is a bzImage file; its length's low bits choose an initrd and a command line.
//
// Both ways Swiftlet boots a bzImage are driven: the protected-mode kernel at 1 MiB with its zero page, and
// (when the payload is an LZ4 frame holding an ELF) the ELF's segments entered at startup_64. A
// LinuxBootError is expected; a trap never (issue 14: a pref_address near 2^64 once trapped in kernelEnd).
// What the loader accepts must keep its promises, checked with require(), which traps with its message: every placement inside guest
// RAM, the run area inside RAM, the initrd above the kernel, the entry inside the kernel.
import GuestMemory
import X86Boot

let memory = try! GuestMemory(layout: X86Layout.ramLayout(size: 48 << 20))

func checkPlacements(_ layout: LinuxBootLayout) {
    for placement in layout.placements {
        require(memory.contains(placement.range.base, length: placement.range.length), "a placement outside RAM: \(placement)")
    }
    if let range = layout.initrd { require(range.base.rawValue >= layout.kernelEnd, "the initrd over the kernel: \(range)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let image = Array(UnsafeBufferPointer(start: data, count: size))
    guard let kernel = try? LinuxBzImage(image) else { return 0 }
    let initrd = [UInt8](repeating: 0x5A, count: [0, 1, 4096, 1 << 20][size & 3])
    let commandLine = String(repeating: "y", count: [0, 16, 2047, 5000][(size >> 2) & 3])
    _ = kernel.payloadFormat
    _ = kernel.zeroPage(commandLine: X86Layout.commandLine, initrd: nil, memoryMap: E820.map(for: memory))
    if let layout = try? kernel.load(into: memory, commandLine: commandLine, initrd: initrd, acpiRSDP: GuestAddress(0xE0000)) {
        trace("bzImage loaded: \(layout.placements.count) placements, payload \(kernel.payloadFormat)")
        checkPlacements(layout)
        require(layout.kernel.contains(layout.entry), "startup_64 outside the kernel")
        require(kernel.kernelEnd >= kernel.runAddress && memory.contains(GuestAddress(LinuxBzImage.loadAddress.rawValue),
                     length: kernel.kernelEnd - LinuxBzImage.loadAddress.rawValue), "the run area outside RAM")
    }
    // The unpacked kernel, as --decompress and the kvm_pvm profile boot it.
    guard let elf = try? kernel.decompressedKernel(), let unpacked = try? UnpackedLinuxKernel(setup: kernel, kernel: elf) else { return 0 }
    let seed = [UInt8](repeating: 7, count: UnpackedLinuxKernel.seedLength)
    if let layout = try? unpacked.load(into: memory, commandLine: commandLine, initrd: initrd, randomSeed: seed) {
        trace("unpacked kernel loaded: entry \(layout.entry)")
        checkPlacements(layout)
    }
    return 0
}
