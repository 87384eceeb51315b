/*
 * helper.c: the probe helper, a tiny static x86-64 Linux program that asks a process's questions for
 * `swiftlet compare --probe`: the CPU-level half of what the "probe" tiny guest (guest/tiny/probe.c) asks
 * from inside a VM. Busybox answers the operating-system half (guest/probe/probe.sh, in Sources/Compare).
 *
 * It prints "swiftlet-probe: KEY VALUE" lines, the keys of the tiny guest:
 *   cpu-vendor, hypervisor-bit, hypervisor-signature   CPUID leaves 0, 1 (ECX bit 31) and 0x40000000, executed
 *                                                      by this process: on a host or in a container that is the
 *                                                      host CPU's answer (CPUID does not trap at CPL3 unless
 *                                                      CPUID faulting is on); in a VM, the hypervisor's
 *   read-past-end ADDR signal N (SIGSEGV)              a child process reads the first page past its data
 *                                                      segment (the program break, brk(2)): nothing is mapped
 *                                                      there, the MMU faults and the kernel sends SIGSEGV
 *   port-io in 0x80 signal N (SIGSEGV)                 a child executes IN from port 0x80: user mode has no I/O
 *                                                      privilege (IOPL 0, no ioperm), the CPU raises #GP and the
 *                                                      kernel sends SIGSEGV
 *   cpl N                                              the privilege level it runs at (CS.RPL): 3, user mode
 * No libc: system calls by the x86-64 Linux convention (number in RAX; RDI, RSI, RDX, R10; the kernel
 * clobbers RCX and R11). Built by guest/build.sh with the toolchain's clang and lld, embedded in
 * Sources/CGuestImages as "probe-helper".
 */
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef long int64_t;

#define SYS_write 1
#define SYS_brk 12
#define SYS_fork 57
#define SYS_exit 60
#define SYS_wait4 61
#define SIGSEGV 11

static int64_t syscall4(int64_t n, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t ret;
    register int64_t r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}

/* One output line is assembled here and written with a single write(2) by end_line(), so a kernel message
 * about the faulting child (Linux logs segfaults on the console) cannot land in the middle of it. */
static char line[256];
static uint64_t line_length;

static void put_char(char c)
{
    if (line_length < sizeof line)
        line[line_length++] = c;
}

static void put_str(const char *s)
{
    while (*s)
        put_char(*s++);
}

static void end_line(void)
{
    put_char('\n');
    syscall4(SYS_write, 1, (int64_t)line, (int64_t)line_length, 0);
    line_length = 0;
}

static void put_hex(uint64_t value)
{
    static const char digits[] = "0123456789abcdef";
    int shift = 60;
    put_str("0x");
    while (shift > 28 && ((value >> shift) & 0xF) == 0)
        shift -= 4;             /* at least eight digits, like the tiny guest's put_hex32 */
    for (; shift >= 0; shift -= 4)
        put_char(digits[(value >> shift) & 0xF]);
}

static void put_dec(uint64_t value)
{
    char buffer[21];
    int n = 20;
    buffer[n] = 0;
    do {
        buffer[--n] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    put_str(buffer + n);
}

static void key(const char *name)
{
    put_str("swiftlet-probe: ");
    put_str(name);
    put_char(' ');
}

static void cpuid(uint32_t leaf, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static void put_register_chars(uint32_t r)
{
    for (int i = 0; i < 4; i++, r >>= 8)
        if (r & 0xFF)
            put_char((char)(r & 0xFF));
}

/* Runs `attempt` in a child process and reports how the child ended. */
static void in_child(void (*attempt)(uint64_t), uint64_t argument)
{
    int64_t pid = syscall4(SYS_fork, 0, 0, 0, 0);
    if (pid == 0) {
        attempt(argument);
        syscall4(SYS_exit, 0, 0, 0, 0);     /* survived: the access did not fault */
    }
    if (pid < 0) {
        put_str("not tried (fork failed)");
        end_line();
        return;
    }
    int status = 0;
    syscall4(SYS_wait4, pid, (int64_t)&status, 0, 0);
    if ((status & 0x7F) == 0) {
        put_str("no fault (exit status ");
        put_dec((uint64_t)((status >> 8) & 0xFF));
        put_str(")");
        end_line();
        return;
    }
    put_str("signal ");
    put_dec((uint64_t)(status & 0x7F));
    if ((status & 0x7F) == SIGSEGV)
        put_str(" (SIGSEGV)");
    end_line();
}

static void read_at(uint64_t address) { (void)*(volatile uint32_t *)address; }

static void port_in(uint64_t port)
{
    uint8_t value;
    __asm__ volatile("inb %w1, %0" : "=a"(value) : "Nd"((uint16_t)port));
}

static void probe(void)
{
    uint32_t r[4];
    cpuid(0, r);
    key("cpu-vendor");
    put_register_chars(r[1]);
    put_register_chars(r[3]);
    put_register_chars(r[2]);
    end_line();
    cpuid(1, r);
    int present = (r[2] >> 31) & 1;
    key("hypervisor-bit");
    put_str(present ? "1" : "0");
    end_line();
    key("hypervisor-signature");
    cpuid(0x40000000, r);
    if (present && (r[1] | r[2] | r[3])) {
        put_register_chars(r[1]);
        put_register_chars(r[2]);
        put_register_chars(r[3]);
    } else {
        put_str("none");
    }
    end_line();

    uint64_t end = (uint64_t)syscall4(SYS_brk, 0, 0, 0, 0);
    end = (end + 4095) & ~4095ul;
    key("read-past-end");
    put_hex(end);
    put_char(' ');
    in_child(read_at, end);

    key("port-io");
    put_str("in 0x80 ");
    in_child(port_in, 0x80);

    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    key("cpl");
    put_dec(cs & 3);
    end_line();
}

__attribute__((noreturn, used)) void helper_main(void)
{
    probe();
    syscall4(SYS_exit, 0, 0, 0, 0);
    __builtin_unreachable();
}

/* The kernel enters with RSP at argc, 16-byte aligned; a call leaves it as the ABI expects. */
__asm__(".globl _start\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    call helper_main\n"
        "    hlt\n");
