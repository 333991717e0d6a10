#!/usr/bin/env bash
# The Debian packages, built and installed for real (issue 16): the tree
# is built twice with dpkg-buildpackage (as it is, and with the version
# bumped to +test1 in a copy of debian/changelog), lintian judges the
# first build, and a fresh bookworm root made by mmdebstrap from Debian's
# packages (its tarball cached under $VC_CACHE/debian-root, keyed by the
# package list) boots systemd as its PID 1 in systemd-nspawn (its own PID,
# mount, UTS and network namespaces; loopback only). Inside it, with real
# dpkg, real systemd and the installed binaries:
#   - each host role's packages install alone; the users dht-pages,
#     saline and kget own their /var/lib directories, libvirt-qemu is in
#     group dht-pages and saline in group libvirt;
#   - dht-pagesd, kget-store and salined run through their units as
#     those users (`systemctl enable --now`; Type=notify: it returns once
#     they said READY=1);
#   - salined migrates a database an older salined left (schema version 1)
#     and keeps its job;
#   - a Saline job VM (the installed image, started by hand as salined
#     would: overlay, output drive, fw_cfg job spec) runs in the installed
#     qemu-system-x86_64-pagehash and migrates live with x-page-hash to a
#     second one; the destination resolves pages through the installed
#     dht-pagesd, and the job's command runs on there;
#   - a Saline job submitted with the saline CLI runs: salined starts its
#     VM through Debian's libvirtd (the root is its node a1) in the
#     installed QEMU from the installed image; output and exit status
#     come back;
#   - the +test1 packages upgrade the first ones; salined opens the same
#     database again (the postinst restarted it): schema version and both
#     jobs kept;
#   - dpkg --purge leaves no package, user, group, state directory, unit
#     link or file of theirs behind.
# Not here: a migration between two nodes of a site (one node: the
# destination's dht-pagesd finds the pages in the source's RAM on the
# same node; tests/test-page-hash.sh runs sites of nodes), through
# libvirt or vm-migrate, and snapshots to kget-store (it runs, but no job
# is best-effort here).
source "$(dirname "$0")/lib/functions.sh"
source "$(dirname "$0")/lib/nspawn.sh"
requires_root
needs dpkg-buildpackage mmdebstrap systemd-nspawn nsenter lintian python3 \
    sqlite3 git qemu-img

packages=(qemu-system-x86-pagehash vcluster-compute kget vcluster-storage
          saline-server saline-client vcluster-images)
# The fresh root: Debian's packages that ours depend on (dpkg -i, unlike
# apt, installs nothing more, so a dependency missing here fails the
# test), systemd to run the services, Debian's libvirtd for salined's
# node, and no package of ours.
source "$VC_SRCDIR/scripts/debian-root.sh"
root_pkgs=(systemd adduser iproute2 procps "${DEBIAN_ROOT_DEPS[@]}"
           libvirt-daemon-system libvirt-daemon-driver-qemu qemu-utils)

work=$VC_TESTDIR
root=$work/root
machine=vct$$

# ---- the packages: the tree as it is, then as version +test1 ----
copy_tree() {
    mkdir -p "$1"
    if git -C "$VC_SRCDIR" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$VC_SRCDIR" ls-files -z -co --exclude-standard |
            (cd "$VC_SRCDIR" && tar --null -T - -cf -) | tar -C "$1" -xf -
    else
        tar -C "$VC_SRCDIR" --exclude=./build --exclude='./build-*' \
            --exclude='./obj-*' -cf - . | tar -C "$1" -xf -
    fi
}
# Unit tests, debug symbols and xz are left to real builds: this one is
# about the packages' contents and scripts.
build_debs() {
    local dir=$1
    (cd "$dir/src" &&
        DEB_BUILD_OPTIONS="nocheck noddebs parallel=2" DPKG_DEB_COMPRESSOR_TYPE=gzip \
        DPKG_DEB_COMPRESSOR_LEVEL=1 dpkg-buildpackage -us -uc -b) \
        >"$dir/build.log" 2>&1 || { tail -n 30 "$dir/build.log" >&2; return 1; }
}

version=$(dpkg-parsechangelog -l "$VC_SRCDIR/debian/changelog" -S Version)
# VC_DEBS_DIR (a developer's shortcut, not for CI): keep the packages there
# and take them from there next time instead of building them again.
if [[ -n ${VC_DEBS_DIR:-} && -f $VC_DEBS_DIR/v2/vcluster_${version}+test1_amd64.changes ]]; then
    log "packages from $VC_DEBS_DIR"
    ln -s "$VC_DEBS_DIR/v1" "$work/v1"
    ln -s "$VC_DEBS_DIR/v2" "$work/v2"
else
    log "building the packages"
    if [[ -n ${VC_DEBS_DIR:-} ]]; then
        rm -rf "$VC_DEBS_DIR/v1" "$VC_DEBS_DIR/v2"
        mkdir -p "$VC_DEBS_DIR/v1" "$VC_DEBS_DIR/v2"
        ln -s "$VC_DEBS_DIR/v1" "$work/v1"
        ln -s "$VC_DEBS_DIR/v2" "$work/v2"
    fi
    copy_tree "$work/v1/src"
    build_debs "$work/v1" || fail "dpkg-buildpackage failed"
    copy_tree "$work/v2/src"
    sed -i '1s/(\([^)]*\))/(\1+test1)/' "$work/v2/src/debian/changelog"
    build_debs "$work/v2" || fail "dpkg-buildpackage of +test1 failed"
    rm -rf "$work/v1/src" "$work/v2/src"
fi
for p in "${packages[@]}"; do
    [[ -f $work/v1/${p}_${version}_amd64.deb && -f $work/v2/${p}_${version}+test1_amd64.deb ]] ||
        fail "package $p not built"
done

log "lintian"
lintian --info --fail-on error,warning,info "$work/v1/vcluster_${version}_amd64.changes" \
    >"$work/lintian.log" 2>&1 || { cat "$work/lintian.log" >&2; fail "lintian"; }
sed 's/^/  /' "$work/lintian.log" >&2

# ---- the fresh root, cached ----
tarball=$(debian_root_tarball --log "$work/mmdebstrap.log" "${root_pkgs[@]}") ||
    fail "mmdebstrap"
mkdir "$root"
tar -C "$root" -xf "$tarball"
mkdir -p "$root/srv/vct/debs1" "$root/srv/vct/debs2"
for p in "${packages[@]}"; do
    cp "$work/v1/${p}_${version}_amd64.deb" "$root/srv/vct/debs1/"
    cp "$work/v2/${p}_${version}+test1_amd64.deb" "$root/srv/vct/debs2/"
done

# ---- boot it: systemd as PID 1 in its own namespaces ----
# in_root CMD...: CMD in the container, as a login shell would run it.
in_root() { in_nspawn "$machine" "$@"; }
# field EXPR: EXPR on the JSON read from stdin, as `j`.
field() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

log "booting the root"
nspawn_boot "$machine" "$root" --private-network || fail "the container did not boot"
log "systemd runs as PID 1 of the root ($(in_root systemctl is-system-running || true))"

# ---- install ----
installed_version() { in_root dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null || true; }
# One host role at a time: each role's packages install with no other of
# ours (dpkg -i fails on a missing dependency).
for role in "storage:vcluster-storage" \
    "server:saline-server saline-client vcluster-images" \
    "compute:vcluster-compute qemu-system-x86-pagehash kget"; do
    debs=()
    for p in ${role#*:}; do
        debs+=("/srv/vct/debs1/${p}_${version}_amd64.deb")
    done
    in_root dpkg -i "${debs[@]}" >>"$work/dpkg-install.log" 2>&1 ||
        { cat "$work/dpkg-install.log" >&2; fail "dpkg -i of the ${role%%:*} role failed"; }
    log "${role%%:*} role installed alone: ${role#*:}"
done
for p in "${packages[@]}"; do
    assert_eq "$p" "install ok installed $version" "$(installed_version "$p")"
done
for u in dht-pages saline kget; do
    in_root getent passwd "$u" >/dev/null || fail "no user $u"
    assert_eq "owner of /var/lib/$u" "$u" "$(in_root stat -c %U "/var/lib/$u")"
done
# QEMU reaches dht-pagesd's socket, salined the local libvirtd.
assert_eq "members of group dht-pages" libvirt-qemu "$(in_root getent group dht-pages | cut -d: -f4)"
in_root id -nG saline | grep -qw libvirt || fail "saline is not in group libvirt"

# ---- the daemons, as systemd services ----
# start_service NAME: as the operator does (README, "Install on hosts"):
# the packages enable and start nothing. Type=notify: systemctl returns
# once the daemon said READY=1.
start_service() {
    in_root systemctl enable --quiet --now "$1.service" ||
        { show_journal "$1" 30; return 1; }
    log "$1: started by its unit ($(in_root systemctl show -P Type "$1"), user $(service_user "$1"))"
}
service_user() {
    local pid
    pid=$(in_root systemctl show -P MainPID "$1.service")
    [[ $pid != 0 ]] || return 1
    in_root ps -o user= -p "$pid" | tr -d ' '
}
show_journal() { in_root journalctl -u "$1" -n "${2:-20}" --no-pager >&2 || true; }

# What an operator writes: the site keys, and each daemon's settings in
# the packages' /etc/vcluster/*.conf (loopback: the container has no
# other network). The root is also salined's node a1 (qemu:///system,
# Debian's libvirtd), with the guests' bridge br0. Its pool lives outside
# /var/lib/saline, which QEMU's user cannot enter. The container's cgroup
# tree is systemd-nspawn's (partial cgroup v1 here): libvirt leaves it
# alone and starts QEMU in no namespace of its own.
in_root sh -ec '
    mkdir -p /etc/kget /dev/shm/vct/a /dev/shm/vct/b
    umask 027
    head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" >/etc/vcluster/dht-pages.key
    head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" >/etc/kget/site.key
    chgrp dht-pages /etc/vcluster/dht-pages.key
    chgrp kget /etc/kget/site.key
    umask 022
    printf "[dht-pagesd]\nsite=test\nsite_key_file=/etc/vcluster/dht-pages.key\naddress=127.0.0.1\nram_glob=/dev/shm/vct/a/*.ram\n" \
        >/etc/vcluster/dht-pagesd.conf
    printf "[kget-store]\nlisten=127.0.0.1\n" >/etc/vcluster/kget-store.conf
    printf "[salined]\nvirt-type=qemu\nemulator=/usr/bin/qemu-system-x86_64-pagehash\noutput-size=8M\n\n" \
        >/etc/vcluster/salined.conf
    printf "[site a]\nnetwork=10.77.1.0/24\nrange=10.77.1.100-10.77.1.149\ngateway=10.77.1.254\n\n" \
        >>/etc/vcluster/salined.conf
    printf "[node a1]\nsite=a\nuri=qemu:///system\ncpus=2\nmemory=1G\npool-dir=/var/lib/libvirt/saline\n\n" \
        >>/etc/vcluster/salined.conf
    printf "[image saline]\ndir=/usr/lib/vcluster/images/saline\n" >>/etc/vcluster/salined.conf
    printf "cgroup_controllers = [ ]\nnamespaces = [ ]\n" >>/etc/libvirt/qemu.conf
    ip link add br0 type bridge
    ip addr add 10.77.1.254/24 dev br0
    ip link set br0 up
    systemctl restart libvirtd.service'

# A database an older salined left (schema version 1, frozen as
# saline/tests/test-store.c holds it) with one finished job: salined must
# migrate it, keeping the job, the first time the installed one opens it.
sqlite3 "$root/var/lib/saline/saline.db" <<'SQL'
CREATE TABLE nodes (
  name TEXT PRIMARY KEY NOT NULL, site TEXT NOT NULL, uri TEXT NOT NULL,
  cpus INTEGER NOT NULL CHECK (cpus > 0),
  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0));
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, owner_uid INTEGER NOT NULL,
  name TEXT NOT NULL, state TEXT NOT NULL,
  besteffort INTEGER NOT NULL CHECK (besteffort IN (0, 1)),
  idempotent INTEGER NOT NULL CHECK (idempotent IN (0, 1)),
  priority INTEGER NOT NULL, n_vms INTEGER NOT NULL CHECK (n_vms > 0),
  cpus INTEGER NOT NULL CHECK (cpus > 0),
  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0), image TEXT NOT NULL,
  walltime_s INTEGER NOT NULL CHECK (walltime_s > 0), site TEXT,
  command BLOB NOT NULL, submit_time INTEGER NOT NULL,
  start_time INTEGER NOT NULL DEFAULT 0, end_time INTEGER NOT NULL DEFAULT 0,
  exit_status INTEGER NOT NULL DEFAULT -1, failure TEXT);
CREATE INDEX jobs_by_state ON jobs (state);
CREATE TABLE vms (
  job_id INTEGER NOT NULL REFERENCES jobs (id),
  idx INTEGER NOT NULL CHECK (idx >= 0), node TEXT, site TEXT, domain TEXT,
  mac TEXT, ip TEXT, state TEXT NOT NULL, PRIMARY KEY (job_id, idx));
PRAGMA user_version = 1;
INSERT INTO jobs (id, owner_uid, name, state, besteffort, idempotent,
  priority, n_vms, cpus, mem_mib, image, walltime_s, site, command,
  submit_time, start_time, end_time, exit_status)
  VALUES (5, 0, 'old', 'done', 0, 0, 0, 1, 1, 128, 'saline', 600, 'a',
  X'7472756500', 100, 110, 120, 3);
SQL
in_root chown saline:saline /var/lib/saline/saline.db
schema_version() { sqlite3 "$root/var/lib/saline/saline.db" 'PRAGMA user_version'; }
saline_json() { in_root saline stat "$1" --json; }

for s in dht-pagesd kget-store salined; do
    start_service "$s" || fail "$s did not start"
    assert_eq "type of $s.service" notify "$(in_root systemctl show -P Type "$s")"
done
wait_for 20 in_root dht-pages status || { show_journal dht-pagesd; fail "dht-pagesd does not answer"; }
wait_for 20 in_root saline nodes || { show_journal salined; fail "salined does not answer"; }
schema=$(schema_version)
log "salined migrated the database from schema version 1 to $schema"
((schema > 1)) || fail "the database is still at version 1"
assert_eq "job 5 of the old database" "old done 3" \
    "$(saline_json 5 | field 'j["name"] + " " + j["state"] + " " + str(j["exit_status"])')"
for s in dht-pagesd:dht-pages kget-store:kget salined:saline; do
    assert_eq "user of ${s%%:*}" "${s#*:}" "$(service_user "${s%%:*}")"
done

# ---- a live migration: the installed QEMU and dht-pagesd ----
cat >"$work/qmp.py" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
def call(cmd):
    f.write(json.dumps(cmd) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
f.readline()
call({"execute": "qmp_capabilities"})
print(json.dumps(call(json.loads(sys.argv[2]))))
PY
qmp() { python3 "$work/qmp.py" "$root/srv/vct/$1.qmp" "$2"; }
# The VM is a Saline job VM as salined would start it (saline/README.md,
# "Guest contract"), here by hand: a copy-on-write overlay of the image's
# disk and an output drive, both shared by the two ends as on shared
# storage, and a job spec whose command counts seconds into the output.
b64() { printf %s "$1" | base64 -w0; }
{
    printf 'saline-job 1\njob=1\nvm=0\nvms=1\nhostname=saline-1-0\n'
    printf 'ip=10.0.2.15/24\ngateway=10.0.2.2\npeer=10.0.2.15\n'
    printf 'arg=%s\n' "$(b64 sh)" "$(b64 -c)" \
        "$(b64 'i=0; while :; do echo tick $i; i=$((i + 1)); sleep 1; done')"
} >"$root/srv/vct/job.spec"
base_size=$(qemu-img info --output=json "$root/usr/lib/vcluster/images/saline/disk.qcow2" |
    field 'j["virtual-size"]')
qemu-img create -q -f qcow2 -F qcow2 -u \
    -b /usr/lib/vcluster/images/saline/disk.qcow2 "$root/srv/vct/job.qcow2" "$base_size" ||
    fail "cannot create the overlay"
truncate -s 8M "$root/srv/vct/out.raw"
# out_length: the output bytes the guest has written, from its header.
out_length() {
    head -c 512 "$root/srv/vct/out.raw" | tr -d '\0' |
        sed -n 's/^SALOUT1 state=running .*length=\([0-9]*\) .*/\1/p'
}
out_grows_past() { local n; n=$(out_length); [[ -n $n ]] && ((n > $1)); }

# start_vm NAME RAMDIR QEMU-ARGS...: RAM in /dev/shm/vct/RAMDIR/NAME.ram
start_vm() {
    local name=$1 ram=/dev/shm/vct/$2/$1.ram
    shift 2
    in_root systemd-run --quiet --unit="vct-$name" -p Type=exec \
        /usr/bin/qemu-system-x86_64-pagehash \
        -machine pc,accel=tcg,memory-backend=ram0 -m 192 \
        -object "memory-backend-file,id=ram0,size=192M,mem-path=$ram,share=on" \
        -nodefaults -display none -no-reboot \
        -kernel /usr/lib/vcluster/images/saline/vmlinuz \
        -initrd /usr/lib/vcluster/images/saline/initrd.img \
        -append 'console=ttyS0 no_timer_check panic=-1' \
        -drive file=/srv/vct/job.qcow2,if=virtio,format=qcow2,cache=none \
        -drive file=/srv/vct/out.raw,if=virtio,format=raw,cache=none \
        -fw_cfg name=opt/org.saline/job,file=/srv/vct/job.spec \
        -nic user,model=virtio-net-pci \
        -serial "file:/srv/vct/$name.serial" \
        -qmp "unix:/srv/vct/$name.qmp,server=on,wait=off" \
        -global migration.x-page-hash=on "$@"
    wait_for 10 test -S "$root/srv/vct/$name.qmp" || { show_journal "vct-$name"; return 1; }
}
migrate_status() { qmp "$1" '{"execute":"query-migrate"}' | field 'j["return"].get("status", "")'; }
migration_over() { [[ $(migrate_status "$1") == @(completed|failed|cancelled) ]]; }
ram_indexed() { (($(in_root dht-pages stats --json | field 'j.get("ram_pages", 0)') > 0)); }

log "migration: installed qemu-system-x86_64-pagehash, x-page-hash on"
start_vm src a || fail "the source VM did not start"
# The job's command runs on the source; the node's dht-pagesd indexed it.
wait_for 90 out_grows_past 0 ||
    { tail -n 5 "$root/srv/vct/src.serial" >&2; fail "the job did not start in the source VM"; }
wait_for 30 ram_indexed || { in_root dht-pages stats >&2; fail "dht-pagesd indexed nothing"; }
start_vm dst b -incoming tcp:127.0.0.1:4444 \
    -global migration.x-page-hash-resolver=/run/dht-pages/resolver.sock ||
    fail "the destination VM did not start"
qmp src '{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:4444"}}' >/dev/null
wait_for 180 migration_over src || fail "the migration did not end"
assert_eq "source migration status" completed "$(migrate_status src)"
ph=$(qmp dst '{"execute":"query-migrate"}')
log "destination page-hash: $(field 'j["return"]["page-hash"]' <<<"$ph")"
resolved=$(field 'j["return"]["page-hash"]["resolved"]' <<<"$ph")
((resolved > 0)) || fail "no page resolved through dht-pagesd"
assert_eq "destination VM" running \
    "$(qmp dst '{"execute":"query-status"}' | field 'j["return"]["status"]')"
# The source is paused for good: output that grows comes from the
# destination, whose guest carries on counting.
n=$(out_length)
wait_for 30 out_grows_past "$n" || fail "the job does not run on at the destination"
log "the job runs on at the destination (output $n -> $(out_length) bytes)"
in_root systemctl stop vct-src vct-dst

# ---- a Saline job: salined, libvirtd, the installed QEMU and image ----
node_up() { in_root saline nodes | grep -q '^a1 .* up '; }
wait_for 30 node_up || { in_root saline nodes >&2; fail "node a1 is not up in salined"; }
job=$(in_root saline submit --name kept -n 1 -c 1 -m 128M --image saline \
    --walltime 10m -- sh -c 'echo "hello from $(hostname)"; exit 3' |
    sed -n 's/^SALINE_JOB_ID=\([0-9]*\)$/\1/p')
[[ -n $job ]] || fail "saline submit printed no job id"
job_over() { [[ $(saline_json "$job" | field 'j["state"]') == @(done|failed|cancelled) ]]; }
wait_for 240 job_over || fail "job $job did not end: $(saline_json "$job")"
assert_eq "job $job" "kept done 3" \
    "$(saline_json "$job" | field 'j["name"] + " " + j["state"] + " " + str(j["exit_status"])')"
out=$(in_root saline log "$job") || fail "saline log $job failed"
[[ $out == *"hello from saline-$job-0"* ]] || fail "job $job's output: '$out'"
log "job $job ran in a VM of the installed image: '$(head -n 1 <<<"$out")'"

# ---- upgrade to +test1 ----
log "upgrade to $version+test1"
salined_pid=$(in_root systemctl show -P MainPID salined.service)
in_root sh -c 'dpkg -i /srv/vct/debs2/*.deb' >"$work/dpkg-upgrade.log" 2>&1 ||
    { cat "$work/dpkg-upgrade.log" >&2; fail "the upgrade failed"; }
for p in "${packages[@]}"; do
    assert_eq "$p" "install ok installed $version+test1" "$(installed_version "$p")"
done
# The postinst restarts the running services: salined opens the database
# again with the new binary.
new_pid=$(in_root systemctl show -P MainPID salined.service)
[[ $new_pid != "$salined_pid" ]] || fail "the upgrade did not restart salined"
log "the upgrade restarted salined (PID $salined_pid -> $new_pid in the root)"
for s in dht-pagesd kget-store salined; do
    assert_eq "$s after the upgrade" active "$(in_root systemctl is-active "$s")"
done
wait_for 20 in_root saline nodes || { show_journal salined; fail "salined does not answer after the upgrade"; }
assert_eq "schema version after the upgrade" "$schema" "$(schema_version)"
assert_eq "job 5 after the upgrade" "old done" "$(saline_json 5 | field 'j["name"] + " " + j["state"]')"
assert_eq "job $job after the upgrade" "kept done" \
    "$(saline_json "$job" | field 'j["name"] + " " + j["state"]')"
for u in dht-pages saline kget; do
    in_root getent passwd "$u" >/dev/null || fail "user $u lost in the upgrade"
done

# ---- purge ----
log "purge"
in_root dpkg -L "${packages[@]}" | sort -u >"$work/files"
in_root dpkg --purge "${packages[@]}" >"$work/dpkg-purge.log" 2>&1 ||
    { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge failed"; }
for p in "${packages[@]}"; do
    ! in_root dpkg-query -W "$p" >/dev/null 2>&1 || fail "dpkg still knows $p"
done
in_root dpkg -l | grep -E "^.. +($(IFS='|'; echo "${packages[*]}")) " &&
    fail "dpkg -l still lists a package of ours"
for u in dht-pages saline kget; do
    ! in_root getent passwd "$u" >/dev/null || fail "user $u left after purge"
    ! in_root getent group "$u" >/dev/null || fail "group $u left after purge"
    [[ ! -e $root/var/lib/$u ]] || fail "/var/lib/$u left after purge"
done
left=0
while read -r f; do
    # Directories such as /usr/bin are shared; files and links are ours.
    if [[ -n $f && ! -d $root$f && ( -e $root$f || -L $root$f ) ]]; then
        echo "left after purge: $f" >&2
        left=1
    fi
done <"$work/files"
((left == 0)) || fail "files of the packages left after purge"
[[ ! -e $root/usr/lib/vcluster ]] || fail "/usr/lib/vcluster left after purge"
[[ -z $(find "$root/etc/systemd" "$root/var/lib/systemd/deb-systemd-helper-enabled" \
    \( -name 'dht-pagesd*' -o -name 'salined*' -o -name 'kget-store*' \) 2>/dev/null) ]] ||
    fail "systemd links left after purge"
log "purged: no package, user, state directory or file left"
