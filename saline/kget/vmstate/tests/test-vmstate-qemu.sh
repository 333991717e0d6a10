#!/bin/bash
# kget-vmstate against Debian's QEMU 7.2: save a guest (no OS; a random
# pattern loaded in its RAM) with background-snapshot and with plain
# precopy, split the stream into the two items, rebuild a stream from
# them, load it into a fresh QEMU, and compare the guest RAM both see.
source "$VC_SRCDIR/tests/lib/functions.sh"

QEMU=/usr/bin/qemu-system-x86_64
[[ -x $QEMU ]] || { echo "SKIP: '$QEMU' not found" >&2; exit 77; }
needs python3
DUMP=$VC_BUILDDIR/saline/kget/vmstate/kget-vmstate-dump
QMP_PY=$VC_SRCDIR/saline/kget/vmstate/tests/qmp.py
RAM_BYTES=$((64 << 20))

qmp() {
    local name=$1
    shift
    python3 "$QMP_PY" "$VC_TESTDIR/$name.sock" "$@"
}

kill_qemu() {
    local pid
    pid=$(cat "$VC_TESTDIR/$1.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null
    wait_for 10 bash -c "! kill -0 $pid"
}

start_qemu() {
    local name=$1
    shift
    cleanup_fn kill_qemu "$name"
    "$QEMU" -accel tcg -m 64 -nodefaults -display none -S \
        -qmp "unix:$VC_TESTDIR/$name.sock,server=on,wait=off" \
        -pidfile "$VC_TESTDIR/$name.pid" -daemonize "$@" ||
        fail "QEMU '$name' did not start"
}

# run_case NAME BACKGROUND: save with background-snapshot on or off.
run_case() {
    local name=$1 bg=$2 d=$VC_TESTDIR/$1
    mkdir "$d"
    log "$name: save"
    start_qemu "$name-src" -device "loader,file=$VC_TESTDIR/pattern,addr=0x200000"
    # QEMU 7.2 aborts a background snapshot taken in runstate prelaunch
    # ("invalid runstate transition"), so run the firmware a moment; the
    # snapshot restarts the VM, so RAM is read before, while it is stopped.
    qmp "$name-src" '{"execute":"cont"}' '{"execute":"stop"}' \
        "{\"execute\":\"pmemsave\",\"arguments\":{\"val\":0,\"size\":$RAM_BYTES,\"filename\":\"$d/before\"}}" \
        "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[{\"capability\":\"background-snapshot\",\"state\":$bg}]}}" \
        '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":10000000000}}' \
        "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > $d/stream\"}}" \
        wait-migration >/dev/null || fail "$name: saving failed"
    kill_qemu "$name-src"
    cmp -s <(tail -c +$((0x200000 + 1)) "$d/before" | head -c 1048576) \
        "$VC_TESTDIR/pattern" || fail "$name: the pattern is not in guest RAM"

    log "$name: split and rebuild"
    "$DUMP" split "$d/stream" "$d/ram" "$d/devstate" >"$d/split.txt" ||
        fail "$name: cannot split the stream"
    cat "$d/split.txt" >&2
    assert_eq "$name: RAM item size" "$(grep -o '^ram: [0-9]*' "$d/split.txt")" \
        "ram: $(stat -c %s "$d/ram")"
    grep -q "^block 'pc.ram': offset 0, $RAM_BYTES bytes" "$d/split.txt" ||
        fail "$name: no pc.ram block"
    "$DUMP" rebuild "$d/devstate" "$d/ram" "$d/rebuilt" ||
        fail "$name: cannot rebuild the stream"
    "$DUMP" "$d/rebuilt" >"$d/rebuilt.txt" || fail "$name: bad rebuilt stream"
    assert_eq "$name: pages of the rebuilt stream" \
        "$(grep '^block' "$d/split.txt")" "$(grep '^block' "$d/rebuilt.txt")"

    log "$name: restore"
    start_qemu "$name-dst" -incoming defer
    qmp "$name-dst" \
        "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"exec:cat $d/rebuilt\"}}" \
        wait-migration \
        "{\"execute\":\"pmemsave\",\"arguments\":{\"val\":0,\"size\":$RAM_BYTES,\"filename\":\"$d/after\"}}" \
        >/dev/null || fail "$name: QEMU refused the rebuilt stream"
    cmp "$d/before" "$d/after" || fail "$name: guest RAM differs after restore"
    log "ok: $name: guest RAM identical after restore"
}

head -c 1048576 /dev/urandom >"$VC_TESTDIR/pattern"
run_case background-snapshot true
run_case precopy false
