#!/usr/bin/env bash
# A member of the SSI image boots with its configuration from fw_cfg:
# the configuration is in /etc/ssi/ssid.conf (mode 600), ssi.ko is
# loaded, pid_max is raised, the test shell returns exit statuses, and
# CRIU works: `criu check` is clean and a process in its own PID
# namespace is dumped and restored and goes on where it stopped.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/ssi.sh"
requires_root
needs qemu-system-x86_64 socat

[[ -f $VC_SSI_IMAGE/initrd.img ]] || fail "no SSI image in '$VC_SSI_IMAGE' (meson compile)"

sites_create 1 1

start=$SECONDS
ssi_vm_start s1 a 1 10.77.1.101 physics "$(ssi_key)" found
ssi_wait_up s1 180 || fail "SSI member did not come up within 180 s"
log "s1 up after $((SECONDS - start)) s (accel $(vc_accel)):" \
    "$(grep -o 'init: ssi member up.*' "$(vm_serial_log s1)")"

rc=0
ssi_sh s1 false || rc=$?
assert_eq "exit status of 'false' through the test shell" 1 "$rc"
rc=0
ssi_sh s1 'echo out; echo err >&2; exit 7' >"$VC_TESTDIR/out" || rc=$?
assert_eq "exit status of 'exit 7'" 7 "$rc"
assert_eq "stdout and stderr of a command" "out err" "$(tr '\n' ' ' <"$VC_TESTDIR/out" | sed 's/ $//')"

assert_eq "kernel.pid_max" 4194304 "$(ssi_sh s1 cat /proc/sys/kernel/pid_max)"
assert_eq "mode of /etc/ssi/ssid.conf" 600 "$(ssi_sh s1 stat -c %a /etc/ssi/ssid.conf)"
assert_eq "ssid.conf in the guest vs the fw_cfg file" \
    "$(sha256sum <"$VC_TESTDIR/ssi/s1.conf")" "$(ssi_sh s1 'sha256sum </etc/ssi/ssid.conf')"
if grep -q '^SSI_MODULES=""' "$VC_SSI_IMAGE/image.env"; then
    log "image without SSI modules (placeholder parts): lsmod not checked"
else
    ssi_sh s1 lsmod | grep '^ssi ' >/dev/null || fail "ssi.ko is not loaded: $(ssi_sh s1 lsmod)"
    log "ok: ssi.ko loaded"
fi

out=$(SSI_SH_TIMEOUT=120 ssi_sh s1 criu check 2>&1) || fail "criu check failed: $out"
[[ $out == *"Looks good."* ]] || fail "criu check: $out"
log "ok: criu check: $(tail -n 1 <<<"$out")"

# CRIU round trip: a counter in its own PID namespace and session.
upid=$(ssi_sh s1 "unshare -p -f setsid sh -c 'i=0; while :; do i=\$((i+1)); echo \$i >> /tmp/c.log; sleep 0.2; done' </dev/null >/dev/null 2>&1 & echo \$!") ||
    fail "cannot start the counter: $upid"
for ((i = 0; i < 60; i++)); do
    n=$(ssi_sh s1 'cat /tmp/c.log 2>/dev/null | wc -l' || true)
    [[ ${n:-0} -ge 5 ]] && break
    sleep 0.5
done
[[ ${n:-0} -ge 5 ]] || fail "the counter does not count (${n:-0} lines)"
# The namespace's init is unshare's child, the sh -c (setsid execs it).
pid=$(ssi_sh s1 "cat /proc/$upid/task/$upid/children") ||
    fail "cannot read the children of unshare ($upid): $pid"
pid=${pid%% }
[[ $pid =~ ^[0-9]+$ ]] || fail "cannot find the counter's PID: '$pid'"
log "counter runs as PID $pid"

out=$(SSI_SH_TIMEOUT=180 ssi_sh s1 "mkdir -p /tmp/img && criu dump -t $pid -D /tmp/img -o dump.log && echo dumped" 2>&1) ||
    fail "criu dump failed: $out; $(ssi_sh s1 'tail -n 5 /tmp/img/dump.log')"
before=$(ssi_sh s1 'tail -n 1 /tmp/c.log')
sleep 1
assert_eq "counter while dumped" "$before" "$(ssi_sh s1 'tail -n 1 /tmp/c.log')"
out=$(SSI_SH_TIMEOUT=180 ssi_sh s1 "criu restore -D /tmp/img -o restore.log -d && echo restored" 2>&1) ||
    fail "criu restore failed: $out; $(ssi_sh s1 'tail -n 5 /tmp/img/restore.log')"
log "dumped at $before, restored"
for ((i = 0; i < 60; i++)); do
    now=$(ssi_sh s1 'tail -n 1 /tmp/c.log')
    ((now >= before + 5)) && break
    sleep 0.5
done
((now >= before + 5)) || fail "the counter did not go on after restore ($before -> $now)"
# No reset: every value from 1 to now once, in order.
seq_ok=$(ssi_sh s1 "awk 'NR != \$1 { bad = 1 } END { print bad ? \"no\" : \"yes\" }' /tmp/c.log")
assert_eq "counter continued without reset or gap" yes "$seq_ok"
log "counter went on: $before -> $now"

ssi_vm_stop s1 || fail "s1 did not power off"
log "s1 powered off"
