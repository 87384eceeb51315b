/*
 * hello.c: the "hello" tiny guest: reports what it finds about its machine on COM1, then exits 0.
 *
 * Reads CPUID leaf 0 (vendor), leaf 1 ECX bit 31 and leaf 0x40000000 (hypervisor signature, the
 * convention KVM, Hyper-V, Xen and QEMU's TCG follow), the multiboot information (Multiboot 0.6.96
 * section 3.3: mem_lower/mem_upper when flags bit 0, mmap when flags bit 6), and CR0, CR4 and
 * IA32_EFER (SDM vol. 3A 2.5 and 2.2.1) to name the CPU mode. Ends with isa-debug-exit value 0
 * (QEMU exit status 1), or 1 (status 3) when the boot magic was wrong.
 *
 * With `msix` on the command line and a virtio-pci console, the console's transmitq interrupts by MSI-X
 * (table entry 1, APIC vector 0x41) instead of INTx, and the guest reports whether the message reached its
 * local APIC (the vector pending in the IRR: interrupts stay off).
 */
#include "tiny.h"
#include "virtio.h"

#define CR0_PE  (1ul << 0)
#define CR0_PG  (1ul << 31)
#define CR4_PAE (1ul << 5)
#define EFER_LMA (1ul << 10)

/* 1 when `word` appears in `s` as a whole space-separated word. */
static int has_word(const char *s, const char *word)
{
    for (const char *start = s; *start; ) {
        const char *end = start;
        while (*end && *end != ' ')
            end++;
        int i = 0;
        while (start + i < end && word[i] && start[i] == word[i])
            i++;
        if (start + i == end && !word[i])
            return 1;
        start = *end ? end + 1 : end;
    }
    return 0;
}

/* Prints the four ASCII bytes of a CPUID register, low byte first, skipping NULs ("KVMKVMKVM\0\0\0"). */
static void put_register_chars(uint32_t r)
{
    for (int i = 0; i < 4; i++, r >>= 8)
        if (r & 0xFF)
            put_char((char)(r & 0xFF));
}

static void report_cpu(void)
{
    uint32_t r[4];
    cpuid(0, r);
    put_str("cpu vendor: ");
    put_register_chars(r[1]);
    put_register_chars(r[3]);
    put_register_chars(r[2]);
    put_char('\n');

    cpuid(1, r);
    put_str("hypervisor: ");
    if (r[2] & (1u << 31)) {
        cpuid(0x40000000, r);
        put_register_chars(r[1]);
        put_register_chars(r[2]);
        put_register_chars(r[3]);
        put_str(" (max leaf ");
        put_hex32(r[0]);
        put_line(")");
    } else {
        put_line("none");
    }
}

static void report_memory(uint32_t mbi_address)
{
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uint64_t)mbi_address;
    if (!mbi_address) {
        put_line("memory: no multiboot information");
        return;
    }
    put_str("memory: ");
    if (mbi->flags & 1) {
        uint32_t total = mbi->mem_lower + mbi->mem_upper;
        put_str("lower ");
        put_dec(mbi->mem_lower);
        put_str(" KiB, upper ");
        put_dec(mbi->mem_upper);
        put_str(" KiB, total ");
        put_dec(total);
        put_str(" KiB (");
        put_dec(total >> 10);
        put_line(" MiB)");
    } else {
        put_line("not reported (multiboot flags bit 0 clear)");
    }
    if (mbi->flags & (1u << 6)) {
        uint32_t entries = 0;
        uint64_t p = mbi->mmap_addr, end = p + mbi->mmap_length;
        while (p < end) {
            p += *(const uint32_t *)p + 4;
            entries++;
        }
        put_str("memory map: ");
        put_dec(entries);
        put_line(" entries");
    }
}

static void report_mode(void)
{
    uint64_t cr0 = read_cr0(), cr4 = read_cr4(), efer = rdmsr(0xC0000080);
    put_str("mode: ");
    if (efer & EFER_LMA)
        put_str("64-bit long mode");
    else if (cr0 & CR0_PE)
        put_str("32-bit protected mode");
    else
        put_str("real mode");
    put_str((cr0 & CR0_PG) ? ", paging on" : ", paging off");
    put_line((cr4 & CR4_PAE) ? ", PAE on" : ", PAE off");
}

void kmain(uint32_t magic, uint32_t mbi)
{
    int virtio = console_setup(magic, mbi) == 0; /* virtio console if the command line names one, else COM1 */
    put_line("Swiftlet tiny guest: hello from a multiboot kernel");
    if (virtio && virtio_transport == VIRTIO_MMIO) {
        put_str("console: virtio-console, virtio-mmio at ");
        put_hex32((uint32_t)virtio_base);
        put_char('\n');
    } else if (virtio) {
        static const char hex_digits[] = "0123456789abcdef";
        put_str("console: virtio-console, virtio-pci at 00:");
        put_char(hex_digits[(virtio_pci_address >> 15) & 1]);
        put_char(hex_digits[(virtio_pci_address >> 11) & 0xF]);
        put_str(".0, common configuration at ");
        put_hex32((uint32_t)virtio_base);
        put_char('\n');
    }
    const struct multiboot_info *info = (const struct multiboot_info *)(uint64_t)mbi;
    int msix = virtio && virtio_transport == VIRTIO_PCI && magic == MULTIBOOT_BOOTLOADER_MAGIC && (info->flags & (1u << 2))
               && info->cmdline && has_word((const char *)(uint64_t)info->cmdline, "msix");
    if (msix) {
        int r = virtio_pci_msix_setup(1, 0x41);
        put_str("virtio-pci MSI-X: ");
        if (r == 0) {
            put_line("transmitq on table entry 1, APIC vector 0x41");     /* this line's buffer raises it */
            put_line(virtio_pci_msix_pending(0x41) ? "virtio-pci MSI-X: vector 0x41 pending in the local APIC's IRR"
                                                   : "virtio-pci MSI-X: vector 0x41 did not arrive");
        } else {
            put_line(r == -1 ? "no MSI-X capability" : "the device refused the vector");
        }
    }
    report_cpu();
    report_memory(magic == MULTIBOOT_BOOTLOADER_MAGIC ? mbi : 0);
    report_mode();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC) {
        put_str("multiboot magic BAD: ");
        put_hex32(magic);
        put_char('\n');
        debug_exit(1);
    }
    put_line("multiboot magic ok");
    debug_exit(0);
}
