#!/usr/bin/env bash
# Cluster memory (ssi-guest/README.md, "Cluster memory"), guests under
# TCG: a member of 256 MiB swaps to four others' RAM.
#  - `ssi mem donate` on the donors, `ssi mem borrow` on the borrower:
#    `ssi mem` (and --json) shows what each donated, lent and borrowed,
#    the array `ok N/N`;
#  - bad input: one line, an exit code, nothing changed;
#  - a process allocating 1.5x its VM's RAM (ssi-memtest) writes and
#    reads back every word right, and the donors' RAM holds its pages
#    meanwhile;
#  - a donor destroyed while the borrower is paging: the process still
#    ends with every word right, and the array is re-replicated on the
#    other donors (`ok N/N` again);
#  - a donor evicted: its legs move first (never `degraded`), the array
#    stays ok, the member leaves;
#  - `ssi mem borrow 0` gives every leg back.
# Four donors of 704 MiB, not three of 512: after one donor died and
# one left, the two left hold both copies of every page, 384 MiB each,
# and a donor lends at most its MemAvailable - 64 MiB (with three, one
# donor would be left, and the two copies must be on two donors).
# Timings are logged, never asserted (bench/ssi-mem.sh measures them).
# VC_KEEP=DIR keeps the guests' serial logs there. VC_SSI_MEM_CGROUP=MIB
# runs ssi-memtest in a memory cgroup of MIB MiB (default 96, 0: none;
# only its pages are swapped out then, none of ssid's).
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/ssi.sh"
requires_root
needs qemu-system-x86_64 socat python3

[[ -f $VC_SSI_IMAGE/initrd.img ]] || fail "no SSI image in '$VC_SSI_IMAGE' (meson compile)"
out=$VC_TESTDIR/out
mkdir -p "$out"
keep_logs() {
    [[ -n ${VC_KEEP:-} ]] || return 0
    mkdir -p "$VC_KEEP"
    for d in "$VC_TESTDIR"/vms/*; do
        [[ -f $d/serial.log ]] && cp "$d/serial.log" "$VC_KEEP/$(basename "$d").serial.log"
    done
    cp -r "$out" "$VC_KEEP/" 2>/dev/null
    return 0
}
cleanup_fn keep_logs

MIB=384
DONATE=400
DONOR_MEM=704

sites_create 1 2 --delay 1

key=$(ssi_key)
start=$SECONDS
ssi_vm_start m1 a 1 10.77.1.101 physics "$key" found
ssi_vm_start m2 a 2 10.77.1.102 physics "$key" 10.77.1.101 --mem "$DONOR_MEM"
ssi_vm_start m3 a 1 10.77.1.103 physics "$key" 10.77.1.101 --mem "$DONOR_MEM"
ssi_vm_start m4 a 2 10.77.1.104 physics "$key" 10.77.1.101 --mem "$DONOR_MEM"
ssi_vm_start m5 a 1 10.77.1.105 physics "$key" 10.77.1.101 --mem "$DONOR_MEM"
for vm in m1 m2 m3 m4 m5; do
    ssi_wait_up "$vm" 300 || fail "$vm did not come up"
done
members_of() { SSI_SH_TIMEOUT=10 ssi_sh "$1" cat /proc/ssi/nodes | awk 'NR > 1' | wc -l; }
has_members() { [[ $(members_of "$1") -eq $2 ]]; }
wait_for 120 has_members m1 5 || fail "the cluster did not reach 5 members: $(ssi_sh m1 ssi nodes)"
log "5 members up in $((SECONDS - start)) s (accel $(vc_accel))"
id_of() { ssi_sh m1 ssi nodes | awk -v ip="$(vm_ip "$1")" '$2 == ip {print $1}'; }
n1=$(id_of m1) n2=$(id_of m2) n3=$(id_of m3) n4=$(id_of m4) n5=$(id_of m5)
log "node ids: m1 $n1, m2 $n2, m3 $n3, m4 $n4, m5 $n5"

# `ssi mem` as VM sees it; the rows, "NODE DONATED LENT USED BORROWED
# SWAP_USED STATE" (STATE may be two or three words: "ok 8/8").
mem_table() { ssi_sh "$1" ssi mem; }
# mem_field TABLE NODE COLUMN: a column (2 DONATED ... 7 STATE) of NODE's row.
mem_field() {
    awk -v n="$2" -v c="$3" 'NR > 1 && $1 == n {
        if (c == 7) { s = $7; for (i = 8; i <= NF; i++) s = s " " $i; print s } else print $c }' <<<"$1"
}
# mem_fail WHAT: fail with the cluster's memory view and ssid's last words.
mem_fail() {
    local vm
    for vm in m1 m2 m3 m4 m5; do
        vm_running "$vm" || continue
        echo "--- $vm: ssi mem; /proc/swaps; /proc/mdstat; ssid.log" >&2
        SSI_SH_TIMEOUT=20 ssi_sh "$vm" 'ssi mem; cat /proc/swaps /proc/mdstat; tail -n 25 /var/log/ssid.log' >&2 || true
    done
    fail "$*"
}

# 1. Donations.
for vm in m2 m3 m4 m5; do
    rep=$(ssi_sh "$vm" ssi mem donate "$DONATE" 2>&1) ||
        mem_fail "ssi mem donate $DONATE on $vm: $rep (MemAvailable: $(ssi_sh "$vm" grep MemAvailable /proc/meminfo))"
done
t=$(mem_table m1) || mem_fail "ssi mem on m1: $t"
log "after the donations:"$'\n'"$t"
for n in $n2 $n3 $n4 $n5; do
    assert_eq "DONATED of node $n" "$DONATE" "$(mem_field "$t" "$n" 2)"
    assert_eq "LENT of node $n" 0 "$(mem_field "$t" "$n" 3)"
done
assert_eq "DONATED of the borrower" 0 "$(mem_field "$t" "$n1" 2)"
assert_eq "STATE of node $n1 before borrowing" "-" "$(mem_field "$t" "$n1" 7)"

# 2. Bad input: one line, an exit code, nothing changed.
bad() {
    local vm=$1 want=$2 rc=0 msg
    shift 2
    msg=$(ssi_sh "$vm" "$@" 2>&1) || rc=$?
    assert_eq "exit status of '$*' on $vm" "$want" "$rc"
    [[ -n $msg && $(wc -l <<<"$msg") -eq 1 ]] || fail "'$*' on $vm did not print one line: '$msg'"
    log "refused ($rc): $* -> $msg"
}
before=$(mem_table m1)
bad m2 2 ssi mem donate x
bad m2 2 ssi mem donate -5
bad m2 2 ssi mem donate
bad m1 2 ssi mem borrow 12abc
bad m1 2 ssi mem frobnicate
bad m1 1 ssi mem borrow 100000
bad m2 1 ssi mem donate 100000
bad m2 1 ssi mem borrow 100000
assert_eq "ssi mem after the refused commands" "$before" "$(mem_table m1)"
assert_eq "swap on m1 after the refused commands" "" "$(ssi_sh m1 cat /proc/swaps | awk 'NR > 1')"

# 3. Borrow 1.5x the VM's RAM.
t0=$SECONDS
rep=$(SSI_SH_TIMEOUT=600 ssi_sh m1 ssi mem borrow "$MIB" 2>&1) || mem_fail "ssi mem borrow $MIB: $rep"
log "ssi mem borrow $MIB took $((SECONDS - t0)) s:"$'\n'"$rep"
t=$(mem_table m1) || mem_fail "ssi mem on m1: $t"
assert_eq "BORROWED of node $n1" "$MIB" "$(mem_field "$t" "$n1" 5)"
state=$(mem_field "$t" "$n1" 7)
[[ $state =~ ^ok\ ([0-9]+)/([0-9]+)$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] ||
    mem_fail "state of m1's array after borrowing: '$state', not ok N/N"
legs=${BASH_REMATCH[1]}
lent_total=0
for n in $n2 $n3 $n4 $n5; do
    lent=$(mem_field "$t" "$n" 3)
    ((lent > 0)) || mem_fail "node $n lends nothing:"$'\n'"$t"
    lent_total=$((lent_total + lent))
done
# Every page on two donors: the legs lent add up to twice the swap.
assert_eq "LENT of all donors (2 copies of $MIB MiB)" $((2 * MIB)) "$lent_total"
((legs % 2 == 0 && legs >= 4)) || mem_fail "$legs legs: not 2 per donor over at least 2 donors"
# The --json form, parsed as a script would.
ssi_sh m1 ssi mem --json >"$out/mem.json" || mem_fail "ssi mem --json: $(cat "$out/mem.json")"
jsum=$(python3 - "$out/mem.json" "$n1" <<'PY'
import json, sys
rows = {r["node"]: r for r in json.load(open(sys.argv[1]))["members"]}
me = rows[int(sys.argv[2])]
lent = sum(r["lent_mib"] for n, r in rows.items() if n != me["node"])
print(me["borrowed_mib"], me["state"], lent)
PY
) || mem_fail "ssi mem --json is not {\"members\": [rows]}: $(cat "$out/mem.json")"
assert_eq "ssi mem --json: borrowed, state, LENT of the others" "$MIB ok $legs/$legs $((2 * MIB))" "$jsum"
ssi_sh m1 cat /proc/swaps | grep -E '^/dev/(md|dm)' >/dev/null ||
    mem_fail "no md swap in m1's /proc/swaps: $(ssi_sh m1 cat /proc/swaps)"
log "m1 swaps on $legs legs:"$'\n'"$(ssi_sh m1 cat /proc/swaps /proc/mdstat)"

# 4. ssi-memtest allocates 1.5x the VM's RAM; the donors hold its pages.
used_sum() {
    SSI_SH_TIMEOUT=15 ssi_sh "$1" ssi mem 2>/dev/null |
        awk -v b="$n1" 'NR > 1 && $1 != b {u += $4} END {print u + 0}'
}
# ssi-memtest runs in a memory cgroup of VC_SSI_MEM_CGROUP MiB (96 by
# default, 0: none): only its own pages are swapped out. Without it,
# the whole guest pages, ssid included, and a borrower under TCG can
# stall past its 20 s grace when a donor dies (1 run in 3 here): a known
# weakness, in the closing note of issue 15 and bench/results/ssi-mem.md.
memtest_cmd="ssi-memtest $MIB"
VC_SSI_MEM_CGROUP=${VC_SSI_MEM_CGROUP:-96}
if ((VC_SSI_MEM_CGROUP > 0)); then
    ssi_sh m1 "grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
        echo +memory >/sys/fs/cgroup/cgroup.subtree_control && mkdir -p /sys/fs/cgroup/memtest &&
        echo ${VC_SSI_MEM_CGROUP}M >/sys/fs/cgroup/memtest/memory.max" ||
        fail "cannot make a memory cgroup in m1"
    memtest_cmd="sh -c 'echo \$\$ >/sys/fs/cgroup/memtest/cgroup.procs && exec ssi-memtest $MIB'"
    log "note: ssi-memtest runs in a memory cgroup of $VC_SSI_MEM_CGROUP MiB (VC_SSI_MEM_CGROUP)"
fi
# memtest NAME: ssi-memtest in m1 in the background.
memtest_bg() {
    SSI_SH_TIMEOUT=1200 ssi_sh_bg m1 "$out/$1" "$memtest_cmd 2>/tmp/$1.err" >/dev/null
}
# The borrower in the view the donors hold: a borrower whose ssid stalls
# while paging is dropped, and loses its swap with it.
borrower_in_view() {
    local v
    v=$(SSI_SH_TIMEOUT=15 ssi_sh m2 cat /proc/ssi/nodes) || return 0
    [[ $v == *" $(vm_ip m1) "* ]]
}
# memtest_check NAME [POLL_FN]: waits for it (calling POLL_FN meanwhile),
# then checks its exit status and summary.
memtest_check() {
    local name=$1 poll=${2:-true} rc=0 deadline=$((SECONDS + 1250))
    while [[ ! -f $out/$name.rc ]] && ((SECONDS < deadline)); do
        borrower_in_view ||
            mem_fail "m1, the borrower, was dropped from the view while it paged ($name): $(grep -h 'silent\|failed\|left the cluster' "$VC_TESTDIR"/vms/*/serial.log | tr '\n' ';')"
        "$poll" || true
        sleep 3
    done
    ssi_sh_wait "$out/$name" 10 || rc=$?
    if ((rc != 0)); then
        log "m1's serial log:"$'\n'"$(tail -n 30 "$(vm_serial_log m1)")"
        mem_fail "ssi-memtest $MIB ($name) exited $rc: $(cat "$out/$name"; SSI_SH_TIMEOUT=20 ssi_sh m1 tail -n 3 "/tmp/$name.err")"
    fi
    grep -q "^ssi-memtest: $MIB MiB written and checked, 1 passes, " "$out/$name" ||
        mem_fail "ssi-memtest $MIB ($name) exited 0 without its summary: $(cat "$out/$name")"
    log "$name: $(grep '^ssi-memtest:' "$out/$name")"
}
used0=$(used_sum m2)
t0=$SECONDS
memtest_bg run1
used_max=$used0
while [[ ! -f $out/run1.rc ]] && borrower_in_view; do
    u=$(used_sum m2) || true
    ((u > used_max)) && used_max=$u
    sleep 2
done
memtest_check run1
log "run1: ssi-memtest $MIB took $((SECONDS - t0)) s; donors' USED $used0 MiB before, $used_max MiB at most during it"
((used_max > used0)) || mem_fail "the donors' USED did not grow while m1 paged ($used0 -> $used_max MiB)"
log "after run1:"$'\n'"$(mem_table m2)"

# 5. A donor destroyed while m1 pages.
swap_used() { SSI_SH_TIMEOUT=5 ssi_sh m1 cat /proc/swaps 2>/dev/null | awk 'NR > 1 {u += $4} END {print u + 0}'; }
# In use: over 64 MiB (a few pages stay swapped out after run1).
swapping() { local u; u=$(swap_used) && ((u > 65536)); }
t0=$SECONDS
memtest_bg run2
wait_for 600 swapping || mem_fail "m1's swap still unused 600 s after ssi-memtest started"
log "m1 swaps ($(swap_used) KiB) $((SECONDS - t0)) s after the start: destroying m5 (node $n5)"
t_kill=$SECONDS
# poll_state: m1's array's state now (in $state); each change of kind
# (ok, degraded, rebuilding...) logged and kept in $states.
states=
state=
poll_state() {
    local t s
    t=$(SSI_SH_TIMEOUT=15 mem_table m2 2>/dev/null) || return 1
    s=$(mem_field "$t" "$n1" 7)
    [[ ${s%% *} == "${state%% *}" ]] || { states+="${states:+, }$s"; log "m1's array: $s"; }
    state=$s
}
# healed TIMEOUT_S: until the array is ok N/N again.
healed() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        poll_state && [[ $state == "ok $legs/$legs" ]] && return 0
        sleep 2
    done
    return 1
}
vm_kill m5
memtest_check run2 poll_state
log "run2: ssi-memtest $MIB took $((SECONDS - t0)) s, $((SECONDS - t_kill)) s after m5 was destroyed"
# Back to ok N/N on the survivors.
healed 900 || mem_fail "m1's array not ok $legs/$legs 900 s after a donor was destroyed (states seen: $states)"
log "m1's array ok $legs/$legs again $((SECONDS - t_kill)) s after m5 was destroyed (states seen: $states)"
t=$(mem_table m2)
log "$t"
[[ -z $(mem_field "$t" "$n5" 1) ]] || mem_fail "the destroyed node $n5 still has a row:"$'\n'"$t"
lent_total=0
for n in $n2 $n3 $n4; do
    lent_total=$((lent_total + $(mem_field "$t" "$n" 3)))
done
assert_eq "LENT of the 3 donors left" $((2 * MIB)) "$lent_total"

# 6. A donor evicted: its legs move first; the array never degrades.
t0=$SECONDS
SSI_SH_TIMEOUT=900 ssi_sh_bg m2 "$out/evict" ssi evict "$n3" >/dev/null
states=""
state=""
while [[ ! -f $out/evict.rc ]]; do
    poll_state || true
    sleep 1
done
rc=0
ssi_sh_wait "$out/evict" 10 || rc=$?
((rc == 0)) || mem_fail "ssi evict $n3 exited $rc: $(cat "$out/evict")"
log "ssi evict $n3 took $((SECONDS - t0)) s: $(tr '\n' ' ' <"$out/evict") (m1's array: $states)"
[[ $states != *degraded* ]] || mem_fail "m1's array was degraded while node $n3 left: $states"
wait_for 30 has_members m1 3 || mem_fail "node $n3 still in the view: $(ssi_sh m1 ssi nodes)"
healed 300 || mem_fail "m1's array not ok after the eviction (states seen: $states)"
t=$(mem_table m1)
log "$t"
[[ -z $(mem_field "$t" "$n3" 1) ]] || mem_fail "the evicted node $n3 still has a row:"$'\n'"$t"
assert_eq "LENT of the 2 donors left" $((2 * MIB)) $(($(mem_field "$t" "$n2" 3) + $(mem_field "$t" "$n4" 3)))

# 7. Give it all back.
t0=$SECONDS
rep=$(SSI_SH_TIMEOUT=300 ssi_sh m1 ssi mem borrow 0 2>&1) || mem_fail "ssi mem borrow 0: $rep"
log "ssi mem borrow 0 took $((SECONDS - t0)) s"
t=$(mem_table m1)
log "$t"
assert_eq "BORROWED of node $n1 after borrow 0" 0 "$(mem_field "$t" "$n1" 5)"
assert_eq "STATE of node $n1 after borrow 0" "-" "$(mem_field "$t" "$n1" 7)"
for n in $n2 $n4; do
    assert_eq "LENT of node $n after borrow 0" 0 "$(mem_field "$t" "$n" 3)"
    assert_eq "USED of node $n after borrow 0" 0 "$(mem_field "$t" "$n" 4)"
done
assert_eq "swap on m1 after borrow 0" "" "$(ssi_sh m1 cat /proc/swaps | awk 'NR > 1')"
log "ssi-mem test passed in $((SECONDS - start)) s"
