#!/usr/bin/env bash
# ssi.ko and the policy modules in a real guest kernel (ssi-guest/README.md,
# "Kernel interface: /proc/ssi/"): the guest image's kernel boots under
# TCG with its initrd plus a second archive holding the modules and an
# /init that checks every file of /proc/ssi, its error paths, the policy
# modules coming and going, and the load probe. The guest prints
# "SSI-KMOD-TEST: ok|FAIL: ..." lines and "SSI-KMOD-TEST: PASS" when all
# passed, then powers off.
source "$(dirname "$0")/lib/functions.sh"
needs qemu-system-x86_64 cpio

image=$VC_BUILDDIR/images/guest
kmods=$VC_BUILDDIR/ssi-guest/kmod
qemu=${VC_QEMU:-qemu-system-x86_64}
[[ -f $image/vmlinuz && -f $image/initrd.img ]] ||
    fail "no guest image in '$image' (meson compile)"
for ko in ssi ssi_pol_leastload ssi_pol_roundrobin; do
    [[ -f $kmods/$ko.ko ]] || fail "no '$kmods/$ko.ko' (meson compile)"
done
dir=$VC_TESTDIR

qemu_pid=
stop_qemu() {
    [[ -z $qemu_pid ]] || kill "$qemu_pid" 2>/dev/null || true
}
cleanup_fn stop_qemu

mkdir -p "$dir/root/lib/modules/ssi" "$dir/root/etc"
cp "$kmods"/*.ko "$dir/root/lib/modules/ssi/"
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' \
    >"$dir/root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/root/etc/group"
cat >"$dir/root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /tmp
cd /tmp

failed=0
ok() { echo "SSI-KMOD-TEST: ok: $*"; }
bad() { echo "SSI-KMOD-TEST: FAIL: $*"; failed=$((failed + 1)); }
finish() {
    if [ "$failed" = 0 ]; then
        echo "SSI-KMOD-TEST: PASS"
    else
        echo "SSI-KMOD-TEST: $failed check(s) failed"
    fi
    sync
    poweroff -f
}

# put FILE FORMAT: printf FORMAT into FILE in one write(2).
put() {
    printf "$2" >/tmp/put
    dd if=/tmp/put of="$1" bs=16k 2>/tmp/err
}
# expect_ok WHAT FILE FORMAT
expect_ok() {
    if put "$2" "$3"; then ok "$1"; else bad "$1: $(tail -n 1 /tmp/err)"; fi
}
# expect_err WHAT FILE FORMAT ERROR_MESSAGE
expect_err() {
    if put "$2" "$3"; then
        bad "$1: write accepted"
    elif grep -q "$4" /tmp/err; then
        ok "$1 ($4)"
    else
        bad "$1: expected '$4', got '$(tail -n 1 /tmp/err)'"
    fi
}
# refused_member WHAT LINE: a view of epoch 6 with the member LINE is
# refused with EINVAL.
refused_member() {
    expect_err "$1" /proc/ssi/nodes "epoch 6\\n$2\\n" 'Invalid argument'
}
# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}
# field FILE KEY: the value of "KEY value" in FILE.
field() { sed -n "s/^$2 //p" "$1"; }
# places N: N placements, space-separated.
places() {
    i=0 r=
    while [ "$i" -lt "$1" ]; do
        r="$r$(cat /proc/ssi/place) "
        i=$((i + 1))
    done
    echo "${r% }"
}

M=/lib/modules/ssi
insmod $M/ssi.ko || { bad "insmod ssi.ko"; finish; }
ok "insmod ssi.ko"

# Files and permissions.
expect_eq "files" "cluster load nodes place policy" "$(ls /proc/ssi | tr '\n' ' ' | sed 's/ $//')"
expect_eq "modes" "644 444 644 444 644" \
    "$(for f in cluster load nodes place policy; do stat -c %a /proc/ssi/$f; done | tr '\n' ' ' | sed 's/ $//')"

# Identity.
expect_eq "initial cluster" "$(printf 'name \nid 0000000000000000\nnode 0\nepoch 0\nstate alone')" \
    "$(cat /proc/ssi/cluster)"
expect_ok "cluster write" /proc/ssi/cluster 'name=physics id=3f2a9c0d11e4b7a8 node=2 state=joining\n'
expect_ok "cluster subset" /proc/ssi/cluster 'state=member'
expect_eq "cluster read back" "$(printf 'name physics\nid 3f2a9c0d11e4b7a8\nnode 2\nepoch 0\nstate member')" \
    "$(cat /proc/ssi/cluster)"
expect_err "cluster: bad name" /proc/ssi/cluster 'name=Physics' 'Invalid argument'
expect_err "cluster: long name" /proc/ssi/cluster 'name=abcdefghijklmnopqrstuvwxyz0123456' 'Invalid argument'
expect_err "cluster: node 64" /proc/ssi/cluster 'node=64' 'Invalid argument'
expect_err "cluster: short id" /proc/ssi/cluster 'id=3f2a' 'Invalid argument'
expect_err "cluster: epoch" /proc/ssi/cluster 'epoch=3' 'Invalid argument'
expect_err "cluster: state" /proc/ssi/cluster 'state=gone' 'Invalid argument'
expect_err "cluster: twice" /proc/ssi/cluster 'node=1 node=2' 'Invalid argument'
expect_err "cluster: double space" /proc/ssi/cluster 'node=1  state=alone' 'Invalid argument'
expect_err "cluster: all or nothing" /proc/ssi/cluster 'name=other node=99' 'Invalid argument'
expect_eq "cluster unchanged" "physics 2" \
    "$(field /proc/ssi/cluster name) $(field /proc/ssi/cluster node)"

# The view.
expect_eq "initial view" "epoch 0" "$(cat /proc/ssi/nodes)"
if cat /proc/ssi/place >/tmp/out 2>/tmp/err; then
    bad "place with no member: $(cat /tmp/out)"
elif grep -q 'Resource temporarily unavailable' /tmp/err; then
    ok "place with no member (EAGAIN)"
else
    bad "place with no member: $(cat /tmp/err)"
fi
view5='epoch 5\n1 10.77.1.101 up 1250 201432 3\n2 10.77.1.102 up 30 220116 0\n3 10.77.1.103 leaving 0 100 0\n'
expect_ok "view write" /proc/ssi/nodes "$view5"
expect_eq "view read back" "$(printf "$view5")" "$(cat /proc/ssi/nodes)"
expect_eq "cluster epoch follows the view" 5 "$(field /proc/ssi/cluster epoch)"
expect_ok "same epoch, fresh loads" /proc/ssi/nodes \
    'epoch 5\n1 10.77.1.101 up 7 8 9\n2 10.77.1.102 up 10 11 12\n3 10.77.1.103 leaving 0 100 0'
expect_eq "fresh loads read back" "1 10.77.1.101 up 7 8 9" "$(sed -n 2p /proc/ssi/nodes)"
expect_err "same epoch, member gone" /proc/ssi/nodes \
    'epoch 5\n1 10.77.1.101 up 7 8 9\n2 10.77.1.102 up 10 11 12\n' 'Invalid argument'
expect_err "same epoch, new address" /proc/ssi/nodes \
    'epoch 5\n1 10.77.1.111 up 7 8 9\n2 10.77.1.102 up 10 11 12\n3 10.77.1.103 leaving 0 100 0\n' 'Invalid argument'
expect_err "older epoch" /proc/ssi/nodes 'epoch 4\n1 10.77.1.101 up 0 0 0\n' 'Stale file handle'
expect_err "older epoch first" /proc/ssi/nodes 'epoch 4\ngarbage\n' 'Stale file handle'
expect_err "garbage" /proc/ssi/nodes 'hello\n' 'Invalid argument'
expect_err "epoch not a number" /proc/ssi/nodes 'epoch 6x\n' 'Invalid argument'
expect_err "epoch with sign" /proc/ssi/nodes 'epoch +6\n' 'Invalid argument'
expect_err "epoch overflow" /proc/ssi/nodes 'epoch 18446744073709551616\n' 'Invalid argument'
expect_err "IDs descending" /proc/ssi/nodes \
    'epoch 6\n2 10.77.1.102 up 0 0 0\n1 10.77.1.101 up 0 0 0\n' 'Invalid argument'
expect_err "ID twice" /proc/ssi/nodes \
    'epoch 6\n1 10.77.1.101 up 0 0 0\n1 10.77.1.102 up 0 0 0\n' 'Invalid argument'
refused_member "ID 0" '0 10.77.1.101 up 0 0 0'
refused_member "ID 64" '64 10.77.1.101 up 0 0 0'
refused_member "five fields" '1 10.77.1.101 up 0 0'
refused_member "seven fields" '1 10.77.1.101 up 0 0 0 0'
refused_member "bad octet" '1 256.77.1.101 up 0 0 0'
refused_member "three octets" '1 10.77.1 up 0 0 0'
refused_member "five octets" '1 10.77.1.1.1 up 0 0 0'
refused_member "empty octet" '1 10..1.1 up 0 0 0'
refused_member "bad state" '1 10.77.1.101 down 0 0 0'
refused_member "load overflow" '1 10.77.1.101 up 4294967296 0 0'
refused_member "negative procs" '1 10.77.1.101 up 0 0 -1'
refused_member "double space" '1  10.77.1.101 up 0 0 0'
expect_err "empty line" /proc/ssi/nodes 'epoch 6\n\n1 10.77.1.101 up 0 0 0\n' 'Invalid argument'
expect_err "two newlines at the end" /proc/ssi/nodes 'epoch 6\n1 10.77.1.101 up 0 0 0\n\n' 'Invalid argument'
expect_err "NUL byte" /proc/ssi/nodes 'epoch 6\0001 10.77.1.101 up 0 0 0\n' 'Invalid argument'
expect_err "CR at line end" /proc/ssi/nodes 'epoch 6\r\n' 'Invalid argument'
big=$(head -c 8300 /dev/zero | tr '\0' x)
expect_err "write over 8 KiB" /proc/ssi/nodes "epoch 6\n$big" 'Invalid argument'
expect_eq "view unchanged after refusals" 5 "$(field /proc/ssi/nodes epoch)"
view=$(seq 1 63 | while read -r i; do printf '%s 10.77.0.%s up %s 1000 0\\n' "$i" "$i" "$i"; done)
expect_ok "63 members" /proc/ssi/nodes "epoch 6\n$view"
expect_eq "63 members read back" 64 "$(wc -l </proc/ssi/nodes)"
expect_ok "empty view" /proc/ssi/nodes 'epoch 7'
expect_eq "empty view read back" "epoch 7" "$(cat /proc/ssi/nodes)"

# Placement: 3 leaving, 4 and 5 tie for the least LOAD + 1000 x PROCS.
expect_ok "placement view" /proc/ssi/nodes \
    'epoch 8\n1 10.77.1.101 up 3000 1000 0\n2 10.77.1.102 up 500 1000 1\n3 10.77.1.103 leaving 0 1000 0\n4 10.77.1.104 up 1000 1000 0\n5 10.77.1.105 up 1000 1000 0\n'
expect_eq "no policy: active" "active none" "$(cat /proc/ssi/policy)"
expect_eq "no policy: lowest ID" "1 1" "$(places 2)"
insmod $M/ssi_pol_leastload.ko && ok "insmod leastload" || bad "insmod leastload"
expect_eq "leastload active when loaded" "$(printf 'active leastload\nleastload  least LOAD + 1000 x PROCS; ties to the lowest ID')" \
    "$(cat /proc/ssi/policy)"
expect_eq "leastload: least cost, lowest ID of a tie" "4 4" "$(places 2)"
insmod $M/ssi_pol_roundrobin.ko && ok "insmod roundrobin" || bad "insmod roundrobin"
expect_eq "second policy listed, not active" \
    "$(printf 'active leastload\nleastload  least LOAD + 1000 x PROCS; ties to the lowest ID\nroundrobin next member after the last placement')" \
    "$(cat /proc/ssi/policy)"
expect_ok "select roundrobin" /proc/ssi/policy 'roundrobin\n'
expect_eq "active roundrobin" roundrobin "$(field /proc/ssi/policy active)"
expect_eq "roundrobin cycles over members up" "1 2 4 5 1 2" "$(places 6)"
expect_err "select unknown policy" /proc/ssi/policy 'random' 'No such file or directory'
expect_err "select bad name" /proc/ssi/policy 'Least Load' 'Invalid argument'
expect_err "select nothing" /proc/ssi/policy '\n' 'Invalid argument'
expect_eq "still roundrobin" roundrobin "$(field /proc/ssi/policy active)"
expect_ok "select leastload" /proc/ssi/policy 'leastload'
expect_ok "fresh loads" /proc/ssi/nodes \
    'epoch 8\n1 10.77.1.101 up 3000 1000 0\n2 10.77.1.102 up 500 1000 1\n3 10.77.1.103 leaving 0 1000 0\n4 10.77.1.104 up 1000 1000 1\n5 10.77.1.105 up 1000 1000 0\n'
expect_eq "leastload follows the loads" 5 "$(cat /proc/ssi/place)"
expect_ok "select roundrobin again" /proc/ssi/policy 'roundrobin'
rmmod ssi_pol_roundrobin && ok "rmmod active roundrobin" || bad "rmmod roundrobin"
expect_eq "falls back to leastload" \
    "$(printf 'active leastload\nleastload  least LOAD + 1000 x PROCS; ties to the lowest ID')" \
    "$(cat /proc/ssi/policy)"
expect_eq "leastload places" 5 "$(cat /proc/ssi/place)"
rmmod ssi_pol_leastload && ok "rmmod leastload" || bad "rmmod leastload"
expect_eq "falls back to none" "active none" "$(cat /proc/ssi/policy)"
expect_eq "lowest ID again" 1 "$(cat /proc/ssi/place)"
expect_ok "view without 1" /proc/ssi/nodes \
    'epoch 9\n1 10.77.1.101 leaving 0 0 0\n2 10.77.1.102 up 0 0 0\n'
expect_eq "lowest ID up" 2 "$(cat /proc/ssi/place)"

# Policies come and go while placements are read.
expect_ok "stress view" /proc/ssi/nodes \
    'epoch 10\n1 10.77.1.101 up 0 0 0\n2 10.77.1.102 up 0 0 0\n3 10.77.1.103 up 0 0 0\n'
(while :; do cat /proc/ssi/place /proc/ssi/policy >/dev/null; done) &
reader=$!
i=0
while [ $i -lt 30 ]; do
    insmod $M/ssi_pol_roundrobin.ko && insmod $M/ssi_pol_leastload.ko &&
        printf leastload >/proc/ssi/policy && rmmod ssi_pol_leastload &&
        rmmod ssi_pol_roundrobin || { bad "policy churn, round $i"; break; }
    i=$((i + 1))
done
kill $reader
wait $reader 2>/dev/null
[ $i = 30 ] && ok "30 rounds of policy churn under placements"
expect_eq "no policy after churn" "active none" "$(cat /proc/ssi/policy)"

# Everyone reads; only root writes, whatever the file's mode.
for f in cluster nodes load policy place; do
    if su -s /bin/sh nobody -c "cat /proc/ssi/$f" >/dev/null 2>/tmp/err; then
        ok "nobody reads $f"
    else
        bad "nobody reads $f: $(cat /tmp/err)"
    fi
done
insmod $M/ssi_pol_roundrobin.ko || bad "insmod roundrobin"
insmod $M/ssi_pol_leastload.ko || bad "insmod leastload"
if su -s /bin/sh nobody -c 'printf leastload >/proc/ssi/policy' 2>/tmp/err; then
    bad "nobody wrote policy"
elif grep -q 'Permission denied' /tmp/err; then
    ok "nobody cannot open policy for writing"
else
    bad "nobody writes policy: $(cat /tmp/err)"
fi
chmod 666 /proc/ssi/policy /proc/ssi/nodes /proc/ssi/cluster
printf leastload >/tmp/put
for f in policy nodes cluster; do
    if su -s /bin/sh nobody -c "dd if=/tmp/put of=/proc/ssi/$f bs=16k" 2>/tmp/err; then
        bad "nobody wrote $f through mode 666"
    elif grep -q 'Operation not permitted' /tmp/err; then
        ok "nobody cannot write $f even at mode 666 (EPERM)"
    else
        bad "nobody writes $f at mode 666: $(cat /tmp/err)"
    fi
done
chmod 644 /proc/ssi/policy /proc/ssi/nodes /proc/ssi/cluster
expect_eq "policy unchanged by nobody" roundrobin "$(field /proc/ssi/policy active)"

# ssi.ko stays while a policy module uses it.
if rmmod ssi 2>/dev/null; then bad "rmmod ssi with policies loaded"; else ok "ssi.ko in use by policies"; fi

# The load probe.
cpus=$(grep -c '^processor' /proc/cpuinfo)
expect_eq "cpus" "$cpus" "$(field /proc/ssi/load cpus)"
total=$(field /proc/ssi/load mem_total_kb)
free=$(field /proc/ssi/load mem_free_kb)
avail=$(field /proc/ssi/load mem_available_kb)
if [ "$total" -gt 100000 ] && [ "$free" -gt 0 ] && [ "$free" -le "$total" ] &&
    [ "$avail" -gt 0 ] && [ "$avail" -le "$total" ]; then
    ok "memory: total $total free $free available $avail"
else
    bad "memory: total '$total' free '$free' available '$avail'"
fi
# The checks above kept the shell busy: let the average settle first.
sleep 4
idle=$(field /proc/ssi/load load)
(while :; do :; done) &
b1=$!
(while :; do :; done) &
b2=$!
sleep 2
busy=$(field /proc/ssi/load load)
running=$(field /proc/ssi/load running)
kill $b1 $b2
wait $b1 $b2 2>/dev/null
if [ "$busy" -ge 1000 ] && [ "$busy" -gt $((idle + 500)) ] && [ "$running" -ge 2 ]; then
    ok "load rises with 2 busy loops: $idle -> $busy, running $running"
else
    bad "load with 2 busy loops: $idle -> $busy, running $running"
fi
sleep 4
after=$(field /proc/ssi/load load)
if [ "$after" -lt $((busy / 2)) ]; then
    ok "load falls back: $busy -> $after"
else
    bad "load after the loops ended: $busy -> $after"
fi

rmmod ssi_pol_leastload && rmmod ssi_pol_roundrobin && rmmod ssi &&
    ok "rmmod all" || bad "rmmod all"
[ -e /proc/ssi ] && bad "/proc/ssi left behind" || ok "/proc/ssi removed"
finish
EOF
chmod +x "$dir/root/init"
(cd "$dir/root" && find . | cpio -o -H newc -R 0:0 --quiet) >"$dir/ssi.cpio" ||
    fail "cannot make the test archive"
cat "$image/initrd.img" "$dir/ssi.cpio" >"$dir/initrd.img"

log "booting the guest kernel with the modules"
rc=0
timeout 90 "$qemu" -machine pc,accel=tcg -m 256 -nodefaults -display none \
    -no-reboot -kernel "$image/vmlinuz" -initrd "$dir/initrd.img" \
    -append "console=ttyS0 panic=-1 nokaslr no_timer_check" \
    -serial "file:$dir/console.log" &
qemu_pid=$!
wait "$qemu_pid" || rc=$?
qemu_pid=
grep -a '^SSI-KMOD-TEST: ok' "$dir/console.log" | sed 's/^SSI-KMOD-TEST: /guest: /' >&2 || true
if grep -aq '^SSI-KMOD-TEST: FAIL' "$dir/console.log"; then
    grep -a '^SSI-KMOD-TEST: FAIL' "$dir/console.log" >&2
    fail "$(grep -ac '^SSI-KMOD-TEST: FAIL' "$dir/console.log") guest check(s) failed"
fi
if grep -aEq 'BUG:|WARNING:|Oops|general protection|Call Trace|scheduling while atomic' \
    "$dir/console.log"; then
    grep -aE -A 20 'BUG:|WARNING:|Oops|general protection|Call Trace|scheduling while atomic' \
        "$dir/console.log" | head -n 40 >&2
    fail "the guest kernel complained"
fi
if ! grep -aq '^SSI-KMOD-TEST: PASS' "$dir/console.log"; then
    tail -n 30 "$dir/console.log" >&2
    fail "the guest did not finish its checks (QEMU status $rc)"
fi
((rc == 0)) || fail "QEMU exited with status $rc"
log "ok: $(grep -ac '^SSI-KMOD-TEST: ok' "$dir/console.log") checks passed in the guest"
