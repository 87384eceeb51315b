/*
 * ckvm.h: the thin C shim over <linux/kvm.h> (Debian's linux-libc-dev). It is the only code in Swiftlet
 * that includes the kernel's KVM header.
 *
 * Swift imports the structs of <linux/kvm.h> but not the function-like _IO/_IOR/_IOW macros that encode
 * ioctl request numbers, and it cannot call the variadic ioctl(2) with a typed pointer cleanly. So this
 * shim exports every request Swiftlet uses as a constant, and one non-variadic wrapper per ioctl.
 * Contract: each wrapper returns the ioctl's non-negative result, or -errno on failure. No logic lives here.
 * Reference: Documentation/virt/kvm/api.rst (the KVM API).
 */
#ifndef SWIFTLET_CKVM_H
#define SWIFTLET_CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stddef.h>

/* ioctl request numbers (system, VM and vCPU). */
extern const unsigned long CKVM_GET_API_VERSION;
extern const unsigned long CKVM_CREATE_VM;
extern const unsigned long CKVM_CHECK_EXTENSION;
extern const unsigned long CKVM_GET_VCPU_MMAP_SIZE;
extern const unsigned long CKVM_GET_SUPPORTED_CPUID;
extern const unsigned long CKVM_SET_USER_MEMORY_REGION;
extern const unsigned long CKVM_CREATE_VCPU;
extern const unsigned long CKVM_SET_TSS_ADDR;
extern const unsigned long CKVM_SET_IDENTITY_MAP_ADDR;
extern const unsigned long CKVM_CREATE_IRQCHIP;
extern const unsigned long CKVM_CREATE_PIT2;
extern const unsigned long CKVM_IRQ_LINE;
extern const unsigned long CKVM_IOEVENTFD;
extern const unsigned long CKVM_IRQFD;
extern const unsigned long CKVM_SIGNAL_MSI;
extern const unsigned long CKVM_RUN;
extern const unsigned long CKVM_GET_REGS;
extern const unsigned long CKVM_SET_REGS;
extern const unsigned long CKVM_GET_SREGS;
extern const unsigned long CKVM_SET_SREGS;
extern const unsigned long CKVM_SET_CPUID2;
extern const unsigned long CKVM_GET_CPUID2;
extern const unsigned long CKVM_SET_MSRS;
extern const unsigned long CKVM_GET_VCPU_EVENTS;
extern const unsigned long CKVM_SET_VCPU_EVENTS;
extern const unsigned long CKVM_SET_FPU;
extern const unsigned long CKVM_GET_FPU;
extern const unsigned long CKVM_SET_LAPIC;
extern const unsigned long CKVM_GET_LAPIC;
extern const unsigned long CKVM_SET_MP_STATE;
extern const unsigned long CKVM_GET_MP_STATE;
extern const unsigned long CKVM_TRANSLATE;
extern const unsigned long CKVM_GET_MSRS;
extern const unsigned long CKVM_SET_GUEST_DEBUG;
/* Snapshot and restore (docs/10-snapshots.md). */
extern const unsigned long CKVM_GET_MSR_INDEX_LIST;
extern const unsigned long CKVM_GET_DEBUGREGS;
extern const unsigned long CKVM_SET_DEBUGREGS;
extern const unsigned long CKVM_GET_XCRS;
extern const unsigned long CKVM_SET_XCRS;
extern const unsigned long CKVM_GET_IRQCHIP;
extern const unsigned long CKVM_SET_IRQCHIP;
extern const unsigned long CKVM_GET_PIT2;
extern const unsigned long CKVM_SET_PIT2;
extern const unsigned long CKVM_GET_CLOCK;
extern const unsigned long CKVM_GET_XSAVE;
extern const unsigned long CKVM_SET_XSAVE;
extern const unsigned long CKVM_SET_CLOCK;

/* ioctl without an argument, with an integer argument, and with a pointer argument.
 * Each returns the result (>= 0) or -errno. */
int ckvm_ioctl_none(int fd, unsigned long request);
int ckvm_ioctl_int(int fd, unsigned long request, unsigned long value);
int ckvm_ioctl_ptr(int fd, unsigned long request, void *argument);

/* open("/dev/kvm"-like path, O_RDWR | O_CLOEXEC): the fd or -errno. */
int ckvm_open(const char *path);
/* close(fd): 0 or -errno. */
int ckvm_close(int fd);

/* mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0) for the vCPU's kvm_run page, or
 * mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) when fd < 0
 * (guest RAM). Returns the address, or NULL with *error set to errno. */
void *ckvm_mmap(size_t size, int fd, int *error);
/* munmap: 0 or -errno. */
int ckvm_munmap(void *address, size_t size);
/* madvise(MADV_DONTDUMP | MADV_MERGEABLE-free hint): 0 or -errno. Used to tell the kernel RAM is huge-page friendly. */
int ckvm_madvise_hugepage(void *address, size_t size);

/* kvm_run exit payload accessors (the payload is a union Swift cannot name conveniently). */
struct ckvm_io_exit { uint8_t direction; uint8_t size; uint16_t port; uint32_t count; uint64_t data_offset; };
struct ckvm_io_exit ckvm_run_io(const struct kvm_run *run);
struct ckvm_mmio_exit { uint64_t phys_addr; uint8_t *data; uint32_t len; uint8_t is_write; };
struct ckvm_mmio_exit ckvm_run_mmio(struct kvm_run *run);
uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *run);
uint32_t ckvm_run_fail_entry_cpu(const struct kvm_run *run);
uint32_t ckvm_run_internal_suberror(const struct kvm_run *run);
uint32_t ckvm_run_internal_ndata(const struct kvm_run *run);
uint64_t ckvm_run_internal_data(const struct kvm_run *run, uint32_t index);
uint32_t ckvm_run_system_event_type(const struct kvm_run *run);
uint64_t ckvm_run_hardware_exit_reason(const struct kvm_run *run);
uint8_t *ckvm_run_immediate_exit(struct kvm_run *run);
/* KVM_EXIT_DEBUG's payload (struct kvm_debug_exit_arch on x86: exception vector, pc, dr6, dr7). */
struct kvm_debug_exit_arch ckvm_run_debug(const struct kvm_run *run);

/* struct kvm_cpuid2 with room for `capacity` entries, zeroed, nent = capacity; free with ckvm_cpuid_free. */
struct kvm_cpuid2 *ckvm_cpuid_alloc(uint32_t capacity);
void ckvm_cpuid_free(struct kvm_cpuid2 *cpuid);
struct kvm_cpuid_entry2 *ckvm_cpuid_entry(struct kvm_cpuid2 *cpuid, uint32_t index);

/* struct kvm_msrs with room for `count` entries; free with ckvm_msrs_free. */
struct kvm_msrs *ckvm_msrs_alloc(uint32_t count);
void ckvm_msrs_free(struct kvm_msrs *msrs);
struct kvm_msr_entry *ckvm_msrs_entry(struct kvm_msrs *msrs, uint32_t index);

/* struct kvm_msr_list with room for `capacity` indices (nmsrs = capacity); free with free(). */
struct kvm_msr_list *ckvm_msr_list_alloc(uint32_t capacity);
void ckvm_msr_list_free(struct kvm_msr_list *list);
uint32_t ckvm_msr_list_index(const struct kvm_msr_list *list, uint32_t position);

/* mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_NORESERVE, fd, offset): a copy-on-write view of a
 * file (a snapshot's guest memory: pages load on first touch, writes stay private). The address, or NULL
 * with *error set to errno. */
void *ckvm_mmap_file_private(size_t size, int fd, long long offset, int *error);

/* 1 if the `size` bytes at `address` are all zero, else 0 (a snapshot leaves zero pages out of its file). */
int ckvm_is_zero(const void *address, size_t size);

/* Thread kick: install a no-op handler for `signal` (without SA_RESTART) so that pthread_kill interrupts
 * KVM_RUN with EINTR; send it to a thread. Both return 0 or -errno. */
int ckvm_install_kick_handler(int signal);
int ckvm_kick_thread(unsigned long thread, int signal);
/* The SIGRTMIN + offset value (a macro in glibc). */
int ckvm_sigrtmin(int offset);
/* Block or unblock `signal` in the calling thread: 0 or -errno. */
int ckvm_thread_signal_mask(int signal, int block);

/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): the fd or -errno. The fds behind KVM_IOEVENTFD and KVM_IRQFD
 * (Swift's Glibc module does not export eventfd). */
int ckvm_eventfd(void);
/* Adds 1 to an eventfd's counter (signals it): 0 or -errno. */
int ckvm_eventfd_signal(int fd);
/* Reads and clears an eventfd's counter: the count (>= 0; 0 if it was not signalled) or -errno. */
long long ckvm_eventfd_drain(int fd);

/* Forward a signal to an eventfd: installs a handler (SA_RESTART) for `signal` whose only acts are to
 * note the signal's number and ckvm_eventfd_signal(fd), so a thread that watches the eventfd learns of the
 * signal without signal masks (SIGWINCH for the virtio console's size; SIGTERM, SIGINT and SIGHUP for a
 * clean stop of the VM). Each signal has its own fd; fd < 0 puts back the action the signal had before. 0 or -errno.
 * ckvm_last_forwarded_signal: the number of the last signal forwarded (0: none yet). */
int ckvm_forward_signal_to_eventfd(int signal, int fd);
int ckvm_last_forwarded_signal(void);
/* 1 if `signal` is ignored (SIG_IGN: nohup's SIGHUP, a background job's SIGINT), 0 if not, or -errno. */
int ckvm_signal_is_ignored(int signal);

/* epoll for the device thread (Swift's Glibc module does not export it, and struct epoll_event is packed).
 * ckvm_epoll_create: epoll_create1(EPOLL_CLOEXEC), the fd or -errno.
 * ckvm_epoll_add: watch `fd` for input (EPOLLIN), reporting `token`: 0 or -errno.
 * ckvm_epoll_remove: stop watching `fd`: 0 or -errno.
 * ckvm_epoll_wait: waits up to timeout_ms (-1: forever); stores up to `capacity` tokens of ready fds in
 * `tokens` and returns how many, or -errno (-EINTR when a signal interrupted it). */
int ckvm_epoll_create(void);
int ckvm_epoll_add(int epoll_fd, int fd, uint64_t token);
int ckvm_epoll_remove(int epoll_fd, int fd);
int ckvm_epoll_wait(int epoll_fd, uint64_t *tokens, int capacity, int timeout_ms);

/* clock_gettime(CLOCK_MONOTONIC) in nanoseconds. */
uint64_t ckvm_monotonic_ns(void);
/* getrusage(RUSAGE_SELF).ru_maxrss in KiB. */
long ckvm_max_rss_kib(void);

/* ckvm_defer_teardown: for a process about to exit. Starts a lingering child that shares the address space
 * (CLONE_VM) and holds copies of the `count` file descriptors in `keep` (it closes every other descriptor at
 * once, so pipes see EOF when this process exits). When the calling thread exits, the child gets SIGKILL
 * (PR_SET_PDEATHSIG) and its exit drops the last references: KVM destroys the VM (with an in-kernel irqchip,
 * RCU grace periods of tens of ms on a loaded host) and the address space is unmapped in the child, after
 * this process's parent has seen it exit. Returns the child's pid, or -errno. */
int ckvm_defer_teardown(const int *keep, int count);

#endif
