#!/usr/bin/env bash
# Benchmark (nothing asserted): which zstd level the patched QEMU should
# use for the pages a page-hash migration sends in full
# (migration.x-page-hash-zstd-level, qemu-patches/0008).
#
#   bench/zstd-levels.sh
#
# Boots, as bench/migration-bench.sh does, 2 guests of the image on site B
# and 2 cluster guests on site A (their own unique regions), then runs
# bench/page-zstd on their RAM: the pages each cluster guest misses on
# site B, compressed as QEMU sends them (one stream per guest, flushed per
# page), per level; plus one frame per page (no history) at the first
# level; and for the "other" missing pages (kernel data: neither random
# nor mostly zero) one frame each without and with the page at the same
# offset of the first site-B guest as zstd's reference (what delta
# encoding against a look-alike page could save), with the guest's own
# page before it as reference (a page both ends hold), and as rsync-style
# block sums would send them (the source lacks the look-alike): delta
# encoding is not built, these say why.
# Prints per level the bytes, the ratio to raw, the compressor's speed,
# and the time to send those pages at 100 Mbit/s and at 1 Gbit/s if
# compressing and sending do not overlap (CPU + bytes / rate: the
# migration thread compresses, then writes), and the best level for each.
# About 2 minutes as root.
#
# Knobs (environment): BENCH_MEM (256 MiB per guest), BENCH_UNIQUE_MB
# (16), BENCH_LEVELS (1,2,3,5,9).

source "$(dirname "$0")/../tests/lib/functions.sh"
source "$(dirname "$0")/../tests/lib/sites.sh"
source "$(dirname "$0")/../tests/lib/guests.sh"

MEM=${BENCH_MEM:-256}
UNIQUE_MB=${BENCH_UNIQUE_MB:-16}
LEVELS=${BENCH_LEVELS:-1,2,3,5,9}
tool=$VC_BUILDDIR/bench/page-zstd

requires_root
[[ -x $tool ]] || fail "'$tool' not built (ninja -C $VC_BUILDDIR)"
QEMU=$(bash "$VC_SRCDIR/qemu-patches/build-qemu.sh") || fail "no patched QEMU"

sites_create 2 2
shape=(--qemu "$QEMU" --mem "$MEM" --unique-mb "$UNIQUE_MB")
vm_start zb1 b 1 10.77.2.101 "${shape[@]}" --seed 201
vm_start zb2 b 2 10.77.2.102 "${shape[@]}" --seed 202
vm_start zc1 a 1 10.77.1.101 "${shape[@]}" --seed 101
vm_start zc2 a 2 10.77.1.102 "${shape[@]}" --seed 102
for g in zb1 zb2 zc1 zc2; do
    vm_wait_ready "$g" 300 || fail "guest $g did not boot"
done
out=$("$tool" --levels "$LEVELS" \
    --site "$(vm_ram_file zb1)" --site "$(vm_ram_file zb2)" \
    --cluster "$(vm_ram_file zc1)" --cluster "$(vm_ram_file zc2)") || fail "page-zstd failed"
echo "$out"
awk '
    function kv(k,   i, p) { for (i = 2; i <= NF; i++) { split($i, p, "="); if (p[1] == k) return p[2] } }
    $1 == "page_zstd" { raw = kv("raw_bytes"); fl = kv("frame_per_page_level"); fb = kv("frame_per_page_bytes")
        printf "%d missing pages, %.1f MiB raw; one frame per page at level %d: %.1f MiB\n",
            kv("missing_pages"), raw / 1048576, fl, fb / 1048576
        op = kv("other_pages"); of = kv("other_frame_bytes"); od = kv("other_delta_bytes")
        printf "delta: the %d other pages (%.1f MiB raw) take %.2f MiB as one frame each, %.2f MiB with the same-offset page of zb1 as reference: %.0f%% less\n",
            op, op * 4096 / 1048576, of / 1048576, od / 1048576, of ? (of - od) * 100 / of : 0
        opv = kv("other_prev_bytes")
        printf "delta against a page both ends hold, the guest'"'"'s page before it: %.2f MiB: %.0f%% less\n",
            opv / 1048576, of ? (of - opv) * 100 / of : 0
        other = of }
    $1 == "page_zstd_sig" { up = kv("up_bytes"); dn = kv("down_bytes")
        printf "delta by block sums (the source lacks the reference), %d-byte blocks: %.2f MiB down (%d pages sent again) + %.2f MiB of sums up = %.2f MiB: %.0f%% %s than one frame each\n",
            kv("block"), dn / 1048576, kv("failed_pages"), up / 1048576, (dn + up) / 1048576,
            other ? ((other > dn + up ? other - dn - up : dn + up - other) * 100 / other) : 0, dn + up <= other ? "less" : "more" }
    $1 == "page_zstd_level" && !titled { titled = 1
        print "| level | MiB | x raw | MB per CPU s | s at 100 Mbit/s | s at 1 Gbit/s |"
        print "|---:|---:|---:|---:|---:|---:|" }
    $1 == "page_zstd_level" { b = kv("bytes"); c = kv("cpu_s")
        t1 = c + b * 8 / 100e6; t2 = c + b * 8 / 1000e6
        printf "| %d | %.1f | %.3f | %d | %.2f | %.2f |\n", kv("level"), b / 1048576, kv("ratio"), kv("mb_per_cpu_s"), t1, t2
        if (best1 == "" || t1 < bt1) { best1 = kv("level"); bt1 = t1 }
        if (best2 == "" || t2 < bt2) { best2 = kv("level"); bt2 = t2 } }
    END { printf "raw: %.2f s at 100 Mbit/s, %.2f s at 1 Gbit/s\n", raw * 8 / 100e6, raw * 8 / 1000e6
        printf "best level: %d at 100 Mbit/s, %d at 1 Gbit/s\n", best1, best2 }' <<<"$out"
