#!/usr/bin/env bash
# Benchmark of the WAN emulator (not a test): the rate wanem sustains with
# no limit, and the ping RTT it gives at 20 ms / 100 Mbit/s idle, beside a
# UDP flow below the rate (the jitter wanem itself adds) and beside a TCP
# flow (which also fills the emulated queue, as on a real link).
#
#   VC_BUILDDIR=build bench/wanem-rate.sh

source "$(dirname "$0")/../tests/lib/functions.sh"
source "$(dirname "$0")/../tests/lib/sites.sh"

requires_root
requires ip ping iperf3 ss
[[ -x $VC_WANEM ]] || fail "wanem not built at '$VC_WANEM'"

stop_pid() { kill "$1" 2>/dev/null || true; }

sites_gc
sites_create 2 1 --delay 0 --rate 0
b=$(node_ip b 1)

# ip netns exec execs the command, so $! is its PID (on_node & is not).
ip netns exec "$(node_ns b 1)" iperf3 -s -B "$b" \
    </dev/null >"$VC_TESTDIR/server.log" 2>&1 &
cleanup_fn stop_pid "$!"
wait_for 5 on_node b 1 sh -c 'ss -Hltn "sport = :5201" | grep -q .' ||
    fail "iperf3 server did not start"
on_node a 1 ping -n -q -c 1 -W 2 "$b" >/dev/null || fail "a1 cannot reach b1"

# iperf3_rate ARGS...: receiver Mbit/s of a1 -> b1.
iperf3_rate() {
    on_node a 1 iperf3 -c "$b" -f m "$@" |
        awk '/receiver$/ { r = $(NF - 2) } END { print r }'
}

# ping_stats COUNT: "avg mdev max" in ms, a1 -> b1 every 0.1 s.
ping_stats() {
    on_node a 1 ping -n -q -c "$1" -i 0.1 "$b" |
        awk -F'[/ ]' '/^rtt/ { print $8, $10, $9 }'
}

printf 'unlimited, TCP 1 flow:   %s Mbit/s\n' "$(iperf3_rate -t 8)"
printf 'unlimited, TCP 4 flows:  %s Mbit/s\n' "$(iperf3_rate -t 8 -P 4)"
printf 'unlimited, idle ping:    avg/mdev/max %s ms\n' "$(ping_stats 20)"

wan_set --delay 20 --rate 100
printf '20 ms, 100 Mbit, idle ping:         avg/mdev/max %s ms\n' \
    "$(ping_stats 50)"

ip netns exec "$(node_ns a 1)" iperf3 -c "$b" -u -b 90M -t 8 >/dev/null 2>&1 &
load=$!
cleanup_fn stop_pid "$load"
sleep 1
printf '20 ms, 100 Mbit, + UDP 90 Mbit:     avg/mdev/max %s ms\n' \
    "$(ping_stats 50)"
wait "$load" || true

ip netns exec "$(node_ns a 1)" iperf3 -c "$b" -t 8 >/dev/null 2>&1 &
load=$!
cleanup_fn stop_pid "$load"
sleep 1
printf '20 ms, 100 Mbit, + TCP (queueing):  avg/mdev/max %s ms\n' \
    "$(ping_stats 50)"
wait "$load" || true
printf 'wanem stats: %s\n' "$(wan_stats)"
