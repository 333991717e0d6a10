# dht-pagesd on site nodes, for integration tests. Source after sites.sh
# and guests.sh.
#
#   pages_start SITE NODE [DAEMON OPTION...]   start dht-pagesd on a node
#   pages_cli SITE NODE ARGS...                dht-pages against that node
#   pages_stat SITE NODE KEY                   one counter of its stats
#   pages_kill SITE NODE                       SIGKILL (a crash)
#   pages_wait_members SITE NODE N [TIMEOUT]   until it sees N others and
#                                              has rebalanced
#   pages_site_up SITE N [INDEXED...]          dht-pagesd (--hash-rate 0)
#                                              on nodes 1..N, each seeing
#                                              the others; then each node
#                                              named INDEXED has indexed
#                                              its guests once
#
# Every node of a site shares the site key (a file in $VC_TESTDIR); node 1
# is the OpenDHT bootstrap. Guest RAM files of a node's VMs are indexed
# from vm_ram_dir SITE NODE.

VC_PAGESD=${VC_PAGESD:-$VC_BUILDDIR/dht-pages/pagesd/dht-pagesd}
VC_PAGES_CLI=${VC_PAGES_CLI:-$VC_BUILDDIR/dht-pages/cli/dht-pages}

pages_key() { echo "$VC_TESTDIR/site-$1.key"; }
# _pages_lv SITE NODE: true if the node runs libvirtd (tests/lib/libvirt.sh):
# then dht-pagesd runs in the node's mount namespace and listens where the
# domains' QEMU looks for it, /run/dht-pages/resolver.sock.
_pages_lv() { declare -F lv_holder >/dev/null && lv_holder "$1" "$2" >/dev/null; }

pages_sock() {
    if _pages_lv "$1" "$2"; then
        echo "$(lv_root "$1" "$2")$VC_RESOLVER_SOCKET"
    else
        echo "$VC_TESTDIR/pagesd-$1$2.sock"
    fi
}
pages_log() { echo "$VC_TESTDIR/pagesd-$1$2.log"; }
pages_pid() { cat "$VC_TESTDIR/pagesd-$1$2.pid"; }

pages_start() {
    local site=$1 node=$2 key boot=()
    shift 2
    key=$(pages_key "$site")
    [[ -f $key ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key"
    ((node == 1)) || boot=(--bootstrap "$(node_ip "$site" 1):4222")
    vm_ram_dir_create "$site" "$node"
    local run=(ip netns exec "$(node_ns "$site" "$node")") sock
    sock=$(pages_sock "$site" "$node")
    if _pages_lv "$site" "$node"; then
        run=(nsenter -t "$(lv_holder "$site" "$node")" -m -n)
        sock=$VC_RESOLVER_SOCKET
    fi
    # Guests of guests.sh, and libvirt's layout under memory_backing_dir.
    "${run[@]}" "$VC_PAGESD" \
        --site "$site" --site-key-file "$key" \
        --address "$(node_ip "$site" "$node")" \
        --resolver-socket "$sock" \
        --ram-glob "$(vm_ram_dir "$site" "$node")/*.ram" \
        --ram-glob "$(vm_ram_dir "$site" "$node")/libvirt/qemu/*/pc.ram" \
        "${boot[@]}" "$@" >"$(pages_log "$site" "$node")" 2>&1 &
    echo $! >"$VC_TESTDIR/pagesd-$site$node.pid"
    cleanup_fn pages_stop "$site" "$node"
    wait_for 10 test -S "$(pages_sock "$site" "$node")" || {
        echo "pages: dht-pagesd on $site$node did not start:" >&2
        tail -n 5 "$(pages_log "$site" "$node")" >&2
        return 1
    }
}

pages_stop() {
    local pid
    pid=$(pages_pid "$1" "$2" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    wait_for 5 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
}

pages_kill() {
    local pid
    pid=$(pages_pid "$1" "$2")
    kill -9 "$pid"
    wait_for 5 bash -c "! kill -0 $pid" || true
}

pages_cli() {
    local site=$1 node=$2
    shift 2
    "$VC_PAGES_CLI" --socket "$(pages_sock "$site" "$node")" "$@"
}

pages_stat() {
    pages_cli "$1" "$2" stats | awk -v k="$3" -F': ' '$1 == k { print $2 }'
}

_pages_settled() {
    [[ $(pages_stat "$1" "$2" member_count) == "$3" &&
       $(pages_stat "$1" "$2" rebalanced) == true ]]
}

# pages_wait_indexed SITE NODE [PASSES] [TIMEOUT]: until the node has
# hashed all its guests' RAM PASSES more times (default 1) from now.
pages_wait_indexed() {
    local site=$1 node=$2 passes=${3:-1} timeout=${4:-60} start
    start=$(pages_stat "$site" "$node" ram_passes)
    wait_for "$timeout" _pages_passes_reached "$site" "$node" $((start + passes))
}

_pages_passes_reached() {
    (($(pages_stat "$1" "$2" ram_passes) >= $3))
}

pages_wait_members() {
    local site=$1 node=$2 n=$3 timeout=${4:-30}
    wait_for "$timeout" _pages_settled "$site" "$node" "$n" || {
        echo "pages: $site$node sees $(pages_stat "$site" "$node" member_count) members, not $n" >&2
        return 1
    }
}

pages_site_up() {
    local site=$1 n=$2 i
    shift 2
    for ((i = 1; i <= n; i++)); do
        pages_start "$site" "$i" --hash-rate 0 || return 1
    done
    for ((i = 1; i <= n; i++)); do
        pages_wait_members "$site" "$i" $((n - 1)) 60 || return 1
    done
    for i; do
        pages_wait_indexed "$site" "$i" 1 || {
            echo "pages: $site$i did not index its guests" >&2
            return 1
        }
    done
}
