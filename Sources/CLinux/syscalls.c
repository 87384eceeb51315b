/*
 * syscalls.c: the facts about this architecture that Swift cannot import: system call numbers by
 * name in each x86 ABI and names by number (for the seccomp compiler, Sources/Seccomp), the AUDIT_ARCH value a filter checks, the kernel's last capability,
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

#if !defined(__x86_64__)
#error "the system call table (syscall_table.h) is x86_64's: i386, x86_64 and x32 numbers"
#endif

struct syscall_entry {
    const char *name;
    long number[3]; /* SL_ABI_X86_64, SL_ABI_I386, SL_ABI_X32; -1 where absent */
};

/* Every call of the x86 family, from linux-libc-dev's headers (syscall_table.sh writes it). */
static const struct syscall_entry syscall_table[] = {
#include "syscall_table.h"
};

static const size_t syscall_table_count = sizeof syscall_table / sizeof syscall_table[0];

long sl_syscall_number_in(const char *name, int abi)
{
    if (abi < 0 || abi > 2) return -1;
    for (size_t i = 0; i < syscall_table_count; i++) {
        if (strcmp(syscall_table[i].name, name) == 0) return syscall_table[i].number[abi];
    }
    return -1;
}

long sl_syscall_number(const char *name) { return sl_syscall_number_in(name, SL_ABI_X86_64); }

const char *sl_syscall_name_in(long number, int abi)
{
    if (abi < 0 || abi > 2) return NULL;
    for (size_t i = 0; i < syscall_table_count; i++) {
        if (syscall_table[i].number[abi] == number) return syscall_table[i].name;
    }
    return NULL;
}

size_t sl_syscall_count(void) { return syscall_table_count; }

long sl_syscall_number_at(size_t index, int abi)
{
    return index < syscall_table_count && abi >= 0 && abi <= 2 ? syscall_table[index].number[abi] : -1;
}

const char *sl_syscall_name_at(size_t index) { return index < syscall_table_count ? syscall_table[index].name : NULL; }

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
