#!/usr/bin/env bash
# Two sites of two nodes joined by wanem (20 ms each way, 100 Mbit/s): the
# WAN adds its delay, the LAN does not, the rate cap holds, cut/restore
# work, bad input leaves nothing behind, and teardown restores the root
# namespace exactly.

source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"

requires_root
needs ip ping iperf3 ss

[[ -x $VC_WANEM ]] || fail "wanem not built at '$VC_WANEM'"

# A run killed hard leaves its guests' RAM directory, and guests whose
# RAM is in it (libvirt's QEMUs are daemons); sites_gc ends both.
true &
dead=$!
wait "$dead"
mkdir -p "/dev/shm/vct$dead/a1"
python3 -c 'import time; time.sleep(600)' "/dev/shm/vct$dead/a1/pc.ram" &
orphan=$!
cleanup_fn kill -9 "$orphan"
sites_gc
# (Our child, so it lingers as a zombie until reaped: "ended" is Z or gone.)
ended() { [[ ! -e /proc/$1 || $(awk '{print $3}' "/proc/$1/stat") == Z ]]; }
wait_for 5 ended "$orphan" || fail "sites_gc left a guest of a dead run running"
wait "$orphan" 2>/dev/null || true
[[ ! -e /dev/shm/vct$dead ]] || fail "sites_gc left /dev/shm/vct$dead"
log "ok: sites_gc ended a dead run's guest and removed its RAM directory"
links_before=$(ip -o link | sed 's/^[0-9]*: //')

stop_pid() { kill "$1" 2>/dev/null || true; }
ns_left() {
    ip netns list | awk '{print $1}' | grep -c "^$VC_SITE_PREFIX-" || true
}

# ping_avg SITE NODE IP COUNT: average RTT in ms.
ping_avg() {
    local out
    out=$(on_node "$1" "$2" ping -n -q -c "$4" -i 0.2 -W 2 "$3") ||
        fail "ping from $1$2 to $3 failed"
    awk -F/ '/^rtt/ { print $5 }' <<<"$out"
}

# expect_one_line_failure WHAT CMD...: CMD fails, says one 'sites:' line.
expect_one_line_failure() {
    local what=$1 err=$VC_TESTDIR/err
    shift
    if "$@" 2>"$err"; then
        fail "$what: sites_create succeeded"
    fi
    assert_eq "$what: error lines" 1 "$(wc -l <"$err")"
    grep -q '^sites: ' "$err" || fail "$what: unexpected error '$(cat "$err")'"
    log "$what: $(cat "$err")"
}

# Bad input, before and after the partial work it would otherwise leave.
expect_one_line_failure "zero sites" sites_create 0 2
expect_one_line_failure "bad delay" sites_create 2 2 --delay soon
expect_one_line_failure "unknown option" sites_create 2 2 --jitter 3
assert_eq "namespaces after bad arguments" 0 "$(ns_left)"
ip netns add "$VC_SITE_PREFIX-bgw"
expect_one_line_failure "existing namespace" sites_create 2 2
assert_eq "namespaces after clash (only the clashing one)" 1 "$(ns_left)"
ip netns delete "$VC_SITE_PREFIX-bgw"
VC_WANEM=/bin/false expect_one_line_failure "wanem failing" sites_create 2 2
assert_eq "namespaces after wanem failure" 0 "$(ns_left)"

sites_create 2 2 --delay 20 --rate 100
assert_eq "namespaces" 6 "$(ns_left)"
expect_one_line_failure "second create" sites_create 2 2
assert_eq "namespaces after second create" 6 "$(ns_left)"

# Warm the ARP caches so the first probe does not count a resolution.
on_node a 1 ping -n -q -c 1 -W 2 "$(node_ip b 1)" >/dev/null ||
    fail "a1 cannot reach b1"
on_node a 1 ping -n -q -c 1 -W 2 "$(node_ip a 2)" >/dev/null ||
    fail "a1 cannot reach a2"

wan_rtt=$(ping_avg a 1 "$(node_ip b 1)" 20)
log "RTT a1 -> b1 over the WAN: $wan_rtt ms (expected 40 +- 4)"
awk -v r="$wan_rtt" 'BEGIN { exit !(r >= 36 && r <= 44) }' ||
    fail "RTT a1 -> b1 is $wan_rtt ms, expected 40 ms +- 10%"

lan_rtt=$(ping_avg a 1 "$(node_ip a 2)" 20)
log "RTT a1 -> a2 on the site LAN: $lan_rtt ms (expected < 1)"
awk -v r="$lan_rtt" 'BEGIN { exit !(r < 1) }' ||
    fail "RTT a1 -> a2 is $lan_rtt ms, expected < 1 ms"

# TCP across the WAN. 1500-byte frames carry 1448 bytes of payload, so at
# 100 Mbit/s the best goodput is ~95 Mbit/s; it measured 91-92 here, and
# ~830 Mbit/s with no rate limit. Above 110 the cap is not applied; below
# 50 the relay loses or stalls far more than a tail-drop queue should.
# Not on_node: in the background that would be a subshell, and $! would
# not be the server's PID (ip netns exec execs the command).
ip netns exec "$(node_ns b 1)" iperf3 -s -1 -B "$(node_ip b 1)" \
    </dev/null >"$VC_TESTDIR/iperf3-server.log" 2>&1 &
iperf_pid=$!
cleanup_fn stop_pid "$iperf_pid"
wait_for 5 on_node b 1 sh -c 'ss -Hltn "sport = :5201" | grep -q .' ||
    fail "iperf3 server did not start on b1"
out=$(on_node a 1 iperf3 -c "$(node_ip b 1)" -t 5 -f m) ||
    fail "iperf3 a1 -> b1 failed"
rate=$(awk '/receiver$/ { print $(NF - 2) }' <<<"$out")
log "iperf3 TCP a1 -> b1 at 100 Mbit/s: $rate Mbit/s (expected 50 to 110)"
awk -v r="$rate" 'BEGIN { exit !(r > 50 && r < 110) }' ||
    fail "TCP a1 -> b1 at $rate Mbit/s, expected 50 to 110"
log "wan stats: $(wan_stats)"
wan_a=$(wan_bytes a)
log "bytes on a's wan0: $wan_a"
((wan_a > 5 * 1000 * 1000 * 50 / 8)) || fail "only $wan_a bytes on a's wan0"

wan_cut
if on_node a 1 ping -n -q -c 2 -W 1 "$(node_ip b 1)" >/dev/null; then
    fail "ping a1 -> b1 works while the WAN is cut"
fi
log "ok: WAN cut stops ping a1 -> b1"
on_node a 1 ping -n -q -c 1 -W 1 "$(node_ip a 2)" >/dev/null ||
    fail "ping a1 -> a2 fails while only the WAN is cut"
wan_restore
wait_for 5 on_node a 1 ping -n -q -c 1 -W 1 "$(node_ip b 1)" ||
    fail "ping a1 -> b1 still fails after restore"
log "ok: WAN restore brings ping a1 -> b1 back"

sites_destroy
sites_destroy
assert_eq "namespaces after destroy" 0 "$(ns_left)"
# Links of the namespaces go away asynchronously, but none was ever in
# the root namespace.
links_after=$(ip -o link | sed 's/^[0-9]*: //')
[[ $links_before == "$links_after" ]] ||
    fail "root namespace links changed: $(diff <(echo "$links_before") \
<(echo "$links_after") | tr '\n' ' ')"
log "ok: root namespace links unchanged"
log "PASS"
