/*
 * syscalls.c: the "syscalls" tiny guest: enters user mode (CPL3), tries each way back into the kernel,
 * and prints on COM1 how each one arrived, one `syscalls: WAY -> ...` line per way and a summary.
 *
 * Implements, from the Intel SDM vol. 2B and vol. 3A and the AMD APM vol. 2/3: SYSCALL/SYSRET (STAR,
 * LSTAR, CSTAR, SFMASK, EFER.SCE; APM vol. 2 6.1.1, SDM vol. 2B "SYSCALL"), SYSENTER (SYSENTER_CS/ESP/EIP,
 * SDM vol. 2B "SYSENTER"), the 64-bit IDT and interrupt-gate delivery with a stack switch through the TSS's
 * RSP0 (SDM vol. 3A 6.14, 8.7), and IRETQ to an outer privilege level (SDM vol. 3A 6.14.3). It owns its own
 * GDT (laid out as STAR expects, with Linux's user selectors: 0x08 kernel code, 0x10 kernel data, 0x23 user
 * 32-bit code, 0x2B user data, 0x33 user 64-bit code, 0x38 TSS), the TSS, an IDT with a stub on all 256
 * vectors, and a 4 KiB page table for the first 2 MiB in which one page, the kernel entry page (LSTAR,
 * CSTAR and SYSENTER_EIP targets and the common arrival code), is supervisor-only: a fetch from it at
 * CPL3 faults.
 *
 * For each way the CPL0 driver calls enter_user(), which saves the callee-saved registers and RSP and goes
 * to a small CPL3 snippet with IRETQ (or SYSRETQ / SYSRETL for the "kernel to user" rows), RAX = 0x5ca1ab1e
 * and RCX = R11 = 0xc0ffee (poison) in user mode. Whatever gets control next, an IDT stub or one of the
 * syscall targets running at CPL0, records what arrived in `arrival` (entry point, vector, error code, CR2,
 * the pushed RIP/CS/RFLAGS/RSP/SS, its own CS, and RAX/RCX/RDX/R11 on arrival), reloads the saved kernel
 * RSP and returns from enter_user(). User code runs with RFLAGS = 0x402 (DF set, IF clear, so no interrupt
 * can arrive): SFMASK clears DF and IF, which shows whether SYSCALL's RFLAGS half happened.
 *
 * Line format (parsed by Tests/VMMTests/SyscallsGuestTests.swift; explained in docs/07-backends.md):
 *   syscalls: WAY -> #XX[ err=E][ cr2=A] at CPLn from cs=C rip=A[ user cs=C ss=S]   an exception
 *   syscalls: WAY -> vector 0xNN at CPLn from cs=C rip=A                         any other vector
 *   syscalls: WAY -> LSTAR|CSTAR|SYSENTER_EIP at CPLn cs=C[ rsp=S]                a syscall target ran
 * and for the SYSCALL ways also ` rcx=R r11=R rflags=F rax=V rsp=V`. Addresses print as names where they
 * match: insn (the way's instruction), next (the one after it), LSTAR, CSTAR, SYSENTER_EIP (and RSP in the
 * SYSENTER target as SYSENTER_ESP); RCX/R11 as next, rflags (the user RFLAGS), rflags+IF or kept (the
 * poison); RFLAGS as masked (user RFLAGS & ~SFMASK) or user, +RF when RF is set too (as in the image a
 * fault pushes); RAX and RSP as kept when unchanged. Anything else prints in hex. The ways, in order:
 * syscall64, syscall64-nxe (the same with EFER.NXE, so a #PF's error code carries I/D), syscall32
 * (compatibility mode, CS 0x23), int80 (a DPL3 gate), sysenter, int3, ud2, then iretq, sysretq and
 * sysretl, whose user code reads its own CS and SS and ends in ud2. The summary compares each way with
 * what the architecture says for the CPUID vendor (Intel: SYSCALL in compatibility mode is #UD, SYSENTER
 * reaches SYSENTER_EIP; AMD: the reverse). Ends with outl(0xf4, 0); an arrival outside a test prints a
 * line and exits with 2.
 *
 * Kernel code avoids what kvm_pvm's instruction emulator cannot run (no int3/int n at CPL0) and stays
 * short: every CPL0 instruction is emulated there (~1 µs each).
 */
#include "tiny.h"

#define SEL_KERNEL_CODE 0x08
#define SEL_USER32_CODE 0x23    /* STAR[63:48]: SYSRETL's CS; SYSRET's SS is this + 8 */
#define SEL_USER_DATA   0x2B
#define SEL_USER_CODE   0x33    /* STAR[63:48] + 16: SYSRETQ's CS */
#define SEL_TSS         0x38

#define MSR_EFER         0xC0000080u
#define MSR_STAR         0xC0000081u
#define MSR_LSTAR        0xC0000082u
#define MSR_CSTAR        0xC0000083u
#define MSR_SFMASK       0xC0000084u
#define MSR_SYSENTER_CS  0x174u
#define MSR_SYSENTER_ESP 0x175u
#define MSR_SYSENTER_EIP 0x176u
#define EFER_SCE 0x1ul           /* SYSCALL/SYSRET enabled */
#define EFER_NXE 0x800ul         /* no-execute enabled: #PF error codes then carry I/D (bit 4) */

#define USER_RFLAGS 0x402ul     /* DF and the reserved bit 1; IF clear */
#define SFMASK 0x47700ul        /* TF, IF, DF, IOPL, NT, AC: Linux's classic mask */
#define RFLAGS_IF 0x200ul
#define RFLAGS_RF 0x10000ul     /* resume flag: set in the RFLAGS image a fault pushes */
#define RAX_MAGIC 0x5ca1ab1eul
#define POISON 0xc0ffeeul       /* RCX and R11 in user mode before the instruction */
#define PTE_US 0x4ul

enum { ENTRY_NONE, ENTRY_IDT, ENTRY_LSTAR, ENTRY_CSTAR, ENTRY_SYSENTER };
enum { BY_IRETQ, BY_SYSRETQ, BY_SYSRETL };
enum { WAY_SYSCALL = 1, WAY_RETURN = 2, WAY_NXE = 4 };

/* What arrived in the kernel; written by the assembly below at these offsets. */
struct arrival {
    uint64_t entry;             /*   0: ENTRY_* */
    uint64_t vector;            /*   8: IDT only, as are error, rip, cs, cr2 */
    uint64_t error;             /*  16: the pushed error code, 0 for vectors without one */
    uint64_t rip;               /*  24 */
    uint64_t cs;                /*  32 */
    uint64_t rflags;            /*  40: pushed (IDT) or read in the syscall target */
    uint64_t rsp;               /*  48: pushed (IDT) or RSP in the syscall target */
    uint64_t ss;                /*  56 */
    uint64_t cr2;               /*  64 */
    uint64_t handler_cs;        /*  72: CS while the arrival code runs */
    uint64_t rax, rcx, rdx, r11;/*  80, 88, 96, 104: on arrival */
};
struct arrival arrival;
uint64_t kernel_rsp;            /* the driver's RSP inside enter_user(); 0 outside a test */

/* Defined in the assembly below. */
void enter_user(uint64_t rip, uint64_t cs, uint64_t ss, uint64_t how);
extern char kernel_entry_page[], entry_lstar[], entry_cstar[], entry_sysenter[], idt_stubs[];
extern char user_syscall64[], user_syscall64_next[], user_syscall32[], user_syscall32_next[];
extern char user_int80[], user_int80_next[], user_sysenter[], user_sysenter_next[];
extern char user_int3[], user_int3_next[], user_ud2[], user_ud2_next[], user_report_ud2[], user_report_next[];
extern char user_report[], user_stack_top[], sysenter_stack_top[], exception_stack_top[];
extern uint64_t low_page_table[512];

__asm__(
    /* The kernel entry page: supervisor-only once kmain has run (see use_low_page_table). Every path
     * ends in restore_kernel, except an arrival while no test runs (kernel_rsp 0): unexpected_arrival. */
    ".section .text.kernel_entry, \"ax\", @progbits\n"
    ".balign 4096\n"
    ".globl kernel_entry_page, entry_lstar, entry_cstar, entry_sysenter\n"
    "kernel_entry_page:\n"
    "entry_lstar:\n"
    "    movq %rax, arrival+80\n"
    "    movq $2, arrival\n"                    /* ENTRY_LSTAR */
    "    jmp syscall_common\n"
    "entry_cstar:\n"
    "    movq %rax, arrival+80\n"
    "    movq $3, arrival\n"                    /* ENTRY_CSTAR */
    "    jmp syscall_common\n"
    "entry_sysenter:\n"
    "    movq %rax, arrival+80\n"
    "    movq $4, arrival\n"                    /* ENTRY_SYSENTER */
    "syscall_common:\n"
    "    movq %rcx, arrival+88\n"
    "    movq %rdx, arrival+96\n"
    "    movq %r11, arrival+104\n"
    "    movq %rsp, arrival+48\n"
    "    movq kernel_rsp, %rsp\n"
    "    pushfq\n"
    "    popq arrival+40\n"
    "    movq %ss, %rax\n"
    "    movq %rax, arrival+56\n"
    "    jmp record_cs\n"
    /* IDT stubs jump here with the vector and an error code (or 0) pushed above the CPU's frame. */
    "idt_common:\n"
    "    movq %rax, arrival+80\n"
    "    movq %rcx, arrival+88\n"
    "    movq %rdx, arrival+96\n"
    "    movq %r11, arrival+104\n"
    "    movq $1, arrival\n"                    /* ENTRY_IDT */
    "    popq arrival+8\n"
    "    popq arrival+16\n"
    "    popq arrival+24\n"
    "    popq arrival+32\n"
    "    popq arrival+40\n"
    "    popq arrival+48\n"
    "    popq arrival+56\n"
    "    movq %cr2, %rax\n"
    "    movq %rax, arrival+64\n"
    "    cmpq $0, kernel_rsp\n"
    "    je unexpected_arrival\n"               /* a fault in the driver itself: C reports it */
    "record_cs:\n"
    "    movq %cs, %rax\n"
    "    movq %rax, arrival+72\n"
    "restore_kernel:\n"
    "    movq kernel_rsp, %rsp\n"
    "    movq $0, kernel_rsp\n"
    "    cld\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbp\n"
    "    popq %rbx\n"
    "    ret\n"                                 /* from enter_user() */
    ".balign 4096\n"

    /* enter_user(rip, cs, ss, how): to CPL3 by IRETQ (how 0), SYSRETQ (1) or SYSRETL (2). */
    ".text\n"
    ".globl enter_user\n"
    "enter_user:\n"
    "    pushq %rbx\n"
    "    pushq %rbp\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, kernel_rsp\n"
    "    movq $user_stack_top, %r8\n"
    "    movq $0x5ca1ab1e, %rax\n"              /* RAX_MAGIC */
    "    movq $0x402, %r11\n"                   /* USER_RFLAGS */
    "    cmpq $1, %rcx\n"
    "    je 1f\n"
    "    cmpq $2, %rcx\n"
    "    je 2f\n"
    "    pushq %rdx\n"
    "    pushq %r8\n"
    "    pushq %r11\n"
    "    pushq %rsi\n"
    "    pushq %rdi\n"
    "    movq $0xc0ffee, %rcx\n"                /* POISON */
    "    movq %rcx, %r11\n"
    "    iretq\n"
    "1:  movq %rdi, %rcx\n"
    "    movq %r8, %rsp\n"
    "    sysretq\n"
    "2:  movq %rdi, %rcx\n"
    "    movq %r8, %rsp\n"
    "    sysretl\n"

    /* One 16-byte stub per vector: an error code of 0 where the CPU pushes none, then the vector. */
    ".balign 16\n"
    ".globl idt_stubs\n"
    "idt_stubs:\n"
    ".set vector, 0\n"
    ".rept 256\n"
    "    .balign 16\n"
    "    .set error_code, (vector == 8) || (vector >= 10 && vector <= 14) || (vector == 17)\n"
    "    .set error_code, error_code || (vector == 21) || (vector == 29) || (vector == 30)\n"
    "    .if !error_code\n"
    "    pushq $0\n"
    "    .endif\n"
    "    pushq $vector\n"
    "    jmp idt_common\n"
    "    .set vector, vector + 1\n"
    ".endr\n"

    /* The CPL3 snippets: each way's instruction, then ud2 in case it falls through. */
    ".balign 16\n"
    ".globl user_syscall64, user_syscall64_next, user_syscall32, user_syscall32_next\n"
    ".globl user_int80, user_int80_next, user_sysenter, user_sysenter_next, user_int3, user_int3_next\n"
    ".globl user_ud2, user_ud2_next, user_report, user_report_ud2, user_report_next\n"
    "user_syscall64: syscall\n"
    "user_syscall64_next: ud2\n"
    ".code32\n"
    "user_syscall32: syscall\n"
    "user_syscall32_next: ud2\n"
    ".code64\n"
    "user_int80: int $0x80\n"
    "user_int80_next: ud2\n"
    "user_sysenter: sysenter\n"
    "user_sysenter_next: ud2\n"
    "user_int3: int3\n"
    "user_int3_next: ud2\n"
    "user_ud2: ud2\n"
    "user_ud2_next: ud2\n"
    /* Same bytes in 64-bit and compatibility mode: mov %cs, %eax; mov %ss, %edx; ud2. */
    "user_report: movl %cs, %eax\n"
    "    movl %ss, %edx\n"
    "user_report_ud2: ud2\n"
    "user_report_next: ud2\n"

    /* The first 2 MiB in 4 KiB pages, all present, writable and user; kmain clears U/S on the entry page. */
    ".section .data.low_page_table, \"aw\", @progbits\n"
    ".balign 4096\n"
    ".globl low_page_table\n"
    "low_page_table:\n"
    ".set frame, 0\n"
    ".rept 512\n"
    "    .quad (frame << 12) + 7\n"
    "    .set frame, frame + 1\n"
    ".endr\n"

    ".section .bss.syscalls_stacks, \"aw\", @nobits\n"
    ".balign 16\n"
    "    .skip 4096\n"
    ".globl user_stack_top\n"
    "user_stack_top:\n"
    "    .skip 4096\n"
    ".globl exception_stack_top\n"
    "exception_stack_top:\n"
    "    .skip 256\n"
    ".globl sysenter_stack_top\n"
    "sysenter_stack_top:\n"
    ".text\n");

_Static_assert(__builtin_offsetof(struct arrival, r11) == 104, "the assembly's offsets");

/* GDT: the order SYSCALL/SYSRET need (STAR), then a 16-byte TSS descriptor filled in at run time. */
static uint64_t gdt[9] __attribute__((aligned(16))) = {
    0,
    0x00af9a000000ffff,         /* 0x08 kernel code, 64-bit */
    0x00cf92000000ffff,         /* 0x10 kernel data (SYSCALL's SS: STAR[47:32] + 8) */
    0,                          /* 0x18 unused */
    0x00cffa000000ffff,         /* 0x23 user code, 32-bit (compatibility mode) */
    0x00cff2000000ffff,         /* 0x2B user data */
    0x00affa000000ffff,         /* 0x33 user code, 64-bit */
};

/* 64-bit TSS (SDM vol. 3A 8.7): only RSP0 matters; the I/O map base (offset 102) points past the limit. */
static uint32_t tss[26] __attribute__((aligned(16)));

struct gate { uint64_t low, high; };
static struct gate idt[256] __attribute__((aligned(16)));

struct table_register { uint16_t limit; uint64_t base; } __attribute__((packed));

static inline void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

static void set_up_descriptor_tables(void)
{
    uint64_t base = (uint64_t)tss;
    tss[1] = (uint32_t)(uint64_t)exception_stack_top;  /* RSP0, low and high halves */
    tss[25] = (uint32_t)sizeof tss << 16;
    gdt[7] = (sizeof tss - 1) | (base & 0xFFFFFF) << 16 | 0x89ul << 40 | (base >> 24 & 0xFF) << 56;
    gdt[8] = base >> 32;
    for (uint64_t vector = 0; vector < 256; vector++) {
        uint64_t stub = (uint64_t)idt_stubs + 16 * vector;
        uint64_t dpl = (vector == 3 || vector == 0x80) ? 3 : 0;   /* int3 and int $0x80 are allowed from CPL3 */
        idt[vector].low = (stub & 0xFFFF) | SEL_KERNEL_CODE << 16 | (0x8Eul | dpl << 5) << 40 |
                          (stub >> 16 & 0xFFFF) << 48;
    }
    struct table_register gdtr = { sizeof gdt - 1, (uint64_t)gdt }, idtr = { sizeof idt - 1, (uint64_t)idt };
    __asm__ volatile("lgdt %0\n\tlidt %1\n\tltr %w2" : : "m"(gdtr), "m"(idtr), "r"(SEL_TSS) : "memory");
    /* DPL3 data in DS/ES/FS/GS, so IRETQ to CPL3 keeps them and compatibility-mode code can use them. */
    __asm__ volatile("movl %0, %%ds\n\tmovl %0, %%es\n\tmovl %0, %%fs\n\tmovl %0, %%gs" : : "r"(SEL_USER_DATA));
}

/* The first 2 MiB through low_page_table instead of entry.S's 2 MiB page, the entry page supervisor-only. */
static void use_low_page_table(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml4 = (uint64_t *)(cr3 & ~0xFFFul);
    uint64_t *pdpt = (uint64_t *)(pml4[0] & ~0xFFFul);
    uint64_t *pd = (uint64_t *)(pdpt[0] & ~0xFFFul);
    low_page_table[(uint64_t)kernel_entry_page >> 12] &= ~PTE_US;
    pd[0] = (uint64_t)low_page_table | 7;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

static void set_up_msrs(void)
{
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
    wrmsr(MSR_STAR, (uint64_t)SEL_USER32_CODE << 48 | (uint64_t)SEL_KERNEL_CODE << 32);
    wrmsr(MSR_LSTAR, (uint64_t)entry_lstar);
    wrmsr(MSR_CSTAR, (uint64_t)entry_cstar);
    wrmsr(MSR_SFMASK, SFMASK);
    wrmsr(MSR_SYSENTER_CS, SEL_KERNEL_CODE);
    wrmsr(MSR_SYSENTER_ESP, (uint64_t)sysenter_stack_top);
    wrmsr(MSR_SYSENTER_EIP, (uint64_t)entry_sysenter);
}

/* How one way should arrive: an entry point, or ENTRY_IDT and a vector. */
struct expectation { uint8_t entry, vector; };

struct way {
    const char *name;
    uint8_t kind;               /* WAY_SYSCALL: print the register half; WAY_RETURN: print what user code saw;
                                   WAY_NXE: with EFER.NXE set */
    uint8_t how;                /* BY_IRETQ, BY_SYSRETQ, BY_SYSRETL */
    uint8_t cs;                 /* the user code segment the snippet runs in */
    const char *rip, *insn, *next;
    struct expectation amd, intel;
};

static const struct way ways[] = {
    { "syscall64", WAY_SYSCALL, BY_IRETQ, SEL_USER_CODE, user_syscall64, user_syscall64, user_syscall64_next,
      { ENTRY_LSTAR, 0 }, { ENTRY_LSTAR, 0 } },
    { "syscall64-nxe", WAY_SYSCALL | WAY_NXE, BY_IRETQ, SEL_USER_CODE,
      user_syscall64, user_syscall64, user_syscall64_next,
      { ENTRY_LSTAR, 0 }, { ENTRY_LSTAR, 0 } },
    { "syscall32", WAY_SYSCALL, BY_IRETQ, SEL_USER32_CODE, user_syscall32, user_syscall32, user_syscall32_next,
      { ENTRY_CSTAR, 0 }, { ENTRY_IDT, 6 } },
    { "int80", 0, BY_IRETQ, SEL_USER_CODE, user_int80, user_int80, user_int80_next,
      { ENTRY_IDT, 0x80 }, { ENTRY_IDT, 0x80 } },
    { "sysenter", 0, BY_IRETQ, SEL_USER_CODE, user_sysenter, user_sysenter, user_sysenter_next,
      { ENTRY_IDT, 6 }, { ENTRY_SYSENTER, 0 } },
    { "int3", 0, BY_IRETQ, SEL_USER_CODE, user_int3, user_int3, user_int3_next,
      { ENTRY_IDT, 3 }, { ENTRY_IDT, 3 } },
    { "ud2", 0, BY_IRETQ, SEL_USER_CODE, user_ud2, user_ud2, user_ud2_next,
      { ENTRY_IDT, 6 }, { ENTRY_IDT, 6 } },
    { "iretq", WAY_RETURN, BY_IRETQ, SEL_USER_CODE, user_report, user_report_ud2, user_report_next,
      { ENTRY_IDT, 6 }, { ENTRY_IDT, 6 } },
    { "sysretq", WAY_RETURN, BY_SYSRETQ, SEL_USER_CODE, user_report, user_report_ud2, user_report_next,
      { ENTRY_IDT, 6 }, { ENTRY_IDT, 6 } },
    { "sysretl", WAY_RETURN, BY_SYSRETL, SEL_USER32_CODE, user_report, user_report_ud2, user_report_next,
      { ENTRY_IDT, 6 }, { ENTRY_IDT, 6 } },
};
#define WAY_COUNT (sizeof ways / sizeof ways[0])

static void put_hex(uint64_t value)
{
    static const char digits[] = "0123456789abcdef";
    int shift = 60;
    while (shift > 0 && !(value >> shift & 0xF))
        shift -= 4;
    put_str("0x");
    for (; shift >= 0; shift -= 4)
        put_char(digits[value >> shift & 0xF]);
}

static void put_address(const struct way *w, uint64_t value)
{
    if (value == (uint64_t)w->insn) put_str("insn");
    else if (value == (uint64_t)w->next) put_str("next");
    else if (value == (uint64_t)entry_lstar) put_str("LSTAR");
    else if (value == (uint64_t)entry_cstar) put_str("CSTAR");
    else if (value == (uint64_t)entry_sysenter) put_str("SYSENTER_EIP");
    else put_hex(value);
}

static void put_register(const struct way *w, const char *name, uint64_t value)
{
    put_str(name);
    if (value == (uint64_t)w->next) put_str("next");
    else if (value == USER_RFLAGS) put_str("rflags");
    else if (value == (USER_RFLAGS | RFLAGS_IF)) put_str("rflags+IF");
    else if (value == POISON) put_str("kept");
    else put_hex(value);
}

static int pushes_error_code(uint64_t vector)
{
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 ||
           vector == 29 || vector == 30;
}

static void put_vector(uint64_t vector)
{
    static const char names[] = "DEDBNIBPOFBRUDNMDF..TSNPSSGPPF..MFACMCXMVECP";
    if (vector < 22 && names[2 * vector] != '.' && vector != 2) {
        put_char('#');
        put_char(names[2 * vector]);
        put_char(names[2 * vector + 1]);
    } else {
        put_str("vector ");
        put_hex(vector);
    }
}

static void report(const struct way *w)
{
    const struct arrival *a = &arrival;
    put_str("syscalls: ");
    put_str(w->name);
    put_str(" -> ");
    if (a->entry == ENTRY_IDT) {
        put_vector(a->vector);
        if (pushes_error_code(a->vector)) { put_str(" err="); put_hex(a->error); }
        if (a->vector == 14) { put_str(" cr2="); put_address(w, a->cr2); }
        put_str(" at CPL"); put_dec(a->handler_cs & 3);
        put_str(" from cs="); put_hex(a->cs & 0xFFFF);
        put_str(" rip="); put_address(w, a->rip);
        if ((w->kind & WAY_RETURN) && a->vector == 6 && a->rip == (uint64_t)w->insn) {
            put_str(" user cs="); put_hex(a->rax & 0xFFFF);
            put_str(" ss="); put_hex(a->rdx & 0xFFFF);
        }
    } else {
        put_str(a->entry == ENTRY_LSTAR ? "LSTAR" : a->entry == ENTRY_CSTAR ? "CSTAR" : "SYSENTER_EIP");
        put_str(" at CPL"); put_dec(a->handler_cs & 3);
        put_str(" cs="); put_hex(a->handler_cs & 0xFFFF);
        if (a->entry == ENTRY_SYSENTER) {
            put_str(" rsp=");
            if (a->rsp == (uint64_t)sysenter_stack_top) put_str("SYSENTER_ESP"); else put_hex(a->rsp);
        }
    }
    if ((w->kind & WAY_SYSCALL)) {
        put_register(w, " rcx=", a->rcx);
        put_register(w, " r11=", a->r11);
        put_str(" rflags=");
        if (a->rflags == (USER_RFLAGS & ~SFMASK)) put_str("masked");
        else if (a->rflags == ((USER_RFLAGS & ~SFMASK) | RFLAGS_RF)) put_str("masked+RF");
        else if (a->rflags == USER_RFLAGS) put_str("user");
        else if (a->rflags == (USER_RFLAGS | RFLAGS_RF)) put_str("user+RF");
        else put_hex(a->rflags);
        put_str(" rax=");
        if (a->rax == RAX_MAGIC) put_str("kept"); else put_hex(a->rax);
        put_str(" rsp=");
        if (a->rsp == (uint64_t)user_stack_top) put_str("kept"); else put_hex(a->rsp);
    }
    put_char('\n');
}

/* Did the way arrive as the manuals say for this vendor? Entry point or vector, at CPL0, from the user
 * code segment; SYSCALL with RCX = the next instruction; the return rows in the intended code segment. */
static int architectural(const struct way *w, int intel)
{
    const struct arrival *a = &arrival;
    const struct expectation *e = intel ? &w->intel : &w->amd;
    if (a->entry != e->entry || (a->handler_cs & 3) != 0)
        return 0;
    if (a->entry == ENTRY_IDT)
        return a->vector == e->vector && a->cs == w->cs &&
               (!(w->kind & WAY_RETURN) || (a->rip == (uint64_t)w->insn && (a->rax & 0xFFFF) == w->cs));
    return a->entry == ENTRY_SYSENTER || (a->rcx == (uint64_t)w->next && a->r11 == USER_RFLAGS);
}

void unexpected_arrival(void)
{
    put_str("syscalls: unexpected arrival outside a test: ");
    put_vector(arrival.vector);
    put_str(" rip=");
    put_hex(arrival.rip);
    put_str(" cr2=");
    put_hex(arrival.cr2);
    put_char('\n');
    debug_exit(2);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    (void)magic;
    (void)mbi;
    put_line("Swiftlet tiny guest: syscalls, each way from CPL3 into the kernel and back to CPL3");
    uint32_t r[4];
    cpuid(0, r);
    uint32_t vendor[4] = { r[1], r[3], r[2], 0 };
    int intel = r[1] == 0x756e6547;             /* "Genu" of GenuineIntel; AMD and Hygon follow AMD */
    put_str("syscalls: cpu vendor ");
    put_line((const char *)vendor);

    set_up_descriptor_tables();
    use_low_page_table();
    set_up_msrs();

    const char *differ[WAY_COUNT];
    unsigned matches = 0, differences = 0;
    for (unsigned i = 0; i < WAY_COUNT; i++) {
        const struct way *w = &ways[i];
        arrival.entry = ENTRY_NONE;
        if (w->kind & WAY_NXE)
            wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
        enter_user((uint64_t)w->rip, w->cs, SEL_USER_DATA, w->how);
        if (w->kind & WAY_NXE)
            wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~EFER_NXE);
        report(w);
        if (architectural(w, intel)) matches++;
        else differ[differences++] = w->name;
    }
    put_str("syscalls: summary: ");
    put_dec(WAY_COUNT);
    put_str(" ways, ");
    put_dec(matches);
    put_str(" as the architecture says for ");
    put_str((const char *)vendor);
    if (differences) {
        put_str("; differ:");
        for (unsigned i = 0; i < differences; i++) { put_char(' '); put_str(differ[i]); }
    }
    put_char('\n');
    debug_exit(0);
}
