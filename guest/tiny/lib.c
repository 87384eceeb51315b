/*
 * lib.c: console output and number formatting for the tiny guests, and their way out (debug exit).
 *
 * Implements the polled transmit path of the 8250/16550 UART and the isa-debug-exit protocol described
 * in tiny.h. Transmit works as Linux's 8250 driver does (serial8250_tx_chars): on first use it enables
 * the FIFOs (FCR) and reads IIR bits 7:6 to learn whether this is a 16550A with a 16-byte transmit FIFO;
 * then each time LSR.THRE says the transmitter is empty it writes up to a FIFO's worth of bytes to THR.
 * On a 16550A that is one LSR poll per 16 bytes instead of one per byte: every port access is a VM exit. Once a guest called console_setup() and the command line
 * announced a virtio console, put_char goes through virtio.c instead, a line at a time. The loops are
 * kept short on purpose; see tiny.h.
 */
#include "tiny.h"
#include "virtio.h"

static uint8_t tx_fifo_depth;   /* 0: not probed yet; 1: plain 8250/16450; 16: 16550A with FIFOs on */
static uint8_t tx_room;         /* bytes THR takes before the next LSR.THRE poll */

void serial_put_char(char c)
{
    if (tx_fifo_depth == 0) {
        outb(COM1_FCR, FCR_ENABLE_FIFOS | FCR_CLEAR_RX | FCR_CLEAR_TX);
        tx_fifo_depth = (inb(COM1_IIR) & IIR_FIFOS_ENABLED) == IIR_FIFOS_ENABLED ? 16 : 1;
    }
    if (tx_room == 0) {
        while (!(inb(COM1_LSR) & LSR_THRE)) {
        }
        tx_room = tx_fifo_depth;
    }
    outb(COM1_THR, (uint8_t)c);
    tx_room--;
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
