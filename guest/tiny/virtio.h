/*
 * virtio.h: the tiny guests' virtio-mmio console driver: the smallest complete virtio driver, for the
 * learning lab. It implements the driver side of virtio 1.2: device initialization (§3.1.1), the
 * virtio-mmio v2 register block (§4.2.2, §4.2.3), one split virtqueue (§2.7) and the console's port 0
 * transmitq (§5.3). No interrupts are taken: the driver kicks the device (a 32-bit write of the queue
 * index to QueueNotify), polls the used ring until the device has consumed the buffer, then reads and
 * acknowledges InterruptStatus as an interrupt handler would.
 *
 * The device is found the way Linux finds it: `virtio_mmio.device=<size>@<base>:<irq>` on the command
 * line (the multiboot command line here), e.g. virtio_mmio.device=4K@0xd0000000:5.
 */
#ifndef TINY_VIRTIO_H
#define TINY_VIRTIO_H

#include "tiny.h"

/* virtio-mmio register offsets (virtio 1.2 §4.2.2). */
#define VIRTIO_MMIO_MAGIC           0x000   /* "virt" = 0x74726976 */
#define VIRTIO_MMIO_VERSION         0x004   /* 2 */
#define VIRTIO_MMIO_DEVICE_ID       0x008   /* 3 = console */
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL       0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX   0x034
#define VIRTIO_MMIO_QUEUE_NUM       0x038
#define VIRTIO_MMIO_QUEUE_READY     0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY    0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK   0x064
#define VIRTIO_MMIO_STATUS          0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW  0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG          0x100

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40

/* Descriptor flags (§2.7.5). */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

/* Feature bits the tiny driver may accept (§6, §5.3.3). */
#define VIRTIO_CONSOLE_F_MULTIPORT_BIT 1
#define VIRTIO_F_INDIRECT_DESC_BIT 28
#define VIRTIO_F_VERSION_1_BIT 32

#define VQ_SIZE 16

/* The split virtqueue (§2.7): descriptor table, available ring, used ring. */
struct virtq_desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };
struct virtq_avail { uint16_t flags; uint16_t idx; uint16_t ring[VQ_SIZE]; uint16_t used_event; };
struct virtq_used_elem { uint32_t id; uint32_t len; };
struct virtq_used { uint16_t flags; uint16_t idx; struct virtq_used_elem ring[VQ_SIZE]; uint16_t avail_event; };

struct virtq {
    struct virtq_desc desc[VQ_SIZE] __attribute__((aligned(16)));
    struct virtq_avail avail __attribute__((aligned(2)));
    struct virtq_used used __attribute__((aligned(4)));
    uint16_t index;             /* the queue's number on the device */
    uint16_t next_avail;        /* the driver's copy of avail.idx */
    uint16_t last_used;         /* used entries already seen */
    uint64_t notify;            /* virtio-pci: this queue's notification address */
};

/* virtio-pci (§4.1.4.3): offsets in the common configuration structure. */
#define VIRTIO_PCI_DEVICE_FEATURE_SELECT 0x00
#define VIRTIO_PCI_DEVICE_FEATURE   0x04
#define VIRTIO_PCI_DRIVER_FEATURE_SELECT 0x08
#define VIRTIO_PCI_DRIVER_FEATURE   0x0C
#define VIRTIO_PCI_CONFIG_MSIX_VECTOR 0x10
#define VIRTIO_PCI_NUM_QUEUES       0x12
#define VIRTIO_PCI_DEVICE_STATUS    0x14
#define VIRTIO_PCI_QUEUE_SELECT     0x16
#define VIRTIO_PCI_QUEUE_SIZE       0x18
#define VIRTIO_PCI_QUEUE_MSIX_VECTOR 0x1A
#define VIRTIO_PCI_QUEUE_ENABLE     0x1C
#define VIRTIO_MSI_NO_VECTOR        0xFFFF
#define VIRTIO_PCI_QUEUE_NOTIFY_OFF 0x1E
#define VIRTIO_PCI_QUEUE_DESC       0x20
#define VIRTIO_PCI_QUEUE_DRIVER     0x28
#define VIRTIO_PCI_QUEUE_DEVICE     0x30

/* The transport found: virtio-mmio's register block, or virtio-pci's structures in BAR 0. */
enum virtio_transport { VIRTIO_NONE, VIRTIO_MMIO, VIRTIO_PCI };
extern enum virtio_transport virtio_transport;
/* virtio-mmio: the register block. virtio-pci: the common configuration structure. */
extern uint64_t virtio_base;
/* virtio-pci: ISR, device configuration, notification base and multiplier; the function's PCI address. */
extern uint64_t virtio_pci_isr, virtio_pci_device_config, virtio_pci_notify;
extern uint32_t virtio_pci_notify_multiplier, virtio_pci_address;

static inline uint32_t virtio_read(uint32_t offset) { return *(volatile uint32_t *)(virtio_base + offset); }
static inline void virtio_write(uint32_t offset, uint32_t value) { *(volatile uint32_t *)(virtio_base + offset) = value; }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

/* Looks for virtio_mmio.device=...@BASE:IRQ in the multiboot command line, else (with console=hvc0) for a
 * virtio-pci console on bus 0; sets virtio_transport and the addresses. Returns 1 if found. */
int virtio_find(uint32_t multiboot_info);
/* The device status register, whichever the transport. */
uint32_t virtio_get_status(void);
void virtio_set_status(uint32_t status);
/* The device configuration space (console: cols, rows, max_nr_ports, emerg_wr). */
uint64_t virtio_config_address(void);
/* Resets the device and brings it up with `features` (VERSION_1 is added); sets up queue `q` of size
 * VQ_SIZE in `vq`. Returns 0, or a negative step number where it failed (-1 no device, -2 not a v2 console,
 * -3 FEATURES_OK refused, -4 queue too small). Stops before DRIVER_OK when `driver_ok` is 0. */
int virtio_setup(uint64_t features, struct virtq *vq, uint16_t q, int driver_ok);
/* Sets up one more queue on a device that virtio_setup is bringing up (before DRIVER_OK). */
int virtio_setup_queue(struct virtq *vq, uint16_t q);
/* Sets DRIVER_OK. */
void virtio_driver_ok(void);
/* Puts one chain of `count` descriptors (already written from desc[head]) in the available ring. */
void virtq_publish(struct virtq *vq, uint16_t head);
/* Kicks queue vq->index. */
void virtq_kick(struct virtq *vq);
/* Polls until the device used `count` more entries, or `spins` polls passed; returns the entries it saw. */
uint32_t virtq_wait(struct virtq *vq, uint32_t count, uint32_t spins);
/* Reads the interrupt status and acknowledges it (what an interrupt handler does); returns it.
 * virtio-mmio: InterruptStatus, then InterruptACK; virtio-pci: reading ISR clears it and deasserts INTx. */
uint32_t virtio_ack_interrupt(void);

/* virtio-pci with MSI-X (PCI 3.0 §6.8.2, virtio 1.2 §4.1.4.3, §4.1.5.1.2): points the transmitq's vector at
 * MSI-X table entry `entry`, whose message goes to local APIC 0 (address 0xFEE00000) with `apic_vector`,
 * turns MSI-X on and software-enables the local APIC. Interrupts stay off (no IDT): a message that arrives
 * sits in the APIC's IRR, which virtio_pci_msix_pending() reads. Returns 0, or -1 without MSI-X, -2 when
 * the device refuses the vector (reads back VIRTIO_MSI_NO_VECTOR). */
int virtio_pci_msix_setup(uint16_t entry, uint8_t apic_vector);
/* 1 when `apic_vector` is pending in local APIC 0's Interrupt Request Register (polled a while: the message
 * may arrive just after the used entry it announces). */
int virtio_pci_msix_pending(uint8_t apic_vector);

/* Port 0 output: queues `len` bytes at `data`, kicks, waits until the device consumed them. */
void virtio_console_write(const void *data, uint32_t len);
/* 1 once virtio_console_start succeeded. */
extern int virtio_console_ready;
/* Finds the device on the command line and brings up port 0's transmitq; 0 on success. */
int virtio_console_start(uint32_t multiboot_info);

/* put_char's path when the virtio console is up: buffers a line, then one virtio_console_write. */
void virtio_console_put(char c);
void virtio_console_flush(void);

void *memset(void *s, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

#endif
