/* internal.h: declarations shared by the CLinux source files, not exported to Swift. */
#ifndef SWIFTLET_CLINUX_INTERNAL_H
#define SWIFTLET_CLINUX_INTERNAL_H

#include "CLinux.h"

/* The child's side of sl_spawn: runs the plan's steps and execs; never returns. */
__attribute__((noreturn)) void sl_child_main(const sl_plan *plan, int sync_fd, int error_fd);

/* The child's side of sl_spawn_exec: joins the namespaces, then the credential and exec steps. */
__attribute__((noreturn)) void sl_child_exec_main(const sl_plan *plan, int sync_fd, int error_fd);

/* Sends `fd` as SCM_RIGHTS over a connected Unix socket. 0 or -errno. */
int sl_send_fd(int socket, int fd);

/* A child reported stopped by waitpid is in a ptrace stop (it made its parent its tracer with
 * PTRACE_TRACEME): detach, handing the signal on (container_spawn.c says which one is not). */
void sl_release_traced(pid_t pid, int status);

#endif
