#!/usr/bin/env bash
# The demo: two sites on this machine joined by an emulated WAN (20 ms
# each way, 100 Mbit/s). Site B runs a guest of the same image and a
# dht-pagesd on each node. A guest migrates from site A to site B twice,
# first as stock QEMU does it, then with page hashes, and the WAN bytes of
# both are printed side by side. Then Kget+ takes background snapshots of
# two guests of site B into a store on b2: pages they share (same image)
# and pages an earlier snapshot holds are stored once. Last, three VMs on
# a1, a2 and b1 form a virtual SSI cluster and a running process migrates
# between them. Then OAR 2.5 (PostgreSQL, Almighty on b1) owns a1 and a2:
# salined runs a best-effort VM job through an OAR job, a plain OAR user's
# job takes the nodes, and the VM job is snapshotted on OAR's signal and
# redeployed after. Everything it creates is removed at the end.
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
pages_site_up b 2 1
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
zp=$(vm_migration_info g1 page-hash compressed-pages)
zb=$(vm_migration_info g1 page-hash compressed-bytes)
echo "  the $zp pages sent in full took $(mib "$zb") in the zstd stream ($((zb * 100 / (zp * 4096)))% of raw)"
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

step "cluster memory: s1 swaps to the RAM of s2 and s3 (NVMe/TCP + md RAID10, two copies)"
# Guests of 256 MiB: each donor keeps 64 MiB of its available memory.
if r=$(ssi_sh s2 ssi mem donate 80 && ssi_sh s3 ssi mem donate 80 &&
    ssi_sh s1 ssi mem borrow 80); then
    t0=$(date +%s.%N)
    echo "  on s1 ($(ssi_sh s1 awk "'/MemAvailable/ {print int(\$2 / 1024)}'" /proc/meminfo) MiB available, 80 MiB borrowed): $(SSI_SH_TIMEOUT=600 ssi_sh s1 'ssi-memtest 144 2>/dev/null || echo "ssi-memtest failed: exit status $?"') (wall $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s)"
    ssi_sh s1 ssi mem | sed 's/^/    /'
else
    echo "  cluster memory could not be set up: $(tail -n 1 <<<"$r")"
fi

step "Saline on OAR 2.5: OAR owns a1 and a2; a best-effort VM job gives them back on OAR's signal"
for v in s1 s2 s3 gb g0b g1b; do vm_kill "$v" >/dev/null 2>&1 || true; done
source "$top/tests/lib/libvirt.sh"
source "$top/tests/lib/saline.sh"
source "$top/tests/lib/oar.sh"
saline_show_log() { :; } # the tests' post-mortem; the demo says what happened
export VC_LV_QEMU_CONF="seccomp_sandbox = 0"
lv_start_nodes /usr/bin/qemu-system-x86_64 a1 a2 >/dev/null ||
    { echo "demo: libvirtd did not start on a1 and a2" >&2; exit 1; }
oar_create b1 a1 a2 || { echo "demo: OAR did not start" >&2; exit 1; }
oar_nudge_every 3
chmod 0711 "$VC_TESTDIR"
mkdir -m 0755 "$VC_TESTDIR/run"
SALINE_SOCK=$VC_TESTDIR/run/saline.sock
SALINE_CONF=$VC_TESTDIR/salined.conf
SALINE_NS_NODE="a 1"
cat >"$SALINE_CONF" <<CONF
[salined]
state-dir=$VC_TESTDIR/saline
socket=$SALINE_SOCK
virt-type=qemu
output-size=8M
[oar]
command=$(oar_cmd_prefix saline)
notify=$(node_ip a 1):7420
job-command=$VC_BUILDDIR/saline/oarjob/saline-oarjob
checkpoint=30
poll=2
[snapshots]
store=$(node_ip b 2)
key-file=$key
kget=$kget
interval=20
[site a]
network=10.77.1.0/24
range=10.77.1.100-10.77.1.149
gateway=10.77.1.254
[node a1]
site=a
uri=$(lv_uri a 1)
cpus=1
memory=1G
[node a2]
site=a
uri=$(lv_uri a 2)
cpus=1
memory=1G
[image saline]
dir=$VC_BUILDDIR/images/saline
CONF
saline_start
ticks='i=0; while [ $i -lt 400 ]; do i=$((i + 1)); echo "tick $i"; sleep 0.5; done'
be=$(submit as_root submit --besteffort -n 2 -c 1 -m 160M --image saline --walltime 30m -- sh -c "$ticks")
wait_for 180 state_is "$be" running || { echo "demo: job $be did not start" >&2; exit 1; }
tick() { as_root log "$be" --vm 0 2>/dev/null | sed -n 's/^tick \([0-9]*\)$/\1/p' | tail -n 1; }
seq_of() { field "$(job_json "$be")" 'j["snapshot_seq"]'; }
snapshotted() { (($(seq_of) >= 1)); }
echo "  saline stat (the last column is the OAR job), then oarstat as any OAR user sees it:"
as_root stat | sed 's/^/    /'
oar_as oar-tester oarstat | sed 's/^/    /'
wait_for 120 snapshotted || { echo "demo: no snapshot of job $be" >&2; exit 1; }
echo "  a plain OAR user asks for both nodes: oarsub -l nodes=2 'sleep 10' (job $be at tick $(tick))"
t0=$(date +%s.%N)
reg=$(oar_sub oar-tester -d /tmp -l nodes=2,walltime=0:05:00 "sleep 10")
gone() { [[ -z $(lv_domains a 1)$(lv_domains a 2) ]]; }
wait_for 60 gone || { echo "demo: the VMs of job $be did not go" >&2; exit 1; }
t1=$(date +%s.%N)
oar_wait_state "$reg" Running 60 || true
echo "  OAR signalled; salined stored snapshot $(seq_of) and removed the VMs $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after the submission (OAR's grace: 30 s); OAR job $reg: $(oar_state "$reg")"
wait_for 300 state_is "$be" running || { echo "demo: job $be was not redeployed" >&2; exit 1; }
sleep 2
echo "  OAR job $reg done; job $be redeployed from its snapshot by a new OAR job ($(field "$(job_json "$be")" 'j["oar_job_id"]')), at tick $(tick): it went on, not from 1"
as_root del "$be" >/dev/null
