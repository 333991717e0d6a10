#!/usr/bin/env bash
# Two sites of two nodes joined by wanem (20 ms each way, 100 Mbit/s): the
# WAN adds its delay, the LAN does not, the rate cap holds, cut/restore
# work, bad input leaves nothing behind, and teardown restores the root
# namespace exactly. Routed sites (the default) keep each site's LAN to
# itself; stretched ones (--stretched) make one L2 segment of them that
# carries full 1500-byte packets, while nodes are still routed.

source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"

requires_root
needs ip ping iperf3 ss bridge

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

# mv_create SITE NODE IP GW: a host of another site's subnet on a node's
# br0, as a guest that migrated there is (a namespace for its TAP).
mv_ns=$VC_SITE_PREFIX-mv
mv_create() {
    local node_ns
    node_ns=$(node_ns "$1" "$2")
    ip netns add "$mv_ns"
    ip netns exec "$mv_ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1
    ip -n "$node_ns" link add mv0 type veth peer name eth0 netns "$mv_ns"
    # Above the node's own, as guests.sh does for TAPs.
    ip -n "$node_ns" link set mv0 address fe:ff:0a:4d:01:c9 master br0 up
    ip -n "$mv_ns" link set lo up
    ip -n "$mv_ns" addr add "$3/24" dev eth0
    ip -n "$mv_ns" link set eth0 up
    ip -n "$mv_ns" route add default via "$4"
}

# Routed sites: no VXLAN, a 1500-byte WAN, and site A's LAN does not
# reach a host of its subnet on a node of site B.
for s in a b; do
    assert_eq "routed: VXLAN devices on ${s}gw" "" \
        "$(on_gw "$s" ip -o link show type vxlan)"
    assert_eq "routed: wan0 MTU on ${s}gw" 1500 \
        "$(on_gw "$s" cat /sys/class/net/wan0/mtu)"
done
mv_create b 1 10.77.1.201 10.77.1.254
if on_node a 1 ping -n -q -c 1 -W 1 10.77.1.201 >/dev/null; then
    fail "routed: a1 reaches a host of its subnet on b1"
fi
log "ok: routed: site A's LAN stops at its gateway"

sites_destroy
assert_eq "namespaces after destroy" 0 "$(ns_left)"

# Stretched sites: each gateway's br0 has a VXLAN port over a 1550-byte
# WAN; bridges stay at 1500.
sites_create 2 2 --delay 20 --rate 100 --stretched
sites_stretched || fail "sites_stretched is false on stretched sites"
for s in a b; do
    on_gw "$s" ip -o link show master br0 | grep -Eq '^[0-9]+: vxlan0[@:]' ||
        fail "stretched: no vxlan0 port on ${s}gw's br0"
    assert_eq "stretched: wan0 MTU on ${s}gw" 1550 \
        "$(on_gw "$s" cat /sys/class/net/wan0/mtu)"
    assert_eq "stretched: br0 MTU on ${s}gw" 1500 \
        "$(on_gw "$s" cat /sys/class/net/br0/mtu)"
done
# Nodes are routed between sites as before.
on_node a 1 ping -n -q -c 1 -W 2 "$(node_ip b 1)" >/dev/null ||
    fail "stretched: a1 cannot reach b1"
log "stretched: RTT a1 -> b1 (routed): $(ping_avg a 1 "$(node_ip b 1)" 5) ms"

# A host of site A's subnet on b1, with site A's gateway: a1 reaches it on
# L2 (its MAC, not a router's), with full-size packets that may not be
# fragmented, across the WAN.
mv_create b 1 10.77.1.201 10.77.1.254
on_node a 1 ping -n -q -c 3 -i 0.2 -W 2 -Mdo -s 1472 10.77.1.201 >/dev/null ||
    fail "stretched: no 1500-byte ping with DF from a1 to a host of its subnet on b1"
log "ok: stretched: 1500-byte packets with DF cross the VXLAN"
# lladdr IP-LINK-OUTPUT: the MAC after link/ether or lladdr.
lladdr() { awk '{ for (i = 1; i < NF; i++) if ($i ~ /^(link\/ether|lladdr)$/) print $(i + 1) }'; }
assert_eq "stretched: a1's neighbour 10.77.1.201 (the host on b1 itself)" \
    "$(ip -n "$mv_ns" -o link show eth0 | lladdr)" \
    "$(on_node a 1 ip neigh show 10.77.1.201 | lladdr)"
log "stretched: RTT a1 -> 10.77.1.201 on b1 (L2): $(ping_avg a 1 10.77.1.201 5) ms"
# It keeps its home gateway, across the WAN, to reach site B's nodes.
ip netns exec "$mv_ns" ping -n -q -c 3 -i 0.2 -W 2 "$(node_ip b 2)" >/dev/null ||
    fail "stretched: the host on b1 cannot reach b2 through its home gateway"
log "ok: stretched: the host on b1 reaches b2 through site A's gateway ($(ip netns exec "$mv_ns" ping -n -q -c 3 -i 0.2 -W 2 "$(node_ip b 2)" | awk -F/ '/^rtt/ { print $5 }') ms, the WAN twice)"
log "stretched: WAN bytes on a's wan0: $(wan_bytes a)"

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
