/*
 * smp.c: the "smp" tiny guest: starts every application processor the MP table lists with INIT and
 * STARTUP IPIs from the bootstrap processor's local APIC; each AP comes up in real mode at 0x8000 (the
 * trampoline in interrupts.S), enters long mode, prints its APIC ID and meets the others at a barrier.
 *
 * The BSP starts the APs one at a time and waits for each to check in, then joins the barrier; when all
 * CPUs have arrived it prints the count and exits with debug-exit value 0. The APs stop with `cli; hlt`.
 * Without a local APIC (the bare machine: the APIC page reads all ones) it says so and exits with 2.
 */
#include "pc.h"

#define MAX_CPUS 64

static volatile uint32_t checked_in, at_barrier;

void ap_main(uint32_t apic_id)
{
    console_lock();
    put_str("smp: AP with APIC ID ");
    put_dec(apic_id);
    put_line(" is up (INIT/SIPI, real mode at 0x8000 -> long mode)");
    console_unlock();
    __atomic_add_fetch(&checked_in, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&at_barrier, 1, __ATOMIC_SEQ_CST);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)mbi;
    put_line("Swiftlet tiny guest: smp (INIT/SIPI every AP, barrier)");
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        debug_exit(1);
    uint32_t self = lapic_id();
    if (self == 0xFF) {                /* the APIC page reads all ones: no local APIC (--machine bare) */
        put_line("smp: no local APIC at 0xfee00000: this machine cannot start other CPUs");
        debug_exit(2);
    }
    uint32_t ids[MAX_CPUS];
    int n = mp_processors(ids, MAX_CPUS);
    lapic_enable();
    console_lock();
    put_str("smp: MP table lists ");
    put_dec((uint64_t)n);
    put_str(" processors; BSP has APIC ID ");
    put_dec(self);
    put_char('\n');
    console_unlock();
    uint32_t started = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] == self)
            continue;
        start_ap(ids[i]);
        started++;
        while (checked_in < started)
            pause();
    }
    __atomic_add_fetch(&at_barrier, 1, __ATOMIC_SEQ_CST);
    while (at_barrier < (uint32_t)n)
        pause();
    console_lock();
    put_str("smp: all ");
    put_dec(at_barrier);
    put_line(" CPUs reached the barrier");
    console_unlock();
    debug_exit(0);
}
