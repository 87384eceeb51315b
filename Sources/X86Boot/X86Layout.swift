// X86Layout: every fixed guest-physical address Swiftlet uses, in one place.
//
// The low megabyte follows the PC convention (real-mode IVT and BIOS data at the bottom, the legacy
// video/ROM hole from 640 KiB to 1 MiB); kernels load at 1 MiB; the 32-bit MMIO hole sits below 4 GiB
// and the reset-vector firmware occupies its last 64 KiB. docs/memory-map.md draws the same map.
//
// The whole guest-physical map (half-open ranges; every boot structure is page-aligned, none overlap):
//
//   [0x0000_0000, 0x0000_0500)   real-mode IVT and BIOS data area: left zero
//   [0x0000_0500, 0x0000_050C)   firmwareHandoff: 'SWFT', entry, multiboot info (firmware boot only)
//   [0x0000_1000, 0x0000_1030)   gdt: BootGDT, six descriptors
//   [0x0000_2000, 0x0000_3000)   zeroPage: Linux struct boot_params; RSI at the 64-bit entry
//   [0x0000_3000, 0x0000_4000)   pvhStartInfo: hvm_start_info, module list, memory map; EBX at the PVH entry
//   [0x0000_4000, 0x0000_6000)   commandLine: the kernel command line, NUL-terminated (Linux and PVH)
//   [0x0000_6000, 0x0000_8000)   multibootInfo: multiboot information, its memory map and strings
//   [0x0000_8000, 0x0000_9000)   setupData: the 64-bit boot protocol's setup_data list (an RNG seed) for a
//                                kernel unpacked on the host (UnpackedLinuxKernel.swift)
//   [0x0000_9000, 0x0000_F000)   pageTables: PML4 0x9000, PDPT 0xA000, four PDs 0xB000-0xEFFF (2 MiB pages,
//                                identity map of the first 4 GiB; see PageTables.swift)
//   [0x0000_F000, 0x0009_FC00)   free conventional memory (e820 RAM; Linux reserves its first 64 KiB itself);
//                                a direct multiboot entry's ESP is multibootStackTop (0x9F000), below it
//   [0x0009_FC00, 0x000A_0000)   extended BIOS data area: unused, e820 reserved
//   [0x000A_0000, 0x000E_0000)   legacy VGA and option-ROM hole: e820 reserved
//   [0x000E_0000, 0x000F_0000)   acpi: RSDP, XSDT, FADT, MADT, DSDT, each 16-byte aligned (BIOS area Linux scans
//                                for "RSD PTR "; ~2.3 KiB for 254 CPUs), e820 reserved
//   [0x000F_0000, 0x0010_0000)   mpTable: MP floating pointer + configuration table (BIOS ROM area), e820 reserved
//   [0x0010_0000, ...)           highMemory: multiboot segments and the bzImage protected-mode kernel; a PVH
//                                vmlinux loads at its own p_paddr (16 MiB for x86-64 defaults); the initrd
//                                goes as high as possible below min(initrd_addr_max, end of RAM below 4 GiB)
//   [0xC000_0000, 0x1_0000_0000) MMIO hole, never RAM: ioAPIC 0xFEC00000, localAPIC 0xFEE00000, KVM's TSS
//                                and identity-map pages at 0xFFFBC000-0xFFFBFFFF, firmware ROM 0xFFFF0000
//   [0xC000_0000, 0xE000_0000)   free for platform MMIO devices: virtio-mmio register blocks from 0xD0000000
//                                (one page each)
//   [0xE000_0000, 0xF000_0000)   pciMemoryWindow: PCI BARs, assigned by the VMM, decoded by PCIMemoryWindow
//   [0x1_0000_0000, ...)         RAM beyond 3 GiB, moved above the hole
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
    /// setup_data entries (Documentation/arch/x86/boot.rst, "setup_data") for the 64-bit boot protocol.
    public static let setupData = GuestAddress(0x8000)
    public static let setupDataEnd = GuestAddress(0x9000)
    /// ESP at a direct multiboot entry. Multiboot §3.2 leaves ESP undefined ("the OS image must create its own
    /// stack"), but GRUB and QEMU's -kernel hand over with ESP in low memory and some kernels push before
    /// they load their own (James Molloy's tutorial kernel pushes ESP and EBX first thing); with ESP 0 those
    /// pushes land at 0xFFFFFFFC, no RAM. The top of free conventional memory, below the EBDA, is RAM the
    /// memory map reports as available, as GRUB's stack is.
    public static let multibootStackTop = GuestAddress(0x9_F000)
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
    /// virtio-mmio register blocks (virtio 1.2 §4.2.2), one page each from here, in the platform-device part
    /// of the MMIO hole (below the PCI window). Guests learn of them from the command line the VMM extends:
    /// `virtio_mmio.device=4K@0xd0000000:5` (Linux's VIRTIO_MMIO_CMDLINE_DEVICES syntax; the tiny guests
    /// parse the same text from their multiboot command line). The tiny guests' page tables map 3-4 GiB.
    public static let virtioMMIO = GuestAddress(0xD000_0000)
    public static let virtioMMIOSlotSize: UInt64 = 0x1000
    /// The interrupt of the virtio-mmio console: ISA IRQ 5, which is IOAPIC pin 5 and KVM GSI 5 in the MP
    /// table's identity routing; free on a PC (the PIT has 0, the keyboard 1, COM2 3, COM1 4).
    public static let virtioConsoleIRQ: UInt32 = 5

    /// Smallest RAM that holds the low boot structures and a kernel at 1 MiB.
    public static let minimumRAM: UInt64 = 2 << 20

    // MARK: Linux and PVH boot structures (LinuxBzImage.swift, PVHBoot.swift, MPTable.swift)

    /// The Linux zero page (struct boot_params, 4 KiB); RSI holds its address at the 64-bit entry.
    public static let zeroPage = GuestAddress(0x2000)
    /// PVH `hvm_start_info`, its module list and memory map (one page); EBX holds its address at the PVH entry.
    public static let pvhStartInfo = GuestAddress(0x3000)
    public static let pvhStartInfoEnd = GuestAddress(0x4000)
    /// The kernel command line for Linux and PVH boots, NUL-terminated (room for 8191 bytes; Linux on
    /// x86 itself keeps at most 2047, its COMMAND_LINE_SIZE - 1).
    public static let commandLine = GuestAddress(0x4000)
    public static let commandLineEnd = GuestAddress(0x6000)
    /// One past the identity page tables that start at `pageTables` (PML4, PDPT, four PDs).
    public static let pageTablesEnd = GuestAddress(0xF000)
    /// Start of the extended BIOS data area, the last KiB of base memory: the e820 map reserves from here to 1 MiB.
    public static let extendedBIOSDataArea = GuestAddress(0x9_FC00)
    /// Intel MP floating pointer structure, followed by the MP configuration table (up to 1 MiB).
    /// Linux scans 0xF0000-0xFFFFF for "_MP_" (arch/x86/kernel/mpparse.c); the area is e820 reserved.
    public static let mpTable = GuestAddress(0xF_0000)
    public static let mpTableEnd = GuestAddress(0x10_0000)
    /// The ACPI tables (ACPITables.swift): the RSDP here, the XSDT, FADT, MADT and DSDT after it, all below
    /// the MP table. Linux finds the RSDP through boot_params.acpi_rsdp_addr or hvm_start_info.rsdp_paddr,
    /// and without them by scanning 0xE0000-0xFFFFF on 16-byte boundaries (acpi_find_root_pointer); e820 reserved.
    public static let acpi = GuestAddress(0xE_0000)
    public static let acpiEnd = mpTable
    /// The in-kernel IOAPIC's MMIO base (KVM_CREATE_IRQCHIP), as the MP table announces it.
    public static let ioAPIC = GuestAddress(0xFEC0_0000)
    /// The local APIC's default MMIO base (IA32_APIC_BASE after reset).
    public static let localAPIC = GuestAddress(0xFEE0_0000)

    // MARK: PCI (Sources/Devices/PCI)

    /// The PCI memory window: the VMM places every BAR here (as firmware would) and one PCIMemoryWindow on the
    /// MMIO bus decodes it. 256 MiB inside the MMIO hole, so never RAM; below the IOAPIC, LAPIC, KVM's pages
    /// and the firmware ROM; far above the lab MMIO page. BARs stay below 4 GiB, 64-bit ones included.
    /// Linux finds the devices by configuration mechanism #1 and claims BARs assigned before it starts.
    public static let pciMemoryWindow = GuestAddress(0xE000_0000)
    public static let pciMemoryWindowEnd = GuestAddress(0xF000_0000)

    /// Guest RAM regions for `size` bytes: below the MMIO hole, and the rest above 4 GiB.
    public static func ramLayout(size: UInt64) -> [(base: GuestAddress, size: UInt64)] {
        let low = min(size, mmioHoleStart.rawValue)
        var layout: [(base: GuestAddress, size: UInt64)] = [(GuestAddress(0), low)]
        if size > low { layout.append((fourGiB, size - low)) }
        return layout
    }
}
