#!/usr/bin/env python3
"""Report of bench/kget-bench.sh, or the distinct pages of RAM files.

    kget-report.py --distinct RAM...
    kget-report.py --raw RAW --command CMD --md MD --png PNG --json JSON

--distinct: one line of key=value: the non-zero 4 KiB pages of the files
and how many distinct ones (by SHA-256) they hold; their bytes are what
any method must move to the storage node at least once, whatever it
deduplicates (zero pages need nothing).

Otherwise: reads the raw lines of a run and writes the Markdown report,
a gnuplot PNG and beside them a JSON file with every number used. The
reading of the numbers ("What the numbers say") is written by hand for
each run and kept when the report is regenerated over an existing MD.
"""

import argparse
import hashlib
import json
import math
import mmap
import os
import shlex
import subprocess
import sys
import tempfile

PAGE = 4096
MIB = 1 << 20
ZERO = bytes(PAGE)
HAND = "## What the numbers say"


def distinct(files):
    seen = set()
    nonzero = 0
    total = 0
    for path in files:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                continue
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            for off in range(0, size - size % PAGE, PAGE):
                total += 1
                page = m[off:off + PAGE]
                if page == ZERO:
                    continue
                nonzero += 1
                seen.add(hashlib.sha256(page).digest())
            m.close()
    print(f"files={len(files)} pages={total} nonzero_pages={nonzero} "
          f"distinct_pages={len(seen)} distinct_bytes={len(seen) * PAGE}")


def parse(path):
    lines = []
    with open(path) as f:
        for line in f:
            words = shlex.split(line)
            if not words:
                continue
            d = {"_": words[0]}
            for w in words[1:]:
                k, _, v = w.partition("=")
                d[k] = v
            lines.append(d)
    return lines


def first(lines, kind, **match):
    for d in lines:
        if d["_"] == kind and all(d.get(k) == v for k, v in match.items()):
            return d
    return None


def num(d, k):
    return float(d[k]) if d and k in d and d[k] != "" else None


def verdict(v, target, le):
    if v is None:
        return "not measured"
    ok = v <= target if le else v >= target
    return "met" if ok else "**not met**"


def report(a):
    lines = parse(a.raw)
    mach = first(lines, "machine")
    scen = first(lines, "scenario")
    rate = float(scen["rate_mbit"]) * 1e6 / 8
    vms, mem = int(scen["vms"]), int(scen["mem_mib"])
    raw_ram = vms * mem * MIB
    lb_line = first(lines, "distinct", when="kget")
    lb_bytes = int(lb_line["distinct_bytes"])
    lb_s = lb_bytes / rate
    runs = {d["id"]: d for d in lines if d["_"] == "run"}
    kget, par, seq = runs.get("kget"), runs.get("save-par"), runs.get("save-seq")
    inc1 = first(lines, "inc", seq="1")
    inc2 = first(lines, "inc", seq="2")
    gap = first(lines, "inc_gap")

    # Incremental: the writer writes one 8-byte word in a page chosen at
    # random among N; k writes touch N (1 - (1 - 1/N)^k) distinct pages.
    n_pages = int(scen["dirty_mib"]) * MIB // PAGE
    writes = int(gap["writes"]) if gap else 0
    k = writes / vms
    dirtied_pages = vms * n_pages * (1 - (1 - 1 / n_pages) ** k)
    dirtied = dirtied_pages * PAGE

    t_kget = num(kget, "verified_s") and max(num(kget, "verified_s"), num(kget, "free_s"))
    t_par = num(par, "verified_s")
    t_seq = num(seq, "verified_s")
    ratios = {
        "kget_time_over_bound": t_kget / lb_s if t_kget else None,
        "save_par_time_over_kget": t_par / t_kget if t_par and t_kget else None,
        "stored_over_raw_ram": num(kget, "stored_bytes") / raw_ram if kget else None,
        "incremental_sent_over_dirtied":
            num(inc2, "link_rx_bytes") / dirtied if inc2 and dirtied else None,
    }
    targets = {"kget_time_over_bound": (1.1, True),
               "save_par_time_over_kget": (3.0, False),
               "stored_over_raw_ram": (0.5, True),
               "incremental_sent_over_dirtied": (2.0, True)}

    out = {"command": a.command, "machine": mach, "scenario": scen,
           "lower_bound": {"source": "distinct non-zero pages of the RAM files "
                           "(SHA-256), right before the kget run",
                           "bytes": lb_bytes, "seconds": lb_s, **lb_line},
           "distinct_at_boot": first(lines, "distinct", when="boot"),
           "runs": runs, "incremental": {"at1": inc1, "at2": inc2, "gap": gap,
                                         "writes": writes,
                                         "dirtied_pages_expected": dirtied_pages,
                                         "dirtied_bytes_expected": dirtied},
           "ratios": ratios,
           "targets": {k: {"value": v[0], "le": v[1]} for k, v in targets.items()},
           "link": first(lines, "link"), "copy": first(lines, "copy"),
           "loads": [d for d in lines if d["_"] == "machine_load"],
           "bench": first(lines, "bench")}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)

    def mib(v):
        return f"{v / MIB:,.1f}" if v is not None else "-"

    def sec(v):
        return f"{v:.1f}" if v is not None else "-"

    rows = []
    for rid, title in (("kget", "Kget+ (background snapshot, dedup)"),
                       ("save-par", "`virsh save` + scp, all at once"),
                       ("save-seq", "`virsh save` + scp, one VM at a time")):
        r = runs.get(rid)
        if not r:
            continue
        t = max(num(r, "verified_s"), num(r, "free_s"))
        rows.append(f"| {title} | {sec(t)} | {sec(num(r, 'free_s'))} | "
                    f"{mib(num(r, 'link_rx_bytes'))} | {mib(num(r, 'stored_bytes'))} | "
                    f"{t / lb_s:.2f} |")
    rows.append(f"| lower bound: distinct non-zero pages / link rate | {sec(lb_s)} | - | "
                f"{mib(lb_bytes)} | {mib(lb_bytes)} | 1.00 |")

    names = {"kget_time_over_bound":
             "time(Kget+) / (bytes that must cross / link rate)",
             "save_par_time_over_kget": "time(parallel save+scp) / time(Kget+)",
             "stored_over_raw_ram": "stored / raw RAM (Kget+)",
             "incremental_sent_over_dirtied": "incremental: bytes on the link for @2 / "
             "bytes the writer dirtied"}
    rat = []
    for key, (tv, le) in targets.items():
        v = ratios[key]
        rat.append(f"| {names[key]} | {v:.2f} | {'<=' if le else '>='} {tv} | "
                   f"{verdict(v, tv, le)} |" if v is not None else
                   f"| {names[key]} | - | {'<=' if le else '>='} {tv} | not measured |")

    hand = f"{HAND}\n\n(to be written for this run)\n"
    if os.path.exists(a.md):
        text = open(a.md).read()
        if HAND in text:
            hand = text[text.index(HAND):].split("\n## Raw lines")[0].rstrip() + "\n"

    loads = "; ".join(f"{d['when']}: {d['loadavg']} ({d['busy']})" for d in out["loads"])
    md = f"""# Kget+ against `virsh save` + scp: benchmark results

Not a test: every method measured side by side in one run, nothing
asserted. Generated by `bench/kget-report.py` from the run's raw lines
(below), except the section "{HAND[3:]}", written by hand.

## Command

    {a.command}

as root; wall time {int(num(out['bench'], 'wall_s')) // 60} min {int(num(out['bench'], 'wall_s')) % 60} s.

## Machine

- {mach['nproc']} CPUs, `{mach['cpu']}`, {mach['mem_gib']} GiB RAM, kernel {mach['kernel']}; guests under {scen['accel'].upper()}, QEMU {scen['qemu_version']} (`{scen['qemu']}`, Debian's), one libvirtd per node.
- Date: {mach['date']} (the machine's clock).
- Load: {loads}.

## Method

- One site (tests/lib/sites.sh): {scen['nodes']} compute nodes a1..a{scen['nodes']} (network namespaces, one libvirtd each, `seccomp_sandbox = 0` so QEMU may exec kget) and a storage node a{int(scen['nodes']) + 1}. Its link is capped at **{scen['rate_mbit']} Mbit/s** toward it: `{out['link']['qdisc']}` on its bridge port `{out['link']['dev']}` in the gateway. The nodes' "local disks" are directories of /tmp on this machine's disk (page cache: writes there are memory-speed).
- {vms} guests of {mem} MiB (the project's image: its 32 MiB payload of Debian files, the same in every guest; a {scen['unique_mib']} MiB region unique to each guest; RAM shared and file-backed), {vms // int(scen['nodes'])} per node, seeds 100..{100 + vms - 1}.
- **Kget+**: kget-store on the storage node; for all guests at once, over `virsh qemu-monitor-command` on each node: `migrate-set-capabilities` background-snapshot on, `migrate-set-parameters` max-bandwidth 1 TiB/s, `migrate exec:kget ... snapshot bench@1 --no-seal --vmstate vmN/state=-`; once every migration is completed and every sender has exited, `kget seal bench@1` (all {2 * vms} items), `kget verify bench@1`, then `virsh destroy` of every guest. Time: from the first QMP command to the last destroy (nodes free, snapshot verified).
- **`virsh save` + scp, all at once**: for every guest at once: `virsh save` to its node's disk, then `scp` of the file to the storage node (OpenSSH sshd in its namespace, an ed25519 key made by the script, default cipher), then sha256 of the source and of the copy (on the storage node) compared. Time: until every copy is verified (every node is free earlier: column *nodes free*).
- **One VM at a time**: the same, one guest after the other.
- Order: save-par, then every guest `virsh restore`d from its file, save-seq, restore again, Kget+: every method stores the same guest state. The store is empty before Kget+.
- **Lower bound**: the distinct non-zero 4 KiB pages of all guests' RAM files (SHA-256 of each page, hashed from the RAM files right before the Kget+ run, `kget-report.py --distinct`): {lb_line['distinct_pages']} pages of {lb_line['nonzero_pages']} non-zero, {mib(lb_bytes)} MiB; over the link rate, {lb_s:.1f} s. It leaves out device state (a few hundred KiB per guest) and protocol overhead, so it is a bound no method reaches.
- **Incremental**: {vms} fresh guests (same seeds) with a writer dirtying {scen['dirty_pages_per_s']} pages/s each ({int(scen['dirty_pages_per_s']) * 4 / 1024:.0f} MiB/s; one 8-byte word in a page chosen at random in a {scen['dirty_mib']} MiB region); Kget+ snapshot inc@1 of all of them, {scen['inc_gap_s']} s later inc@2 (both sealed). *Dirtied* is the distinct pages the writer wrote between the two snapshot points, from its write count (the guest agent's `dirty_pages_written`) and the expected coverage of random writes, N (1 - (1 - 1/N)^k) for N = {n_pages} pages and k writes per guest.
- Columns: *to free + verified*: seconds from the start until every node is free and every state is verified on the storage node; *nodes free*: until the last guest's node is free (save done, or destroyed); *link MiB*: rx bytes of the storage node's interface (its counter, so frames, TCP/IP headers, ssh or Kget+ protocol included) over the method; *stored MiB*: `du -sb` of the store's directory, or of the copies; *x bound*: time over the lower bound's time.

## Results

| method | to free + verified (s) | nodes free (s) | link MiB | stored MiB | x bound |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Raw RAM: {vms} x {mem} MiB = {mib(raw_ram)} MiB. Save files: {mib(num(par, 'file_bytes'))} MiB (save-par). Kget+ items (state + RAM, zero pages included): {mib(num(kget, 'kget_item_bytes'))} MiB; chunk bytes its senders sent: {mib(num(kget, 'kget_bytes_sent'))} MiB, new in the store: {mib(num(kget, 'kget_bytes_new'))} MiB; seal {kget['seal_s']} s, verify {kget['verify_s']} s ({kget['verify_checked']} chunks), destroy {kget['destroy_s']} s.

Incremental: @1 {sec(num(inc1, 'wall_s'))} s, {mib(num(inc1, 'link_rx_bytes'))} MiB on the link; @2 ({gap['gap_s'] if gap else '-'} s later) {sec(num(inc2, 'wall_s'))} s, **{mib(num(inc2, 'link_rx_bytes'))} MiB on the link** (chunk bytes sent {mib(num(inc2, 'kget_bytes_sent'))} MiB, new {mib(num(inc2, 'kget_bytes_new'))} MiB = {inc2['kget_chunks_new'] if inc2 else '-'} chunks) for {writes} writes by the writers = **{mib(dirtied)} MiB dirtied** ({dirtied_pages:,.0f} distinct pages expected; {mib(writes * PAGE)} MiB if every write hit a new page).

![Kget+ against virsh save + scp](kget.png)

## Ratios against the targets (this run)

| ratio | measured | target | |
|---|---|---|---|
{chr(10).join(rat)}

{hand}
## Raw lines

```
{open(a.raw).read().rstrip()}
```
"""
    with open(a.md, "w") as f:
        f.write(md)

    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "d.dat")
        with open(dat, "w") as f:
            for rid, title in (("kget", "Kget+"), ("save-par", "save+scp parallel"),
                               ("save-seq", "save+scp sequential")):
                r = runs.get(rid)
                if not r:
                    continue
                t = max(num(r, "verified_s"), num(r, "free_s"))
                f.write(f'"{title}" {t} {num(r, "free_s")} '
                        f'{num(r, "link_rx_bytes") / MIB} {num(r, "stored_bytes") / MIB}\n')
        gp = ["set terminal pngcairo size 1200,480 font 'sans,10'",
              f"set output '{a.png}'",
              "set style data histograms", "set style histogram clustered gap 1",
              "set style fill solid 0.85 border -1", "set boxwidth 0.9",
              "set grid ytics", "set yrange [0:*]", "set key top left",
              f"set multiplot layout 1,2 title '{vms} VMs of {mem} MiB on "
              f"{scen['nodes']} nodes to the storage node over {scen['rate_mbit']} "
              "Mbit/s (dashed: lower bound)'",
              "set title 'seconds'",
              f"set arrow from graph 0, first {lb_s} to graph 1, first {lb_s} "
              "nohead dt 2 lw 2 lc rgb 'black' front",
              f"plot '{dat}' using 2:xtic(1) title 'free + verified' lc rgb '#1f77b4', "
              "'' using 3 title 'nodes free' lc rgb '#aec7e8'",
              "unset arrow", "set title 'MiB'",
              f"set arrow from graph 0, first {lb_bytes / MIB} to graph 1, first "
              f"{lb_bytes / MIB} nohead dt 2 lw 2 lc rgb 'black' front",
              f"plot '{dat}' using 4:xtic(1) title 'on the storage link' lc rgb '#ff7f0e', "
              "'' using 5 title 'stored' lc rgb '#ffbb78'",
              "unset multiplot"]
        subprocess.run(["gnuplot"], input="\n".join(gp).encode(), check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distinct", nargs="+", metavar="RAM")
    ap.add_argument("--raw")
    ap.add_argument("--command", default="bench/kget-bench.sh")
    ap.add_argument("--md")
    ap.add_argument("--png")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.distinct:
        distinct(a.distinct)
        return 0
    if not (a.raw and a.md and a.png and a.json):
        ap.error("--raw, --md, --png and --json go together")
    report(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
