# Helpers shared by the benchmark scripts (sourced, bash, after
# tests/lib/functions.sh). Benchmarks record "raw lines" (key=value) that
# their reports quote, and say how busy this shared machine was.
#
#   BENCH_RAW=FILE      where raw lines go (set before the first raw call)
#   raw LINE            keep a result line and show it on stderr
#   now; elapsed T0 T1  wall clock in s; T1 - T0 with two decimals
#   machine_info        raw line: CPUs, model, memory, kernel, date
#   machine_load WHEN   raw line: load average and the busy processes

BENCH_RAW=${BENCH_RAW:-$VC_TESTDIR/raw.txt}

raw() {
    echo "$*" >>"$BENCH_RAW"
    echo "$*" >&2
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

machine_info() {
    raw "machine nproc=$(nproc) cpu=\"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)\" mem_gib=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo) kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# This is a shared machine: other users' processes skew every number, so
# each report says what else was busy.
machine_load() {
    local busy
    busy=$(top -b -n 2 -d 1 -w 200 | awk '/^top -/ { n++ } n == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 >= 5 {
        printf "%s%s(%s%%)", sep, $12, $9; sep = "," }')
    raw "machine_load when=$1 loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /) busy=${busy:-none}"
}
