#!/bin/bash
# bench/soak.sh: issue 14's soak. Boots N tiny guests and runs N containers with limits, side by side in
# pairs, and checks that the host looks the same afterwards: open files (/proc/sys/fs/file-nr), free
# memory, mount points, Swiftlet's cgroups, /tmp entries, leftover swiftlet processes. Every KILL_EVERY-th
# pair is killed with SIGKILL at a random point (0-KILL_MS ms after start): the container launcher, the VMM
# (confined, half of them under --jail: then the launcher, which takes the VMM with it). What a killed
# launcher leaves behind (its cgroup) must be swept by the next run; anything else found at the end is a leak.
#
#   bench/soak.sh [N]          N pairs (default 1000); SWIFTLET=path/to/swiftlet ROOTFS=dir
#   KILL_EVERY=5 KILL_MS=40    how often and how late to SIGKILL
# Exit status: 0 when nothing leaked, 1 otherwise. Run as root (containers with cgroup limits).
set -u
cd "$(dirname "$0")/.."
N=${1:-1000}
SWIFTLET=$(realpath "${SWIFTLET:-.build/debug/swiftlet}")
ROOTFS=${ROOTFS:-guest/rootfs/out/rootfs}
KILL_EVERY=${KILL_EVERY:-5}
KILL_MS=${KILL_MS:-40}

# The host is shared (other users run swiftlet, podman, tests): the checks that decide count only what
# this soak made (its launchers' cgroups, its binary's processes, its rootfs in the host's mount table);
# the host-wide counts are printed for the record.
launchers=()
snapshot() {
    echo "files $(cut -f1 /proc/sys/fs/file-nr)"
    echo "mounts $(wc -l < /proc/self/mountinfo)"
    echo "our_mounts $(grep -c -F "$(realpath "$ROOTFS")" /proc/self/mountinfo)"
    local ours=0 pid
    for pid in "${launchers[@]}"; do
        ours=$((ours + $(find /sys/fs/cgroup -maxdepth 3 -type d -name "swiftlet-$pid-*" 2>/dev/null | wc -l)))
    done
    echo "our_cgroups $ours"
    echo "tmp $(ls -A /tmp | wc -l)"
    echo "our_processes $(pgrep -c -f "^$SWIFTLET (boot|container)" || true)"
}
memory_kib() { awk '/MemAvailable/ { print $2 }' /proc/meminfo; }

# The status a clean run of the hello guest gives (its debug-exit value, as this build reports it).
$SWIFTLET boot >/dev/null 2>&1; hello_status=$?
before=$(snapshot); mem_before=$(memory_kib)
started=$(date +%s.%N)
vm_ok=0 vm_killed=0 vm_bad=0 ct_ok=0 ct_killed=0 ct_bad=0 max_vm_rss=0 max_ct_rss=0
for ((i = 1; i <= N; i++)); do
    jail=(); (( i % 2 == 0 )) && jail=(--jail)
    $SWIFTLET boot "${jail[@]}" --report /tmp/soak-vm.report >/dev/null 2>/tmp/soak-vm.err & vm=$!
    $SWIFTLET container run --rootfs "$ROOTFS" --memory 32M --pids 16 --report /tmp/soak-ct.report -- sh -c 'echo soak > /dev/null' >/dev/null 2>/tmp/soak-ct.err & ct=$!
    launchers+=($ct)
    killing=0
    if (( i % KILL_EVERY == 0 )); then
        killing=1
        sleep "0.0$(printf '%02d' $((RANDOM % KILL_MS)))"
        kill -KILL $vm $ct 2>/dev/null
    fi
    wait $vm; vs=$?; wait $ct; cs=$?
    if (( vs == hello_status )); then vm_ok=$((vm_ok + 1)); elif (( killing && vs == 137 )); then vm_killed=$((vm_killed + 1)); else vm_bad=$((vm_bad + 1)); echo "boot $i: status $vs: $(head -c 300 /tmp/soak-vm.err)"; fi
    if (( cs == 0 )); then ct_ok=$((ct_ok + 1)); elif (( killing && cs == 137 )); then ct_killed=$((ct_killed + 1)); else ct_bad=$((ct_bad + 1)); echo "container $i: status $cs: $(head -c 300 /tmp/soak-ct.err)"; fi
    r=$(sed -n 's/.*"ram_resident_bytes": *\([0-9]*\).*/\1/p' /tmp/soak-vm.report 2>/dev/null | head -1); [ -n "$r" ] && r=$((r / 1024)) && (( r > max_vm_rss )) && max_vm_rss=$r
    r=$(sed -n 's/.*"maxrss_launcher_kib": *\([0-9]*\).*/\1/p' /tmp/soak-ct.report 2>/dev/null | head -1); [ -n "$r" ] && (( r > max_ct_rss )) && max_ct_rss=$r
done
# One clean run of each sweeps what a killed launcher left (ContainerCgroup.sweepStale).
$SWIFTLET container run --rootfs "$ROOTFS" --memory 32M -- true >/dev/null 2>&1
sleep 1
rm -f /tmp/soak-vm.report /tmp/soak-ct.report /tmp/soak-vm.err /tmp/soak-ct.err
after=$(snapshot); mem_after=$(memory_kib)
seconds=$(echo "$(date +%s.%N) - $started" | bc)
echo "soak: $N pairs in ${seconds}s; VMs: $vm_ok ran to their status, $vm_killed killed, $vm_bad unexpected; containers: $ct_ok ran, $ct_killed killed, $ct_bad unexpected"
echo "soak: largest: guest RAM resident ${max_vm_rss} KiB (VMM report), container launcher max RSS ${max_ct_rss} KiB; MemAvailable ${mem_before} -> ${mem_after} KiB"
leak=0
while read -r key value; do
    was=$(echo "$before" | awk -v k="$key" '$1 == k { print $2 }')
    echo "soak: $key before $was after $value"
    case $key in
        our_*) (( value > was )) && leak=1 ;;
        *) ;;                                            # shared with the rest of the host: for the record
    esac
done <<< "$after"
(( vm_bad + ct_bad > 0 )) && leak=1
exit $leak
