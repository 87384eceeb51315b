/*
 * container_child.c: the container's side of creation, from the moment clone(2) returns in the child
 * until execve(2).
 *
 * The child is a copy of the Swift launcher in which only the cloning thread exists. Any lock another
 * thread held at the clone (malloc's, stdio's, the Swift runtime's) stays held forever here, and glibc
 * still believes the other threads exist. So this file allocates nothing, prints nothing, and calls
 * the kernel directly where glibc would do more than one system call: setresuid(2) and friends go
 * through syscall(2) because glibc's wrappers broadcast credential changes to every thread it knows
 * about; the reaper forks with a raw clone because glibc's fork runs atfork handlers and takes the
 * malloc locks. Everything the steps need was computed by the parent into a struct sl_plan.
 *
 * The steps run in the order of enum sl_step (see CLinux.h); the first failure is written to the
 * error pipe as a struct sl_child_error and the child exits. Where the order matters a comment says why.
 */
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>

#include "internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define SL_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- reporting ---------------------------------------------------------------------------------- */

static void copy_string(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    if (src != NULL) {
        for (; src[i] != '\0' && i + 1 < size; i++) dst[i] = src[i];
    }
    dst[i] = '\0';
}

/* Writes the failure record (one write of less than PIPE_BUF bytes, so it arrives whole) and exits. */
static __attribute__((noreturn)) void fail(int error_fd, int step, int error, int index,
                                           const char *detail, int exit_status)
{
    sl_child_error record;
    memset(&record, 0, sizeof record);
    record.step = step;
    record.error = error;
    record.index = index;
    record.exit_status = exit_status;
    copy_string(record.detail, sizeof record.detail, detail);
    ssize_t n;
    if (error_fd < 0) {
        /* After an OCI `start` nobody reads the error pipe: one line on the container's stderr. */
        char line[600];
        size_t at = 0;
        const char *parts[] = { "swiftlet: ", sl_step_name(step), ": ", record.detail,
                                error == ENOENT ? ": not found\n" : ": failed\n" };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
            for (const char *c = parts[i]; *c != '\0' && at + 1 < sizeof line; c++) line[at++] = *c;
        n = write(2, line, at);
        _exit(exit_status);
    }
    do {
        n = write(error_fd, &record, sizeof record);
    } while (n < 0 && errno == EINTR);
    _exit(exit_status);
}

/* "/proc/self/fd/N": how a mount call names a target we hold an O_PATH descriptor for. */
static void fd_path(char buf[32], int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    unsigned value = (unsigned)fd;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0 && n < (int)sizeof digits);
    memcpy(buf, prefix, sizeof prefix - 1);
    int at = (int)sizeof prefix - 1;
    while (n > 0) buf[at++] = digits[--n];
    buf[at] = '\0';
}

/* ---- resolving paths inside the root filesystem ------------------------------------------------- */

/*
 * Opens `path` (absolute, as the container sees it) as an O_PATH descriptor, resolving every
 * component inside rootfd: a symlink in the image such as /dev -> /host/dev cannot point a mount at
 * the host. openat2(RESOLVE_IN_ROOT) does this in the kernel; kernels before 5.6 get a walk that
 * refuses symlinks and "..".
 */
static int resolve_in_root(int rootfd, const char *path, int *out)
{
    const char *relative = path;
    while (*relative == '/') relative++;
    if (*relative == '\0') relative = ".";

    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, rootfd, relative, &how, sizeof how);
    if (fd >= 0) {
        *out = (int)fd;
        return 0;
    }
    if (errno != ENOSYS) return -errno;

    /* Fallback walk, one component at a time, no symlinks. */
    int current = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    if (current < 0) return -errno;
    char component[256];
    const char *p = relative;
    while (*p != '\0') {
        size_t length = 0;
        while (p[length] != '\0' && p[length] != '/') length++;
        if (length >= sizeof component) {
            close(current);
            return -ENAMETOOLONG;
        }
        memcpy(component, p, length);
        component[length] = '\0';
        p += length;
        while (*p == '/') p++;
        if (length == 0 || strcmp(component, ".") == 0) continue;
        if (strcmp(component, "..") == 0) {
            close(current);
            return -EINVAL;
        }
        int next = openat(current, component, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        close(current);
        if (next < 0) return -saved;
        struct stat st;
        if (fstat(next, &st) == 0 && S_ISLNK(st.st_mode)) {
            close(next);
            return -ELOOP;
        }
        current = next;
    }
    *out = current;
    return 0;
}

/*
 * Like resolve_in_root, creating what is missing: directories for the inner components, and for the
 * last one a directory or, with `file`, an empty regular file (bind targets for device nodes).
 */
static int ensure_in_root(int rootfd, const char *path, int file, int *out)
{
    int r = resolve_in_root(rootfd, path, out);
    if (r != -ENOENT) return r;

    char buf[4096];
    size_t length = strlen(path);
    if (length >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, path, length + 1);

    int parent = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    if (parent < 0) return -errno;
    size_t at = 0;
    while (at < length) {
        while (at < length && buf[at] == '/') at++;
        if (at >= length) break;
        size_t start = at;
        while (at < length && buf[at] != '/') at++;
        int last = (at >= length);
        char saved = buf[at];
        buf[at] = '\0';
        int fd;
        r = resolve_in_root(rootfd, buf, &fd);
        if (r == -ENOENT) {
            const char *name = buf + start;
            if (last && file) {
                int created = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (created >= 0) close(created);
                else if (errno != EEXIST) r = -errno;
            } else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
                r = -errno;
            }
            if (r == -ENOENT) r = resolve_in_root(rootfd, buf, &fd);
        }
        buf[at] = saved;
        if (r < 0) {
            close(parent);
            return r;
        }
        close(parent);
        parent = fd;
    }
    *out = parent;
    return 0;
}

/* ---- mounts ------------------------------------------------------------------------------------- */

/*
 * The per-mount flags a bind remount must repeat. In a user namespace the kernel locks the flags of
 * mounts inherited from a more privileged namespace (nosuid, nodev, noexec, atime); a remount that
 * drops one fails with EPERM, so we read them back with statfs and keep them.
 */
static unsigned long locked_flags(const char *path)
{
    struct statfs st;
    if (statfs(path, &st) < 0) return 0;
    unsigned long flags = 0;
    if (st.f_flags & ST_NOSUID) flags |= MS_NOSUID;
    if (st.f_flags & ST_NODEV) flags |= MS_NODEV;
    if (st.f_flags & ST_NOEXEC) flags |= MS_NOEXEC;
    if (st.f_flags & ST_NOATIME) flags |= MS_NOATIME;
    if (st.f_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (st.f_flags & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

static int remount_bind(const char *path, unsigned long flags)
{
    unsigned long per_mount = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                                       MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME);
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | per_mount | locked_flags(path), NULL) < 0) return -errno;
    return 0;
}

/* Remounts whatever is now mounted at `target` (re-resolved: the old descriptor points under it). */
static int remount_target(int rootfd, const char *target, unsigned long flags)
{
    int fd;
    int r = resolve_in_root(rootfd, target, &fd);
    if (r < 0) return r;
    char path[32];
    fd_path(path, fd);
    r = remount_bind(path, flags);
    close(fd);
    return r;
}

static const unsigned long remount_trigger = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

static int mount_filesystem(int rootfd, const sl_mount *m)
{
    int fd;
    int r = ensure_in_root(rootfd, m->target, 0, &fd);
    if (r < 0) return r;
    char path[32];
    fd_path(path, fd);
    r = 0;
    if (mount(m->source, path, m->fstype, m->flags, m->data) < 0) {
        r = -errno;
        /*
         * sysfs can only be mounted by the owner of the network namespace: with --net host inside a
         * user namespace it cannot. Bind the host's /sys instead and make it read-only.
         */
        if (r == -EPERM && m->sysfs_fallback_bind) {
            if (mount("/sys", path, NULL, MS_BIND | MS_REC, NULL) < 0) r = -errno;
            else r = remount_target(rootfd, m->target, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
        }
    }
    close(fd);
    return r;
}

static int mount_bind(int rootfd, const sl_mount *m)
{
    struct stat st;
    if (stat(m->source, &st) < 0) return -errno;
    int fd;
    int r = ensure_in_root(rootfd, m->target, !S_ISDIR(st.st_mode), &fd);
    if (r < 0) return r;
    char path[32];
    fd_path(path, fd);
    if (mount(m->source, path, NULL, MS_BIND | (m->recursive ? MS_REC : 0), NULL) < 0) r = -errno;
    close(fd);
    if (r == 0 && (m->flags & remount_trigger)) r = remount_target(rootfd, m->target, m->flags);
    return r;
}

static int make_symlink(int rootfd, const sl_mount *m)
{
    char parent[4096];
    size_t length = strlen(m->target);
    if (length >= sizeof parent) return -ENAMETOOLONG;
    memcpy(parent, m->target, length + 1);
    char *slash = strrchr(parent, '/');
    if (slash == NULL) return -EINVAL;
    const char *name = m->target + (slash - parent) + 1;
    if (slash == parent) slash[1] = '\0';
    else *slash = '\0';
    int fd;
    int r = ensure_in_root(rootfd, parent, 0, &fd);
    if (r < 0) return r;
    if (symlinkat(m->source, fd, name) < 0 && errno != EEXIST) r = -errno;
    close(fd);
    return r;
}

/* Masked paths: a read-only empty tmpfs over a directory, /dev/null over anything else. */
static int mask_path(int rootfd, const sl_mount *m)
{
    int fd;
    int r = resolve_in_root(rootfd, m->target, &fd);
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    struct stat st;
    char path[32];
    fd_path(path, fd);
    if (fstat(fd, &st) < 0) r = -errno;
    else if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0) r = -errno;
    } else if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0) {
        r = -errno;
    }
    close(fd);
    return r;
}

/* Read-only paths: bind the path onto itself, then remount that bind read-only. */
static int readonly_path(int rootfd, const sl_mount *m)
{
    int fd;
    int r = resolve_in_root(rootfd, m->target, &fd);
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    char path[32];
    fd_path(path, fd);
    if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) r = -errno;
    close(fd);
    if (r == 0) r = remount_target(rootfd, m->target, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    return r;
}

static int run_mount(int rootfd, const sl_mount *m)
{
    switch (m->kind) {
    case SL_MOUNT_FS: return mount_filesystem(rootfd, m);
    case SL_MOUNT_BIND: return mount_bind(rootfd, m);
    case SL_MOUNT_SYMLINK: return make_symlink(rootfd, m);
    case SL_MOUNT_MASK: return mask_path(rootfd, m);
    case SL_MOUNT_READONLY: return readonly_path(rootfd, m);
    default: return -EINVAL;
    }
}

/* ---- the other steps ---------------------------------------------------------------------------- */

static int loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    memcpy(request.ifr_name, "lo", 3);
    int r = 0;
    if (ioctl(s, SIOCGIFFLAGS, &request) < 0) r = -errno;
    else {
        request.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &request) < 0) r = -errno;
    }
    close(s);
    return r;
}

/* Sends `fd` as SCM_RIGHTS over the sync socket. */
int sl_send_fd(int socket, int fd)
{
    char byte = 't';
    struct iovec iov = { &byte, 1 };
    union {
        struct cmsghdr header;
        char buffer[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof fd);
    ssize_t n;
    do {
        n = sendmsg(socket, &message, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -errno;
}

/* Opens a pty in the container's /dev/pts, sends the master to the parent, makes the slave the
 * controlling terminal and stdio. */
static int open_terminal(int sync_fd)
{
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -errno;
    int unlock = 0;
    int r = 0;
    int slave = -1;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0) r = -errno;
    if (r == 0 && (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY)) < 0) r = -errno;
    if (r == 0) r = sl_send_fd(sync_fd, master);
    close(master);
    if (r == 0 && ioctl(slave, TIOCSCTTY, 0) < 0) r = -errno;
    for (int fd = 0; r == 0 && fd < 3; fd++) {
        if (dup2(slave, fd) < 0) r = -errno;
    }
    if (slave > 2) close(slave);
    return r;
}

/* fchdir into the new root, pivot_root(".", "."), detach the old root that now sits on top of it. */
static int pivot_into(int rootfd)
{
    if (fchdir(rootfd) < 0) return -errno;
    if (syscall(SYS_pivot_root, ".", ".") < 0) return -errno;
    if (umount2(".", MNT_DETACH) < 0) return -errno;
    if (chdir("/") < 0) return -errno;
    return 0;
}

static int drop_bounding_set(uint64_t keep)
{
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break; /* past the kernel's last capability */
            return -errno;
        }
    }
    return 0;
}

static int switch_user(const sl_plan *p)
{
    /* Keep the permitted set across a change away from uid 0; capset restores the effective set. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return -errno;
    if (p->setgroups_allowed) {
        if (syscall(SYS_setgroups, p->group_count, p->groups) < 0) return -errno;
    } else if (p->group_count > 0) {
        return -EPERM;
    }
    if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0) return -errno;
    if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0) return -errno;
    /* A uid change clears the parent-death signal. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return -errno;
    return 0;
}

static int set_capabilities(const sl_plan *p)
{
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)p->cap_effective;
    data[1].effective = (uint32_t)(p->cap_effective >> 32);
    data[0].permitted = (uint32_t)p->cap_permitted;
    data[1].permitted = (uint32_t)(p->cap_permitted >> 32);
    data[0].inheritable = (uint32_t)p->cap_inheritable;
    data[1].inheritable = (uint32_t)(p->cap_inheritable >> 32);
    if (syscall(SYS_capset, &header, data) < 0) return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
    for (int cap = 0; cap < 64; cap++) {
        if (!(p->cap_ambient & (1ULL << cap))) continue;
        /* Like crun: an ambient capability missing from the inheritable set is skipped, not fatal. */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno != EPERM && errno != EINVAL)
            return -errno;
    }
    return 0;
}

static void reset_signals(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &action, NULL); /* glibc refuses its two internal signals; that is fine */
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* execve, searching plan->search_path when argv[0] has no '/'. Returns -errno of the best failure. */
static int exec_command(const sl_plan *p)
{
    const char *file = p->argv[0];
    if (strchr(file, '/') != NULL) {
        execve(file, p->argv, p->envp);
        return -errno;
    }
    const char *search = p->search_path != NULL ? p->search_path : SL_DEFAULT_PATH;
    size_t file_length = strlen(file);
    int result = -ENOENT;
    char candidate[4096];
    for (const char *segment = search;;) {
        const char *end = strchr(segment, ':');
        size_t length = end != NULL ? (size_t)(end - segment) : strlen(segment);
        if (length == 0) {
            candidate[0] = '.';
            length = 1;
        } else if (length + file_length + 2 <= sizeof candidate) {
            memcpy(candidate, segment, length);
        } else {
            length = 0;
        }
        if (length > 0 && length + file_length + 2 <= sizeof candidate) {
            candidate[length] = '/';
            memcpy(candidate + length + 1, file, file_length + 1);
            execve(candidate, p->argv, p->envp);
            switch (errno) {
            case EACCES: result = -EACCES; break;
            case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: break;
            default: return -errno;
            }
        }
        if (end == NULL) break;
        segment = end + 1;
    }
    return result;
}

static __attribute__((noreturn)) void exec_or_fail(const sl_plan *p, int error_fd)
{
    reset_signals();
    if (p->step_end_ns != NULL) p->step_end_ns[SL_STEP_EXEC] = sl_monotonic_ns(); /* execve starts */
    int r = exec_command(p);
    fail(error_fd, SL_STEP_EXEC, -r, -1, p->argv[0], r == -ENOENT ? 127 : 126);
}

/*
 * --init: a tiny reaper as PID 1. It blocks every signal and takes them with sigwaitinfo: blocked
 * signals reach a namespace's init even though it has no handlers, so SIGTERM from the launcher
 * arrives and is forwarded to the command. It reaps every child (orphans are re-parented to it) and
 * exits with the command's status, 128+N if a signal N killed it.
 */
static __attribute__((noreturn)) void run_init(const sl_plan *p, int error_fd)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    long child = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
    if (child < 0) fail(error_fd, SL_STEP_INIT, errno, -1, "clone", 125);
    if (child > 0 && p->step_end_ns != NULL) p->step_end_ns[SL_STEP_INIT] = sl_monotonic_ns();
    if (child == 0) exec_or_fail(p, error_fd);

    /* Still the launcher's image (it never execs): call it "init" in ps -o comm and /proc/1/stat. */
    prctl(PR_SET_NAME, "init", 0, 0, 0);
    /* The command holds the error pipe until it execs; the reaper needs no descriptor beyond stdio. */
    if (syscall(SYS_close_range, 3, ~0U, 0) < 0) close(error_fd);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            int status;
            pid_t reaped;
            while ((reaped = waitpid(-1, &status, WNOHANG)) > 0) {
                /* A child that made this reaper its tracer (PTRACE_TRACEME) stopped: let it go on. */
                if (WIFSTOPPED(status)) {
                    sl_release_traced(reaped, status);
                    continue;
                }
                if (reaped == child) {
                    int signal = 0;
                    _exit(sl_exit_status(status, &signal));
                }
            }
            continue;
        }
        kill((pid_t)child, sig);
    }
}

/* Whether execve could find argv[0]: on the search path when it has no '/'; -ENOENT when not. */
static int command_exists(const sl_plan *p)
{
    const char *file = p->argv[0];
    if (strchr(file, '/') != NULL) return access(file, X_OK) == 0 ? 0 : -errno;
    const char *segment = p->search_path != NULL ? p->search_path : SL_DEFAULT_PATH;
    size_t file_length = strlen(file);
    char candidate[4096];
    for (;;) {
        const char *end = strchr(segment, ':');
        size_t length = end != NULL ? (size_t)(end - segment) : strlen(segment);
        if (length > 0 && length + file_length + 2 <= sizeof candidate) {
            memcpy(candidate, segment, length);
            candidate[length] = '/';
            memcpy(candidate + length + 1, file, file_length + 1);
            if (access(candidate, X_OK) == 0) return 0;
        }
        if (end == NULL) return -ENOENT;
        segment = end + 1;
    }
}

/*
 * OCI `create`: set up, then wait for `start`. A command that cannot be found fails `create` (as runc's
 * does); then the parent-death signal goes (the creating runtime exits now, the container stays), the
 * error pipe closes (the parent's "set up" signal) and the child blocks on the start FIFO.
 */
static void wait_for_start(const sl_plan *p, int error_fd)
{
    int r = command_exists(p);
    if (r == -ENOENT) fail(error_fd, SL_STEP_EXEC, ENOENT, -1, p->argv[0], 127);
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    close(error_fd);
    char go = 0;
    ssize_t n;
    do {
        n = read(p->start_fd, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125);
    close(p->start_fd);
}

/* close fds: every inherited descriptor above stderr (and above the preserved ones) is closed by
 * execve; the error pipe stays open until then so an exec failure can still be reported. */
static void close_on_exec_from(int first)
{
    if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = first; fd < 4096; fd++) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
}

/* ---- the child's step list ---------------------------------------------------------------------- */

#define STEP(step, expression, detail)                                                     \
    do {                                                                                   \
        int step_result_ = (expression);                                                   \
        if (step_result_ < 0) fail(error_fd, (step), -step_result_, -1, (detail), 125);    \
    } while (0)

/* With --timings: when each step ended, for the parent to print. clock_gettime is a vDSO read. */
#define MARK(step)                                                                         \
    do {                                                                                   \
        if (p->step_end_ns != NULL) p->step_end_ns[(step)] = sl_monotonic_ns();            \
    } while (0)

static int errno_result(int r) { return r < 0 ? -errno : r; }

__attribute__((noreturn)) void sl_child_main(const sl_plan *p, int sync_fd, int error_fd)
{
    /*
     * Die with the launcher. Set before waiting so that a launcher killed during setup is noticed:
     * either this signal or EOF on the sync pipe ends the child.
     */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

    /* wait for parent: it joins the cgroup and writes uid_map/gid_map, then sends one byte. */
    char go = 0;
    ssize_t n;
    do {
        n = read(sync_fd, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125); /* the launcher gave up on us; nobody reads a report */
    if (!p->terminal) close(sync_fd); /* with -t it carries the pty master back */
    MARK(SL_STEP_SYNC);

    /*
     * cgroup join (v1): "0" written to a v1 `tasks` file moves the writing thread itself, and for that
     * case the kernel skips the global cgroup_threadgroup_rwsem, whose first writer after a quiet
     * spell waits for an RCU grace period (8 to 15 ms measured here). This process is single-threaded,
     * so moving the thread moves the process. The files were opened by the parent, whose credentials
     * the kernel checks. v2 directories were joined by the parent before the sync byte.
     */
    for (size_t i = 0; i < p->cgroup_tasks_fd_count; i++) {
        ssize_t written = write(p->cgroup_tasks_fds[i], "0", 1);
        if (written != 1) fail(error_fd, SL_STEP_CGROUP_JOIN, written < 0 ? errno : EIO, -1, "tasks", 125);
    }
    if (p->cgroup_tasks_fd_count > 0) MARK(SL_STEP_CGROUP_JOIN);

    /* In a new user namespace, become its root (when the maps have one): until then the child still has
     * the launcher's host ids, which a remapped namespace (--userns subuid) does not map, and creating
     * anything (a mount point in /dev) fails with EOVERFLOW. Identity and rootless maps are unaffected. */
    if (p->clone_flags & CLONE_NEWUSER) {
        if (setresgid(0, 0, 0) != 0 && errno != EINVAL) fail(error_fd, SL_STEP_SYNC, errno, -1, "setresgid(0) in the user namespace", 125);
        if (setresuid(0, 0, 0) != 0 && errno != EINVAL) fail(error_fd, SL_STEP_SYNC, errno, -1, "setresuid(0) in the user namespace", 125);
    }

    /* cgroup namespace: after the cgroup join, so the container's cgroup becomes the namespace's
     * root ("/" in /proc/self/cgroup). */
    if (p->unshare_cgroup) STEP(SL_STEP_CGROUP_NS, errno_result(unshare(CLONE_NEWCGROUP)), NULL);
    MARK(SL_STEP_CGROUP_NS);

    /* session: a new session so the launcher's terminal signals reach the container only through
     * the launcher's forwarding (with -t the container gets its own terminal after pivot_root). */
    STEP(SL_STEP_SESSION, errno_result(setsid()), NULL);
    if (!p->terminal) {
        for (int fd = 0; fd < 3; fd++) {
            if (p->stdio_fds[fd] >= 0 && p->stdio_fds[fd] != fd)
                STEP(SL_STEP_SESSION, errno_result(dup2(p->stdio_fds[fd], fd)), "dup2");
        }
    }
    MARK(SL_STEP_SESSION);

    if (p->loopback) STEP(SL_STEP_LOOPBACK, loopback_up(), "lo");
    MARK(SL_STEP_LOOPBACK);

    /* hostname: needs CAP_SYS_ADMIN over the uts namespace, so before capabilities are dropped. */
    if (p->hostname != NULL)
        STEP(SL_STEP_HOSTNAME, errno_result(sethostname(p->hostname, strlen(p->hostname))), p->hostname);
    MARK(SL_STEP_HOSTNAME);

    /* sysctl: the host's /proc is still mounted here; a namespaced parameter opened by this process
     * belongs to its new network, IPC or UTS namespace (the parent allowed only those). */
    for (size_t i = 0; i < p->sysctl_count; i++) {
        char path[512] = "/proc/sys/";
        size_t at = strlen(path), length = strlen(p->sysctl_paths[i]);
        if (at + length + 1 > sizeof path) fail(error_fd, SL_STEP_SYSCTL, ENAMETOOLONG, -1, p->sysctl_paths[i], 125);
        memcpy(path + at, p->sysctl_paths[i], length + 1);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(error_fd, SL_STEP_SYSCTL, errno, -1, p->sysctl_paths[i], 125);
        size_t value_length = strlen(p->sysctl_values[i]);
        if (write(fd, p->sysctl_values[i], value_length) != (ssize_t)value_length) fail(error_fd, SL_STEP_SYSCTL, errno, -1, p->sysctl_paths[i], 125);
        close(fd);
    }
    MARK(SL_STEP_SYSCTL);

    /* mount propagation: nothing we mount may propagate back to the host's mount namespace. */
    STEP(SL_STEP_PROPAGATION, errno_result(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)), "/");
    MARK(SL_STEP_PROPAGATION);

    /* rootfs: pivot_root needs the new root to be a mount point; binding it onto itself makes it one. */
    /* With an overlay the image stays untouched: writes land in the upper directory, in this namespace only. */
    if (p->overlay_options != NULL)
        STEP(SL_STEP_ROOTFS, errno_result(mount("overlay", p->rootfs, "overlay", 0, p->overlay_options)), "overlay");
    else
        STEP(SL_STEP_ROOTFS, errno_result(mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL)), p->rootfs);
    int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) fail(error_fd, SL_STEP_ROOTFS, errno, -1, p->rootfs, 125);
    MARK(SL_STEP_ROOTFS);

    /*
     * mounts: before pivot_root, while the host's /proc and /sys are still in this namespace. A user
     * namespace may mount a fresh proc or sysfs only if an unobstructed instance is already visible
     * to it ("mount_too_revealing"), and device binds need the host's /dev paths.
     */
    for (size_t i = 0; i < p->mount_count; i++) {
        int r = run_mount(rootfd, &p->mounts[i]);
        if (r < 0) fail(error_fd, SL_STEP_MOUNTS, -r, (int)i, p->mounts[i].target, 125);
    }
    MARK(SL_STEP_MOUNTS);

    STEP(SL_STEP_PIVOT_ROOT, pivot_into(rootfd), p->rootfs);
    MARK(SL_STEP_PIVOT_ROOT);
    close(rootfd);

    /* terminal: the pty comes from the container's own devpts instance, so /dev/pts/0 exists inside
     * and ttyname(3) works; the master goes to the launcher, which relays it to its own terminal. */
    if (p->terminal) {
        STEP(SL_STEP_TERMINAL, open_terminal(sync_fd), "/dev/ptmx");
        close(sync_fd);
        MARK(SL_STEP_TERMINAL);
    }

    /* read-only root: only the root mount; /proc, /dev and the other mounts keep their own flags. */
    if (p->readonly_root) STEP(SL_STEP_READONLY_ROOT, remount_bind("/", MS_RDONLY), "/");
    MARK(SL_STEP_READONLY_ROOT);

    STEP(SL_STEP_CWD, errno_result(chdir(p->cwd != NULL ? p->cwd : "/")), p->cwd);
    MARK(SL_STEP_CWD);

    /* rlimits: raising a hard limit needs CAP_SYS_RESOURCE, so before capabilities are dropped. */
    for (size_t i = 0; i < p->rlimit_count; i++) {
        struct rlimit limit = { (rlim_t)p->rlimits[i].soft, (rlim_t)p->rlimits[i].hard };
        STEP(SL_STEP_RLIMITS, errno_result(setrlimit(p->rlimits[i].resource, &limit)), NULL);
    }
    MARK(SL_STEP_RLIMITS);

    if (p->no_new_privs) STEP(SL_STEP_NO_NEW_PRIVS, errno_result(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)), NULL);
    MARK(SL_STEP_NO_NEW_PRIVS);

    /*
     * seccomp: installing a filter needs no_new_privs or CAP_SYS_ADMIN; we still hold the latter, so
     * this works whether or not the spec asks for no_new_privs. Everything after this point (prctl,
     * capset, setresuid, close_range, clone for --init, execve) is allowed by the filter.
     */
    if (p->seccomp_filter != NULL) {
        struct sock_fprog program = { p->seccomp_length, (struct sock_filter *)p->seccomp_filter };
        STEP(SL_STEP_SECCOMP, errno_result((int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program)), NULL);
    }
    MARK(SL_STEP_SECCOMP);

    /* capability bounding set: PR_CAPBSET_DROP needs CAP_SETPCAP, which a switch away from uid 0
     * clears from the effective set, so it comes before the user switch. */
    if (p->set_capabilities) STEP(SL_STEP_BOUNDING_SET, drop_bounding_set(p->cap_bounding), NULL);
    MARK(SL_STEP_BOUNDING_SET);
    if (p->set_user) STEP(SL_STEP_USER, switch_user(p), NULL);
    MARK(SL_STEP_USER);
    if (p->set_capabilities) STEP(SL_STEP_CAPABILITIES, set_capabilities(p), NULL);
    MARK(SL_STEP_CAPABILITIES);

    close_on_exec_from(3 + (p->preserve_fds > 0 ? p->preserve_fds : 0));
    MARK(SL_STEP_CLOSE_FDS);

    if (p->start_fd >= 0) {
        wait_for_start(p, error_fd);
        error_fd = -1;
    }
    if (p->init) run_init(p, error_fd);
    exec_or_fail(p, error_fd);
}

/*
 * The child of sl_spawn_exec (OCI `exec`): already in the container's pid namespace (the parent joined
 * it for its children); joins the others, user first (it grants the capabilities the others need),
 * mount last (its root becomes this process's root and cwd), then the same steps as a new container's
 * tail: cwd, rlimits, no_new_privs, seccomp, capabilities, user, terminal, exec.
 */
__attribute__((noreturn)) void sl_child_exec_main(const sl_plan *p, int sync_fd, int error_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    char go = 0;
    ssize_t n;
    do {
        n = read(sync_fd, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125);
    if (!p->terminal) close(sync_fd);
    for (size_t i = 0; i < p->join_ns_count; i++)
        STEP(SL_STEP_SYNC, errno_result(setns(p->join_ns_fds[i], 0)), "setns");
    STEP(SL_STEP_SESSION, errno_result(setsid()), NULL);
    for (int fd = 0; !p->terminal && fd < 3; fd++) {
        if (p->stdio_fds[fd] >= 0 && p->stdio_fds[fd] != fd)
            STEP(SL_STEP_SESSION, errno_result(dup2(p->stdio_fds[fd], fd)), "dup2");
    }
    if (p->terminal) {
        STEP(SL_STEP_TERMINAL, open_terminal(sync_fd), "/dev/ptmx");
        close(sync_fd);
    }
    STEP(SL_STEP_CWD, errno_result(chdir(p->cwd != NULL ? p->cwd : "/")), p->cwd);
    for (size_t i = 0; i < p->rlimit_count; i++) {
        struct rlimit limit = { (rlim_t)p->rlimits[i].soft, (rlim_t)p->rlimits[i].hard };
        STEP(SL_STEP_RLIMITS, errno_result(setrlimit(p->rlimits[i].resource, &limit)), NULL);
    }
    if (p->no_new_privs) STEP(SL_STEP_NO_NEW_PRIVS, errno_result(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)), NULL);
    if (p->seccomp_filter != NULL) {
        struct sock_fprog program = { p->seccomp_length, (struct sock_filter *)p->seccomp_filter };
        STEP(SL_STEP_SECCOMP, errno_result((int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program)), NULL);
    }
    if (p->set_capabilities) STEP(SL_STEP_BOUNDING_SET, drop_bounding_set(p->cap_bounding), NULL);
    if (p->set_user) STEP(SL_STEP_USER, switch_user(p), NULL);
    if (p->set_capabilities) STEP(SL_STEP_CAPABILITIES, set_capabilities(p), NULL);
    close_on_exec_from(3 + (p->preserve_fds > 0 ? p->preserve_fds : 0));
    if (p->detach) prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0); /* after switch_user, which sets it again */
    exec_or_fail(p, error_fd);
}
