/*
 * probe.c: the "probe" tiny guest: answers `swiftlet compare --probe`'s questions from inside a VM, one
 * "swiftlet-probe: KEY VALUE" line each on COM1, then exits 0.
 *
 * The container side asks the same questions with guest/probe/helper.c and busybox; the keys are the same
 * so one parser reads both. What it does, in order:
 *   - outl(0x440, 1): a lab marker the VMM timestamps, the guest's first C statement (time to first
 *     instruction, give or take the twenty instructions of entry.S);
 *   - CPUID leaf 0 (vendor), leaf 1 ECX bit 31 (the hypervisor-present bit) and leaf 0x40000000 (the
 *     hypervisor's signature, the convention KVM, Hyper-V and Xen follow);
 *   - the memory it was given: mem_lower + mem_upper and the end of the highest usable memory-map entry
 *     (Multiboot 0.6.96 section 3.3: flags bit 0 and bit 6; mmap entries are size, base_addr, length, type);
 *   - a 32-bit read at the end of RAM: no RAM is there, so the access leaves the guest as an MMIO exit and
 *     the VMM answers it (all ones on Swiftlet). Skipped when the end is outside entry.S's 1 GiB identity map;
 *   - an IN from port 0x80 (the POST diagnostic port, no device on Swiftlet): a port-I/O exit the VMM answers;
 *   - the privilege level it runs at (CS.RPL): this guest is its own kernel, so CPL 0.
 */
#include "tiny.h"

#define LAB_MARKER_PORT 0x440
#define PROBE_PORT 0x80
#define IDENTITY_MAP_END 0x40000000ul   /* entry.S maps the first GiB */

struct mmap_entry {
    uint32_t size;              /* bytes of this entry after this field */
    uint32_t base_low, base_high;
    uint32_t length_low, length_high;
    uint32_t type;              /* 1: available RAM */
} __attribute__((packed));

static void key(const char *name)
{
    put_str("swiftlet-probe: ");
    put_str(name);
    put_char(' ');
}

static void put_register_chars(uint32_t r)
{
    for (int i = 0; i < 4; i++, r >>= 8)
        if (r & 0xFF)
            put_char((char)(r & 0xFF));
}

static void put_hex64(uint64_t value)
{
    if (value >> 32) {
        put_hex32((uint32_t)(value >> 32));
        static const char digits[] = "0123456789abcdef";
        for (int shift = 28; shift >= 0; shift -= 4)
            put_char(digits[(value >> shift) & 0xF]);
    } else {
        put_hex32((uint32_t)value);
    }
}

static void probe_cpu(void)
{
    uint32_t r[4];
    cpuid(0, r);
    key("cpu-vendor");
    put_register_chars(r[1]);
    put_register_chars(r[3]);
    put_register_chars(r[2]);
    put_char('\n');

    cpuid(1, r);
    int present = (r[2] >> 31) & 1;
    key("hypervisor-bit");
    put_line(present ? "1" : "0");
    key("hypervisor-signature");
    cpuid(0x40000000, r);
    /* Without the bit the leaf is undefined; print what it holds anyway, but only printable bytes. */
    if (present && (r[1] | r[2] | r[3])) {
        put_register_chars(r[1]);
        put_register_chars(r[2]);
        put_register_chars(r[3]);
        put_char('\n');
    } else {
        put_line("none");
    }
}

/* Returns the end of the highest available memory-map entry, or 0 when there is no map. */
static uint64_t probe_memory(uint32_t mbi_address)
{
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uint64_t)mbi_address;
    if (!mbi_address || !(mbi->flags & 1)) {
        key("memory-kib");
        put_line("unknown (no multiboot memory information)");
        return 0;
    }
    key("memory-kib");
    put_dec((uint64_t)mbi->mem_lower + mbi->mem_upper);
    put_char('\n');
    uint64_t end = 0;
    if (mbi->flags & (1u << 6)) {
        uint64_t p = mbi->mmap_addr, stop = p + mbi->mmap_length;
        while (p < stop) {
            const struct mmap_entry *e = (const struct mmap_entry *)p;
            uint64_t base = ((uint64_t)e->base_high << 32) | e->base_low;
            uint64_t length = ((uint64_t)e->length_high << 32) | e->length_low;
            if (e->type == 1 && base + length > end)
                end = base + length;
            p += e->size + 4;
        }
        key("memory-end");
        put_hex64(end);
        put_char('\n');
    }
    return end;
}

static void probe_past_end(uint64_t end)
{
    key("read-past-end");
    if (end == 0 || end + 4 > IDENTITY_MAP_END) {
        put_line("skipped (the end of RAM is unknown or outside this guest's 1 GiB identity map)");
        return;
    }
    volatile uint32_t *past = (volatile uint32_t *)end;
    uint32_t value = *past;
    put_hex64(end);
    put_str(" read ");
    put_hex32(value);
    put_char('\n');
}

static void probe_port(void)
{
    uint8_t value = inb(PROBE_PORT);
    key("port-io");
    put_str("in 0x80 read ");
    put_hex32(value);
    put_char('\n');
}

static void probe_privilege(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    key("cpl");
    put_dec(cs & 3);
    put_char('\n');
}

void kmain(uint32_t magic, uint32_t mbi)
{
    outl(LAB_MARKER_PORT, 1);
    put_line("Swiftlet tiny guest: probe, answering swiftlet compare's questions");
    probe_cpu();
    uint64_t end = probe_memory(magic == MULTIBOOT_BOOTLOADER_MAGIC ? mbi : 0);
    probe_past_end(end);
    probe_port();
    probe_privilege();
    key("done");
    put_line("ok");
    outl(LAB_MARKER_PORT, 2);
    debug_exit(0);
}
