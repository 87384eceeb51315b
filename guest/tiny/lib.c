/*
 * lib.c: console output and number formatting for the tiny guests, and their way out (debug exit).
 *
 * Implements the polled transmit path of the 8250/16550 UART (wait for LSR.THRE, write THR) and the
 * isa-debug-exit protocol described in tiny.h. Once a guest called console_setup() and the command line
 * announced a virtio console, put_char goes through virtio.c instead, a line at a time. The loops are
 * kept short on purpose; see tiny.h.
 */
#include "tiny.h"
#include "virtio.h"

void serial_put_char(char c)
{
    while (!(inb(COM1_LSR) & LSR_THRE)) {
    }
    outb(COM1_THR, (uint8_t)c);
}

void put_char(char c)
{
    if (virtio_console_ready)
        virtio_console_put(c);
    else
        serial_put_char(c);
}

int console_setup(uint32_t magic, uint32_t multiboot_info)
{
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        return -1;
    return virtio_console_start(multiboot_info);
}

void put_str(const char *s)
{
    while (*s)
        put_char(*s++);
}

void put_line(const char *s)
{
    put_str(s);
    put_char('\n');
}

void put_hex32(uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    put_str("0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        put_char(digits[(value >> shift) & 0xF]);
}

void put_dec(uint64_t value)
{
    char buffer[20];
    int n = 0;
    do {
        buffer[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n)
        put_char(buffer[--n]);
}

void debug_exit(uint32_t value)
{
    if (virtio_console_ready)
        virtio_console_flush();
    outl(DEBUG_EXIT_PORT, value);
    for (;;)
        __asm__ volatile("cli; hlt");
}
