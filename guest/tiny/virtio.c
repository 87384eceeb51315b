/*
 * virtio.c: the tiny guests' virtio console driver (see virtio.h for what it implements).
 *
 * Bring-up follows virtio 1.2 §3.1.1 step by step: reset (status 0), ACKNOWLEDGE, DRIVER, read the
 * device's features and accept VERSION_1 (plus what the caller asks), FEATURES_OK and read it back, set up
 * the queue (virtio-mmio §4.2.3.2: QueueSel, QueueNumMax, QueueNum, the three addresses, QueueReady;
 * virtio-pci §4.1.5.1.3: queue_select, queue_size, queue_desc/driver/device, queue_enable), DRIVER_OK.
 * Sending (§2.7.13): write the descriptor, put its index in avail.ring[avail.idx % size], barrier, bump
 * avail.idx, barrier, kick; then poll used.idx (§2.7.14).
 */
#include "virtio.h"

enum virtio_transport virtio_transport;
uint64_t virtio_base;
uint64_t virtio_pci_isr, virtio_pci_device_config, virtio_pci_notify;
uint32_t virtio_pci_notify_multiplier, virtio_pci_address;
int virtio_console_ready;
static uint32_t msix_capability;    /* configuration-space offset of the MSI-X capability (ID 0x11), 0 if none */

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

/* Where `key` starts in `s`, or 0. */
static const char *find(const char *s, const char *key)
{
    for (; *s; s++) {
        int i = 0;
        while (key[i] && s[i] == key[i])
            i++;
        if (!key[i])
            return s;
    }
    return 0;
}

/* PCI configuration mechanism #1: CONFIG_ADDRESS 0xCF8, CONFIG_DATA 0xCFC (dword accesses only here). */
static uint32_t pci_read(uint32_t address, uint32_t offset)
{
    outl(0xCF8, 0x80000000u | address | (offset & 0xFC));
    return inl(0xCFC);
}

static void pci_write(uint32_t address, uint32_t offset, uint32_t value)
{
    outl(0xCF8, 0x80000000u | address | (offset & 0xFC));
    outl(0xCFC, value);
}

/* Bus 0: the first function with vendor 0x1af4, device 0x1043 (modern virtio console, §4.1.2.1). Reads its
 * virtio capabilities (vendor-specific, ID 0x09: cfg_type, bar, offset, length) and enables memory space. */
static int virtio_pci_find(void)
{
    for (uint32_t device = 0; device < 32; device++) {
        uint32_t address = device << 11;
        if (pci_read(address, 0x00) != 0x10431AF4u)
            continue;
        uint64_t bar0 = pci_read(address, 0x10) & ~0xFul;
        uint32_t found = 0;
        for (uint32_t cap = pci_read(address, 0x34) & 0xFC; cap; cap = (pci_read(address, cap) >> 8) & 0xFC) {
            uint32_t head = pci_read(address, cap);
            if ((head & 0xFF) == 0x11)
                msix_capability = cap;
            if ((head & 0xFF) != 0x09 || (pci_read(address, cap + 4) & 0xFF) != 0)
                continue;               /* not a virtio capability, or not in BAR 0 */
            uint64_t where = bar0 + pci_read(address, cap + 8);
            switch ((head >> 24) & 0xFF) {
            case 1: virtio_base = where; found |= 1; break;
            case 2: virtio_pci_notify = where; virtio_pci_notify_multiplier = pci_read(address, cap + 16); found |= 2; break;
            case 3: virtio_pci_isr = where; found |= 4; break;
            case 4: virtio_pci_device_config = where; found |= 8; break;
            }
        }
        if (found != 15)
            return 0;
        pci_write(address, 0x04, (pci_read(address, 0x04) & 0xFFFF) | 0x6);  /* memory space, bus master */
        virtio_pci_address = address;
        virtio_transport = VIRTIO_PCI;
        return 1;
    }
    return 0;
}

int virtio_find(uint32_t multiboot_info)
{
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uint64_t)multiboot_info;
    if (!multiboot_info || !(mbi->flags & (1u << 2)) || !mbi->cmdline)
        return 0;
    const char *cmdline = (const char *)(uint64_t)mbi->cmdline;
    const char *p = find(cmdline, "virtio_mmio.device=");
    if (p) {
        while (*p && *p != '@')         /* the size ("4K") is not needed */
            p++;
        if (p[0] != '@' || p[1] != '0' || (p[2] != 'x' && p[2] != 'X'))
            return 0;
        p += 3;
        virtio_base = parse_hex(&p);
        virtio_transport = VIRTIO_MMIO;
        return virtio_base != 0;
    }
    return find(cmdline, "console=hvc0") ? virtio_pci_find() : 0;
}

/* Common-configuration accessors (virtio-pci). */
static inline uint8_t common8(uint32_t o) { return *(volatile uint8_t *)(virtio_base + o); }
static inline uint16_t common16(uint32_t o) { return *(volatile uint16_t *)(virtio_base + o); }
static inline uint32_t common32(uint32_t o) { return *(volatile uint32_t *)(virtio_base + o); }
static inline void set_common8(uint32_t o, uint8_t v) { *(volatile uint8_t *)(virtio_base + o) = v; }
static inline void set_common16(uint32_t o, uint16_t v) { *(volatile uint16_t *)(virtio_base + o) = v; }
static inline void set_common32(uint32_t o, uint32_t v) { *(volatile uint32_t *)(virtio_base + o) = v; }

uint32_t virtio_get_status(void)
{
    return virtio_transport == VIRTIO_PCI ? common8(VIRTIO_PCI_DEVICE_STATUS) : virtio_read(VIRTIO_MMIO_STATUS);
}

void virtio_set_status(uint32_t status)
{
    if (virtio_transport == VIRTIO_PCI)
        set_common8(VIRTIO_PCI_DEVICE_STATUS, (uint8_t)status);
    else
        virtio_write(VIRTIO_MMIO_STATUS, status);
}

uint64_t virtio_config_address(void)
{
    return virtio_transport == VIRTIO_PCI ? virtio_pci_device_config : virtio_base + VIRTIO_MMIO_CONFIG;
}

static uint32_t device_features(uint32_t page)
{
    if (virtio_transport == VIRTIO_PCI) {
        set_common32(VIRTIO_PCI_DEVICE_FEATURE_SELECT, page);
        return common32(VIRTIO_PCI_DEVICE_FEATURE);
    }
    virtio_write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, page);
    return virtio_read(VIRTIO_MMIO_DEVICE_FEATURES);
}

static void set_driver_features(uint32_t page, uint32_t value)
{
    if (virtio_transport == VIRTIO_PCI) {
        set_common32(VIRTIO_PCI_DRIVER_FEATURE_SELECT, page);
        set_common32(VIRTIO_PCI_DRIVER_FEATURE, value);
        return;
    }
    virtio_write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, page);
    virtio_write(VIRTIO_MMIO_DRIVER_FEATURES, value);
}

int virtio_setup_queue(struct virtq *vq, uint16_t q)
{
    memset(vq, 0, sizeof *vq);
    vq->index = q;
    if (virtio_transport == VIRTIO_PCI) {
        set_common16(VIRTIO_PCI_QUEUE_SELECT, q);
        if (common16(VIRTIO_PCI_QUEUE_SIZE) < VQ_SIZE)
            return -4;
        set_common16(VIRTIO_PCI_QUEUE_SIZE, VQ_SIZE);
        set_common32(VIRTIO_PCI_QUEUE_DESC, (uint32_t)(uint64_t)vq->desc);
        set_common32(VIRTIO_PCI_QUEUE_DESC + 4, 0);
        set_common32(VIRTIO_PCI_QUEUE_DRIVER, (uint32_t)(uint64_t)&vq->avail);
        set_common32(VIRTIO_PCI_QUEUE_DRIVER + 4, 0);
        set_common32(VIRTIO_PCI_QUEUE_DEVICE, (uint32_t)(uint64_t)&vq->used);
        set_common32(VIRTIO_PCI_QUEUE_DEVICE + 4, 0);
        vq->notify = virtio_pci_notify + (uint64_t)common16(VIRTIO_PCI_QUEUE_NOTIFY_OFF) * virtio_pci_notify_multiplier;
        set_common16(VIRTIO_PCI_QUEUE_ENABLE, 1);
        return 0;
    }
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
    if (virtio_transport == VIRTIO_MMIO) {
        if (!virtio_base || virtio_read(VIRTIO_MMIO_MAGIC) != 0x74726976)
            return -1;
        if (virtio_read(VIRTIO_MMIO_VERSION) != 2 || virtio_read(VIRTIO_MMIO_DEVICE_ID) != 3)
            return -2;
    } else if (virtio_transport != VIRTIO_PCI) {
        return -1;
    }
    virtio_set_status(0);
    virtio_set_status(VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    features |= 1ul << VIRTIO_F_VERSION_1_BIT;
    uint64_t offered = (uint64_t)device_features(1) << 32 | device_features(0);
    features &= offered;
    set_driver_features(0, (uint32_t)features);
    set_driver_features(1, (uint32_t)(features >> 32));
    virtio_set_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(virtio_get_status() & VIRTIO_STATUS_FEATURES_OK))
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
    virtio_set_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
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
    if (virtio_transport == VIRTIO_PCI)
        *(volatile uint16_t *)vq->notify = vq->index;     /* §4.1.4.4: the queue index, 16 bits */
    else
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
    if (virtio_transport == VIRTIO_PCI)
        return *(volatile uint8_t *)virtio_pci_isr;     /* read-to-clear */
    uint32_t status = virtio_read(VIRTIO_MMIO_INTERRUPT_STATUS);
    if (status)
        virtio_write(VIRTIO_MMIO_INTERRUPT_ACK, status);
    return status;
}

#define LAPIC_SVR 0xFEE000F0ul          /* Spurious Interrupt Vector Register; bit 8: APIC software enable */
#define LAPIC_IRR 0xFEE00200ul          /* Interrupt Request Register: 8 dwords, 16 bytes apart */

int virtio_pci_msix_setup(uint16_t entry, uint8_t apic_vector)
{
    if (virtio_transport != VIRTIO_PCI || !msix_capability)
        return -1;
    /* Table Offset/BIR (capability + 4): the table is at that offset in BAR BIR (32-bit memory BARs here). */
    uint32_t table = pci_read(virtio_pci_address, msix_capability + 4);
    uint64_t bar = pci_read(virtio_pci_address, 0x10 + 4 * (table & 7)) & ~0xFul;
    volatile uint32_t *slot = (volatile uint32_t *)(bar + (table & ~7u) + 16ul * entry);
    slot[0] = 0xFEE00000u;              /* Message Address: local APIC 0, physical destination */
    slot[1] = 0;                        /* Message Upper Address */
    slot[2] = apic_vector;              /* Message Data: fixed delivery, edge, this vector */
    slot[3] = 0;                        /* Vector Control: unmasked */
    /* Message Control is the upper half of the capability's first dword: bit 15 enable, bit 14 function mask. */
    uint32_t head = pci_read(virtio_pci_address, msix_capability);
    pci_write(virtio_pci_address, msix_capability, (head & ~(1u << 30)) | (1u << 31));
    *(volatile uint32_t *)LAPIC_SVR |= 1u << 8;
    set_common16(VIRTIO_PCI_CONFIG_MSIX_VECTOR, VIRTIO_MSI_NO_VECTOR);
    set_common16(VIRTIO_PCI_QUEUE_SELECT, console_tx.index);
    set_common16(VIRTIO_PCI_QUEUE_MSIX_VECTOR, entry);
    return common16(VIRTIO_PCI_QUEUE_MSIX_VECTOR) == entry ? 0 : -2;
}

int virtio_pci_msix_pending(uint8_t apic_vector)
{
    /* The device publishes the used entry, then signals: the message may trail what the driver polled. */
    volatile uint32_t *irr = (volatile uint32_t *)(LAPIC_IRR + 0x10ul * (apic_vector / 32));
    for (uint32_t spins = 0; spins < 100000; spins++)
        if ((*irr >> (apic_vector % 32)) & 1)
            return 1;
    return 0;
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
