/*
 * triple-fault.c: the "triple-fault" tiny guest: makes the CPU shut down on purpose.
 *
 * Loads an IDT with limit 0, then executes UD2. The #UD cannot be delivered (no IDT entry), which
 * raises #GP, which cannot be delivered either, so the CPU tries #DF and, failing that too, enters
 * shutdown (SDM vol. 3A 6.15, "Interrupt 8—Double Fault Exception", and 6.14's triple-fault rule).
 * A KVM VMM sees KVM_EXIT_SHUTDOWN; QEMU resets the machine, or exits with -no-reboot.
 */
#include "tiny.h"

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)magic;
    (void)mbi;
    static const struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty_idt = { 0, 0 };
    put_line("Swiftlet tiny guest: triple fault (empty IDT, then ud2)");
    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt));
    for (;;) {
    }
}
