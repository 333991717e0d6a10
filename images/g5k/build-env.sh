#!/usr/bin/env bash
# Build the image of vcluster-host.yaml: a Debian 12 root with the
# project's packages, a kernel and its initrd at /vmlinuz and
# /initrd.img, packed as a gzip tarball for kadeploy3.
# images/g5k/README.md is the guide.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

packages=(qemu-system-x86-pagehash vcluster-compute kget vcluster-storage
          saline-server saline-client vcluster-images)
# Debian's part of a host: ours' dependencies, a bootable system that
# kadeploy3 can reach (ssh as root, DHCP through ifupdown, the NFS homes
# of g5k-postinstall --fstab nfs), libvirt, and iptables for deploy.sh.
host_pkgs=(systemd systemd-sysv udev kmod adduser iproute2 procps ifupdown
           isc-dhcp-client openssh-server nfs-common iptables ca-certificates
           less libvirt-daemon-system libvirt-daemon-driver-qemu qemu-utils)
kernel_pkgs=(linux-image-amd64 initramfs-tools)

usage() {
    cat <<EOF
Usage: $prog --debs DIR [--output FILE] [--cache DIR]

Builds vcluster-host's image: a Debian 12 (bookworm) root made by
mmdebstrap from this machine's Debian mirror, with Debian's kernel
(/vmlinuz, /initrd.img), libvirt, openssh-server and the project's
packages (${packages[*]}),
packed as a gzip tarball for kadeploy3 (vcluster-host.yaml). Needs root
and mmdebstrap. The Debian part is cached (under the cache directory,
by package list), so a second build only installs the project's
packages again.

  --debs DIR     the project's .deb files (dpkg-buildpackage -b puts them
                 in the parent of the tree), one version of each package
  --output FILE  the image (default: vcluster-host.tar.gz)
  --cache DIR    where the Debian roots are cached (default:
                 \${VC_CACHE:-/var/cache/vcluster}/debian-root)
  -h, --help     this help
EOF
}
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$prog" "$*" >&2; exit 2; }
say() { printf '%s: %s\n' "$prog" "$*" >&2; }

arg_debs=
arg_output=vcluster-host.tar.gz
arg_cache=
while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --debs | --output | --cache)
        [[ $# -ge 2 ]] || usage_error "option '$1' needs a value"
        case $1 in
        --debs) arg_debs=$2 ;;
        --output) arg_output=$2 ;;
        --cache) arg_cache=$2 ;;
        esac
        shift ;;
    *) usage_error "unknown argument '$1'" ;;
    esac
    shift
done
[[ -n $arg_debs ]] || usage_error "no --debs: the project's packages are needed"
[[ -d $arg_debs ]] || die "--debs: '$arg_debs' is not a directory"
[[ $arg_output == *.tar.gz || $arg_output == *.tgz ]] ||
    usage_error "--output: '$arg_output' does not end in .tar.gz or .tgz"
[[ -d $(dirname "$arg_output") ]] || die "--output: no directory '$(dirname "$arg_output")'"

debs=()
for p in "${packages[@]}"; do
    found=("$arg_debs/${p}_"*_amd64.deb)
    [[ -f ${found[0]} ]] || die "--debs: no ${p}_*_amd64.deb in '$arg_debs'"
    [[ ${#found[@]} -eq 1 ]] || die "--debs: several versions of $p in '$arg_debs'"
    debs+=("${found[0]}")
done
[[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap, chroot)"
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt install mmdebstrap)"

# shellcheck source=scripts/debian-root.sh
source "$srcdir/scripts/debian-root.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/build-env.XXXXXX")
trap 'rm -rf "$work"' EXIT

pkgs=("${host_pkgs[@]}" "${DEBIAN_ROOT_DEPS[@]}" "${kernel_pkgs[@]}")
say "the Debian root: ${#pkgs[@]} packages and their dependencies"
tarball=$(debian_root_tarball ${arg_cache:+--cache "$arg_cache"} --name g5k-host \
    --log "$work/mmdebstrap.log" "${pkgs[@]}") || die "cannot make the Debian root"

root=$work/root
mkdir "$root"
tar -C "$root" -xf "$tarball" || die "cannot unpack '$tarball'"

say "installing ${packages[*]}"
mkdir -p "$root/tmp/vcluster-debs"
cp "${debs[@]}" "$root/tmp/vcluster-debs/"
# Nothing starts in the chroot: the daemons are started on the nodes.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
chroot "$root" sh -c 'dpkg -i /tmp/vcluster-debs/*.deb' >"$work/dpkg.log" 2>&1 ||
    { tail -n 20 "$work/dpkg.log" >&2; die "dpkg -i of the project's packages failed"; }
rm -rf "$root/tmp/vcluster-debs" "$root/usr/sbin/policy-rc.d"

# linux-image's postinst makes these links in /; kadeploy3 boots them.
for f in vmlinuz initrd.img; do
    [[ -e $root/$f ]] || die "no /$f in the root (linux-image-amd64's links)"
done
# Each node gets its own machine id on its first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin

say "packing $arg_output"
tar -C "$root" --numeric-owner --xattrs -czf "$arg_output.tmp" . ||
    { rm -f "$arg_output.tmp"; die "cannot write '$arg_output'"; }
mv "$arg_output.tmp" "$arg_output"
say "$arg_output: $(du -h "$arg_output" | cut -f1), kernel $(readlink "$root/vmlinuz")"
