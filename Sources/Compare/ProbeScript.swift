// ProbeScript: the operating-system half of compare's questions, as one POSIX shell script that runs the
// same way in the container (busybox sh from the rootfs), in the Linux guest (busybox sh from the
// initramfs, which guest/linux/build.sh packs from the same rootfs) and on the host (the host's /bin/sh, for
// the reference column). The CPU half is the probe helper (guest/probe/helper.c), which the script runs
// where it finds it.
//
// With arguments (the Linux guest), it first runs them as the command under test between two lab markers
// (5 before, 6 after: bytes to port 0x440 through /dev/port, or to its MMIO twin at 0x3ffff000 through
// /dev/mem as guest/linux/init.c does on kernels without /dev/port; timestamped by the VMM; nothing happens
// where neither exists, as in a container), then answers. It prints "swiftlet-probe: KEY VALUE" lines (ProbeAnswers parses
// them) and exits with the command's status. Questions and keys:
//   uname-r, proc-version          the kernel it runs on
//   pid1, self-pid                 /proc/1/comm, and its own PID ($$)
//   nproc, cpuinfo-processors      CPUs it may run on, CPUs the kernel lists
//   memtotal-kib                   MemTotal from /proc/meminfo
//   hostname
//   processes, sees-launcher       processes in its /proc, and whether one of them is the host process that
//                                  launched it (compare launches with `--report FILE`; the pattern is split
//                                  in the script so the script itself never matches)
//   dev-kvm                        whether /dev/kvm exists
//   mounts                         mount points (/proc/mounts)
//   modules, sys-modules           loaded kernel modules (/proc/modules); where the kernel has no loadable
//                                  modules (no /proc/modules), the modules it lists in /sys/module
//   command-exit                   the command's exit status (with arguments)

public enum ProbeScript {
    /// Where the probe helper is looked for, in order: the Linux guest's initramfs addition, then the
    /// directories compare binds into a container.
    public static let helperName = "swiftlet-probe-helper"
    public static let containerBindPoints = ["/mnt", "/tmp"]
    public static let fallbackBindPoint = "/.swiftlet-probe"

    public static let text = """
    # swiftlet compare's probe: the same questions in a container, in a Linux guest and on the host.
    say() { echo "swiftlet-probe: $*"; }
    outb() {
        if [ -c /dev/port ]; then
            printf "\\\\$(printf %03o "$(($2 & 255))")" | dd of=/dev/port bs=1 seek="$(($1))" count=1 2>/dev/null
        elif [ "$(($1))" = "$((0x440))" ] && [ -c /dev/mem ]; then
            devmem 0x3ffff000 32 "$(($2 & 255))" 2>/dev/null
        fi
    }
    status=0
    if [ $# -gt 0 ]; then
        outb 0x440 5
        "$@"
        status=$?
        outb 0x440 6
        say command-exit "$status"
    fi
    say uname-r "$(uname -r)"
    say proc-version "$(cat /proc/version 2>/dev/null)"
    say pid1 "$(cat /proc/1/comm 2>/dev/null)"
    say self-pid "$$"
    say nproc "$(nproc 2>/dev/null)"
    say cpuinfo-processors "$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)"
    say memtotal-kib "$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null)"
    say hostname "$(uname -n)"
    n=0
    launcher=no
    for d in /proc/[0-9]*; do
        [ -r "$d/cmdline" ] || continue
        n=$((n + 1))
        c=$(tr '\\000' ' ' < "$d/cmdline" 2>/dev/null)
        case "$c" in *"--rep""ort "*) launcher=yes ;; esac
    done
    say processes "$n"
    say sees-launcher "$launcher"
    if [ -e /dev/kvm ]; then say dev-kvm yes; else say dev-kvm no; fi
    say mounts "$(awk '{ print $2 }' /proc/mounts 2>/dev/null | tr '\\n' ' ')"
    if [ -r /proc/modules ]; then
        say modules "$(awk '{ print $1 }' /proc/modules | tr '\\n' ' ')"
    elif [ -d /sys/module ]; then
        say sys-modules "$(ls /sys/module | tr '\\n' ' ')"
    fi
    for helper in /\(helperName) /mnt/\(helperName) /tmp/\(helperName) /.swiftlet-probe/\(helperName); do
        if [ -x "$helper" ]; then "$helper"; break; fi
    done
    say done ok
    exit "$status"

    """
}
