#!/usr/bin/env python3
"""Report of bench/migration-bench.sh: markdown table, goals, plot.

    migration-report.py --raw RAW --runs DIR --command CMD --md FILE --png FILE

RAW holds the benchmark's raw lines (`kind key=value...`); DIR one
`<variant>-<method>.json` per run (bench/cluster-migrate.py's output).
Writes the markdown report (also printed on stdout), the PNG through
gnuplot, and beside the report a `.json` file with every number it used.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

MIB = 1 << 20
PAGE = 4096
RECORD = 40  # a page-hash record: be64 offset and flags, 32-byte hash
ZRECORD = 10  # a page in the zstd stream: be64 offset and flags, be16 length
METHODS = ["stock", "xbzrle", "multifd-zstd", "multifd-zstd1",
           "page-hash-raw", "page-hash"]
PAGE_HASH = ["page-hash-raw", "page-hash"]
MULTIFD = ["multifd-zstd", "multifd-zstd1"]
TITLES = {"stock": "stock precopy", "xbzrle": "XBZRLE",
          "multifd-zstd": "multifd + zstd", "multifd-zstd1":
          "multifd + zstd level 1", "page-hash-raw": "page-hash, raw pages",
          "page-hash": "page-hash + compression",
          "page-hash-delta": "page-hash + compression + delta",
          "bound": "lower bound"}


def parse_raw(path):
    lines = []
    for text in open(path):
        text = text.strip()
        if not text:
            continue
        toks = shlex.split(text)
        kv = {}
        for t in toks[1:]:
            k, _, v = t.partition("=")
            kv[k] = v
        lines.append((toks[0], kv, text))
    return lines


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def ints(v):
    return [int(x) for x in v.split(",")] if v else []


def load(a):
    raw = parse_raw(a.raw)
    scen = next((kv for k, kv, _ in raw if k == "scenario"), None)
    if scen is None:
        sys.exit(f"migration-report: no scenario line in '{a.raw}'")
    machine = next((kv for k, kv, _ in raw if k == "machine"), {})
    runs = {}
    for kind, kv, _ in raw:
        if kind == "run":
            r = runs.setdefault(kv["id"], {})
            r.update(kv)
            # Runs made before page-hash-raw existed: their page-hash sent
            # the pages raw (a QEMU before qemu-patches/0008, no level).
            args = kv.get("qemu_args", "")
            if (kv.get("method") == "page-hash"
                    and "x-page-hash-zstd-level" not in args):
                r["method"] = "page-hash-raw"
        elif kind == "lower_bound":
            runs.setdefault(kv["id"], {})["lb"] = kv
        elif kind == "wan":
            runs.setdefault(kv["id"], {})["wan"] = kv
        elif kind == "pagesd":
            runs.setdefault(kv["id"], {}).setdefault("pagesd", []).append(kv)
    for rid, r in runs.items():
        path = os.path.join(a.runs, rid + ".json")
        try:
            r["mig"] = json.load(open(path))
        except (OSError, ValueError):  # the run failed before its report
            r["mig"] = {"guests": []}
        r["vms"] = summarize(r)
    return raw, scen, machine, runs


def summarize(r):
    """Per-run numbers: cluster time, downtimes, page-hash counters."""
    gs = r["mig"]["guests"]
    s = {"status": [g["status"] for g in gs]}
    done = [g["dst_done"] for g in gs]
    s["all_done"] = bool(gs) and all(g["status"] == "completed" for g in gs)
    s["total_s"] = max(d for d in done if d is not None) if any(
        d is not None for d in done) else None
    s["seen_down_ms"] = [
        None if g["dst_done"] is None or g["src_stop"] is None
        else round((g["dst_done"] - g["src_stop"]) * 1000) for g in gs]
    s["qemu_down_ms"] = [g["info"].get("downtime") for g in gs]
    s["qemu_total_ms"] = [g["info"].get("total-time") for g in gs]
    s["src_done_s"] = [g["src_done"] for g in gs]
    s["issued_s"] = [g["issued"] for g in gs]
    ram = [g["info"].get("ram", {}) for g in gs]
    for k in ("transferred", "normal", "duplicate", "dirty-sync-count",
              "multifd-bytes"):
        s[k] = [x.get(k, 0) for x in ram]
    ph = [g["info"].get("page-hash", {}) for g in gs]
    for k in ("hashes-sent", "resolved", "misses", "miss-pages-sent",
              "outstanding", "bytes-saved", "compressed-pages",
              "compressed-bytes"):
        s["ph-" + k] = [x.get(k, 0) for x in ph]
    # None where the QEMU does not report it (before qemu-patches/0009).
    s["ph-hot-pages"] = [x.get("hot-pages") for x in ph]
    xb = [g["info"].get("xbzrle-cache", {}) for g in gs]
    for k in ("bytes", "pages", "cache-miss", "overflow"):
        s["xb-" + k] = [x.get(k, 0) for x in xb]
    last = [g.get("last_active", {}) for g in gs]
    s["last-remaining"] = [x.get("ram", {}).get("remaining") for x in last]
    s["last-outstanding"] = [x.get("page-hash", {}).get("outstanding")
                             for x in last]
    return s


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    return f"{v:,.{nd}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def mx(v):
    v = [x for x in v if x is not None]
    return max(v) if v else None


def per_vm(v):
    return " / ".join("n/a" if x is None else f"{x:,}" for x in v)


class Variant:
    def __init__(self, name, runs, scen):
        self.name = name
        self.scen = scen
        self.runs = {r["method"]: r for r in runs.values()
                     if r.get("variant") == name}
        self.rate = float(scen["wan_mbit"])
        self.rtt = float(scen["rtt_ms"])
        lbs = [int(r["lb"]["bytes"]) for r in self.runs.values() if "lb" in r]
        self.lb = sum(lbs) / len(lbs) if lbs else None
        self.lb_range = (min(lbs), max(lbs)) if lbs else None
        self.lb_s = None if self.lb is None else self.lb * 8 / (self.rate * 1e6)
        # The method the goals are about: page-hash + compression, else
        # what the run has.
        self.ph = next((m for m in reversed(PAGE_HASH) if m in self.runs),
                       None)

    def wan(self, m):
        r = self.runs.get(m)
        return None if r is None else int(r["wan_bytes"])

    def total(self, m):
        r = self.runs.get(m)
        return None if r is None else r["vms"]["total_s"]

    def down(self, m):
        r = self.runs.get(m)
        return None if r is None else mx(r["vms"]["seen_down_ms"])

    def qdown(self, m):
        r = self.runs.get(m)
        return None if r is None else mx(r["vms"]["qemu_down_ms"])

    def own_lb(self, m):
        r = self.runs.get(m)
        return int(r["lb"]["bytes"]) if r and "lb" in r else self.lb


def cpu_src(r):
    """Source CPU s, and in brackets net of what the guests use anyway
    (their rate measured over 3 s before the migration, times the
    cluster time)."""
    c = float(r["cpu_src_s"])
    t = r["vms"]["total_s"]
    g = num(r.get("guest_cpu_per_s"))
    if t is None or g is None:
        return fmt(c, 1)
    return f"{fmt(c, 1)} ({fmt(max(c - g * t, 0), 1)})"


def table(v):
    out = []
    out.append("| method | WAN MiB | x stock | x bound | cluster time s "
               "| x stock | max downtime ms | downtime per VM ms (STOP to "
               "loaded) | QEMU downtime per VM ms "
               "| CPU s source (net of guests) "
               "| CPU s destination (+ dht-pagesd) | completed |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|")
    st_w, st_t = v.wan("stock"), v.total("stock")
    for m in METHODS:
        r = v.runs.get(m)
        if r is None:
            continue
        s = r["vms"]
        w = int(r["wan_bytes"])
        dst = float(r["cpu_dst_s"])
        ph = float(r.get("cpu_pagesd_s", 0) or 0)
        cpu_dst = fmt(dst + ph, 1) + (f" ({fmt(dst, 1)} + {fmt(ph, 1)})"
                                       if m in PAGE_HASH else "")
        out.append(
            f"| {TITLES[m]} | {fmt(w / MIB)} | {fmt(ratio(w, st_w), 2)} "
            f"| {fmt(ratio(w, v.own_lb(m)), 2)} | {fmt(s['total_s'], 1)} "
            f"| {fmt(ratio(s['total_s'], st_t), 2)} "
            f"| {fmt(mx(s['seen_down_ms']), 0)} | {per_vm(s['seen_down_ms'])} "
            f"| {per_vm(s['qemu_down_ms'])} | {cpu_src(r)} "
            f"| {cpu_dst} | {sum(x == 'completed' for x in s['status'])}/"
            f"{len(s['status'])} |")
    out.append(f"| {TITLES['page-hash-delta']} | not built | | | | | | | | | "
               f"| not measured |")
    if v.lb is not None:
        out.append(
            f"| lower bound | {fmt(v.lb / MIB)} | {fmt(ratio(v.lb, st_w), 2)} "
            f"| 1.00 | {fmt(v.lb_s, 1)} | {fmt(ratio(v.lb_s, st_t), 2)} "
            f"| | | | | | |")
    return out


def verdict(ok, text):
    return f"**{'met' if ok else 'missed'}**: {text}"


def over(val, lim, text):
    """The verdict on val <= lim, and by how much it is missed."""
    return verdict(val <= lim, text + ("" if val <= lim else
                                       f", {val / lim:.2f}x the goal"))


def goals(v):
    out = []
    m = v.ph
    if m is None:
        return ["- page-hash not measured in this run"]
    t = TITLES[m]
    w, st, lb = v.wan(m), v.wan("stock"), v.own_lb(m)
    if m != "page-hash":
        out.append(f"- {TITLES['page-hash']} not measured in this run: the "
                   f"goals are those of {t}")
    if st is None:
        out.append("- stock not measured in this run: no goal against it")
    if lb:
        k = 1.0 if v.name == "static" else 1.5
        miss = "" if w <= k * lb else f", {fmt((w - k * lb) / MIB)} MiB over"
        out.append(f"- WAN bytes <= {k:.1f}x the lower bound: " + over(
            w, k * lb, f"{w / lb:.3f}x ({fmt(w / MIB)} MiB against "
            f"{fmt(lb / MIB)} MiB)" + miss))
    if st:
        out.append("- WAN bytes <= 0.15x stock: " + over(
            w, 0.15 * st, f"{w / st:.3f}x ({fmt(w / MIB)} MiB against "
            f"{fmt(st / MIB)} MiB)" + ("" if w <= 0.15 * st else
                                      f", {fmt((w - 0.15 * st) / MIB)} MiB "
                                      f"over")))
    mfs = [(v.wan(x), x) for x in MULTIFD if v.wan(x) is not None]
    if mfs:
        mf, mm = min(mfs)
        out.append("- fewer WAN bytes than multifd + zstd (the better of its "
                   f"levels, {TITLES[mm]}): " + verdict(
                       w < mf, f"{fmt(w / MIB)} MiB against {fmt(mf / MIB)} "
                       f"MiB ({w / mf:.3f}x)"))
    tm, ts = v.total(m), v.total("stock")
    if tm is not None and ts:
        note = ("" if v.rate in (100, 1000) else
                " (the goals are stated at 100 Mbit/s and 1 Gbit/s)")
        out.append("- cluster time <= 0.25x stock: " + over(
            tm, 0.25 * ts, f"{tm / ts:.3f}x ({fmt(tm, 1)} s against "
            f"{fmt(ts, 1)} s)" + ("" if tm <= 0.25 * ts else
                                 f", {fmt(tm - 0.25 * ts, 1)} s over") + note))
    d, ds = v.down(m), v.down("stock")
    if d is not None and ds is not None:
        out.append(
            "- max downtime <= stock's (source STOP to destination "
            "loaded): " + verdict(
                d <= ds, f"{d:,} ms against {ds:,} ms"
                + ("" if d <= ds else f", {d - ds:,} ms over")))
    if d is not None and v.name == "static":
        out.append("- max downtime <= 100 ms for the quiet guests: " + verdict(
            d <= 100, f"{d:,} ms" + ("" if d <= 100 else
                                     f", {d - 100:,} ms over")))
    qd, qds = v.qdown(m), v.qdown("stock")
    if qd is not None and qds is not None:
        out.append("- the same against stock by QEMU's own downtime figure: "
                   + verdict(qd <= qds, f"{qd:,} ms against {qds:,} ms"))
    return out


def anchors(v):
    m = v.ph
    if m is None:
        return []
    w, st = v.wan(m), v.wan("stock")
    t, ts = v.total(m), v.total("stock")
    if None in (w, st, t, ts) or not st or not ts:
        return []
    return [f"- Published anchors: Shrinker -30-40% WAN bytes and -20% time; "
            f"gang migration with dedup (GMGD) -65% traffic. Here "
            f"{TITLES[m]}: {(w / st - 1) * 100:+.0f}% WAN bytes and "
            f"{(t / ts - 1) * 100:+.0f}% time against stock."]


def zstd_level(r):
    """The page-hash stream's zstd level of run r (0: raw pages)."""
    mt = re.search(r"x-page-hash-zstd-level=(\d+)", r.get("qemu_args", ""))
    if mt:
        return int(mt.group(1))
    return 0 if r.get("method") == "page-hash-raw" else 1


def breakdown(v, m):
    """Where page-hash's WAN bytes went, against the bound's parts."""
    r = v.runs.get(m)
    if r is None or "lb" not in r:
        return []
    s, lb = r["vms"], r["lb"]
    w = int(r["wan_bytes"])
    hashes = sum(s["ph-hashes-sent"])
    misses = sum(s["ph-misses"])
    miss_sent = sum(s["ph-miss-pages-sent"])
    zpages = sum(s["ph-compressed-pages"])
    zbytes = sum(s["ph-compressed-bytes"])
    hot = (None if all(x is None for x in s["ph-hot-pages"])
           else sum(x or 0 for x in s["ph-hot-pages"]))
    normal = sum(s["normal"])
    stream = sum(s["transferred"])
    nonzero = sum(ints(lb["nonzero"]))
    on_site = sum(ints(lb["on_site"]))
    missing = sum(ints(lb["missing"]))
    distinct = int(lb["missing_distinct"])
    shared = int(lb["missing_shared"])
    bound_note = (
        f"the bound's missing pages: {distinct:,} distinct ({missing:,} "
        f"counted per guest, {shared:,} held by more than one cluster "
        f"guest), zstd -{lb['zstd_level']} makes "
        f"{fmt(int(lb['missing_raw_bytes']) / MIB)} MiB of them "
        f"{fmt(int(lb['zstd_bytes']) / MIB)} MiB")
    hot_note = "" if hot is None else f", {hot:,} hot"
    parts = [
        ("hash records sent (~40 B each)", hashes * RECORD,
         f"{hashes:,} hashes; the bound counts {nonzero:,} non-zero pages "
         f"x 40 B = {fmt(nonzero * RECORD / MIB)} MiB")]
    if zpages:
        # Every page sent in full went in the zstd stream (a page zstd
        # cannot take goes raw, and is counted below).
        level = zstd_level(r)
        rest = max(zpages - miss_sent - (hot or 0), 0)
        parts.append(
            (f"pages sent in full, in the zstd stream (level {level}; "
             f"misses, hot pages, drain, final stage)",
             zbytes + zpages * ZRECORD,
             f"{zpages:,} pages ({fmt(zpages * PAGE / MIB)} MiB raw, "
             f"{zbytes / zpages:,.0f} B a page on average, 10 B of record "
             f"each): {miss_sent:,} for {misses:,} misses{hot_note}, "
             f"{rest:,} other; {bound_note}"))
        parts.append(("full pages sent raw", (normal - zpages) * PAGE,
                      f"{normal - zpages:,} pages"))
        full = zbytes + zpages * ZRECORD + (normal - zpages) * PAGE
    else:
        parts.append(("pages the destination asked for (misses, sent raw)",
                      miss_sent * PAGE,
                      f"{miss_sent:,} pages for {misses:,} misses; "
                      + bound_note))
        parts.append(("other full pages (final stage, pages dirtied again"
                      + (", hot pages" if hot else "") + ")",
                      (normal - miss_sent) * PAGE,
                      f"{normal - miss_sent:,} pages" + (
                          f", {hot:,} of the full pages hot" if hot else "")))
        full = normal * PAGE
    parts += [
        ("rest of the QEMU stream (zero-page records, headers, devices)",
         stream - hashes * RECORD - full, ""),
        ("QEMU stream, source's `ram transferred`", stream, ""),
        ("WAN beyond the stream: Ethernet/IP/TCP headers, ACKs, return path",
         w - stream, f"{(w - stream) / stream * 100:.1f}% of the stream"
         if stream else ""),
        ("WAN bytes, measured", w, ""),
    ]
    out = ["| part | MiB | |", "|---|---:|---|"]
    for name, b, note in parts:
        out.append(f"| {name} | {fmt(b / MIB, 2)} | {note} |")
    out.append("")
    extra = misses - distinct
    if "zstd_random" in lb:
        def kind(k):
            n = int(lb["missing_" + k])
            return (f"{n:,} pages, {fmt(n * PAGE / MIB)} MiB raw, "
                    f"{fmt(int(lb['zstd_' + k]) / MIB, 2)} MiB with zstd")
        out.append(
            f"What the bound's {distinct:,} distinct missing pages are, by "
            f"their bytes: random: {kind('random')} (the 4 unique regions "
            f"are {4 * int(v.scen['unique_mib']) * 256:,} pages); at least "
            f"90% zero bytes: {kind('sparse')} (what the writer leaves in "
            f"its pages); other: {kind('other')}; an *other* page differs "
            f"from the page at the same offset in a site-B guest in "
            f"{int(lb.get('other_diff_bytes_median', 0)):,} of 4,096 bytes "
            f"(median): by their contents kernel data (pointers into the "
            f"direct map), laid out alike in every guest but with other "
            f"pointers and counters. " + (
                f"With {TITLES[m]} the pages that go in full cross in its "
                f"zstd stream, each compressed against the pages before it "
                f"(not against site B's pages)." if zpages else
                f"With {TITLES[m]} every page asked for crosses raw."))
        out.append("")
    out.append(
        f"Misses against the bound: {misses:,} misses, {distinct:,} distinct "
        f"pages no guest of site B holds: {extra:+,} "
        f"({fmt(extra * PAGE / MIB, 2)} MiB as raw pages). Of the cluster's "
        f"{nonzero:,} non-zero pages {on_site:,} "
        f"({on_site / nonzero * 100:.1f}%) were on site B before the "
        f"migration; QEMU reports {sum(s['ph-resolved']):,} resolved. "
        f"Hashes sent beyond one per non-zero page: {hashes - nonzero:+,} "
        f"(pages hashed again after the guest wrote them)" + (
            "; hot pages not reported (a QEMU before qemu-patches/0009)."
            if hot is None else
            f"; {hot:,} pages went hot (written after their hash was sent, "
            f"then sent in full without a new hash)."))
    if s["last-outstanding"] and any(x is not None
                                     for x in s["last-outstanding"]):
        out.append("")
        out.append(
            "Last poll (every 0.5 s) before each source stopped its guest: "
            f"outstanding hashes {per_vm(s['last-outstanding'])}, RAM "
            f"remaining bytes {per_vm(s['last-remaining'])}.")
    return out


def traffic(v):
    """Each method's WAN traffic by direction, drops and retransmissions."""
    out = []
    for m in METHODS:
        r = v.runs.get(m)
        if r is None or "wan" not in r:
            continue
        w = {k: int(x) for k, x in r["wan"].items() if k != "id"}
        a2b, b2a = w.get("a_rx_bytes", 0), w.get("a_tx_bytes", 0)
        drops = w.get("b_drop_queue", 0) + w.get("b_drop_loss", 0)
        segs, re = w.get("a_tcp_out_segs", 0), w.get("a_tcp_retrans_segs", 0)
        out.append(
            f"- {TITLES[m]}: A to B {fmt(a2b / MIB)} MiB offered to the link, "
            f"{fmt(w.get('b_tx_bytes', 0) / MIB)} MiB delivered "
            f"({drops:,} frames dropped by the WAN queue); B to A "
            f"{fmt(b2a / MIB)} MiB; site A's TCP retransmitted {re:,} of "
            f"{segs:,} segments ({re / segs * 100 if segs else 0:.1f}%).")
    return out


def others(v):
    """Counters of the other methods that explain their bytes."""
    out = []
    for m in ["stock", "xbzrle"] + MULTIFD:
        r = v.runs.get(m)
        if r is None:
            continue
        s = r["vms"]
        line = (f"- {TITLES[m]}: {sum(s['normal']):,} full pages, "
                f"{sum(s['duplicate']):,} zero pages, stream "
                f"{fmt(sum(s['transferred']) / MIB)} MiB, dirty syncs "
                f"{per_vm(s['dirty-sync-count'])}")
        if m == "xbzrle":
            line += (f"; XBZRLE {sum(s['xb-pages']):,} pages encoded in "
                     f"{fmt(sum(s['xb-bytes']) / MIB, 2)} MiB, cache misses "
                     f"{sum(s['xb-cache-miss']):,}, overflows "
                     f"{sum(s['xb-overflow']):,}")
        if m in MULTIFD:
            line += (f"; multifd bytes {fmt(sum(s['multifd-bytes']) / MIB)} "
                     f"MiB")
        out.append(line)
    return out


def plot(variants, png, scen):
    """Grouped bars per method: WAN MiB, cluster time, max downtime."""
    names = [v.name for v in variants]
    rows = [m for m in METHODS if any(m in v.runs for v in variants)]
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "d.dat")
        with open(dat, "w") as f:
            for m in rows:
                vals = []
                for v in variants:
                    w, t, d = v.wan(m), v.total(m), v.down(m)
                    vals += [w / MIB if w is not None else "NaN",
                             t if t is not None else "NaN",
                             d if d is not None else "NaN"]
                f.write(f'"{TITLES[m]}" ' + " ".join(map(str, vals)) + "\n")
        colors = ["#1f77b4", "#ff7f0e"]
        gp = [f"set terminal pngcairo size 1800,560 font 'sans,10'",
              f"set output '{png}'",
              "set style data histograms",
              "set style histogram clustered gap 1",
              "set style fill solid 0.85 border -1",
              "set boxwidth 0.9", "set grid ytics", "set yrange [0:*]",
              "set xtics rotate by -20", "set key top right",
              f"set multiplot layout 1,3 title 'Virtual cluster of 4 guests, "
              f"site A -> site B, WAN {scen['wan_mbit']} Mbit/s, "
              f"{scen['rtt_ms']} ms RTT (dashed: lower bound per variant)'"]
        panels = [("WAN MiB", 0), ("cluster time s", 1),
                  ("max downtime ms (STOP to loaded)", 2)]
        for title, col in panels:
            gp.append("unset arrow; unset label")
            gp.append(f"set title '{title}'")
            for i, v in enumerate(variants):
                y = None
                if col == 0 and v.lb is not None:
                    y = v.lb / MIB
                elif col == 1 and v.lb_s is not None:
                    y = v.lb_s
                if y is not None:
                    gp.append(f"set arrow from graph 0, first {y} to graph 1, "
                              f"first {y} nohead dt 2 lw 2 lc rgb "
                              f"'{colors[i % 2]}' front")
            series = []
            for i, v in enumerate(variants):
                c = 2 + 3 * i + col
                series.append(
                    f"'{dat}' using {c}:xtic(1) title '{v.name}' "
                    f"lc rgb '{colors[i % 2]}'" if i == 0 else
                    f"'' using {c} title '{v.name}' lc rgb '{colors[i % 2]}'")
            gp.append("plot " + ", ".join(series))
        gp.append("unset multiplot")
        subprocess.run(["gnuplot"], input="\n".join(gp).encode(), check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    a = ap.parse_args()
    raw, scen, machine, runs = load(a)
    order = []
    for r in runs.values():
        if r.get("variant") and r["variant"] not in order:
            order.append(r["variant"])
    variants = [Variant(n, runs, scen) for n in order]
    wall = next((kv for k, kv, _ in raw if k == "bench"), {}).get("wall_s")
    qemu_key = os.path.basename(os.path.dirname(scen["qemu"]))
    TITLES["multifd-zstd"] = f"multifd + zstd level {scen['zstd_level']}"
    mf = (f"{scen['multifd_channels']} channels, via "
          f"`-global migration.multifd-zstd-level`")
    ph = "dht-pagesd on b1..b4, --hash-rate 0"
    about = {
        "stock": "x-page-hash off",
        "xbzrle": f"cache {scen['xbzrle_cache_mib']} MiB",
        "multifd-zstd": mf, "multifd-zstd1": mf,
        "page-hash-raw": f"{ph}; the pages that go in full raw, "
                         f"x-page-hash-zstd-level=0 or a QEMU before "
                         f"qemu-patches/0008",
        "page-hash": f"{ph}; the pages that go in full in a zstd stream, "
                     f"x-page-hash-zstd-level=1 (qemu-patches/0008); a page "
                     f"the guest writes after its hash was sent goes in "
                     f"full, without a new hash (0009)"}

    md = ["# Wide-area migration of a virtual cluster: benchmark results", "",
          "Not a test: every method measured side by side in one run, "
          "nothing asserted. Generated by `bench/migration-report.py` from "
          "the run's raw lines (below).", "", "## Command", "",
          f"    {a.command}", "",
          f"as root; wall time {int(wall) // 60} min {int(wall) % 60} s." if wall
          else "", "", "## Machine", "",
          f"- {machine.get('nproc')} CPUs, `{machine.get('cpu')}`, "
          f"{machine.get('mem_gib')} GiB RAM, kernel {machine.get('kernel')}; "
          f"guests under {scen['accel'].upper()}.",
          f"- Date: {machine.get('date')} (the machine's clock).",
          "- Load: " + "; ".join(
              f"{kv['when']}: {kv['loadavg']} ({kv['busy']})"
              for k, kv, _ in raw if k == "machine_load") + ".",
          f"- QEMU: the patched 7.2 of `qemu-patches/`, key `{qemu_key}` "
          f"(`/var/cache/vcluster/qemu/bin/{qemu_key}/`), for every method.",
          "", "## Scenario", "",
          f"- Two sites of 4 nodes (tests/lib/sites.sh) joined by the "
          f"emulated WAN: {scen['wan_mbit']} Mbit/s, {scen['rtt_ms']} ms RTT.",
          f"- Site B already runs {scen['site_b_guests']} guests of the image "
          f"(b1, b2). A virtual cluster of {scen['guests']} guests "
          f"(a1..a4) migrates to b1..b4, all 4 migrations issued at once.",
          f"- Every guest: {scen['mem_mib']} MiB, the image's 32 MiB payload "
          f"of Debian files (shared), {scen['unique_mib']} MiB unique region "
          f"(random, per guest). Variant *dirty*: the cluster's guests also "
          f"run a writer dirtying {scen['dirty_pages_per_s']} pages/s at "
          f"random in a {scen['dirty_mib']} MiB region (8 bytes a write).",
          "- Methods, each on fresh sites and guests: " + "; ".join(
              f"{TITLES[m]} ({about[m]})" for m in METHODS
              if any(m in v.runs for v in variants)) + ". QEMU defaults "
          "otherwise (downtime limit 300 ms, no bandwidth limit).",
          f"- **{TITLES['page-hash-delta']} is not built**: page-hash's zstd "
          f"stream compresses each page sent in full against the pages "
          f"sent before it, not against the like pages site B holds "
          f"(delta encoding). Not built: `bench/zstd-levels.sh` measures "
          f"it apart, at most 2% of what crosses with a reference the "
          f"source holds (bench/results/zstd-levels.md).",
          f"- Lower bound (bench/lower-bound.py, from the RAM files right "
          f"before the migration): the distinct non-zero pages of the 4 "
          f"guests that neither site-B guest holds, concatenated and "
          f"compressed with `zstd -{scen['zstd_level']}`, plus 40 bytes "
          f"(offset + SHA-256) per non-zero page of the 4 guests; time = "
          f"that over the link rate. Each run computes it on its own guests; "
          f"the *x bound* column uses the run's own, the bound row their "
          f"mean. Frame headers are not in the bound, they are in the WAN "
          f"bytes.", "",
          "What the columns are: *WAN MiB*: rx + tx bytes of site A's WAN "
          "interface (the counters, not QEMU's figures) over the migration. "
          "*Cluster time*: from the first `migrate` command until the last "
          "destination reported its migration completed (all bytes "
          "loaded). *Downtime (STOP to loaded)*: from the source's STOP "
          "event to its destination's completion, from QEMU's event "
          "timestamps; *QEMU downtime* is the source's own `downtime`, "
          "which stops counting when the last bytes are in its socket. *CPU "
          "s*: utime + stime of the 4 source QEMUs and of the 4 destination "
          "QEMUs (plus the 4 dht-pagesd for page-hash) over the migration; "
          "source CPU includes the guests' own (TCG) CPU, and in brackets "
          "it is net of it (the guests' rate over 3 s before the "
          "migration, times the cluster time).", ""]
    md += ["## Results", "", f"![plot]({os.path.basename(a.png)})", ""]
    for v in variants:
        md += [f"### Variant: {v.name}", ""]
        md += table(v)
        md += [""]
        if v.lb_range and v.lb_range[0] != v.lb_range[1]:
            md += [f"Lower bound over the runs of this variant: "
                   f"{fmt(v.lb_range[0] / MIB, 2)} to "
                   f"{fmt(v.lb_range[1] / MIB, 2)} MiB.", ""]
        md += ["Goals (from the issue; measured, not tuned for):", ""]
        md += goals(v) + anchors(v) + [""]
        for m in PAGE_HASH:
            b = breakdown(v, m)
            if b:
                md += [f"Where the WAN bytes of {TITLES[m]} went:", ""]
                md += b + [""]
        md += ["WAN traffic (wanem's counters; the WAN MiB column is both "
               "directions as offered to the link):", ""]
        md += traffic(v) + [""]
        md += ["The other methods' counters (sums over the 4 guests):", ""]
        md += others(v) + [""]
    md += ["## Raw lines", "", "```"] + [t for _, _, t in raw] + ["```", ""]
    text = "\n".join(md)
    open(a.md, "w").write(text)
    print(text)
    json.dump({"scenario": scen, "machine": machine, "runs": runs},
              open(os.path.splitext(a.md)[0] + ".json", "w"), indent=1)
    plot(variants, a.png, scen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
