/*
 * virtio-hostile.c: the "virtio-hostile" tiny guest: a virtio driver that breaks the rules on purpose, one
 * attack per boot, to show that the VMM contains it (tests: Tests/VMMTests/VirtioGuestTests.swift).
 *
 * Command line: `attack=NAME`. It drives the virtio console over whichever transport the VMM offers:
 * virtio-mmio (the virtio_mmio.device=... the VMM adds to the command line) or virtio-pci (found by
 * scanning PCI bus 0). The attacks, against port 0's transmitq (queue 1) unless said otherwise:
 *   loop      descriptor 0 chains to itself                         (virtio 1.2 §2.7.5.3.1)
 *   outside   a buffer at 2 GiB, far outside guest RAM
 *   giant     a buffer of 0xfffffff0 bytes
 *   jump      avail.idx set 1000 entries ahead of a 16-entry queue  (§2.7.13)
 *   long      an indirect table of 32 descriptors in a 16-entry queue (§2.7.5.3.1)
 *   overlap   (multiport) a device-writable control receive buffer laid over the queue's own used ring
 *   early     a kick before DRIVER_OK                                (§3.1.1: the device must not consume)
 *   readonly  writes to read-only registers and configuration fields (mmio: MagicValue, DeviceID,
 *             QueueNumMax, §4.2.2; pci: num_queues and device_feature of the common configuration,
 *             §4.1.4.3; both: the console's cols and max_nr_ports, §5.3.4)
 * For the first six the guest then expects DEVICE_NEEDS_RESET in the status register and a configuration
 * change interrupt, resets the device (status 0), brings the console up again and prints
 * "virtio-hostile: recovered" through it. For `early` and `readonly` it checks that nothing happened.
 * Its own report goes to COM1 (the virtio console may be what is broken). Exit value 0: contained as
 * expected; 1: the device did not react as the specification says; 2: no virtio device or unknown attack.
 */
#include "tiny.h"
#include "virtio.h"

static struct virtq q1 __attribute__((aligned(4096)));
static struct virtq q2 __attribute__((aligned(4096)));
static struct virtq q3 __attribute__((aligned(4096)));
static struct virtq_desc indirect[32] __attribute__((aligned(16)));
static char text[64] = "hostile bytes\n";
static uint32_t control_message[2];

static void say(const char *s) { while (*s) serial_put_char(*s++); }
static void say_hex(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    say("0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        serial_put_char(digits[(v >> shift) & 0xF]);
}

static int matches(const char *s, const char *word)
{
    while (*word)
        if (*s++ != *word++)
            return 0;
    return *s == 0 || *s == ' ';
}

static const char *attack_name(uint32_t mbi_address)
{
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uint64_t)mbi_address;
    if (!(mbi->flags & (1u << 2)) || !mbi->cmdline)
        return "";
    for (const char *s = (const char *)(uint64_t)mbi->cmdline; *s; s++)
        if (s[0] == 'a' && s[1] == 't' && s[2] == 't' && s[3] == 'a' && s[4] == 'c' && s[5] == 'k' && s[6] == '=')
            return s + 7;
    return "";
}

/* One descriptor in queue 1's table and a kick. */
static void send_raw(uint64_t address, uint32_t length, uint16_t flags, uint16_t next)
{
    q1.desc[0].addr = address;
    q1.desc[0].len = length;
    q1.desc[0].flags = flags;
    q1.desc[0].next = next;
    virtq_publish(&q1, 0);
    virtq_kick(&q1);
}

__attribute__((noreturn)) static void expect_needs_reset(uint32_t mbi)
{
    uint32_t status = 0;
    for (uint32_t spins = 0; spins < 2000000; spins++) {
        status = virtio_get_status();
        if (status & VIRTIO_STATUS_NEEDS_RESET)
            break;
    }
    say("virtio-hostile: device status ");
    say_hex(status);
    if (!(status & VIRTIO_STATUS_NEEDS_RESET)) {
        say(": no DEVICE_NEEDS_RESET, the device did not report the fault\n");
        debug_exit(1);
    }
    uint32_t interrupt = virtio_ack_interrupt();
    say(" (DEVICE_NEEDS_RESET), interrupt status ");
    say_hex(interrupt);
    say(interrupt & 2 ? " (configuration change)\n" : " (no configuration change interrupt)\n");
    virtio_set_status(0);
    if (virtio_get_status() != 0) {
        say("virtio-hostile: the device did not reset\n");
        debug_exit(1);
    }
    say("virtio-hostile: reset the device (status 0)\n");
    if (console_setup(MULTIBOOT_BOOTLOADER_MAGIC, mbi) != 0) {
        say("virtio-hostile: the console did not come up again after the reset\n");
        debug_exit(1);
    }
    put_line("virtio-hostile: recovered, the virtio console works again after the reset");
    debug_exit(interrupt & 2 ? 0 : 1);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    const char *attack = magic == MULTIBOOT_BOOTLOADER_MAGIC ? attack_name(mbi) : "";
    say("virtio-hostile: attack ");
    say(*attack ? attack : "(none)");
    say("\n");
    if (!virtio_find(mbi)) {
        say("virtio-hostile: no virtio console found (boot with --console virtio)\n");
        debug_exit(2);
    }
    say(virtio_transport == VIRTIO_PCI ? "virtio-hostile: transport virtio-pci\n" : "virtio-hostile: transport virtio-mmio\n");
    if (matches(attack, "overlap")) {
        /* Multiport: control receiveq (2) and transmitq (3). The receive buffer covers queue 2's used ring. */
        if (virtio_setup(1ul << VIRTIO_CONSOLE_F_MULTIPORT_BIT, &q2, 2, 0) || virtio_setup_queue(&q3, 3))
            debug_exit(2);
        virtio_driver_ok();
        q2.desc[0].addr = (uint64_t)&q2.used;
        q2.desc[0].len = 64;
        q2.desc[0].flags = VIRTQ_DESC_F_WRITE;
        virtq_publish(&q2, 0);
        virtq_kick(&q2);
        control_message[0] = 0xFFFFFFFFu;           /* id: none */
        control_message[1] = 0 | (1u << 16);        /* event DEVICE_READY (0), value 1 */
        q3.desc[0].addr = (uint64_t)control_message;
        q3.desc[0].len = 8;
        q3.desc[0].flags = 0;
        virtq_publish(&q3, 0);
        virtq_kick(&q3);
        expect_needs_reset(mbi);
    }
    if (matches(attack, "early")) {
        if (virtio_setup(0, &q1, 1, 0))
            debug_exit(2);
        send_raw((uint64_t)text, 14, 0, 0);
        uint32_t early = virtq_wait(&q1, 1, 200000);
        say(early ? "virtio-hostile: the device consumed a buffer before DRIVER_OK\n"
                  : "virtio-hostile: nothing consumed before DRIVER_OK\n");
        virtio_driver_ok();
        virtq_kick(&q1);
        uint32_t later = virtq_wait(&q1, 1, 2000000);
        say(later ? "virtio-hostile: consumed after DRIVER_OK and a new kick\n" : "virtio-hostile: never consumed\n");
        debug_exit(early || !later ? 1 : 0);
    }
    if (matches(attack, "readonly")) {
        if (virtio_setup(0, &q1, 1, 1))
            debug_exit(2);
        uint64_t config = virtio_config_address();
        uint16_t cols = *(volatile uint16_t *)config;
        uint32_t ports = *(volatile uint32_t *)(config + 4);
        *(volatile uint16_t *)config = 1;                    /* cols */
        *(volatile uint32_t *)(config + 4) = 99;             /* max_nr_ports */
        int unchanged;
        if (virtio_transport == VIRTIO_PCI) {
            uint16_t queues = *(volatile uint16_t *)(virtio_base + VIRTIO_PCI_NUM_QUEUES);
            *(volatile uint32_t *)(virtio_base + VIRTIO_PCI_DEVICE_FEATURE_SELECT) = 1;
            uint32_t high = *(volatile uint32_t *)(virtio_base + VIRTIO_PCI_DEVICE_FEATURE);
            *(volatile uint16_t *)(virtio_base + VIRTIO_PCI_NUM_QUEUES) = 1;
            *(volatile uint32_t *)(virtio_base + VIRTIO_PCI_DEVICE_FEATURE) = 0;
            unchanged = *(volatile uint16_t *)(virtio_base + VIRTIO_PCI_NUM_QUEUES) == queues && queues != 1 &&
                        *(volatile uint32_t *)(virtio_base + VIRTIO_PCI_DEVICE_FEATURE) == high && (high & 1);
        } else {
            virtio_write(VIRTIO_MMIO_MAGIC, 0);
            virtio_write(VIRTIO_MMIO_DEVICE_ID, 1);
            virtio_write(VIRTIO_MMIO_QUEUE_NUM_MAX, 1);
            unchanged = virtio_read(VIRTIO_MMIO_MAGIC) == 0x74726976 && virtio_read(VIRTIO_MMIO_DEVICE_ID) == 3;
        }
        unchanged = unchanged && *(volatile uint16_t *)config == cols && *(volatile uint32_t *)(config + 4) == ports &&
                    virtio_get_status() == 0xF;
        say(unchanged ? "virtio-hostile: read-only registers and configuration unchanged\n"
                      : "virtio-hostile: a read-only value changed\n");
        debug_exit(unchanged ? 0 : 1);
    }
    uint64_t features = matches(attack, "long") ? 1ul << VIRTIO_F_INDIRECT_DESC_BIT : 0;
    if (virtio_setup(features, &q1, 1, 1))
        debug_exit(2);
    if (matches(attack, "loop")) {
        send_raw((uint64_t)text, 14, VIRTQ_DESC_F_NEXT, 0);
    } else if (matches(attack, "outside")) {
        send_raw(0x80000000ul, 16, 0, 0);
    } else if (matches(attack, "giant")) {
        send_raw((uint64_t)text, 0xFFFFFFF0u, 0, 0);
    } else if (matches(attack, "jump")) {
        q1.desc[0].addr = (uint64_t)text;
        q1.desc[0].len = 14;
        *(volatile uint16_t *)&q1.avail.idx = 1000;
        virtq_kick(&q1);
    } else if (matches(attack, "long")) {
        for (uint16_t i = 0; i < 32; i++) {
            indirect[i].addr = (uint64_t)text;
            indirect[i].len = 1;
            indirect[i].flags = i < 31 ? VIRTQ_DESC_F_NEXT : 0;
            indirect[i].next = (uint16_t)(i + 1);
        }
        send_raw((uint64_t)indirect, sizeof indirect, VIRTQ_DESC_F_INDIRECT, 0);
    } else {
        say("virtio-hostile: unknown attack (loop, outside, giant, jump, long, overlap, early, readonly)\n");
        debug_exit(2);
    }
    expect_needs_reset(mbi);
}
