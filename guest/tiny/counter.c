/*
 * counter.c: the "counter" tiny guest: counts from 1 to 10 on COM1, and after 5 writes the snapshot marker
 * "SNAP" (0x534E4150) to the lab marker port 0x440, so `swiftlet boot --guest counter --snapshot FILE`
 * snapshots it there; a restore of FILE then prints 6 to 10 and nothing before.
 *
 * The count lives in memory (a global) and a running sum of the counts in a register across the marker's
 * OUT, so both RAM and the vCPU's registers must come back for the exit value to be right: it ends with
 * isa-debug-exit value 55 (1 + 2 + ... + 10) when they did, and with the wrong sum (never 55) when not.
 */
#include "tiny.h"

#define LAB_MARKER_PORT 0x440
#define SNAPSHOT_MARKER 0x534E4150u   /* "SNAP" */

static volatile uint32_t count;

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)magic;
    (void)mbi;
    uint64_t sum = 0;
    put_line("counter: counting to 10, snapshot marker after 5");
    for (count = 1; count <= 10; count++) {
        put_str("counter: ");
        put_dec(count);
        put_char('\n');
        sum += count;
        if (count == 5) {
            /* The register holding `sum` must survive the snapshot: the asm keeps it live in RBX. */
            __asm__ volatile("outl %%eax, %%dx" : "+b"(sum) : "a"(SNAPSHOT_MARKER), "d"(LAB_MARKER_PORT));
        }
    }
    debug_exit((uint32_t)sum);
}
