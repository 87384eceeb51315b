/*
 * lib.c: COM1 output and number formatting for the tiny guests, and their way out (debug exit).
 *
 * Implements the polled transmit path of the 8250/16550 UART (wait for LSR.THRE, write THR) and the
 * isa-debug-exit protocol described in tiny.h. The loops are kept short on purpose; see tiny.h.
 */
#include "tiny.h"

void put_char(char c)
{
    while (!(inb(COM1_LSR) & LSR_THRE)) {
    }
    outb(COM1_THR, (uint8_t)c);
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
    outl(DEBUG_EXIT_PORT, value);
    for (;;)
        __asm__ volatile("cli; hlt");
}
