#!/usr/bin/env bash
# Saline on a real OAR 2.5: PostgreSQL, the OAR database and Almighty on a
# head node (a3), OAR's sshd and libvirtd on two nodes (a1, a2), a real
# kget-store (a3), salined in OAR mode (OAR's commands through `ip netns
# exec` as the user saline), guests under TCG. Checked:
#   - a best-effort Saline job runs on both OAR nodes through its OAR job
#     (saline stat shows it, oarstat shows saline's job), snapshotted
#     periodically;
#   - salined killed -9 while it runs, restarted: the same OAR job and the
#     same VMs go on;
#   - a plain user's regular OAR job (oarsub -l nodes=2, no Saline) needs
#     the nodes: OAR signals, the final snapshot is stored and verified
#     and the VMs are gone before OAR's kill; the regular job runs; the
#     time from signal to nodes free is reported against the grace;
#   - meanwhile a regular Saline job waits in OAR's queue like any OAR
#     job; `saline del` deletes its OAR job; a submission retried with the
#     same idempotency key gives the same job and one OAR job;
#   - when the regular OAR job ends, the best-effort job is redeployed and
#     its count goes on from the snapshot;
#   - an admin's plain oardel of its OAR job (OAR kills without notice):
#     back to the latest periodic snapshot, redeployed; an admin's
#     oardel -c (notice): a final snapshot, redeployed;
#   - saline suspend deletes the job's OAR job, resume submits another;
#   - the OAR database stopped (OAR unreachable): a submission is refused
#     with one line, the running job is untouched; back, submissions pass;
#   - at the end no Saline OAR job is left (oarstat).
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/libvirt.sh"
source "$(dirname "$0")/lib/saline.sh"
source "$(dirname "$0")/lib/oar.sh"
requires_root
needs virsh nsenter unshare python3 setpriv qemu-img oarsub

image=$VC_BUILDDIR/images/saline
qemu=/usr/bin/qemu-system-x86_64
kget=$VC_BUILDDIR/saline/kget/cli/kget
kget_store=$VC_BUILDDIR/saline/kget/store/kget-store
oarjob=$VC_BUILDDIR/saline/oarjob/saline-oarjob
for f in "$salined_bin" "$saline_bin" "$kget" "$kget_store" "$oarjob"; do
    [[ -x $f ]] || fail "'$f' not built"
done
[[ -f $image/disk.qcow2 ]] || fail "no saline image in '$image'"
getent passwd saline >/dev/null || fail "no user 'saline' (run scripts/setup.sh)"
getent passwd oar-tester >/dev/null || fail "no user 'oar-tester' (run scripts/setup.sh)"
user1=4201
grace=30

export VC_LV_QEMU_CONF="seccomp_sandbox = 0"
sites_create 1 3 --delay 1 --rate 1000
lv_start_nodes "$qemu" a1 a2 || fail "libvirtd did not start on every node"
oar_create a3 a1 a2 || fail "OAR did not start"
# The checkpoint grace ends at the scheduler's first pass after it.
oar_nudge_every 3

chmod 0711 "$VC_TESTDIR"
mkdir -m 0755 "$VC_TESTDIR/run"
store_dir=$VC_TESTDIR/store
store_ip=$(node_ip a 3)
key=$VC_TESTDIR/site.key
head -c 32 /dev/urandom >"$key"
chmod 0600 "$key"
kget_pid=
ip netns exec "$(node_ns a 3)" env -u G_DEBUG "$kget_store" --dir "$store_dir" \
    --listen "$store_ip:7410" --key-file "$key" >>"$VC_TESTDIR/kget-store.log" 2>&1 &
kget_pid=$!
cleanup_fn kill "$kget_pid"
kg() { on_node a 1 "$kget" --store "$store_ip:7410" --key-file "$key" "$@"; }
wait_for 20 kg ls >/dev/null || fail "kget-store does not answer"

SALINE_SOCK=$VC_TESTDIR/run/saline.sock
SALINE_CONF=$VC_TESTDIR/salined.conf
SALINE_NS_NODE="a 1"
cat >"$SALINE_CONF" <<EOF
$(saline_conf_salined "$qemu")
[oar]
command=$(oar_cmd_prefix saline)
user=saline
notify=$(node_ip a 1):7420
job-command=$oarjob
checkpoint=$grace
signal=12
poll=2
walltime-margin=120

[snapshots]
store=$store_ip:7410
key-file=$key
kget=$kget
interval=600
keep=3
timeout=90

[site a]
network=10.77.1.0/24
range=10.77.1.100-10.77.1.149
gateway=10.77.1.254

$(saline_node_conf a 1 1)
$(saline_node_conf a 2 1)
[image saline]
dir=$image
EOF

redeploys() { history "$1" | grep -c "redeploying on" || true; }
oar_id() { field "$(job_json "$1")" 'j["oar_job_id"]'; }
domains() { { lv_domains a 1; lv_domains a 2; } | sort | tr '\n' ' '; }
has_oar_job() { (($(oar_id "$1") > 0)); }
oar_ended() { oar_state_is "$1" Error || oar_state_is "$1" Terminated; }
no_saline_oar_jobs() { [[ -z $(saline_oar_jobs) ]]; }
# Job $1 runs again, under another OAR job than $2.
running_under_another() { state_is "$1" running && [[ $(oar_id "$1") != "$2" ]]; }
# When OAR first sent OAR job $1 its checkpoint signal (Unix seconds).
oar_checkpoint_time() {
    oar_as saline oarstat -f -J -j "$1" | python3 -c 'import json,sys
j=json.load(sys.stdin)
print(min(e["date"] for v in j.values() for e in v["events"] if e["type"] == "CHECKPOINT"))'
}
no_domains() { [[ -z $(domains | tr -d ' ') ]]; }
# Live OAR jobs of saline named saline-*: "id name state" lines.
saline_oar_jobs() {
    oar_as saline oarstat -J -u saline |
        python3 -c 'import json,sys
t=sys.stdin.read().strip()
j=json.loads(t) if t else None
for k,v in sorted((j or {}).items(), key=lambda x: int(x[0])):
    if (v.get("name") or "").startswith("saline-"):
        print(k, v["name"], v["state"])'
}

saline_start
wait_for 30 bash -c "'$saline_bin' --socket '$SALINE_SOCK' nodes | grep -c ' up ' | grep -qx 2" ||
    { as_root nodes >&2; fail "the nodes did not come up in salined"; }

# The command counts to 600, one tick every half second, appending each
# value to /job/count.log on its overlay, then checks that file.
count_cmd='i=$(tail -n 1 /job/count.log 2>/dev/null || echo 0)
while [ "$i" -lt 600 ]; do
  i=$((i + 1)); echo "$i" >>/job/count.log; sync; echo "tick $i"; sleep 0.5
done
n=0; while read -r x; do n=$((n + 1)); [ "$x" = "$n" ] || echo "BAD line $n: $x"; done </job/count.log
echo "counted $n"; exit 3'

# ---- a best-effort job on both OAR nodes ----
be=$(submit as_user $user1 submit --besteffort --snapshot-interval 20s -n 2 -c 1 -m 160M \
    --image saline --walltime 30m -- sh -c "$count_cmd") || fail "cannot submit the best-effort job"
wait_for 180 state_is "$be" running || fail "job $be did not start: $(job_json "$be"); $(history "$be")"
assert_eq "nodes of job $be" "a1 a2" "$(vm_nodes "$be")"
be_oar=$(oar_id "$be")
((be_oar > 0)) || fail "job $be has no OAR job: $(job_json "$be")"
as_root stat | grep -E "^ *$be .* $be_oar *$" >/dev/null ||
    fail "saline stat does not show OAR job $be_oar beside job $be: $(as_root stat)"
[[ $(saline_oar_jobs) == "$be_oar saline-$be Running" ]] ||
    fail "oarstat does not show saline-$be running: $(saline_oar_jobs)"
oar_as oar-tester oarstat | grep -E "^$be_oar .*saline" >/dev/null ||
    fail "another OAR user's oarstat does not list OAR job $be_oar: $(oar_as oar-tester oarstat)"
log "job $be runs on a1 a2 through OAR job $be_oar"
wait_for 120 has_snapshots "$be" 1 || { history "$be" >&2; fail "no periodic snapshot of job $be"; }

# ---- salined killed -9 while its OAR job runs ----
doms_before=$(domains)
saline_kill9
log "salined killed -9 with job $be running (OAR job $be_oar, domains $doms_before)"
sleep 2
saline_start
sleep 6
state_is "$be" running || fail "job $be is $(job_state "$be") after salined's restart"
assert_eq "OAR job of job $be after the restart" "$be_oar" "$(oar_id "$be")"
assert_eq "domains after the restart" "$doms_before" "$(domains)"
[[ $(saline_oar_jobs) == "$be_oar saline-$be Running" ]] ||
    fail "OAR jobs after the restart: $(saline_oar_jobs)"
t1=$(last_tick "$be" 0)
sleep 3
t2=$(last_tick "$be" 0)
((t2 > t1)) || fail "job $be does not count after salined's restart ($t1, $t2)"
log "ok: salined re-adopted OAR job $be_oar and the VMs of job $be"

# ---- a plain user's regular OAR job takes the nodes ----
seq_before=$(field "$(job_json "$be")" 'j["snapshot_seq"]')
tick_before=$(last_tick "$be" 0)
t_sub=$(date +%s.%N)
reg_oar=$(oar_sub oar-tester -d /tmp -l nodes=2,walltime=0:10:00 "sleep 25") ||
    fail "the plain OAR job was refused"
log "OAR job $reg_oar (oar-tester, nodes=2) submitted; job $be at tick $tick_before"
# Signal to nodes free: from the CHECKPOINT signal salined heard to the
# last of the job's domains gone.
wait_for 60 history_has "$be" "got the checkpoint signal" ||
    fail "job $be heard no checkpoint signal: $(history "$be"); events $(oar_events "$be_oar" | tr '\n' ' ')"
t_sig=$(date +%s.%N)
wait_for $((grace + 30)) no_domains || fail "the VMs of job $be are still there: $(domains)"
t_free=$(date +%s.%N)
oar_at_free=$(oar_state "$be_oar")
wait_for 60 state_is "$be" suspended || fail "job $be not suspended: $(history "$be")"
seq_after=$(field "$(job_json "$be")" 'j["snapshot_seq"]')
((seq_after > seq_before)) || fail "no final snapshot of job $be (seq $seq_before -> $seq_after)"
kg verify "saline-$be@$seq_after" >/dev/null || fail "snapshot saline-$be@$seq_after does not verify"
# Before OAR's kill: OAR had not ended its job when the VMs were gone
# (salined deletes it itself once the snapshot is stored).
[[ $oar_at_free == Running ]] || grep "deleting OAR job $be_oar: its job gave" "$VC_TESTDIR/salined.log" >/dev/null ||
    fail "OAR job $be_oar was $oar_at_free when the VMs were gone"
wait_for $((grace + 30)) oar_state_is "$reg_oar" Running || fail "the regular OAR job $reg_oar is $(oar_state "$reg_oar")"
t_reg=$(date +%s.%N)
t_oar_sig=$(oar_checkpoint_time "$be_oar")
log "$(awk -v s="$t_sub" -v o="$t_oar_sig" -v g="$t_sig" -v f="$t_free" -v r="$t_reg" -v gr="$grace" 'BEGIN {
    printf "OAR signalled %d s after the regular submission (whole seconds); salined acted %.1f s after the submission; nodes free %.1f s after OAR'"'"'s signal (grace %d s); regular OAR job running %.1f s after its submission", o - int(s), g - s, f - o, gr, r - s }')"
log "snapshot $seq_after of job $be stored and verified; OAR job $be_oar was $oar_at_free when the VMs were gone"

# ---- meanwhile a regular Saline job waits in OAR's queue ----
j2=$(submit as_user $user1 submit -n 1 -c 1 -m 128M --image saline --walltime 5m -- echo two) ||
    fail "cannot submit job 2"
wait_for 20 has_oar_job "$j2" || fail "job $j2 has no OAR job: $(job_json "$j2")"
j2_oar=$(oar_id "$j2")
wait_for 10 oar_state_is "$j2_oar" Waiting || fail "OAR job $j2_oar of job $j2 is $(oar_state "$j2_oar")"
state_is "$j2" pending || fail "job $j2 is $(job_state "$j2") while its OAR job waits"
# A submission retried with its idempotency key: one job, one OAR job.
k="retry-$$"
j3=$(submit as_user $user1 submit --idempotency-key "$k" -n 1 -c 1 -m 128M --image saline \
    --walltime 5m -- sh -c 'echo three; hostname') || fail "cannot submit job 3"
j3b=$(submit as_user $user1 submit --idempotency-key "$k" -n 1 -c 1 -m 128M --image saline \
    --walltime 5m -- sh -c 'echo three; hostname') || fail "the retry of job 3 was refused"
assert_eq "job of the retried submission" "$j3" "$j3b"
as_user $user1 del "$j2" >/dev/null || fail "saline del $j2 refused"
wait_for 30 oar_ended "$j2_oar" || fail "OAR job $j2_oar of deleted job $j2 is $(oar_state "$j2_oar")"
wait_for 20 has_oar_job "$j3" || fail "job $j3 has no OAR job"
[[ $(saline_oar_jobs | grep -c " saline-$j3 ") -eq 1 ]] || fail "OAR jobs of job $j3: $(saline_oar_jobs)"
log "ok: job $j2 waited in OAR's queue (OAR job $j2_oar), saline del removed it; job $j3 submitted twice is one job"

# ---- the regular OAR job ends: job 3 runs, then the best-effort job is
# redeployed from its snapshot ----
wait_for 120 state_is "$j3" done || fail "job $j3 did not run: $(job_json "$j3"); $(history "$j3")"
as_root log "$j3" | grep -x three >/dev/null || fail "job $j3's output: $(as_root log "$j3")"
wait_for 30 oar_ended "$(oar_id "$j3")" || fail "the OAR job of ended job $j3 is left"
wait_for 300 state_is "$be" running || fail "job $be not redeployed: $(job_json "$be"); $(history "$be")"
be_oar2=$(oar_id "$be")
[[ $be_oar2 != "$be_oar" ]] || fail "job $be redeployed under its old OAR job $be_oar"
sleep 3
after=$(last_tick "$be" 0)
log "job $be redeployed under OAR job $be_oar2: tick $tick_before before the signal, $after now"
((after >= tick_before)) || fail "the count went back from $tick_before to $after"

# ---- an admin deletes its OAR job: no notice ----
n=$(snapshots "$be")
wait_for 120 has_snapshots "$be" $((n + 1)) || fail "no periodic snapshot after the redeploy"
killed_at=$(last_tick "$be" 0)
r=$(redeploys "$be")
oar_as root oardel "$be_oar2" >/dev/null || fail "oardel $be_oar2 refused"
log "OAR job $be_oar2 deleted by the admin at tick $killed_at"
wait_for 60 history_has "$be" "OAR job $be_oar2 ended" || fail "job $be did not see its nodes go: $(history "$be")"
wait_for 300 running_under_another "$be" "$be_oar2" || fail "job $be not redeployed after the oardel: $(history "$be")"
(($(redeploys "$be") > r)) || fail "job $be runs on, not redeployed, after the oardel: $(history "$be")"
history_has "$be" "suspended at snapshot" || fail "no suspension in the history: $(history "$be")"
sleep 3
resumed_at=$(last_tick "$be" 0)
log "after the oardel job $be is at tick $resumed_at (deleted at $killed_at)"
# One interval of 20 s is 40 ticks, plus the snapshots' own time.
((resumed_at > 0 && killed_at - resumed_at <= 100)) ||
    fail "the count went back from $killed_at to $resumed_at"

# ---- an admin asks for a checkpoint (oardel -c): notice, so a final
# snapshot, then a redeploy ----
be_oar3=$(oar_id "$be")
seq_before=$(field "$(job_json "$be")" 'j["snapshot_seq"]')
oar_as root oardel -c "$be_oar3" >/dev/null || fail "oardel -c $be_oar3 refused"
wait_for 60 history_has "$be" "OAR job $be_oar3 got the checkpoint signal" ||
    fail "job $be heard no checkpoint of OAR job $be_oar3: $(history "$be")"
wait_for 300 running_under_another "$be" "$be_oar3" ||
    fail "job $be not redeployed after oardel -c: $(history "$be")"
seq_after=$(field "$(job_json "$be")" 'j["snapshot_seq"]')
((seq_after > seq_before)) || fail "no final snapshot after oardel -c (seq $seq_before -> $seq_after)"
history_has "$be" "redeploying on a1 a2 from snapshot $seq_after" ||
    fail "job $be not redeployed from its final snapshot $seq_after: $(history "$be")"
log "ok: oardel -c of OAR job $be_oar3: final snapshot $seq_after, redeployed under OAR job $(oar_id "$be")"

# ---- saline suspend gives the nodes back to OAR; resume asks again ----
be_oar4=$(oar_id "$be")
as_user $user1 suspend "$be" >/dev/null || fail "saline suspend $be refused"
wait_for 120 state_is "$be" suspended || fail "job $be not suspended: $(history "$be")"
wait_for 30 oar_ended "$be_oar4" || fail "OAR job $be_oar4 of suspended job $be is $(oar_state "$be_oar4")"
sleep 5
[[ $(saline_oar_jobs) != *" saline-$be "* ]] || fail "a held job has an OAR job: $(saline_oar_jobs)"
as_user $user1 resume "$be" >/dev/null || fail "saline resume $be refused"
wait_for 300 running_under_another "$be" "$be_oar4" || fail "job $be not redeployed after resume: $(history "$be")"
log "ok: saline suspend deleted OAR job $be_oar4; resume ran job $be under OAR job $(oar_id "$be")"

# ---- OAR unreachable: its database stopped ----
doms=$(domains)
oar_db_stop
wait_for 30 grep "OAR is unreachable" "$VC_TESTDIR/salined.log" >/dev/null ||
    fail "salined did not notice OAR's database gone"
out=$(as_user $user1 submit -n 1 -c 1 -m 128M --image saline --walltime 5m -- true 2>&1) &&
    fail "a submission was accepted while OAR is unreachable: $out"
[[ $(wc -l <<<"$out") -eq 1 && $out == *"OAR is unreachable"* ]] || fail "refusal: '$out'"
log "refused: $out"
sleep 5
state_is "$be" running || fail "job $be is $(job_state "$be") while OAR is unreachable"
assert_eq "domains while OAR is unreachable" "$doms" "$(domains)"
oar_db_start
wait_for 30 grep "OAR is reachable again" "$VC_TESTDIR/salined.log" >/dev/null ||
    fail "salined did not see OAR back"
j4=$(submit as_user $user1 submit -n 1 -c 1 -m 128M --image saline --walltime 5m -- true) ||
    fail "a submission was refused with OAR back"
as_user $user1 del "$j4" >/dev/null || fail "saline del $j4 refused"

# ---- the end: no OAR job left ----
as_user $user1 del "$be" >/dev/null || fail "saline del $be refused"
wait_for 60 no_domains || fail "domains left: $(domains)"
wait_for 60 no_saline_oar_jobs ||
    fail "OAR jobs left: $(saline_oar_jobs)"
log "ok: no Saline OAR job left"
