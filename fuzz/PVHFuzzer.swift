// PVHFuzzer: a libFuzzer target for the PVH loader (Sources/X86Boot/PVHBoot.swift: the ELF notes, the
// XEN_ELFNOTE_PHYS32_ENTRY value, segment placement, the initrd, hvm_start_info), built and run by
// fuzz/run.sh. The input is a vmlinux, as `swiftlet boot --kernel` reads it; its length's low bits choose
// an initrd and a command line, so the placement of both is fuzzed too.
//
// A LinuxBootError is expected; a trap never. What the loader accepts must keep its promises (checked with
// require(), which traps with its message): every placement inside guest RAM, the entry inside a loaded segment, the segments above
// the boot area below 1 MiB, the initrd above the kernel and below 2 GiB.
import GuestMemory
import X86Boot

let memory = try! GuestMemory(layout: X86Layout.ramLayout(size: 32 << 20))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let image = Array(UnsafeBufferPointer(start: data, count: size))
    guard let kernel = try? PVHKernel(image) else { return 0 }
    let initrd = [UInt8](repeating: 0xA5, count: [0, 1, 4096, 3 << 20][size & 3])
    let commandLine = String(repeating: "x", count: [0, 10, 2047, 2048][(size >> 2) & 3])
    guard let layout = try? kernel.load(into: memory, commandLine: commandLine, initrd: initrd) else { return 0 }
    trace("PVH kernel loaded: entry \(layout.entry), \(layout.placements.count) placements")
    for placement in layout.placements {
        require(memory.contains(placement.range.base, length: placement.range.length), "a placement outside RAM: \(placement)")
    }
    require(layout.segments.contains { $0.contains(layout.entry) }, "the entry outside the segments")
    for segment in layout.segments { require(segment.base.rawValue >= X86Layout.highMemory.rawValue, "a segment below 1 MiB") }
    if let range = layout.initrd {
        require(range.base.rawValue >= layout.kernelEnd && range.end <= PVHKernel.initrdCeiling, "the initrd misplaced: \(range)")
    }
    require(commandLine.utf8.count <= PVHKernel.commandLineLimit)
    return 0
}
