#!/usr/bin/env bash
# A virtual cluster migrates with page hashes: four guests of one image
# move at once from site A to four different site-B nodes, on which
# nothing of that image runs yet, across an emulated WAN (20 ms one way,
# 100 Mbit/s). The pages they miss cross the WAN once for the whole site
# (docs/protocols.md, "Missing pages: claims"): the destinations' misses
# add up to the distinct non-zero pages of the four guests, not to the
# sum of each guest's own distinct pages (what coalescing within a node
# gives when each guest lands on a node of its own). Every destination's
# RAM equals its source's. Then four more guests migrate while the site's
# claims arbiter crashes: every migration still completes, identical.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/pages.sh"
requires_root
needs qemu-system-x86_64 socat python3

N=4
qemu=$(bash "$VC_SRCDIR/qemu-patches/build-qemu.sh") || fail "no patched QEMU"
log "patched QEMU: $qemu"
sites_create 2 "$N" --delay 20 --rate 100

pages_site_up b "$N" || fail "site B did not form"
log "site B: $N dht-pagesd, no guest"

# One image, a unique region of its own for each guest.
for ((i = 1; i <= N; i++)); do
    vm_start "c$i" a "$i" "10.77.1.10$i" --qemu "$qemu" --unique-mb 2 \
        --seed "3$i" --page-hash on
done
for ((i = 1; i <= N; i++)); do
    vm_wait_ready "c$i" 120 || fail "guest c$i did not boot"
done
for ((i = 1; i <= N; i++)); do
    vm_start "c${i}b" b "$i" "10.77.1.10$i" --qemu "$qemu" --unique-mb 2 \
        --seed "3$i" --page-hash on --resolver "$(pages_sock b "$i")" \
        --incoming "445$i"
done

migration_over() {
    [[ $(vm_migration_status "$1") == @(completed|failed|cancelled) ]]
}
w0=$(wan_bytes a)
for ((i = 1; i <= N; i++)); do
    vm_migrate_start "c$i" "c${i}b"
done
for ((i = 1; i <= N; i++)); do
    wait_for 300 migration_over "c$i" || fail "migration of c$i did not end"
    assert_eq "migration of c$i" completed "$(vm_migration_info "c$i" status)"
done
wan=$(($(wan_bytes a) - w0))

misses=0
asked=0
for ((i = 1; i <= N; i++)); do
    m=$(vm_migration_info "c$i" page-hash misses)
    log "c$i -> b$i: $(vm_migration_info "c$i" page-hash hashes-sent) hashes, $(vm_migration_info "c$i" page-hash resolved) resolved, $m misses, $(vm_migration_info "c$i" page-hash miss-pages-sent) pages sent on request, drained for $(vm_migration_info "c$i" page-hash drain-time) ms, downtime $(vm_migration_info "c$i" downtime) ms"
    assert_eq "c$i: hashes outstanding at pause" 0 \
        "$(vm_migration_info "c$i" page-hash outstanding-at-pause)"
    misses=$((misses + m))
    asked=$((asked + $(vm_migration_info "c$i" page-hash miss-pages-sent)))
done
for ((i = 1; i <= N; i++)); do
    cmp -s "$(vm_ram_file "c$i")" "$(vm_ram_file "c${i}b")" ||
        fail "c${i}b: RAM differs from its source's"
done
log "ok: $N destinations' RAM identical to their sources'"

# Distinct non-zero pages of the sources (stopped now): of all four, and
# of each guest on its own, summed.
read -r distinct own < <(python3 - "$(vm_ram_file c1)" "$(vm_ram_file c2)" \
    "$(vm_ram_file c3)" "$(vm_ram_file c4)" <<'PY'
import hashlib, sys
zero = bytes(4096)
every, own = set(), 0
for path in sys.argv[1:]:
    mine = set()
    with open(path, "rb") as f:
        while len(page := f.read(4096)) == 4096:
            if page != zero:
                mine.add(hashlib.sha256(page).digest())
    own += len(mine)
    every |= mine
print(len(every), own)
PY
)
stats() {
    local key=$1 sum=0 i
    for ((i = 1; i <= N; i++)); do
        sum=$((sum + $(pages_stat b "$i" "$key")))
    done
    echo "$sum"
}
log "cluster: WAN $wan bytes; $distinct distinct non-zero pages in the $N guests, $own counted guest by guest"
log "cluster: $misses misses in all ($asked pages sent on request); site B: $(stats claims_fetch) told to fetch, $(stats coalesce_waits) waited for another node, $(stats coalesced_hits) then fetched from it, $(stats hits_peer) from peers' RAM or cache, $(stats claims_decided) claims decided"
for ((i = 1; i <= N; i++)); do
    line=
    for k in lookups hits_ram hits_peer misses claims_fetch coalesce_waits \
        coalesced_hits published claims_decided claims_fulfilled claims_dropped; do
        line+=" $k=$(pages_stat b "$i" "$k")"
    done
    log "b$i:$line"
done
# Each distinct page once: a little over the distinct pages for those
# that changed while the guests ran, far below a fetch per guest.
((misses * 100 <= distinct * 105)) ||
    fail "$misses misses for $distinct distinct pages: pages crossed the WAN more than once"
((misses * 2 < own)) || fail "$misses misses, not below half of the $own per guest"
log "ok: $misses misses for $distinct distinct pages of $N guests ($((misses * 100 / own))% of the $own a fetch per guest and page would make)"

# The arbiter's dht-pagesd dies mid-migration (a crash). Four new guests,
# each with a unique region site B has never seen, migrate to the same
# nodes, capped at 1 MiB/s so that the crash finds them all in flight.
# The other nodes cannot ask the dead arbiter: their missing pages become
# misses; the arbiter's own node loses its resolver: its QEMU's remaining
# hashes become misses. Every migration completes with its source's RAM.
arb=
for ((i = 1; i <= N; i++)); do
    (($(pages_stat b "$i" claims_decided) > 0)) && arb=$i
done
[[ -n $arb ]] || fail "no node of site B decided a claim"
for ((i = 1; i <= N; i++)); do
    vm_kill "c$i"
    vm_kill "c${i}b"
done
for ((i = 1; i <= N; i++)); do
    vm_start "d$i" a "$i" "10.77.1.11$i" --qemu "$qemu" --unique-mb 2 \
        --seed "4$i" --page-hash on
done
for ((i = 1; i <= N; i++)); do
    vm_wait_ready "d$i" 120 || fail "guest d$i did not boot"
    vm_start "d${i}b" b "$i" "10.77.1.11$i" --qemu "$qemu" --unique-mb 2 \
        --seed "4$i" --page-hash on --resolver "$(pages_sock b "$i")" \
        --incoming "446$i"
done
decided0=$(pages_stat b "$arb" claims_decided)
for ((i = 1; i <= N; i++)); do
    vm_max_bandwidth "d$i" $((1 << 20))
    vm_migrate_start "d$i" "d${i}b"
done
arbiter_busy() { (($(pages_stat b "$arb" claims_decided) > decided0)); }
wait_for 60 arbiter_busy || fail "b$arb decided no claim of the new guests"
for ((i = 1; i <= N; i++)); do
    assert_eq "migration of d$i when the arbiter dies" active "$(vm_migration_status "d$i")"
done
decided=$(($(pages_stat b "$arb" claims_decided) - decided0))
pages_kill b "$arb"
log "b$arb, the site's claims arbiter, killed after deciding $decided claims of the new guests"
unasked=0
for ((i = 1; i <= N; i++)); do
    wait_for 300 migration_over "d$i" || fail "migration of d$i did not end after the arbiter died"
    assert_eq "migration of d$i after the arbiter died" completed "$(vm_migration_info "d$i" status)"
    cmp -s "$(vm_ram_file "d$i")" "$(vm_ram_file "d${i}b")" ||
        fail "d${i}b: RAM differs from its source's after the arbiter died"
    if ((i != arb)); then
        unasked=$((unasked + $(pages_stat b "$i" claims_unasked)))
    fi
    log "d$i -> b$i: $(vm_migration_info "d$i" page-hash resolved) resolved, $(vm_migration_info "d$i" page-hash misses) misses"
done
((unasked > 0)) || fail "no node fetched a page because the arbiter was unreachable"
log "ok: the arbiter died mid-migration: $N migrations completed with their sources' RAM; the other nodes fetched $unasked missing pages without asking it"
