# One libvirtd per test node, for integration tests. Source after
# functions.sh, sites.sh and guests.sh.
#
#   lv_start SITE NODE [QEMU]        libvirtd on the node (QEMU: an emulator
#                                    to probe now, so first use is fast)
#   lv_start_nodes QEMU a1 b2 ...    the same on several nodes, probing at once
#   lv_uri SITE NODE                 qemu+tcp://<node ip>/system
#   lv_virsh SITE NODE ARGS...       virsh against that libvirtd, run on
#                                    the node (the root namespace cannot
#                                    reach site addresses)
#   lv_exec SITE NODE CMD...         CMD in the node's network and mount
#                                    namespaces
#   lv_root SITE NODE                the node's / seen from here, for
#                                    node-local paths (/run/dht-pages/...)
#   lv_vm_start NAME SITE NODE IP [OPTION...]
#                                    define and start a domain; options as
#                                    vm_start: --mem --unique-mb --seed
#                                    --dirty-mb --dirty-rate --image --qemu
#                                    --page-hash on|off
#   lv_vm_moved NAME SITE NODE       record that a domain now runs there
#   lv_ram_dir NAME SITE NODE        its RAM directory there, if any
#   lv_domains SITE NODE             names of the running domains
#   lv_tls_certs [--ca NAME] SITENODE...
#                                    a throw-away CA (made by the test;
#                                    NAME: another one than the default) and
#                                    a certificate per node (its address as
#                                    subject and IP SAN, server and client
#                                    use) in the node's /etc/libvirt/
#                                    migrate-tls, for `virsh migrate --tls`:
#                                    start libvirtd with LV_TLS_QEMU_CONF in
#                                    VC_LV_QEMU_CONF
#   lv_kill SITE NODE                kill -9 the node's libvirtd; its
#                                    guests run on
#   lv_restart SITE NODE             start it again (it re-adopts them)
#
# Each node gets its own mount namespace, owned by a small holder process
# (shared/notes/guests-and-hosts.md): its own /etc/libvirt, a private
# /run (so /run/dht-pages/resolver.sock is node-local, as on a real host)
# and an overlay on /var for libvirt's state, cache and logs. libvirtd is
# started inside with nsenter, so it could be restarted while guests run.
# Domains started here are known to guests.sh (vm_wait_ready, vm_sums,
# vm_agent, vm_ram_file, vm_pid work on them); their RAM is file-backed
# and shared under the node's vm_ram_dir, as dht-pagesd expects.

VC_LIBVIRTD=${VC_LIBVIRTD:-/usr/sbin/libvirtd}
VC_RESOLVER_SOCKET=/run/dht-pages/resolver.sock

_lv_dir() { echo "$VC_TESTDIR/libvirt/$1$2"; }
_lv_registered=

lv_holder() {
    local f
    f="$(_lv_dir "$1" "$2")/holder.pid"
    [[ -f $f ]] && cat "$f"
}

lv_root() {
    local pid
    pid=$(lv_holder "$1" "$2") || { echo "libvirt: no libvirtd on $1$2" >&2; return 1; }
    echo "/proc/$pid/root"
}

lv_exec() {
    local pid
    pid=$(lv_holder "$1" "$2") || { echo "libvirt: no libvirtd on $1$2" >&2; return 1; }
    shift 2
    nsenter -t "$pid" -m -n "$@"
}

lv_uri() { echo "qemu+tcp://$(node_ip "$1" "$2")/system"; }

lv_virsh() {
    local site=$1 node=$2
    shift 2
    on_node "$site" "$node" virsh -q -c "$(lv_uri "$site" "$node")" "$@"
}

_lv_write_conf() {
    local site=$1 node=$2 dir=$3 ip
    ip=$(node_ip "$site" "$node")
    cat >"$dir/etc/libvirtd.conf" <<EOF
listen_tcp = 1
listen_tls = 0
listen_addr = "$ip"
auth_tcp = "none"
auth_unix_rw = "none"
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
log_outputs = "3:file:$dir/libvirtd.log"
EOF
    cat >"$dir/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_host = "$ip"
memory_backing_dir = "$(vm_ram_dir "$site" "$node")"
${VC_LV_QEMU_CONF:-}
EOF
}

_lv_unshared() {
    [[ $(cat "/proc/$1/comm" 2>/dev/null) == sleep &&
       $(readlink "/proc/$1/ns/mnt") != "$(readlink /proc/$$/ns/mnt)" ]]
}

lv_start() {
    local site=$1 node=$2 qemu=${3:-} dir ns pid
    dir=$(_lv_dir "$site" "$node")
    [[ ! -e $dir ]] || { echo "libvirt: libvirtd on $site$node exists already" >&2; return 1; }
    ns=$(node_ns "$site" "$node")
    mkdir -p "$dir"/{etc/migrate-tls,run,var-upper,var-work}
    vm_ram_dir_create "$site" "$node"
    _lv_write_conf "$site" "$node" "$dir"
    if [[ -z $_lv_registered ]]; then
        cleanup_fn _lv_stop_all
        _lv_registered=1
    fi
    # The holder: `ip netns exec` execs unshare, which execs sleep, so $!
    # is the process that owns the new mount namespace.
    ip netns exec "$ns" unshare --mount --propagation private sleep infinity &
    pid=$!
    echo "$pid" >"$dir/holder.pid"
    wait_for 5 _lv_unshared "$pid" ||
        { echo "libvirt: mount namespace for $site$node not created" >&2; return 1; }
    nsenter -t "$pid" -m sh -ec '
        mount --bind "$1/etc" /etc/libvirt
        mount -t tmpfs -o mode=755 tmpfs /run
        mount -t overlay overlay -o "lowerdir=/var,upperdir=$1/var-upper,workdir=$1/var-work" /var
        mkdir -p /run/dht-pages /var/lib/libvirt /var/cache/libvirt /var/log/libvirt' \
        _ "$dir" || { echo "libvirt: cannot prepare the mounts of $site$node" >&2; return 1; }
    _lv_libvirtd "$site" "$node" || return 1
    # Probing an emulator's capabilities takes seconds the first time.
    if [[ -n $qemu ]]; then
        lv_virsh "$site" "$node" domcapabilities --virttype qemu --emulatorbin "$qemu" \
            >/dev/null || { echo "libvirt: $site$node cannot probe '$qemu'" >&2; return 1; }
    fi
}

# _lv_libvirtd SITE NODE: libvirtd in the node's namespaces, answering.
_lv_libvirtd() {
    local site=$1 node=$2 dir pid
    dir=$(_lv_dir "$site" "$node")
    pid=$(lv_holder "$site" "$node") || return 1
    nsenter -t "$pid" -m -n "$VC_LIBVIRTD" --listen >>"$dir/libvirtd.out" 2>&1 &
    echo $! >"$dir/libvirtd.pid"
    if ! wait_for 30 lv_virsh "$site" "$node" version; then
        echo "libvirt: libvirtd on $site$node does not answer:" >&2
        tail -n 5 "$dir/libvirtd.out" "$dir/libvirtd.log" >&2 2>/dev/null
        return 1
    fi
}

# What qemu.conf needs for lv_tls_certs' certificates.
LV_TLS_QEMU_CONF='migrate_tls_x509_cert_dir = "/etc/libvirt/migrate-tls"
migrate_tls_x509_verify = 1'

lv_tls_certs() {
    local ca=$VC_TESTDIR/migrate-ca n ip d
    if [[ ${1:-} == --ca ]]; then
        ca=$VC_TESTDIR/migrate-ca-$2
        shift 2
    fi
    mkdir -p "$ca"
    if [[ ! -f $ca/ca-cert.pem ]]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vcluster test CA" \
            -keyout "$ca/ca-key.pem" -out "$ca/ca-cert.pem" >/dev/null 2>&1 ||
            { echo "libvirt: cannot make a CA" >&2; return 1; }
    fi
    for n in "$@"; do
        ip=$(node_ip "${n:0:1}" "${n:1}")
        d=$(_lv_dir "${n:0:1}" "${n:1}")/etc/migrate-tls
        mkdir -p "$d"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$ip" -keyout "$d/server-key.pem" \
            -out "$d/req.pem" >/dev/null 2>&1 &&
            openssl x509 -req -in "$d/req.pem" -CA "$ca/ca-cert.pem" -CAkey "$ca/ca-key.pem" \
                -CAcreateserial -days 2 -out "$d/server-cert.pem" \
                -extfile <(printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$ip") \
                >/dev/null 2>&1 ||
            { echo "libvirt: cannot make a certificate for $n" >&2; return 1; }
        cp "$ca/ca-cert.pem" "$d/ca-cert.pem"
        cp "$d/server-cert.pem" "$d/client-cert.pem"
        cp "$d/server-key.pem" "$d/client-key.pem"
        rm -f "$d/req.pem"
    done
}

lv_kill() {
    local dir pid
    dir=$(_lv_dir "$1" "$2")
    pid=$(cat "$dir/libvirtd.pid" 2>/dev/null) || { echo "libvirt: no libvirtd on $1$2" >&2; return 1; }
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$dir/libvirtd.pid"
}

lv_restart() { _lv_libvirtd "$1" "$2"; }

# lv_start_nodes QEMU SITENODE...: libvirtd on each node (a1 b2 ...),
# probing QEMU on all of them at once.
lv_start_nodes() {
    local qemu=$1 n p pids=()
    shift
    for n in "$@"; do
        lv_start "${n:0:1}" "${n:1}" || return 1
    done
    for n in "$@"; do
        lv_virsh "${n:0:1}" "${n:1}" domcapabilities --virttype qemu --emulatorbin "$qemu" >/dev/null &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || { echo "libvirt: cannot probe '$qemu'" >&2; return 1; }
    done
}

lv_domains() { lv_virsh "$1" "$2" list --name | sed '/^$/d'; }

# _lv_stop SITE NODE: destroy the domains, stop libvirtd, kill what it
# left (guests outlive libvirtd), then the holder: its mounts go with it.
_lv_stop() {
    local site=$1 node=$2 dir pid d f root
    dir=$(_lv_dir "$site" "$node")
    [[ -f $dir/holder.pid ]] || return 0
    root=$(lv_root "$site" "$node")
    for d in $(lv_domains "$site" "$node" 2>/dev/null); do
        lv_virsh "$site" "$node" destroy "$d" >/dev/null 2>&1 || true
    done
    pid=$(cat "$dir/libvirtd.pid" 2>/dev/null) || true
    if [[ -n $pid ]] && kill "$pid" 2>/dev/null; then
        wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    for f in "$root"/run/libvirt/qemu/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f")
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == qemu* ]] && kill -9 "$pid" 2>/dev/null
    done
    pid=$(cat "$dir/holder.pid")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$dir/holder.pid"
}

_lv_stop_all() {
    local d
    for d in "$VC_TESTDIR"/libvirt/*; do
        [[ -d $d ]] || continue
        d=${d##*/}
        _lv_stop "${d:0:1}" "${d:1}"
    done
}

_lv_xml_escape() { sed -e 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/'"'"'/\&apos;/g'; }

# lv_vm_xml NAME IP MEM QEMU IMAGE CMDLINE SERIAL PAGE_HASH
lv_vm_xml() {
    local name=$1 ip=$2 mem=$3 qemu=$4 image=$5 cmdline=$6 serial=$7 page_hash=$8
    cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$name</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$image/vmlinuz</kernel>
    <initrd>$image/initrd.img</initrd>
    <cmdline>$(_lv_xml_escape <<<"$cmdline")</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$qemu</emulator>
    <interface type='bridge'>
      <source bridge='br0'/>
      <mac address='$(_vm_mac "$ip")'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='$serial' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
EOF
    if [[ -n $page_hash ]]; then
        cat <<EOF
  <qemu:commandline>
    <qemu:arg value='-global'/>
    <qemu:arg value='migration.x-page-hash=$page_hash'/>
    <qemu:arg value='-global'/>
    <qemu:arg value='migration.x-page-hash-resolver=$VC_RESOLVER_SOCKET'/>
  </qemu:commandline>
EOF
    fi
    echo "</domain>"
}

lv_vm_start() {
    [[ $# -ge 4 ]] || { echo "libvirt: usage: lv_vm_start NAME SITE NODE IP [OPTION...]" >&2; return 2; }
    local name=$1 site=$2 node=$3 ip=$4
    shift 4
    local mem=256 unique_mb=8 seed= dirty_mb=0 dirty_rate=0 image=$VC_IMAGE
    local qemu=${VC_QEMU:-/usr/bin/qemu-system-x86_64} page_hash= resolver= incoming=
    local extra=() append=
    _vm_options "$name" "$@" || return
    # libvirt chooses the resolver (node-local), the incoming URI and argv.
    [[ -z $resolver$incoming$append && ${#extra[@]} -eq 0 ]] ||
        { echo "libvirt: --resolver, --incoming, --qemu-arg and --append are vm_start's only" >&2; return 2; }
    local dir
    dir=$(_vm_dir "$name")
    mkdir -p "$dir"
    echo "$ip" >"$dir/ip"
    echo libvirt >"$dir/kind"
    lv_vm_xml "$name" "$ip" "$mem" "$qemu" "$image" \
        "$(_vm_cmdline "$name" "$ip" "$(gw_ip "$site")" "$seed" "$unique_mb" "$dirty_mb" "$dirty_rate")" \
        "$dir/serial.log" "$page_hash" >"$dir/domain.xml"
    lv_virsh "$site" "$node" define /dev/stdin <"$dir/domain.xml" >/dev/null ||
        { echo "libvirt: cannot define '$name' on $site$node" >&2; return 1; }
    lv_virsh "$site" "$node" start "$name" >/dev/null ||
        { echo "libvirt: cannot start '$name' on $site$node" >&2; return 1; }
    lv_vm_moved "$name" "$site" "$node"
}

# lv_ram_dir NAME SITE NODE: the directory libvirt made for the domain's
# RAM on that node (<memory_backing_dir>/libvirt/qemu/<id>-<name>, the id
# new on every start), nothing if there is none.
lv_ram_dir() {
    ls -d "$(vm_ram_dir "$2" "$3")"/libvirt/qemu/*-"$1" 2>/dev/null | head -n 1
}

# lv_vm_moved NAME SITE NODE: after a migration, point guests.sh at the
# domain's new node: its QEMU pid, RAM file (the path has libvirt's
# domain id in it, new on every start) and reachability.
lv_vm_moved() {
    local name=$1 site=$2 node=$3 dir root
    dir=$(_vm_dir "$name")
    [[ ! -f $dir/site ]] ||
        node_unadopt_ip "$(cat "$dir/site")" "$(cat "$dir/node")" "$(cat "$dir/ip")"
    echo "$site" >"$dir/site"
    echo "$node" >"$dir/node"
    root=$(lv_root "$site" "$node")
    cat "$root/run/libvirt/qemu/$name.pid" >"$dir/pid" ||
        { echo "libvirt: '$name' has no QEMU on $site$node" >&2; return 1; }
    echo "$(lv_ram_dir "$name" "$site" "$node")/pc.ram" >"$dir/ram"
    [[ $(site_index "$site") == "$(cut -d. -f3 "$dir/ip")" ]] ||
        node_adopt_ip "$site" "$node" "$(cat "$dir/ip")"
}
