# salined and the saline CLI for integration tests. Source after
# functions.sh, sites.sh, guests.sh and libvirt.sh, then set:
#   SALINE_CONF     salined's configuration file
#   SALINE_SOCK     its socket (the configuration says the same)
#   SALINE_NS_NODE  "a 1": the node whose network namespace salined runs in
#                   (the nodes' libvirtd listen on site addresses)
#
#   saline_start / saline_stop      salined, logging to $VC_TESTDIR/salined.log
#   as_root ARGS / as_user UID ARGS the saline CLI
#   submit CMD...                   runs CMD (a saline submit), prints the id
#   job_json ID / job_state ID / state_is ID S / state_in ID S...
#   field JSON EXPR                 EXPR evaluated on the parsed JSON `j`
#   saline_conf_salined QEMU        the [salined] group of a test's
#                                   salined.conf ($SALINE_SOCK, state in
#                                   $VC_TESTDIR/state, TCG, QEMU)
#   saline_node_conf SITE NODE CPUS its [node] group (libvirtd: libvirt.sh)
#   history ID / history_has ID TEXT    a job's events (saline stat)
#   snapshots ID / has_snapshots ID N   its complete snapshots
#   vm_nodes ID                     its VMs' nodes, sorted
#   last_tick ID VM                 the last "tick N" its command printed there
salined_bin=$VC_BUILDDIR/saline/salined/salined
saline_bin=$VC_BUILDDIR/saline/cli/saline
salined_pid=
_saline_registered=

saline_start() {
    if [[ -z $_saline_registered ]]; then
        cleanup_fn saline_stop
        cleanup_fn saline_show_log
        _saline_registered=1
    fi
    # Its warnings are about the grid (a node lost), not bugs: not fatal.
    ip netns exec "$(node_ns $SALINE_NS_NODE)" env -u G_DEBUG "$salined_bin" \
        --config "$SALINE_CONF" >>"$VC_TESTDIR/salined.log" 2>&1 &
    salined_pid=$!
    # After a kill -9 the old socket file is still there: wait for answers.
    wait_for 20 "$saline_bin" --socket "$SALINE_SOCK" nodes >/dev/null ||
        fail "salined does not answer"
}
saline_stop() {
    [[ -n $salined_pid ]] || return 0
    kill "$salined_pid" 2>/dev/null
    wait "$salined_pid" 2>/dev/null || true
    salined_pid=
}
saline_kill9() {
    kill -9 "$salined_pid"
    wait "$salined_pid" 2>/dev/null || true
    salined_pid=
}
saline_show_log() {
    [[ -f $VC_TESTDIR/salined.log ]] || return 0
    echo "--- salined.log (last ${1:-40} lines)" >&2
    tail -n "${1:-40}" "$VC_TESTDIR/salined.log" >&2
}

as_root() { "$saline_bin" --socket "$SALINE_SOCK" "$@"; }
as_user() {
    local uid=$1
    shift
    setpriv --reuid="$uid" --regid="$uid" --clear-groups "$saline_bin" --socket "$SALINE_SOCK" "$@"
}
field() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2" <<<"$1"; }
job_json() { as_root stat "$1" --json; }
job_state() { field "$(job_json "$1")" 'j["state"]'; }
state_is() { [[ $(job_state "$1") == "$2" ]]; }
state_in() {
    local s
    s=$(job_state "$1")
    shift
    [[ " $* " == *" $s "* ]]
}
submit() {
    local out id
    out=$("$@") || return 1
    id=$(sed -n 's/^SALINE_JOB_ID=\([0-9]*\)$/\1/p' <<<"$out")
    [[ -n $id ]] || { echo "no job id in '$out'" >&2; return 1; }
    echo "$id"
}
history() { as_root stat "$1" --json | field "$(cat)" '"\n".join(e["text"] for e in j.get("events", []))'; }
history_has() { [[ $(history "$1") == *"$2"* ]]; }
snapshots() { field "$(as_root stat "$1" --json)" 'len(j.get("snapshots", []))'; }
has_snapshots() { (($(snapshots "$1") >= $2)); }
vm_nodes() { field "$(job_json "$1")" '" ".join(sorted(v["node"] for v in j["vm_list"]))'; }
last_tick() { as_root log "$1" --vm "$2" | sed -n 's/^tick \([0-9]*\)$/\1/p' | tail -n 1; }
saline_conf_salined() {
    printf '[salined]\nstate-dir=%s\nsocket=%s\nnode-timeout=6\nvirt-type=qemu\nemulator=%s\noutput-size=8M\n\n' \
        "$VC_TESTDIR/state" "$SALINE_SOCK" "$1"
}
saline_node_conf() {
    printf '[node %s%s]\nsite=%s\nuri=%s\ncpus=%s\nmemory=1G\n\n' "$1" "$2" "$1" "$(lv_uri "$1" "$2")" "$3"
}
