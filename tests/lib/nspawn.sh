# Debian roots booted with systemd as their PID 1 (systemd-nspawn), for
# integration tests. Source after functions.sh.
#
#   nspawn_boot NAME ROOT [NSPAWN_OPTION...]
#                       boot ROOT as machine NAME (not registered with
#                       machined), wait until systemd runs ("running" or
#                       "degraded"); stopped at exit. Options go to
#                       systemd-nspawn (--private-network,
#                       --network-namespace-path=...)
#   nspawn_leader NAME  the PID of its systemd
#   in_nspawn NAME CMD...
#                       CMD in all its namespaces, as a login shell would
#                       run it (a clean environment, root's PATH)
#   nspawn_stop NAME    halt it: SIGTERM, a second one, then SIGKILL
declare -A _nspawn_pid=() _nspawn_leader=()

_nspawn_find_leader() {
    local p c
    for p in $(ps -o pid= --ppid "${_nspawn_pid[$1]}"); do
        for c in "$p" $(ps -o pid= --ppid "$p"); do
            if [[ $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]]; then
                echo "$c"
                return 0
            fi
        done
    done
    return 1
}

nspawn_leader() { echo "${_nspawn_leader[$1]}"; }

in_nspawn() {
    local leader=${_nspawn_leader[$1]}
    shift
    nsenter -t "$leader" -a -r -w env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        LC_ALL=C.UTF-8 HOME=/root "$@"
}

_nspawn_booted() {
    local s
    s=$(in_nspawn "$1" systemctl is-system-running 2>/dev/null) || true
    [[ $s == running || $s == degraded ]]
}

nspawn_boot() {
    local name=$1 root=$2
    shift 2
    # Its descendant that runs systemd is the container's PID 1.
    systemd-nspawn -q -D "$root" --boot --register=no --keep-unit --machine "$name" \
        "$@" </dev/null >"$VC_TESTDIR/nspawn-$name.log" 2>&1 &
    _nspawn_pid[$name]=$!
    cleanup_fn nspawn_stop "$name"
    wait_for 20 _nspawn_find_leader "$name" ||
        { cat "$VC_TESTDIR/nspawn-$name.log" >&2; echo "nspawn: no systemd in $name" >&2; return 1; }
    _nspawn_leader[$name]=$(_nspawn_find_leader "$name")
    wait_for 60 _nspawn_booted "$name" ||
        { in_nspawn "$name" systemctl --failed >&2 || true; echo "nspawn: $name did not boot" >&2; return 1; }
}

nspawn_stop() {
    local name=$1 pid=${_nspawn_pid[$1]:-}
    [[ -n $pid ]] || return 0
    # One SIGTERM halts the container, a second one ends it at once.
    kill -TERM "$pid" 2>/dev/null
    wait_for 30 bash -c "! kill -0 $pid" || kill -TERM "$pid" 2>/dev/null
    wait_for 10 bash -c "! kill -0 $pid" || {
        [[ -z ${_nspawn_leader[$name]:-} ]] || kill -KILL "${_nspawn_leader[$name]}" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    }
    wait "$pid" 2>/dev/null || true
    _nspawn_pid[$name]=
    rm -rf "/run/systemd/nspawn/propagate/$name"
}
