/*
 * tiny.h: the few helpers every tiny guest shares: port I/O, COM1 output, number printing, CPUID,
 * control-register and MSR reads, and the debug-exit port.
 *
 * Port numbers follow the PC/AT map (COM1 at 0x3F8, 8250/16550 UART register layout: THR at +0, LSR at
 * +5 with bit 5 "transmitter holding register empty", IIR/FCR at +2) and QEMU's isa-debug-exit convention (a 32-bit
 * write of V to port 0xF4 ends the VM with exit status (V << 1) | 1). The multiboot information layout
 * is Multiboot 0.6.96 section 3.3. Everything is inline or tiny: kernel-mode code is emulated instruction
 * by instruction on a software KVM, so fewer instructions means a faster guest.
 */
#ifndef TINY_H
#define TINY_H

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;

#define COM1_THR 0x3F8          /* Transmitter Holding Register */
#define COM1_LSR 0x3FD          /* Line Status Register */
#define COM1_IIR 0x3FA          /* Interrupt Identification Register (read) */
#define COM1_FCR 0x3FA          /* FIFO Control Register (write, same offset) */
#define LSR_THRE 0x20           /* THR empty (FIFO mode: transmit FIFO empty): the UART takes more bytes */
#define FCR_ENABLE_FIFOS 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define IIR_FIFOS_ENABLED 0xC0  /* IIR bits 7:6 both set: a 16550A with working FIFOs */
#define DEBUG_EXIT_PORT 0xF4    /* isa-debug-exit: status = (value << 1) | 1 */
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

/* Multiboot information structure (Multiboot 0.6.96 section 3.3), the fields the guests read. */
struct multiboot_info {
    uint32_t flags;             /* bit 0: mem_lower/mem_upper valid; bit 6: mmap_* valid */
    uint32_t mem_lower;         /* KiB of conventional memory from 0 */
    uint32_t mem_upper;         /* KiB of memory from 1 MiB up to the first hole */
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count;
    uint32_t mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length;       /* bytes of memory-map entries */
    uint32_t mmap_addr;         /* each entry: uint32 size (not counting itself), then size bytes */
};

static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t value) { __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}
static inline uint64_t read_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

/* Console output: COM1, or the virtio console after console_setup() found one. '\n' is sent as is
 * (no carriage return). */
void put_char(char c);
void serial_put_char(char c);                    /* always COM1 */
/* Uses the virtio console if the multiboot command line announces one (virtio_mmio.device=...); returns
 * 0 when it does, negative when output stays on COM1. */
int console_setup(uint32_t magic, uint32_t multiboot_info);
void put_str(const char *s);
void put_hex32(uint32_t value);                  /* "0x" and eight digits */
void put_dec(uint64_t value);
void put_line(const char *s);                    /* s and '\n' */

/* Writes value to the isa-debug-exit port; if nothing ends the VM, halts forever. */
__attribute__((noreturn)) void debug_exit(uint32_t value);

void kmain(uint32_t magic, uint32_t mbi);

#endif
