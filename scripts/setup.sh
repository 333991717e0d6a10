#!/usr/bin/env bash
# Install everything the project needs on Debian bookworm (run as root).
# Idempotent: when every package is present it does nothing but check.
set -euo pipefail

# Build tools and libraries.
build_pkgs=(
    meson ninja-build pkg-config gcc libc6-dev clang-format
    libglib2.0-dev libxml2-dev libvirt-dev nettle-dev libsqlite3-dev
    libopendht-c-dev libsoup-3.0-dev libjson-glib-dev
    libpixman-1-dev libslirp-dev libfdt-dev libzstd-dev libgnutls28-dev flex bison
    libsystemd-dev
    # Debian packages (debian/) and their install test
    # (tests/test-debian-packages.sh): build, lint, a fresh root, booted.
    dpkg-dev debhelper lintian mmdebstrap systemd-container
)
# Runtime: QEMU, libvirt, OpenDHT, networking, guest image tools (mke2fs
# and debugfs for Saline disks), plots of the benchmarks (gnuplot), scp
# for the Kget+ benchmark's baseline (bench/kget-bench.sh), groff for the
# man pages' test (man/check-man-pages.py), PyYAML for the Grid'5000
# environment's check (images/g5k/check-env.py), systemd-analyze for the
# units' test (systemd/).
run_pkgs=(
    qemu-system-x86 qemu-utils seabios ipxe-qemu e2fsprogs
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    dhtnode sqlite3 busybox-static cpio zstd kmod redis-server redis-tools
    iproute2 iputils-ping iperf3 socat util-linux procps psmisc python3
    gnuplot-nox openssh-client criu openssl groff-base python3-yaml systemd
)
# Daemons the tests run their own instances of, so their packages must not
# start them: the OAR batch scheduler (tests/lib/oar.sh; salined submits
# to it), the PostgreSQL it keeps its jobs in, sshd (OAR's nodes, the
# Kget+ benchmark's baseline).
daemon_pkgs=(
    oar-server oar-server-pgsql oar-user oar-user-pgsql oar-node
    postgresql-15 openssh-server
)
# Guest kernel: the newest Debian 6.1 kernel whose headers are also
# available (out-of-tree SSI modules are built against them).
kernel_cache=${VC_CACHE:-/var/cache/vcluster}/kernel
# Guest-only tools, unpacked into the SSI image and never installed here
# (mdadm would pull udev and a mail server onto the host): mdadm for
# cluster memory's mirrors (ssi-guest/README.md, "Cluster memory").
guest_debs_cache=${VC_CACHE:-/var/cache/vcluster}/guest-debs
guest_debs=(mdadm)

die() { echo "setup: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -r /etc/debian_version ]] || die "needs Debian bookworm"

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

missing=()
for p in "${build_pkgs[@]}" "${run_pkgs[@]}"; do
    installed "$p" || missing+=("$p")
done
missing_daemons=()
for p in "${daemon_pkgs[@]}"; do
    installed "$p" || missing_daemons+=("$p")
done

updated=0
apt_update() {
    if [[ $updated -eq 0 ]]; then
        echo "setup: apt-get update" >&2
        apt-get update -qq
        updated=1
    fi
}

if [[ ${#missing[@]} -gt 0 ]]; then
    apt_update
    echo "setup: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi

# A policy-rc.d that refuses keeps postinst scripts from starting services;
# ours only (one already there is left alone), removed however we exit.
policy=/usr/sbin/policy-rc.d
policy_ours=0
trap '[[ $policy_ours -eq 0 ]] || rm -f "$policy"' EXIT
if [[ ${#missing_daemons[@]} -gt 0 ]]; then
    apt_update
    echo "setup: installing ${missing_daemons[*]} (services not started)" >&2
    if [[ ! -e $policy ]]; then
        policy_ours=1
        printf '#!/bin/sh\n# scripts/setup.sh: start no service\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing_daemons[@]}" >/dev/null
    if [[ $policy_ours -eq 1 ]]; then
        rm -f "$policy"
        policy_ours=0
    fi
fi

# salined submits OAR jobs as saline; oar-tester is tests/test-oar.sh's
# plain OAR user (OAR refuses jobs of root and oar, and nobody's shell is
# nologin). oarexec runs a job as `<login shell> -c CMD`: nologin would
# refuse every job, and bash, unlike dash, runs a lone command in place,
# so OAR's checkpoint signal reaches it and not a shell in between.
for u in saline oar-tester; do
    if ! getent passwd "$u" >/dev/null; then
        useradd --system --user-group --create-home --home-dir "/var/lib/$u" \
            --shell /bin/bash "$u"
    elif [[ $(getent passwd "$u" | cut -d: -f7) != /bin/bash ]]; then
        usermod --shell /bin/bash "$u"
    fi
done

# libvirtd as root wants this user to exist before it parses qemu.conf.
getent passwd libvirt-qemu >/dev/null ||
    useradd --system --no-create-home --shell /usr/sbin/nologin libvirt-qemu

if ! ls "$kernel_cache"/linux-image-*.deb >/dev/null 2>&1; then
    apt_update
    kver=$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' |
        awk '{print $1}' | sed 's/^linux-headers-//' | sort -V | tail -n 1)
    [[ -n $kver ]] || die "no linux-headers-6.1.0-*-amd64 package found"
    apt-cache show "linux-image-$kver" >/dev/null 2>&1 ||
        die "no linux-image-$kver matching linux-headers-$kver"
    echo "setup: guest kernel $kver" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "linux-headers-$kver" >/dev/null
    mkdir -p "$kernel_cache"
    (cd "$kernel_cache" &&
        apt-get download -qq -o APT::Sandbox::User=root "linux-image-$kver")
fi
for p in "${guest_debs[@]}"; do
    ls "$guest_debs_cache/${p}_"*.deb >/dev/null 2>&1 && continue
    apt_update
    mkdir -p "$guest_debs_cache"
    (cd "$guest_debs_cache" &&
        apt-get download -qq -o APT::Sandbox::User=root "$p")
done
echo "setup: ok" >&2
