// ELFMultibootFuzzer: a libFuzzer target for the ELF and multiboot loaders (Sources/X86Boot: ELFImage,
// Multiboot with its a.out kludge, Multiboot2), built and run by fuzz/run.sh. The input is a kernel file, as `swiftlet boot --kernel` reads it.
//
// Whatever the file says, the loaders must answer with a KernelImageError, never a trap; and what they accept
// must keep their promises, checked with require(), which traps with its message (a violation is a crash libFuzzer reports): every
// PT_LOAD and PT_NOTE segment's bytes lie inside the file; a validated kernel's segments lie inside guest
// RAM, clear of the reserved boot-information area, with the entry point in one of them; and loading a
// validated kernel never fails.
import GuestMemory
import X86Boot

let memory = try! GuestMemory(layout: X86Layout.ramLayout(size: 16 << 20))
let reserved = [(range: AddressRange(base: GuestAddress(0), length: X86Layout.multibootInfoEnd.rawValue)!,
                 what: "the boot information area below 0x8000")]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let image = Array(UnsafeBufferPointer(start: data, count: size))
    if let elf = try? ELFImage(image) {
        for segment in elf.segments where segment.type == ELFImage.ptLoad || segment.type == ELFImage.ptNote {
            require(segment.fileOffset <= UInt64(image.count) && UInt64(image.count) - segment.fileOffset >= segment.fileSize,
                         "a segment's bytes past the end of the file got through")
        }
        for segment in elf.loadSegments { require(segment.fileSize <= segment.memorySize, "p_filesz > p_memsz got through") }
    }
    if let header = try? Multiboot.findHeader(in: image) {
        require(header.offset >= 0 && header.offset + 12 <= min(image.count, Multiboot.searchLength) && header.offset % 4 == 0)
    }
    if let header = try? Multiboot2.findHeader(in: image) {
        require(header.offset % 8 == 0 && header.offset + header.length <= image.count, "a multiboot2 header past the file got through")
        if let (_, kernel) = try? Multiboot2.validate(image: image, memory: memory, reserved: reserved) {
            require(kernel.loadedRanges.contains { UInt64(kernel.entry) >= $0.start && UInt64(kernel.entry) < $0.end },
                    "a multiboot2 entry point outside the loaded segments got through")
            do { try Multiboot.load(kernel, image: image, into: memory) } catch { fatalError("a validated multiboot2 kernel failed to load: \(error)") }
        }
    }
    guard let kernel = try? Multiboot.validate(image: image, memory: memory, reserved: reserved) else { return 0 }
    for range in kernel.loadedRanges {
        require(range.end > range.start && memory.contains(GuestAddress(range.start), length: range.end - range.start),
                     "a segment outside guest RAM got through")
        require(range.start >= X86Layout.multibootInfoEnd.rawValue, "a segment over the boot information got through")
    }
    require(kernel.loadedRanges.contains { UInt64(kernel.entry) >= $0.start && UInt64(kernel.entry) < $0.end },
                 "an entry point outside the loaded segments got through")
    trace("multiboot kernel validated: entry 0x\(String(kernel.entry, radix: 16)), \(kernel.loadedRanges.count) segments")
    do { try Multiboot.load(kernel, image: image, into: memory) } catch { fatalError("a validated kernel failed to load: \(error)") }
    let info = Multiboot.encodeInfo(base: X86Layout.multibootInfo, memoryMap: Multiboot.memoryMap(for: memory),
                                    commandLine: String(decoding: image.prefix(64), as: UTF8.self))
    require(info.count >= Multiboot.infoSize)
    return 0
}
