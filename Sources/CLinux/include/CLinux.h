/*
 * CLinux: the Linux calls the container launcher cannot make from Swift.
 *
 * Two kinds of code live here. First, the child side of container creation: after clone(2) the new
 * process is a copy of a multithreaded Swift program in which only the calling thread exists, so it
 * must not run Swift code, allocate, or take any lock another thread might have held. It runs the
 * ordered setup steps below in plain C, driven by a `struct sl_plan` that the Swift side filled in
 * before the clone, and ends in execve(2). Second, small wrappers for things Swift cannot import:
 * raw clone, pivot_root, the seccomp and capability calls, ioctls on terminals, wait-status macros,
 * and the syscall numbers the seccomp filter needs.
 *
 * Contract: every function returns 0 (or a non-negative value) on success and -errno on failure.
 * Functions that run a sequence of steps also report which step failed through `failed_step`.
 */
#ifndef SWIFTLET_CLINUX_H
#define SWIFTLET_CLINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/filter.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ordered setup steps. The child runs them top to bottom; the first three are the parent's. */
typedef enum sl_step {
    SL_STEP_NONE = 0,
    /* parent (in sl_spawn / sl_release) */
    SL_STEP_PIPES,          /* "pipes": the sync and error pipes */
    SL_STEP_CLONE,          /* "clone": create the process in its new namespaces */
    SL_STEP_RELEASE,        /* "release": tell the child the parent's steps are done */
    /* child, in this order */
    SL_STEP_SYNC,           /* "wait for parent": id maps written, v2 cgroup joined */
    SL_STEP_CGROUP_JOIN,    /* "cgroup join": write 0 to each v1 hierarchy's tasks file (moves itself) */
    SL_STEP_CGROUP_NS,      /* "cgroup namespace": unshare after joining the cgroup */
    SL_STEP_SESSION,        /* "session": setsid, stdio */
    SL_STEP_LOOPBACK,       /* "loopback": bring lo up in the new network namespace */
    SL_STEP_HOSTNAME,       /* "hostname" */
    SL_STEP_SYSCTL,         /* "sysctl": linux.sysctl through the host's /proc/sys, in the new namespaces */
    SL_STEP_PROPAGATION,    /* "mount propagation": make every mount private */
    SL_STEP_ROOTFS,         /* "rootfs": bind the root filesystem onto itself */
    SL_STEP_MOUNTS,         /* "mounts": /proc, /dev, devices, /sys, masked and read-only paths */
    SL_STEP_PIVOT_ROOT,     /* "pivot_root": switch root, detach the old one */
    SL_STEP_TERMINAL,       /* "terminal": a pty from the container's devpts, master sent to the parent */
    SL_STEP_READONLY_ROOT,  /* "read-only root" */
    SL_STEP_CWD,            /* "cwd" */
    SL_STEP_RLIMITS,        /* "rlimits" */
    SL_STEP_NO_NEW_PRIVS,   /* "no_new_privs" */
    SL_STEP_SECCOMP,        /* "seccomp" */
    SL_STEP_BOUNDING_SET,   /* "capability bounding set" */
    SL_STEP_USER,           /* "user": groups, gid, uid */
    SL_STEP_CAPABILITIES,   /* "capabilities": effective, permitted, inheritable, ambient */
    SL_STEP_CLOSE_FDS,      /* "close fds" */
    SL_STEP_INIT,           /* "init": fork the command under the reaper */
    SL_STEP_EXEC,           /* "exec" */
    SL_STEP_COUNT
} sl_step;

/* The step's name as error messages print it. */
const char *sl_step_name(int step);

/* One entry of the ordered filesystem plan the child carries out before pivot_root. */
typedef enum sl_mount_kind {
    SL_MOUNT_FS = 1,      /* mount(source, target, fstype, flags, data); target created as a directory */
    SL_MOUNT_BIND,        /* bind the host path `source` (resolved before pivot_root) onto target */
    SL_MOUNT_SYMLINK,     /* symlink target -> source; an existing entry is left alone */
    SL_MOUNT_MASK,        /* hide target: read-only tmpfs on a directory, /dev/null on a file; absent: skip */
    SL_MOUNT_READONLY,    /* bind target onto itself read-only; absent: skip */
} sl_mount_kind;

typedef struct sl_mount {
    int kind;                 /* sl_mount_kind */
    const char *source;       /* fs source name, host path (bind) or link text (symlink) */
    const char *target;       /* absolute path inside the container */
    const char *fstype;       /* SL_MOUNT_FS only */
    unsigned long flags;      /* MS_* flags; for binds, MS_RDONLY/NOSUID/NODEV/NOEXEC trigger a remount */
    const char *data;         /* fs options string or NULL */
    int recursive;            /* binds: MS_REC */
    int sysfs_fallback_bind;  /* SL_MOUNT_FS of sysfs: on EPERM bind the host's /sys instead */
} sl_mount;

typedef struct sl_rlimit {
    int resource;             /* RLIMIT_* */
    uint64_t soft;
    uint64_t hard;
} sl_rlimit;

/* Everything the child needs, prepared by the parent before clone; the child only reads it. */
typedef struct sl_plan {
    const char *rootfs;            /* absolute host path of the root filesystem */
    const char *overlay_options;   /* NULL, or "lowerdir=..,upperdir=..,workdir=..": mount an overlay on
                                      rootfs (an empty directory) instead of binding it onto itself */
    unsigned long clone_flags;     /* CLONE_NEW* for clone(2): user, pid, mount, uts, ipc, net */
    int unshare_cgroup;            /* unshare(CLONE_NEWCGROUP) once the cgroup is joined */
    const int *cgroup_tasks_fds;   /* v1 `tasks` files the parent opened; the child writes "0" to each */
    size_t cgroup_tasks_fd_count;
    int terminal;                  /* open a pty in the container's /dev/pts, make it the controlling
                                      terminal and stdio, and pass the master to the parent */
    int stdio_fds[3];              /* without a terminal: descriptors for 0, 1, 2; -1 keeps the launcher's */
    int loopback;                  /* bring up lo (new network namespace) */
    const char *hostname;          /* NULL: leave as is */
    const sl_mount *mounts;
    size_t mount_count;
    int readonly_root;
    const char *cwd;               /* inside the container */
    const sl_rlimit *rlimits;
    size_t rlimit_count;
    int no_new_privs;
    const struct sock_filter *seccomp_filter; /* NULL: no filter */
    unsigned short seccomp_length; /* instructions */
    int set_user;                  /* switch to uid/gid/groups below */
    uint32_t uid;
    uint32_t gid;
    const uint32_t *groups;
    size_t group_count;
    int setgroups_allowed;         /* 0 when the parent wrote "deny" to /proc/PID/setgroups */
    int set_capabilities;
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int init;                      /* run the reaper as PID 1 and the command as its child */
    char *const *argv;             /* NULL-terminated */
    char *const *envp;             /* NULL-terminated */
    const char *search_path;       /* PATH used to find argv[0] when it has no '/' */
    uint64_t *step_end_ns;         /* NULL, or shared memory (MAP_SHARED) of SL_STEP_COUNT entries: the
                                      child writes CLOCK_MONOTONIC at the end of each step it runs */
    int start_fd;                  /* -1, or (OCI `create`) a FIFO opened O_RDWR: once set up, the child
                                      checks that argv[0] can be found, closes the error pipe (the parent
                                      returns), and blocks reading one byte from it (`start` writes it) */
    char *const *sysctl_paths;     /* "net/ipv4/ip_forward" (under /proc/sys), sysctl_count of them */
    char *const *sysctl_values;
    size_t sysctl_count;
    int preserve_fds;              /* descriptors 3 .. 3+N-1 stay open across execve (--preserve-fds) */
    int detach;                    /* sl_spawn_exec: the process outlives the runtime (no parent-death signal) */
    const int *join_ns_fds;        /* sl_spawn_exec: /proc/PID/ns/<name> descriptors to setns(2) into, user first */
    size_t join_ns_count;
} sl_plan;

/* What the child sends back through the error pipe when a step fails. */
typedef struct sl_child_error {
    int32_t step;          /* sl_step */
    int32_t error;         /* errno */
    int32_t index;         /* mounts: index into plan->mounts; otherwise -1 */
    int32_t exit_status;   /* what the child exits with: 125, or 126/127 for exec */
    char detail[512];      /* the path or name involved, NUL-terminated */
} sl_child_error;

typedef struct sl_process {
    pid_t pid;
    int sync_fd;   /* parent's write end: one byte releases the child */
    int error_fd;  /* parent's read end: EOF means execve succeeded */
} sl_process;

/*
 * Clones the child into the namespaces in plan->clone_flags. The child waits on the sync pipe;
 * nothing in the plan may change until sl_release. Returns 0 or -errno; failed_step names the step.
 */
int sl_spawn(const sl_plan *plan, sl_process *process, int *failed_step);

/*
 * Releases the child and waits until it has exec'd the command (returns 0) or failed a step
 * (returns 1 and fills `error`). Returns -errno if the parent's own calls fail. With plan->terminal,
 * `terminal_master` receives the pty master the child opened (or stays -1 if it failed first).
 */
int sl_release(sl_process *process, int *terminal_master, sl_child_error *error);

/* sl_release in two halves, so the parent can work while the child sets itself up:
 * begin sends the byte (returns 0 or -errno), finish collects the outcome as sl_release does. */
int sl_release_begin(sl_process *process);
int sl_release_finish(sl_process *process, int begin_result, int *terminal_master, sl_child_error *error);

/*
 * `exec` into a running container: setns(2) into `pid_ns_fd` for the children of this process (allowed
 * in a multithreaded process), then a child that joins plan->join_ns_fds (user first, mount last: the
 * mount namespace's root becomes the child's root and cwd) and runs the plan's credential, terminal
 * and exec steps. Released and reported like sl_spawn's child. Returns 0 or -errno.
 */
int sl_spawn_exec(const sl_plan *plan, int pid_ns_fd, sl_process *process, int *failed_step);

/* A new pseudo-terminal from /dev/ptmx: returns the master (close-on-exec) and puts the slave in *slave,
 * or -errno. */
int sl_open_pty(int *slave);

/* Connects to the Unix socket `path` and sends `fd` as SCM_RIGHTS (OCI --console-socket). 0 or -errno. */
int sl_send_fd_to_socket(const char *path, int fd);

/* Kills a child that was never released and reaps it. */
void sl_abort(sl_process *process);

/* waitpid(pid, status, 0) until the child exits or is killed, retried on EINTR. A ptrace stop (PID 1 made
 * the launcher its tracer with PTRACE_TRACEME) is not an end: the launcher detaches, passing the signal on,
 * and waits on. Returns the pid or -errno. */
int sl_wait(pid_t pid, int *status);

/* sl_wait with WNOHANG: the pid once the child has ended, 0 while it runs, or -errno. */
int sl_wait_nohang(pid_t pid, int *status);

/* Decodes a wait status: returns the exit code, or 128+N for signal N (sets *signal to N, else 0). */
int sl_exit_status(int status, int *signal);

/*
 * Signal forwarding while containers run: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 sent to
 * the launcher go to every registered container process; SIGWINCH sets a flag (sl_take_winch).
 * The first registration installs the handlers; the last unregistration restores the old ones.
 */
int sl_forward_signals_register(pid_t pid);
void sl_forward_signals_unregister(pid_t pid);
int sl_take_winch(void);

/* Terminal helpers. */
int sl_copy_window_size(int from_fd, int to_fd);            /* TIOCGWINSZ -> TIOCSWINSZ */
int sl_make_raw(int fd, void *saved, size_t saved_size);    /* tcgetattr + cfmakeraw; saved >= sl_termios_size */
int sl_restore_terminal(int fd, const void *saved);
size_t sl_termios_size(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sl_monotonic_ns(void);
/* An anonymous shared mapping of `count` zeroed uint64_t the child can write into, or NULL. */
uint64_t *sl_shared_timings(size_t count);
void sl_free_shared_timings(uint64_t *timings, size_t count);

/* System call ABIs a filter on an x86_64 kernel meets (syscall_table.h has a number for each). */
enum { SL_ABI_X86_64 = 0, SL_ABI_I386 = 1, SL_ABI_X32 = 2 };
/* The syscall number of `name` in `abi` (x32 numbers include __X32_SYSCALL_BIT), or -1 when absent there. */
long sl_syscall_number_in(const char *name, int abi);
/* The syscall number of `name` on this architecture (x86_64), or -1 when it does not exist here. */
long sl_syscall_number(const char *name);
/* The name of call `number` in `abi`, or NULL. */
const char *sl_syscall_name_in(long number, int abi);
/* The table's size, and its names in order (NULL past the end). */
size_t sl_syscall_count(void);
const char *sl_syscall_name_at(size_t index);
long sl_syscall_number_at(size_t index, int abi);
/* AUDIT_ARCH_* of this build, for the seccomp filter's architecture check. */
uint32_t sl_audit_arch(void);

/*
 * Self-confinement (confine.c): what a process does to itself before it handles untrusted input.
 * Each returns 0 or -errno.
 */
/* prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never gain privileges again (inherited by new threads). */
int sl_set_no_new_privs(void);
/* Empties the bounding set (PR_CAPBSET_DROP for 0...cap_last_cap) and then the permitted, effective and
 * inheritable sets and the ambient set, for the calling thread (threads it creates later inherit that). */
int sl_drop_all_capabilities(void);
/* The calling thread's effective capability mask (capget), or 0 with errno set. */
uint64_t sl_effective_capabilities(void);
/* seccomp(SECCOMP_SET_MODE_FILTER) for the calling thread only (no TSYNC). */
int sl_seccomp_install(const struct sock_filter *filter, unsigned short length);
/* Installs (once per process) a SIGSYS handler that reports a SECCOMP_RET_TRAP in one line naming the
 * thread and the call: "<prefix>: thread <name> made system call <n> (<name>), outside its seccomp
 * allowlist; stopping" on stderr, then exit_group(159) (128 + SIGSYS). `thread_name` (copied, at most 31
 * bytes) names the calling thread in that line. */
int sl_seccomp_report_traps(const char *prefix, const char *thread_name);
/* syscall(number, a0, a1, a2): the result or -errno (Swift cannot call the variadic syscall). */
long sl_raw_syscall(long number, long a0, long a1, long a2);
/* prctl(PR_SET_NAME): the calling thread's name (at most 15 bytes kept), as ps, /proc and strace show it. */
int sl_set_thread_name(const char *name);
/* The jail (confine.c): sl_jail_fork puts the caller's child in new PID, mount, network, IPC and UTS
 * namespaces; the parent gets the child's final status (>= 0), the child -1, an error -errno - 1000.
 * sl_jail_enter pivots into an empty tmpfs at `directory` and becomes uid/gid. 0 or -errno. */
int sl_jail_fork(void);
int sl_jail_enter(const char *directory, uint32_t uid, uint32_t gid);
/* The status the SIGSYS reporter exits with. */
#define SL_SECCOMP_TRAP_STATUS 159

/* statfs(2)'s f_type for `path` (the filesystem's magic number), or -errno. */
long sl_filesystem_type(const char *path);

/*
 * Device rules (OCI linux.resources.devices) for cgroup v2, as a BPF_PROG_TYPE_CGROUP_DEVICE program
 * (device_filter.c). A rule: allow or deny; type 'a' (all), 'c' or 'b'; major and minor, -1 for any;
 * access bits 1 = mknod, 2 = read, 4 = write (BPF_DEVCG_ACC_*). The last rule that matches decides;
 * none matching denies.
 */
#define SL_DEVICE_RULES_MAX 256
typedef struct sl_device_rule {
    int32_t allow;
    int32_t type;
    int64_t major;
    int64_t minor;
    uint32_t access;
} sl_device_rule;
/* Loads the program; returns its fd or -errno. `log` (may be NULL) receives the verifier's log. */
int sl_device_program_load(const sl_device_rule *rules, size_t count, char *log, size_t log_size);
/* Attaches it to the cgroup2 directory `cgroup_path` (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI). 0 or -errno. */
int sl_device_program_attach(int program_fd, const char *cgroup_path);

/* The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap), or -errno. */
int sl_cap_last_cap(void);

/* Linux constants Swift code needs by value. */
extern const unsigned long sl_clone_newuser, sl_clone_newpid, sl_clone_newns, sl_clone_newuts,
    sl_clone_newipc, sl_clone_newnet, sl_clone_newcgroup;
extern const unsigned long sl_ms_rdonly, sl_ms_nosuid, sl_ms_nodev, sl_ms_noexec, sl_ms_synchronous,
    sl_ms_remount, sl_ms_mandlock, sl_ms_dirsync, sl_ms_noatime, sl_ms_nodiratime, sl_ms_bind,
    sl_ms_rec, sl_ms_silent, sl_ms_relatime, sl_ms_strictatime, sl_ms_private, sl_ms_slave,
    sl_ms_shared, sl_ms_unbindable, sl_ms_lazytime;

#ifdef __cplusplus
}
#endif

#endif /* SWIFTLET_CLINUX_H */
