/*
 * console-bench.c: the "console-bench" tiny guest: writes N KiB to its console as fast as it can, through
 * the virtio console when the command line announces one (virtio_mmio.device=...), else through COM1.
 * bench/virtio.sh times both and compares.
 *
 * Command line: `kib=N` (default 1024). The data are lines of 64 printable bytes ("console-bench ...\n").
 * The 8250 path is the ordinary polled one (wait for LSR.THRE, write THR: two port I/O exits per byte).
 * The virtio path fills its 16-entry transmitq with 64 KiB descriptors that all point at one prepared
 * buffer, kicks once, and polls the used ring: 1 MiB per kick (virtio 1.2 §2.7.13).
 * Ends with isa-debug-exit value 0 (status 1).
 */
#include "tiny.h"
#include "virtio.h"

#define CHUNK (64 * 1024)

static char data[CHUNK] __attribute__((aligned(4096)));
static struct virtq tx __attribute__((aligned(4096)));

static uint32_t parse_kib(uint32_t mbi_address)
{
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uint64_t)mbi_address;
    if (!(mbi->flags & (1u << 2)) || !mbi->cmdline)
        return 1024;
    for (const char *s = (const char *)(uint64_t)mbi->cmdline; *s; s++) {
        if (s[0] == 'k' && s[1] == 'i' && s[2] == 'b' && s[3] == '=') {
            uint32_t v = 0;
            for (s += 4; *s >= '0' && *s <= '9'; s++)
                v = v * 10 + (uint32_t)(*s - '0');
            return v;
        }
    }
    return 1024;
}

/* 64 KiB of 64-byte lines: one line by a loop, then the rest with rep movsq (one emulated instruction). */
static void fill(void)
{
    static const char line[] = "console-bench 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM\n";
    for (int i = 0; i < 64; i++)
        data[i] = line[i];
    uint64_t count = (CHUNK - 64) / 8;
    void *to = data + 64, *from = data;
    __asm__ volatile("rep movsq" : "+D"(to), "+S"(from), "+c"(count) : : "memory");
}

static void bench_virtio(uint64_t bytes)
{
    while (bytes) {
        uint16_t n = 0;
        while (bytes && n < VQ_SIZE) {
            uint32_t len = bytes < CHUNK ? (uint32_t)bytes : CHUNK;
            uint16_t head = (uint16_t)((tx.next_avail) % VQ_SIZE);
            tx.desc[head].addr = (uint64_t)data;
            tx.desc[head].len = len;
            tx.desc[head].flags = 0;
            virtq_publish(&tx, head);
            bytes -= len;
            n++;
        }
        virtq_kick(&tx);
        virtq_wait(&tx, n, 0xFFFFFFFFu);
        virtio_ack_interrupt();
    }
}

static void bench_serial(uint64_t bytes)
{
    for (uint64_t i = 0; i < bytes; i++)
        serial_put_char(data[i % CHUNK]);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    uint32_t kib = magic == MULTIBOOT_BOOTLOADER_MAGIC ? parse_kib(mbi) : 1024;
    int virtio = magic == MULTIBOOT_BOOTLOADER_MAGIC && virtio_find(mbi) && virtio_setup(0, &tx, 1, 1) == 0;
    fill();
    if (virtio)
        bench_virtio((uint64_t)kib * 1024);
    else
        bench_serial((uint64_t)kib * 1024);
    debug_exit(0);
}
