#!/usr/bin/env bash
# The demo: two sites on this machine joined by an emulated WAN (20 ms
# each way, 100 Mbit/s). Site B runs a guest of the same image and a
# dht-pagesd on each node. A guest migrates from site A to site B twice,
# first as stock QEMU does it, then with page hashes, and the WAN bytes of
# both are printed side by side. Then Kget+ takes background snapshots of
# two guests of site B into a store on b2: pages they share (same image)
# and pages an earlier snapshot holds are stored once. Everything it
# creates is removed at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) -eq 0 ]] || { echo "demo: must run as root (network namespaces)" >&2; exit 1; }

echo "== set-up and build (packages, guest image, patched QEMU)"
bash "$top/scripts/build.sh"

export VC_SRCDIR=$top VC_BUILDDIR=$top/build
source "$top/tests/lib/functions.sh"
source "$top/tests/lib/sites.sh"
source "$top/tests/lib/guests.sh"
source "$top/tests/lib/pages.sh"
qemu=$(bash "$top/qemu-patches/build-qemu.sh")

step() { printf '\n== %s\n' "$*"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

step "two sites, two nodes each, WAN 20 ms one way at 100 Mbit/s"
sites_create 2 2 --delay 20 --rate 100
printf '  a1 -> a2 (same site):  %s\n' "$(on_node a 1 ping -c 3 -i 0.2 -q "$(node_ip a 2)" | tail -n 1)"
printf '  a1 -> b1 (across WAN): %s\n' "$(on_node a 1 ping -c 3 -i 0.2 -q "$(node_ip b 1)" | tail -n 1)"

step "boot guests ($(vc_accel)): gb on b1 (site B), g0 on a2 and g1 on a1 (site A)"
vm_start gb b 1 10.77.2.101 --qemu "$qemu" --unique-mb 4
vm_start g0 a 2 10.77.1.102 --qemu "$qemu" --unique-mb 4 --seed 10
vm_start g1 a 1 10.77.1.101 --qemu "$qemu" --unique-mb 4 --seed 11 --page-hash on
for g in gb g0 g1; do vm_wait_ready "$g" 90; done
echo "  each: 256 MiB, 32 MiB payload of Debian files, 4 MiB unique"

step "site B's page index: dht-pagesd on b1 and b2 (OpenDHT membership)"
pages_start b 1 --hash-rate 0
pages_start b 2 --hash-rate 0
pages_wait_members b 1 1
pages_wait_members b 2 1
pages_wait_indexed b 1 1
pages_cli b 2 status | sed 's/^/  /'

step "stock live migration g0: a2 -> b1"
vm_start g0b b 1 10.77.1.102 --qemu "$qemu" --unique-mb 4 --seed 10 --incoming 4444
w=$(wan_bytes a)
vm_migrate g0 g0b
stock=$(($(wan_bytes a) - w))
echo "  done in $(vm_migration_info g0 total-time) ms, downtime $(vm_migration_info g0 downtime) ms, WAN $(mib "$stock")"

step "page-hash live migration g1: a1 -> b2 (resolved through b2's dht-pagesd)"
vm_start g1b b 2 10.77.1.101 --qemu "$qemu" --unique-mb 4 --seed 11 \
    --page-hash on --resolver "$(pages_sock b 2)" --incoming 4444
w=$(wan_bytes a)
vm_migrate g1 g1b
hashed=$(($(wan_bytes a) - w))
echo "  done in $(vm_migration_info g1 total-time) ms, downtime $(vm_migration_info g1 downtime) ms, WAN $(mib "$hashed")"
echo "  $(vm_migration_info g1 page-hash hashes-sent) hashes sent, $(vm_migration_info g1 page-hash resolved) pages found on site B, $(vm_migration_info g1 page-hash misses) asked from site A"
cmp -s "$(vm_ram_file g1)" "$(vm_ram_file g1b)" && echo "  destination RAM identical to the source's"

step "result"
printf '  WAN bytes: stock %s, page-hash %s: %s saved (%d%% less)\n' \
    "$(mib "$stock")" "$(mib "$hashed")" "$(mib $((stock - hashed)))" \
    $(((stock - hashed) * 100 / stock))
vm_qmp g1b '{"execute":"cont"}' >/dev/null
vm_adopt g1b
echo "  g1 runs on at site B; its agent says:"
vm_sums g1b | sed 's/^/    /'
echo "  (payload checksum of the image: $(cat "$VC_IMAGE/payload.sha256"))"

step "Kget+: background snapshots of gb and g0b (same image) into a store on b2"
kget=$VC_BUILDDIR/saline/kget/cli/kget
key=$VC_TESTDIR/site.key
head -c 32 /dev/urandom >"$key"
# ip netns exec execs: $! is the store, ended by its pid at exit.
ip netns exec "$(node_ns b 2)" "$VC_BUILDDIR/saline/kget/store/kget-store" --dir "$VC_TESTDIR/kget" \
    --listen "$(node_ip b 2)" --key-file "$key" >"$VC_TESTDIR/kget-store.log" 2>&1 &
cleanup_fn kill "$!"
kg() { on_node b 1 "$kget" --store "$(node_ip b 2)" --key-file "$key" "$@"; }
wait_for 20 kg ls || { echo "demo: kget-store did not start" >&2; exit 1; }
# snap VM NAME: QEMU streams RAM and device state to kget while the guest runs.
snap() {
    vm_qmp "$1" \
        '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"background-snapshot","state":true}]}}' \
        '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":1099511627776}}' \
        "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:$kget --store $(node_ip b 2) --key-file $key -q snapshot $2 --vmstate $1/state=-\"}}" >/dev/null
    wait_for 120 stored "$2" || { echo "demo: snapshot $2 not stored" >&2; exit 1; }
}
stored() { [[ $(kg ls "${1%@*}") == *"$1 "* ]]; }
kg_json() { kg --json ls "$1" | python3 -c "import json,sys; s=[x for x in json.load(sys.stdin)['snapshots'] if x['name']=='$2'][0]; print(s['$3'])"; }
vm_qmp g0b '{"execute":"cont"}' >/dev/null
snap gb demo-gb@1
snap g0b demo-g0b@1
raw=$(($(kg_json demo-gb demo-gb@1 bytes) + $(kg_json demo-g0b demo-g0b@1 bytes)))
new=$(($(kg_json demo-gb demo-gb@1 new_bytes) + $(kg_json demo-g0b demo-g0b@1 new_bytes)))
echo "  2 snapshots: $(mib "$raw") of guest state, $(mib "$new") stored (zero pages skipped, shared pages once)"
snap gb demo-gb@2
echo "  gb again a moment later: $(mib "$(kg_json demo-gb demo-gb@2 new_bytes)") new in the store"
kg verify >/dev/null && echo "  every chunk of every snapshot re-hashed: store verified"
