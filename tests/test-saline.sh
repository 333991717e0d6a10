#!/usr/bin/env bash
# Saline end to end: salined with real libvirtd on nodes of two sites
# (a1, a2, b1), real guests under TCG booted from the saline image, the
# saline CLI run as two unprivileged users and as root. Checked:
#   - bad input (unknown image, too many VMs, malformed walltime) is
#     refused with one line, and nothing is created;
#   - a 2-VM job spanning two nodes runs its command in both VMs; output
#     and exit status come back through `saline log` and `saline stat`;
#   - a job over its walltime is killed and marked so;
#   - one user neither sees nor cancels another's jobs; root sees all;
#   - kill -9 of salined while a job starts and another runs, then a
#     restart: no job lost or duplicated, the running VM re-adopted (same
#     QEMU process), addresses still unique, both jobs finish;
#   - a node's libvirtd killed: its non-idempotent job fails, its
#     idempotent job is requeued, their addresses are released; once
#     libvirtd is back the leftovers are removed and the requeued job
#     runs to the end;
#   - while that node is down (its site's jobs stay pending, no VM
#     starts): a submission repeated with its idempotency key gives the
#     same job, another user's the same key another job; 40 submissions
#     while salined is killed -9 and restarted three times store exactly
#     the jobs whose ids the CLI printed, each with a key of its own.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/libvirt.sh"
source "$(dirname "$0")/lib/saline.sh"
requires_root
needs virsh nsenter unshare python3 setpriv qemu-img

image=$VC_BUILDDIR/images/saline
qemu=/usr/bin/qemu-system-x86_64
[[ -x $salined_bin && -x $saline_bin ]] || fail "salined or saline not built"
[[ -f $image/disk.qcow2 ]] || fail "no saline image in '$image'"

user1=4201
user2=4202

sites_create 2 2 --delay 5 --rate 100
lv_start_nodes "$qemu" a1 a2 b1 || fail "libvirtd did not start on every node"

# The socket must be reachable by the test users.
chmod 0711 "$VC_TESTDIR"
mkdir -m 0755 "$VC_TESTDIR/run"
sock=$VC_TESTDIR/run/saline.sock
conf=$VC_TESTDIR/salined.conf
cat >"$conf" <<EOF
[salined]
state-dir=$VC_TESTDIR/state
socket=$sock
node-timeout=6
virt-type=qemu
emulator=$qemu
output-size=8M

[site a]
network=10.77.1.0/24
range=10.77.1.100-10.77.1.149
gateway=10.77.1.254

[site b]
network=10.77.2.0/24
range=10.77.2.100-10.77.2.149
gateway=10.77.2.254

[node a1]
site=a
uri=$(lv_uri a 1)
cpus=2
memory=1G

[node a2]
site=a
uri=$(lv_uri a 2)
cpus=2
memory=1G

[node b1]
site=b
uri=$(lv_uri b 1)
cpus=2
memory=1G

[image saline]
dir=$image
EOF

SALINE_CONF=$conf
SALINE_SOCK=$sock
SALINE_NS_NODE="a 1"
start_salined() { saline_start; }
stop_salined() { saline_stop; }
no_domains() { [[ -z $(all_domains) ]]; }
all_domains() {
    local n
    for n in a1 a2 b1; do
        lv_domains "${n:0:1}" "${n:1}" | sed "s/^/$n /"
    done
}

start_salined
wait_for 30 bash -c "'$saline_bin' --socket '$sock' nodes | grep -c ' up ' | grep -qx 3" ||
    { as_root nodes >&2; fail "the nodes did not come up in salined"; }
as_root nodes

# ---- bad input: one line, exit code, nothing created ----
out=$(as_user $user1 submit -n 1 -c 1 -m 128M --image nope --walltime 10m -- true 2>&1) &&
    fail "unknown image accepted"
[[ $(wc -l <<<"$out") -eq 1 && $out == *"unknown image 'nope'"* ]] || fail "unknown image: '$out'"
out=$(as_user $user1 submit -n 50 -c 2 -m 128M --image saline --walltime 10m -- true 2>&1) &&
    fail "50 VMs of 2 CPUs accepted on a grid of 6 CPUs"
[[ $(wc -l <<<"$out") -eq 1 ]] || fail "too many VMs: '$out'"
log "refused: $out"
rc=0
as_user $user1 submit -n 1 -c 1 -m 128M --image saline --walltime 1:99 -- true 2>/dev/null || rc=$?
assert_eq "exit status of a malformed walltime" 2 "$rc"
assert_eq "jobs after bad submissions" 0 "$(field "$(as_root stat --all --json)" 'len(j["jobs"])')"

# ---- a 2-VM job spanning two nodes; output and exit status ----
cmd='echo "hello from $(hostname) vm $SALINE_VM_INDEX of $SALINE_VMS"; sort $SALINE_NODEFILE | tr "\n" " "; echo; echo to-stderr >&2; test -d /job && echo cwd=$(pwd); exit 7'
j1=$(submit as_user $user1 submit --name pair -n 2 -c 2 -m 192M --image saline \
    --walltime 10m -- sh -c "$cmd") || fail "cannot submit the 2-VM job"
log "job $j1 submitted"
wait_for 120 state_is "$j1" running || fail "job $j1 did not start: $(job_json "$j1")"
# Addresses are leases: they go back to the pool when the job ends.
ips=$(field "$(job_json "$j1")" '" ".join(sorted(v["ip"] for v in j["vm_list"]))')
log "job $j1 VMs at $ips"
[[ $ips =~ ^10\.77\.1\.1[0-4][0-9]\ 10\.77\.1\.1[0-4][0-9]$ ]] || fail "addresses '$ips' not from site a's range"
wait_for 240 state_in "$j1" done failed || fail "job $j1 did not end: $(job_json "$j1")"
js=$(job_json "$j1")
assert_eq "state of job $j1" done "$(field "$js" 'j["state"]')"
assert_eq "exit status of job $j1" 7 "$(field "$js" 'j["exit_status"]')"
nodes=$(field "$js" '" ".join(sorted(v["node"] for v in j["vm_list"]))')
assert_eq "nodes of job $j1" "a1 a2" "$nodes"
logtxt=$(as_user $user1 log "$j1") || fail "saline log $j1 failed"
echo "$logtxt" >&2
for i in 0 1; do
    grep -q "hello from saline-$j1-$i vm $i of 2" <<<"$logtxt" || fail "no output of VM $i"
done
[[ $(grep -c "to-stderr" <<<"$logtxt") -eq 2 ]] || fail "stderr not captured in both VMs"
[[ $(grep -c "cwd=/job" <<<"$logtxt") -eq 2 ]] || fail "the command did not run in /job"
[[ $(grep -c -- "$ips" <<<"$logtxt") -eq 2 ]] || fail "nodefile is not '$ips' in both VMs"
wait_for 30 no_domains || fail "domains left after job $j1: $(all_domains)"

# ---- isolation between users ----
as_user $user2 stat "$j1" >/dev/null 2>&1 && fail "user2 sees user1's job"
as_user $user2 del "$j1" >/dev/null 2>&1 && fail "user2 cancelled user1's job"
[[ -z $(as_user $user2 stat --all | grep -w "$j1") ]] || fail "user2's list shows job $j1"
as_user $user1 stat --all | grep -qw "$j1" || fail "user1's list lacks job $j1"
as_root stat --all | grep -qw "$j1" || fail "root's list lacks job $j1"
log "ok: user2 neither sees nor changes job $j1"

# ---- walltime ----
j2=$(submit as_user $user2 submit -n 1 -c 1 -m 192M --image saline --walltime 25s \
    -- sh -c 'echo sleeping; sleep 600; echo woke') || fail "cannot submit the walltime job"
wait_for 240 state_in "$j2" done failed cancelled || fail "job $j2 did not end"
js=$(job_json "$j2")
assert_eq "state of job $j2" failed "$(field "$js" 'j["state"]')"
[[ $(field "$js" 'j["failure"]') == *walltime* ]] || fail "job $j2: $(field "$js" 'j["failure"]')"
as_user $user2 log "$j2" | grep -q sleeping || fail "the output of job $j2 before the kill is lost"
as_user $user2 log "$j2" | grep -q woke && fail "job $j2 was not killed"
wait_for 30 no_domains || fail "domains left after job $j2: $(all_domains)"

# ---- kill -9 salined while one job runs and another starts ----
j3=$(submit as_user $user1 submit -n 1 -c 1 -m 192M --image saline --walltime 10m \
    -- sh -c 'echo started-once; sleep 45; echo finished') || fail "cannot submit job $j3"
wait_for 120 state_is "$j3" running || fail "job $j3 did not start"
dom3=saline-$j3-0
node3=$(field "$(job_json "$j3")" 'j["vm_list"][0]["node"]')
pid3=$(lv_exec "${node3:0:1}" "${node3:1}" cat "/run/libvirt/qemu/$dom3.pid")
j4=$(submit as_user $user2 submit -n 2 -c 1 -m 192M --image saline --walltime 10m \
    -- sh -c 'echo started-once; sleep 5; echo finished') || fail "cannot submit job $j4"
wait_for 30 state_in "$j4" starting running || fail "job $j4 did not start: $(job_state "$j4")"
s4=$(job_state "$j4")
ips_before=$(field "$(as_root stat --json)" '" ".join(sorted(v["ip"] for x in j["jobs"] for v in x["vm_list"]))')
saline_kill9
log "salined killed while job $j3 runs and job $j4 is $s4"
start_salined
ips_after=$(field "$(as_root stat --json)" '" ".join(sorted(v["ip"] for x in j["jobs"] for v in x["vm_list"]))')
assert_eq "addresses of jobs $j3 and $j4 across the restart" "$ips_before" "$ips_after"
[[ -z $(tr ' ' '\n' <<<"$ips_after" | sort | uniq -d) && $(wc -w <<<"$ips_after") -eq 3 ]] ||
    fail "addresses not unique: '$ips_after'"
wait_for 240 bash -c "[[ \$('$saline_bin' --socket '$sock' stat $j4 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])') == done ]]" ||
    fail "job $j4 did not end after the restart: $(job_json "$j4")"
# Addresses unique while j3 and j4 ran together (j3 still runs).
js=$(job_json "$j3")
assert_eq "state of job $j3 after the restart" running "$(field "$js" 'j["state"]')"
pid3b=$(lv_exec "${node3:0:1}" "${node3:1}" cat "/run/libvirt/qemu/$dom3.pid")
assert_eq "QEMU of job $j3 re-adopted" "$pid3" "$pid3b"
wait_for 120 state_in "$j3" done failed || fail "job $j3 did not end"
for j in "$j3" "$j4"; do
    assert_eq "state of job $j" done "$(job_state "$j")"
    n=$(as_root log "$j" | grep -c started-once)
    assert_eq "runs of job $j's command" "$(field "$(job_json "$j")" 'j["vms"]')" "$n"
done
all=$(as_root stat --all --json)
assert_eq "jobs known" "$j1 $j2 $j3 $j4" "$(field "$all" '" ".join(str(x["id"]) for x in j["jobs"])')"

# ---- a node's libvirtd goes away ----
j5=$(submit as_user $user1 submit -n 1 -c 1 -m 192M --image saline --walltime 10m \
    --site b -- sh -c 'echo start; sleep 600') || fail "cannot submit job $j5"
j6=$(submit as_user $user1 submit --idempotent -n 1 -c 1 -m 192M --image saline \
    --walltime 10m --site b -- sh -c 'echo idem-start; sleep 40; echo idem-end') ||
    fail "cannot submit job $j6"
wait_for 120 state_is "$j5" running || fail "job $j5 did not start"
wait_for 120 state_is "$j6" running || fail "job $j6 did not start"
lv_kill b 1
log "libvirtd of b1 killed"
wait_for 90 state_is "$j5" failed || fail "job $j5 not failed: $(job_json "$j5")"
[[ $(field "$(job_json "$j5")" 'j["failure"]') == *"node 'b1' lost"* ]] ||
    fail "job $j5: $(field "$(job_json "$j5")" 'j["failure"]')"
wait_for 30 state_is "$j6" pending || fail "job $j6 not requeued: $(job_json "$j6")"
for j in "$j5" "$j6"; do
    assert_eq "addresses of job $j" "" \
        "$(field "$(job_json "$j")" '" ".join(v["ip"] or "" for v in j["vm_list"]).strip()')"
done
as_root nodes | grep -w b1 | grep -q down || fail "b1 not shown down"

# ---- idempotent submissions, while site b's jobs cannot start ----
idem() { "$@" -n 1 -c 1 -m 128M --image saline --walltime 10m --site b -- true; }
k1=$(submit idem as_user $user1 submit --idempotency-key nightly-1) ||
    fail "cannot submit with an idempotency key"
k2=$(submit idem as_user $user1 submit --idempotency-key nightly-1) ||
    fail "cannot submit again with the same key"
assert_eq "job of a submission repeated with its key" "$k1" "$k2"
k3=$(submit idem as_user $user2 submit --idempotency-key nightly-1) ||
    fail "user2 cannot submit with user1's key"
[[ $k3 != "$k1" ]] || fail "user2's key nightly-1 gave user1's job $k1"
out=$(as_user $user1 submit --idempotency-key nightly-1 -n 2 -c 1 -m 128M --image saline \
    --walltime 10m --site b -- true 2>&1) && fail "another job accepted under key nightly-1"
[[ $out == *"idempotency key reused with a different submission"* ]] ||
    fail "another job under key nightly-1: '$out'"
log "ok: key nightly-1 gives job $k1 to user1, job $k3 to user2"

# Each CLI retries once, with its key, when salined dies under it.
idem_n=40
idem_dir=$VC_TESTDIR/idem
idem_repeats() { grep -c 'submitted again' "$VC_TESTDIR/salined.log" || true; }
repeats=$(idem_repeats)
mkdir "$idem_dir"
(
    for ((i = 0; i < idem_n; i++)); do
        idem as_user $user1 submit --name idem-loop >"$idem_dir/$i" 2>&1 ||
            echo "exit $?" >>"$idem_dir/$i"
        sleep 0.1
    done
) &
idem_loop=$!
for k in 10 20 30; do
    wait_for 60 bash -c "(( \$(ls '$idem_dir' | wc -l) > $k ))" ||
        fail "the submissions stopped: $(ls "$idem_dir" | wc -l) made"
    saline_kill9
    start_salined
done
wait "$idem_loop"
log "salined killed -9 three times during $idem_n submissions"
grep -hv '^SALINE_JOB_ID=' "$idem_dir"/* >&2 || true
printed=$(sed -n 's/^SALINE_JOB_ID=\([0-9]*\)$/\1/p' "$idem_dir"/* | sort -n | tr '\n' ' ')
log "$(wc -w <<<"$printed") of $idem_n submissions printed a job id;" \
    "$(($(idem_repeats) - repeats)) repeats answered with the job stored"
all=$(as_root stat --all --json)
stored=$(field "$all" '" ".join(str(x["id"]) for x in j["jobs"] if x["name"] == "idem-loop")')
assert_eq "jobs stored by the submissions under kill -9" "${printed% }" "$stored"
assert_eq "keys of the jobs stored under kill -9 (distinct, none null)" "$(wc -w <<<"$stored")" \
    "$(field "$all" 'len(set(x["idempotency_key"] for x in j["jobs"] if x["name"] == "idem-loop" and x["idempotency_key"]))')"
as_root del $stored "$k1" "$k3" >/dev/null || fail "cannot cancel the idempotency test's jobs"
lv_restart b 1 || fail "libvirtd on b1 did not restart"
wait_for 240 state_in "$j6" done failed || fail "job $j6 did not run again: $(job_json "$j6")"
assert_eq "state of requeued job $j6" done "$(job_state "$j6")"
as_root log "$j6" | grep -q idem-end || fail "job $j6's second run left no output"
wait_for 60 no_domains || fail "leftovers: $(all_domains)"
log "ok: b1's leftovers removed, job $j6 requeued and done"
stop_salined
log "PASS"
