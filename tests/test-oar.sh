#!/usr/bin/env bash
# A real OAR 2.5 on one site: the head on a3 (PostgreSQL, Almighty), nodes
# a1 and a2. A plain user's job runs on a node its OAR_NODEFILE names;
# saline's best-effort idempotent job, submitted from another namespace as
# salined will, gets its checkpoint signal when a regular job wants its
# nodes, is killed after the grace, the regular job runs, OAR resubmits
# the best-effort job, and oardel ends that one with its processes.
# Times (signal, kill, start of the regular job) are logged, not asserted.

source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/oar.sh"

requires_root
needs ip setpriv unshare ssh-keygen python3 oarsub oarstat oardel oarnodes
[[ -x /usr/sbin/Almighty && -x /usr/sbin/sshd ]] ||
    fail "OAR server or sshd missing (run scripts/setup.sh)"
[[ -x $VC_WANEM ]] || fail "wanem not built at '$VC_WANEM'"
# oarexec runs a job with `$SHELL -c CMD`: nologin would refuse it, and
# only bash runs a lone command in place, so the checkpoint signal
# reaches it and not a shell in between.
for u in saline oar-tester; do
    [[ $(getent passwd "$u" | cut -d: -f7) == /bin/bash ]] ||
        fail "no user '$u' with shell /bin/bash (run scripts/setup.sh)"
done

t_start=$SECONDS
oar_gc
sites_create 1 3
cleanup_fn oar_log 60
oar_create a3 a1 a2 || fail "cannot set up OAR"
log "OAR up in $((SECONDS - t_start)) s"

# job_field ID EXPR: EXPR on the job's `oarstat -f -J` entry `j`
job_field() {
    oar_as root oarstat -f -J -j "$1" |
        python3 -c 'import json,sys; j=list(json.load(sys.stdin).values())[0]; print(eval(sys.argv[1]))' "$2"
}
# ended PID: gone, or a zombie nobody reaped yet
ended() { [[ ! -e /proc/$1 || $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
has_line() { grep -q "$1" "$2" 2>/dev/null; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# "a1", then "    1 : Alive", per host
alive=$(oar_as oar-tester oarnodes -s |
    awk '/^[^ ]/ { h = $1 } /: Alive$/ { print h }' | sort | xargs)
assert_eq "Alive nodes" "a1 a2" "$alive"

# Output directories the job users write to.
plain=$VC_TESTDIR/plain
be=$VC_TESTDIR/be
install -d -m 0755 -o oar-tester -g oar-tester "$plain"
install -d -m 0755 -o saline -g saline "$be"

# A regular job of a plain user.
id1=$(oar_sub oar-tester -d "$plain" -l nodes=1 \
    "hostname >host1; id -un >user1; cat \"\$OAR_NODEFILE\" >nodes1") ||
    fail "oarsub of a regular job failed"
oar_wait_state "$id1" Terminated 30 ||
    fail "job $id1 is '$(oar_state "$id1")', not Terminated"
host1=$(cat "$plain/host1")
[[ $host1 == a1 || $host1 == a2 ]] || fail "job $id1 ran on '$host1'"
assert_eq "job $id1's OAR_NODEFILE" "$host1" "$(cat "$plain/nodes1")"
assert_eq "job $id1's user" oar-tester "$(cat "$plain/user1")"
assert_eq "job $id1's host in oarstat" "['$host1']" \
    "$(job_field "$id1" 'j["assigned_network_address"]')"

# saline's best-effort job, submitted from a1's namespace with the prefix
# salined is given. The script records the checkpoint signal (repeated on
# every scheduler pass of the grace).
cat >"$be/be.sh" <<'EOF'
#!/bin/sh
out=$1
echo "start $(hostname) $$ $(date +%s.%N)" >>"$out"
trap 'echo "signal 12 $(date +%s.%N)" >>"$out"' 12
while :; do
    sleep 1 &
    wait $!
done
EOF
chmod 0755 "$be/be.sh"
prefix=$(oar_cmd_prefix saline)
log "a daemon elsewhere runs: $prefix oarsub ..."
# shellcheck disable=SC2086
sub=$(on_node a 1 $prefix oarsub -d "$be" -n be -t besteffort -t idempotent \
    --checkpoint 20 --signal 12 -l nodes=2 "$be/be.sh $be/be.out" 2>&1) ||
    fail "oarsub of the best-effort job failed: $sub"
be1=$(sed -n 's/^OAR_JOB_ID=//p' <<<"$sub")
[[ -n $be1 ]] || fail "no OAR_JOB_ID in '$sub'"
wait_for 30 has_line '^start' "$be/be.out" ||
    fail "best-effort job $be1 did not start: $(oar_state "$be1")"
assert_eq "job $be1's state" Running "$(oar_state "$be1")"
assert_eq "job $be1's hosts" "['a1', 'a2']" \
    "$(job_field "$be1" 'sorted(j["assigned_network_address"])')"
assert_eq "job $be1's types" "['besteffort', 'idempotent']" \
    "$(job_field "$be1" 'sorted(j["types"])')"
be1_pid=$(awk '/^start/ { print $3; exit }' "$be/be.out")

# A regular job wants both nodes: checkpoint signal, kill at the end of
# the grace (on time thanks to the nudges), then the regular job.
oar_nudge_every 2
t_sub=$(now)
id2=$(oar_sub oar-tester -d "$plain" -l nodes=2 \
    "date +%s.%N >start2; hostname >host2; cat \"\$OAR_NODEFILE\" >nodes2; sleep 2") ||
    fail "oarsub of the second regular job failed"
wait_for 30 has_line '^signal 12' "$be/be.out" ||
    fail "best-effort job $be1 got no signal 12"
t_sig=$(awk '/^signal/ { print $3; exit }' "$be/be.out")
wait_for 60 ended "$be1_pid" || fail "best-effort job $be1 still runs"
t_kill=$(now)
wait_for 30 test -s "$plain/start2" || fail "job $id2 did not start"
t_reg=$(cat "$plain/start2")
oar_wait_state "$id2" Terminated 30 ||
    fail "job $id2 is '$(oar_state "$id2")', not Terminated"
assert_eq "job $id2's nodes" "a1 a2" "$(sort "$plain/nodes2" | xargs)"
assert_eq "job $be1's state" Error "$(oar_state "$be1")"
(($(job_field "$id2" 'j["startTime"]') >= $(job_field "$be1" 'j["stopTime"]'))) ||
    fail "job $id2 started before job $be1 ended"
# Types in order of first appearance, repeats counted: "CHECKPOINTx10 ..."
events=$(oar_events "$be1" | awk '
    !($1 in c) { o[n++] = $1 }
    { c[$1]++ }
    END { for (i = 0; i < n; i++) printf "%s%s ", o[i], (c[o[i]] > 1 ? "x" c[o[i]] : "") }')
events=${events% }
for e in CHECKPOINT BESTEFFORT_KILL RESUBMIT_JOB_AUTOMATICALLY; do
    [[ " $events" =~ \ $e(x[0-9]+)?\  ]] || fail "job $be1: no $e in '$events'"
done
log "ok: job $be1's events: $events"
log "checkpoint signal $(since "$t_sub" "$t_sig") s after the regular" \
    "submission, kill $(since "$t_sub" "$t_kill") s, regular job" \
    "started $(since "$t_sub" "$t_reg") s"

# The resubmitted job runs once the regular one is over; oardel ends it
# and its script.
be2=$(oar_resubmission "$be1") || fail "job $be1 was not resubmitted"
assert_eq "job $be2 resubmits" "$be1" "$(job_field "$be2" 'j["resubmit_job_id"]')"
starts() { [[ $(grep -c '^start' "$be/be.out") -ge 2 ]]; }
wait_for 40 starts || fail "resubmitted job $be2 did not start: $(oar_state "$be2")"
be2_pid=$(awk '/^start/ { p = $3 } END { print p }' "$be/be.out")
log "ok: job $be1 resubmitted as $be2, running"
oar_as saline oardel "$be2" >/dev/null || fail "oardel $be2 failed"
oar_wait_state "$be2" Error 30 || fail "job $be2 is '$(oar_state "$be2")' after oardel"
wait_for 10 ended "$be2_pid" || fail "job $be2's script survived oardel"
log "ok: oardel ended job $be2 and its script"

log "test-oar done in $((SECONDS - t_start)) s"
