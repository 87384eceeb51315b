/*
 * interrupts.S: the interrupt entry points and the application-processor trampoline of the PC tiny guests
 * (timer, smp, echo), linked only into them.
 *
 * Interrupt entry (Intel SDM vol. 3A 7.14, "64-bit mode exception and interrupt handling"): 256 stubs, each
 * 16 bytes, push the vector number and jump to a common path that saves the registers C may clobber,
 * calls interrupt_dispatch(vector) in pc.c, restores them and returns with IRETQ. The CPU pushes an error
 * code for some exceptions; the dispatcher treats every exception as fatal, so the stack layout after it
 * does not matter. IDT entries point at isr_stubs + 16 * vector.
 *
 * AP trampoline (Intel MP spec 1.4 appendix B.4, "Application processor startup"): a STARTUP IPI with
 * vector 0x08 starts an AP in real mode at 0x0800:0000 (physical 0x8000), where pc.c copied these bytes. The
 * AP loads the kernel's GDT, turns on PAE, loads CR3 with the kernel's PML4, sets EFER.LME and then CR0.PE
 * and CR0.PG in one write (SDM vol. 3A 10.8.5), far-jumps to 64-bit code, takes a stack by its APIC ID and
 * calls ap_main(apic_id). Addresses inside the copy are 0x8000 + (label - ap_trampoline).
 */
#define TRAMPOLINE 0x8000
#define REL(label) (TRAMPOLINE + (label - ap_trampoline))

    .section .text.isr, "ax"
    .code64
    .balign 16
    .globl isr_stubs
isr_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    pushq $vector
    jmp isr_common
    .set vector, vector + 1
    .endr

isr_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq 72(%rsp), %rdi          /* the vector the stub pushed */
    call interrupt_dispatch
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $8, %rsp                /* the vector */
    iretq

    .section .rodata.trampoline, "a"
    .globl ap_trampoline, ap_trampoline_end
    .code16
ap_trampoline:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl REL(ap_gdt_descriptor)
    movl %cr4, %eax
    orl $0x20, %eax              /* CR4.PAE */
    movl %eax, %cr4
    movl REL(ap_cr3), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx       /* IA32_EFER */
    rdmsr
    orl $0x100, %eax             /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax        /* PG | PE: long mode, compatibility submode until the far jump */
    movl %eax, %cr0
    ljmpl $0x08, $ap_long_mode
    .balign 4
ap_gdt_descriptor:
    .word 0
    .long 0
    .balign 4
    .globl ap_cr3
ap_cr3:
    .long 0
ap_trampoline_end:

/* The trampoline's data is patched in the copy by pc.c: ap_gdt_descriptor (from the kernel's), ap_cr3. */
    .globl ap_gdt_descriptor_offset, ap_cr3_offset
    .set ap_gdt_descriptor_offset, ap_gdt_descriptor - ap_trampoline
    .set ap_cr3_offset, ap_cr3 - ap_trampoline

    .section .text.ap, "ax"
    .code64
ap_long_mode:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl $0xFEE00020, %eax       /* local APIC ID register: the ID in bits 31:24 */
    movl (%rax), %edi
    shrl $24, %edi
    movl %edi, %eax
    incl %eax
    shll $12, %eax               /* 4 KiB of stack per APIC ID */
    leaq ap_stacks(%rip), %rsp
    addq %rax, %rsp
    call ap_main
1:  cli
    hlt
    jmp 1b

    .section .bss.apstacks, "aw", @nobits
    .balign 16
ap_stacks:
    .skip 4096 * 65
