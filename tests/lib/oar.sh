# A real OAR 2.5 batch scheduler on test sites, for integration tests
# (sourced, bash, after tests/lib/functions.sh and tests/lib/sites.sh).
#
#   sites_create 1 3
#   oar_create a3 a1 a2             head on a3, one resource per node a1, a2
#   id=$(oar_sub saline -d "$dir" -l nodes=1 "$dir/job.sh")
#   oar_wait_state "$id" Running 30; oar_events "$id"
#   oar_as oar-tester oarstat -J -j "$id"
#
# Layout (names are the project's node names, site letter + index):
#   head  PostgreSQL (initdb'd in $VC_TESTDIR/oar/pg, TCP 127.0.0.1:5433,
#         passwords), the OAR database (oar-database --create) and Almighty,
#         all in the head node's network namespace; every OAR command
#         (oarsub, oarstat...) must run there too: it reads the database.
#   nodes one OAR resource each (network_address = host = the node name,
#         cpu, core, besteffort=YES) and OAR's sshd (port 6667,
#         /etc/oar/sshd_config) in the node's namespace, in its own UTS
#         namespace named after the node, so jobs see their node's name.
# Files: `ip netns exec NS` bind-mounts each entry of /etc/netns/NS/ over
# /etc/ (ip-netns(8)), directories included, so /etc/netns/NS/hosts (head
# and nodes) and /etc/netns/NS/oar/ (a copy of /etc/oar with this test's
# oar.conf) serve the head and each node without touching the global /etc.
# Everything else is under $VC_TESTDIR/oar: the ssh key pair bipbip uses
# (OPENSSH_CMD -i, known_hosts; sshd's AuthorizedKeysFile), the OAR log,
# OAR_RUNTIME_DIRECTORY, sshd and PostgreSQL logs.
#
#   oar_create HEAD NODE...     the above; nodes Alive when it returns
#   oar_as USER CMD ARGS...     CMD as USER in the head's namespace
#   oar_cmd_prefix USER         what a daemon in another namespace puts
#                               before `oarsub ...` to do the same, e.g.
#     ip netns exec vct123-a3 setpriv --reuid=saline --regid=saline --init-groups
#   oar_sub USER ARGS...        oarsub ARGS as USER, prints the job id
#   oar_state ID                Waiting, Launching, Running, Error,
#                               Terminated...
#   oar_state_is ID STATE
#   oar_wait_state ID STATE SECS
#   oar_events ID               event types, one per line, oldest first
#   oar_resubmission ID         the job OAR resubmitted ID as
#   oar_nudge                   wake the scheduler ("Qsub" to Almighty)
#   oar_nudge_every SECS        the same in the background until cleanup
#   oar_log [N]                 last N lines of the OAR log (stderr)
#   oar_db_stop / oar_db_start  OAR's database down (OAR unreachable), up
#   oar_destroy                 stop all, remove /etc/netns/NS made here
#   oar_gc                      the same for runs killed hard (before
#                               sites_gc: it finds their processes by
#                               namespace)
#
# Job users need a real login shell: oarexec runs the command with
# `SHELL -c CMD`, SHELL from the user's passwd entry (nologin fails every
# job). bash runs a lone command in place, so OAR's checkpoint signal
# reaches it; dash forks it and takes the signal itself (and dies, the
# command left running): `exec PROG ARGS` is safe with either.
# OAR refuses jobs of root and oar; scripts/setup.sh makes the users
# saline and oar-tester (a plain user), both with bash.
# The scheduler runs on submissions and job ends, else every 60 s (fixed);
# a best-effort job's checkpoint grace ends at the first pass after it:
# oar_nudge_every makes that pass come on time.

OAR_PG_PORT=${OAR_PG_PORT:-5433}
OAR_SERVER_PORT=6666
OAR_SSHD_PORT=6667

_oar_dir=
_oar_head=
_oar_head_ns=
_oar_nodes=()
_oar_etc_made=()
_oar_netns_made=
_oar_run_sshd_made=
_oar_pg_bin=
_oar_almighty_pid=
_oar_sshd_pids=()
_oar_uts=()
_oar_nudger_pids=()
_oar_registered=

_oar_err() { printf 'oar: %s\n' "$*" >&2; }

# _oar_split NAME: "a3" -> "a 3"
_oar_split() {
    if [[ ! $1 =~ ^([a-z])([0-9]+)$ ]]; then
        _oar_err "bad node name '$1': expected a site letter and an index"
        return 1
    fi
    echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

# _oar_ns NAME: the node's network namespace
_oar_ns() {
    local s
    s=$(_oar_split "$1") || return 1
    # shellcheck disable=SC2086
    node_ns $s
}

_oar_ip() {
    local s
    s=$(_oar_split "$1") || return 1
    # shellcheck disable=SC2086
    node_ip $s
}

# _oar_ids USER: "--reuid=U --regid=G --init-groups" for setpriv
_oar_ids() {
    local g
    g=$(id -gn "$1" 2>/dev/null) || { _oar_err "no user '$1'"; return 1; }
    echo "--reuid=$1 --regid=$g --init-groups"
}

oar_cmd_prefix() {
    local ids
    [[ -n $_oar_head_ns ]] || { _oar_err "no OAR: oar_create has not run"; return 1; }
    ids=$(_oar_ids "$1") || return 1
    echo "ip netns exec $_oar_head_ns setpriv $ids"
}

oar_as() {
    local prefix
    prefix=$(oar_cmd_prefix "$1") || return 1
    shift
    # shellcheck disable=SC2086
    $prefix "$@"
}

# _oar_root CMD...: CMD as root in the head's namespace (admin commands)
_oar_root() { ip netns exec "$_oar_head_ns" "$@"; }

# _oar_do WHAT CMD...: run CMD, its output in $_oar_dir/setup.log; on
# failure report WHAT and the last line of that output.
_oar_do() {
    local what=$1 rc=0 last
    shift
    echo "+ $*" >>"$_oar_dir/setup.log"
    "$@" >>"$_oar_dir/setup.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        last=$(tail -n 1 "$_oar_dir/setup.log")
        _oar_err "$what${last:+: $last}"
        return 1
    fi
}

_oar_pw() { od -An -tx1 -N12 /dev/urandom | tr -d ' \n'; }

# _oar_uts_of PID: remember the UTS namespace PID moves into (unshare
# --uts): every process a daemon started, jobs that left their parent
# included, is in it; none of the test's own are.
_oar_uts_of() {
    local pid=$1 mine uts i
    mine=$(readlink /proc/self/ns/uts)
    for ((i = 0; i < 50; i++)); do
        uts=$(readlink "/proc/$pid/ns/uts" 2>/dev/null) || break
        if [[ $uts != "$mine" ]]; then
            _oar_uts+=("$uts")
            return 0
        fi
        sleep 0.1
    done
    _oar_err "process $pid did not get its own UTS namespace"
    return 1
}

# _oar_uts_pids: PIDs of the processes in those namespaces
_oar_uts_pids() {
    local p uts u
    ((${#_oar_uts[@]} > 0)) || return 0
    for p in /proc/[0-9]*; do
        uts=$(readlink "$p/ns/uts" 2>/dev/null) || continue
        for u in "${_oar_uts[@]}"; do
            if [[ $uts == "$u" ]]; then
                echo "${p#/proc/}"
                break
            fi
        done
    done
}

# _oar_conf PASSWD PASSWD_RO: the test's oar.conf, from the package's
_oar_conf() {
    local pw=$1 pw_ro=$2 ssh
    ssh="/usr/bin/ssh -p $OAR_SSHD_PORT -e none -F /dev/null"
    ssh+=" -i $_oar_dir/ssh/id_oar -o IdentitiesOnly=yes -o BatchMode=yes"
    ssh+=" -o UserKnownHostsFile=$_oar_dir/ssh/known_hosts"
    ssh+=" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
    sed -e "s|^DB_PORT=.*|DB_PORT=\"$OAR_PG_PORT\"|" \
        -e "s|^DB_HOSTNAME=.*|DB_HOSTNAME=\"127.0.0.1\"|" \
        -e "s|^DB_BASE_PASSWD=.*|DB_BASE_PASSWD=\"$pw\"|" \
        -e "s|^DB_BASE_PASSWD_RO=.*|DB_BASE_PASSWD_RO=\"$pw_ro\"|" \
        -e "s|^SERVER_HOSTNAME=.*|SERVER_HOSTNAME=\"$_oar_head\"|" \
        -e "s|^SERVER_PORT=.*|SERVER_PORT=\"$OAR_SERVER_PORT\"|" \
        -e "s|^LOG_FILE=.*|LOG_FILE=\"$_oar_dir/oar.log\"|" \
        -e "s|^LOG_LEVEL=.*|LOG_LEVEL=\"3\"|" \
        -e "s|^OAR_RUNTIME_DIRECTORY=.*|OAR_RUNTIME_DIRECTORY=\"$_oar_dir/run\"|" \
        -e "s|^OPENSSH_CMD=.*|OPENSSH_CMD=\"$ssh\"|" \
        -e "s|^JOB_RESOURCE_MANAGER_PROPERTY_DB_FIELD=|#&|" \
        /etc/oar/oar.conf
    # Without it a submission within 5 s of the last pass waits for the
    # next one (up to 10 s more).
    echo 'SCHEDULER_MIN_TIME_BETWEEN_2_CALLS="0"'
}

# _oar_etc NS: /etc/netns/NS/{hosts,oar/}
_oar_etc() {
    local ns=$1 d=/etc/netns/$1
    if [[ -e $d ]]; then
        _oar_err "'$d' already exists"
        return 1
    fi
    if [[ ! -d /etc/netns ]]; then
        mkdir -m 0755 /etc/netns || return 1
        _oar_netns_made=1
    fi
    mkdir -m 0755 "$d" || return 1
    _oar_etc_made+=("$d")
    cp "$_oar_dir/hosts" "$d/hosts" &&
        cp -a /etc/oar "$d/oar" &&
        install -m 0600 -o oar -g root "$_oar_dir/oar.conf" "$d/oar/oar.conf"
}

_oar_alive() {
    local n out
    out=$(_oar_root oarnodes -s 2>/dev/null) || return 1
    for n in "${_oar_nodes[@]}"; do
        grep -qx "$n" <<<"$out" || return 1
    done
    # "a1" then "    1 : Alive", one block per host
    awk -v want="${#_oar_nodes[@]}" '/: Alive$/ { n++ } END { exit n != want }' \
        <<<"$out"
}

_oar_create() {
    local head=$1 n ns pw pw_ro i
    shift
    _oar_split "$head" >/dev/null || return 1
    (($# > 0)) || { _oar_err "usage: oar_create HEAD NODE..."; return 1; }
    for n in "$@"; do
        _oar_split "$n" >/dev/null || return 1
        [[ $n != "$head" ]] || { _oar_err "'$n' is the head"; return 1; }
    done
    for n in "$head" "$@"; do
        ns=$(_oar_ns "$n")
        [[ -e /run/netns/$ns ]] || { _oar_err "no namespace '$ns' for '$n'"; return 1; }
    done
    getent passwd oar >/dev/null || { _oar_err "no user 'oar' (run scripts/setup.sh)"; return 1; }
    _oar_pg_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -x $_oar_pg_bin/initdb ]] || { _oar_err "no PostgreSQL (run scripts/setup.sh)"; return 1; }

    _oar_head=$head
    _oar_head_ns=$(_oar_ns "$head")
    _oar_nodes=("$@")
    _oar_dir=$VC_TESTDIR/oar
    # oar (ssh key, log), postgres and job users walk through it.
    chmod 0711 "$VC_TESTDIR"
    mkdir -m 0755 "$_oar_dir" "$_oar_dir/ssh" "$_oar_dir/run" "$_oar_dir/pgsock"
    : >"$_oar_dir/setup.log"
    chown oar:oar "$_oar_dir/run"
    install -m 0644 -o oar -g oar /dev/null "$_oar_dir/oar.log"

    # ssh: the key bipbip uses as oar, sshd's authorized_keys (OAR_KEY=1
    # tells oarsh_shell it is OAR's own connection), the nodes' host key
    # (the package's, in /etc/oar) in known_hosts.
    _oar_do "cannot make an ssh key" \
        ssh-keygen -q -t ed25519 -N '' -C oar-test -f "$_oar_dir/ssh/id_oar" || return 1
    chown oar:oar "$_oar_dir/ssh/id_oar" "$_oar_dir/ssh/id_oar.pub"
    printf 'environment="OAR_KEY=1" %s\n' "$(cat "$_oar_dir/ssh/id_oar.pub")" \
        >"$_oar_dir/ssh/authorized_keys"
    : >"$_oar_dir/ssh/known_hosts"
    for n in "$@"; do
        printf '%s,%s %s\n' "$n" "$(_oar_ip "$n")" \
            "$(cut -d' ' -f1,2 /etc/oar/oar_ssh_host_rsa_key.pub)" \
            >>"$_oar_dir/ssh/known_hosts"
    done
    chmod 0644 "$_oar_dir/ssh/authorized_keys" "$_oar_dir/ssh/known_hosts"

    {
        printf '127.0.0.1\tlocalhost\n'
        for n in "$head" "$@"; do
            printf '%s\t%s\n' "$(_oar_ip "$n")" "$n"
        done
    } >"$_oar_dir/hosts"
    pw=$(_oar_pw)
    pw_ro=$(_oar_pw)
    _oar_conf "$pw" "$pw_ro" >"$_oar_dir/oar.conf"
    for n in "$head" "$@"; do
        _oar_etc "$(_oar_ns "$n")" || { _oar_err "cannot write /etc/netns for '$n'"; return 1; }
    done

    # PostgreSQL, peer authentication refuses user oar over the socket:
    # TCP with passwords.
    local admin_pw
    admin_pw=$(_oar_pw)
    echo "$admin_pw" >"$_oar_dir/pgpw"
    install -m 0600 -o postgres -g postgres /dev/null "$_oar_dir/pg.log"
    chown postgres "$_oar_dir/pgpw" "$_oar_dir/pgsock"
    chmod 0600 "$_oar_dir/pgpw"
    mkdir -m 0700 "$_oar_dir/pg"
    chown postgres:postgres "$_oar_dir/pg"
    (cd "$_oar_dir" && _oar_do "initdb failed" \
        setpriv --reuid=postgres --regid=postgres --init-groups \
        "$_oar_pg_bin/initdb" -D "$_oar_dir/pg" -U postgres -E UTF8 --locale=C \
        --auth-local=peer --auth-host=scram-sha-256 --pwfile="$_oar_dir/pgpw") ||
        return 1
    oar_db_start || return 1
    _oar_do "oar-database --create failed" _oar_root /usr/sbin/oar-database --create \
        --db-admin-user=postgres --db-admin-pass="$admin_pw" -y || return 1

    _oar_do "cannot add property host" _oar_root /usr/sbin/oarproperty -c -a host || return 1
    _oar_do "cannot add property cpu" _oar_root /usr/sbin/oarproperty -a cpu || return 1
    _oar_do "cannot add property core" _oar_root /usr/sbin/oarproperty -a core || return 1
    i=0
    for n in "$@"; do
        i=$((i + 1))
        _oar_do "cannot add resource '$n'" _oar_root /usr/sbin/oarnodesetting -a -h "$n" \
            -p host="$n" -p cpu="$i" -p core="$i" -p besteffort=YES || return 1
    done

    # sshd's privilege separation directory (the package makes it at boot).
    if [[ ! -d /run/sshd ]]; then
        mkdir -m 0755 /run/sshd
        _oar_run_sshd_made=1
    fi
    for n in "$@"; do
        ns=$(_oar_ns "$n")
        # StrictModes: the keys are under /tmp (sticky, world-writable).
        ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && shift && exec "$@"' \
            sh "$n" setsid /usr/sbin/sshd -D -f /etc/oar/sshd_config \
            -o PidFile=none -o StrictModes=no \
            -o AuthorizedKeysFile="$_oar_dir/ssh/authorized_keys" \
            -E "$_oar_dir/sshd-$n.log" </dev/null >>"$_oar_dir/sshd-$n.out" 2>&1 &
        _oar_sshd_pids+=($!)
        _oar_uts_of $! || return 1
    done
    for n in "$@"; do
        # What bipbip does, as oar, from the head.
        wait_for 10 _oar_root setpriv --reuid=oar --regid=oar --init-groups \
            env HOME=/var/lib/oar /usr/bin/ssh -p "$OAR_SSHD_PORT" -F /dev/null \
            -i "$_oar_dir/ssh/id_oar" -o IdentitiesOnly=yes -o BatchMode=yes \
            -o UserKnownHostsFile="$_oar_dir/ssh/known_hosts" \
            -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
            -x -T "$n" true || {
            _oar_err "OAR's sshd on '$n' does not let oar in:" \
                "$(tail -n 1 "$_oar_dir/sshd-$n.log")"
            return 1
        }
    done

    # Named after the head in a UTS namespace of its own, like the sshd's:
    # what they start is found by it at cleanup. Its own session too.
    ip netns exec "$_oar_head_ns" unshare --uts sh -c \
        'hostname "$1" && shift && exec "$@"' sh "$head" \
        setsid /usr/sbin/Almighty </dev/null >>"$_oar_dir/almighty.out" 2>&1 &
    _oar_almighty_pid=$!
    _oar_uts_of "$_oar_almighty_pid" || return 1
    if ! wait_for 30 _oar_alive; then
        _oar_err "nodes not Alive in 30 s: $(tail -n 1 "$_oar_dir/oar.log")"
        return 1
    fi
}

# oar_create HEAD NODE...: on error one line on stderr; what was made is
# undone at cleanup (oar_destroy).
# oar_db_start / oar_db_stop: OAR's PostgreSQL up, or down (then every
# OAR command fails or blocks, as with an unreachable OAR server; Almighty
# waits for it).
oar_db_start() {
    if ! (cd "$_oar_dir" && _oar_root setpriv --reuid=postgres --regid=postgres \
        --init-groups "$_oar_pg_bin/pg_ctl" -D "$_oar_dir/pg" -l "$_oar_dir/pg.log" \
        -w -t 30 -o "-p $OAR_PG_PORT -k $_oar_dir/pgsock -c listen_addresses=127.0.0.1" \
        start) >>"$_oar_dir/setup.log" 2>&1; then
        _oar_err "PostgreSQL does not start: $(grep -m 1 -E 'FATAL|ERROR' "$_oar_dir/pg.log")"
        return 1
    fi
}
oar_db_stop() {
    (cd "$_oar_dir" && setpriv --reuid=postgres --regid=postgres --init-groups \
        "$_oar_pg_bin/pg_ctl" -D "$_oar_dir/pg" -m fast -w stop) >>"$_oar_dir/setup.log" 2>&1 ||
        { _oar_err "PostgreSQL does not stop"; return 1; }
}

oar_create() {
    if [[ -n $_oar_head ]]; then
        _oar_err "OAR already created on '$_oar_head'"
        return 1
    fi
    if [[ -z $_oar_registered ]]; then
        cleanup_fn oar_destroy
        _oar_registered=1
    fi
    _oar_create "$@"
}

# oar_sub USER OARSUB_ARGS...: prints the job id
oar_sub() {
    local user=$1 out id
    shift
    out=$(oar_as "$user" oarsub "$@" 2>&1 </dev/null) || true
    id=$(sed -n 's/^OAR_JOB_ID=\([0-9]\+\)$/\1/p' <<<"$out")
    if [[ -z $id ]]; then
        _oar_err "oarsub failed: $(tail -n 1 <<<"$out")"
        return 1
    fi
    echo "$id"
}

oar_state() {
    local out
    out=$(_oar_root oarstat -s -j "$1" 2>/dev/null) || return 1
    # "12: Running"
    sed -n "s/^$1: //p" <<<"$out"
}

oar_state_is() { [[ $(oar_state "$1") == "$2" ]]; }
oar_wait_state() { wait_for "$3" oar_state_is "$1" "$2"; }

oar_events() {
    # (-e ignores -J; -f -J carries the events)
    _oar_root oarstat -f -J -j "$1" 2>/dev/null |
        python3 -c '
import json, sys
for j in json.load(sys.stdin).values():
    for e in sorted(j.get("events") or [], key=lambda e: e["event_id"]):
        print(e["type"])'
}

# oar_resubmission ID: the id of the job OAR resubmitted ID as (an
# idempotent best-effort job killed for another), from ID's events.
oar_resubmission() {
    _oar_root oarstat -f -J -j "$1" 2>/dev/null |
        python3 -c '
import json, re, sys
for j in json.load(sys.stdin).values():
    for e in j.get("events") or []:
        m = re.search(r"new id = (\d+)", e["description"])
        if e["type"] == "RESUBMIT_JOB_AUTOMATICALLY" and m:
            print(m.group(1))
            sys.exit(0)
sys.exit(1)'
}

oar_nudge() {
    _oar_root bash -c "echo Qsub >/dev/tcp/127.0.0.1/$OAR_SERVER_PORT" 2>/dev/null
}

oar_nudge_every() {
    local secs=$1
    (
        # Its sleep dies with it: nothing outlives the cleanup.
        sp=
        trap - EXIT
        trap '[[ -n $sp ]] && kill "$sp" 2>/dev/null; exit 0' TERM
        while :; do
            sleep "$secs" &
            sp=$!
            wait "$sp"
            oar_nudge || true
        done
    ) </dev/null >/dev/null 2>&1 &
    _oar_nudger_pids+=($!)
}

oar_log() {
    [[ -n $_oar_dir && -f $_oar_dir/oar.log ]] || return 0
    echo "--- oar.log (last ${1:-40} lines)" >&2
    tail -n "${1:-40}" "$_oar_dir/oar.log" >&2
}

# _oar_ended PID: gone, or a zombie (ours until waited for, or one init
# has not reaped yet)
_oar_ended() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [[ -z $st || $st == Z ]]
}

# _oar_kill_wait SIG PID...: signal each PID, wait up to 5 s for them.
_oar_kill_wait() {
    local sig=$1 pid i left
    shift
    for pid in "$@"; do
        kill "-$sig" "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 50; i++)); do
        left=
        for pid in "$@"; do
            _oar_ended "$pid" || left=1
        done
        [[ -n $left ]] || return 0
        sleep 0.1
    done
}

oar_destroy() {
    local pid d pids i
    for pid in "${_oar_nudger_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    _oar_nudger_pids=()
    if [[ -n $_oar_almighty_pid ]]; then
        _oar_kill_wait TERM "$_oar_almighty_pid"
        kill -KILL "$_oar_almighty_pid" 2>/dev/null || true
        wait "$_oar_almighty_pid" 2>/dev/null || true
        _oar_almighty_pid=
    fi
    if ((${#_oar_sshd_pids[@]} > 0)); then
        _oar_kill_wait TERM "${_oar_sshd_pids[@]}"
        for pid in "${_oar_sshd_pids[@]}"; do
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
        _oar_sshd_pids=()
    fi
    if [[ -n $_oar_dir && -f $_oar_dir/pg/postmaster.pid ]]; then
        pid=$(head -n 1 "$_oar_dir/pg/postmaster.pid")
        (cd "$_oar_dir" && setpriv --reuid=postgres --regid=postgres --init-groups \
            "$_oar_pg_bin/pg_ctl" -D "$_oar_dir/pg" -m immediate -w stop) \
            >/dev/null 2>&1 || true
        if [[ $pid =~ ^[0-9]+$ ]] && ! _oar_ended "$pid"; then
            _oar_kill_wait KILL "$pid"
        fi
    fi
    # What the daemons left (Almighty's children, oarexec, jobs: OAR's
    # kill only follows parent links), by PID.
    for ((i = 0; i < 20; i++)); do
        pids=$(_oar_uts_pids)
        [[ -n $pids ]] || break
        for pid in $pids; do
            kill -KILL "$pid" 2>/dev/null || true
        done
        sleep 0.1
    done
    _oar_uts=()
    for d in "${_oar_etc_made[@]}"; do
        rm -rf "$d"
    done
    _oar_etc_made=()
    if [[ -n $_oar_netns_made ]]; then
        rmdir /etc/netns 2>/dev/null || true
        _oar_netns_made=
    fi
    if [[ -n $_oar_run_sshd_made ]]; then
        rmdir /run/sshd 2>/dev/null || true
        _oar_run_sshd_made=
    fi
    _oar_head=
    _oar_head_ns=
    _oar_nodes=()
    return 0
}

# oar_gc: what runs killed before their cleanup left: /etc/netns/vct<PID>-*
# of dead PIDs, and the processes (Almighty, PostgreSQL, sshd, jobs) in
# those namespaces if they still exist.
oar_gc() {
    local d ns pid p
    for d in /etc/netns/vct[0-9]*-*; do
        [[ -d $d ]] || continue
        ns=${d#/etc/netns/}
        pid=${ns#vct}
        pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null && continue
        if [[ -e /run/netns/$ns ]]; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$p" 2>/dev/null || true
            done
        fi
        rm -rf "$d"
    done
    rmdir /etc/netns 2>/dev/null || true
    return 0
}
