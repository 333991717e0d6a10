#!/usr/bin/env bash
# The site page index on a real 4-node site: a guest on node 1 with shared
# RAM; node 3 resolves the guest's payload pages through the index and
# gets the right bytes; a random hash misses; node 2 is killed and lookups
# still succeed after the rebalance; a lying peer is caught and its pages
# never reach the client; bad frames and a wrong site key are rejected
# while the daemons keep serving.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/pages.sh"
requires_root
needs qemu-system-x86_64 socat cpio

sites_create 1 4
# Node 4 plays a lying peer: it serves corrupted pages.
for n in 1 2 3 4; do
    extra=()
    ((n == 4)) && extra=(--test-corrupt-pages)
    # A lookup waits 3 s for a page another client fetches (the default
    # is 0.5 s): the coalescing check below publishes 0.5 s after.
    pages_start a "$n" --hash-rate 0 --coalesce-ms 3000 "${extra[@]}"
done
for n in 1 2 3 4; do
    pages_wait_members a "$n" 3 60 || fail "site did not form"
done
log "site of 4 dht-pagesd formed through OpenDHT"

# The payload's page hashes, from the image itself.
mkdir "$VC_TESTDIR/initrd"
(cd "$VC_TESTDIR/initrd" && cpio -id --quiet 'payload/*' <"$VC_IMAGE/initrd.img")
"$VC_PAGES_CLI" hash "$VC_TESTDIR"/initrd/payload/* | cut -d' ' -f1 |
    sort -u >"$VC_TESTDIR/payload.hashes"
npayload=$(wc -l <"$VC_TESTDIR/payload.hashes")
log "payload: $npayload distinct non-zero pages"

vm_start g1 a 1 10.77.1.101 --mem 256 --unique-mb 8
vm_wait_ready g1 60 || fail "guest did not boot"
# Node 1 indexes the guest's RAM; wait until the payload resolves.
lookup_hits() {
    local out
    out=$(pages_cli a 3 lookup - <"$VC_TESTDIR/payload.hashes" 2>/dev/null) || true
    grep -c ' hit$' <<<"$out" || true
}
enough_hits() { (($(lookup_hits) * 100 >= npayload * 99)); }
wait_for 90 enough_hits || fail "node 3 resolves only $(lookup_hits) of $npayload payload pages"
log "node 3 resolves $(lookup_hits) of $npayload payload pages"
log "node 1: $(pages_cli a 1 status | grep -E 'local RAM|index')"

# The bytes are right: write some pages out and hash them independently.
head -n 50 "$VC_TESTDIR/payload.hashes" >"$VC_TESTDIR/sample"
pages_cli a 3 lookup --output "$VC_TESTDIR/pages" - <"$VC_TESTDIR/sample" >/dev/null
for f in "$VC_TESTDIR"/pages/*; do
    [[ $(basename "$f") == "$(sha256sum <"$f" | cut -d' ' -f1)" ]] ||
        fail "page $(basename "$f") has other content"
done
assert_eq "pages written" 50 "$(ls "$VC_TESTDIR/pages" | wc -l)"
log "ok: 50 pages fetched from node 1 via node 3 hash to their names"
hits_peer=$(pages_stat a 3 hits_peer)
((hits_peer > 0)) || fail "node 3 counted no page from peers"

# A random hash misses (exit status 3, 'miss').
random=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
rc=0
out=$(pages_cli a 3 lookup "$random" 2>/dev/null) || rc=$?
assert_eq "lookup of a random hash" "$random miss" "$out"
assert_eq "exit status on a miss" 3 "$rc"

# A lying peer: pages published only on node 4 come back corrupted from
# it; node 3 must catch them, count them, and answer miss.
head -c $((64 * 4096)) /dev/urandom >"$VC_TESTDIR/only-on-4"
pages_cli a 4 publish "$VC_TESTDIR/only-on-4" >/dev/null || fail "publish on node 4 failed"
"$VC_PAGES_CLI" hash "$VC_TESTDIR/only-on-4" | cut -d' ' -f1 >"$VC_TESTDIR/h4"
sleep 1 # the index owners learn about them
bad_before=$(pages_stat a 3 bad_pages_from_peers)
out=$(pages_cli a 3 lookup - <"$VC_TESTDIR/h4" 2>/dev/null) || true
grep -q ' bad$' <<<"$out" && fail "the client received a corrupted page"
assert_eq "pages from the lying peer given to the client" 0 "$(grep -c ' hit$' <<<"$out" || true)"
bad=$(($(pages_stat a 3 bad_pages_from_peers) - bad_before))
((bad >= 64)) || fail "node 3 counted $bad bad pages from node 4, expected 64"
log "ok: node 3 caught $bad corrupted pages from node 4, the client got misses"
# Node 4's own lookups (not through the liar) still see them: the cache
# is fine, only what it serves is corrupted.
n4=$(pages_cli a 4 lookup - <"$VC_TESTDIR/h4" 2>/dev/null | grep -c ' hit$' || true)
assert_eq "node 4 resolves its own cache" 64 "$n4"

# Coalescing: a client told "miss" fetches the page and publishes it; a
# second client asking meanwhile waits for that publish instead of also
# being told "miss" (so the page crosses the WAN once).
head -c 4096 /dev/urandom >"$VC_TESTDIR/fresh"
fresh=$("$VC_PAGES_CLI" hash "$VC_TESTDIR/fresh" | cut -d' ' -f1)
coalesced_before=$(pages_stat a 3 coalesced_hits)
out=$(pages_cli a 3 lookup "$fresh" 2>/dev/null) || true
assert_eq "first lookup of a new page" "$fresh miss" "$out"
pages_cli a 3 lookup "$fresh" >"$VC_TESTDIR/second" 2>/dev/null &
second=$!
sleep 0.5
pages_cli a 3 publish "$VC_TESTDIR/fresh" >/dev/null || fail "publish failed"
wait "$second" || fail "the waiting lookup failed"
assert_eq "second lookup, answered by the first client's publish" "$fresh hit" \
    "$(cat "$VC_TESTDIR/second")"
assert_eq "coalesced hits" $((coalesced_before + 1)) "$(pages_stat a 3 coalesced_hits)"

# Bad input on both sockets: garbage, truncated and oversized frames, and
# a wrong site key. The daemon logs why and keeps serving.
frames_before=$(pages_stat a 3 bad_frames)
printf 'garbage!garbage!' | socat -t 1 - "UNIX-CONNECT:$(pages_sock a 3)" >/dev/null 2>&1 || true
printf '\xff\xff\xff\xff' | socat -t 1 - "UNIX-CONNECT:$(pages_sock a 3)" >/dev/null 2>&1 || true
printf '\x00\x00\x00\x30\x01\x01\x00\x00' | socat -t 1 - "UNIX-CONNECT:$(pages_sock a 3)" >/dev/null 2>&1 || true
on_node a 4 bash -c "printf 'junkjunkjunkjunk' | socat -t 1 - TCP:$(node_ip a 3):7400" >/dev/null 2>&1 || true
on_node a 4 bash -c "printf '\xff\xff\xff\xff' | socat -t 1 - TCP:$(node_ip a 3):7400" >/dev/null 2>&1 || true
# A daemon of peer protocol version 1 (before CLAIM) is refused at its
# HELLO, with an ERROR of version 1 that it can read.
v1_hello='\x00\x00\x00\x3c\x01\x20\x00\x00\x00\x00\x00\x01'
v1_hello+=$(printf '\\x11%.0s' {1..48})'\x1c\xe8\x01a'
refusal=$(on_node a 4 bash -c "printf '$v1_hello' | socat -t 2 - TCP:$(node_ip a 3):7400" 2>/dev/null | tr -c '[:print:]' '.') || true
[[ $refusal == *"HELLO of protocol version 1 is not supported (want 2)"* ]] ||
    fail "a version 1 peer was not refused with a version error: '$refusal'"
log "ok: a version 1 peer is told: ${refusal:18}"
frames=$(($(pages_stat a 3 bad_frames) - frames_before))
((frames >= 6)) || fail "node 3 counted $frames bad frames of 6"
log "ok: $frames bad frames rejected; node 3 log says: $(grep -m1 'bad frame\|rejected' "$(pages_log a 3)" | cut -c1-120)"

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$VC_TESTDIR/wrong.key"
auth_before=$(pages_stat a 3 auth_failures)
rc=0
on_node a 4 "$VC_PAGES_CLI" check-peer --site a --key-file "$VC_TESTDIR/wrong.key" \
    "$(node_ip a 3):7400" 2>"$VC_TESTDIR/err" || rc=$?
((rc != 0)) || fail "a wrong site key was accepted"
log "wrong key, client side: $(cat "$VC_TESTDIR/err")"
# A client that ignores the server's proof and answers with its own,
# made with the wrong key: the server must refuse it.
rc=0
on_node a 4 "$VC_PAGES_CLI" check-peer --no-verify-server --site a \
    --key-file "$VC_TESTDIR/wrong.key" "$(node_ip a 3):7400" 2>"$VC_TESTDIR/err" || rc=$?
((rc != 0)) || fail "the server accepted a proof made with a wrong key"
log "wrong key, server side: $(cat "$VC_TESTDIR/err")"
assert_eq "auth failures counted" $((auth_before + 1)) "$(pages_stat a 3 auth_failures)"
on_node a 4 "$VC_PAGES_CLI" check-peer --site a --key-file "$(pages_key a)" \
    "$(node_ip a 3):7400" >/dev/null || fail "the right site key was refused"
on_node a 4 "$VC_PAGES_CLI" check-peer --site b --key-file "$(pages_key a)" \
    "$(node_ip a 3):7400" >/dev/null 2>&1 && fail "a wrong site name was accepted"
enough_hits || fail "node 3 stopped serving after bad input"
log "ok: daemons keep serving after bad input"

# Node 2 dies: the others drop it, rebalance, and lookups work again.
pages_kill a 2
for n in 1 3 4; do
    pages_wait_members a "$n" 2 30 || fail "node $n did not drop dead node 2"
done
wait_for 30 enough_hits || fail "after node 2 died node 3 resolves only $(lookup_hits) of $npayload"
log "ok: node 2 killed; after rebalance node 3 resolves $(lookup_hits) of $npayload"
log "node 3: $(pages_cli a 3 status | tr '\n' ';' | cut -c1-400)"
vm_stop g1
