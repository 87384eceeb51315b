/* internal.h: declarations shared by the CLinux source files, not exported to Swift. */
#ifndef SWIFTLET_CLINUX_INTERNAL_H
#define SWIFTLET_CLINUX_INTERNAL_H

#include "CLinux.h"

/* The child's side of sl_spawn: runs the plan's steps and execs; never returns. */
__attribute__((noreturn)) void sl_child_main(const sl_plan *plan, int sync_fd, int error_fd);

#endif
