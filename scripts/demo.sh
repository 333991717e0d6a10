#!/usr/bin/env bash
# The demo: two sites on this machine joined by an emulated WAN link
# (20 ms each way, 100 Mbit/s); a guest boots on a node of site A and
# answers from site B across the WAN. Everything it creates is removed at
# the end. Page-hash migration joins the demo when it exists.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) -eq 0 ]] || { echo "demo: must run as root (network namespaces)" >&2; exit 1; }

echo "== set-up and build"
bash "$top/scripts/build.sh"

export VC_SRCDIR=$top VC_BUILDDIR=$top/build
source "$top/tests/lib/functions.sh"
source "$top/tests/lib/sites.sh"
source "$top/tests/lib/guests.sh"

step() { printf '\n== %s\n' "$*"; }

step "two sites, two nodes each, WAN 20 ms one way at 100 Mbit/s"
sites_create 2 2 --delay 20 --rate 100
for s in a b; do
    for n in 1 2; do
        printf '  node %s%s  %-12s netns %s\n' "$s" "$n" "$(node_ip $s $n)" "$(node_ns $s $n)"
    done
done
printf '  a1 -> a2 (same site):  %s\n' "$(on_node a 1 ping -c 3 -i 0.2 -q "$(node_ip a 2)" | tail -n 1)"
printf '  a1 -> b1 (across WAN): %s\n' "$(on_node a 1 ping -c 3 -i 0.2 -q "$(node_ip b 1)" | tail -n 1)"

step "boot guest g1 on node a1 ($(vc_accel)), 256 MiB, payload of Debian files"
t0=$SECONDS
vm_start g1 a 1 10.77.1.101 --mem 256 --unique-mb 16
vm_wait_ready g1 90
echo "  ready after $((SECONDS - t0)) s; guest RAM file $(vm_ram_file g1)"

step "site B reaches the guest across the WAN"
on_node b 1 ping -c 3 -i 0.3 "$(vm_ip g1)" | sed 's/^/  /'
echo "  agent on g1, asked from node b1:"
vm_sums g1 b 1 | sed 's/^/    /'
echo "  image builder's payload checksum: $(cat "$VC_IMAGE/payload.sha256")"
[[ $(vm_sums g1 b 1 | awk '$1 == "payload" {print $2}') == "$(cat "$VC_IMAGE/payload.sha256")" ]] &&
    echo "  payload in guest RAM matches the image"

step "WAN link counters"
echo "  site A WAN bytes: $(wan_bytes a)"

step "power off, tear down"
vm_stop g1
sites_destroy
echo "  done: no namespace, bridge or guest left"
