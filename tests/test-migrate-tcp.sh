#!/usr/bin/env bash
# A guest keeps its open TCP connections when it migrates to another site,
# on stretched sites (sites.sh, --stretched: the sites' LANs are one L2
# segment over the WAN, 20 ms one way, 100 Mbit/s). A client on a2 holds a
# stream to the guest's agent, a numbered line every 20 ms, while the
# guest migrates a1 -> b2 with page hashes (dht-pagesd on site B, which
# runs a guest of the same image) and starts there at once, as under
# libvirt. The connection survives, every line comes back once and in
# order, the bridges on both sites forward the guest's MAC to its new
# node, and the guest answers new connections from both sites. The stall
# (the largest gap between two answers), the migration's downtime and the
# client's RTT to the guest afterwards are reported, not asserted (goal:
# stall <= downtime + 2 RTT). Measured here under TCG: stalls of 474-538 ms
# for downtimes of 275-313 ms and a 41 ms RTT. The announce reaches site A
# about one downtime after the last answer, but the client's lines sent
# in that blackout were lost, and its TCP sends again only when its
# retransmission timer fires (200 ms minimum on Linux, doubled each time),
# not when the path comes back.
#
# Then the same on routed sites (the default), without vm_adopt: the
# stream stops at the switchover and does not come back, while the guest
# runs on. That is asserted: it is the control showing that the survival
# above comes from the stretched LAN, and what routed sites break.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/pages.sh"
requires_root
needs qemu-system-x86_64 socat python3 ping bridge

qemu=$(bash "$VC_SRCDIR/qemu-patches/build-qemu.sh") || fail "no patched QEMU"
log "patched QEMU: $qemu"

stop_pid() { kill "$1" 2>/dev/null || true; }

# stream_start DIR SITE NODE IP: the client (tests/lib/tcp-stream.py) on a
# node, streaming to the agent at IP; returns once answers flow.
stream_start() {
    local dir=$1 pid
    mkdir -p "$dir"
    ip netns exec "$(node_ns "$2" "$3")" python3 \
        "$VC_SRCDIR/tests/lib/tcp-stream.py" "$4" "$VC_AGENT_PORT" "$dir" \
        "${STREAM_DRAIN:-10}" </dev/null 2>"$dir/err" &
    pid=$!
    echo "$pid" >"$dir/pid"
    cleanup_fn stop_pid "$pid"
    wait_for 20 stream_has "$dir" 50 ||
        fail "no stream to $4 from $2$3: $(cat "$dir/err")"
}
stream_echoed() { cat "$1/progress" 2>/dev/null || echo 0; }
stream_has() { (($(stream_echoed "$1") >= $2)); }
# stream_stop DIR: stop sending, wait for the answers due and the report.
stream_stop() {
    local rc=0
    touch "$1/stop"
    wait "$(cat "$1/pid")" || rc=$?
    ((rc == 0)) || fail "stream client failed ($rc): $(cat "$1/err")"
}
# stream_result DIR KEY: a field of the client's report.
stream_result() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$1/result.json" "$2"
}

# fdb_port SITE MAC: the port of the site gateway's br0 that MAC is on.
fdb_port() {
    bridge -n "$(gw_ns "$1")" fdb show br br0 |
        awk -v m="$2" '$1 == m && / master br0/ { print $3 }'
}

# rtt SITE NODE IP: average of 10 pings, in ms.
rtt() {
    on_node "$1" "$2" ping -n -q -c 10 -i 0.2 -W 2 "$3" |
        awk -F/ '/^rtt/ { print $5 }'
}

now() { date +%s.%N; }

# vxlan_traffic SITE: "FRAMES BYTES" the gateway's vxlan0 sent and
# received (inner frames; each also carries 50 bytes of headers).
vxlan_traffic() {
    on_gw "$1" sh -c 'cd /sys/class/net/vxlan0/statistics &&
        cat rx_packets tx_packets rx_bytes tx_bytes' |
        awk '{ v[NR] = $1 } END { print v[1] + v[2], v[3] + v[4] }'
}

# ---- Stretched sites: the connection survives.
sites_create 2 2 --delay 20 --rate 100 --stretched

ip=10.77.1.101
vm_start gb b 1 10.77.2.101 --qemu "$qemu" --unique-mb 4
vm_start g1 a 1 "$ip" --qemu "$qemu" --unique-mb 4 --seed 11 --page-hash on
for g in gb g1; do
    vm_wait_ready "$g" 90 || fail "guest $g did not boot"
done
pages_site_up b 2 1 || fail "site B did not form or index its guest"

# Answers to pipelined commands: after a stall the guest gets many lines
# in one read.
on_node a 2 timeout 30 python3 - "$ip" "$VC_AGENT_PORT" <<'PY' ||
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(b"".join(b"echo p%d\n" % i for i in range(50)))
f = s.makefile("r")
sys.exit([f.readline().strip() for _ in range(50)] != ["p%d" % i for i in range(50)])
PY
    fail "the agent does not answer 50 pipelined echo commands (an image older than vcguest's echo?)"
log "ok: the agent answers pipelined commands in order"

vm_start g1b b 2 "$ip" --qemu "$qemu" --unique-mb 4 --seed 11 \
    --page-hash on --resolver "$(pages_sock b 2)" --incoming 4444
vm_autostart g1b || fail "cannot make g1b start after its migration"

rtt_lan=$(rtt a 2 "$ip")
st=$VC_TESTDIR/stream
stream_start "$st" a 2 "$ip"
log "stream a2 -> g1 flowing ($(stream_echoed "$st") lines echoed), RTT $rtt_lan ms on site A's LAN"
t0=$(now)
w0=$(wan_bytes a)
read -r vf0 vb0 < <(vxlan_traffic a)
vm_migrate g1 g1b || fail "page-hash migration a1 -> b2 failed"
t1=$(now)
wan=$(($(wan_bytes a) - w0))
read -r vf1 vb1 < <(vxlan_traffic a)
n1=$(stream_echoed "$st")
downtime=$(vm_migration_info g1 downtime)
log "migrated a1 -> b2 in $(vm_migration_info g1 total-time) ms, downtime $downtime ms, WAN $wan bytes, of which $((vb1 - vb0 + 50 * (vf1 - vf0))) in $((vf1 - vf0)) VXLAN frames (broadcasts, and the stream once on site B); $(vm_migration_info g1 page-hash resolved) of $(vm_migration_info g1 page-hash hashes-sent) hashes resolved on site B"

# The stream goes on from site B: 3 s more of answers.
wait_for 30 stream_has "$st" $((n1 + 150)) ||
    fail "the stream did not resume after the migration ($(($(stream_echoed "$st") - n1)) answers since)"
assert_eq "g1b runs on b2" running "$(vm_status g1b)"
stream_stop "$st"
sent=$(stream_result "$st" sent)
assert_eq "stream: client error" "" "$(stream_result "$st" error)"
bad=$(stream_result "$st" bad)
((bad == 0)) ||
    fail "stream: $bad answers out of order, lost or repeated; first: $(stream_result "$st" first_bad)"
assert_eq "stream: answers for the $sent lines sent" "$sent" "$(stream_result "$st" echoed)"
stall=$(stream_result "$st" max_gap_ms)
at=$(stream_result "$st" max_gap_at)

# Where traffic for the guest goes now: site A's bridge sends it over the
# VXLAN, site B's to b2.
mac=$(vm_mac g1b)
assert_eq "site A's bridge: port of the guest's MAC" vxlan0 "$(fdb_port a "$mac")"
assert_eq "site B's bridge: port of the guest's MAC" n2 "$(fdb_port b "$mac")"
# New connections, from site A and from its new node.
assert_eq "agent from a2" pong "$(vm_agent g1b ping a 2)"
assert_eq "agent from b2 (through its home gateway)" pong "$(vm_agent g1b ping)"
rtt_wan=$(rtt a 2 "$ip")

goal=$(awk -v d="$downtime" -v r="$rtt_wan" 'BEGIN { printf "%.0f", d + 2 * r }')
log "stretched: the TCP stream a2 -> guest survived a1 -> b2: $sent lines, none lost or repeated"
log "stretched: stall $(printf '%.0f' "$stall") ms (largest gap between answers, from $(date -d "@$at" +%T.%3N), $(awk -v a="$at" -v t="$t0" 'BEGIN { printf "%.2f", a - t }') s after the migration began; vm_migrate took $(awk -v a="$t1" -v t="$t0" 'BEGIN { printf "%.2f", a - t }') s)"
log "stretched: downtime $downtime ms; RTT a2 -> guest $rtt_wan ms after (was $rtt_lan ms); goal downtime + 2 RTT = $goal ms: $(awk -v s="$stall" -v g="$goal" 'BEGIN { print (s <= g) ? "met" : "missed" }')"

vm_kill g1
vm_kill g1b
vm_kill gb
pages_stop b 1
pages_stop b 2
sites_destroy

# ---- Routed sites: the same stream stops for good.
sites_create 2 2 --delay 20 --rate 100
ip=10.77.1.111
vm_start r1 a 1 "$ip" --qemu "$qemu" --unique-mb 4 --seed 31
vm_wait_ready r1 90 || fail "guest r1 did not boot"
vm_start r1b b 2 "$ip" --qemu "$qemu" --unique-mb 4 --seed 31 --incoming 4445
vm_autostart r1b || fail "cannot make r1b start after its migration"
st=$VC_TESTDIR/routed
STREAM_DRAIN=2 stream_start "$st" a 2 "$ip"
vm_migrate r1 r1b || fail "migration a1 -> b2 on routed sites failed"
n1=$(stream_echoed "$st")
sleep 8
assert_eq "routed: r1b runs on b2" running "$(vm_status r1b)"
assert_eq "routed: answers in the 8 s after the migration" 0 $(($(stream_echoed "$st") - n1))
stream_stop "$st"
log "routed: the stream stopped at the switchover: $(stream_result "$st" echoed) of $(stream_result "$st" sent) lines answered; site A's bridge still sends the guest's MAC to port $(fdb_port a "$(vm_mac r1b)") (a1), and site A's LAN, where its peers and its gateway $(gw_ip a) are, does not reach b2"
log "PASS"
