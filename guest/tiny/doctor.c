/*
 * doctor.c: the "doctor" tiny guest: times the same loop at CPL0 and at CPL3 so the VMM can tell
 * whether kernel-mode code runs natively or in an instruction emulator (as on kvm_pvm).
 *
 * Lab-port protocol (the VMM implements it; under QEMU the ports float and defaults are used):
 *   inl(0x441)      -> iterations for the CPL0 loop (0 or 0xffffffff: use 20000)
 *   inl(0x442)      -> iterations for the CPL3 loop (0 or 0xffffffff: use 100000000), read at CPL0
 *   outl(0x440, m)  marker m, timestamped by the VMM: 1 before / 2 after the CPL0 loop
 * User mode cannot rely on port I/O: kvm_pvm runs guest user code natively in host ring 3 and clears
 * RFLAGS.IOPL, so IN/OUT at CPL3 raise #GP there. The CPL3 markers are therefore MMIO stores to the lab
 * MMIO page at 0x3FFFF000 (unbacked guest-physical memory, so each store is an MMIO exit):
 *   *(0x3FFFF000) = m   marker 3 before / 4 after the CPL3 loop
 *   *(0x3FFFF010) = v   debug exit with value v (same rule as port 0xF4)
 * QEMU ignores stores to unassigned memory, so after the MMIO exit the guest also writes port 0xF4
 * (legal there: TCG honours IOPL = 3). The drop to CPL3 is an IRETQ to the GDT's DPL3 64-bit code
 * segment (SDM vol. 3A 6.14.3, 5.8) with RFLAGS.IOPL = 3; the page tables carry U/S on every level
 * (entry.S). No TSS: nothing returns to CPL0.
 */
#include "tiny.h"

#define LAB_MARKER_PORT 0x440
#define LAB_CPL0_COUNT_PORT 0x441
#define LAB_CPL3_COUNT_PORT 0x442
#define LAB_MMIO_MARKER ((volatile uint32_t *)0x3FFFF000ul)
#define LAB_MMIO_EXIT ((volatile uint32_t *)0x3FFFF010ul)
#define DEFAULT_CPL0_ITERATIONS 20000u
#define DEFAULT_CPL3_ITERATIONS 100000000u
#define SEL_USER_DATA 0x1B      /* GDT entry 3, RPL 3 */
#define SEL_USER_CODE 0x23      /* GDT entry 4, RPL 3 */
#define USER_RFLAGS 0x3002      /* IOPL = 3, reserved bit 1; IF stays clear */

static uint8_t user_stack[4096] __attribute__((aligned(16)));

static uint32_t cpl3_iterations;

static uint32_t read_count(uint16_t port, uint32_t fallback)
{
    uint32_t n = inl(port);
    return (n == 0 || n == 0xFFFFFFFFu) ? fallback : n;
}

/* The measured loop: two instructions per iteration. */
static inline void spin(uint32_t n)
{
    __asm__ volatile("1:\tdec %0\n\tjnz 1b" : "+r"(n));
}

__attribute__((noreturn)) static void user_main(void)
{
    uint32_t n3 = cpl3_iterations;
    *LAB_MMIO_MARKER = 3;
    spin(n3);
    *LAB_MMIO_MARKER = 4;
    *LAB_MMIO_EXIT = 0;
    debug_exit(0); /* reached only where the MMIO exit register is absent (QEMU) */
}

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)magic;
    (void)mbi;
    put_line("Swiftlet tiny guest: doctor, timing a dec/jnz loop at CPL0 and CPL3");
    uint32_t n0 = read_count(LAB_CPL0_COUNT_PORT, DEFAULT_CPL0_ITERATIONS);
    cpl3_iterations = read_count(LAB_CPL3_COUNT_PORT, DEFAULT_CPL3_ITERATIONS);
    outl(LAB_MARKER_PORT, 1);
    spin(n0);
    outl(LAB_MARKER_PORT, 2);
    put_str("doctor: CPL0 loop done, ");
    put_dec(n0);
    put_line(" iterations; now the CPL3 loop (markers by MMIO)");
    /* IRETQ frame: SS, RSP, RFLAGS, CS, RIP. RSP is 8 below the top so user_main sees the stack as
     * a call would leave it (RSP + 8 16-byte aligned). */
    __asm__ volatile(
        "pushq %[ss]\n\t"
        "pushq %[rsp]\n\t"
        "pushq %[rflags]\n\t"
        "pushq %[cs]\n\t"
        "pushq %[rip]\n\t"
        "iretq"
        :
        : [ss] "i"(SEL_USER_DATA), [rsp] "r"((uint64_t)(user_stack + sizeof user_stack - 8)),
          [rflags] "i"(USER_RFLAGS), [cs] "i"(SEL_USER_CODE), [rip] "r"((uint64_t)user_main)
        : "memory");
    __builtin_unreachable();
}
