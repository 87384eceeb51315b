/*
 * pc.h: the PC's interrupt hardware as the PC tiny guests (timer, smp, echo) drive it: an IDT, the 8259
 * PICs (masked), the local APIC (Intel SDM vol. 3A chapter 11: registers at 0xFEE00000, ID 0x20, EOI 0xB0,
 * spurious vector 0xF0, ICR 0x300/0x310, LVT timer 0x320, timer initial/current count 0x380/0x390, divide
 * 0x3E0), the IOAPIC (82093AA datasheet: IOREGSEL at 0xFEC00000, IOWIN at +0x10, redirection entry n at
 * registers 0x10 + 2n), the 8254 PIT (channel 0 at port 0x40, mode/command at 0x43, 1.193182 MHz input)
 * and the MP table (Intel MP spec 1.4 chapter 4) to count the processors.
 */
#ifndef PC_H
#define PC_H
#include "tiny.h"

#define LAPIC_BASE 0xFEE00000ul
#define LAPIC_ID 0x020
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3E0
#define IOAPIC_BASE 0xFEC00000ul
#define PIT_HZ 1193182u

typedef void (*interrupt_handler)(uint32_t vector);

void idt_init(void);                          /* every vector to its stub; loads the IDT on this CPU */
void idt_load(void);                          /* loads the IDT (an AP after idt_init on the BSP) */
void set_handler(uint32_t vector, interrupt_handler handler);
void pic_mask_all(void);                      /* remap the 8259s to 0x20/0x28 and mask every input */
void lapic_enable(void);                      /* software-enable, spurious vector 0xFF */
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t value);
uint32_t lapic_id(void);
void ioapic_route(uint32_t pin, uint32_t vector, uint32_t apic_id); /* edge, active high, fixed */
int mp_processors(uint32_t ids[], int max);   /* APIC IDs of the enabled processors in the MP table */
void start_ap(uint32_t apic_id);              /* INIT, then STARTUP with vector 0x08 (the trampoline at 0x8000) */
void ap_main(uint32_t apic_id);                /* where a started AP enters C (weak default: return, halt) */

static inline void sti(void) { __asm__ volatile("sti"); }
static inline void cli(void) { __asm__ volatile("cli"); }
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void pause(void) { __asm__ volatile("pause" ::: "memory"); }

/* The console lock: CPUs take turns printing whole lines. */
void console_lock(void);
void console_unlock(void);

#endif
