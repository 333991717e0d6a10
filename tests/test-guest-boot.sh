#!/usr/bin/env bash
# A guest of the test image boots on a node of site A within 60 s under
# TCG, answers on the network from site B across the WAN, reports the
# payload checksum the image builder computed and the unique-region
# checksum computed independently on the host, then powers off cleanly.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
requires_root
needs qemu-system-x86_64 socat

image=$VC_IMAGE
agent=$VC_BUILDDIR/images/vcguest
[[ -f $image/payload.sha256 ]] || fail "no image in '$image' (meson compile)"

sites_create 2 1 --delay 20 --rate 100

start=$SECONDS
vm_start g1 a 1 10.77.1.101 --mem 256 --unique-mb 16 --seed 4242
vm_wait_ready g1 60 || fail "guest did not boot within 60 s"
log "guest g1 ready after $((SECONDS - start)) s (accel $(vc_accel))"

# From site B, across the WAN: ICMP, then the agent over TCP.
rtt=$(on_node b 1 ping -c 5 -i 0.3 -W 2 "$(vm_ip g1)" |
    awk -F/ '/^rtt/ {print $5}')
[[ -n $rtt ]] || fail "guest does not answer ping from site B"
log "ping b1 -> g1: avg ${rtt} ms"
awk -v r="$rtt" 'BEGIN { exit !(r >= 36) }' ||
    fail "RTT ${rtt} ms from site B does not cross the 20 ms WAN"

sums=$(vm_sums g1 b 1)
log "agent from site B: $(echo "$sums" | tr '\n' ' ')"
payload=$(awk '$1 == "payload" {print $2}' <<<"$sums")
unique=$(awk '$1 == "unique" {print $2}' <<<"$sums")
assert_eq "payload checksum vs image builder" "$(cat "$image/payload.sha256")" "$payload"
assert_eq "unique-region checksum vs host" \
    "$("$agent" --no-cmdline --seed 4242 --unique-mb 16 --unique-sum)" "$unique"

ram=$(vm_ram_file g1)
[[ -s $ram ]] || fail "guest RAM file '$ram' missing"
pid=$(vm_pid g1)
vm_stop g1 || fail "guest did not power off cleanly"
kill -0 "$pid" 2>/dev/null && fail "QEMU $pid still running"
[[ ! -e $ram ]] || fail "guest RAM file '$ram' left behind"
grep -q 'reboot: Power down' "$(vm_serial_log g1)" ||
    fail "serial log shows no clean power down"
log "guest powered off cleanly"
