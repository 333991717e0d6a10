#!/usr/bin/env bash
# Saline best-effort jobs that lose no work: salined with real libvirtd
# on four nodes of two sites, a real kget-store on a storage node (a3),
# guests under TCG. Checked:
#   - a 2-VM best-effort job counting into a file of its overlay is
#     snapshotted periodically; a regular job that needs its nodes makes
#     it suspend (final snapshot, VMs removed), then it is redeployed on
#     the other site and its count goes on from the snapshot, never from 0;
#   - kill -9 of one of its QEMUs: back to the latest periodic snapshot,
#     redeployed; the count goes back at most one interval;
#   - it ends done with its exit status, its file and output intact;
#   - a best-effort SSI job (2 VMs, one cluster) suspended and resumed:
#     the command, run through `ssi run`, goes on; the cluster is whole;
#   - saline suspend / resume by its owner; bad input (unknown job, a
#     regular job, a job already suspended) is one line and changes
#     nothing;
#   - the store stopped during a final snapshot: the VMs are not
#     destroyed, the job runs on (on-failure=keep), said in its history;
#   - a corrupt chunk of the latest snapshot: refused at redeploy, the
#     one before is used;
#   - kill -9 of salined and kget-store mid-snapshot, restart: the store
#     verifies, the job carries on from a complete snapshot;
#   - redeployed on site B, whose nodes run dht-pagesd, the VMs take RAM
#     pages the site holds from its page index, not from the store.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/libvirt.sh"
source "$(dirname "$0")/lib/saline.sh"
source "$(dirname "$0")/lib/pages.sh"
requires_root
needs virsh nsenter unshare python3 setpriv qemu-img

image=$VC_BUILDDIR/images/saline
qemu=/usr/bin/qemu-system-x86_64
kget=$VC_BUILDDIR/saline/kget/cli/kget
kget_store=$VC_BUILDDIR/saline/kget/store/kget-store
for f in "$salined_bin" "$saline_bin" "$kget" "$kget_store"; do
    [[ -x $f ]] || fail "'$f' not built"
done
[[ -f $image/disk.qcow2 ]] || fail "no saline image in '$image'"
user1=4201

# QEMU runs the node's kget as its migration target (exec:).
export VC_LV_QEMU_CONF="seccomp_sandbox = 0"
sites_create 2 3 --delay 5 --rate 100
lv_start_nodes "$qemu" a1 a2 b1 b2 || fail "libvirtd did not start on every node"
# Site B's page index (at /run/dht-pages/resolver.sock, where the nodes'
# QEMU, and so their kget, look); site A has none: a redeploy there must
# work all the same.
for n in b1 b2; do
    pages_start "${n:0:1}" "${n:1}" --hash-rate 0 || fail "dht-pagesd on $n did not start"
done

chmod 0711 "$VC_TESTDIR"
mkdir -m 0755 "$VC_TESTDIR/run"
store_dir=$VC_TESTDIR/store
store_ip=$(node_ip a 3)
key=$VC_TESTDIR/site.key
head -c 32 /dev/urandom >"$key"
chmod 0600 "$key"
kget_pid=
store_start() {
    mkdir -p "$store_dir"
    # ip netns exec and env exec: $! is the store itself.
    ip netns exec "$(node_ns a 3)" env -u G_DEBUG "$kget_store" --dir "$store_dir" \
        --listen "$store_ip:7410" \
        --key-file "$key" >>"$VC_TESTDIR/kget-store.log" 2>&1 &
    kget_pid=$!
    wait_for 20 kg ls >/dev/null || fail "kget-store does not answer"
}
store_stop() {
    [[ -n $kget_pid ]] || return 0
    kill "${1:--TERM}" "$kget_pid" 2>/dev/null
    wait "$kget_pid" 2>/dev/null || true
    kget_pid=
}
kg() { on_node a 1 "$kget" --store "$store_ip:7410" --key-file "$key" "$@"; }
cleanup_fn store_stop
cleanup_fn bash -c "tail -n 20 '$VC_TESTDIR/kget-store.log' >&2 2>/dev/null"

SALINE_SOCK=$VC_TESTDIR/run/saline.sock
SALINE_CONF=$VC_TESTDIR/salined.conf
SALINE_NS_NODE="a 1"
cat >"$SALINE_CONF" <<EOF
$(saline_conf_salined "$qemu")
[snapshots]
store=$store_ip:7410
key-file=$key
kget=$kget
interval=600
keep=3
timeout=90
resolver=/run/dht-pages/resolver.sock

[site a]
network=10.77.1.0/24
range=10.77.1.100-10.77.1.149
gateway=10.77.1.254

[site b]
network=10.77.2.0/24
range=10.77.2.100-10.77.2.149
gateway=10.77.2.254

$(saline_node_conf a 1 2)
$(saline_node_conf a 2 2)
$(saline_node_conf b 1 2)
$(saline_node_conf b 2 2)
[image saline]
dir=$image

[image saline-ssi]
dir=$VC_BUILDDIR/images/saline-ssi
EOF

qemu_pid() {
    local n
    n=$(field "$(job_json "$1")" "[v['node'] for v in j['vm_list'] if v['index'] == $2][0]")
    lv_exec "${n:0:1}" "${n:1}" cat "/run/libvirt/qemu/saline-$1-$2.pid"
}

store_start
saline_start
wait_for 30 bash -c "'$saline_bin' --socket '$SALINE_SOCK' nodes | grep -c ' up ' | grep -qx 4" ||
    { as_root nodes >&2; fail "the nodes did not come up in salined"; }

# The command counts to 240, one tick every half second, appending each
# value to /job/count.log on its overlay, then checks that file.
count_cmd='i=$(tail -n 1 /job/count.log 2>/dev/null || echo 0)
while [ "$i" -lt 240 ]; do
  i=$((i + 1)); echo "$i" >>/job/count.log; sync; echo "tick $i"; sleep 0.5
done
n=0; while read -r x; do n=$((n + 1)); [ "$x" = "$n" ] || echo "BAD line $n: $x"; done </job/count.log
echo "counted $n"; exit 3'

# ---- bad input ----
out=$(as_root suspend 999 2>&1) && fail "suspend of an unknown job accepted"
[[ $(wc -l <<<"$out") -eq 1 ]] || fail "unknown job: '$out'"
reg=$(submit as_user $user1 submit -n 1 -c 1 -m 128M --image saline --walltime 10m \
    -- sleep 1) || fail "cannot submit a regular job"
out=$(as_user $user1 suspend "$reg" 2>&1) && fail "suspend of a regular job accepted"
[[ $(wc -l <<<"$out") -eq 1 && $out == *best-effort* ]] || fail "regular job: '$out'"
log "refused: $out"
wait_for 120 state_is "$reg" done || fail "job $reg did not end: $(job_json "$reg")"

# ---- a best-effort job, preempted, redeployed on the other site ----
for n in b1 b2; do
    pages_wait_members "${n:0:1}" "${n:1}" 1 90 || fail "site B's page index did not form"
done
be=$(submit as_user $user1 submit --besteffort --snapshot-interval 20s -n 2 -c 2 -m 160M \
    --image saline --walltime 30m -- sh -c "$count_cmd") || fail "cannot submit the best-effort job"
wait_for 180 state_is "$be" running || fail "job $be did not start: $(job_json "$be")"
assert_eq "nodes of job $be" "a1 a2" "$(vm_nodes "$be")"
wait_for 120 has_snapshots "$be" 1 || { history "$be" >&2; fail "no periodic snapshot of job $be"; }
history "$be" >&2
before=$(last_tick "$be" 0)
addrs() { field "$(job_json "$1")" '" ".join(v["mac"] + "/" + v["ip"] for v in j["vm_list"])'; }
addrs_before=$(addrs "$be")
log "job $be at tick $before on a1 a2 ($addrs_before); a regular job wants site a"
rj=$(submit as_user $user1 submit -n 2 -c 2 -m 128M --site a --image saline --walltime 10m \
    -- sh -c 'echo regular; sleep 20') || fail "cannot submit the regular job"
wait_for 240 state_is "$rj" running || fail "job $rj did not start: $(job_json "$rj"); $(history "$be")"
history_has "$be" "suspended at snapshot" || fail "job $be was not suspended: $(history "$be")"
wait_for 300 state_is "$be" running || fail "job $be not redeployed: $(job_json "$be"); $(history "$be")"
assert_eq "nodes of job $be after its redeploy" "b1 b2" "$(vm_nodes "$be")"
assert_eq "MACs and addresses of job $be after its redeploy" "$addrs_before" "$(addrs "$be")"
sleep 3
after=$(last_tick "$be" 0)
log "job $be redeployed on b1 b2: tick $before before, $after now"
# Where its RAM came from: the two VMs share most pages (one image), and
# what one VM's load missed it published to the site.
site_mib=$(history "$be" | sed -n "s/^VM [01] loaded on 'b[12]': \([0-9.]*\) MiB of RAM from the site.*/\1/p" |
    awk '{ s += $1 } END { print s + 0 }')
history "$be" | grep "loaded on" >&2 || true
awk -v m="$site_mib" 'BEGIN { exit !(m > 0) }' ||
    fail "no RAM page came from site B's page index: $(history "$be")"
log "ok: $site_mib MiB of job $be's RAM came from site B's page index"
((after >= before)) || fail "the count went back from $before to $after"

# ---- kill -9 of salined mid-snapshot, then a restart ----
n=$(snapshots "$be")
wait_for 120 grep -q "job $be: snapshot $((n + 1)) starting" "$VC_TESTDIR/salined.log" ||
    fail "no snapshot $((n + 1)) of job $be started"
sleep 1
saline_kill9
log "salined killed during snapshot $((n + 1)) of job $be"
saline_start
wait_for 120 has_snapshots "$be" $((n + 1)) || fail "no snapshot after the restart: $(history "$be")"
state_is "$be" running || fail "job $be is $(job_state "$be") after salined's restart"
kg verify >/dev/null || fail "the store does not verify after salined's kill -9"

# ---- a corrupt chunk of the latest snapshot, then kill -9 of a QEMU:
# the latest is refused, the job goes back to the one before ----
n=$(snapshots "$be")
wait_for 120 has_snapshots "$be" $((n + 1)) || fail "no periodic snapshot"
sleep 2
# The newest chunk is the last record of the newest pack: something only
# the latest snapshot holds (its output drive changed since the one before).
pack=$(ls -t "$store_dir"/packs/* 2>/dev/null | head -n 1)
[[ -n $pack ]] || fail "no pack in '$store_dir/packs'"
python3 - "$pack" <<'PYEOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1, 2)
    b = f.read(1)
    f.seek(-1, 2)
    f.write(bytes([b[0] ^ 0xff]))
PYEOF
latest=$(snapshots "$be")
killed_at=$(last_tick "$be" 1)
pid=$(qemu_pid "$be" 1)
kill -9 "$pid"
log "chunk at the end of '$pack' corrupted; QEMU of VM 1 of job $be killed at tick $killed_at"
wait_for 60 state_in "$be" suspending suspended resuming || fail "job $be did not roll back: $(history "$be")"
wait_for 300 state_is "$be" running || fail "job $be not redeployed after the kill: $(history "$be")"
history_has "$be" "snapshot $latest refused" || fail "snapshot $latest not refused: $(history "$be")"
resumed_at=$(last_tick "$be" 1)
log "after the rollback VM 1 is at tick $resumed_at (killed at $killed_at)"
# Two intervals of 20 s are 80 ticks, plus the snapshots' own time.
((resumed_at > 0 && killed_at - resumed_at <= 120)) ||
    fail "the count went back from $killed_at to $resumed_at"
kg verify "saline-$be@$latest" >/dev/null 2>&1 && fail "the corrupt snapshot verifies"

# ---- the store unreachable, then killed, during a final snapshot: the
# VMs are kept; the store restarts consistent ----
kill -STOP "$kget_pid"
as_user $user1 suspend "$be" || fail "saline suspend $be refused"
wait_for 30 grep -q "job $be: final snapshot" "$VC_TESTDIR/salined.log" ||
    fail "no final snapshot of job $be started"
sleep 3
store_stop -KILL
log "kget-store stopped, then killed, during the final snapshot of job $be"
wait_for 150 history_has "$be" "keeps running" || {
    ps -ef | grep -E "kget|qemu" | grep -v grep >&2
    gdb -p "$salined_pid" -batch -ex "thread apply all bt" 2>&1 | grep -E "^#|^Thread" | head -80 >&2
    fail "no failed final snapshot: $(history "$be")"; }
state_is "$be" running || fail "job $be is $(job_state "$be") after a failed final snapshot"
store_start
kg verify >/dev/null || fail "the store does not verify after its kill -9"
failed_seq=$(($(field "$(job_json "$be")" 'j["snapshot_seq"]') + 1))
[[ $(kg ls "saline-$be") != *"saline-$be@$failed_seq "* ]] ||
    fail "the failed snapshot $failed_seq is listed as sealed: $(kg ls "saline-$be")"
log "ok: final snapshot failed, job $be keeps running; the store verifies"

# ---- saline suspend / resume; a job already suspended ----
as_user $user1 suspend "$be" || fail "saline suspend $be refused"
wait_for 240 state_is "$be" suspended || fail "job $be not suspended: $(history "$be")"
[[ -z $(lv_domains b 1)$(lv_domains b 2) ]] || fail "domains left after the suspension"
out=$(as_user $user1 suspend "$be" 2>&1) && fail "a suspended job suspended again"
[[ $(wc -l <<<"$out") -eq 1 ]] || fail "suspended twice: '$out'"
sleep 5
state_is "$be" suspended || fail "held job $be did not stay suspended"
as_user $user1 resume "$be" || fail "saline resume $be refused"
wait_for 300 state_is "$be" running || fail "job $be not resumed: $(history "$be")"
log "ok: job $be suspended and resumed by its owner on $(vm_nodes "$be")"

# ---- the end: done, exit status, the file and output intact ----
wait_for 600 state_in "$be" done failed || fail "job $be did not end: $(history "$be")"
js=$(job_json "$be")
assert_eq "state of job $be" done "$(field "$js" 'j["state"]')"
assert_eq "exit status of job $be" 3 "$(field "$js" 'j["exit_status"]')"
for i in 0 1; do
    out=$(as_root log "$be" --vm "$i")
    grep -q "^counted 240$" <<<"$out" || fail "VM $i did not count to 240: $(tail -n 3 <<<"$out")"
    grep -q "^BAD" <<<"$out" && fail "VM $i's file is inconsistent: $(grep ^BAD <<<"$out" | head -n 3)"
    assert_eq "times VM $i printed tick 1" 1 "$(grep -c '^tick 1$' <<<"$out")"
done
history "$be" >&2
kg verify >/dev/null || fail "the store does not verify"
no_snapshots() { [[ $(kg ls --pending "saline-$1") != *"saline-$1@"* ]]; }
wait_for 60 no_snapshots "$be" || fail "snapshots of ended job $be left: $(kg ls --pending "saline-$be")"
log "ok: job $be done, counted to 240 once in each VM; its snapshots are gone from the store"

# ---- a best-effort SSI job: its VMs are one set; the cluster goes on
# after a suspension and a redeploy ----
ssi_cmd='i=0; while [ $i -lt 200 ]; do i=$((i + 1)); echo "tick $i"; sleep 0.5; done
echo "members=$(ssi nodes | tail -n +3 | wc -l) up=$(ssi nodes | tail -n +3 | grep -c " up ")"
exit 4'
jsi=$(submit as_user $user1 submit --ssi --besteffort --snapshot-interval 20s -n 2 -c 1 \
    -m 256M --image saline-ssi --walltime 30m -- sh -c "$ssi_cmd") ||
    fail "cannot submit the best-effort SSI job"
wait_for 180 state_is "$jsi" running || fail "SSI job $jsi did not start: $(job_json "$jsi")"
nodes0=$(vm_nodes "$jsi")
wait_for 120 has_snapshots "$jsi" 1 || { history "$jsi" >&2; fail "no periodic snapshot of SSI job $jsi"; }
wait_for 60 bash -c "'$saline_bin' --socket '$SALINE_SOCK' log $jsi --vm 0 | grep -q '^tick 10$'" ||
    fail "SSI job $jsi does not count: $(as_root log "$jsi" --vm 0 | tail -n 3)"
as_user $user1 suspend "$jsi" || fail "saline suspend $jsi refused"
wait_for 240 state_is "$jsi" suspended || fail "SSI job $jsi not suspended: $(history "$jsi")"
as_user $user1 resume "$jsi" || fail "saline resume $jsi refused"
wait_for 300 state_is "$jsi" running || fail "SSI job $jsi not resumed: $(history "$jsi")"
log "SSI job $jsi suspended on $nodes0, resumed on $(vm_nodes "$jsi")"
wait_for 600 state_in "$jsi" done failed || fail "SSI job $jsi did not end: $(history "$jsi")"
out=$(as_root log "$jsi" --vm 0)
js=$(job_json "$jsi")
assert_eq "state of SSI job $jsi" done "$(field "$js" 'j["state"]')"
assert_eq "exit status of SSI job $jsi" 4 "$(field "$js" 'j["exit_status"]')"
grep -q '^tick 200$' <<<"$out" || fail "SSI job $jsi did not count to 200: $(tail -n 3 <<<"$out")"
assert_eq "times SSI job $jsi printed tick 1" 1 "$(grep -c '^tick 1$' <<<"$out")"
grep -q '^members=2 up=2$' <<<"$out" || fail "SSI job $jsi's cluster after the redeploy: $(tail -n 2 <<<"$out")"
history "$jsi" >&2
log "ok: best-effort SSI job $jsi: one set of 2 VMs suspended and redeployed; its cluster of 2 went on to tick 200"
log "PASS"
