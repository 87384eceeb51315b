/*
 * firmware.S: Swiftlet's reset-vector firmware, a 64 KiB ROM mapped at guest-physical 0xFFFF0000.
 *
 * At reset an x86 CPU runs in real mode with CS selector 0xF000, CS base 0xFFFF0000 and IP 0xFFF0
 * (SDM vol. 3A 10.1.4, "First Instruction Executed"), so the last 16 bytes of this ROM are the reset
 * vector. The firmware switches to 32-bit protected mode (SDM vol. 3A 10.9.1: load a GDT, set CR0.PE,
 * far jump, load data segments), then reads the hand-off block the VMM left at guest-physical 0x500:
 *     struct { uint32_t magic;   // 0x54465753, the bytes 'S','W','F','T'
 *              uint32_t entry;   // 32-bit physical entry point of a multiboot kernel
 *              uint32_t mbi; }   // physical address of its multiboot information
 * and enters the kernel in the machine state of Multiboot 0.6.96 section 3.2 (EAX = 0x2BADB002,
 * EBX = mbi, flat 32-bit segments, paging and interrupts off). Without a hand-off block it says so on
 * COM1 and ends the VM through isa-debug-exit value 0x7F (QEMU exit status 255).
 * No stack is used: RAM is touched only to read the hand-off block.
 */

#define ROM_BASE        0xFFFF0000
#define HANDOFF         0x500
#define HANDOFF_MAGIC   0x54465753
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002
#define COM1_THR        0x3F8
#define COM1_LSR        0x3FD
#define DEBUG_EXIT_PORT 0xF4
#define SEL_CODE        0x08
#define SEL_DATA        0x10

/* Sends the NUL-terminated string at \label to COM1, polling LSR bit 5 (THR empty) before each byte. */
.macro print label
    movl $\label, %esi
    movw $COM1_LSR, %dx
1:  inb %dx, %al
    testb $0x20, %al
    jz 1b
    movb (%esi), %al
    movb $(COM1_THR & 0xFF), %dl
    outb %al, %dx
    incl %esi
    movb $(COM1_LSR & 0xFF), %dl
    cmpb $0, (%esi)
    jne 1b
.endm

    .section .rom, "ax"
    .code16
rom_start:
real_mode_entry:
    cli
    cld
    lgdtl %cs:(gdt_descriptor - rom_start)   /* CS base is 0xFFFF0000, so CS-relative offsets reach the ROM */
    movl %cr0, %eax
    orb $1, %al                             /* CR0.PE */
    movl %eax, %cr0
    ljmpl $SEL_CODE, $protected_mode_entry  /* 0x66 0xEA: 32-bit offset, flat code segment */

    .code32
protected_mode_entry:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    cmpl $HANDOFF_MAGIC, HANDOFF
    jne no_handoff
    print banner
    movl HANDOFF + 8, %ebx
    movl $MULTIBOOT_BOOTLOADER_MAGIC, %eax
    jmp *HANDOFF + 4

no_handoff:
    print no_handoff_message
    movl $0x7F, %eax
    movw $DEBUG_EXIT_PORT, %dx
    outl %eax, %dx
1:  hlt
    jmp 1b

banner:
    .asciz "swiftlet firmware: real mode -> protected mode, entering kernel\n"
no_handoff_message:
    .asciz "firmware: no kernel handoff at 0x500\n"

/* GDT: null, flat 32-bit code (0x08), flat data (0x10); the same selectors multiboot kernels expect. */
    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
gdt_end:
gdt_descriptor:
    .word gdt_end - gdt - 1
    .long gdt

/* Reset vector: 16 bytes at 0xFFFFFFF0, a near jump back to the start of the ROM. IP wraps at 64 KiB,
 * so the rel16 displacement from 0xFFF3 to 0x0000 is +0x000D; spelled out because assemblers reject a
 * displacement of -0xFFF3. */
    .org 0xFFF0, 0          /* zero padding: guest/build.sh leaves zero runs out of the embedded table */
    .code16
    .globl reset_vector
reset_vector:
    .byte 0xE9                                          /* jmp rel16 */
    .word (real_mode_entry - (reset_vector + 3)) & 0xFFFF
    .org 0x10000, 0
