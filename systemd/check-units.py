#!/usr/bin/env python3
"""TAP test: `systemd-analyze verify` on each unit given (UNIT.verify, a
copy whose ExecStart= names the program of the build tree).

systemd-analyze exits 0 after it ignores an unknown key or a value it
cannot parse, so any line it prints fails the unit too."""

import os
import shutil
import subprocess
import sys
import tempfile


def main():
    paths = sys.argv[1:]
    print("1..%d" % len(paths))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths, 1):
            name = os.path.basename(path)
            if name.endswith(".verify"):
                name = name[: -len(".verify")]
            unit = os.path.join(tmp, name)
            shutil.copyfile(path, unit)
            # --man=no: the pages are not installed where man looks.
            p = subprocess.run(
                ["systemd-analyze", "verify", "--man=no", unit],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            out = p.stdout.strip()
            if p.returncode == 0 and not out:
                print("ok %d - %s" % (i, name))
                continue
            failed += 1
            print("not ok %d - %s (exit status %d)" % (i, name, p.returncode))
            for line in out.splitlines():
                print("# " + line.replace(tmp + "/", ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
