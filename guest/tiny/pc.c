/*
 * pc.c: the interrupt and multiprocessor helpers declared in pc.h, for the PC tiny guests.
 *
 * The IDT is 256 64-bit interrupt gates (SDM vol. 3A 7.14.1: offset split in three, selector 0x08, type
 * 0xE) pointing at interrupts.S's stubs. interrupt_dispatch() calls the handler registered for a vector
 * and sends the local APIC its EOI (vectors 0x20 and up); an exception or an unexpected vector is reported
 * and ends the guest with debug-exit value 0x7F. Processors are started the way MP spec 1.4 appendix B.4
 * says (INIT, then STARTUP), without its delays: KVM's LAPIC needs none.
 */
#include "pc.h"

struct idt_entry {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;
    uint16_t offset_middle;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static interrupt_handler handlers[256];
extern char isr_stubs[];
extern const char ap_trampoline[], ap_trampoline_end[];
extern const char ap_gdt_descriptor_offset[], ap_cr3_offset[];
extern uint64_t gdt[];

void idt_load(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) descriptor = { sizeof idt - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(descriptor));
}

void idt_init(void)
{
    for (int v = 0; v < 256; v++) {
        uint64_t target = (uint64_t)isr_stubs + 16 * (uint64_t)v;
        idt[v].offset_low = (uint16_t)target;
        idt[v].selector = 0x08;
        idt[v].ist = 0;
        idt[v].type = 0x8E;            /* present, DPL 0, 64-bit interrupt gate */
        idt[v].offset_middle = (uint16_t)(target >> 16);
        idt[v].offset_high = (uint32_t)(target >> 32);
        idt[v].reserved = 0;
    }
    idt_load();
}

void set_handler(uint32_t vector, interrupt_handler handler) { handlers[vector & 0xFF] = handler; }

uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)(LAPIC_BASE + reg); }
void lapic_write(uint32_t reg, uint32_t value) { *(volatile uint32_t *)(LAPIC_BASE + reg) = value; }
uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }

void interrupt_dispatch(uint64_t vector)
{
    if (handlers[vector]) {
        handlers[vector]((uint32_t)vector);
    } else if (vector != 0xFF) {       /* 0xFF: the spurious vector, no EOI */
        put_str(vector < 32 ? "unexpected exception " : "unexpected interrupt ");
        put_hex32((uint32_t)vector);
        put_char('\n');
        debug_exit(0x7F);
    }
    if (vector >= 0x20 && vector != 0xFF)
        lapic_write(LAPIC_EOI, 0);
}

void pic_mask_all(void)
{
    /* ICW1-ICW4 (8259A datasheet): edge, cascade, vectors 0x20/0x28, slave on IRQ 2, 8086 mode; then mask. */
    outb(0x20, 0x11); outb(0xA0, 0x11);
    outb(0x21, 0x20); outb(0xA1, 0x28);
    outb(0x21, 0x04); outb(0xA1, 0x02);
    outb(0x21, 0x01); outb(0xA1, 0x01);
    outb(0x21, 0xFF); outb(0xA1, 0xFF);
}

void lapic_enable(void) { lapic_write(LAPIC_SVR, 0x1FF); }

static void ioapic_write(uint32_t reg, uint32_t value)
{
    *(volatile uint32_t *)IOAPIC_BASE = reg;
    *(volatile uint32_t *)(IOAPIC_BASE + 0x10) = value;
}

void ioapic_route(uint32_t pin, uint32_t vector, uint32_t apic_id)
{
    ioapic_write(0x11 + 2 * pin, apic_id << 24);
    ioapic_write(0x10 + 2 * pin, vector & 0xFF);   /* fixed, physical, active high, edge, unmasked */
}

int mp_processors(uint32_t ids[], int max)
{
    for (uint64_t p = 0xF0000; p < 0x100000; p += 16) {
        const uint8_t *f = (const uint8_t *)p;
        if (f[0] != '_' || f[1] != 'M' || f[2] != 'P' || f[3] != '_')
            continue;
        const uint8_t *table = (const uint8_t *)(uint64_t)*(const uint32_t *)(f + 4);
        uint16_t count = *(const uint16_t *)(table + 34);
        const uint8_t *e = table + 44;
        int n = 0;
        for (uint16_t i = 0; i < count; i++) {
            if (e[0] != 0)             /* entries after the processors are 8 bytes long */
                break;
            if ((e[3] & 1) && n < max)
                ids[n++] = e[1];
            e += 20;
        }
        return n;
    }
    if (max > 0)
        ids[0] = lapic_id();
    return 1;                          /* no MP table: the bootstrap processor alone */
}

static void wait_icr_idle(void)
{
    while (lapic_read(LAPIC_ICR_LOW) & (1u << 12))  /* delivery status: send pending */
        pause();
}

void start_ap(uint32_t apic_id)
{
    static int copied;
    if (!copied) {
        uint8_t *to = (uint8_t *)0x8000ul;
        for (const char *from = ap_trampoline; from < ap_trampoline_end; from++)
            *to++ = (uint8_t)*from;
        uint8_t *gdtr = (uint8_t *)(0x8000ul + (uint64_t)ap_gdt_descriptor_offset);
        *(uint16_t *)gdtr = 5 * 8 - 1;
        *(uint32_t *)(gdtr + 2) = (uint32_t)(uint64_t)gdt;
        uint64_t cr3;
        __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
        *(uint32_t *)(0x8000ul + (uint64_t)ap_cr3_offset) = (uint32_t)cr3;
        copied = 1;
    }
    lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
    lapic_write(LAPIC_ICR_LOW, 0x4500);             /* INIT, level assert */
    wait_icr_idle();
    lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
    lapic_write(LAPIC_ICR_LOW, 0x4600 | (0x8000 >> 12)); /* STARTUP, vector 0x08: CS:IP = 0800:0000 */
    wait_icr_idle();
}

static volatile uint32_t console_busy;

void console_lock(void)
{
    while (__atomic_exchange_n(&console_busy, 1, __ATOMIC_ACQUIRE))
        pause();
}

void console_unlock(void) { __atomic_store_n(&console_busy, 0, __ATOMIC_RELEASE); }

/* An AP that a guest without its own ap_main starts just stops (interrupts.S halts it on return). */
__attribute__((weak)) void ap_main(uint32_t apic_id) { (void)apic_id; }
