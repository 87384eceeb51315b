/*
 * syscalls.c: the facts about this architecture that Swift cannot import: system call numbers by
 * name (for the seccomp filter), the AUDIT_ARCH value a filter checks, the kernel's last capability,
 * and the CLONE_* and MS_* flags as real constants.
 */
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>

struct syscall_entry {
    const char *name;
    long number;
};

/* The calls the seccomp policy names, and a few it must never deny (checked by the tests). */
static const struct syscall_entry syscall_table[] = {
#ifdef __NR_kexec_load
    { "kexec_load", __NR_kexec_load },
#endif
#ifdef __NR_kexec_file_load
    { "kexec_file_load", __NR_kexec_file_load },
#endif
#ifdef __NR_init_module
    { "init_module", __NR_init_module },
#endif
#ifdef __NR_finit_module
    { "finit_module", __NR_finit_module },
#endif
#ifdef __NR_delete_module
    { "delete_module", __NR_delete_module },
#endif
#ifdef __NR_create_module
    { "create_module", __NR_create_module },
#endif
#ifdef __NR_get_kernel_syms
    { "get_kernel_syms", __NR_get_kernel_syms },
#endif
#ifdef __NR_query_module
    { "query_module", __NR_query_module },
#endif
#ifdef __NR_reboot
    { "reboot", __NR_reboot },
#endif
#ifdef __NR_swapon
    { "swapon", __NR_swapon },
#endif
#ifdef __NR_swapoff
    { "swapoff", __NR_swapoff },
#endif
#ifdef __NR_acct
    { "acct", __NR_acct },
#endif
#ifdef __NR_mount
    { "mount", __NR_mount },
#endif
#ifdef __NR_umount
    { "umount", __NR_umount },
#endif
#ifdef __NR_umount2
    { "umount2", __NR_umount2 },
#endif
#ifdef __NR_pivot_root
    { "pivot_root", __NR_pivot_root },
#endif
#ifdef __NR_fsopen
    { "fsopen", __NR_fsopen },
#endif
#ifdef __NR_fsconfig
    { "fsconfig", __NR_fsconfig },
#endif
#ifdef __NR_fsmount
    { "fsmount", __NR_fsmount },
#endif
#ifdef __NR_fspick
    { "fspick", __NR_fspick },
#endif
#ifdef __NR_move_mount
    { "move_mount", __NR_move_mount },
#endif
#ifdef __NR_open_tree
    { "open_tree", __NR_open_tree },
#endif
#ifdef __NR_mount_setattr
    { "mount_setattr", __NR_mount_setattr },
#endif
#ifdef __NR_unshare
    { "unshare", __NR_unshare },
#endif
#ifdef __NR_setns
    { "setns", __NR_setns },
#endif
#ifdef __NR_clone
    { "clone", __NR_clone },
#endif
#ifdef __NR_clone3
    { "clone3", __NR_clone3 },
#endif
#ifdef __NR_settimeofday
    { "settimeofday", __NR_settimeofday },
#endif
#ifdef __NR_stime
    { "stime", __NR_stime },
#endif
#ifdef __NR_clock_settime
    { "clock_settime", __NR_clock_settime },
#endif
#ifdef __NR_clock_adjtime
    { "clock_adjtime", __NR_clock_adjtime },
#endif
#ifdef __NR_adjtimex
    { "adjtimex", __NR_adjtimex },
#endif
#ifdef __NR_bpf
    { "bpf", __NR_bpf },
#endif
#ifdef __NR_perf_event_open
    { "perf_event_open", __NR_perf_event_open },
#endif
#ifdef __NR_add_key
    { "add_key", __NR_add_key },
#endif
#ifdef __NR_keyctl
    { "keyctl", __NR_keyctl },
#endif
#ifdef __NR_request_key
    { "request_key", __NR_request_key },
#endif
#ifdef __NR_lookup_dcookie
    { "lookup_dcookie", __NR_lookup_dcookie },
#endif
#ifdef __NR_nfsservctl
    { "nfsservctl", __NR_nfsservctl },
#endif
#ifdef __NR_open_by_handle_at
    { "open_by_handle_at", __NR_open_by_handle_at },
#endif
#ifdef __NR_name_to_handle_at
    { "name_to_handle_at", __NR_name_to_handle_at },
#endif
#ifdef __NR_quotactl
    { "quotactl", __NR_quotactl },
#endif
#ifdef __NR_quotactl_fd
    { "quotactl_fd", __NR_quotactl_fd },
#endif
#ifdef __NR_uselib
    { "uselib", __NR_uselib },
#endif
#ifdef __NR_userfaultfd
    { "userfaultfd", __NR_userfaultfd },
#endif
#ifdef __NR_ustat
    { "ustat", __NR_ustat },
#endif
#ifdef __NR_sysfs
    { "sysfs", __NR_sysfs },
#endif
#ifdef __NR__sysctl
    { "_sysctl", __NR__sysctl },
#endif
#ifdef __NR_vm86
    { "vm86", __NR_vm86 },
#endif
#ifdef __NR_vm86old
    { "vm86old", __NR_vm86old },
#endif
#ifdef __NR_iopl
    { "iopl", __NR_iopl },
#endif
#ifdef __NR_ioperm
    { "ioperm", __NR_ioperm },
#endif
#ifdef __NR_syslog
    { "syslog", __NR_syslog },
#endif
#ifdef __NR_kcmp
    { "kcmp", __NR_kcmp },
#endif
#ifdef __NR_io_uring_setup
    { "io_uring_setup", __NR_io_uring_setup },
#endif
#ifdef __NR_io_uring_enter
    { "io_uring_enter", __NR_io_uring_enter },
#endif
#ifdef __NR_io_uring_register
    { "io_uring_register", __NR_io_uring_register },
#endif
#ifdef __NR_personality
    { "personality", __NR_personality },
#endif
#ifdef __NR_ptrace
    { "ptrace", __NR_ptrace },
#endif
#ifdef __NR_process_vm_readv
    { "process_vm_readv", __NR_process_vm_readv },
#endif
#ifdef __NR_process_vm_writev
    { "process_vm_writev", __NR_process_vm_writev },
#endif
#ifdef __NR_fanotify_init
    { "fanotify_init", __NR_fanotify_init },
#endif
#ifdef __NR_mbind
    { "mbind", __NR_mbind },
#endif
#ifdef __NR_set_mempolicy
    { "set_mempolicy", __NR_set_mempolicy },
#endif
#ifdef __NR_get_mempolicy
    { "get_mempolicy", __NR_get_mempolicy },
#endif
#ifdef __NR_move_pages
    { "move_pages", __NR_move_pages },
#endif
#ifdef __NR_execve
    { "execve", __NR_execve },
#endif
#ifdef __NR_capset
    { "capset", __NR_capset },
#endif
#ifdef __NR_prctl
    { "prctl", __NR_prctl },
#endif
#ifdef __NR_setresuid
    { "setresuid", __NR_setresuid },
#endif
#ifdef __NR_setresgid
    { "setresgid", __NR_setresgid },
#endif
#ifdef __NR_setgroups
    { "setgroups", __NR_setgroups },
#endif
#ifdef __NR_close_range
    { "close_range", __NR_close_range },
#endif
#ifdef __NR_seccomp
    { "seccomp", __NR_seccomp },
#endif
#ifdef __NR_getpid
    { "getpid", __NR_getpid },
#endif
#ifdef __NR_write
    { "write", __NR_write },
#endif
#ifdef __NR_exit_group
    { "exit_group", __NR_exit_group },
#endif
};

long sl_syscall_number(const char *name)
{
    for (size_t i = 0; i < sizeof syscall_table / sizeof syscall_table[0]; i++) {
        if (strcmp(syscall_table[i].name, name) == 0) return syscall_table[i].number;
    }
    return -1;
}

uint32_t sl_audit_arch(void)
{
#if defined(__x86_64__)
    return AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    return AUDIT_ARCH_AARCH64;
#else
#error "seccomp policy: unsupported architecture"
#endif
}

long sl_filesystem_type(const char *path)
{
    struct statfs info;
    if (statfs(path, &info) < 0) return -errno;
    return (long)info.f_type;
}

int sl_cap_last_cap(void)
{
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int saved = errno;
    close(fd);
    if (n <= 0) return n < 0 ? -saved : -EIO;
    int value = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) value = value * 10 + (buf[i] - '0');
    return value;
}

const unsigned long sl_clone_newuser = CLONE_NEWUSER, sl_clone_newpid = CLONE_NEWPID,
    sl_clone_newns = CLONE_NEWNS, sl_clone_newuts = CLONE_NEWUTS, sl_clone_newipc = CLONE_NEWIPC,
    sl_clone_newnet = CLONE_NEWNET, sl_clone_newcgroup = CLONE_NEWCGROUP;

const unsigned long sl_ms_rdonly = MS_RDONLY, sl_ms_nosuid = MS_NOSUID, sl_ms_nodev = MS_NODEV,
    sl_ms_noexec = MS_NOEXEC, sl_ms_synchronous = MS_SYNCHRONOUS, sl_ms_remount = MS_REMOUNT,
    sl_ms_mandlock = MS_MANDLOCK, sl_ms_dirsync = MS_DIRSYNC, sl_ms_noatime = MS_NOATIME,
    sl_ms_nodiratime = MS_NODIRATIME, sl_ms_bind = MS_BIND, sl_ms_rec = MS_REC, sl_ms_silent = MS_SILENT,
    sl_ms_relatime = MS_RELATIME, sl_ms_strictatime = MS_STRICTATIME, sl_ms_private = MS_PRIVATE,
    sl_ms_slave = MS_SLAVE, sl_ms_shared = MS_SHARED, sl_ms_unbindable = MS_UNBINDABLE,
    sl_ms_lazytime = MS_LAZYTIME;

int sl_open_pty(int *slave)
{
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -errno;
    int unlock = 0;
    int peer = -1;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || (peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
        int saved = errno;
        close(master);
        return -saved;
    }
    *slave = peer;
    return master;
}
