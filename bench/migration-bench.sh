#!/usr/bin/env bash
# Benchmark (not a test: nothing here is asserted): wide-area live
# migration of a virtual cluster of 4 guests from site A to site B, with
# the methods a user would choose between, side by side in one run, and
# against the physical lower bound.
#
#   bench/migration-bench.sh [--wan 100/20 | 1000/5 | 20/60]
#                            [--variant static | dirty | both] [--out DIR]
#
# --wan RATE/RTT: Mbit/s and round-trip ms of the emulated WAN (default
# 100/20; issue 14's goals are at 100/20 and 1000/5). --variant: guests
# with a static memory, guests with a writer dirtying pages, or both one
# after the other (default both). --out: where the report goes (default
# bench/results): migration.md and migration.png, with a -RATE-RTT suffix
# for another WAN than the default.
#
# Each method runs on fresh sites and guests (as root, 2 sites of 4 nodes
# from tests/lib/sites.sh): site B runs 2 guests of the image (b1, b2),
# the cluster's 4 guests run on a1..a4 and migrate all at once to
# b1..b4. Methods: stock precopy (patched QEMU, x-page-hash off), XBZRLE,
# multifd + zstd at BENCH_ZSTD_LEVEL (multifd-zstd) and at level 1
# (multifd-zstd1), page-hash with the pages that go in full raw
# (page-hash-raw: x-page-hash-zstd-level=0) and in its zstd stream
# (page-hash, QEMU's default level 1); both page-hash methods with
# dht-pagesd on b1..b4. Page-hash + compression + delta is not built,
# and the report says so.
# Measured: WAN bytes on site A's WAN interface (both ways), the time
# until the last destination has loaded everything, per-guest downtime
# (QEMU's, and the source's STOP to its destination's completion), CPU
# seconds of the source QEMUs, the destination QEMUs and dht-pagesd; the
# lower bound comes from the guests' RAM files (bench/lower-bound.py).
# About 2 minutes a method and variant on 2 shared cores here: 20-25
# minutes for the 6 methods and both variants.
#
# Knobs (environment): BENCH_MEM (256 MiB per guest; the image does not
# boot in 128), BENCH_UNIQUE_MB (16), BENCH_DIRTY_MB (8), BENCH_DIRTY_RATE
# (300 pages/s per guest), BENCH_METHODS ("stock xbzrle multifd-zstd
# multifd-zstd1 page-hash-raw page-hash"), BENCH_ZSTD_LEVEL (3:
# multifd-zstd's level and the lower bound's), BENCH_MULTIFD_CHANNELS (2),
# BENCH_XBZRLE_CACHE_MB (64), BENCH_TIMEOUT (900 s per method), BENCH_KEEP
# (a directory to keep the raw lines and the per-run JSON in, even when
# the report fails; bench/migration-report.py re-reads them).

source "$(dirname "$0")/../tests/lib/functions.sh"
source "$(dirname "$0")/../tests/lib/sites.sh"
source "$(dirname "$0")/../tests/lib/guests.sh"
source "$(dirname "$0")/../tests/lib/pages.sh"
source "$(dirname "$0")/lib/bench.sh"

usage() {
    echo "usage: migration-bench.sh [--wan 100/20|1000/5|20/60]" \
        "[--variant static|dirty|both] [--out DIR]" >&2
    exit 2
}

# The command as run, for the report: the knobs that shape the results,
# the options.
bench_cmd=$(env | { grep -E '^BENCH_[A-Z_]+=' | grep -v '^BENCH_KEEP=' || true; } |
    sort | tr '\n' ' ')
bench_cmd+="bench/migration-bench.sh${*:+ $*}"
arg_wan=100/20
arg_variant=both
arg_out=$VC_SRCDIR/bench/results
while (($#)); do
    (($# >= 2)) || usage
    case $1 in
    --wan) arg_wan=$2 ;;
    --variant) arg_variant=$2 ;;
    --out) arg_out=$2 ;;
    *) usage ;;
    esac
    shift 2
done
case $arg_wan in 100/20 | 1000/5 | 20/60) ;; *) usage ;; esac
case $arg_variant in
static | dirty) VARIANTS=$arg_variant ;;
both) VARIANTS="static dirty" ;;
*) usage ;;
esac

RATE=${arg_wan%/*}
RTT=${arg_wan#*/}
MEM=${BENCH_MEM:-256}
UNIQUE_MB=${BENCH_UNIQUE_MB:-16}
DIRTY_MB=${BENCH_DIRTY_MB:-8}
DIRTY_RATE=${BENCH_DIRTY_RATE:-300}
METHODS=${BENCH_METHODS:-stock xbzrle multifd-zstd multifd-zstd1 page-hash-raw page-hash}
ZSTD_LEVEL=${BENCH_ZSTD_LEVEL:-3}
MULTIFD_CHANNELS=${BENCH_MULTIFD_CHANNELS:-2}
XBZRLE_CACHE_MB=${BENCH_XBZRLE_CACHE_MB:-64}
TIMEOUT=${BENCH_TIMEOUT:-900}
NGUESTS=4
PORT=4444
# dht-pagesd counters the report quotes.
PAGESD_KEYS="lookups hits_cache hits_ram hits_peer misses coalesced_hits published
    stale_ram_pages peer_errors pages_hashed ram_pages coalesce_waits coalesce_served
    publish_rejected claims_fetch claims_decided claims_fulfilled claims_dropped claims_live"
suffix=
[[ $arg_wan == 100/20 ]] || suffix=-$RATE-$RTT

requires_root
needs ip socat python3 zstd gnuplot
for exe in "$VC_PAGESD" "$VC_PAGES_CLI" "$VC_WANEM"; do
    [[ -x $exe ]] || fail "'$exe' not built (ninja -C $VC_BUILDDIR)"
done
QEMU=$(bash "$VC_SRCDIR/qemu-patches/build-qemu.sh") || fail "no patched QEMU"
mkdir -p "$arg_out"
RUNS=$VC_TESTDIR/runs
mkdir -p "$RUNS"
: >"$BENCH_RAW"
bench_t0=$SECONDS

# cpu_s PID...: user + system CPU seconds of the processes so far.
CLK_TCK=$(getconf CLK_TCK)
cpu_s() {
    local p
    for p; do sed 's/.*) //' "/proc/$p/stat"; done |
        awk -v hz="$CLK_TCK" '{ t += $12 + $13 } END { printf "%.2f", t / hz }'
}
# tcp_counters SITE: TCP segments sent and retransmitted by its nodes
# (the namespaces are new for each method, so these are the run's).
tcp_counters() {
    local i
    for ((i = 1; i <= NGUESTS; i++)); do
        on_node "$1" "$i" cat /proc/net/snmp
    done | awk -v s="$1" '$1 == "Tcp:" && $2 ~ /^[0-9]/ { out += $12; re += $13 }
        END { printf "%s_tcp_out_segs=%d %s_tcp_retrans_segs=%d", s, out, s, re }'
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# method_args METHOD: the QEMU settings of METHOD on both ends, in
# M_ARGS (vm_start options). Capabilities are -global properties so that
# both ends have them before the incoming side listens (multifd needs it).
method_args() {
    local g=()
    case $1 in
    stock) M_ARGS=(--page-hash off); return ;;
    page-hash | page-hash-raw)
        # Level 1 is QEMU's default, said here so the report shows it.
        M_ARGS=(--page-hash on --qemu-arg -global --qemu-arg
            "migration.x-page-hash-zstd-level=$([[ $1 == page-hash ]] &&
                echo 1 || echo 0)")
        return ;;
    xbzrle)
        g=(migration.x-xbzrle=on
            "migration.xbzrle-cache-size=$((XBZRLE_CACHE_MB << 20))") ;;
    multifd-zstd | multifd-zstd1)
        # migrate-set-parameters ignores multifd-zstd-level in 7.2.
        g=(migration.x-multifd=on migration.multifd-compression=zstd
            "migration.multifd-zstd-level=$([[ $1 == multifd-zstd1 ]] &&
                echo 1 || echo "$ZSTD_LEVEL")"
            "migration.multifd-channels=$MULTIFD_CHANNELS") ;;
    *) fail "unknown method '$1'" ;;
    esac
    M_ARGS=()
    local s
    for s in "${g[@]}"; do M_ARGS+=(--qemu-arg -global --qemu-arg "$s"); done
}

# run_method VARIANT METHOD TAG: one method on fresh sites and guests.
run_method() {
    local variant=$1 method=$2 tag=$3 i
    local id=$variant-$method
    local shape=(--qemu "$QEMU" --mem "$MEM" --unique-mb "$UNIQUE_MB")
    local dirty=() specs=() src=() dst=() pagesd=() resolver=()
    [[ $variant == static ]] || dirty=(--dirty-mb "$DIRTY_MB" --dirty-rate "$DIRTY_RATE")
    method_args "$method"
    log "=== $id: sites, guests"
    machine_load "$id"
    sites_create 2 "$NGUESTS" --rate "$RATE" \
        --delay "$(awk -v r="$RTT" 'BEGIN { print r / 2 }')"
    for i in 1 2; do
        vm_start "$tag-b$i" b "$i" "10.77.2.10$i" "${shape[@]}" --seed $((200 + i))
    done
    for ((i = 1; i <= NGUESTS; i++)); do
        vm_start "$tag-c$i" a "$i" "10.77.1.10$i" "${shape[@]}" "${dirty[@]}" \
            --seed $((100 + i)) "${M_ARGS[@]}"
        src+=("$tag-c$i")
    done
    for g in "$tag-b1" "$tag-b2" "${src[@]}"; do
        vm_wait_ready "$g" 300 || fail "$id: guest $g did not boot"
    done
    if [[ $method == page-hash* ]]; then
        for ((i = 1; i <= NGUESTS; i++)); do
            pages_start b "$i" --hash-rate 0
        done
        for ((i = 1; i <= NGUESTS; i++)); do
            pages_wait_members b "$i" $((NGUESTS - 1)) 120 ||
                fail "$id: site B did not form"
            pagesd+=("$(pages_pid b "$i")")
        done
        pages_wait_indexed b 1 1 120 && pages_wait_indexed b 2 1 120 ||
            fail "$id: site B did not index its guests"
        raw "pagesd_before id=$id b1_ram_pages=$(pages_stat b 1 ram_pages)" \
            "b2_ram_pages=$(pages_stat b 2 ram_pages)"
    fi
    for ((i = 1; i <= NGUESTS; i++)); do
        resolver=()
        [[ $method != page-hash* ]] || resolver=(--resolver "$(pages_sock b "$i")")
        vm_start "$tag-d$i" b "$i" "10.77.1.10$i" "${shape[@]}" "${dirty[@]}" \
            --seed $((100 + i)) "${M_ARGS[@]}" "${resolver[@]}" --incoming "$PORT"
        dst+=("$tag-d$i")
        specs+=("$(vm_qmp_socket "$tag-c$i"),$(vm_qmp_socket "$tag-d$i"),$(
            vm_incoming_uri "$tag-d$i")")
    done

    # The bound, from the RAM the guests have right before they migrate.
    local lb
    lb=$(python3 "$VC_SRCDIR/bench/lower-bound.py" --zstd-level "$ZSTD_LEVEL" \
        --site "$(vm_ram_file "$tag-b1")" "$(vm_ram_file "$tag-b2")" \
        --cluster $(for g in "${src[@]}"; do vm_ram_file "$g"; done)) ||
        fail "$id: lower bound failed"
    raw "${lb/lower_bound /lower_bound id=$id }"

    local src_pids=() dst_pids=() g c0 c1 w0 w1 t0 t1 s0 d0 p0 p1 rc=0
    for g in "${src[@]}"; do src_pids+=("$(vm_pid "$g")"); done
    for g in "${dst[@]}"; do dst_pids+=("$(vm_pid "$g")"); done
    # What the guests themselves cost (TCG), so CPU can be read net of it.
    c0=$(cpu_s "${src_pids[@]}")
    sleep 3
    c1=$(cpu_s "${src_pids[@]}")
    s0=$(cpu_s "${src_pids[@]}")
    d0=$(cpu_s "${dst_pids[@]}")
    p0=0
    ((${#pagesd[@]} == 0)) || p0=$(cpu_s "${pagesd[@]}")
    w0=$(wan_bytes a)
    t0=$(now)
    log "$id: migrating ${src[*]} at once"
    python3 "$VC_SRCDIR/bench/cluster-migrate.py" --timeout "$TIMEOUT" "${specs[@]}" \
        >"$RUNS/$id.json" || rc=$?
    t1=$(now)
    sleep 1 # the last ACKs and FINs
    w1=$(wan_bytes a)
    local line="run id=$id variant=$variant method=$method rc=$rc"
    line+=" wan_bytes=$((w1 - w0)) wall_s=$(elapsed "$t0" "$t1")"
    line+=" cpu_src_s=$(sub "$s0" "$(cpu_s "${src_pids[@]}")")"
    line+=" cpu_dst_s=$(sub "$d0" "$(cpu_s "${dst_pids[@]}")")"
    p1=0
    ((${#pagesd[@]} == 0)) || p1=$(cpu_s "${pagesd[@]}")
    line+=" cpu_pagesd_s=$(sub "$p0" "$p1")"
    line+=" guest_cpu_per_s=$(awk -v a="$c0" -v b="$c1" \
        'BEGIN { printf "%.3f", (b - a) / 3 }')"
    line+=" qemu_args=\"${M_ARGS[*]}\""
    raw "$line"
    # The WAN queue drops what overflows it and TCP sends it again; those
    # bytes are in the interface counters, so say how many there were.
    raw "wan id=$id $(wan_stats | awk -v RS=';' '{ p = $0 ~ /-agw:/ ? "a" : "b"
        for (i = 1; i <= NF; i++) if ($i ~ /^(rx_bytes|tx_bytes|drop_queue|drop_loss)=/)
            printf "%s_%s ", p, $i }') $(tcp_counters a) $(tcp_counters b)"
    if [[ $method == page-hash* ]]; then
        for ((i = 1; i <= NGUESTS; i++)); do
            raw "pagesd id=$id node=b$i $(pages_cli b "$i" stats | awk -F': ' \
                -v keys="$PAGESD_KEYS" 'BEGIN { n = split(keys, k, " ")
                    for (i = 1; i <= n; i++) want[k[i]] = 1 }
                $1 in want { printf "%s=%s ", $1, $2 }')"
        done
    fi
    ((rc == 0)) || log "$id: not every migration completed (see the report)"

    for g in "${src[@]}" "${dst[@]}" "$tag-b1" "$tag-b2"; do vm_kill "$g"; done
    for ((i = 1; i <= NGUESTS; i++)); do
        pages_stop b "$i"
        rm -f "$VC_TESTDIR/pagesd-b$i.pid"
    done
    sites_destroy
}

sites_gc
machine_info
raw "scenario wan_mbit=$RATE rtt_ms=$RTT guests=$NGUESTS site_b_guests=2" \
    "mem_mib=$MEM unique_mib=$UNIQUE_MB dirty_mib=$DIRTY_MB" \
    "dirty_pages_per_s=$DIRTY_RATE zstd_level=$ZSTD_LEVEL" \
    "multifd_channels=$MULTIFD_CHANNELS xbzrle_cache_mib=$XBZRLE_CACHE_MB" \
    "accel=$(vc_accel) qemu=$QEMU"
machine_load start
n=0
for variant in $VARIANTS; do
    for method in $METHODS; do
        n=$((n + 1))
        run_method "$variant" "$method" "${variant:0:1}$n"
    done
done
machine_load end
raw "bench wall_s=$((SECONDS - bench_t0))"

# Kept before the report, so that a report that fails can be made again.
if [[ -n ${BENCH_KEEP:-} ]]; then
    mkdir -p "$BENCH_KEEP"
    cp -r "$BENCH_RAW" "$RUNS" "$BENCH_KEEP/"
fi
python3 "$VC_SRCDIR/bench/migration-report.py" --raw "$BENCH_RAW" --runs "$RUNS" \
    --command "$bench_cmd" --md "$arg_out/migration$suffix.md" \
    --png "$arg_out/migration$suffix.png" || fail "report failed"
log "report: $arg_out/migration$suffix.md, $arg_out/migration$suffix.png"
