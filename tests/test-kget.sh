#!/usr/bin/env bash
# Kget+ end to end on loopback: a real kget-store, two concurrent senders
# putting the two VMs of one snapshot (files that share most blocks), a
# seal, byte-identical restores, a restore that takes the pages a real
# dht-pagesd has from it and only the rest from the store (and one with
# no dht-pagesd at all), a rotten chunk caught by restore and verify, a store killed with -9 in the middle of a put that restarts
# clean, gc --keep 1, and bad input answered with one line.
source "$(dirname "$0")/lib/functions.sh"
needs python3

KGET=$VC_BUILDDIR/saline/kget/cli/kget
KGET_STORE_BIN=$VC_BUILDDIR/saline/kget/store/kget-store
PAGESD=$VC_BUILDDIR/dht-pages/pagesd/dht-pagesd
PAGES=$VC_BUILDDIR/dht-pages/cli/dht-pages
# Below the ephemeral range (32768-60999): an outgoing connection of
# another test may hold any port there.
port=$((20000 + $$ % 12000))
dir=$VC_TESTDIR/store
log=$VC_TESTDIR/store.log
export KGET_STORE=127.0.0.1:$port
export KGET_KEY_FILE=$VC_TESTDIR/site.key
head -c 32 /dev/urandom | base64 >"$KGET_KEY_FILE"

store_pid=
start_store() {
    # A small window, so that the two senders have to take turns.
    "$KGET_STORE_BIN" --dir "$dir" --listen "127.0.0.1:$port" \
        --key-file "$KGET_KEY_FILE" --window 262144 --debug >>"$log" 2>&1 &
    store_pid=$!
    wait_for 10 "$KGET" -q ls || fail "kget-store did not start: $(tail -3 "$log")"
}
stop_store() {
    [[ -n $store_pid ]] && kill -9 "$store_pid" 2>/dev/null
    wait "$store_pid" 2>/dev/null || true
}
cleanup_fn stop_store
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start_store
log "kget-store on 127.0.0.1:$port"

# Two VMs of 6 MiB that share all but 16 blocks; a run of zero blocks.
a=$VC_TESTDIR/vm0.ram b=$VC_TESTDIR/vm1.ram
head -c $((6 << 20)) /dev/urandom >"$a"
dd if=/dev/zero of="$a" bs=4096 seek=200 count=50 conv=notrunc status=none
cp "$a" "$b"
dd if=/dev/urandom of="$b" bs=4096 seek=1000 count=16 conv=notrunc status=none
printf 'tail' >>"$b" # a short last block

"$KGET" --json snapshot saline-7@1 vm0/ram="$a" --no-seal >"$VC_TESTDIR/s0.json" &
p0=$!
"$KGET" --json snapshot saline-7@1 vm1/ram=- --no-seal <"$b" >"$VC_TESTDIR/s1.json" &
p1=$!
wait "$p0" || fail "snapshot of vm0 failed"
wait "$p1" || fail "snapshot of vm1 failed"
assert_eq "zero blocks of vm0" 50 "$(json 'd["items"][0]["zero_blocks"]' <"$VC_TESTDIR/s0.json")"
assert_eq "sealed by --no-seal" False "$(json 'd["sealed"]' <"$VC_TESTDIR/s0.json")"
# Admission control: both senders were granted credit.
grantees=$(grep -o 'debug: [0-9.:]*: granted' "$log" | sort -u | wc -l)
((grantees >= 2)) || fail "credit went to $grantees connections, expected 2"

"$KGET" ls | grep -q 'saline-7@1' && fail "an unsealed snapshot is listed"
"$KGET" seal saline-7@1 vm0/ram vm1/ram --meta '{"vms":2}' >/dev/null ||
    fail "seal failed"
"$KGET" --json ls saline-7 >"$VC_TESTDIR/ls.json"
stored=$(json 'd["snapshots"][0]["stored_bytes"]' <"$VC_TESTDIR/ls.json")
total=$(($(stat -c %s "$a") + $(stat -c %s "$b")))
((stored < total * 6 / 10)) || fail "stored $stored bytes of $total"
log "ok: snapshot of $total bytes stored in $stored"

for vm in 0 1; do
    src=$VC_TESTDIR/vm$vm.ram
    "$KGET" restore saline-7@1 vm$vm/ram -o "$VC_TESTDIR/back$vm" ||
        fail "restore of vm$vm failed"
    cmp -s "$src" "$VC_TESTDIR/back$vm" || fail "vm$vm restored differently"
done
"$KGET" restore saline-7@1 vm1/ram -o - | cmp -s "$b" - || fail "restore to stdout"
log "ok: both items restored byte for byte"
"$KGET" verify saline-7@1 >/dev/null || fail "verify of a sound snapshot failed"

# A redeploy at a site whose page index holds the first 2 MiB of vm0's
# RAM (462 non-zero pages): a dht-pagesd alone on loopback, those pages
# published to it. vm0 takes them from the site, the rest from the store
# (and publishes those), then vm1 finds all it shares with vm0 there.
sock=$VC_TESTDIR/resolver.sock
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$VC_TESTDIR/pages.key"
"$PAGESD" --site kget --site-key-file "$VC_TESTDIR/pages.key" \
    --address 127.0.0.1 --peer-port $((port + 1)) --dht-port $((port + 2)) \
    --resolver-socket "$sock" --ram-glob "$VC_TESTDIR/no-vm/*.ram" \
    >"$VC_TESTDIR/pagesd.log" 2>&1 &
pagesd_pid=$!
stop_pagesd() { kill "$pagesd_pid" 2>/dev/null; wait "$pagesd_pid" 2>/dev/null || true; }
cleanup_fn stop_pagesd
wait_for 10 test -S "$sock" || fail "dht-pagesd did not start: $(tail -3 "$VC_TESTDIR/pagesd.log")"
head -c $((2 << 20)) "$a" >"$VC_TESTDIR/part"
"$PAGES" --socket "$sock" publish "$VC_TESTDIR/part" >/dev/null || fail "publish failed"
"$KGET" -q restore saline-7@1 vm0/ram -o - --resolver "$sock" 2>"$VC_TESTDIR/err" |
    cmp -s "$a" - || fail "vm0 restored through the site differently"
assert_eq "restore line" \
    "kget: vm0/ram: 462 pages from the site (1.8 MiB), 1024 from the store (4.0 MiB)" \
    "$(cat "$VC_TESTDIR/err")"
# The pages the store sent were published to the site: vm1, which shares
# all but 16 blocks and its short tail with vm0, finds them there.
"$KGET" --json restore saline-7@1 vm1/ram -o "$VC_TESTDIR/back1" --resolver "$sock" \
    >"$VC_TESTDIR/site.json" 2>/dev/null || fail "restore --json --resolver failed"
cmp -s "$b" "$VC_TESTDIR/back1" || fail "vm1 restored through the site differently"
assert_eq "vm1 pages from the site" 1470 "$(json 'd["pages"]["site_chunks"]' <"$VC_TESTDIR/site.json")"
assert_eq "vm1 chunks from the store" 17 "$(json 'd["pages"]["store_chunks"]' <"$VC_TESTDIR/site.json")"
# No dht-pagesd: the same restore, every page from the store.
"$KGET" --json restore saline-7@1 vm1/ram -o "$VC_TESTDIR/back1" \
    --resolver "$VC_TESTDIR/none.sock" >"$VC_TESTDIR/nosite.json" 2>/dev/null ||
    fail "restore without dht-pagesd failed"
cmp -s "$b" "$VC_TESTDIR/back1" || fail "vm1 restored without the site differently"
assert_eq "pages from an absent site" 0 "$(json 'd["pages"]["site_chunks"]' <"$VC_TESTDIR/nosite.json")"
with=$(json 'd["pages"]["store_bytes"]' <"$VC_TESTDIR/site.json")
without=$(json 'd["pages"]["store_bytes"]' <"$VC_TESTDIR/nosite.json")
assert_eq "store bytes saved by the site" $((1470 * 4096)) $((without - with))
stop_pagesd
log "ok: pages the site has come from dht-pagesd, the rest from the store"

# Rot one byte of a chunk only vm0 uses (block 1003), on disk.
flip() {
    python3 - "$dir/packs" "$a" <<'PY'
import os, sys
block = open(sys.argv[2], "rb").read()[1003 * 4096:1004 * 4096]
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    data = bytearray(open(path, "rb").read())
    at = data.find(block[:100])  # the bytes before the one flipped
    if at >= 0:
        data[at + 100] ^= 0x40
        open(path, "r+b").write(data)
        sys.exit(0)
sys.exit(1)
PY
}
flip || fail "chunk not found in the packs"
rc=0
"$KGET" restore saline-7@1 vm0/ram -o "$VC_TESTDIR/bad" 2>"$VC_TESTDIR/err" || rc=$?
assert_eq "restore of a rotten snapshot" 1 "$rc"
grep -q 'corrupt chunk' "$VC_TESTDIR/err" || fail "restore said: $(cat "$VC_TESTDIR/err")"
[[ -e $VC_TESTDIR/bad ]] && fail "a failed restore left its file"
rc=0
"$KGET" verify saline-7@1 >/dev/null 2>&1 || rc=$?
assert_eq "verify of a rotten snapshot" 1 "$rc"
rc=0
"$KGET" verify >/dev/null 2>&1 || rc=$?
assert_eq "verify of the store" 1 "$rc"
"$KGET" restore saline-7@1 vm1/ram -o "$VC_TESTDIR/back1" || fail "vm1 shares no rot"
flip || fail "chunk not found again"
"$KGET" verify >/dev/null || fail "verify after repair"
log "ok: a rotten chunk fails restore and verify"

# kill -9 in the middle of a put.
big=$VC_TESTDIR/big
head -c $((96 << 20)) /dev/urandom >"$big"
grants() { grep -c 'granted' "$log" || true; }
before=$(grants)
"$KGET" -q snapshot saline-8@1 vm0/ram="$big" 2>/dev/null &
putter=$!
more_grants() { (($(grants) > before + 20)); }
wait_for 30 more_grants || fail "the big put did not start"
kill -9 "$store_pid"
wait "$store_pid" 2>/dev/null || true
rc=0
wait "$putter" || rc=$?
((rc != 0)) || fail "a put cut by kill -9 succeeded"
start_store
"$KGET" verify >/dev/null || fail "verify after kill -9"
"$KGET" --json ls >"$VC_TESTDIR/ls.json"
assert_eq "snapshots after kill -9" "['saline-7@1']" \
    "$(json '[s["name"] for s in d["snapshots"]]' <"$VC_TESTDIR/ls.json")"
log "ok: the store restarts clean after kill -9 during a put"

# gc --keep 1: saline-7@2 replaces @1; the cut put's chunks go.
"$KGET" -q snapshot saline-7@2 vm0/ram="$b" || fail "snapshot @2"
"$KGET" --json gc --keep 1 >"$VC_TESTDIR/gc.json" || fail "gc failed"
assert_eq "snapshots removed by gc" 1 "$(json 'd["snapshots"]' <"$VC_TESTDIR/gc.json")"
"$KGET" --json ls >"$VC_TESTDIR/ls.json"
assert_eq "snapshots after gc" "['saline-7@2']" \
    "$(json '[s["name"] for s in d["snapshots"]]' <"$VC_TESTDIR/ls.json")"
chunks=$(json 'd["chunks"]' <"$VC_TESTDIR/ls.json")
assert_eq "chunks left" "$(json 'd["items"][0]["blocks"] - d["items"][0]["zero_blocks"]' <"$VC_TESTDIR/s1.json")" "$chunks"
"$KGET" restore saline-7@2 vm0/ram -o "$VC_TESTDIR/back2" || fail "restore after gc"
cmp -s "$b" "$VC_TESTDIR/back2" || fail "restored differently after gc"
"$KGET" verify >/dev/null || fail "verify after gc"

# Bad input: one line, exit 1 (refused) or 2 (usage); 3 if unreachable.
check_rc() {
    local want=$1 rc=0
    shift
    "$KGET" "$@" >/dev/null 2>"$VC_TESTDIR/err" || rc=$?
    assert_eq "exit status of 'kget $*'" "$want" "$rc"
    assert_eq "stderr lines of 'kget $*'" 1 "$(wc -l <"$VC_TESTDIR/err")"
}
check_rc 1 restore saline-9@1 vm0/ram -o "$VC_TESTDIR/x"
check_rc 1 rm saline-9@1
check_rc 1 seal saline-9@1 vm0/ram
check_rc 2 rm 'bad name'
check_rc 2 restore saline-7@2 ../x -o "$VC_TESTDIR/x"
check_rc 2 snapshot saline-7@03 vm0/ram="$a"
check_rc 2 frobnicate
check_rc 3 --store 127.0.0.1:1 ls

# SIGTERM: a clean stop.
kill -TERM "$store_pid"
rc=0
wait "$store_pid" || rc=$?
store_pid=
assert_eq "exit status after SIGTERM" 0 "$rc"
log "PASS"
