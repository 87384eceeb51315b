/*
 * echo.c: the "echo" tiny guest: interrupt-driven serial input. What arrives on COM1 comes back through the
 * IRQ 4 handler; the main loop only sleeps (`sti; hlt`) and never polls the UART.
 *
 * The 8250's "received data available" interrupt (IER bit 0) with OUT2 set (MCR bit 3, the PC's gate onto
 * the ISA bus) raises ISA IRQ 4, which the MP table puts on IOAPIC pin 4; the guest routes it to vector
 * 0x24. The handler reads every byte the Line Status Register says is there (LSR bit 0) and writes it back.
 * A 'q' ends the guest with debug-exit value 0 after printing how many bytes came in how many interrupts.
 */
#include "pc.h"

#define COM1_RBR 0x3F8
#define COM1_IER 0x3F9
#define COM1_MCR 0x3FC
#define SERIAL_VECTOR 0x24

static volatile uint32_t bytes, interrupts, quit;

static void on_serial(uint32_t vector)
{
    (void)vector;
    interrupts++;
    while (inb(COM1_LSR) & 0x01) {
        uint8_t c = inb(COM1_RBR);
        bytes++;
        if (c == 'q') {
            quit = 1;
            continue;
        }
        put_char(c == '\r' ? '\n' : (char)c);
    }
}

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)mbi;
    put_line("Swiftlet tiny guest: echo (type; q quits)");
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        debug_exit(1);
    idt_init();
    pic_mask_all();
    lapic_enable();
    set_handler(SERIAL_VECTOR, on_serial);
    ioapic_route(4, SERIAL_VECTOR, lapic_id());
    outb(COM1_MCR, 0x0B);                              /* DTR, RTS, OUT2 */
    outb(COM1_IER, 0x01);                              /* received data available */
    while (!quit)
        sti_hlt();
    cli();
    put_str("\necho: ");
    put_dec(bytes);
    put_str(" bytes in ");
    put_dec(interrupts);
    put_line(" interrupts (IRQ 4 -> IOAPIC pin 4 -> vector 0x24)");
    debug_exit(0);
}
