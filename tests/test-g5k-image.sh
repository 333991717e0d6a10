#!/usr/bin/env bash
# The Grid'5000 host image as kadeploy3 would leave it on two nodes of two
# sites, then images/g5k/deploy.sh --no-kadeploy as a user runs it, with
# the packages' systemd units (issue 15, "Grid'5000"). The image is
# build-env.sh's (the project's packages from VC_DEBS_DIR/v1 as
# test-debian-packages.sh keeps them, else built here with
# dpkg-buildpackage); each of test nodes a1 and b1 boots its own copy
# with systemd as PID 1 (systemd-nspawn in the node's network namespace:
# its br0 and address), reached by the connector as ssh root@HOST would.
# Checked:
#   - the image has /vmlinuz and /initrd.img (vcluster-host.yaml's boot
#     files) and passes check-env.py;
#   - deploy.sh's systemd path: libvirtd over TCP (libvirtd-tcp.socket),
#     dht-pagesd on both nodes, kget-store and salined on a1, enabled and
#     active as their users; the iptables chain before libvirtd's port;
#   - salined sees both nodes; a 2-VM SSI job in the installed patched
#     QEMU runs one VM on each node, forms one cluster of 2, and
#     deploy.sh exits with the command's exit status (5).
# Not here: the boot of the image's kernel (nspawn boots its systemd
# only), kadeploy3 and g5k-postinstall, KVM (TCG: virt-type qemu).
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/sites.sh"
source "$(dirname "$0")/lib/nspawn.sh"
requires_root
needs systemd-nspawn mmdebstrap nsenter dpkg-buildpackage python3

version=$(dpkg-parsechangelog -l "$VC_SRCDIR/debian/changelog" -S Version)
debs=${VC_DEBS_DIR:-}/v1
if [[ -z ${VC_DEBS_DIR:-} || ! -f $debs/vcluster-compute_${version}_amd64.deb ]]; then
    log "building the packages"
    debs=$VC_TESTDIR/debs
    mkdir -p "$debs/src"
    git -C "$VC_SRCDIR" ls-files -z -co --exclude-standard |
        (cd "$VC_SRCDIR" && tar --null -T - -cf -) | tar -C "$debs/src" -xf -
    (cd "$debs/src" && DEB_BUILD_OPTIONS="nocheck noddebs parallel=2" \
        DPKG_DEB_COMPRESSOR_TYPE=gzip DPKG_DEB_COMPRESSOR_LEVEL=1 dpkg-buildpackage -us -uc -b) \
        >"$debs/build.log" 2>&1 || { tail -n 30 "$debs/build.log" >&2; fail "dpkg-buildpackage failed"; }
    rm -rf "$debs/src"
fi

log "build-env.sh --debs $debs"
image=$VC_TESTDIR/vcluster-host.tar.gz
"$VC_SRCDIR/images/g5k/build-env.sh" --debs "$debs" --output "$image" || fail "build-env.sh failed"
listing=$(tar -tzf "$image")
for f in ./vmlinuz ./initrd.img ./usr/lib/vcluster/images/saline-ssi/disk.qcow2; do
    grep -qx "$f" <<<"$listing" || fail "no $f in the image"
done
python3 "$VC_SRCDIR/images/g5k/check-env.py" --image "$image" \
    "$VC_SRCDIR/images/g5k/vcluster-host.yaml" || fail "check-env.py refuses the description"

sites_create 2 1 --delay 5 --rate 100
nodes=(a1 b1)
for n in "${nodes[@]}"; do
    root=$VC_TESTDIR/root-$n
    mkdir "$root"
    tar -C "$root" -xzf "$image" || fail "cannot unpack the image for $n"
    echo "$n" >"$root/etc/hostname"
    # A container's QEMU: systemd-nspawn owns the cgroup tree and QEMU
    # gets no namespace of its own (Grid'5000 nodes need neither).
    printf 'cgroup_controllers = [ ]\nnamespaces = [ ]\n' >>"$root/etc/libvirt/qemu.conf"
done
for n in "${nodes[@]}"; do
    nspawn_boot "vct$$-$n" "$VC_TESTDIR/root-$n" \
        --network-namespace-path="/run/netns/$(node_ns "${n:0:1}" "${n:1}")" \
        --capability=CAP_NET_ADMIN ||
        fail "$n did not boot"
    nspawn_leader "vct$$-$n" >"$VC_TESTDIR/leader-$n"
done
log "a1 and b1 run the image's systemd"

# ssh root@HOST, as after kadeploy3 -k: a login environment on the node.
connect=$VC_TESTDIR/connect
cat >"$connect" <<EOF
#!/bin/sh
host=\${1%%.*}
shift
exec nsenter -t "\$(cat "$VC_TESTDIR/leader-\$host")" -a -r -w \\
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root "\$@"
EOF
chmod +x "$connect"
show_journals() {
    local n
    for n in "${nodes[@]}"; do
        [[ -n ${_nspawn_pid[vct$$-$n]:-} ]] || continue
        echo "--- $n: journal (warnings, last 20)" >&2
        "$connect" "$n" journalctl -q -p warning -n 20 --no-pager >&2 || true
    done
}
cleanup_fn show_journals

nodefile=$VC_TESTDIR/nodefile
printf '%s\n' a1.a.test a1.a.test b1.b.test b1.b.test >"$nodefile"
log "deploy.sh --no-kadeploy, the packages' units"
rc=0
"$VC_SRCDIR/images/g5k/deploy.sh" --no-kadeploy --nodefile "$nodefile" --connector "$connect" \
    --virt-type qemu --cpus 2 --memory 1G --timeout 120 \
    --vm-net a:10.77.1.0/24:10.77.1.100-10.77.1.149:10.77.1.254 \
    --vm-net b:10.77.2.0/24:10.77.2.100-10.77.2.149:10.77.2.254 \
    -n 2 -c 2 -m 256M --walltime 10m -- sh -c 'ssi nodes; exit 5' \
    >"$VC_TESTDIR/deploy.out" 2>"$VC_TESTDIR/deploy.err" || rc=$?
cat "$VC_TESTDIR/deploy.err" "$VC_TESTDIR/deploy.out" >&2
assert_eq "deploy.sh's exit status (the command's)" 5 "$rc"
out=$(cat "$VC_TESTDIR/deploy.out")
view=$(awk '$3 == "up" {print $2}' <<<"$out" | cut -d. -f1-3 | sort -u | tr '\n' ' ')
assert_eq "subnets of the cluster's members" "10.77.1 10.77.2 " "$view"

active() { [[ $("$connect" "$1" systemctl is-active "$2") == active ]]; }
for u in libvirtd-tcp.socket libvirtd.service dht-pagesd.service; do
    for n in "${nodes[@]}"; do
        active "$n" "$u" || fail "$u not active on $n"
    done
done
for u in salined.service kget-store.service; do
    active a1 "$u" || fail "$u not active on a1"
    assert_eq "$u enabled on a1" enabled "$("$connect" a1 systemctl is-enabled "$u")"
    active b1 "$u" && fail "$u active on b1"
done
assert_eq "user of salined" saline "$("$connect" a1 systemctl show -P User salined)"
"$connect" b1 iptables -S VCLUSTER-LIBVIRT | grep -q -- '-s 10.77.1.1/32 -j RETURN' ||
    fail "no libvirtd chain on b1: $("$connect" b1 iptables -S VCLUSTER-LIBVIRT 2>&1)"
job=$(sed -n 's/^SALINE_JOB_ID=\([0-9]*\)$/\1/p' <<<"$out")
[[ -n $job ]] || fail "deploy.sh printed no job id"
assert_eq "nodes of SSI job $job" "a1 b1" "$("$connect" a1 saline stat "$job" --json |
    python3 -c 'import json,sys; print(" ".join(sorted(v["node"] for v in json.load(sys.stdin)["vm_list"])))')"
log "the image's units ran SSI job $job over a1 and b1"
