#!/usr/bin/env bash
# Deploy the project's hosts on the nodes of an OAR deploy job and run a
# virtual SSI cluster across them (images/g5k/README.md is the guide).
# Run on the Grid'5000 frontend, inside `oarsub -t deploy`:
#
#   images/g5k/deploy.sh --image ~/public/vcluster-host.tar.gz \
#       --vm-net nancy:10.144.0.0/22 -n 2 -c 16 -m 8G -- ssi nodes
#
# Steps (--from-step picks up at one of them):
#   kadeploy   kadeploy3 -a <vcluster-host.yaml, @IMAGE@ filled> -f NODEFILE -k
#   configure  on every node (the unique hosts of the node file): the
#              /etc/vcluster/*.conf files and keys, libvirtd's TCP
#              listener, the VMs' bridge
#   start      libvirtd, dht-pagesd on every node; kget-store and salined
#              on the first one
#   wait       until salined sees every node up
#   submit     saline submit --ssi -n N ... -- COMMAND on the first node;
#              prints its output, exits with its exit status
# Nodes are reached through a connector, `CONNECTOR HOST bash -s` with the
# step's script on stdin (default: ssh as root, as kadeploy3 -k allows).
# The nodes' scripts are single-quoted: they expand on the nodes.
# shellcheck disable=SC2016
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat <<EOF
Usage: $prog [OPTION...] [--] [COMMAND...]

Deploys vcluster-host on the nodes of an OAR deploy job, starts the
daemons and runs COMMAND in a virtual SSI cluster of -n VMs across them
(saline submit --ssi). Without COMMAND it stops once salined sees every
node.

Nodes:
  --nodefile FILE      OAR's node file, a host per line, repeated per core
                       (default: \$OAR_NODEFILE)
  --connector CMD      how to run a script on a node: CMD HOST bash -s
                       (default: ssh -o BatchMode=yes -o
                       StrictHostKeyChecking=no -l root)
  --from-step STEP     kadeploy, configure, start, wait or submit
                       (default: kadeploy)
  --no-kadeploy        the nodes are deployed already (--from-step configure)
  --vlan ID            the nodes are in KaVLAN VLAN ID (kavlan-global for
                       several sites): kadeploy3 --vlan ID, hosts reached
                       as NAME-kavlan-ID.SITE..., one Saline site for all
                       nodes (the VLAN is one network), so one --vm-net

Deployment (kadeploy step):
  --image PATH|URL     the image build-env.sh made (required for kadeploy)
  --env FILE           the environment description (default:
                       vcluster-host.yaml beside this script)

Configuration (configure step):
  --vm-net SITE:CIDR[:FIRST-LAST[:GATEWAY]]
                       the VMs' addresses on SITE (the host name's second
                       label: paradoxe-3.rennes.grid5000.fr is on rennes),
                       e.g. from g5k-subnets; one per site (required)
  --bridge NAME        the node bridge VMs attach to, made from the node's
                       main interface when missing (default: br0)
  --cpus N             CPUs of each node for VMs (default: all of them)
  --memory SIZE        memory of each node for VMs (default: all but 2G)
  --emulator PATH      QEMU on the nodes (default:
                       /usr/bin/qemu-system-x86_64-pagehash)
  --virt-type TYPE     kvm, qemu (TCG) or auto (default: auto)
  --image-dir DIR      the guest images on the nodes (default:
                       /usr/lib/vcluster/images)

Daemons (start step):
  --start-with MODE    systemd: the packages' units (default); direct:
                       run the daemons from --build-dir as root, in the
                       connector's environment (tests, hosts without
                       systemd)
  --build-dir DIR      a meson build tree, for --start-with direct
  --timeout S          seconds to wait for salined's nodes (default: 300)

Job (submit step):
  -n VMS -c CPUS -m MEM  the SSI cluster: VMs, CPUs and memory of each
                       (default: one VM per node, 1 CPU, 1G)
  --walltime T         (default: 1:00)
  --ssi-image NAME     the image with the SSI parts (default: saline-ssi)

  -h, --help           this help

Exit status: COMMAND's in the cluster, or 1 on an error, 2 on a usage
error.
EOF
}

die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$prog" "$*" >&2; exit 2; }
say() { printf '%s: %s\n' "$prog" "$*" >&2; }

arg_nodefile=${OAR_NODEFILE:-}
arg_connector="ssh -o BatchMode=yes -o StrictHostKeyChecking=no -l root"
arg_from=kadeploy
arg_vlan=
arg_image=
arg_env=$here/vcluster-host.yaml
arg_vm_nets=()
arg_bridge=br0
arg_cpus=
arg_memory=
arg_emulator=/usr/bin/qemu-system-x86_64-pagehash
arg_virt_type=auto
arg_image_dir=/usr/lib/vcluster/images
arg_start_with=systemd
arg_build_dir=
arg_timeout=300
arg_vms=
arg_vm_cpus=1
arg_vm_mem=1G
arg_walltime=1:00
arg_ssi_image=saline-ssi
steps=(kadeploy configure start wait submit)

need_arg() { [[ $# -ge 2 ]] || usage_error "option '$1' needs a value"; }
while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --nodefile) need_arg "$@"; arg_nodefile=$2; shift ;;
    --connector) need_arg "$@"; arg_connector=$2; shift ;;
    --from-step) need_arg "$@"; arg_from=$2; shift ;;
    --no-kadeploy) arg_from=configure ;;
    --vlan) need_arg "$@"; arg_vlan=$2; shift ;;
    --image) need_arg "$@"; arg_image=$2; shift ;;
    --env) need_arg "$@"; arg_env=$2; shift ;;
    --vm-net) need_arg "$@"; arg_vm_nets+=("$2"); shift ;;
    --bridge) need_arg "$@"; arg_bridge=$2; shift ;;
    --cpus) need_arg "$@"; arg_cpus=$2; shift ;;
    --memory) need_arg "$@"; arg_memory=$2; shift ;;
    --emulator) need_arg "$@"; arg_emulator=$2; shift ;;
    --virt-type) need_arg "$@"; arg_virt_type=$2; shift ;;
    --image-dir) need_arg "$@"; arg_image_dir=$2; shift ;;
    --start-with) need_arg "$@"; arg_start_with=$2; shift ;;
    --build-dir) need_arg "$@"; arg_build_dir=$2; shift ;;
    --timeout) need_arg "$@"; arg_timeout=$2; shift ;;
    -n) need_arg "$@"; arg_vms=$2; shift ;;
    -c) need_arg "$@"; arg_vm_cpus=$2; shift ;;
    -m) need_arg "$@"; arg_vm_mem=$2; shift ;;
    --walltime) need_arg "$@"; arg_walltime=$2; shift ;;
    --ssi-image) need_arg "$@"; arg_ssi_image=$2; shift ;;
    --) shift; break ;;
    -*) usage_error "unknown option '$1'" ;;
    *) break ;;
    esac
    shift
done
command=("$@")

# ---- checks, before any node is touched ----
from=
for i in "${!steps[@]}"; do
    [[ ${steps[i]} == "$arg_from" ]] && from=$i
done
[[ -n $from ]] || usage_error "--from-step: '$arg_from' is not one of ${steps[*]}"
step_runs() {
    local i
    for i in "${!steps[@]}"; do
        [[ ${steps[i]} == "$1" ]] && { ((i >= from)); return; }
    done
    return 1
}
[[ -n $arg_nodefile ]] || usage_error "no node file: not in an OAR job (\$OAR_NODEFILE) and no --nodefile"
[[ -r $arg_nodefile ]] || die "cannot read node file '$arg_nodefile'"
[[ -z $arg_vlan || $arg_vlan =~ ^[0-9]{1,4}$ ]] || usage_error "--vlan: '$arg_vlan' is not a VLAN number"
[[ $arg_start_with == systemd || $arg_start_with == direct ]] ||
    usage_error "--start-with: '$arg_start_with' is not systemd or direct"
[[ $arg_virt_type =~ ^(auto|kvm|qemu)$ ]] || usage_error "--virt-type: '$arg_virt_type' is not auto, kvm or qemu"
[[ $arg_timeout =~ ^[0-9]+$ ]] || usage_error "--timeout: '$arg_timeout' is not a number of seconds"
[[ -z $arg_cpus || $arg_cpus =~ ^[1-9][0-9]*$ ]] || usage_error "--cpus: '$arg_cpus' is not a number"
[[ -z $arg_vms || $arg_vms =~ ^[1-9][0-9]*$ ]] || usage_error "-n: '$arg_vms' is not a number"
if [[ $arg_start_with == direct ]]; then
    [[ -n $arg_build_dir ]] || usage_error "--start-with direct needs --build-dir"
    [[ -x $arg_build_dir/saline/salined/salined ]] || die "no salined in build tree '$arg_build_dir'"
    arg_build_dir=$(cd "$arg_build_dir" && pwd)
fi
if step_runs kadeploy; then
    [[ -n $arg_image ]] || usage_error "kadeploy needs --image (or --no-kadeploy)"
    [[ -r $arg_env ]] || die "cannot read environment description '$arg_env'"
    command -v kadeploy3 >/dev/null || die "kadeploy3 not found: run on a Grid'5000 frontend, or --no-kadeploy"
fi

# The unique hosts of the node file, in its order; the first runs salined.
mapfile -t hosts < <(sed -e 's/[[:space:]]//g' -e '/^$/d' "$arg_nodefile" | awk '!seen[$0]++')
[[ ${#hosts[@]} -gt 0 ]] || die "node file '$arg_nodefile' lists no host"
for h in "${hosts[@]}"; do
    [[ $h =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]] || die "node file '$arg_nodefile': '$h' is not a host name"
done
# On a KaVLAN VLAN, a node answers to NAME-kavlan-ID.SITE...
reach() {
    if [[ -n $arg_vlan ]]; then
        local short=${1%%.*} rest=
        [[ $1 == *.* ]] && rest=.${1#*.}
        echo "$short-kavlan-$arg_vlan$rest"
    else
        echo "$1"
    fi
}
short_name() { echo "${1%%.*}"; }
# The site of a host: its name's second label (Grid'5000's NAME.SITE.grid5000.fr).
site_of() {
    if [[ -n $arg_vlan ]]; then
        echo "kavlan-$arg_vlan"
    elif [[ $1 == *.* ]]; then
        local rest=${1#*.}
        echo "${rest%%.*}"
    else
        echo site
    fi
}

read -ra connector <<<"$arg_connector"
# on HOST SCRIPT [NAME=VALUE...]: run SCRIPT with bash on HOST, the
# variables defined first (values travel inside the script, not as
# arguments, so any connector carries them unchanged).
on() {
    local host=$1 script=$2 kv
    shift 2
    {
        echo 'set -euo pipefail'
        for kv in "$@"; do
            printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
        done
        printf '%s\n' "$script"
    } | "${connector[@]}" "$(reach "$host")" bash -s
}
# on_all SCRIPT [NAME=VALUE...]: on every host at once; fails if one does.
on_all() {
    local h pids=() failed=0 i=0
    for h in "${hosts[@]}"; do
        on "$h" "$@" NODE_INDEX=$i &
        pids+=($!)
        i=$((i + 1))
    done
    i=0
    for h in "${pids[@]}"; do
        wait "$h" || { say "${hosts[i]}: failed"; failed=1; }
        i=$((i + 1))
    done
    return "$failed"
}

# The daemons' commands: the packages' paths, or a build tree's.
if [[ $arg_start_with == direct ]]; then
    bin_salined=$arg_build_dir/saline/salined/salined
    bin_saline=$arg_build_dir/saline/cli/saline
    bin_dht_pagesd=$arg_build_dir/dht-pages/pagesd/dht-pagesd
    bin_kget_store=$arg_build_dir/saline/kget/store/kget-store
    bin_kget=$arg_build_dir/saline/kget/cli/kget
else
    bin_salined=/usr/sbin/salined
    bin_saline=/usr/bin/saline
    bin_dht_pagesd=/usr/sbin/dht-pagesd
    bin_kget_store=/usr/sbin/kget-store
    bin_kget=kget
fi

say "${#hosts[@]} node(s): ${hosts[*]}; salined on $(short_name "${hosts[0]}")"

# ---- kadeploy ----
if step_runs kadeploy; then
    env_file=$(mktemp "${TMPDIR:-/tmp}/vcluster-host.XXXXXX.yaml")
    trap 'rm -f "$env_file"' EXIT
    image=$arg_image
    [[ $image == *://* ]] || image=$(realpath "$image")
    sed "s|@IMAGE@|$image|" "$arg_env" >"$env_file"
    if [[ -x $here/check-env.py ]] && python3 -c 'import yaml' 2>/dev/null; then
        python3 "$here/check-env.py" "$env_file" || die "the environment description is not valid"
    fi
    kargs=(-a "$env_file" -f "$arg_nodefile" -k)
    # Nodes of several sites: each site's kadeploy server deploys its own.
    [[ $(for h in "${hosts[@]}"; do h=${h#*.}; echo "${h%%.*}"; done | sort -u | wc -l) -eq 1 ]] ||
        kargs+=(--multi-server)
    [[ -z $arg_vlan ]] || kargs+=(--vlan "$arg_vlan")
    say "kadeploy3 ${kargs[*]}"
    kadeploy3 "${kargs[@]}" || die "kadeploy3 failed"
fi

# ---- configure ----
# What each node has: address (the source of its default route), CPUs, KiB.
probe='addr=$(ip -4 -o route get 192.0.2.1 | sed -n "s/.* src \([0-9.]*\).*/\1/p")
[[ -n $addr ]] || { echo "no IPv4 default route" >&2; exit 1; }
echo "$addr $(nproc) $(awk "/^MemTotal:/ {print \$2}" /proc/meminfo)"'

# The bridge: made from the interface of the default route, its address
# and route moved to the bridge, detached so that a lost connection does
# not stop it halfway.
bridge_script='
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    dev=$(ip -4 -o route show default | sed -n "s/.* dev \([^ ]*\).*/\1/p" | head -n 1)
    gw=$(ip -4 -o route show default | sed -n "s/.* via \([0-9.]*\).*/\1/p" | head -n 1)
    cidr=$(ip -4 -o addr show dev "$dev" | awk "{print \$4; exit}")
    [[ -n $dev && -n $gw && -n $cidr ]] || { echo "cannot find the main interface" >&2; exit 1; }
    setsid bash -c "ip link add $BRIDGE type bridge && ip link set $BRIDGE up &&
        ip addr del $cidr dev $dev && ip link set $dev master $BRIDGE &&
        ip addr add $cidr dev $BRIDGE && ip route replace default via $gw dev $BRIDGE" \
        </dev/null >/dev/null 2>&1 &
    for _ in $(seq 50); do
        ip -4 -o addr show dev "$BRIDGE" 2>/dev/null | grep -q inet && break
        sleep 0.2
    done
fi'

# write_conf PATH MODE OWNER:GROUP CONTENT: the group only where it exists.
configure_script='
write_conf() {
    local path=$1 mode=$2 owner=$3 content=$4
    mkdir -p "$(dirname "$path")"
    printf "%s" "$content" >"$path.new"
    chmod "$mode" "$path.new"
    getent group "${owner#*:}" >/dev/null && chown "$owner" "$path.new"
    mv "$path.new" "$path"
}
# A setting of a libvirt file, unless the file sets it already.
libvirt_set() {
    mkdir -p /etc/libvirt
    grep -qs "^[[:space:]]*$2[[:space:]]*=" "$1" || echo "$2 = $3" >>"$1"
}
write_conf /etc/vcluster/dht-pagesd.conf 0644 root:root "$DHT_PAGESD_CONF"
write_conf /etc/vcluster/dht-pages.key 0640 root:dht-pages "$DHT_KEY"
write_conf /etc/kget/site.key 0640 root:kget "$KGET_KEY"
if [[ $NODE_INDEX == 0 ]]; then
    write_conf /etc/vcluster/salined.conf 0644 root:root "$SALINED_CONF"
    write_conf /etc/vcluster/kget-store.conf 0644 root:root "$KGET_STORE_CONF"
fi
# salined reaches every libvirtd over TCP (qemu+tcp); QEMU runs kget
# for snapshots, which its seccomp sandbox forbids.
libvirt_set /etc/libvirt/libvirtd.conf auth_tcp "\"none\""
libvirt_set /etc/libvirt/qemu.conf seccomp_sandbox 0
# Only the job'"'"'s nodes may talk to libvirtd.
if command -v iptables >/dev/null; then
    iptables -N VCLUSTER-LIBVIRT 2>/dev/null || iptables -F VCLUSTER-LIBVIRT
    for a in 127.0.0.1 $NODE_ADDRS; do
        iptables -A VCLUSTER-LIBVIRT -s "$a" -j RETURN
    done
    iptables -A VCLUSTER-LIBVIRT -j DROP
    iptables -C INPUT -p tcp --dport 16509 -j VCLUSTER-LIBVIRT 2>/dev/null ||
        iptables -I INPUT -p tcp --dport 16509 -j VCLUSTER-LIBVIRT
fi
if [[ -d /etc/apparmor.d/local/abstractions ]] &&
    ! grep -qs resolver.sock /etc/apparmor.d/local/abstractions/libvirt-qemu; then
    echo "/run/dht-pages/resolver.sock rw," >>/etc/apparmor.d/local/abstractions/libvirt-qemu
fi
'

if step_runs configure; then
    declare -A addr cpus mem
    for h in "${hosts[@]}"; do
        on "$h" "$bridge_script" BRIDGE="$arg_bridge" || die "$h: cannot make bridge '$arg_bridge'"
        read -r a c m < <(on "$h" "$probe") || die "$h: cannot probe the node"
        [[ $a =~ ^[0-9.]+$ && $c =~ ^[0-9]+$ && $m =~ ^[0-9]+$ ]] || die "$h: bad probe answer '$a $c $m'"
        addr[$h]=$a
        cpus[$h]=${arg_cpus:-$c}
        # All but 2 GiB for the host, at least 1 GiB for VMs.
        mem[$h]=${arg_memory:-$(( m / 1024 > 3072 ? m / 1024 - 2048 : 1024 ))M}
        say "$h: ${addr[$h]}, ${cpus[$h]} CPUs, ${mem[$h]} for VMs"
    done
    # Sites, in node file order, each with its address pool.
    declare -A site_net site_first
    sites=()
    for h in "${hosts[@]}"; do
        s=$(site_of "$h")
        [[ -n ${site_first[$s]:-} ]] || { site_first[$s]=$h; sites+=("$s"); }
    done
    for v in "${arg_vm_nets[@]}"; do
        IFS=: read -r s net range gw extra <<<"$v"
        [[ -z ${extra:-} && $net =~ ^[0-9.]+/[0-9]+$ ]] ||
            usage_error "--vm-net: '$v' is not SITE:CIDR[:FIRST-LAST[:GATEWAY]]"
        [[ -n ${site_first[$s]:-} ]] ||
            usage_error "--vm-net: no node of site '$s' (sites: ${sites[*]})"
        site_net[$s]="network=$net"$'\n'"${range:+range=$range$'\n'}${gw:+gateway=$gw$'\n'}"
    done
    for s in "${sites[@]}"; do
        [[ -n ${site_net[$s]:-} ]] || usage_error "no --vm-net for site '$s': the VMs need addresses there"
    done

    salined_conf="# Written by images/g5k/deploy.sh from $arg_nodefile.
[salined]
virt-type=$arg_virt_type
emulator=$arg_emulator

[snapshots]
store=${addr[${hosts[0]}]}:7410
key-file=/etc/kget/site.key
kget=$bin_kget
"
    for s in "${sites[@]}"; do
        salined_conf+=$'\n'"[site $s]"$'\n'"${site_net[$s]}"
    done
    for h in "${hosts[@]}"; do
        salined_conf+="
[node $(short_name "$h")]
site=$(site_of "$h")
uri=qemu+tcp://${addr[$h]}/system
cpus=${cpus[$h]}
memory=${mem[$h]}
bridge=$arg_bridge
pool-dir=/var/lib/libvirt/saline
"
    done
    for img in saline "$arg_ssi_image"; do
        salined_conf+=$'\n'"[image $img]"$'\n'"dir=$arg_image_dir/$img"$'\n'
    done
    kget_store_conf="[kget-store]
dir=/var/lib/kget
listen=${addr[${hosts[0]}]}
key-file=/etc/kget/site.key
"
    randkey() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
    kget_key=$(randkey)
    declare -A dht_key
    for s in "${sites[@]}"; do
        dht_key[$s]=$(randkey)
    done
    node_addrs=
    for h in "${hosts[@]}"; do
        node_addrs+="${addr[$h]} "
    done
    i=0
    pids=()
    for h in "${hosts[@]}"; do
        s=$(site_of "$h")
        # A node's DHT bootstraps from its site's first node.
        boot=
        [[ ${site_first[$s]} == "$h" ]] || boot="bootstrap=${addr[${site_first[$s]}]}:4222"$'\n'
        dht_conf="[dht-pagesd]
site=$s
site_key_file=/etc/vcluster/dht-pages.key
address=${addr[$h]}
$boot"
        on "$h" "$configure_script" NODE_INDEX=$i NODE_ADDRS="$node_addrs" \
            DHT_PAGESD_CONF="$dht_conf" DHT_KEY="${dht_key[$s]}" KGET_KEY="$kget_key" \
            SALINED_CONF="$salined_conf" KGET_STORE_CONF="$kget_store_conf" &
        pids+=($!)
        i=$((i + 1))
    done
    i=0
    for p in "${pids[@]}"; do
        wait "$p" || die "${hosts[i]}: cannot write the configuration"
        i=$((i + 1))
    done
    on "${hosts[0]}" '"$SALINED" --check --config /etc/vcluster/salined.conf >/dev/null' \
        SALINED="$bin_salined" || die "salined refuses the configuration it was given"
    say "configured: /etc/vcluster on ${#hosts[@]} node(s)"
fi

# ---- start ----
systemd_start='
systemctl daemon-reload
# libvirtd listens on TCP through its socket unit (Debian 12).
systemctl stop libvirtd.service >/dev/null 2>&1 || true
systemctl enable -q --now libvirtd-tcp.socket libvirtd.socket
systemctl restart libvirtd.service
systemctl enable -q dht-pagesd.service
systemctl restart dht-pagesd.service
if [[ $NODE_INDEX == 0 ]]; then
    systemctl enable -q kget-store.service salined.service
    systemctl restart kget-store.service salined.service
fi'
# Without systemd: each daemon from the build tree, detached, its pid in
# /run/vcluster/NAME.pid and its log in /var/log/vcluster/NAME.log.
direct_start='
mkdir -p /run/vcluster /var/log/vcluster /run/saline /run/dht-pages /var/lib/saline /var/lib/kget
start() {
    local name=$1 pid
    shift
    pid=$(cat "/run/vcluster/$name.pid" 2>/dev/null) && kill "$pid" 2>/dev/null &&
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    setsid "$@" </dev/null >>"/var/log/vcluster/$name.log" 2>&1 &
    echo $! >"/run/vcluster/$name.pid"
}
# A libvirtd that runs already (the host'"'"'s own) is kept.
virsh -c qemu:///system version >/dev/null 2>&1 || start libvirtd /usr/sbin/libvirtd --listen
start dht-pagesd "$DHT_PAGESD" --config /etc/vcluster/dht-pagesd.conf
if [[ $NODE_INDEX == 0 ]]; then
    start kget-store "$KGET_STORE" --config /etc/vcluster/kget-store.conf
    start salined "$SALINED" --config /etc/vcluster/salined.conf
fi'
if step_runs start; then
    if [[ $arg_start_with == systemd ]]; then
        on_all "$systemd_start" || die "cannot start the daemons"
    else
        on_all "$direct_start" SALINED="$bin_salined" DHT_PAGESD="$bin_dht_pagesd" \
            KGET_STORE="$bin_kget_store" || die "cannot start the daemons"
    fi
    say "started: libvirtd and dht-pagesd everywhere, kget-store and salined on $(short_name "${hosts[0]}")"
fi

# ---- wait ----
saline_on_first() {
    local script='"$SALINE" "${ARGS[@]}"' kv=() a
    # ARGS as a bash array inside the script.
    for a in "$@"; do
        kv+=("$(printf '%q' "$a")")
    done
    on "${hosts[0]}" "ARGS=(${kv[*]})"$'\n'"$script" SALINE="$bin_saline"
}
if step_runs wait; then
    deadline=$((SECONDS + arg_timeout))
    while :; do
        up=$(saline_on_first nodes 2>/dev/null | grep -c ' up ') || true
        [[ ${up:-0} -lt ${#hosts[@]} ]] || break
        ((SECONDS < deadline)) || {
            saline_on_first nodes >&2 || true
            die "salined sees ${up:-0} of ${#hosts[@]} nodes up after ${arg_timeout}s"
        }
        sleep 2
    done
    say "salined sees all ${#hosts[@]} nodes up"
fi

# ---- submit ----
if step_runs submit && [[ ${#command[@]} -gt 0 ]]; then
    vms=${arg_vms:-${#hosts[@]}}
    out=$(saline_on_first submit --ssi -n "$vms" -c "$arg_vm_cpus" -m "$arg_vm_mem" \
        --image "$arg_ssi_image" --walltime "$arg_walltime" -- "${command[@]}") ||
        die "saline submit failed"
    echo "$out"
    job=$(sed -n 's/^SALINE_JOB_ID=\([0-9]*\)$/\1/p' <<<"$out")
    [[ -n $job ]] || die "no job id in saline's answer"
    say "SSI job $job: $vms VMs of $arg_ssi_image; waiting for its end"
    state=
    while :; do
        json=$(saline_on_first stat "$job" --json) || die "saline stat $job failed"
        state=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' <<<"$json")
        case $state in
        done | failed | cancelled) break ;;
        esac
        sleep 3
    done
    saline_on_first log "$job" --vm 0 || true
    status=$(python3 -c 'import json,sys; s=json.load(sys.stdin).get("exit_status"); print("" if s is None else s)' <<<"$json")
    say "SSI job $job: $state, exit status ${status:-none}"
    [[ $state == "done" && -n $status ]] || exit 1
    exit "$status"
fi
