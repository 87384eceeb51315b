// LZ4 legacy-frame decoding (Sources/X86Boot/LZ4.swift): hand-built blocks for each rule of the block
// format and each way a hostile stream can be wrong, and the real payload of the minimal kernel's bzImage.
import Glibc
import Testing
import TestSupport
@testable import X86Boot

struct LZ4Tests {
    /// magic + one block + the kernel's appended size.
    func frame(_ block: [UInt8], appendedSize: UInt32? = nil) -> [UInt8] {
        var bytes: [UInt8] = [0x02, 0x21, 0x4C, 0x18]
        bytes += le32(UInt32(block.count)) + block
        if let appendedSize { bytes += le32(appendedSize) }
        return bytes
    }

    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    @Test func literalsOnly() throws {
        let out = try LZ4.decompressLegacyFrame(frame([0x50] + Array("hello".utf8))[...])
        #expect(out == Array("hello".utf8))
    }

    @Test func overlappingMatchRepeatsItsOwnOutput() throws {
        // "ab" then a match of offset 2, length 4 + 2 = 6 → "abababab", then the final literal "!".
        let block: [UInt8] = [0x22, 0x61, 0x62, 0x02, 0x00, 0x10, 0x21]
        let out = try LZ4.decompressLegacyFrame(frame(block, appendedSize: 9)[...])
        #expect(String(decoding: out, as: UTF8.self) == "abababab!")
    }

    @Test func longLengthsUseExtraBytes() throws {
        // 15 + 255 + 10 = 280 literal bytes.
        let literals = [UInt8](repeating: 0x41, count: 280)
        let out = try LZ4.decompressLegacyFrame(frame([0xF0, 255, 10] + literals)[...])
        #expect(out == literals)
    }

    @Test func concatenatedFramesAndTheAppendedSize() throws {
        var bytes = frame([0x10, 0x78])
        bytes += [0x02, 0x21, 0x4C, 0x18] + le32(2) + [0x10, 0x79] + le32(2)
        #expect(try LZ4.decompressLegacyFrame(bytes[...]) == Array("xy".utf8))
    }

    @Test func matchBeforeTheStartIsRefused() {
        #expect(throws: LZ4Error.badOffset(offset: 9, at: 13)) {
            try LZ4.decompressLegacyFrame(frame([0x20, 0x61, 0x62, 0x09, 0x00, 0x10, 0x21])[...])
        }
    }

    @Test func zeroOffsetIsRefused() {
        #expect(throws: LZ4Error.self) { try LZ4.decompressLegacyFrame(frame([0x10, 0x61, 0x00, 0x00, 0x10, 0x21])[...]) }
    }

    @Test func truncatedLiteralsAreRefused() {
        #expect(throws: LZ4Error.self) { try LZ4.decompressLegacyFrame(frame([0x50, 0x61])[...]) }
    }

    @Test func blockLongerThanTheStreamIsRefused() {
        var bytes = frame([0x10, 0x61])
        bytes[4] = 0xFF // the block's size now runs past the end
        #expect(throws: LZ4Error.self) { try LZ4.decompressLegacyFrame(bytes[...]) }
    }

    @Test func outputLimitHolds() {
        // A run-length bomb: "a" then a match of 4 + 15 + 255 × 40 bytes, with a 1 KiB limit.
        let block: [UInt8] = [0x1F, 0x61, 0x01, 0x00] + [UInt8](repeating: 255, count: 40) + [0, 0x10, 0x21]
        #expect(throws: LZ4Error.tooLarge(limit: 1024)) { try LZ4.decompressLegacyFrame(frame(block)[...], limit: 1024) }
    }

    @Test func notAFrame() {
        #expect(throws: LZ4Error.notLegacyFrame) { try LZ4.decompressLegacyFrame([0x1F, 0x8B, 0x08, 0x00][...]) }
    }

    /// The minimal kernel's bzImage (guest/linux/build.sh, CONFIG_KERNEL_LZ4) unpacks to the kernel's own
    /// ELF, whose PVH entry is the one the separately built vmlinux declares.
    @Test(.enabled(if: Prerequisite.files(MinimalKernel.bzImage, MinimalKernel.vmlinux),
                   "guest/linux/out has no kernel: run guest/linux/build.sh (CI does)"))
    func minimalKernelPayloadUnpacksToItsPVHKernel() throws {
        let kernel = try LinuxBzImage(MinimalKernel.read(MinimalKernel.bzImage))
        #expect(kernel.payloadFormat == "lz4")
        let elf = try kernel.decompressedKernel()
        let unpacked = try PVHKernel(elf)
        let vmlinux = try PVHKernel(MinimalKernel.read(MinimalKernel.vmlinux))
        #expect(unpacked.entry == vmlinux.entry)
    }
}

enum MinimalKernel {
    /// guest/linux/out beside this package (or SWIFTLET_LINUX_DIR), as the VMM tests find it.
    static var directory: String {
        if let dir = getenv("SWIFTLET_LINUX_DIR") { return String(cString: dir) }
        return ProcessRunner.packageRoot + "/guest/linux/out"
    }
    static var bzImage: String { directory + "/bzImage" }
    static var vmlinux: String { directory + "/vmlinux" }

    static func read(_ path: String) -> [UInt8] { ProcessRunner.readBytes(path) }
}
