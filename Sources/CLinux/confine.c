/*
 * confine.c: what a process does to itself before it handles untrusted input (the VMM after its machine
 * is built): no_new_privs, dropping every capability (capabilities(7): the bounding set, then capset),
 * installing a seccomp filter for one thread (seccomp(2), SECCOMP_SET_MODE_FILTER without TSYNC), and a
 * SIGSYS handler that turns a SECCOMP_RET_TRAP into one line naming the thread and the call.
 */
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/seccomp.h>

int sl_set_no_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int sl_drop_all_capabilities(void)
{
    int last = sl_cap_last_cap();
    if (last < 0) last = 63;
    /* The bounding set first: dropping from it needs CAP_SETPCAP, which capset below removes. */
    for (int cap = 0; cap <= last; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM) return -errno;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) return -errno;
    return 0;
}

uint64_t sl_effective_capabilities(void)
{
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return 0;
    return (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
}

int sl_seccomp_install(const struct sock_filter *filter, unsigned short length)
{
    struct sock_fprog program = { length, (struct sock_filter *)filter };
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0 ? 0 : -errno;
}

static char trap_prefix[32] = "swiftlet";
static __thread char trap_thread[32];

static size_t append(char *buffer, size_t at, size_t size, const char *text)
{
    while (*text && at + 1 < size) buffer[at++] = *text++;
    buffer[at] = 0;
    return at;
}

static size_t append_number(char *buffer, size_t at, size_t size, long value)
{
    char digits[24];
    int n = 0;
    unsigned long v = value < 0 ? (unsigned long)-value : (unsigned long)value;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 23);
    if (value < 0) digits[n++] = '-';
    while (n > 0 && at + 1 < size) buffer[at++] = digits[--n];
    buffer[at] = 0;
    return at;
}

/* Async-signal-safe: fixed buffers, write(2) and exit_group(2) only (both in every thread's allowlist). */
static void report_trap(int signal, siginfo_t *info, void *context)
{
    (void)signal; (void)context;
    long number = info->si_syscall;
    int abi = info->si_arch == 0x40000003u ? SL_ABI_I386 : (number & 0x40000000L) ? SL_ABI_X32 : SL_ABI_X86_64;
    const char *name = sl_syscall_name_in(number, abi);
    char line[256];
    size_t at = append(line, 0, sizeof line, trap_prefix);
    at = append(line, at, sizeof line, ": seccomp: thread ");
    at = append(line, at, sizeof line, trap_thread[0] ? trap_thread : "(unnamed)");
    at = append(line, at, sizeof line, " made system call ");
    at = append_number(line, at, sizeof line, number);
    at = append(line, at, sizeof line, " (");
    at = append(line, at, sizeof line, name ? name : "unknown");
    at = append(line, at, sizeof line, "), outside its seccomp allowlist; stopping\n");
    ssize_t ignored = write(2, line, at);
    (void)ignored;
    syscall(SYS_exit_group, SL_SECCOMP_TRAP_STATUS);
}

int sl_seccomp_report_traps(const char *prefix, const char *thread_name)
{
    static int installed;
    if (!installed) {
        if (prefix) { strncpy(trap_prefix, prefix, sizeof trap_prefix - 1); }
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = report_trap;
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGSYS, &action, NULL) != 0) return -errno;
        installed = 1;
    }
    strncpy(trap_thread, thread_name ? thread_name : "", sizeof trap_thread - 1);
    /* A thread that blocked SIGSYS would have the kernel kill the process without our line. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return 0;
}

long sl_raw_syscall(long number, long a0, long a1, long a2)
{
    long result = syscall(number, a0, a1, a2);
    return result < 0 ? -errno : result;
}

int sl_set_thread_name(const char *name)
{
    return prctl(PR_SET_NAME, name, 0, 0, 0) == 0 ? 0 : -errno;
}

/*
 * The jail (swiftlet boot --jail), in two halves around building the machine.
 *
 * sl_jail_fork: unshare(CLONE_NEWPID) and fork, so that the child is PID 1 of a new PID namespace (a
 * process cannot enter a PID namespace itself, and KVM ties a VM to the process that created it, so the
 * fork comes before anything KVM). The parent forwards SIGTERM, SIGINT and SIGHUP to the child, waits,
 * and returns the child's status as a shell would give it (>= 0); the child gets -1 back and goes on,
 * first unsharing the mount, network, IPC and UTS namespaces. Errors: -errno - 1000 (never -1).
 */
static volatile pid_t jail_child;

static void jail_forward(int signal)
{
    if (jail_child > 0) kill(jail_child, signal);
}

int sl_jail_fork(void)
{
    if (unshare(CLONE_NEWPID) != 0) return -errno - 1000;
    pid_t child = fork();
    if (child < 0) return -errno - 1000;
    if (child == 0) {
        /* A launcher killed with SIGKILL takes its jailed VMM with it (soak: no orphan VMMs). */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0) _exit(125);
        /* Nothing this process mounts from now on may reach the host's mount tree. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) _exit(125);
        if (sethostname("swiftlet-jail", 13) != 0) _exit(125);
        return -1;
    }
    jail_child = child;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = jail_forward;
    sigemptyset(&action.sa_mask);
    /* Forward the stop signals (unless the launcher was started with one ignored: then the VMM, which
     * inherited that, ignores it too), unblocked here even if whoever started us blocked them. */
    int stops[] = { SIGTERM, SIGINT, SIGHUP };
    sigset_t unblock;
    sigemptyset(&unblock);
    for (int i = 0; i < 3; i++) {
        struct sigaction old;
        if (sigaction(stops[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(stops[i], &action, NULL);
        sigaddset(&unblock, stops[i]);
    }
    sigprocmask(SIG_UNBLOCK, &unblock, NULL);
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return -errno - 1000;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

/*
 * sl_jail_enter: after the machine is built (every file it needs is open): a tmpfs at `directory`
 * becomes the root (pivot_root; the old root detached), empty but for nothing at all, and the process
 * switches to `uid`/`gid` with no supplementary groups. 0 or -errno.
 */
int sl_jail_enter(const char *directory, uint32_t uid, uint32_t gid)
{
    if (mkdir(directory, 0700) != 0 && errno != EEXIST) return -errno;
    if (mount("swiftlet-jail", directory, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0555") != 0) return -errno;
    if (chdir(directory) != 0) return -errno;
    if (syscall(SYS_pivot_root, ".", ".") != 0) return -errno;
    if (umount2(".", MNT_DETACH) != 0) return -errno;
    if (chdir("/") != 0) return -errno;
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return -errno;
    if (setgroups(0, NULL) != 0) return -errno;
    if (setresgid(gid, gid, gid) != 0) return -errno;
    if (setresuid(uid, uid, uid) != 0) return -errno;
    return 0;
}
