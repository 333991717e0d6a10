#!/usr/bin/env bash
# Saline's SSI jobs end to end (saline/README.md, "SSI jobs"): salined
# with real libvirtd on nodes a1, a2 and b1 of two sites, guests under
# TCG booted from the Saline SSI image, the saline CLI run as two users.
# Checked:
#   - an SSI job on an image without the SSI parts is refused with one
#     line (best-effort SSI jobs: test-saline-snapshot.sh);
#   - two users' SSI jobs of 2 VMs run at once on the same two nodes; in
#     each, COMMAND runs once in a formed cluster of its own 2 VMs
#     (`ssi nodes` there lists exactly the job's addresses) and can
#     `ssi run` a child on the member that is VM 1;
#   - output and exit status (3 and 0) come back through `saline log`
#     and `saline stat`; the VMs are torn down after;
#   - a 3-VM SSI job too large for site a spans both sites: one cluster
#     of 3 members across the WAN.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/libvirt.sh"
source "$(dirname "$0")/lib/saline.sh"
requires_root
needs virsh nsenter unshare python3 setpriv qemu-img

image=$VC_BUILDDIR/images/saline-ssi
plain=$VC_BUILDDIR/images/saline
qemu=/usr/bin/qemu-system-x86_64
[[ -x $salined_bin && -x $saline_bin ]] || fail "salined or saline not built"
[[ -f $image/disk.qcow2 ]] || fail "no Saline SSI image in '$image'"
[[ -f $plain/disk.qcow2 ]] || fail "no saline image in '$plain'"

user1=4211
user2=4212

sites_create 2 2 --delay 5 --rate 100
lv_start_nodes "$qemu" a1 a2 b1 || fail "libvirtd did not start on every node"

chmod 0711 "$VC_TESTDIR"
mkdir -m 0755 "$VC_TESTDIR/run"
SALINE_SOCK=$VC_TESTDIR/run/saline.sock
SALINE_CONF=$VC_TESTDIR/salined.conf
SALINE_NS_NODE="a 1"
# 3 CPUs a node: a job of two 2-CPU VMs takes one on each node, then a
# job of two 1-CPU VMs the CPU left on each (first fit): the same nodes.
{
    saline_conf_salined "$qemu"
    printf '[site a]\nnetwork=10.77.1.0/24\nrange=10.77.1.100-10.77.1.149\n'
    printf 'gateway=10.77.1.254\n\n'
    printf '[site b]\nnetwork=10.77.2.0/24\nrange=10.77.2.100-10.77.2.149\n'
    printf 'gateway=10.77.2.254\n\n'
    saline_node_conf a 1 3
    saline_node_conf a 2 3
    saline_node_conf b 1 3
    printf '[image saline]\ndir=%s\n\n[image saline-ssi]\ndir=%s\n' "$plain" "$image"
} >"$SALINE_CONF"

all_domains() { lv_domains a 1; lv_domains a 2; lv_domains b 1; }
no_domains() { [[ -z $(all_domains) ]]; }
ips_of() { field "$(job_json "$1")" '" ".join(v["ip"] for v in sorted(j["vm_list"], key=lambda v: v["index"]))'; }

saline_start
wait_for 30 bash -c "'$saline_bin' --socket '$SALINE_SOCK' nodes | grep -c ' up ' | grep -qx 3" ||
    { as_root nodes >&2; fail "the nodes did not come up in salined"; }

# ---- refused: an image without the SSI parts ----
out=$(as_user $user1 submit --ssi -n 2 -c 1 -m 256M --image saline --walltime 10m -- true 2>&1) &&
    fail "an SSI job on the plain saline image was accepted"
[[ $(wc -l <<<"$out") -eq 1 && $out == *"image 'saline' has no SSI parts"* ]] ||
    fail "SSI job on a plain image: '$out'"
log "refused: $out"
assert_eq "jobs after bad submissions" 0 "$(field "$(as_root stat --all --json)" 'len(j["jobs"])')"

# ---- two users' SSI jobs at once on the same nodes ----
# The command, run once in the cluster: its view, a child on the member
# that is VM 1 (the node file's second line), and the member count.
cmd='ssi nodes
vm1=$(sed -n 2p "$SALINE_NODEFILE")
id=$(ssi nodes | awk -v ip="$vm1" "\$2 == ip {print \$1}")
echo "vm1 is node $id: $(ssi run -n "$id" hostname)"
echo "members=$(ssi nodes | tail -n +3 | wc -l) job=$SALINE_JOB_ID"
sleep 5
exit $1'
ja=$(submit as_user $user1 submit --ssi --name ssi-a -n 2 -c 2 -m 256M \
    --image saline-ssi --walltime 10m -- sh -c "$cmd" sh 3) || fail "cannot submit SSI job A"
jb=$(submit as_user $user2 submit --ssi --name ssi-b -n 2 -c 1 -m 256M \
    --image saline-ssi --walltime 10m -- sh -c "$cmd" sh 0) || fail "cannot submit SSI job B"
log "SSI jobs $ja (user $user1) and $jb (user $user2) submitted"
wait_for 120 state_is "$ja" running || fail "job $ja did not start: $(job_json "$ja")"
wait_for 120 state_is "$jb" running || fail "job $jb did not start: $(job_json "$jb")"
# Both hold their VMs at once (salined never lets VMs outlive their job).
state_is "$ja" running || fail "job $ja ended before $jb started: $(job_json "$ja")"
assert_eq "nodes of job $ja" "a1 a2" "$(vm_nodes "$ja")"
assert_eq "nodes of job $jb" "a1 a2" "$(vm_nodes "$jb")"
field "$(job_json "$ja")" 'j["ssi"]' | grep -qx True || fail "job $ja is not an SSI job: $(job_json "$ja")"
[[ $(job_json "$ja") != *ssi_key* ]] || fail "the API shows the cluster key"
# Addresses are leases, released when the job ends: taken now.
declare -A ips
ips[$ja]=$(ips_of "$ja")
ips[$jb]=$(ips_of "$jb")

for j in "$ja" "$jb"; do
    wait_for 300 state_in "$j" done failed || fail "job $j did not end: $(job_json "$j")"
done
for j in "$ja" "$jb"; do
    out=$(as_root log "$j" --vm 0) || fail "saline log $j failed"
    log "job $j (VMs at ${ips[$j]}), VM 0's output:"
    echo "$out" >&2
    js=$(job_json "$j")
    assert_eq "state of job $j" done "$(field "$js" 'j["state"]')"
    assert_eq "members seen by job $j" 1 "$(grep -c "^members=2 job=$j\$" <<<"$out")"
    view=$(awk 'NR > 2 && $3 == "up" {print $2}' <<<"$out" | sort | tr '\n' ' ')
    assert_eq "addresses in job $j's view" "$(tr ' ' '\n' <<<"${ips[$j]}" | sort | tr '\n' ' ')" "$view"
    grep -q "^vm1 is node [0-9]*: saline-$j-1\$" <<<"$out" ||
        fail "job $j: no 'ssi run' on VM 1 in its output"
done
assert_eq "exit status of job $ja" 3 "$(field "$(job_json "$ja")" 'j["exit_status"]')"
assert_eq "exit status of job $jb" 0 "$(field "$(job_json "$jb")" 'j["exit_status"]')"
# VM 1 ran ssid, whose log is its output.
as_root log "$ja" --vm 1 | grep -q "cluster 'saline-$ja'" || {
    as_root log "$ja" --vm 1 >&2
    fail "job $ja: VM 1's output is not ssid's log"
}
as_user $user2 stat "$ja" >/dev/null 2>&1 && fail "user $user2 sees user $user1's job"
wait_for 60 no_domains || fail "domains left after the SSI jobs: $(all_domains)"
log "SSI jobs $ja and $jb ran in clusters of their own and were torn down"

# ---- one cluster over two sites ----
jc=$(submit as_user $user1 submit --ssi --name ssi-wide -n 3 -c 2 -m 256M \
    --image saline-ssi --walltime 10m -- sh -c 'ssi nodes; exit 5') ||
    fail "cannot submit SSI job C"
wait_for 120 state_is "$jc" running || fail "job $jc did not start: $(job_json "$jc")"
assert_eq "nodes of job $jc" "a1 a2 b1" "$(vm_nodes "$jc")"
ipc=$(ips_of "$jc")
wait_for 300 state_in "$jc" done failed || fail "job $jc did not end: $(job_json "$jc")"
out=$(as_root log "$jc" --vm 0) || fail "saline log $jc failed"
echo "$out" >&2
assert_eq "state of job $jc" done "$(field "$(job_json "$jc")" 'j["state"]')"
assert_eq "exit status of job $jc" 5 "$(field "$(job_json "$jc")" 'j["exit_status"]')"
view=$(awk 'NR > 2 && $3 == "up" {print $2}' <<<"$out" | sort | tr '\n' ' ')
assert_eq "addresses in job $jc's view" "$(tr ' ' '\n' <<<"$ipc" | sort | tr '\n' ' ')" "$view"
[[ $view == *10.77.2.* ]] || fail "job $jc has no member on site b: $view"
wait_for 60 no_domains || fail "domains left after job $jc: $(all_domains)"
log "SSI job $jc formed one cluster over sites a and b"
