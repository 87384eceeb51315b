#!/usr/bin/env bash
# guest/linux/gdb-types.sh [LINUX_OUT] [DEST]: gives gdb the types of the minimal kernel, which is built
# without debug information (CONFIG_DEBUG_INFO_NONE: its vmlinux has symbols, so `break start_kernel` and
# `bt` work, but `p init_task.comm` says "'init_task' has unknown type").
#
# It compiles init/init_task.c once more with -g, with exactly the command line the kernel build used
# (read from LINUX_OUT/build/init/.init_task.o.cmd, only the compiler part: objtool and the dependency
# file are left out), into DEST/init_task.debug.o: its DWARF describes struct task_struct and the other
# types init_task.c includes, laid out as in the kernel (same configuration, same flags). It then writes
# DEST/kernel-types.gdb, which loads that object with its .data placed so that its `init_task` lands on
# vmlinux's (from `nm`), so in gdb `source DEST/kernel-types.gdb` makes `p init_task.comm` work.
# LINUX_OUT is only read (default: $SWIFTLET_LINUX_DIR, else guest/linux/out); DEST defaults to
# ${TMPDIR:-/tmp}/swiftlet-kernel-types. Needs the kernel's compiler (gcc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
linux_out=$(cd "${1:-${SWIFTLET_LINUX_DIR:-$here/out}}" && pwd)
dest=${2:-${TMPDIR:-/tmp}/swiftlet-kernel-types}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
cmdfile=$linux_out/build/init/.init_task.o.cmd
[ -f "$cmdfile" ] || { echo "gdb-types.sh: $cmdfile not found (build the kernel with guest/linux/build.sh first)" >&2; exit 1; }
[ -f "$linux_out/vmlinux" ] || { echo "gdb-types.sh: $linux_out/vmlinux not found" >&2; exit 1; }

# The compile command, up to the first ';' (what follows runs objtool on the build's own object).
compile=$(sed -n 's/^cmd_init\/init_task.o := //p' "$cmdfile")
compile=${compile%%;*}
case "$compile" in
    *" -o init/init_task.o "*) ;;
    *) echo "gdb-types.sh: unexpected command in $cmdfile" >&2; exit 1 ;;
esac
compile=${compile/-Wp,-MMD,init\/.init_task.o.d/}
compile=${compile/ -o init\/init_task.o / -g -gdwarf-4 -o $dest\/init_task.debug.o }
(cd "$linux_out/build" && eval "$compile")

address=$(nm "$linux_out/vmlinux" | awk '$3 == "init_task" { print $1 }')
offset=$(nm "$dest/init_task.debug.o" | awk '$3 == "init_task" { print $1 }')
[ -n "$address" ] && [ -n "$offset" ] || { echo "gdb-types.sh: init_task not found in vmlinux or the object" >&2; exit 1; }
data=$(printf '0x%x' $((0x$address - 0x$offset)))
cat > "$dest/kernel-types.gdb" <<GDB
# Written by guest/linux/gdb-types.sh: the types of $linux_out/vmlinux (struct task_struct and what
# init/init_task.c includes) from init_task.c compiled again with -g; its .data is placed so that
# init_task is at 0x$address as in vmlinux (only init_task's address is right; use the types for others).
add-symbol-file $dest/init_task.debug.o -s .data $data
GDB
echo "$dest/kernel-types.gdb"
