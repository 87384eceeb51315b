/*
 * ckvm.c: ioctl numbers and non-variadic wrappers for <linux/kvm.h>; see ckvm.h for the contract
 * (every wrapper returns the result or -errno). No logic lives here.
 */
#define _GNU_SOURCE
#include "ckvm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;
const unsigned long CKVM_IRQFD = KVM_IRQFD;
const unsigned long CKVM_SIGNAL_MSI = KVM_SIGNAL_MSI;
const unsigned long CKVM_RUN = KVM_RUN;
const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
const unsigned long CKVM_GET_CPUID2 = KVM_GET_CPUID2;
const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
const unsigned long CKVM_SET_MP_STATE = KVM_SET_MP_STATE;
const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;
const unsigned long CKVM_TRANSLATE = KVM_TRANSLATE;
const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
const unsigned long CKVM_SET_GUEST_DEBUG = KVM_SET_GUEST_DEBUG;
const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
const unsigned long CKVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
const unsigned long CKVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
const unsigned long CKVM_GET_XCRS = KVM_GET_XCRS;
const unsigned long CKVM_SET_XCRS = KVM_SET_XCRS;
const unsigned long CKVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
const unsigned long CKVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
const unsigned long CKVM_GET_PIT2 = KVM_GET_PIT2;
const unsigned long CKVM_SET_PIT2 = KVM_SET_PIT2;
const unsigned long CKVM_GET_CLOCK = KVM_GET_CLOCK;
const unsigned long CKVM_GET_XSAVE = KVM_GET_XSAVE;
const unsigned long CKVM_SET_XSAVE = KVM_SET_XSAVE;
const unsigned long CKVM_SET_CLOCK = KVM_SET_CLOCK;

int ckvm_ioctl_none(int fd, unsigned long request) {
    int r = ioctl(fd, request, 0);
    return r < 0 ? -errno : r;
}

int ckvm_ioctl_int(int fd, unsigned long request, unsigned long value) {
    int r = ioctl(fd, request, value);
    return r < 0 ? -errno : r;
}

int ckvm_ioctl_ptr(int fd, unsigned long request, void *argument) {
    int r = ioctl(fd, request, argument);
    return r < 0 ? -errno : r;
}

int ckvm_open(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ckvm_close(int fd) { return close(fd) < 0 ? -errno : 0; }

void *ckvm_mmap(size_t size, int fd, int *error) {
    void *p;
    if (fd >= 0)
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    else
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        *error = errno;
        return NULL;
    }
    *error = 0;
    return p;
}

void *ckvm_mmap_file_private(size_t size, int fd, long long offset, int *error) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, (off_t)offset);
    if (p == MAP_FAILED) {
        *error = errno;
        return NULL;
    }
    *error = 0;
    return p;
}

int ckvm_is_zero(const void *address, size_t size) {
    const uint64_t *words = address;
    size_t n = size / 8;
    for (size_t i = 0; i < n; i++)
        if (words[i])
            return 0;
    const unsigned char *tail = (const unsigned char *)address + n * 8;
    for (size_t i = 0; i < size % 8; i++)
        if (tail[i])
            return 0;
    return 1;
}

struct kvm_msr_list *ckvm_msr_list_alloc(uint32_t capacity) {
    struct kvm_msr_list *list = calloc(1, sizeof(*list) + (size_t)capacity * sizeof(uint32_t));
    if (list)
        list->nmsrs = capacity;
    return list;
}

void ckvm_msr_list_free(struct kvm_msr_list *list) { free(list); }

uint32_t ckvm_msr_list_index(const struct kvm_msr_list *list, uint32_t position) {
    return position < list->nmsrs ? list->indices[position] : 0;
}

int ckvm_munmap(void *address, size_t size) { return munmap(address, size) < 0 ? -errno : 0; }

int ckvm_madvise_hugepage(void *address, size_t size) {
    return madvise(address, size, MADV_HUGEPAGE) < 0 ? -errno : 0;
}

struct ckvm_io_exit ckvm_run_io(const struct kvm_run *run) {
    struct ckvm_io_exit io = {run->io.direction, run->io.size, run->io.port, run->io.count, run->io.data_offset};
    return io;
}

struct ckvm_mmio_exit ckvm_run_mmio(struct kvm_run *run) {
    struct ckvm_mmio_exit m = {run->mmio.phys_addr, run->mmio.data, run->mmio.len, run->mmio.is_write};
    return m;
}

uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *run) { return run->fail_entry.hardware_entry_failure_reason; }
uint32_t ckvm_run_fail_entry_cpu(const struct kvm_run *run) { return run->fail_entry.cpu; }
uint32_t ckvm_run_internal_suberror(const struct kvm_run *run) { return run->internal.suberror; }
uint32_t ckvm_run_internal_ndata(const struct kvm_run *run) { return run->internal.ndata; }
uint64_t ckvm_run_internal_data(const struct kvm_run *run, uint32_t index) {
    return index < 16 ? run->internal.data[index] : 0;
}
uint32_t ckvm_run_system_event_type(const struct kvm_run *run) { return run->system_event.type; }
uint64_t ckvm_run_hardware_exit_reason(const struct kvm_run *run) { return run->hw.hardware_exit_reason; }
uint8_t *ckvm_run_immediate_exit(struct kvm_run *run) { return &run->immediate_exit; }
struct kvm_debug_exit_arch ckvm_run_debug(const struct kvm_run *run) { return run->debug.arch; }

struct kvm_cpuid2 *ckvm_cpuid_alloc(uint32_t capacity) {
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + capacity * sizeof(struct kvm_cpuid_entry2));
    if (c) c->nent = capacity;
    return c;
}
void ckvm_cpuid_free(struct kvm_cpuid2 *cpuid) { free(cpuid); }
struct kvm_cpuid_entry2 *ckvm_cpuid_entry(struct kvm_cpuid2 *cpuid, uint32_t index) { return &cpuid->entries[index]; }

struct kvm_msrs *ckvm_msrs_alloc(uint32_t count) {
    struct kvm_msrs *m = calloc(1, sizeof(*m) + count * sizeof(struct kvm_msr_entry));
    if (m) m->nmsrs = count;
    return m;
}
void ckvm_msrs_free(struct kvm_msrs *msrs) { free(msrs); }
struct kvm_msr_entry *ckvm_msrs_entry(struct kvm_msrs *msrs, uint32_t index) { return &msrs->entries[index]; }

static void ckvm_kick_handler(int signal) { (void)signal; }

int ckvm_install_kick_handler(int signal) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ckvm_kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must return EINTR */
    return sigaction(signal, &sa, NULL) < 0 ? -errno : 0;
}

int ckvm_kick_thread(unsigned long thread, int signal) {
    int r = pthread_kill((pthread_t)thread, signal);
    return r == 0 ? 0 : -r;
}

int ckvm_sigrtmin(int offset) { return SIGRTMIN + offset; }

int ckvm_thread_signal_mask(int signal, int block) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signal);
    int r = pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
    return r == 0 ? 0 : -r;
}

int ckvm_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int ckvm_eventfd_signal(int fd) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(fd, &one, sizeof one);
        if (n == (ssize_t)sizeof one) return 0;
        if (n < 0 && errno == EINTR) continue;
        /* EAGAIN: the counter is at its maximum, so the reader will wake anyway. */
        return (n < 0 && errno != EAGAIN) ? -errno : 0;
    }
}

/* Per signal: the eventfd to signal, plus one (0: none). sig_atomic_t so the handler reads it safely. */
static volatile sig_atomic_t forwarded_signal_fds[NSIG];
static volatile sig_atomic_t last_forwarded_signal;

static void forward_signal(int signal) {
    int saved = errno;
    last_forwarded_signal = signal;
    int fd = signal > 0 && signal < NSIG ? forwarded_signal_fds[signal] - 1 : -1;
    if (fd >= 0) (void)ckvm_eventfd_signal(fd);
    errno = saved;
}

/* The action each forwarded signal had before, restored when forwarding ends. Touched only by the thread
 * that installs and removes forwarders, never by the handler. */
static struct sigaction previous_actions[NSIG];

int ckvm_forward_signal_to_eventfd(int signal, int fd) {
    if (signal <= 0 || signal >= NSIG) return -EINVAL;
    if (fd < 0) {
        if (forwarded_signal_fds[signal] == 0) return 0;
        if (sigaction(signal, &previous_actions[signal], NULL) != 0) return -errno;
        forwarded_signal_fds[signal] = 0;
        return 0;
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    sigemptyset(&action.sa_mask);
    action.sa_handler = forward_signal;
    action.sa_flags = SA_RESTART;
    int already = forwarded_signal_fds[signal] != 0;
    forwarded_signal_fds[signal] = fd + 1;
    if (sigaction(signal, &action, already ? NULL : &previous_actions[signal]) != 0) {
        if (!already) forwarded_signal_fds[signal] = 0;
        return -errno;
    }
    return 0;
}

int ckvm_last_forwarded_signal(void) { return last_forwarded_signal; }

int ckvm_signal_is_ignored(int signal) {
    struct sigaction current;
    if (sigaction(signal, NULL, &current) != 0) return -errno;
    return current.sa_handler == SIG_IGN;
}

long long ckvm_eventfd_drain(int fd) {
    uint64_t count = 0;
    for (;;) {
        ssize_t n = read(fd, &count, sizeof count);
        if (n == (ssize_t)sizeof count) return (long long)count;
        if (n < 0 && errno == EINTR) continue;
        return (n < 0 && errno == EAGAIN) ? 0 : -errno;
    }
}

int ckvm_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ckvm_epoll_add(int epoll_fd, int fd, uint64_t token) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = EPOLLIN;
    event.data.u64 = token;
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0 ? -errno : 0;
}

int ckvm_epoll_remove(int epoll_fd, int fd) {
    return epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

int ckvm_epoll_wait(int epoll_fd, uint64_t *tokens, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int n = epoll_wait(epoll_fd, events, capacity, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) tokens[i] = events[i].data.u64;
    return n;
}

uint64_t ckvm_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long ckvm_max_rss_kib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0) return -errno;
    return ru.ru_maxrss;
}

/* ckvm_defer_teardown (see ckvm.h). The child runs on its own static stack in the shared address space and
 * makes raw system calls only (no libc state: it shares the parent's TLS and errno). */
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static char teardown_stack[16384] __attribute__((aligned(16)));
static int teardown_keep[64];
static int teardown_keep_count;
static long teardown_parent;

static long raw_syscall(long n, long a, long b, long c)
{
    long result;
    __asm__ volatile("syscall" : "=a"(result) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return result;
}

static int teardown_child(void *unused)
{
    (void)unused;
    raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0);
    if (raw_syscall(SYS_getppid, 0, 0, 0) != teardown_parent)
        raw_syscall(SYS_exit, 0, 0, 0);            /* the parent is gone already */
    /* Close every descriptor but the kept ones (sorted ascending by ckvm_defer_teardown): close_range(2)
     * over each gap between them and after the last. */
    long next = 0;
    for (int i = 0; i <= teardown_keep_count; i++) {
        long end = i < teardown_keep_count ? teardown_keep[i] : 0x7FFFFFFFL;
        if (end > next)
            raw_syscall(436 /* close_range */, next, end - 1, 0);
        next = end + 1;
    }
    for (;;)
        raw_syscall(SYS_pause, 0, 0, 0);
    return 0;
}

int ckvm_defer_teardown(const int *keep, int count)
{
    if (count < 0 || count > 64)
        return -EINVAL;
    for (int i = 0; i < count; i++) {           /* insertion sort: a handful of descriptors */
        int j = i, fd = keep[i];
        while (j > 0 && teardown_keep[j - 1] > fd) {
            teardown_keep[j] = teardown_keep[j - 1];
            j--;
        }
        teardown_keep[j] = fd;
    }
    teardown_keep_count = count;
    teardown_parent = getpid();
    /* No CLONE_FILES: the child gets its own copy of the descriptor table (references to the same files). */
    int pid = clone(teardown_child, teardown_stack + sizeof teardown_stack, CLONE_VM | SIGCHLD, NULL);
    return pid < 0 ? -errno : pid;
}
