/*
 * container_spawn.c: the launcher's side of container creation: clone the child into its new
 * namespaces, release it once the Swift side has done the parent's steps (cgroup join, id maps),
 * learn whether it reached execve, wait for it, and forward signals to it meanwhile.
 *
 * The handshake, as in crun and youki: two pipes. The child blocks reading the sync pipe until the
 * parent writes one byte; the error pipe is close-on-exec in the child, so the parent reads either a
 * struct sl_child_error (a step failed) or end-of-file (execve succeeded).
 */
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static const char *const step_names[SL_STEP_COUNT] = {
    [SL_STEP_NONE] = "none",
    [SL_STEP_PIPES] = "pipes",
    [SL_STEP_CLONE] = "clone",
    [SL_STEP_RELEASE] = "release",
    [SL_STEP_SYNC] = "wait for parent",
    [SL_STEP_CGROUP_JOIN] = "cgroup join",
    [SL_STEP_CGROUP_NS] = "cgroup namespace",
    [SL_STEP_SESSION] = "session",
    [SL_STEP_LOOPBACK] = "loopback",
    [SL_STEP_HOSTNAME] = "hostname",
    [SL_STEP_SYSCTL] = "sysctl",
    [SL_STEP_PROPAGATION] = "mount propagation",
    [SL_STEP_ROOTFS] = "rootfs",
    [SL_STEP_MOUNTS] = "mounts",
    [SL_STEP_PIVOT_ROOT] = "pivot_root",
    [SL_STEP_TERMINAL] = "terminal",
    [SL_STEP_READONLY_ROOT] = "read-only root",
    [SL_STEP_CWD] = "cwd",
    [SL_STEP_RLIMITS] = "rlimits",
    [SL_STEP_NO_NEW_PRIVS] = "no_new_privs",
    [SL_STEP_SECCOMP] = "seccomp",
    [SL_STEP_BOUNDING_SET] = "capability bounding set",
    [SL_STEP_USER] = "user",
    [SL_STEP_CAPABILITIES] = "capabilities",
    [SL_STEP_CLOSE_FDS] = "close fds",
    [SL_STEP_INIT] = "init",
    [SL_STEP_EXEC] = "exec",
};

const char *sl_step_name(int step)
{
    if (step < 0 || step >= SL_STEP_COUNT || step_names[step] == NULL) return "unknown step";
    return step_names[step];
}

static int spawn(const sl_plan *plan, sl_process *process, int *failed_step, int exec_mode)
{
    int sync_pipe[2], error_pipe[2];
    /* The sync channel is a socket so the parent's write can use MSG_NOSIGNAL: no SIGPIPE when the
     * child has already died. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_pipe) < 0) {
        *failed_step = SL_STEP_PIPES;
        return -errno;
    }
    if (pipe2(error_pipe, O_CLOEXEC) < 0) {
        int saved = errno;
        close(sync_pipe[0]);
        close(sync_pipe[1]);
        *failed_step = SL_STEP_PIPES;
        return -saved;
    }

    /*
     * Block every signal across the clone: the child starts with them blocked and with copies of the
     * launcher's handlers, and resets both just before execve. Without this a signal arriving during
     * setup would run the launcher's forwarding handler inside the child.
     */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    /* A raw clone with no new stack behaves like fork: the child continues here on a copy of ours. */
    long pid = syscall(SYS_clone, (exec_mode ? 0 : plan->clone_flags) | SIGCHLD, 0, NULL, NULL, 0);
    if (pid == 0) {
        close(sync_pipe[1]);
        close(error_pipe[0]);
        if (exec_mode) sl_child_exec_main(plan, sync_pipe[0], error_pipe[1]);
        sl_child_main(plan, sync_pipe[0], error_pipe[1]);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(sync_pipe[0]);
    close(error_pipe[1]);
    if (pid < 0) {
        close(sync_pipe[1]);
        close(error_pipe[0]);
        *failed_step = SL_STEP_CLONE;
        return -saved;
    }
    process->pid = (pid_t)pid;
    process->sync_fd = sync_pipe[1];
    process->error_fd = error_pipe[0];
    return 0;
}

int sl_spawn(const sl_plan *plan, sl_process *process, int *failed_step)
{
    return spawn(plan, process, failed_step, 0);
}

int sl_spawn_exec(const sl_plan *plan, int pid_ns_fd, sl_process *process, int *failed_step)
{
    if (pid_ns_fd >= 0 && setns(pid_ns_fd, CLONE_NEWPID) < 0) {
        *failed_step = SL_STEP_CLONE;
        return -errno;
    }
    return spawn(plan, process, failed_step, 1);
}

int sl_send_fd_to_socket(const char *path, int fd)
{
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address.sun_path) return -ENAMETOOLONG;
    strcpy(address.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    int r = 0;
    if (connect(s, (struct sockaddr *)&address, sizeof address) < 0) r = -errno;
    if (r == 0) r = sl_send_fd(s, fd);
    close(s);
    return r;
}

int sl_release(sl_process *process, int *terminal_master, sl_child_error *error)
{
    return sl_release_finish(process, sl_release_begin(process), terminal_master, error);
}

/* The pty master the child sends as SCM_RIGHTS on the sync socket; -1 if it closed the socket first. */
static int receive_fd(int socket)
{
    char byte;
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
    ssize_t n;
    do {
        n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return -1;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (header == NULL || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof fd);
    return fd;
}

int sl_release_begin(sl_process *process)
{
    char go = 'g';
    ssize_t n;
    do {
        n = send(process->sync_fd, &go, 1, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int sl_release_finish(sl_process *process, int begin_result, int *terminal_master, sl_child_error *error)
{
    int send_error = -begin_result;
    if (terminal_master != NULL) *terminal_master = receive_fd(process->sync_fd);
    close(process->sync_fd);
    process->sync_fd = -1;
    ssize_t n = 0;
    /* Read the error pipe even if the send failed: a child that died early may have left a record. */
    size_t got = 0;
    char *buffer = (char *)error;
    while (got < sizeof *error) {
        n = read(process->error_fd, buffer + got, sizeof *error - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    int read_error = n < 0 ? errno : 0;
    close(process->error_fd);
    process->error_fd = -1;
    if (got == sizeof *error) {
        error->detail[sizeof error->detail - 1] = '\0';
        return 1;
    }
    if (got != 0) return -EIO;
    if (read_error != 0) return -read_error;
    if (send_error != 0) return -send_error;
    return 0;
}

void sl_abort(sl_process *process)
{
    if (process->pid > 0) {
        kill(process->pid, SIGKILL);
        int status;
        sl_wait(process->pid, &status);
        process->pid = 0;
    }
    if (process->sync_fd >= 0) close(process->sync_fd);
    if (process->error_fd >= 0) close(process->error_fd);
    process->sync_fd = process->error_fd = -1;
}

/*
 * A container's PID 1 that calls ptrace(PTRACE_TRACEME) makes the launcher, its parent, its tracer: from then
 * on every signal it gets stops it, and waitpid reports the stop (WIFSTOPPED) even without WUNTRACED. The
 * launcher is no debugger, so it detaches at the first such stop and hands the signal on, and PID 1 runs as
 * if it had never asked to be traced. One signal is not handed on: the SIGTRAP the kernel sends a traced
 * process after a successful execve (ptrace(2), "execve(2) under ptrace"; SI_USER from the process itself),
 * which an untraced process never receives and which would kill it.
 */
void sl_release_traced(pid_t pid, int status)
{
    int signal = WSTOPSIG(status);
    if (signal == SIGTRAP) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (ptrace(PTRACE_GETSIGINFO, pid, NULL, &info) == 0 && info.si_code == SI_USER && (info.si_pid == 1 || info.si_pid == pid)) {
            signal = 0;
        }
    }
    ptrace(PTRACE_DETACH, pid, NULL, (void *)(long)signal);
}

static int wait_for_exit(pid_t pid, int *status, int options)
{
    for (;;) {
        pid_t r = waitpid(pid, status, options);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        if (r == pid && WIFSTOPPED(*status)) {
            sl_release_traced(pid, *status);
            continue;
        }
        return (int)r;
    }
}

int sl_wait(pid_t pid, int *status)
{
    return wait_for_exit(pid, status, 0);
}

int sl_wait_nohang(pid_t pid, int *status)
{
    return wait_for_exit(pid, status, WNOHANG);
}

int sl_exit_status(int status, int *signal)
{
    *signal = 0;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        *signal = WTERMSIG(status);
        return 128 + WTERMSIG(status);
    }
    return 125;
}

uint64_t sl_monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
}

uint64_t *sl_shared_timings(size_t count)
{
    void *memory = mmap(NULL, count * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? NULL : (uint64_t *)memory;
}

void sl_free_shared_timings(uint64_t *timings, size_t count)
{
    if (timings != NULL) munmap(timings, count * sizeof(uint64_t));
}

/* ---- signal forwarding ---------------------------------------------------------------------------- */

#define FORWARD_SLOTS 64
static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
#define FORWARDED_COUNT (sizeof forwarded_signals / sizeof forwarded_signals[0])

static pid_t forward_pids[FORWARD_SLOTS];
static volatile sig_atomic_t winch_pending;
static pthread_mutex_t forward_lock = PTHREAD_MUTEX_INITIALIZER;
static int forward_count;
static struct sigaction saved_actions[FORWARDED_COUNT];

static void forward_handler(int sig)
{
    int saved = errno;
    if (sig == SIGWINCH) {
        /* The terminal relay copies the new size to the pty; the kernel then signals the container. */
        winch_pending = 1;
    } else {
        for (int i = 0; i < FORWARD_SLOTS; i++) {
            pid_t pid = __atomic_load_n(&forward_pids[i], __ATOMIC_ACQUIRE);
            if (pid > 0) kill(pid, sig);
        }
    }
    errno = saved;
}

int sl_forward_signals_register(pid_t pid)
{
    pthread_mutex_lock(&forward_lock);
    int slot = -1;
    for (int i = 0; i < FORWARD_SLOTS; i++) {
        if (__atomic_load_n(&forward_pids[i], __ATOMIC_ACQUIRE) == 0) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        pthread_mutex_unlock(&forward_lock);
        return -ENOSPC;
    }
    __atomic_store_n(&forward_pids[slot], pid, __ATOMIC_RELEASE);
    if (forward_count++ == 0) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = forward_handler;
        action.sa_flags = SA_RESTART;
        sigfillset(&action.sa_mask);
        for (size_t i = 0; i < FORWARDED_COUNT; i++) sigaction(forwarded_signals[i], &action, &saved_actions[i]);
    }
    pthread_mutex_unlock(&forward_lock);
    return 0;
}

void sl_forward_signals_unregister(pid_t pid)
{
    pthread_mutex_lock(&forward_lock);
    for (int i = 0; i < FORWARD_SLOTS; i++) {
        if (__atomic_load_n(&forward_pids[i], __ATOMIC_ACQUIRE) == pid) {
            __atomic_store_n(&forward_pids[i], 0, __ATOMIC_RELEASE);
            if (--forward_count == 0) {
                for (size_t s = 0; s < FORWARDED_COUNT; s++) sigaction(forwarded_signals[s], &saved_actions[s], NULL);
            }
            break;
        }
    }
    pthread_mutex_unlock(&forward_lock);
}

int sl_take_winch(void)
{
    int pending = winch_pending;
    winch_pending = 0;
    return pending;
}

/* ---- terminals ------------------------------------------------------------------------------------ */

int sl_copy_window_size(int from_fd, int to_fd)
{
    struct winsize size;
    if (ioctl(from_fd, TIOCGWINSZ, &size) < 0) return -errno;
    if (ioctl(to_fd, TIOCSWINSZ, &size) < 0) return -errno;
    return 0;
}

size_t sl_termios_size(void) { return sizeof(struct termios); }

int sl_make_raw(int fd, void *saved, size_t saved_size)
{
    if (saved_size < sizeof(struct termios)) return -EINVAL;
    struct termios original;
    if (tcgetattr(fd, &original) < 0) return -errno;
    memcpy(saved, &original, sizeof original);
    struct termios raw = original;
    cfmakeraw(&raw);
    if (tcsetattr(fd, TCSANOW, &raw) < 0) return -errno;
    return 0;
}

int sl_restore_terminal(int fd, const void *saved)
{
    struct termios original;
    memcpy(&original, saved, sizeof original);
    if (tcsetattr(fd, TCSANOW, &original) < 0) return -errno;
    return 0;
}
