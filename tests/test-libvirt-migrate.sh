#!/usr/bin/env bash
# Plain `virsh migrate --live` between sites uses page hashes. Two sites
# joined by a 20 ms / 100 Mbit/s WAN; every node runs its own libvirtd
# (own mount namespace, patched QEMU as the emulator) and dht-pagesd
# (at /run/dht-pages/resolver.sock, where the domains' QEMU looks). Site B
# already runs a guest of the same image. In the same run a stock guest
# (x-page-hash off) and a page-hash guest migrate A -> B, then a guest
# whose memory writer keeps dirtying pages. Checked: memory checksums
# after equal before, most non-zero pages resolved on site B (read from
# the destination QEMU after libvirt is done), fewer than half the WAN
# bytes of the stock migration, the guests run on at site B, and nothing
# is left behind at site A. Then the page-hash guest goes back to site A
# over QEMU's TLS channel (virsh migrate --tls), hashes and return path
# inside TLS, after a refused attempt to a node whose certificate another
# CA signed. Last, a tunnelled migration (a pipe, no return path) of that
# guest goes ahead as plain precopy, and the source says why.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/pages.sh"
source "$(dirname "$0")/lib/libvirt.sh"
requires_root
needs virsh nsenter unshare python3

qemu=$(bash "$VC_SRCDIR/qemu-patches/build-qemu.sh") || fail "no patched QEMU"
sites_create 2 2 --delay 20 --rate 100
export VC_LV_QEMU_CONF=$LV_TLS_QEMU_CONF
lv_start_nodes "$qemu" a1 a2 b1 b2 || fail "libvirtd did not start on every node"
log "libvirtd on a1 a2 b1 b2, emulator $qemu"

opts=(--qemu "$qemu" --unique-mb 4)
lv_vm_start gb b 1 10.77.2.101 "${opts[@]}" --page-hash on || fail "cannot start gb"
lv_vm_start g0 a 2 10.77.1.102 "${opts[@]}" --seed 10 || fail "cannot start g0"
lv_vm_start g1 a 1 10.77.1.101 "${opts[@]}" --seed 11 --page-hash on || fail "cannot start g1"
lv_vm_start g2 a 1 10.77.1.103 "${opts[@]}" --seed 12 --page-hash on \
    --dirty-mb 8 --dirty-rate 2000 || fail "cannot start g2"
for n in a1 a2 b1 b2; do
    pages_start "${n:0:1}" "${n:1}" --hash-rate 0 || fail "dht-pagesd on $n did not start"
done
for g in gb g0 g1 g2; do
    vm_wait_ready "$g" 120 || fail "guest $g did not boot"
done
for n in b1 b2; do
    pages_wait_members "${n:0:1}" "${n:1}" 1 60 || fail "site B did not form"
done
pages_wait_indexed b 1 1 || fail "b1 did not index gb"
log "site B indexed $(pages_stat b 1 ram_pages) distinct pages of gb"

declare -A before
for g in g0 g1 g2; do
    before[$g]=$(vm_sums "$g") || fail "$g does not answer"
done

# migrate NAME SRC_SITE SRC_NODE DST_SITE DST_NODE: virsh migrate --live,
# run on the source node as an operator would; prints the WAN bytes.
migrate() {
    local name=$1 w0
    w0=$(wan_bytes a)
    lv_virsh "$2" "$3" migrate --live "$name" "$(lv_uri "$4" "$5")" >&2 ||
        fail "virsh migrate $name $2$3 -> $4$5 failed"
    echo $(($(wan_bytes a) - w0))
    lv_vm_moved "$name" "$4" "$5" || fail "$name is not running on $4$5"
}

# migrated NAME SRC_SITE SRC_NODE: the guest's memory as before, and
# nothing left of it at the source.
migrated() {
    local name=$1 sums
    sums=$(vm_sums "$name") || fail "$name does not answer after migration"
    assert_eq "$name: checksums after migration" "${before[$name]}" "$sums"
    [[ -z $(lv_domains "$2" "$3" | grep -x "$name") ]] ||
        fail "$name still running on $2$3"
    [[ -z $(lv_ram_dir "$name" "$2" "$3") ]] ||
        fail "$name's RAM left behind on $2$3"
}

# info NAME KEY...: a value of query-migrate on the domain's QEMU now.
info() {
    local name=$1 dir
    shift
    dir=$(_vm_dir "$name")
    lv_virsh "$(cat "$dir/site")" "$(cat "$dir/node")" qemu-monitor-command "$name" \
        '{"execute":"query-migrate"}' >"$dir/migrate.json" || return 1
    vm_migration_info "$name" "$@"
}

# jobinfo NAME FIELD: libvirt's completed job statistics, on the
# destination (the source sends them with the migration).
jobinfo() {
    local dir
    dir=$(_vm_dir "$1")
    lv_virsh "$(cat "$dir/site")" "$(cat "$dir/node")" domjobinfo --completed --keep-completed "$1" |
        awk -F': *' -v k="$2" '$1 == k { print $2 }' | awk '{print $1}'
}

stock=$(migrate g0 a 2 b 1)
log "stock: WAN $stock bytes, $(jobinfo g0 'Time elapsed') ms, downtime $(jobinfo g0 'Total downtime') ms"
migrated g0 a 2
assert_eq "stock QEMU reports no page-hash" "" "$(info g0 page-hash)"

hashed=$(migrate g1 a 1 b 2)
sent=$(info g1 page-hash hashes-sent) || fail "cannot query g1 on b2"
resolved=$(info g1 page-hash resolved)
misses=$(info g1 page-hash misses)
full=$(jobinfo g1 'Normal pages')
log "page-hash: WAN $hashed bytes ($((hashed * 100 / stock))% of stock), $(jobinfo g1 'Time elapsed') ms, downtime $(jobinfo g1 'Total downtime') ms"
log "page-hash: $sent hashes, $resolved resolved on site B, $misses misses, $full full pages"
migrated g1 a 1
[[ $sent =~ ^[0-9]+$ && $sent -gt 0 ]] || fail "destination QEMU reports no page-hash counters"
# A page is hashed at most once per migration (hot pages go in full):
# the hashes count the non-zero pages.
nonzero=$sent
((resolved * 100 > nonzero * 80)) || fail "only $resolved of $nonzero non-zero pages resolved on site B"
log "ok: $((resolved * 100 / nonzero))% of $nonzero non-zero pages resolved on site B"
((hashed * 2 < stock)) || fail "page-hash WAN bytes $hashed not below half of stock $stock"
log "ok: WAN bytes $hashed < half of stock $stock"

# The same guest back to site A over QEMU's TLS channel (virsh migrate
# --tls, certificates from a CA made here): site A holds none of its
# pages now, so every hash is a miss asked for on the return path, which
# runs inside TLS too.
# First a2 holds a certificate of another CA: QEMU's TLS handshake must
# refuse the migration, and the guest runs on at b2, unchanged.
lv_tls_certs b2 || fail "cannot make the TLS certificates"
lv_tls_certs --ca rogue a2 || fail "cannot make the rogue certificate"
before[g1]=$(vm_sums g1) || fail "g1 does not answer"
out=$(lv_virsh b 2 migrate --live --tls g1 "$(lv_uri a 2)" 2>&1) &&
    fail "virsh migrate --tls to a node of another CA succeeded"
[[ $(lv_virsh b 2 domstate g1) == running ]] || fail "g1 is not running on b2 after a refused TLS migration"
assert_eq "g1: memory after the refused TLS migration" "${before[g1]}" "$(vm_sums g1)"
log "ok: refused, another CA: $(tail -n 1 <<<"$out")"
lv_tls_certs a2 || fail "cannot make a2's certificate"
w0=$(wan_bytes a)
lv_virsh b 2 migrate --live --tls g1 "$(lv_uri a 2)" >&2 || fail "virsh migrate --tls g1 b2 -> a2 failed"
tls=$(($(wan_bytes a) - w0))
lv_vm_moved g1 a 2 || fail "g1 is not running on a2"
migrated g1 b 2
tls_sent=$(info g1 page-hash hashes-sent)
tls_misses=$(info g1 page-hash misses)
((tls_sent > 0 && tls_misses > 0)) || fail "no page hashes over TLS: $tls_sent hashes, $tls_misses misses"
log "ok: virsh migrate --tls with page hashes: WAN $tls bytes, $tls_sent hashes, $tls_misses misses asked on the return path, downtime $(jobinfo g1 'Total downtime') ms"

# A guest dirtying 2,000 pages/s: its stable regions survive, it runs on.
w1=$(vm_agent g2 info | awk -F= '$1 == "dirty_pages_written" {print $2}')
dirty=$(migrate g2 a 1 b 1)
log "dirtying guest: WAN $dirty bytes, $(info g2 page-hash resolved) resolved, $(info g2 page-hash misses) misses, downtime $(jobinfo g2 'Total downtime') ms"
sums=$(vm_sums g2) || fail "g2 does not answer after migration"
assert_eq "g2: payload after migration" "$(grep '^payload' <<<"${before[g2]}")" "$(grep '^payload' <<<"$sums")"
assert_eq "g2: unique region after migration" "$(grep '^unique' <<<"${before[g2]}")" "$(grep '^unique' <<<"$sums")"
w2=$(vm_agent g2 info | awk -F= '$1 == "dirty_pages_written" {print $2}')
sleep 1
w3=$(vm_agent g2 info | awk -F= '$1 == "dirty_pages_written" {print $2}')
((w2 > w1 && w3 > w2)) || fail "g2's writer stopped: $w1, $w2, $w3"
log "ok: g2's writer runs on at site B ($w1 -> $w2 -> $w3 pages)"
[[ $(lv_virsh b 1 domstate g2) == running ]] || fail "g2 not running on b1"

# libvirt's tunnelled migration gives QEMU a pipe, which cannot carry the
# return path page hashes need: the migration goes ahead as plain
# precopy, and the source says so in its log and in query-migrate (read
# while the migration runs, slowed down so that there is time to).
dir=$(_vm_dir g1)
before[g1]=$(vm_sums g1) || fail "g1 does not answer"
lv_virsh a 2 migrate --live --p2p --tunnelled --bandwidth 16 g1 "$(lv_uri b 1)" \
    >"$dir/tunnelled.out" 2>&1 &
mig=$!
reason=
while kill -0 "$mig" 2>/dev/null; do
    [[ -z $reason ]] && reason=$(info g1 page-hash off-reason 2>/dev/null)
    sleep 0.3
done
wait "$mig" || fail "tunnelled migration with x-page-hash on failed: $(cat "$dir/tunnelled.out")"
lv_vm_moved g1 b 1 || fail "g1 is not running on b1 after the tunnelled migration"
migrated g1 a 2
[[ $reason == *"no return path"* ]] ||
    fail "query-migrate on the source did not say why hashes are off: '$reason'"
qlog=$(lv_root a 2)/var/log/libvirt/qemu/g1.log
grep -q "x-page-hash is off for this migration" "$qlog" ||
    fail "the source QEMU's log does not say that x-page-hash is off: $(tail -n 3 "$qlog")"
assert_eq "tunnelled: hashes the destination received" 0 "$(info g1 page-hash hashes-sent)"
log "ok: tunnelled migration as plain precopy, $(jobinfo g1 'Time elapsed') ms; source: $reason"
