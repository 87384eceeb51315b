/*
 * loop.c: the "loop" tiny guest: prints one line, then spins forever with interrupts off.
 *
 * It never exits on its own, so it exercises the VMM's ways to stop a running vCPU (a signal that
 * kicks KVM_RUN, immediate_exit, a timeout). Nothing but the jump runs: no further VM exits.
 */
#include "tiny.h"

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)magic;
    (void)mbi;
    put_line("Swiftlet tiny guest: looping forever with interrupts off");
    __asm__ volatile("cli\n1:\tjmp 1b");
    __builtin_unreachable();
}
