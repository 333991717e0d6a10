#!/usr/bin/env bash
# Benchmark (not a test: nothing here is asserted): cluster memory
# (ssi-guest/README.md, "Cluster memory") against swap on a local virtio
# disk and against no swap at all, side by side in one run, on the same
# borrower VM.
#
#   bench/ssi-mem.sh [--mib 384] [--out DIR]
#
# One site of 2 nodes (tests/lib/sites.sh). m1, the borrower: an SSI
# member of 256 MiB (as tests/test-ssi-mem.sh has it) with one more
# virtio disk, a raw file on the host's disk opened with cache=none, so
# that its swap goes to a disk and not to the host's page cache. DONORS
# members of DONOR_MEM MiB, each `ssi mem donate DONATE`. Then, one after
# the other in m1, `ssi-memtest MIB` (MIB MiB of incompressible data
# written, then read back and checked: 1.5x the VM's RAM by default), in
# a memory cgroup of CGROUP MiB (so that only its pages are swapped out)
# unless the method ends in -global:
#   nomem(-global)   no swap: the OOM killer ends it (its exit status
#                    and the kernel's line are reported)
#   cluster          `ssi mem borrow MIB`: swap on md RAID10 over NVMe/TCP
#                    legs in the donors' RAM, zswap in front as ssid sets it
#   cluster-nozswap  the same array, zswap disabled
#   local            `ssi mem borrow 0`, then swap on the virtio disk, with
#                    zswap and vm.min_free_kbytes as ssid had set them
#   local-nozswap    the same disk, zswap disabled
#   local-global     the same disk, zswap on, no cgroup
#   cluster-global   last: cluster memory, no cgroup; if the borrower is
#                    dropped from the view meanwhile, that is reported
# Measured for each: wall clock as seen from the host, ssi-memtest's own
# time, its exit status, and the MiB swapped out and in (/proc/vmstat).
# BENCH_RUNS > 1 repeats the swap methods, interleaved (one round of each
# after the other), to show the noise of this shared machine.
# Takes about 12 minutes here (2 shared cores, TCG).
#
# Knobs (environment): BENCH_CGROUP (96), BENCH_DONORS (4), BENCH_DONOR_MEM (704),
# BENCH_DONATE (400), BENCH_RUNS (1), BENCH_TIMEOUT (1200 s per run),
# BENCH_METHODS (all of the above, in that order), BENCH_KEEP (a
# directory to keep the raw lines and serial logs in).

source "$(dirname "$0")/../tests/lib/functions.sh"
source "$(dirname "$0")/../tests/lib/sites.sh"
source "$(dirname "$0")/../tests/lib/guests.sh"
source "$(dirname "$0")/../tests/lib/ssi.sh"
source "$(dirname "$0")/lib/bench.sh"

usage() {
    echo "usage: ssi-mem.sh [--mib MIB] [--out DIR]" >&2
    exit 2
}

bench_cmd=$(env | { grep -E '^BENCH_[A-Z_]+=' | grep -v '^BENCH_KEEP=' || true; } |
    sort | tr '\n' ' ')
bench_cmd+="bench/ssi-mem.sh${*:+ $*}"
MIB=384
arg_out=$VC_SRCDIR/bench/results
while (($#)); do
    (($# >= 2)) || usage
    case $1 in
    --mib) MIB=$2 ;;
    --out) arg_out=$2 ;;
    *) usage ;;
    esac
    shift 2
done
DONORS=${BENCH_DONORS:-4}
DONOR_MEM=${BENCH_DONOR_MEM:-704}
DONATE=${BENCH_DONATE:-400}
RUNS=${BENCH_RUNS:-1}
TIMEOUT=${BENCH_TIMEOUT:-1200}
METHODS=${BENCH_METHODS:-nomem-global nomem cluster cluster-nozswap local local-nozswap local-global cluster-global}
CGROUP=${BENCH_CGROUP:-96}
for v in "$MIB" "$DONORS" "$DONOR_MEM" "$DONATE" "$RUNS" "$TIMEOUT"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || usage
done
((MIB <= 4096 && DONORS >= 2 && DONORS <= 8 && RUNS <= 10)) || usage
BORROWER_MEM=256

requires_root
needs qemu-system-x86_64 qemu-img socat python3
[[ -f $VC_SSI_IMAGE/initrd.img ]] || fail "no SSI image in '$VC_SSI_IMAGE' (meson compile)"
mkdir -p "$arg_out"
: >"$BENCH_RAW"
bench_t0=$SECONDS
out=$VC_TESTDIR/out
mkdir -p "$out"
keep_logs() {
    [[ -n ${BENCH_KEEP:-} ]] || return 0
    mkdir -p "$BENCH_KEEP"
    cp "$BENCH_RAW" "$BENCH_KEEP/" 2>/dev/null
    for d in "$VC_TESTDIR"/vms/*; do
        [[ -f $d/serial.log ]] && cp "$d/serial.log" "$BENCH_KEEP/$(basename "$d").serial.log"
    done
    return 0
}
cleanup_fn keep_logs

machine_info
sites_create 1 2
# The swap disk: on the host's disk (cache=none), as a VM's local disk.
disk=$VC_TESTDIR/swap.img
qemu-img create -q -f raw "$disk" "$((MIB + 128))M"
key=$(ssi_key)
ssi_vm_start m1 a 1 10.77.1.101 physics "$key" found \
    --qemu-arg -drive --qemu-arg "file=$disk,if=virtio,format=raw,cache=none,aio=threads"
has() { [[ " $METHODS " == *" $1 "* ]]; }
with_cluster=
has cluster || has cluster-nozswap || has cluster-global && with_cluster=1
donors=()
if [[ -n $with_cluster ]]; then
    for ((i = 2; i <= DONORS + 1; i++)); do
        ssi_vm_start "m$i" a $((i % 2 + 1)) "10.77.1.$((100 + i))" physics "$key" 10.77.1.101 \
            --mem "$DONOR_MEM"
        donors+=("m$i")
    done
fi
for vm in m1 "${donors[@]}"; do
    ssi_wait_up "$vm" 400 || fail "$vm did not come up"
done
members() { SSI_SH_TIMEOUT=10 ssi_sh m1 cat /proc/ssi/nodes | awk 'NR > 1' | wc -l; }
has_all() { [[ $(members) -eq $((${#donors[@]} + 1)) ]]; }
wait_for 120 has_all || fail "the cluster did not reach $((${#donors[@]} + 1)) members: $(ssi_sh m1 ssi nodes)"
for vm in "${donors[@]}"; do
    ssi_sh "$vm" ssi mem donate "$DONATE" >/dev/null ||
        fail "ssi mem donate $DONATE on $vm: $(ssi_sh "$vm" ssi mem donate "$DONATE" 2>&1;
            ssi_sh "$vm" grep MemAvailable /proc/meminfo)"
done
raw "setup borrower_mib=$BORROWER_MEM mib=$MIB donors=$DONORS donor_mib=$DONOR_MEM donate_mib=$DONATE" \
    "borrower_memtotal_kib=$(ssi_sh m1 awk "'/^MemTotal/ {print \$2}'" /proc/meminfo)" \
    "borrower_memavailable_kib=$(ssi_sh m1 awk "'/^MemAvailable/ {print \$2}'" /proc/meminfo)" \
    "accel=$(vc_accel)"
machine_load start

swapped() { ssi_sh m1 cat /proc/vmstat | awk '$1 == "pswpout" {o = $2} $1 == "pswpin" {i = $2} END {print o + 0, i + 0}'; }
zswap_set() { ssi_sh m1 "echo $1 >/sys/module/zswap/parameters/enabled"; }
zswap_params() {
    ssi_sh m1 'cd /sys/module/zswap/parameters && for p in *; do echo "zswap_$p=$(cat "$p")"; done' | tr '\n' ' '
}

# ssi-memtest runs in a memory cgroup of CGROUP MiB (methods not named
# *-global): only its own pages are swapped out. Under global pressure
# ssid's own pages go too, and on cluster memory the borrower then
# stops answering heartbeats (see the report): *-global measure that.
ssi_sh m1 "grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
    echo +memory >/sys/fs/cgroup/cgroup.subtree_control && mkdir -p /sys/fs/cgroup/memtest &&
    echo ${CGROUP}M >/sys/fs/cgroup/memtest/memory.max" || fail "cannot make a memory cgroup in m1"
# The borrower in the view a donor holds.
borrower_in_view() {
    local v
    ((${#donors[@]})) || return 0
    v=$(SSI_SH_TIMEOUT=15 ssi_sh "${donors[0]}" cat /proc/ssi/nodes) || return 0
    [[ $v == *" 10.77.1.101 "* ]]
}

# memtest ID METHOD ROUND: one ssi-memtest run in m1; a raw line.
memtest() {
    local id=$1 method=$2 round=$3 t0 t1 rc=0 o0 i0 o1 i1 line secs oom cmd dropped=- i=0
    read -r o0 i0 <<<"$(swapped)"
    ssi_sh m1 'dmesg -c >/dev/null; sync; echo 3 >/proc/sys/vm/drop_caches' >/dev/null || true
    cmd="sh -c 'echo \$\$ >/sys/fs/cgroup/memtest/cgroup.procs && exec ssi-memtest $MIB'"
    [[ $method == *-global ]] && cmd="ssi-memtest $MIB"
    log "=== $method (round $round): $cmd"
    t0=$(now)
    SSI_SH_TIMEOUT=$TIMEOUT ssi_sh_bg m1 "$out/$id" "$cmd 2>/tmp/$id.err" >/dev/null
    while [[ ! -f $out/$id.rc ]]; do
        sleep 0.5
        ((++i % 10 == 0)) || continue
        if [[ $method == cluster* ]] && ! borrower_in_view; then
            dropped=$(elapsed "$t0" "$(now)")
            log "$method: m1 was dropped from the cluster's view after $dropped s"
            break
        fi
    done
    t1=$(now)
    if [[ $dropped != - ]]; then
        raw "run method=$method round=$round rc=dropped wall_s=$(elapsed "$t0" "$t1") memtest_s=-" \
            "swapout_mib=0 swapin_mib=0 oom=- dropped_after_s=$dropped"
        last_dropped=1
        return 0
    fi
    rc=$(cat "$out/$id.rc")
    read -r o1 i1 <<<"$(SSI_SH_TIMEOUT=120 swapped)"
    line=$(grep '^ssi-memtest:' "$out/$id" || true)
    secs=$(sed -n 's/.* \([0-9.]*\) s$/\1/p' <<<"$line")
    oom=$(ssi_sh m1 dmesg | grep -E 'Killed process|Out of memory' | head -n 1 | sed 's/^\[[ 0-9.]*\] //; s/ /_/g' || true)
    raw "run method=$method round=$round rc=$rc wall_s=$(elapsed "$t0" "$t1") memtest_s=${secs:--}" \
        "swapout_mib=$(((o1 - o0) / 256)) swapin_mib=$(((i1 - i0) / 256)) oom=${oom:--}"
    ((rc == 0)) || log "$method: exit $rc: $(cat "$out/$id"; ssi_sh m1 cat "/tmp/$id.err" | tail -n 3)"
}

borrow() {
    local t0 rep
    t0=$(now)
    rep=$(SSI_SH_TIMEOUT=600 ssi_sh m1 ssi mem borrow "$1" 2>&1) || fail "ssi mem borrow $1: $rep"
    raw "borrow mib=$1 wall_s=$(elapsed "$t0" "$(now)")"
    log "$rep"
}

cluster_on=
cluster_up() {
    [[ -z $cluster_on ]] || return 0
    ssi_sh m1 "grep -q '^/dev/vda ' /proc/swaps && swapoff /dev/vda" >/dev/null || true
    borrow "$MIB"
    raw "cluster_settings $(zswap_params)" \
        "min_free_kbytes=$(ssi_sh m1 cat /proc/sys/vm/min_free_kbytes)" \
        "swaps=$(ssi_sh m1 cat /proc/swaps | awk 'NR > 1 {printf "%s%s:%s", s, $1, $3; s = ","}')"
    read_settings
    cluster_on=1
}
# m1's zswap settings and min_free_kbytes, into zs_* and min_free.
read_settings() {
    zs_enabled=$(ssi_sh m1 cat /sys/module/zswap/parameters/enabled)
    zs_compressor=$(ssi_sh m1 cat /sys/module/zswap/parameters/compressor)
    zs_zpool=$(ssi_sh m1 cat /sys/module/zswap/parameters/zpool)
    zs_pool=$(ssi_sh m1 cat /sys/module/zswap/parameters/max_pool_percent)
    min_free=$(ssi_sh m1 cat /proc/sys/vm/min_free_kbytes)
}
cluster_down() {
    [[ -n $cluster_on ]] || return 0
    borrow 0
    cluster_on=
}
local_up() {
    cluster_down
    # ssid's settings, so that only where the swap goes differs.
    ssi_sh m1 "echo $zs_compressor >/sys/module/zswap/parameters/compressor;
        echo $zs_zpool >/sys/module/zswap/parameters/zpool;
        echo $zs_pool >/sys/module/zswap/parameters/max_pool_percent;
        echo $min_free >/proc/sys/vm/min_free_kbytes" || log "note: cannot copy ssid's zswap settings"
    zswap_set "$zs_enabled"
    ssi_sh m1 'grep -q "^/dev/vda " /proc/swaps || { mkswap /dev/vda >/dev/null && swapon /dev/vda; }' ||
        fail "swap on /dev/vda: $(ssi_sh m1 'mkswap /dev/vda; swapon /dev/vda' 2>&1)"
    raw "local_settings $(zswap_params) min_free_kbytes=$(ssi_sh m1 cat /proc/sys/vm/min_free_kbytes)" \
        "swaps=$(ssi_sh m1 cat /proc/swaps | awk 'NR > 1 {printf "%s%s:%s", s, $1, $3; s = ","}')"
}

# zswap's settings as ssid leaves them, before any run (local needs them).
read_settings
raw "boot_settings $(zswap_params) min_free_kbytes=$min_free"

n=0
for m in nomem-global nomem; do
    has "$m" || continue
    assert_eq "swap in m1 before the no-swap run" "" "$(ssi_sh m1 cat /proc/swaps | awk 'NR > 1')"
    memtest "r$((n++))" "$m" 1
done
for ((round = 1; round <= RUNS; round++)); do
    if has cluster || has cluster-nozswap; then
        cluster_up
        if has cluster; then
            zswap_set "$zs_enabled"
            memtest "r$((n++))" cluster "$round"
        fi
        if has cluster-nozswap; then
            zswap_set N
            memtest "r$((n++))" cluster-nozswap "$round"
            zswap_set "$zs_enabled"
        fi
        machine_load "cluster-$round"
    fi
    if has local || has local-nozswap || has local-global; then
        local_up
        for m in local local-nozswap local-global; do
            has "$m" || continue
            [[ $m == local-nozswap ]] && zswap_set N
            memtest "r$((n++))" "$m" "$round"
            zswap_set "$zs_enabled"
        done
        ssi_sh m1 swapoff /dev/vda || fail "swapoff /dev/vda: $(ssi_sh m1 swapoff /dev/vda 2>&1)"
        machine_load "local-$round"
    fi
done
# Last: it may cost the borrower its membership.
if has cluster-global; then
    cluster_up
    zswap_set "$zs_enabled"
    last_dropped=
    memtest "r$((n++))" cluster-global 1
    if [[ -n $last_dropped ]]; then
        grep -h 'silent\|node 1 failed\|left the cluster' "$VC_TESTDIR"/vms/*/serial.log |
            sed 's/^/dropped /' | while read -r l; do raw "$l"; done
    fi
fi
machine_load end
raw "bench wall_s=$((SECONDS - bench_t0))"

# ---- the report ----
report() {
    python3 - "$BENCH_RAW" "$bench_cmd" <<'PY'
import re, statistics, sys

raw, cmd = sys.argv[1], sys.argv[2]
lines = open(raw).read().splitlines()

def kv(line):
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))

runs, meta = [], {}
for l in lines:
    k = l.split(" ", 1)[0]
    if k == "run":
        runs.append(kv(l))
    elif k in ("machine", "setup", "cluster_settings", "local_settings", "boot_settings"):
        meta[k] = kv(l)
order = ["cluster", "cluster-nozswap", "local", "local-nozswap", "nomem",
         "cluster-global", "local-global", "nomem-global"]
label = {
    "cluster": "cluster memory (md RAID10 over NVMe/TCP, zswap as ssid sets it)",
    "cluster-nozswap": "cluster memory, zswap off",
    "local": "swap on a local virtio disk (cache=none), same zswap",
    "local-nozswap": "swap on a local virtio disk, zswap off",
    "nomem": "no swap",
    "cluster-global": "cluster memory, global pressure (no cgroup)",
    "local-global": "local virtio disk, global pressure (no cgroup)",
    "nomem-global": "no swap, global pressure (no cgroup)",
}
by = {m: [r for r in runs if r["method"] == m] for m in order}
def med(rs, key):
    v = [float(r[key]) for r in rs if r.get(key, "-") not in ("-", "")]
    return statistics.median(v) if v else None
base = med([r for r in by["cluster"] if r["rc"] == "0"], "wall_s")
s = meta.get("setup", {})
print("| method | runs | exit | wall s (median) | ssi-memtest s | x cluster | swapped out MiB | swapped in MiB |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
for m in order:
    rs = by[m]
    if not rs:
        continue
    ok = [r for r in rs if r["rc"] == "0"]
    w = med(rs, "wall_s")
    mt = med(ok, "memtest_s")
    ratio = "%.2f" % (w / base) if base and ok and w else "-"
    exits = ",".join(sorted({r["rc"] for r in rs}))
    print("| %s | %d | %s | %s | %s | %s | %d | %d |" % (
        label[m], len(rs), exits, "%.1f" % w if w else "-",
        "%.1f" % mt if mt else "-", ratio,
        statistics.median(int(r["swapout_mib"]) for r in rs),
        statistics.median(int(r["swapin_mib"]) for r in rs)))
for m in ("nomem", "nomem-global"):
    for r in by[m]:
        print()
        print("%s: ssi-memtest exited %s after %s s; the kernel: `%s`" % (
            label[m], r["rc"], r["wall_s"], r["oom"].replace("_", " ")))
for r in by["cluster-global"]:
    if r["rc"] == "dropped":
        print()
        print("%s: **m1 was dropped from the cluster's view %s s after "
              "ssi-memtest started** (its donors then freed its legs; the "
              "run never ends)" % (label["cluster-global"], r["dropped_after_s"]))
PY
}
table=$(report) || fail "report failed"
echo "$table"
{
    echo "# Cluster memory against local swap and no swap"
    echo
    echo "Not a test: measured once, nothing asserted. Command (as root, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) shared vCPUs, nested, guests under $(vc_accel)):"
    echo
    echo "    $bench_cmd"
    echo
    echo "The borrower m1 is an SSI member of $BORROWER_MEM MiB; \`ssi-memtest $MIB\` allocates $MIB MiB there ($(awk -v a="$MIB" -v b="$BORROWER_MEM" 'BEGIN {printf "%.1f", a / b}')x its RAM), writes incompressible data and reads it back, checked. Cluster memory: $DONORS donors of $DONOR_MEM MiB, each \`ssi mem donate $DONATE\`, m1 \`ssi mem borrow $MIB\`. Local swap: a raw file on the host's disk given to m1 as a virtio disk (cache=none, so it is a disk and not the host's page cache). The methods ran one after the other in the same VM; \"x cluster\" is the wall time over cluster memory's. Unless named \"global pressure\", ssi-memtest ran in a memory cgroup of $CGROUP MiB (memory.max), so that only its own pages were swapped out: under global pressure the borrower's ssid is paged out too, misses its heartbeats and is dropped from the cluster (the last row)."
    echo
    echo "$table"
    echo
    echo "Raw lines:"
    echo
    echo '```'
    cat "$BENCH_RAW"
    echo '```'
} >"$arg_out/ssi-mem.md"
log "report: $arg_out/ssi-mem.md"
