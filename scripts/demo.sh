#!/usr/bin/env bash
# The demo: two sites on this machine joined by an emulated WAN (20 ms
# each way, 100 Mbit/s). Site B runs a guest of the same image and a
# dht-pagesd on each node. A guest migrates from site A to site B twice,
# first as stock QEMU does it, then with page hashes, and the WAN bytes of
# both are printed side by side. Then Kget+ takes background snapshots of
# two guests of site B into a store on b2: pages they share (same image)
# and pages an earlier snapshot holds are stored once. Last, three VMs on
# a1, a2 and b1 form a virtual SSI cluster and a running process migrates
# between them. Everything it creates is removed at the end.
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

step "virtual SSI cluster: VMs on a1, a2 and b1 act as one machine (ssi.ko, ssid, CRIU)"
source "$top/tests/lib/ssi.sh"
sk=$(ssi_key)
ssi_vm_start s1 a 1 10.77.1.121 demo "$sk" found
ssi_vm_start s2 a 2 10.77.1.122 demo "$sk" 10.77.1.121
ssi_vm_start s3 b 1 10.77.2.121 demo "$sk" 10.77.1.121
for s in s1 s2 s3; do ssi_wait_up "$s" 180 >/dev/null; done
three() { [[ $(ssi_sh s1 cat /proc/ssi/nodes | wc -l) -eq 4 ]]; }
wait_for 60 three || { echo "demo: the SSI cluster did not form" >&2; exit 1; }
echo "  ssi nodes, on s3 (the view is the kernel's: /proc/ssi/nodes):"
ssi_sh s3 ssi nodes | sed 's/^/    /'
echo "  ssi run from s1, placed by the leastload policy module; \$\$ is the GPID:"
ssi_sh s1 'for i in 1 2 3; do ssi run sh -c "echo \"    pid \$\$ runs on \$(hostname)\"" </dev/null; done'
counter='exec 3>>/tmp/count.log; i=0; while [ $i -lt 25 ]; do i=$((i+1)); echo $i; echo $i >&3; sleep 0.2; done'
ssi_sh_bg s1 "$VC_TESTDIR/count" "ssi run -v -n 1 sh -c '$counter' </dev/null >/tmp/count.out 2>/tmp/count.err" >/dev/null
started() { ssi_sh s1 cat /tmp/count.err | grep GPID >/dev/null; }
wait_for 30 started || { echo "demo: the counter did not start" >&2; exit 1; }
g=$(ssi_sh s1 cat /tmp/count.err | sed -n 's/^ssi: GPID \([0-9]*\).*/\1/p')
sleep 1.5
echo "  a counter (GPID $g, an open file, stdout to s1) moves from s1 to s3, across the WAN:"
n3=$(ssi_sh s1 ssi nodes | awk '$2 == "10.77.2.121" {print $1}')
echo "    $(ssi_sh s1 ssi migrate "$g" "$n3")"
ssi_sh_wait "$VC_TESTDIR/count" 60 >/dev/null || true
if [[ $(ssi_sh s1 cat /tmp/count.out | tr '\n' ' ') == "$(seq 1 25 | tr '\n' ' ')" &&
    $(ssi_sh s3 cat /tmp/count.log | tr '\n' ' ') == "$(seq 1 25 | tr '\n' ' ')" ]]; then
    echo "  its output on s1 and its file on s3: 1..25, nothing lost or repeated"
else
    echo "  its output on s1: $(ssi_sh s1 cat /tmp/count.out | tr '\n' ' ')"
fi
