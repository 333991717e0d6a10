#!/usr/bin/env bash
# Run every test: set-up, build (warnings are errors), unit and
# integration suites. Ends with one line "N passed, N failed, N skipped".
# Extra arguments go to `meson test` (e.g. a test name).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/build.sh
rc=0
meson test -C build --print-errorlogs --suite unit --suite integration "$@" || rc=$?

# meson's own totals, read back from its log, as one plain line.
log=build/meson-logs/testlog.json
[[ -f $log ]] || { echo "0 passed, 1 failed"; exit 1; }
# (meson is a Python program, so python3 is there.)
read -r passed failed skipped < <(/usr/bin/python3 - "$log" <<'PY'
import json, sys
n = {}
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)["result"]
        n[r] = n.get(r, 0) + 1
ok = n.get("OK", 0) + n.get("EXPECTEDFAIL", 0)
bad = sum(n.get(k, 0) for k in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"))
print(ok, bad, n.get("SKIP", 0))
PY
)
echo "$passed passed, $failed failed, $skipped skipped"
if ((passed + failed == 0)); then
    echo "test: no test ran" >&2
    exit 1
fi
exit "$rc"
