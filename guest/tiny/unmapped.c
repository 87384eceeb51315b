/*
 * unmapped.c: the "unmapped" tiny guest: touches guest-physical memory the VMM has no RAM for.
 *
 * 0x30000000 (768 MiB) is inside this guest's 1 GiB identity map (entry.S) but beyond the VMM's RAM,
 * so the read and the write leave the CPU as MMIO accesses (KVM_EXIT_MMIO; the VMM answers the read,
 * usually with all ones). Prints the value read, writes 0x12345678, and exits with isa-debug-exit
 * value 3 (QEMU exit status 7).
 */
#include "tiny.h"

#define UNMAPPED_ADDRESS 0x30000000ul

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)magic;
    (void)mbi;
    volatile uint32_t *unmapped = (volatile uint32_t *)UNMAPPED_ADDRESS;
    put_line("Swiftlet tiny guest: reading and writing unbacked address 0x30000000");
    uint32_t value = *unmapped;
    put_str("read ");
    put_hex32(value);
    put_line(" from 0x30000000");
    *unmapped = 0x12345678;
    put_line("wrote 0x12345678 to 0x30000000");
    debug_exit(3);
}
