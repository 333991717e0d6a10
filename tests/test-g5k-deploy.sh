#!/usr/bin/env bash
# images/g5k/deploy.sh after kadeploy3 (issue 15, "Grid'5000"), on two
# test sites of one node each, a1 and b1, as an OAR deploy job over two
# Grid'5000 sites would give them: a node file listing a1.a.test and
# b1.b.test once per core, each node reached through a connector (here
# nsenter into the node's namespaces instead of ssh root@HOST), each
# with its own /etc (an overlay) as a deployed node has. deploy.sh
# --no-kadeploy --start-with direct then writes /etc/vcluster/*.conf and
# the keys on both nodes (the path Grid'5000 nodes take), starts
# dht-pagesd on both, kget-store and salined on a1 from the build tree,
# waits until salined sees both nodes and runs `saline submit --ssi -n 2`.
# Checked:
#   - the configuration: salined.conf on a1 has both nodes with their
#     libvirt URIs and a site per Grid'5000 site, salined --check takes
#     it; dht-pagesd.conf on each node names its site and address, the
#     site keys are 0640;
#   - dht-pagesd, kget-store and salined run on the nodes they should;
#   - the SSI job's 2 VMs run one on a1, one on b1, form one cluster of
#     2 members (its output, printed by deploy.sh), and deploy.sh exits
#     with the command's exit status (7);
#   - running deploy.sh again from step `start` restarts the daemons
#     (new PIDs) and salined sees both nodes again.
# build-env.sh and deploy.sh: their usage errors, one line each.
# Not here: kadeploy3 itself and the Grid'5000 frontend (no OAR, no
# kadeploy3 on this machine), --start-with systemd and the image
# (tests/test-g5k-image.sh), making the VMs' bridge (the test nodes have
# br0), the libvirtd firewall (no iptables here), and --vlan.
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/guests.sh"
source "$(dirname "$0")/lib/libvirt.sh"
requires_root
needs virsh nsenter python3 qemu-img

deploy=$VC_SRCDIR/images/g5k/deploy.sh
image=$VC_BUILDDIR/images/saline-ssi
qemu=/usr/bin/qemu-system-x86_64
[[ -x $VC_BUILDDIR/saline/salined/salined ]] || fail "salined not built in '$VC_BUILDDIR'"
[[ -f $image/disk.qcow2 ]] || fail "no Saline SSI image in '$image'"
[[ -f $VC_BUILDDIR/images/saline/disk.qcow2 ]] || fail "no saline image in '$VC_BUILDDIR/images'"

# ---- usage errors come before any node is touched ----
out=$("$deploy" --nodefile /dev/null --from-step nowhere 2>&1) && fail "a bad step was accepted"
[[ $out == *"'nowhere' is not one of kadeploy configure start wait submit"* ]] ||
    fail "bad step: '$out'"
out=$(env -u OAR_NODEFILE "$deploy" --no-kadeploy 2>&1) && fail "no node file was accepted"
[[ $out == *"no node file"* ]] || fail "no node file: '$out'"
build_env=$VC_SRCDIR/images/g5k/build-env.sh
out=$("$build_env" 2>&1) && fail "build-env.sh without --debs was accepted"
[[ $(wc -l <<<"$out") -eq 1 && $out == *"no --debs"* ]] || fail "build-env.sh without --debs: '$out'"
out=$("$build_env" --debs "$VC_TESTDIR" 2>&1) && fail "build-env.sh without packages was accepted"
[[ $out == *"no qemu-system-x86-pagehash_*_amd64.deb in"* ]] || fail "build-env.sh, no packages: '$out'"
log "usage errors: one line each"

sites_create 2 1 --delay 5 --rate 100
lv_start_nodes "$qemu" a1 b1 || fail "libvirtd did not start on a1 and b1"

nodes=(a1 b1)
holder() { lv_holder "${1:0:1}" "${1:1}"; }
# Each node's own /etc: an overlay on the host's, with libvirt.sh's
# /etc/libvirt of the node bound on it again.
for n in "${nodes[@]}"; do
    d=$VC_TESTDIR/etc-$n
    mkdir -p "$d/upper" "$d/work"
    nsenter -t "$(holder "$n")" -m sh -ec '
        mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc
        mount --bind "$2" /etc/libvirt' _ "$d" "$VC_TESTDIR/libvirt/$n/etc" ||
        fail "cannot give $n its own /etc"
done

# The connector: HOST CMD... runs CMD in that node's namespaces.
connect=$VC_TESTDIR/connect
cat >"$connect" <<EOF
#!/bin/sh
host=\${1%%.*}
shift
exec nsenter -t "\$(cat "$VC_TESTDIR/libvirt/\$host/holder.pid")" -m -n "\$@"
EOF
chmod +x "$connect"

# The direct mode's daemons, stopped before libvirt.sh ends the nodes.
daemon_pid() { cat "$(lv_root "${1:0:1}" "${1:1}")/run/vcluster/$2.pid" 2>/dev/null; }
stop_daemons() {
    local n d pid
    for n in "${nodes[@]}"; do
        for d in salined kget-store dht-pagesd; do
            pid=$(daemon_pid "$n" "$d") || continue
            kill "$pid" 2>/dev/null || continue
            wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null
        done
    done
}
show_logs() {
    local n f
    for n in "${nodes[@]}"; do
        for f in "$(lv_root "${n:0:1}" "${n:1}")"/var/log/vcluster/*.log; do
            [[ -f $f ]] || continue
            echo "--- $n: ${f##*/} (last 15 lines)" >&2
            tail -n 15 "$f" >&2
        done
    done
}
cleanup_fn stop_daemons
cleanup_fn show_logs

nodefile=$VC_TESTDIR/nodefile
printf '%s\n' a1.a.test a1.a.test b1.b.test b1.b.test >"$nodefile"
common=(--nodefile "$nodefile" --connector "$connect" --start-with direct
        --build-dir "$VC_BUILDDIR" --image-dir "$VC_BUILDDIR/images"
        --emulator "$qemu" --virt-type qemu --cpus 2 --memory 1G --timeout 120
        --vm-net a:10.77.1.0/24:10.77.1.100-10.77.1.149:10.77.1.254
        --vm-net b:10.77.2.0/24:10.77.2.100-10.77.2.149:10.77.2.254)

# ---- the deployment and an SSI job of 2 VMs, one per node ----
# The command's view of the cluster, then its own exit status.
cmd='ssi nodes; echo "members=$(ssi nodes | tail -n +3 | wc -l)"; exit 7'
log "deploy.sh --no-kadeploy on a1.a.test and b1.b.test"
rc=0
env -u G_DEBUG "$deploy" --no-kadeploy "${common[@]}" -n 2 -c 2 -m 256M --walltime 10m \
    -- sh -c "$cmd" >"$VC_TESTDIR/deploy.out" 2>"$VC_TESTDIR/deploy.err" || rc=$?
cat "$VC_TESTDIR/deploy.err" "$VC_TESTDIR/deploy.out" >&2
assert_eq "deploy.sh's exit status (the command's)" 7 "$rc"
out=$(cat "$VC_TESTDIR/deploy.out")
assert_eq "members seen by the command" "members=2" "$(grep '^members=' <<<"$out")"
job=$(sed -n 's/^SALINE_JOB_ID=\([0-9]*\)$/\1/p' <<<"$out")
[[ -n $job ]] || fail "deploy.sh printed no job id"

# ---- what deploy.sh left on the nodes ----
root_of() { lv_root "${1:0:1}" "${1:1}"; }
conf=$(cat "$(root_of a1)/etc/vcluster/salined.conf") || fail "no salined.conf on a1"
[[ ! -e $(root_of b1)/etc/vcluster/salined.conf ]] || fail "salined.conf on b1 too"
[[ ! -e /etc/vcluster/salined.conf ]] || fail "deploy.sh wrote this machine's /etc/vcluster"
grep -qx 'uri=qemu+tcp://10.77.1.1/system' <<<"$conf" || fail "a1's URI not in salined.conf: $conf"
grep -qx 'uri=qemu+tcp://10.77.2.1/system' <<<"$conf" || fail "b1's URI not in salined.conf: $conf"
assert_eq "salined's nodes" "a1 b1" "$(sed -n 's/^\[node \(.*\)\]$/\1/p' <<<"$conf" | tr '\n' ' ' | sed 's/ $//')"
assert_eq "salined's sites" "a b" "$(sed -n 's/^\[site \(.*\)\]$/\1/p' <<<"$conf" | tr '\n' ' ' | sed 's/ $//')"
"$connect" a1 env -u G_DEBUG "$VC_BUILDDIR/saline/salined/salined" --check \
    --config /etc/vcluster/salined.conf >/dev/null || fail "salined --check refuses a1's salined.conf"
for n in "${nodes[@]}"; do
    r=$(root_of "$n")
    grep -qx "site=${n:0:1}" "$r/etc/vcluster/dht-pagesd.conf" &&
        grep -qx "address=$(node_ip "${n:0:1}" "${n:1}")" "$r/etc/vcluster/dht-pagesd.conf" ||
        fail "$n: dht-pagesd.conf: $(cat "$r/etc/vcluster/dht-pagesd.conf")"
    assert_eq "mode of $n's dht-pages key" 640 "$(stat -c %a "$r/etc/vcluster/dht-pages.key")"
    assert_eq "mode of $n's kget key" 640 "$(stat -c %a "$r/etc/kget/site.key")"
done
running() { [[ -n $2 ]] && kill -0 "$2" 2>/dev/null && [[ $(cat "/proc/$2/comm") == "$1"* ]]; }
for d in salined kget-store dht-pagesd; do
    running "$d" "$(daemon_pid a1 "$d")" || fail "no $d on a1"
done
running dht-pagesd "$(daemon_pid b1 dht-pagesd)" || fail "no dht-pagesd on b1"
[[ -z $(daemon_pid b1 salined) ]] || fail "a salined on b1"

saline() { "$connect" a1 "$VC_BUILDDIR/saline/cli/saline" "$@"; }
js=$(saline stat "$job" --json) || fail "saline stat $job failed"
nodes_of_job=$(python3 -c 'import json,sys; j=json.load(sys.stdin); print(" ".join(sorted(v["node"] for v in j["vm_list"])))' <<<"$js")
assert_eq "nodes of SSI job $job" "a1 b1" "$nodes_of_job"
state_of() { saline stat "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
assert_eq "state of SSI job $job" "done" "$(state_of "$job")"
view=$(awk '$3 == "up" {print $2}' <<<"$out" | cut -d. -f1-3 | sort -u | tr '\n' ' ')
assert_eq "subnets of the cluster's members" "10.77.1 10.77.2 " "$view"
log "SSI job $job: one cluster over a1 and b1, exit status 7"

# ---- again from step start: the daemons restart, the nodes come back ----
old=$(daemon_pid a1 salined)
env -u G_DEBUG "$deploy" --from-step start "${common[@]}" 2>"$VC_TESTDIR/deploy2.err" ||
    { cat "$VC_TESTDIR/deploy2.err" >&2; fail "deploy.sh --from-step start failed"; }
new=$(daemon_pid a1 salined)
[[ $new != "$old" ]] && running salined "$new" || fail "salined not restarted ($old, $new)"
grep -q "salined sees all 2 nodes up" "$VC_TESTDIR/deploy2.err" || {
    cat "$VC_TESTDIR/deploy2.err" >&2
    fail "no nodes after the restart"
}
assert_eq "jobs kept by the restarted salined" "done" "$(state_of "$job")"
log "deploy.sh --from-step start restarted the daemons on the same configuration"
