# Test guests: start, query and stop QEMU guests on site nodes.
# Source after functions.sh and sites.sh.
#
#   vm_start NAME SITE NODE IP [--mem MB] [--unique-mb N] [--seed N]
#            [--dirty-mb N] [--dirty-rate PAGES_PER_S] [--image DIR]
#   vm_wait_ready NAME [TIMEOUT_S]     waits for the agent's VC-READY
#   vm_agent NAME CMD [SITE NODE]      agent command (from the VM's own
#                                      node unless another is named)
#   vm_sums NAME [SITE NODE]           "payload <sum>" / "unique <sum>"
#   vm_qmp NAME JSON...                QMP commands, replies on stdout
#   vm_stop NAME                       guest poweroff, then waits for QEMU
#   vm_kill NAME                       SIGKILL and cleanup (idempotent)
#   vm_ram_file NAME                   the file backing guest RAM
#   vm_mac NAME                        its MAC (derived from its IP)
#   vm_qmp_socket NAME                 its QMP socket (one client at a time)
#   vm_incoming_uri NAME               where a --incoming guest listens
#   vm_migrate SRC DST                 live migration over QMP; DST was
#                                      started with --incoming PORT
#   vm_autostart NAME                  a guest started with --incoming
#                                      runs as soon as its migration ends
#   vm_migration_query NAME            run query-migrate in NAME, keep
#                                      the reply for vm_migration_info
#   vm_migration_status NAME           query-migrate's status now
#   vm_max_bandwidth NAME BYTES_PER_S  cap NAME's outgoing migrations
#   vm_migration_info NAME KEY...      a value of SRC's last query-migrate
#                                      (keys as a JSON path: ram transferred)
#   vm_adopt NAME                      route a VM that migrated in from
#                                      another site on its new node
#                                      (routed sites only: nothing to do
#                                      on stretched ones)
#
# vm_start options beyond the memory shape: --qemu BIN (default $VC_QEMU
# or qemu-system-x86_64), --page-hash on|off, --resolver SOCKET (the
# destination's dht-pagesd), --incoming PORT (wait paused for a migration),
# --qemu-arg ARG (one more QEMU argument, repeatable: -global settings of
# other migration capabilities, e.g. --qemu-arg -global --qemu-arg
# migration.x-xbzrle=on), --append ARGS (more kernel command line words,
# repeatable).
#
# Guests use file-backed shared RAM (memory-backend-file,share=on) so node
# daemons can map it, a QMP socket, a serial log, and a TAP on the node's
# br0, so they are on the site LAN with their own address.

VC_IMAGE=${VC_IMAGE:-$VC_BUILDDIR/images/guest}
VC_AGENT_PORT=7070

_vm_dir() { echo "$VC_TESTDIR/vms/$1"; }
_vm_shm_registered=

# vm_ram_dir SITE NODE: where the RAM files of a node's guests live (one
# directory per node, as a libvirt memory_backing_dir would be).
vm_ram_dir() { echo "/dev/shm/${VC_SITE_PREFIX}/$1$2"; }

# vm_ram_dir_create SITE NODE: create it; all of them go at exit.
vm_ram_dir_create() {
    mkdir -p "$(vm_ram_dir "$1" "$2")"
    if [[ -z $_vm_shm_registered ]]; then
        cleanup_fn rm -rf "/dev/shm/${VC_SITE_PREFIX}"
        _vm_shm_registered=1
    fi
}

_vm_get() {
    local f
    f="$(_vm_dir "$1")/$2"
    [[ -f $f ]] || { echo "guests: no VM '$1'" >&2; return 1; }
    cat "$f"
}

# vc_accel: KVM where it works, TCG otherwise. /dev/kvm on a host that is
# itself a PVM guest (kvm_pvm) hangs stock guests, so only kvm_intel or
# kvm_amd count. VC_ACCEL overrides.
vc_accel() {
    if [[ -n ${VC_ACCEL:-} ]]; then
        echo "$VC_ACCEL"
    elif [[ -w /dev/kvm ]] && [[ -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ]] &&
        [[ ! -d /sys/module/kvm_pvm ]]; then
        echo kvm
    else
        echo tcg
    fi
}

# The parts of a guest's identity both QEMU and libvirt guests share: a
# seed from the name, a MAC from the IP (unique on the site LAN), and the
# kernel command line that configures vcguest. no_timer_check: under TCG
# on a loaded host the kernel's IO-APIC timer check can miss its ticks
# and panic ("IO-APIC + timer doesn't work!"); cloud VM images set it
# for the same reason.
_vm_seed() { printf '%s' "$1" | cksum | cut -d' ' -f1; }
_vm_mac() { printf '52:54:%02x:%02x:%02x:%02x' ${1//./ }; }
_vm_cmdline() {
    echo "console=ttyS0 panic=-1 nokaslr no_timer_check ip=$2::$3:255.255.255.0:$1:eth0:off vc.seed=$4 vc.unique_mb=$5 vc.dirty_mb=$6 vc.dirty_rate=$7"
}

# _vm_options NAME OPTION...: vm_start's options into the caller's locals
# (mem unique_mb seed dirty_mb dirty_rate image qemu page_hash resolver
# incoming extra append, declared there with their defaults); checks the name and
# that no VM has it, and derives the seed from the name if none is given.
_vm_options() {
    local name=$1
    shift
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || { echo "guests: option '$1' needs a value" >&2; return 2; }
        case "$1" in
        --mem) mem=$2 ;;
        --unique-mb) unique_mb=$2 ;;
        --seed) seed=$2 ;;
        --dirty-mb) dirty_mb=$2 ;;
        --dirty-rate) dirty_rate=$2 ;;
        --image) image=$2 ;;
        --qemu) qemu=$2 ;;
        --page-hash) page_hash=$2 ;;
        --resolver) resolver=$2 ;;
        --incoming) incoming=$2 ;;
        --qemu-arg) extra+=("$2") ;;
        --append) append+=" $2" ;;
        *) echo "guests: unknown option '$1'" >&2; return 2 ;;
        esac
        shift 2
    done
    [[ $name =~ ^[a-z][a-z0-9-]{0,15}$ ]] || { echo "guests: bad VM name '$name'" >&2; return 2; }
    [[ ! -e $(_vm_dir "$name") ]] || { echo "guests: VM '$name' exists already" >&2; return 1; }
    [[ -n $seed ]] || seed=$(_vm_seed "$name")
}

vm_start() {
    [[ $# -ge 4 ]] || { echo "guests: usage: vm_start NAME SITE NODE IP [OPTION...]" >&2; return 2; }
    local name=$1 site=$2 node=$3 ip=$4
    shift 4
    local mem=256 unique_mb=8 seed= dirty_mb=0 dirty_rate=0 image=$VC_IMAGE
    local qemu=${VC_QEMU:-qemu-system-x86_64} page_hash= resolver= incoming=
    local extra=() append=
    _vm_options "$name" "$@" || return
    [[ -f $image/vmlinuz && -f $image/initrd.img ]] ||
        { echo "guests: no guest image in '$image'" >&2; return 1; }
    local dir ns tap mac gw
    dir=$(_vm_dir "$name")
    ns=$(node_ns "$site" "$node")
    gw=$(gw_ip "$site")
    mac=$(_vm_mac "$ip")
    mkdir -p "$dir"
    vm_ram_dir_create "$site" "$node"
    tap="vm${name:0:12}"
    ip -n "$ns" tuntap add dev "$tap" mode tap
    # A bridge takes the lowest address of its ports: a TAP with a random
    # one would change the node's address when it comes and goes, and the
    # gateway would send to the old one until its ARP entry expires. fe:ff
    # is above any other port's (what libvirt does with fe:).
    ip -n "$ns" link set "$tap" address "fe:ff:${mac#52:54:}"
    ip -n "$ns" link set "$tap" master br0 up
    echo "$site" >"$dir/site"
    echo "$node" >"$dir/node"
    echo "$ip" >"$dir/ip"
    echo "$tap" >"$dir/tap"
    echo "$(vm_ram_dir "$site" "$node")/$name.ram" >"$dir/ram"
    echo "$qemu" >"$dir/qemu"
    [[ -z $page_hash ]] || extra+=(-global "migration.x-page-hash=$page_hash")
    [[ -z $resolver ]] || extra+=(-global "migration.x-page-hash-resolver=$resolver")
    if [[ -n $incoming ]]; then
        echo "tcp:$(node_ip "$site" "$node"):$incoming" >"$dir/incoming"
        extra+=(-S -incoming "$(cat "$dir/incoming")")
    fi
    cleanup_fn vm_kill "$name"
    ip netns exec "$ns" "$qemu" \
        -name "$name" \
        -machine "pc,accel=$(vc_accel),memory-backend=ram0" \
        -m "$mem" \
        -object "memory-backend-file,id=ram0,size=${mem}M,mem-path=$(cat "$dir/ram"),share=on" \
        -nodefaults -display none -no-reboot \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "$(_vm_cmdline "$name" "$ip" "$gw" "$seed" "$unique_mb" "$dirty_mb" "$dirty_rate")$append" \
        -serial "file:$dir/serial.log" \
        -qmp "unix:$dir/qmp.sock,server=on,wait=off" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=n0,mac=$mac" \
        "${extra[@]}" \
        -pidfile "$dir/pid" -daemonize ||
        { echo "guests: QEMU for '$name' failed to start" >&2; return 1; }
}

vm_pid() { _vm_get "$1" pid; }
vm_ip() { _vm_get "$1" ip; }
vm_mac() { _vm_mac "$(vm_ip "$1")"; }
vm_ram_file() { _vm_get "$1" ram; }
vm_qmp_socket() { echo "$(_vm_dir "$1")/qmp.sock"; }
vm_incoming_uri() { _vm_get "$1" incoming; }
vm_serial_log() { echo "$(_vm_dir "$1")/serial.log"; }

vm_running() {
    local pid
    pid=$(vm_pid "$1" 2>/dev/null) && kill -0 "$pid" 2>/dev/null
}

vm_wait_ready() {
    local name=$1 timeout=${2:-60} log
    log=$(vm_serial_log "$name")
    if ! wait_for "$timeout" grep -q '^VC-READY' "$log"; then
        echo "guests: '$name' not ready after ${timeout} s; serial log tail:" >&2
        tail -n 15 "$log" >&2 || true
        return 1
    fi
}

# vm_agent NAME CMD [SITE NODE]: the reply up to "end" (or one line).
vm_agent() {
    local name=$1 cmd=$2 site=${3:-} node=${4:-} ip
    ip=$(vm_ip "$name")
    [[ -n $site ]] || site=$(_vm_get "$name" site)
    [[ -n $node ]] || node=$(_vm_get "$name" node)
    on_node "$site" "$node" timeout 60 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "%s\n" "$3" >&3
        while IFS= read -r line <&3; do
            printf "%s\n" "$line"
            case "$line" in end|pong|ok|error*) break ;; esac
            case "$3" in sums|info) ;; *) break ;; esac
        done' _ "$ip" "$VC_AGENT_PORT" "$cmd"
}

vm_sums() { vm_agent "$1" sums "${2:-}" "${3:-}"; }

vm_qmp() {
    local name=$1 sock
    shift
    sock=$(vm_qmp_socket "$name")
    { printf '{"execute":"qmp_capabilities"}\n'; printf '%s\n' "$@"; sleep 0.5; } |
        socat -t 2 - "UNIX-CONNECT:$sock"
}

_vm_release() {
    local name=$1 dir tap ns
    dir=$(_vm_dir "$name")
    [[ -d $dir ]] || return 0
    tap=$(cat "$dir/tap" 2>/dev/null) || true
    ns=$(node_ns "$(cat "$dir/site")" "$(cat "$dir/node")" 2>/dev/null) || true
    [[ -n $tap && -n $ns ]] && ip -n "$ns" link del "$tap" 2>/dev/null
    rm -f "$(cat "$dir/ram" 2>/dev/null)"
    return 0
}

vm_stop() {
    local name=$1 pid
    pid=$(vm_pid "$name") || return 1
    local said
    said=$(vm_agent "$name" poweroff 2>&1) || said="agent unreachable: $said"
    if ! wait_for 30 bash -c "! kill -0 $pid"; then
        echo "guests: '$name' ignored poweroff (agent: '$said'); quitting QEMU; serial log tail:" >&2
        tail -n 5 "$(vm_serial_log "$name")" >&2 || true
        vm_qmp "$name" '{"execute":"quit"}' >/dev/null 2>&1 || true
        wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
        _vm_release "$name"
        return 1
    fi
    _vm_release "$name"
}

vm_kill() {
    local name=$1 pid
    pid=$(vm_pid "$name" 2>/dev/null) || true
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
        wait_for 5 bash -c "! kill -0 $pid" || true
    fi
    _vm_release "$name"
}

# vm_migrate SRC DST [TIMEOUT_S]: migrate SRC into DST (started with
# --incoming PORT on its node) and wait for the end. The final
# query-migrate reply is kept for vm_migration_info. Fails if the
# migration does not complete.
vm_migrate() {
    local src=$1 dst=$2 timeout=${3:-300} uri status
    uri=$(_vm_get "$dst" incoming 2>/dev/null) ||
        { echo "guests: '$dst' was not started with --incoming" >&2; return 2; }
    vm_qmp "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"$uri\"}}" >/dev/null
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        vm_migration_query "$src"
        status=$(vm_migration_info "$src" status)
        case "$status" in
        completed) return 0 ;;
        failed|cancelled)
            echo "guests: migration of '$src' $status: $(vm_migration_info "$src" error-desc)" >&2
            return 1 ;;
        esac
        sleep 0.5
    done
    echo "guests: migration of '$src' did not finish in ${timeout} s" >&2
    return 1
}

# vm_autostart NAME: the destination starts the guest the moment the
# migration ends, as libvirt's does, instead of waiting paused (-S) for a
# cont: what a guest's peers see of a switchover is then QEMU's own. QMP
# cont during an incoming migration does this ("inmigrate" state).
vm_autostart() {
    local out
    out=$(vm_qmp "$1" '{"execute":"cont"}' | tail -n 1)
    [[ $out == *'"return"'* ]] ||
        { echo "guests: cont on '$1' failed: $out" >&2; return 1; }
}

# vm_migrate_start SRC DST: start a migration and return at once.
vm_migrate_start() {
    local uri
    uri=$(_vm_get "$2" incoming) || return 2
    vm_qmp "$1" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"$uri\"}}" >/dev/null
}

# vm_status NAME: the run state QEMU reports (running, paused, ...).
vm_status() {
    vm_qmp "$1" '{"execute":"query-status"}' | tail -n 1 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["return"]["status"])'
}

# vm_migration_query NAME: run query-migrate in NAME's QEMU and keep the
# reply for vm_migration_info.
vm_migration_query() {
    vm_qmp "$1" '{"execute":"query-migrate"}' | tail -n 1 >"$(_vm_dir "$1")/migrate.json"
}

# vm_migration_status NAME: the status of NAME's migration now (active,
# completed, failed, ...); the reply is kept for vm_migration_info.
vm_migration_status() {
    vm_migration_query "$1" && vm_migration_info "$1" status
}

# vm_max_bandwidth NAME BYTES_PER_S: cap NAME's outgoing migrations, so
# that a fault injected after a fixed delay finds one in flight.
vm_max_bandwidth() {
    vm_qmp "$1" "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":$2}}" >/dev/null
}

# vm_migration_info NAME KEY...: a field of the last query-migrate reply.
vm_migration_info() {
    local name=$1
    shift
    python3 - "$(_vm_dir "$name")/migrate.json" "$@" <<'PY'
import json, sys
v = json.load(open(sys.argv[1])).get("return", {})
for k in sys.argv[2:]:
    v = v.get(k, "") if isinstance(v, dict) else ""
print(v)
PY
}

# vm_adopt NAME: make a guest that migrated in from another site
# reachable from the node it now runs on (its address stays in its home
# subnet): the node routes to it on br0 and answers for its old gateway.
# The workaround of routed sites: on stretched sites (sites.sh) the guest
# is still on its home LAN and needs nothing.
vm_adopt() {
    node_adopt_ip "$(_vm_get "$1" site)" "$(_vm_get "$1" node)" "$(vm_ip "$1")"
}

# node_adopt_ip SITE NODE IP: the same for an address. Several nodes of a
# site may answer for the same old gateway, so a guest's packets may reach
# another node than its own: nodes forward them on the site LAN, and talk
# to adopted guests from their own address (not the gateway's, which
# would come back to whichever node answers for it).
node_adopt_ip() {
    local ns
    # On a stretched LAN the node would answer for the home gateway next
    # to the real one.
    ! sites_stretched || return 0
    ns=$(node_ns "$1" "$2")
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$ns" addr add "${3%.*}.254/32" dev br0 2>/dev/null || true
    ip -n "$ns" route replace "$3/32" dev br0 src "$(node_ip "$1" "$2")"
}

# node_unadopt_ip SITE NODE IP: the guest left that node.
node_unadopt_ip() {
    ip -n "$(node_ns "$1" "$2")" route del "$3/32" 2>/dev/null || true
}
