#!/usr/bin/env bash
# Side-by-side comparison of two dht-pagesd builds (not a test: nothing is
# asserted). On a shared machine a number measured an hour apart says
# little; this runs both builds in alternation (A B B A A B ...) on the
# same site, the same RAM file and the same client, and prints each run
# and the median per build.
#
#   A=/tmp/old/build B=build bench/dht-pages-ab.sh
#
# Both builds' daemons run the same way bench/dht-pages-bench.sh runs them
# (--hash-rate 0). The client is A's dp-bench for both (DP_BENCH
# overrides), so that only the daemons differ.
#
# For runs against node 3, res_us is the CPU time of node 3's daemon
# alone (the resolving node; its RAM scanner apart) divided by the
# remote hits it served in the run (its hits_peer counter): the holder's
# and the owners' share are not in it. The last lines give each build's
# median, the ratio B / A of the medians and the median of each round's
# ratio, against the issue's target (<= 5 us).
#
# Knobs (environment): AB_NODES (4), AB_RAM_MB (256), AB_SAMPLE (50000),
# AB_ROUNDS (3), AB_SECONDS (5), AB_BATCH (256), AB_RUNS (the lookup runs,
# default "1:node3 2:node3 1:node1": connections:node), AB_PERF (a
# directory: record `perf record -a -g` of one run per build there).

source "$(dirname "$0")/../tests/lib/functions.sh"
source "$(dirname "$0")/../tests/lib/sites.sh"
source "$(dirname "$0")/../tests/lib/guests.sh"
source "$(dirname "$0")/../tests/lib/pages.sh"

requires_root
needs ip

A=${A:?A=BUILDDIR of the first build}
B=${B:?B=BUILDDIR of the second build}
DP_BENCH=${DP_BENCH:-$A/bench/dp-bench}
NODES=${AB_NODES:-4}
RAM_MB=${AB_RAM_MB:-256}
SAMPLE=${AB_SAMPLE:-50000}
ROUNDS=${AB_ROUNDS:-3}
SECS=${AB_SECONDS:-5}
BATCH=${AB_BATCH:-256}
RUNS=${AB_RUNS:-1:node3 2:node3 1:node1}
PERF_DIR=${AB_PERF:-}

for b in "$A" "$B"; do
    for exe in "$b/dht-pages/pagesd/dht-pagesd" "$b/dht-pages/cli/dht-pages"; do
        [[ -x $exe ]] || fail "'$exe' not built"
    done
done
[[ -x $DP_BENCH ]] || fail "'$DP_BENCH' not built"

sites_gc
SHM=/dev/shm/$VC_SITE_PREFIX
mkdir -p "$SHM"
cleanup_fn rm -rf "$SHM"
sites_create 1 "$NODES"
cleanup_fn sites_destroy

npages=$((RAM_MB * 256))
src=$SHM/ab.src
head -c "$((RAM_MB * 1024 * 1024))" /dev/urandom >"$src"
"$A/dht-pages/cli/dht-pages" hash "$src" | cut -d' ' -f1 |
    shuf -n "$SAMPLE" >"$VC_TESTDIR/sample.hashes"

# site_up BUILD: the site's daemons of BUILD, node 1 holding the file.
site_up() {
    local n
    VC_PAGESD=$1/dht-pages/pagesd/dht-pagesd
    VC_PAGES_CLI=$1/dht-pages/cli/dht-pages
    for ((n = 1; n <= NODES; n++)); do
        pages_start a "$n" --hash-rate 0
    done
    for ((n = 1; n <= NODES; n++)); do
        pages_wait_members a "$n" $((NODES - 1)) 120 || fail "site did not form"
    done
    # Whole at once (the daemon maps the size it finds), as a guest's.
    cp "$src" "$(vm_ram_dir a 1)/ab.tmp"
    mv "$(vm_ram_dir a 1)/ab.tmp" "$(vm_ram_dir a 1)/ab.ram"
    wait_for 120 _ab_indexed || fail "index incomplete"
}

_ab_indexed() {
    local n total=0 v
    for ((n = 1; n <= NODES; n++)); do
        v=$(pages_stat a "$n" index_entries)
        total=$((total + ${v:-0}))
    done
    ((total == npages))
}

site_down() {
    local n
    for ((n = 1; n <= NODES; n++)); do
        pages_stop a "$n"
        rm -f "$VC_TESTDIR/pagesd-a$n.pid"
    done
    rm -f "$(vm_ram_dir a 1)/ab.ram"
}

kv() {
    awk -v k="$2" '{ for (i = 1; i <= NF; i++) { n = index($i, "=");
        if (substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' \
        <<<"$1"
}

declare -A V # V[build,run,metric]="values..."
METRICS="lookups_per_s p50_ms p99_ms cpu_us client_us node1_us node3_us others_us scan_us res_us"
RES_TARGET_US=5

# ticks N: CPU clock ticks (user + system) used so far by node N's
# daemon, but for its RAM scanner (which re-hashes the RAM file every few
# seconds, whatever the lookups do); scan_ticks N: the scanner's.
ticks() {
    local pid
    pid=$(pages_pid a "$1")
    echo $(($(awk '{ print $14 + $15 }' "/proc/$pid/stat") - $(scan_ticks "$1")))
}
scan_ticks() {
    local pid
    pid=$(pages_pid a "$1")
    grep -h '(scanner)' /proc/"$pid"/task/*/stat | awk '{ t += $14 + $15 } END { print t + 0 }'
}
declare -A perfed=()
declare -a t0 s0 d
hits0=0

# res_per_hit: node 3's CPU µs per remote hit it served since t0[3] and
# hits0 (its scanner apart).
res_per_hit() {
    local hits t
    t=$(($(ticks 3) - t0[3]))
    hits=$(($(pages_stat a 3 hits_peer) - hits0))
    awk -v t="$t" -v h="$hits" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "remote_hits=%d res_us=%.3f", h, h ? t * 1e6 / hz / h : 0 }'
}

# cpu_per_lookup LOOKUPS: CPU µs per lookup of the client, node 1 (the
# holder), node 3 and the other nodes (scanners apart: scan_us), from
# t0[], s0[] and the time(1) output. cpu_us sums all but scan_us.
cpu_per_lookup() {
    local n others=0 scan=0 d
    for ((n = 1; n <= NODES; n++)); do
        d[n]=$(($(ticks "$n") - t0[n]))
        scan=$((scan + $(scan_ticks "$n") - s0[n]))
        ((n == 1 || n == 3)) || others=$((others + d[n]))
    done
    awk -v l="$1" -v n1="${d[1]}" -v n3="${d[3]}" -v o="$others" -v s="$scan" \
        -v hz="$(getconf CLK_TCK)" '{ c = ($1 + $2) * 1e6 / l
        f = 1e6 / hz / l
        printf "cpu_us=%.2f client_us=%.2f node1_us=%.2f node3_us=%.2f others_us=%.2f scan_us=%.2f",
            c + (n1 + n3 + o) * f, c, n1 * f, n3 * f, o * f, s * f }' "$VC_TESTDIR/time"
}

run_build() { # run_build NAME BUILDDIR ROUND
    local name=$1 dir=$2 round=$3 spec conns node line perf_pid= n m
    site_up "$dir"
    on_node a 3 "$DP_BENCH" lookup --socket "$(pages_sock a 3)" \
        --hashes "$VC_TESTDIR/sample.hashes" --batch "$BATCH" --seconds 1 \
        >/dev/null || fail "warm-up failed"
    for spec in $RUNS; do
        conns=${spec%%:*}
        node=${spec#*:node}
        if [[ -n $PERF_DIR && -z ${perfed[$name]:-} ]]; then
            mkdir -p "$PERF_DIR"
            perf record -a -g -o "$PERF_DIR/$name.data" -- sleep "$SECS" \
                >/dev/null 2>&1 &
            perf_pid=$!
        fi
        hits0=$(pages_stat a 3 hits_peer)
        for ((n = 1; n <= NODES; n++)); do
            t0[n]=$(ticks "$n")
            s0[n]=$(scan_ticks "$n")
        done
        line=$(on_node a "$node" /usr/bin/time -f '%U %S' -o "$VC_TESTDIR/time" \
            "$DP_BENCH" lookup \
            --socket "$(pages_sock a "$node")" \
            --hashes "$VC_TESTDIR/sample.hashes" --batch "$BATCH" \
            --conns "$conns" --seconds "$SECS" --label "$name,$spec") ||
            fail "lookups failed ($name $spec)"
        if [[ -n $perf_pid ]]; then
            wait "$perf_pid" || true
            perf_pid=
            perfed[$name]=1
        fi
        line+=" $(cpu_per_lookup "$(kv "$line" lookups)")"
        ((node != 3)) || line+=" $(res_per_hit)"
        printf '%s round=%s %s\n' "$name" "$round" "$line" >&2
        for m in $METRICS; do
            V[$name,$spec,$m]+=" $(kv "$line" "$m")"
        done
    done
    site_down
}

for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        run_build A "$A" "$r"
        run_build B "$B" "$r"
    else
        run_build B "$B" "$r"
        run_build A "$A" "$r"
    fi
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| run | metric | A median | B median | A runs | B runs |"
echo "|---|---|---|---|---|---|"
for spec in $RUNS; do
    for m in $METRICS; do
        echo "| $spec | $m | $(median <<<"${V[A,$spec,$m]:-}") |" \
            "$(median <<<"${V[B,$spec,$m]:-}") |${V[A,$spec,$m]:-} |${V[B,$spec,$m]:-} |"
    done
done

echo
for spec in $RUNS; do
    [[ ${spec#*:} == node3 ]] || continue
    a=$(median <<<"${V[A,$spec,res_us]:-}")
    b=$(median <<<"${V[B,$spec,res_us]:-}")
    # The runs of one round are minutes apart at most: their ratio drifts
    # less with others' load than the medians do.
    paired=$(paste <(tr ' ' '\n' <<<"${V[A,$spec,res_us]:-}" | grep .) \
        <(tr ' ' '\n' <<<"${V[B,$spec,res_us]:-}" | grep .) |
        awk '$1 > 0 { printf " %.4f", $2 / $1 }' | median)
    awk -v s="$spec" -v a="$a" -v b="$b" -v p="$paired" -v t="$RES_TARGET_US" 'BEGIN {
        printf "resolver CPU per remote hit, %s conns: A %.3f us, B %.3f us, B/A %.3f (median of rounds %.3f); ", \
            substr(s, 1, index(s, ":") - 1), a, b, a ? b / a : 0, p
        if (b <= t) {
            printf "target <= %g us met by B (%.0f%% under)\n", t, (t - b) * 100 / t
        } else {
            printf "target <= %g us missed by B by %.3f us (%.0f%%)\n", t, b - t, (b - t) * 100 / t
        }
    }'
done
