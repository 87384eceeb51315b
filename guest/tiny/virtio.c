/*
 * virtio.c: the tiny guests' virtio-mmio console driver (see virtio.h for what it implements).
 *
 * Bring-up follows virtio 1.2 §3.1.1 step by step: reset (status 0), ACKNOWLEDGE, DRIVER, read the
 * device's features and accept VERSION_1 (plus what the caller asks), FEATURES_OK and read it back, set up
 * the queue (§4.2.3.2: QueueSel, QueueNumMax, QueueNum, the three addresses, QueueReady), DRIVER_OK.
 * Sending (§2.7.13): write the descriptor, put its index in avail.ring[avail.idx % size], barrier, bump
 * avail.idx, barrier, kick; then poll used.idx (§2.7.14).
 */
#include "virtio.h"

uint64_t virtio_base;
int virtio_console_ready;

/* Port 0's transmitq (queue 1), page-aligned so the rings are easy to spot in a memory dump. */
static struct virtq console_tx __attribute__((aligned(4096)));
static char console_buffer[256];

void *memset(void *s, int c, unsigned long n)
{
    volatile uint8_t *p = s;
    while (n--)
        *p++ = (uint8_t)c;
    return s;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
    volatile uint8_t *to = d;
    const uint8_t *from = s;
    while (n--)
        *to++ = *from++;
    return d;
}

static uint64_t parse_hex(const char **p)
{
    uint64_t v = 0;
    for (;;) {
        char c = **p;
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (digit < 0)
            return v;
        v = (v << 4) | (uint64_t)digit;
        (*p)++;
    }
}

int virtio_find(uint32_t multiboot_info)
{
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uint64_t)multiboot_info;
    static const char key[] = "virtio_mmio.device=";
    if (!multiboot_info || !(mbi->flags & (1u << 2)) || !mbi->cmdline)
        return 0;
    for (const char *s = (const char *)(uint64_t)mbi->cmdline; *s; s++) {
        int i = 0;
        while (key[i] && s[i] == key[i])
            i++;
        if (key[i])
            continue;
        const char *p = s + i;
        while (*p && *p != '@')         /* the size ("4K") is not needed */
            p++;
        if (p[0] != '@' || p[1] != '0' || (p[2] != 'x' && p[2] != 'X'))
            return 0;
        p += 3;
        virtio_base = parse_hex(&p);
        return virtio_base != 0;
    }
    return 0;
}

int virtio_setup_queue(struct virtq *vq, uint16_t q)
{
    memset(vq, 0, sizeof *vq);
    vq->index = q;
    virtio_write(VIRTIO_MMIO_QUEUE_SEL, q);
    if (virtio_read(VIRTIO_MMIO_QUEUE_NUM_MAX) < VQ_SIZE)
        return -4;
    virtio_write(VIRTIO_MMIO_QUEUE_NUM, VQ_SIZE);
    virtio_write(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(uint64_t)vq->desc);
    virtio_write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    virtio_write(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(uint64_t)&vq->avail);
    virtio_write(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
    virtio_write(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(uint64_t)&vq->used);
    virtio_write(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
    virtio_write(VIRTIO_MMIO_QUEUE_READY, 1);
    return 0;
}

int virtio_setup(uint64_t features, struct virtq *vq, uint16_t q, int driver_ok)
{
    if (!virtio_base || virtio_read(VIRTIO_MMIO_MAGIC) != 0x74726976)
        return -1;
    if (virtio_read(VIRTIO_MMIO_VERSION) != 2 || virtio_read(VIRTIO_MMIO_DEVICE_ID) != 3)
        return -2;
    virtio_write(VIRTIO_MMIO_STATUS, 0);
    virtio_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    features |= 1ul << VIRTIO_F_VERSION_1_BIT;
    virtio_write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    uint64_t offered = (uint64_t)virtio_read(VIRTIO_MMIO_DEVICE_FEATURES) << 32;
    virtio_write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    offered |= virtio_read(VIRTIO_MMIO_DEVICE_FEATURES);
    features &= offered;
    virtio_write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    virtio_write(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
    virtio_write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    virtio_write(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    virtio_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(virtio_read(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
        return -3;
    int r = virtio_setup_queue(vq, q);
    if (r)
        return r;
    if (driver_ok)
        virtio_driver_ok();
    return 0;
}

void virtio_driver_ok(void)
{
    virtio_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                                      VIRTIO_STATUS_DRIVER_OK);
}

void virtq_publish(struct virtq *vq, uint16_t head)
{
    vq->avail.ring[vq->next_avail % VQ_SIZE] = head;
    compiler_barrier();             /* the entry before the index that publishes it (x86 keeps store order) */
    vq->next_avail++;
    *(volatile uint16_t *)&vq->avail.idx = vq->next_avail;
    compiler_barrier();
}

void virtq_kick(struct virtq *vq)
{
    virtio_write(VIRTIO_MMIO_QUEUE_NOTIFY, vq->index);
}

uint32_t virtq_wait(struct virtq *vq, uint32_t count, uint32_t spins)
{
    uint16_t target = (uint16_t)(vq->last_used + count);
    while (*(volatile uint16_t *)&vq->used.idx != target && spins--) {
    }
    uint16_t seen = *(volatile uint16_t *)&vq->used.idx;
    uint32_t got = (uint16_t)(seen - vq->last_used);
    vq->last_used = seen;
    return got;
}

uint32_t virtio_ack_interrupt(void)
{
    uint32_t status = virtio_read(VIRTIO_MMIO_INTERRUPT_STATUS);
    if (status)
        virtio_write(VIRTIO_MMIO_INTERRUPT_ACK, status);
    return status;
}

void virtio_console_write(const void *data, uint32_t len)
{
    struct virtq *vq = &console_tx;
    uint16_t head = vq->next_avail % VQ_SIZE;
    vq->desc[head].addr = (uint64_t)data;
    vq->desc[head].len = len;
    vq->desc[head].flags = 0;
    vq->desc[head].next = 0;
    virtq_publish(vq, head);
    virtq_kick(vq);
    virtq_wait(vq, 1, 0xFFFFFFFFu);
    virtio_ack_interrupt();
}

int virtio_console_start(uint32_t multiboot_info)
{
    if (!virtio_find(multiboot_info))
        return -1;
    int r = virtio_setup(0, &console_tx, 1, 1);
    virtio_console_ready = r == 0;
    return r;
}

/* Line-buffered output for put_char (lib.c): one descriptor and one kick per line. */
static uint32_t buffered;

void virtio_console_put(char c)
{
    console_buffer[buffered++] = c;
    if (c == '\n' || buffered == sizeof console_buffer)
        virtio_console_flush();
}

void virtio_console_flush(void)
{
    if (buffered) {
        virtio_console_write(console_buffer, buffered);
        buffered = 0;
    }
}
