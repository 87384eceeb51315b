// PageTables: the identity map a 64-bit direct boot needs before its first instruction (Intel SDM Vol. 3A
// §4.5 "4-Level Paging"): long mode cannot be entered with paging off, and Linux's 64-bit boot protocol
// (boot.rst, "64-bit Boot Protocol") asks for an identity mapping of the kernel, the zero page and the
// command line.
//
// Layout at X86Layout.pageTables (0x9000), six pages up to X86Layout.pageTablesEnd (0xF000):
//   0x9000 PML4: entry 0 → PDPT
//   0xA000 PDPT: entries 0-3 → the four page directories
//   0xB000-0xEFFF four PDs: 512 entries each, 2 MiB pages, identity mapping [0, 4 GiB)
// 2 MiB pages rather than 1 GiB ones: 1 GiB pages need CPUID.80000001H:EDX.Page1GB, which not every CPU,
// and not every CPUID a VMM hands its guest, has; 2 MiB pages are architectural with PAE. The 4 GiB cover
// everything a 32-bit boot protocol can point at (kernel, zero page, command line, initrd) and the MMIO
// hole. Entries are present + writable, supervisor, cacheable; CR3 is the PML4's address.
import GuestMemory

public enum PageTables {
    /// Entry flags: P (present) and R/W (writable).
    public static let present: UInt64 = 1 << 0
    public static let writable: UInt64 = 1 << 1
    /// PS in a page-directory entry: it maps a 2 MiB page.
    public static let pageSize: UInt64 = 1 << 7
    public static let largePageSize: UInt64 = 2 << 20
    /// How much the tables map, from address 0.
    public static let mappedBytes: UInt64 = 4 << 30
    static let pageDirectories = 4
    /// Bytes of tables: PML4 + PDPT + four PDs.
    public static let size = (2 + pageDirectories) * 4096

    /// The tables as they sit at `base` (4 KiB-aligned).
    public static func identityMap(at base: GuestAddress = X86Layout.pageTables) -> [UInt8] {
        precondition(base.rawValue & 0xFFF == 0, "page tables must be 4 KiB-aligned")
        var bytes = [UInt8](repeating: 0, count: size)
        let pdpt = base.rawValue + 0x1000
        let firstPD = base.rawValue + 0x2000
        put(&bytes, 0, pdpt | present | writable)
        for d in 0..<pageDirectories {
            put(&bytes, 0x1000 + d * 8, (firstPD + UInt64(d) * 0x1000) | present | writable)
            for e in 0..<512 {
                let physical = (UInt64(d) * 512 + UInt64(e)) * largePageSize
                put(&bytes, 0x2000 + d * 0x1000 + e * 8, physical | present | writable | pageSize)
            }
        }
        return bytes
    }

    /// Writes the identity map at `base` and returns the CR3 value (the PML4's address; PCD/PWT clear).
    @discardableResult
    public static func writeIdentityMap(into memory: GuestMemory, at base: GuestAddress = X86Layout.pageTables) throws(GuestMemoryError) -> UInt64 {
        try memory.write(bytes: identityMap(at: base), at: base)
        return base.rawValue
    }
}
