/*
 * entry.S: the boot path shared by every tiny guest, from the multiboot v1 hand-off to C's kmain().
 *
 * Implements the Multiboot Specification 0.6.96, section 3.1 (the OS image header) and section 3.2
 * (machine state at entry: 32-bit protected mode, EAX = 0x2BADB002, EBX = physical address of the
 * multiboot information, paging off, interrupts off), and the long-mode switch of the Intel SDM vol. 3A
 * section 10.8.5 (load a GDT, CR4.PAE, CR3, EFER.LME, CR0.PG, far jump to a 64-bit code segment).
 * The page tables are data built at link time (.rept/.quad), not by a loop: on a software KVM every
 * kernel-mode instruction is emulated, so this path runs only about twenty instructions.
 * It owns the GDT (kernel and user segments), the identity map of the first 1 GiB and the boot stack.
 */

#define MULTIBOOT_HEADER_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS        0x00000002      /* bit 1: please fill mem_lower/mem_upper (and mmap) */

#define CR0_PE      0x00000001
#define CR0_PG      0x80000000
#define CR4_PAE     0x00000020
#define MSR_EFER    0xC0000080
#define EFER_LME    0x00000100

/* Page-table entry bits: present, writable, user (all levels, so the doctor guest's CPL3 code runs), 2 MiB. */
#define PTE_P_RW_US 0x7
#define PDE_2M      0x87
#define PDE_2M_UNCACHED 0x9F            /* PDE_2M with PWT and PCD: for MMIO */

#define SEL_KERNEL_CODE 0x08
#define SEL_KERNEL_DATA 0x10

/* Multiboot header: within the first 8 KiB of the file, 4-byte aligned (spec 3.1.1). No address
 * fields: the loader takes the addresses from the ELF program headers. */
    .section .multiboot, "a"
    .balign 4
    .long MULTIBOOT_HEADER_MAGIC
    .long MULTIBOOT_FLAGS
    .long -(MULTIBOOT_HEADER_MAGIC + MULTIBOOT_FLAGS)

    .section .text.entry, "ax"
    .code32
    .globl _start
_start:
    movl %eax, %edi                 /* kmain's first argument: the magic the loader passed */
    movl %ebx, %esi                 /* second argument: the multiboot information address */
    lgdtl gdt_descriptor
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $(CR0_PG | CR0_PE), %eax
    movl %eax, %cr0                 /* EFER.LMA is set now; CS is still the 32-bit segment */
    ljmpl $SEL_KERNEL_CODE, $long_mode

    .code64
long_mode:
    movl $SEL_KERNEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl $boot_stack_top, %esp      /* zero-extends into RSP; the image sits below 4 GiB */
    movl %edi, %edi                 /* the upper halves of RDI/RSI are undefined after the switch */
    movl %esi, %esi
    call kmain
halt:
    cli
    hlt
    jmp halt

/* GDT (SDM vol. 3A 3.4.5): the selectors are 0x08 kernel code, 0x10 kernel data, 0x1B user data,
 * 0x23 user code (user data precedes user code, the order SYSRET would expect). */
    .section .rodata.gdt, "a"
    .balign 16
    .globl gdt
gdt:
    .quad 0                         /* 0x00 null */
    .quad 0x00af9a000000ffff        /* 0x08 kernel code: 64-bit (L=1), DPL0, execute/read */
    .quad 0x00cf92000000ffff        /* 0x10 kernel data: DPL0, read/write, 4 GiB */
    .quad 0x00cff2000000ffff        /* 0x18 user data: DPL3, read/write, 4 GiB */
    .quad 0x00affa000000ffff        /* 0x20 user code: 64-bit (L=1), DPL3, execute/read */
gdt_end:
    .balign 8
    .word 0
gdt_descriptor:
    .word gdt_end - gdt - 1
    .long gdt

/* Page tables, initialised at link time: PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB (512 entries,
 * identity map of 0..1 GiB, which includes the MMIO test address 0x30000000), and PDPT[3] -> a second PD
 * for 3..4 GiB, the MMIO hole where the virtio-mmio register blocks live (cache disabled: PCD | PWT). */
    .section .pagetables, "aw"
    .balign 4096
pml4:
    .quad pdpt + PTE_P_RW_US
    .fill 511, 8, 0
pdpt:
    .quad page_directory + PTE_P_RW_US
    .fill 2, 8, 0
    .quad page_directory_high + PTE_P_RW_US
    .fill 508, 8, 0
page_directory:
    .set frame, 0
    .rept 512
    .quad (frame << 21) + PDE_2M
    .set frame, frame + 1
    .endr
page_directory_high:
    .set frame, 3 * 512
    .rept 512
    .quad (frame << 21) + PDE_2M_UNCACHED
    .set frame, frame + 1
    .endr

    .section .bss.stack, "aw", @nobits
    .balign 16
boot_stack:
    .skip 8192
boot_stack_top:
