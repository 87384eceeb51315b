/*
 * timer.c: the "timer" tiny guest: counts interrupts from the two PC timers at once and prints the rate it
 * measured for the local APIC timer against the 8254 PIT.
 *
 * The PIT's channel 0 runs in mode 2 (rate generator, 8254 datasheet) with divisor 1193: 1000.15 Hz from its
 * 1.193182 MHz input, wired to ISA IRQ 0, which the MP table puts on IOAPIC pin 0; the guest routes that pin
 * to vector 0x30. The local APIC timer (SDM vol. 3A 11.5.4) runs periodic on vector 0x40, divide by 1, with
 * an initial count of 1,000,000 bus cycles (KVM's APIC bus runs at 1 GHz: 1 kHz). The 8259s are masked, so
 * IRQ 0 arrives only through the IOAPIC. The guest waits with `sti; hlt` until the PIT has ticked 200 times
 * (200 ms), then prints both counts and the LAPIC timer's rate measured in PIT time, and exits with 0.
 */
#include "pc.h"

#define PIT_DIVISOR 1193u
#define PIT_VECTOR 0x30
#define LAPIC_TIMER_VECTOR 0x40
#define PIT_TICKS 200

static volatile uint32_t pit_ticks, lapic_ticks;

static void on_pit(uint32_t vector) { (void)vector; pit_ticks++; }
static void on_lapic_timer(uint32_t vector) { (void)vector; lapic_ticks++; }

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)mbi;
    put_line("Swiftlet tiny guest: timer (LAPIC timer and PIT interrupts)");
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        debug_exit(1);
    idt_init();
    pic_mask_all();
    lapic_enable();
    set_handler(PIT_VECTOR, on_pit);
    set_handler(LAPIC_TIMER_VECTOR, on_lapic_timer);
    ioapic_route(0, PIT_VECTOR, lapic_id());
    outb(0x43, 0x34);                                  /* channel 0, lobyte/hibyte, mode 2, binary */
    outb(0x40, PIT_DIVISOR & 0xFF);
    outb(0x40, PIT_DIVISOR >> 8);
    lapic_write(LAPIC_TIMER_DIVIDE, 0xB);              /* divide by 1 */
    lapic_write(LAPIC_LVT_TIMER, (1u << 17) | LAPIC_TIMER_VECTOR); /* periodic */
    lapic_write(LAPIC_TIMER_INITIAL, 1000000);
    put_line("timer: PIT channel 0 at 1000 Hz on IOAPIC pin 0 -> vector 0x30; LAPIC timer periodic, 1000000 cycles, vector 0x40");
    while (pit_ticks < PIT_TICKS)
        sti_hlt();
    cli();
    uint32_t pit = pit_ticks, lapic = lapic_ticks;
    lapic_write(LAPIC_LVT_TIMER, 1u << 16);            /* masked */
    put_str("timer: PIT interrupts ");
    put_dec(pit);
    put_str(", LAPIC timer interrupts ");
    put_dec(lapic);
    put_char('\n');
    /* PIT time elapsed: pit * divisor / PIT_HZ seconds; LAPIC rate = lapic / that. */
    uint64_t lapic_hz = (uint64_t)lapic * PIT_HZ / ((uint64_t)pit * PIT_DIVISOR);
    put_str("timer: measured LAPIC timer rate ");
    put_dec(lapic_hz);
    put_line(" Hz (PIT nominal 1000 Hz)");
    debug_exit(0);
}
