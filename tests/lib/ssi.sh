# SSI guests (ssi-guest/README.md) for integration tests. Source after
# functions.sh, sites.sh and guests.sh.
#
#   ssi_key                            64 random hex digits (a cluster key)
#   ssi_conf NAME CLUSTER KEYHEX ADDRESS JOIN [POLICY]
#                                      writes $VC_TESTDIR/ssi/NAME.conf
#                                      (ssid.conf) and prints its path
#   ssi_vm_start NAME SITE NODE IP CLUSTER KEYHEX JOIN [vm_start option...]
#                                      a member: the conf through fw_cfg,
#                                      the SSI image, 256 MiB, the test
#                                      shell on port 7001
#   ssi_wait_up VM [TIMEOUT_S]         waits for "init: ssi member up" and
#                                      for the test shell to answer
#   ssi_sh VM CMD...                   runs CMD (a shell command line) in
#                                      VM; its stdout and stderr on stdout,
#                                      its exit status returned; 124 with
#                                      a message when VM does not answer
#                                      within $SSI_SH_TIMEOUT s (30)
#   ssi_sh_bg VM OUTFILE CMD...        the same in the background: output
#                                      appended to OUTFILE, the status
#                                      written to OUTFILE.rc; prints the
#                                      PID of the local client
#   ssi_sh_wait OUTFILE [TIMEOUT_S]    waits for OUTFILE.rc and returns it
#                                      (ssi_sh_bg's client is not a child
#                                      of the caller when run in $(...))
#   ssi_vm_stop VM                     poweroff through the test shell,
#                                      then waits for QEMU
#
# The test shell is a root shell server (busybox nc -ll -e /bin/sh) that
# the SSI image's init starts when the kernel command line has
# ssi.testshell=PORT; it is reached from the VM's own node.

VC_SSI_IMAGE=${VC_SSI_IMAGE:-$VC_BUILDDIR/images/ssi}
SSI_TESTSHELL_PORT=7001

_ssi_err() { printf 'ssi: %s\n' "$*" >&2; }
_ssi_dir() { echo "$VC_TESTDIR/ssi"; }

ssi_key() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
    echo
}

ssi_conf() {
    [[ $# -ge 5 && $# -le 6 ]] ||
        { _ssi_err "usage: ssi_conf NAME CLUSTER KEYHEX ADDRESS JOIN [POLICY]"; return 2; }
    local name=$1 cluster=$2 key=$3 address=$4 join=$5 policy=${6:-} f
    [[ $cluster =~ ^[a-z0-9-]{1,32}$ ]] || { _ssi_err "bad cluster name '$cluster'"; return 2; }
    [[ $key =~ ^[0-9a-fA-F]{64}$ ]] || { _ssi_err "key is not 64 hex digits"; return 2; }
    mkdir -p "$(_ssi_dir)"
    f=$(_ssi_dir)/$name.conf
    {
        echo "cluster=$cluster"
        echo "key=$key"
        echo "address=$address"
        echo "join=$join"
        [[ -z $policy ]] || echo "policy=$policy"
    } >"$f"
    chmod 0600 "$f"
    echo "$f"
}

ssi_vm_start() {
    [[ $# -ge 7 ]] ||
        { _ssi_err "usage: ssi_vm_start NAME SITE NODE IP CLUSTER KEYHEX JOIN [OPTION...]"; return 2; }
    local name=$1 site=$2 node=$3 ip=$4 cluster=$5 key=$6 join=$7 conf
    shift 7
    [[ -f $VC_SSI_IMAGE/initrd.img ]] ||
        { _ssi_err "no SSI image in '$VC_SSI_IMAGE' (meson compile)"; return 1; }
    conf=$(ssi_conf "$name" "$cluster" "$key" "$ip" "$join") || return
    vm_start "$name" "$site" "$node" "$ip" --image "$VC_SSI_IMAGE" --mem 256 "$@" \
        --qemu-arg -fw_cfg --qemu-arg "name=opt/org.vcluster/ssi,file=$conf" \
        --append "ssi.testshell=$SSI_TESTSHELL_PORT"
}

ssi_sh() {
    [[ $# -ge 2 ]] || { _ssi_err "usage: ssi_sh VM CMD..."; return 2; }
    local vm=$1 t=${SSI_SH_TIMEOUT:-30} site node ip out err rc=0
    shift
    site=$(_vm_get "$vm" site) || return 2
    node=$(_vm_get "$vm" node) || return 2
    ip=$(vm_ip "$vm") || return 2
    err=$(mktemp "$VC_TESTDIR/ssi-sh.XXXXXX")
    # A subshell, so that `exit N` still gives the status line. The shell
    # reads the command from the socket: its stdin must not be
    # the socket, or a command reading stdin eats the status line. socat
    # half-closes on our EOF and waits up to -t for the rest of the reply.
    out=$(printf '( %s\n) </dev/null 2>&1\necho "__rc=$?"\n' "$*" |
        on_node "$site" "$node" timeout "$t" \
            socat -t "$t" - "TCP:$ip:$SSI_TESTSHELL_PORT,connect-timeout=5" \
            2>"$err") || rc=$?
    if ((rc == 124)); then
        rm -f "$err"
        [[ -z $out ]] || printf '%s\n' "$out"
        _ssi_err "'$vm' did not answer within $t s: $*"
        return 124
    fi
    if [[ $out =~ ^(.*)__rc=([0-9]+)$ ]]; then
        rm -f "$err"
        out=${BASH_REMATCH[1]}
        rc=${BASH_REMATCH[2]}
        out=${out%$'\n'}
        [[ -z $out ]] || printf '%s\n' "$out"
        return "$rc"
    fi
    [[ -z $out ]] || printf '%s\n' "$out"
    _ssi_err "no exit status from '$vm' (test shell $ip:$SSI_TESTSHELL_PORT: $(head -n 1 "$err"))"
    rm -f "$err"
    return 125
}

ssi_sh_bg() {
    [[ $# -ge 3 ]] || { _ssi_err "usage: ssi_sh_bg VM OUTFILE CMD..."; return 2; }
    local vm=$1 outfile=$2 pid
    shift 2
    rm -f "$outfile.rc"
    mkdir -p "$(_ssi_dir)"
    (
        rc=0
        ssi_sh "$vm" "$@" >>"$outfile" 2>&1 || rc=$?
        echo "$rc" >"$outfile.rc.tmp" && mv "$outfile.rc.tmp" "$outfile.rc"
    ) </dev/null >/dev/null 2>&1 &
    pid=$!
    echo "$pid" >>"$(_ssi_dir)/bg.pids"
    echo "$pid"
}

ssi_sh_wait() {
    local outfile=$1 timeout=${2:-$((${SSI_SH_TIMEOUT:-30} + 10))}
    if ! wait_for "$timeout" test -f "$outfile.rc"; then
        _ssi_err "no exit status in '$outfile.rc' after $timeout s"
        return 124
    fi
    return "$(cat "$outfile.rc")"
}

# Background clients still running at exit (the subshell and the timeout
# it runs; timeout passes the signal on to socat).
_ssi_bg_kill() {
    local pid child
    [[ -f $(_ssi_dir)/bg.pids ]] || return 0
    while read -r pid; do
        kill -0 "$pid" 2>/dev/null || continue
        for child in $(pgrep -P "$pid"); do
            kill "$child" 2>/dev/null || true
        done
        kill "$pid" 2>/dev/null || true
    done <"$(_ssi_dir)/bg.pids"
    return 0
}
cleanup_fn _ssi_bg_kill

_ssi_sh_ping() { SSI_SH_TIMEOUT=5 ssi_sh "$1" true >/dev/null 2>&1; }

ssi_wait_up() {
    local vm=$1 timeout=${2:-120} log start=$SECONDS
    log=$(vm_serial_log "$vm")
    if ! wait_for "$timeout" grep -q 'init: ssi member up' "$log"; then
        _ssi_err "'$vm' not up after $timeout s; serial log tail:"
        tail -n 15 "$log" >&2 || true
        return 1
    fi
    if ! wait_for $((timeout - (SECONDS - start) + 1)) _ssi_sh_ping "$vm"; then
        _ssi_err "'$vm' is up but its test shell does not answer"
        return 1
    fi
}

ssi_vm_stop() {
    local vm=$1 pid
    pid=$(vm_pid "$vm") || return 1
    SSI_SH_TIMEOUT=5 ssi_sh "$vm" 'sync; poweroff -f' >/dev/null 2>&1 || true
    if ! wait_for 30 bash -c "! kill -0 $pid"; then
        _ssi_err "'$vm' ignored poweroff; killing QEMU"
        vm_kill "$vm"
        return 1
    fi
    _vm_release "$vm"
}
