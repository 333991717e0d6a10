# Shared helpers for integration tests (sourced, bash).
#
#   source "$(dirname "$0")/lib/functions.sh"
#   requires ip qemu-system-x86_64
#   cleanup_fn some_teardown arg...
#
# Exit codes follow meson/automake: 0 pass, 77 skip, 99 hard error,
# anything else a failure.

set -euo pipefail

VC_SRCDIR=${VC_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
VC_BUILDDIR=${VC_BUILDDIR:-$VC_SRCDIR/build}

# Per-test scratch directory, removed at exit.
VC_TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/vctest.XXXXXX")

_vc_cleanups=()

# cleanup_fn CMD [ARGS...]: run CMD ARGS at exit, in reverse order of
# registration, whether the test passed, failed or was interrupted.
cleanup_fn() {
    local q
    q=$(printf '%q ' "$@")
    _vc_cleanups+=("$q")
}

_vc_run_cleanups() {
    local rc=$? i
    set +e
    for ((i = ${#_vc_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${_vc_cleanups[i]}"
    done
    rm -rf "$VC_TESTDIR"
    exit "$rc"
}
trap _vc_run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# requires CMD...: skip the test (77) when a truly optional tool is absent.
requires() {
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            echo "SKIP: '$c' not found" >&2
            exit 77
        fi
    done
}

# needs CMD...: fail (not skip) when a tool that scripts/setup.sh installs
# is missing: its absence is a broken set-up, not an optional feature.
needs() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            { echo "FAIL: '$c' not found (run scripts/setup.sh)" >&2; exit 1; }
    done
}

# requires_root: network namespaces and TAP devices need root.
requires_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "SKIP: needs root" >&2
        exit 77
    fi
}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
    [[ $2 == "$3" ]] || fail "$1: expected '$2', got '$3'"
    log "ok: $1 = '$3'"
}

# wait_for TIMEOUT_S CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
