// X86Layout: every fixed guest-physical address Swiftlet uses, in one place.
//
// The low megabyte follows the PC convention (real-mode IVT and BIOS data at the bottom, the legacy
// video/ROM hole from 640 KiB to 1 MiB); kernels load at 1 MiB; the 32-bit MMIO hole sits below 4 GiB
// and the reset-vector firmware occupies its last 64 KiB. docs/memory-map.md draws the same map.
import GuestMemory

public enum X86Layout {
    /// Handoff block the reset-vector firmware reads: magic 'SWFT', 32-bit entry, 32-bit multiboot info address.
    public static let firmwareHandoff = GuestAddress(0x500)
    public static let firmwareHandoffMagic: UInt32 = 0x5446_5753 // "SWFT" little-endian
    /// The GDT the VMM writes for direct boots (entries: null, code32, data32, code64, data64, TSS).
    public static let gdt = GuestAddress(0x1000)
    /// Page tables for 64-bit direct entry (PML4, PDPT, PDs).
    public static let pageTables = GuestAddress(0x9000)
    /// Multiboot information structure, its memory map and strings (up to 0x8000).
    public static let multibootInfo = GuestAddress(0x6000)
    public static let multibootInfoEnd = GuestAddress(0x8000)
    /// Top of conventional memory (640 KiB): what `mem_lower` reports.
    public static let conventionalMemoryEnd = GuestAddress(0xA_0000)
    /// Where extended memory (and the kernel, for multiboot and Linux) starts.
    public static let highMemory = GuestAddress(0x10_0000)
    /// Start of the 32-bit MMIO hole: RAM above this is moved above 4 GiB.
    public static let mmioHoleStart = GuestAddress(0xC000_0000)
    public static let fourGiB = GuestAddress(0x1_0000_0000)
    /// The reset-vector firmware ROM: last 64 KiB below 4 GiB; the CPU starts at 0xFFFFFFF0.
    public static let firmwareBase = GuestAddress(0xFFFF_0000)
    public static let firmwareSize: UInt64 = 0x1_0000
    /// Three pages KVM may use for the real-mode TSS on Intel (KVM_SET_TSS_ADDR), and one for its identity map.
    public static let kvmTSS = GuestAddress(0xFFFB_D000)
    public static let kvmIdentityMap = GuestAddress(0xFFFB_C000)
    /// The lab MMIO page (marker at +0, debug exit at +0x10), for guest user mode where port I/O may be
    /// refused; present only when RAM ends below it. The tiny guests' page tables map the first GiB.
    public static let labMMIO = GuestAddress(0x3FFF_F000)
    /// Smallest RAM that holds the low boot structures and a kernel at 1 MiB.
    public static let minimumRAM: UInt64 = 2 << 20

    /// Guest RAM regions for `size` bytes: below the MMIO hole, and the rest above 4 GiB.
    public static func ramLayout(size: UInt64) -> [(base: GuestAddress, size: UInt64)] {
        let low = min(size, mmioHoleStart.rawValue)
        var layout: [(base: GuestAddress, size: UInt64)] = [(GuestAddress(0), low)]
        if size > low { layout.append((fourGiB, size - low)) }
        return layout
    }
}
