# Sites joined by an emulated WAN, for integration tests (sourced, bash,
# after tests/lib/functions.sh).
#
#   sites_create 2 2 --delay 20 --rate 100 [--stretched]
#   on_node a 1 ping -c 3 "$(node_ip b 1)"
#   wan_cut; wan_restore; wan_set --loss 1
#
# Topology, site s = a, b, c... (index 1, 2, 3...), node i = 1..M:
#   ${prefix}-${site}gw   gateway: bridge br0 10.77.s.254/24 joining the
#                         nodes (ports n1..nM), TAP wan0 10.77.0.s/24 owned
#                         by wanem, ip_forward=1, 10.77.t.0/24 via 10.77.0.t
#   ${prefix}-${site}${i} node: veth eth0 enslaved to bridge br0, which
#                         carries 10.77.s.i/24; default via 10.77.s.254.
#                         Guests attach their TAPs to this br0.
# All interfaces are created inside the namespaces; the root namespace is
# never touched. One wanem process joins the wan0 of all gateways (a link
# with two sites, a learning hub with more); it is started with
# --die-with-parent, so sites_create must run in the test's main shell.
# To run a command in the background and keep its PID, use
# `ip netns exec "$(node_ns a 1)" CMD &` (ip netns exec execs CMD), not
# `on_node a 1 CMD &`, whose $! is a subshell.
# IPv6 is disabled in the namespaces so that WAN byte counts only show the
# traffic a test makes.
#
# Stretched sites (`sites_create ... --stretched`): all sites' br0 form one
# L2 segment, as Grid'5000's KaVLAN or a provider's stretched VLAN give it
# on real sites, so a guest keeps its address, MAC and open TCP connections
# when it migrates to another site. Each gateway adds vxlan0 (VNI 77, UDP
# 4789, local 10.77.0.s over wan0, which wanem relays like any frame, one
# all-zero FDB entry per other gateway for flooding) as a port of its br0.
# VXLAN adds 50 bytes per frame: wan0 carries 1550-byte packets (the
# "jumbo" underlay real stretched VLANs use; wanem takes frames up to
# 64 KiB), so vxlan0, the bridges, nodes and guests keep MTU 1500 and a
# guest needs no setting. Node addresses are still routed between sites
# through wan0, as without the option (migration streams included); a
# guest that moved keeps its home gateway, reached over the stretched
# L2. QEMU's self-announce after an incoming migration (a RARP, and GARPs
# from the guest's virtio-net driver) crosses the VXLAN, so every bridge
# on the way learns where the guest's MAC went and its traffic follows
# (tests/test-migrate-tcp.sh holds a TCP stream across such a move).
# Broadcasts of every site (ARP) cross the WAN too.
#
# Without --stretched (routed sites, the default, unchanged), a guest that
# moved keeps an address of its home subnet that the new site's LAN does
# not carry: its home LAN keeps sending to its old port, and its gateway
# is gone, so every open connection to it breaks. vm_adopt (guests.sh)
# routes it on its new node only, for new connections from that node.

VC_SITE_PREFIX=${VC_SITE_PREFIX:-vct$$}
VC_WANEM=${VC_WANEM:-$VC_BUILDDIR/tests/wanem/wanem}

_sites_letters=abcdefghijklmnopqrstuvwxyz
_sites_n=0
_sites_nodes=0
_sites_wanem_pid=
_sites_cleanup_registered=
_sites_sock=
_sites_created=()
_sites_stretched=
# The VXLAN joining stretched sites, and the WAN MTU that carries it.
_SITES_VNI=77
_SITES_WAN_MTU=1550

_sites_err() { printf 'sites: %s\n' "$*" >&2; }

# _sites_do WHAT CMD...: run CMD; on failure report WHAT and its first line
# of error output as one line.
_sites_do() {
    local what=$1 out
    shift
    if ! out=$("$@" 2>&1); then
        out=${out%%$'\n'*}
        _sites_err "$what${out:+: $out}"
        return 1
    fi
}

_sites_is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }

# site_index SITE: a -> 1, b -> 2...
site_index() {
    local pre=${_sites_letters%%"$1"*}
    if [[ ! $1 =~ ^[a-z]$ ]]; then
        _sites_err "bad site '$1'"
        return 1
    fi
    echo $((${#pre} + 1))
}

_sites_letter() { echo "${_sites_letters:$(($1 - 1)):1}"; }

gw_ns() { echo "$VC_SITE_PREFIX-${1}gw"; }
node_ns() { echo "$VC_SITE_PREFIX-$1$2"; }
node_ip() {
    local s
    s=$(site_index "$1") || return 1
    echo "10.77.$s.$2"
}
gw_ip() {
    local s
    s=$(site_index "$1") || return 1
    echo "10.77.$s.254"
}

on_node() {
    local ns
    ns=$(node_ns "$1" "$2")
    shift 2
    ip netns exec "$ns" "$@"
}

on_gw() {
    local ns
    ns=$(gw_ns "$1")
    shift
    ip netns exec "$ns" "$@"
}

_sites_list_ns() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1" || true
}

_sites_newns() {
    local ns=$1
    _sites_do "cannot create namespace '$ns'" ip netns add "$ns" || return 1
    _sites_created+=("$ns")
    _sites_do "cannot configure namespace '$ns'" \
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 || return 1
    _sites_do "cannot bring up lo in '$ns'" \
        ip -n "$ns" link set lo up || return 1
}

_sites_kill_wanem() {
    local pid=$_sites_wanem_pid i
    [[ -n $pid ]] || return 0
    _sites_wanem_pid=
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$VC_TESTDIR/wanem.pid"
}

_sites_undo() {
    local ns
    _sites_kill_wanem
    for ns in "${_sites_created[@]}"; do
        ip netns delete "$ns" 2>/dev/null || true
    done
    _sites_created=()
    _sites_n=0
    _sites_nodes=0
    _sites_stretched=
}

_sites_create() {
    local nsites=$1 nodes=$2 delay=20 rate=100 loss=0 stretched='' s t i
    local site gw ns
    local -a ports=() names=()
    shift 2
    while (($#)); do
        case $1 in
        --delay | --rate | --loss)
            if (($# < 2)) || ! _sites_is_num "$2"; then
                _sites_err "bad value '${2-}' for '$1'"
                return 1
            fi
            case $1 in
            --delay) delay=$2 ;;
            --rate) rate=$2 ;;
            --loss) loss=$2 ;;
            esac
            shift 2
            ;;
        --stretched)
            stretched=1
            shift
            ;;
        *)
            _sites_err "unknown option '$1'"
            return 1
            ;;
        esac
    done
    if [[ ! $nsites =~ ^[0-9]+$ ]] || ((nsites < 1 || nsites > 26)); then
        _sites_err "bad number of sites '$nsites': expected 1 to 26"
        return 1
    fi
    if [[ ! $nodes =~ ^[0-9]+$ ]] || ((nodes < 0 || nodes > 253)); then
        _sites_err "bad number of nodes '$nodes': expected 0 to 253"
        return 1
    fi
    if ! awk -v l="$loss" 'BEGIN { exit !(l <= 100) }'; then
        _sites_err "bad loss '$loss': expected 0 to 100"
        return 1
    fi
    if ((_sites_n > 0)); then
        _sites_err "sites with prefix '$VC_SITE_PREFIX' already exist"
        return 1
    fi
    if [[ ! -x $VC_WANEM ]]; then
        _sites_err "wanem not found at '$VC_WANEM'"
        return 1
    fi
    for ((s = 1; s <= nsites; s++)); do
        site=$(_sites_letter "$s")
        names+=("$(gw_ns "$site")")
        for ((i = 1; i <= nodes; i++)); do
            names+=("$(node_ns "$site" "$i")")
        done
    done
    for ns in "${names[@]}"; do
        if [[ -e /run/netns/$ns ]]; then
            _sites_err "namespace '$ns' already exists"
            return 1
        fi
    done

    _sites_n=$nsites
    _sites_nodes=$nodes
    if [[ -z $_sites_cleanup_registered ]]; then
        cleanup_fn sites_destroy
        _sites_cleanup_registered=1
    fi

    for ((s = 1; s <= nsites; s++)); do
        site=$(_sites_letter "$s")
        gw=$(gw_ns "$site")
        _sites_newns "$gw" || return 1
        _sites_do "cannot enable forwarding in '$gw'" \
            ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=1 || return 1
        _sites_do "cannot create bridge in '$gw'" \
            ip -n "$gw" link add br0 type bridge || return 1
        _sites_do "cannot configure bridge in '$gw'" \
            ip -n "$gw" addr add "10.77.$s.254/24" dev br0 || return 1
        _sites_do "cannot bring up bridge in '$gw'" \
            ip -n "$gw" link set br0 up || return 1
        for ((i = 1; i <= nodes; i++)); do
            ns=$(node_ns "$site" "$i")
            _sites_newns "$ns" || return 1
            _sites_do "cannot create veth between '$ns' and '$gw'" \
                ip -n "$ns" link add eth0 type veth \
                peer name "n$i" netns "$gw" || return 1
            _sites_do "cannot attach 'n$i' in '$gw'" \
                ip -n "$gw" link set "n$i" master br0 up || return 1
            _sites_do "cannot create bridge in '$ns'" \
                ip -n "$ns" link add br0 type bridge || return 1
            _sites_do "cannot attach eth0 in '$ns'" \
                ip -n "$ns" link set eth0 master br0 up || return 1
            _sites_do "cannot configure bridge in '$ns'" \
                ip -n "$ns" addr add "10.77.$s.$i/24" dev br0 || return 1
            _sites_do "cannot bring up bridge in '$ns'" \
                ip -n "$ns" link set br0 up || return 1
            _sites_do "cannot add default route in '$ns'" \
                ip -n "$ns" route add default via "10.77.$s.254" || return 1
        done
        ports+=(--port "$gw:wan0")
    done

    _sites_sock=$VC_TESTDIR/wanem.sock
    rm -f "$_sites_sock" "$VC_TESTDIR/wanem.pid"
    "$VC_WANEM" "${ports[@]}" --control "$_sites_sock" \
        --delay "$delay" --rate "$rate" --loss "$loss" \
        --pidfile "$VC_TESTDIR/wanem.pid" --die-with-parent \
        </dev/null >"$VC_TESTDIR/wanem.log" 2>&1 &
    _sites_wanem_pid=$!
    # The pidfile is written once the TAPs and the socket are ready.
    for ((i = 0; i < 100; i++)); do
        [[ -s $VC_TESTDIR/wanem.pid ]] && break
        if ! kill -0 "$_sites_wanem_pid" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    if [[ ! -s $VC_TESTDIR/wanem.pid ]]; then
        local why
        why=$(head -n1 "$VC_TESTDIR/wanem.log" 2>/dev/null || true)
        _sites_err "wanem failed to start${why:+: $why}"
        return 1
    fi

    for ((s = 1; s <= nsites; s++)); do
        gw=$(gw_ns "$(_sites_letter "$s")")
        _sites_do "cannot configure wan0 in '$gw'" \
            ip -n "$gw" addr add "10.77.0.$s/24" dev wan0 || return 1
        _sites_do "cannot bring up wan0 in '$gw'" \
            ip -n "$gw" link set wan0 up || return 1
        for ((t = 1; t <= nsites; t++)); do
            ((t != s)) || continue
            _sites_do "cannot add route to site $t in '$gw'" \
                ip -n "$gw" route add "10.77.$t.0/24" via "10.77.0.$t" \
                || return 1
        done
    done
    if [[ -n $stretched ]]; then
        _sites_stretch "$nsites" || return 1
    fi
}

# _sites_stretch NSITES: join the gateways' br0 into one L2 segment.
_sites_stretch() {
    local nsites=$1 s t gw
    _sites_stretched=1
    for ((s = 1; s <= nsites; s++)); do
        gw=$(gw_ns "$(_sites_letter "$s")")
        _sites_do "cannot set the MTU of wan0 in '$gw'" \
            ip -n "$gw" link set wan0 mtu "$_SITES_WAN_MTU" || return 1
        _sites_do "cannot create vxlan0 in '$gw'" \
            ip -n "$gw" link add vxlan0 mtu 1500 type vxlan \
            id "$_SITES_VNI" local "10.77.0.$s" dev wan0 dstport 4789 \
            || return 1
        for ((t = 1; t <= nsites; t++)); do
            ((t != s)) || continue
            _sites_do "cannot flood vxlan0 to site $t in '$gw'" \
                bridge -n "$gw" fdb append 00:00:00:00:00:00 dev vxlan0 \
                dst "10.77.0.$t" || return 1
        done
        _sites_do "cannot attach vxlan0 in '$gw'" \
            ip -n "$gw" link set vxlan0 master br0 up || return 1
    done
}

# sites_stretched: true if the sites were created with --stretched.
sites_stretched() { [[ -n $_sites_stretched ]]; }

# sites_create NSITES NODES [--delay MS] [--rate MBIT] [--loss PCT]
#              [--stretched]
# Rate 0 means unlimited. On error: one line on stderr, nothing left.
sites_create() {
    if (($# < 2)); then
        _sites_err "usage: sites_create NSITES NODES [--delay MS]" \
            "[--rate MBIT] [--loss PCT] [--stretched]"
        return 1
    fi
    local had=$_sites_n
    if ! _sites_create "$@"; then
        # Only undo what this call built, never sites that were there.
        if ((had == 0)); then
            _sites_undo
        fi
        return 1
    fi
    _sites_created=()
}

# sites_destroy: stop wanem, delete every namespace of this prefix. A
# process a test left running inside one gets SIGTERM, by PID, since it
# would keep the namespace and its interfaces alive.
sites_destroy() {
    local ns pid
    _sites_kill_wanem
    for ns in $(_sites_list_ns "$VC_SITE_PREFIX-"); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
        ip netns delete "$ns" 2>/dev/null || true
    done
    _sites_created=()
    _sites_n=0
    _sites_nodes=0
    _sites_stretched=
    return 0
}

# sites_gc: delete namespaces vct<PID>-* left by runs whose PID is gone.
sites_gc() {
    local ns pid
    for ns in $(_sites_list_ns 'vct[0-9]+-'); do
        pid=${ns#vct}
        pid=${pid%%-*}
        if ! kill -0 "$pid" 2>/dev/null; then
            ip netns delete "$ns" 2>/dev/null || true
        fi
    done
    # Guest RAM directories of killed runs (tests/lib/guests.sh).
    for ns in /dev/shm/vct[0-9]*; do
        [[ -d $ns ]] || continue
        pid=${ns#/dev/shm/vct}
        kill -0 "$pid" 2>/dev/null && continue
        # Guests that outlived their run (libvirt's QEMUs are daemons, not
        # in a namespace's process list): their RAM is in that directory.
        for pid in $(pgrep -f -- "$ns/"); do
            kill -9 "$pid" 2>/dev/null || true
        done
        rm -rf "$ns"
    done
    return 0
}

_sites_ctl() {
    if [[ -z $_sites_wanem_pid ]]; then
        _sites_err "no WAN: sites_create has not run"
        return 1
    fi
    "$VC_WANEM" ctl "$_sites_sock" "$@"
}

# wan_set [--delay MS] [--rate MBIT] [--loss PCT]
wan_set() {
    local -a args=()
    while (($#)); do
        case $1 in
        --delay | --rate | --loss)
            if (($# < 2)) || ! _sites_is_num "$2"; then
                _sites_err "bad value '${2-}' for '$1'"
                return 1
            fi
            args+=("${1#--}=$2")
            shift 2
            ;;
        *)
            _sites_err "unknown option '$1'"
            return 1
            ;;
        esac
    done
    _sites_ctl set "${args[@]}" >/dev/null
}

wan_cut() { _sites_ctl cut >/dev/null; }
wan_restore() { _sites_ctl restore >/dev/null; }
# wan_stats: one line, per port rx/tx frames and bytes, drops by reason.
wan_stats() { _sites_ctl stats; }

# wan_bytes SITE: bytes sent plus received on that gateway's wan0.
wan_bytes() {
    local gw out
    gw=$(gw_ns "$1")
    out=$(ip netns exec "$gw" cat /sys/class/net/wan0/statistics/rx_bytes \
        /sys/class/net/wan0/statistics/tx_bytes) || return 1
    echo $((${out%%$'\n'*} + ${out##*$'\n'}))
}
