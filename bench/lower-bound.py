#!/usr/bin/env python3
"""Lower bound of the WAN bytes of migrating a virtual cluster to a site.

    lower-bound.py [--zstd-level N] [--record-bytes N]
                   --site RAM... --cluster RAM...

For bench/migration-bench.sh. Reads the guests' RAM files (4 KiB pages)
of the destination site (--site) and of the cluster that migrates there
(--cluster). Whatever the method, each distinct non-zero page of the
cluster that no guest of the site holds must cross the WAN at least once
(here: all of them concatenated and compressed with the zstd CLI), and
the destination must learn what every non-zero page of every migrating
guest is: a page record, an offset and a SHA-256 hash, 40 bytes. Zero
pages need nothing (a new guest's RAM is zero).

    bound = zstd(distinct missing pages) + record_bytes * non-zero pages

Prints one line of key=value: the bound and its parts, and per guest
(comma-separated, in --cluster order) the non-zero pages, the pages the
site holds and the pages it misses; "missing_shared" counts distinct
missing pages that more than one cluster guest holds (a method that
coalesces equal misses sends them once); missing_random, _sparse and
_other sort the distinct missing pages by what they look like: random
bytes, at least 90% zero bytes, anything else; zstd_random, _sparse and
_other are each kind compressed alone; other_diff_bytes_median: in how
many bytes an "other" page differs from the page at the same offset in
the first --site guest (the median).
"""

import argparse
import hashlib
import mmap
import os
import subprocess
import sys
import zlib

PAGE = 4096
ZERO = hashlib.sha256(bytes(PAGE)).digest()


def page_hashes(path):
    """Yield (digest, memoryview of the page) for each page of a file."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as m:
            mv = memoryview(m)
            try:
                for off in range(0, size - size % PAGE, PAGE):
                    page = mv[off:off + PAGE]
                    yield hashlib.sha256(page).digest(), page
                    page.release()
            finally:
                mv.release()


def zstd(data, level):
    """Size of DATA compressed by the zstd CLI."""
    return len(subprocess.run(["zstd", f"-{level}", "-q", "-c"], input=data,
                              stdout=subprocess.PIPE, check=True).stdout)


def differing(p, q):
    """Bytes in which two pages differ."""
    if len(q) != PAGE:
        return PAGE
    x = int.from_bytes(p, "little") ^ int.from_bytes(q, "little")
    return PAGE - x.to_bytes(PAGE, "little").count(0)


def kind(page):
    """What a missing page looks like: random bytes (what the unique
    regions hold), mostly zero (what a writer leaves in a zeroed page), or
    other (kernel and page-cache data)."""
    if page.count(0) >= PAGE * 9 // 10:
        return "sparse"
    if len(zlib.compress(page, 1)) >= PAGE - 96:
        return "random"
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", nargs="+", required=True, metavar="RAM")
    ap.add_argument("--cluster", nargs="+", required=True, metavar="RAM")
    ap.add_argument("--zstd-level", type=int, default=3)
    ap.add_argument("--record-bytes", type=int, default=40)
    a = ap.parse_args()

    held = set()
    for path in a.site:
        for digest, _ in page_hashes(path):
            if digest != ZERO:
                held.add(digest)

    kinds = {"random": [], "sparse": [], "other": []}  # indexes in chunks
    # The site's first guest, page by page: how much an "other" page
    # differs from the page at the same offset there.
    with open(a.site[0], "rb") as f:
        ref = f.read()
    diffs = []
    owners = {}  # digest of a missing page -> number of guests holding it
    chunks = []  # each distinct missing page once
    nonzero, on_site, missing = [], [], []
    for path in a.cluster:
        n = h = m = 0
        seen = set()
        for off, (digest, page) in enumerate(page_hashes(path)):
            if digest == ZERO:
                continue
            n += 1
            if digest in held:
                h += 1
                continue
            m += 1
            if digest not in owners:
                owners[digest] = 0
                chunks.append(bytes(page))
                k = kind(chunks[-1])
                kinds[k].append(len(chunks) - 1)
                if k == "other":
                    diffs.append(differing(chunks[-1],
                                           ref[off * PAGE:(off + 1) * PAGE]))
            if digest not in seen:
                seen.add(digest)
                owners[digest] += 1
        nonzero.append(n)
        on_site.append(h)
        missing.append(m)

    data = b"".join(chunks)
    z = zstd(data, a.zstd_level)
    records = sum(nonzero)
    bound = z + a.record_bytes * records
    by_kind = " ".join(
        f"missing_{k}={len(ix)}"
        f" zstd_{k}={zstd(b''.join(chunks[i] for i in ix), a.zstd_level)}"
        for k, ix in kinds.items())
    print(f"lower_bound bytes={bound} zstd_bytes={z}"
          f" record_bytes={a.record_bytes * records}"
          f" missing_distinct={len(chunks)} missing_raw_bytes={len(data)}"
          f" missing_shared={sum(1 for c in owners.values() if c > 1)}"
          f" site_distinct={len(held)} zstd_level={a.zstd_level} {by_kind}"
          f" other_diff_bytes_median="
          f"{sorted(diffs)[len(diffs) // 2] if diffs else 0}"
          f" nonzero={','.join(map(str, nonzero))}"
          f" on_site={','.join(map(str, on_site))}"
          f" missing={','.join(map(str, missing))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
