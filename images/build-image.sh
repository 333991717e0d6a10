#!/usr/bin/env bash
# Build a test guest image from Debian packages: Debian's 6.1 kernel and
# an uncompressed initramfs with busybox, the virtio modules, the vcguest
# agent and a payload of real Debian files that stays in guest RAM.
#
# Output directory:
#   vmlinuz         the kernel
#   initrd.img      the initramfs (newc cpio)
#   payload.sha256  SHA-256 of the payload files, concatenated in name order
#   image.env       KERNEL_VERSION, PAYLOAD_BYTES, PAYLOAD_FILES, ...
set -euo pipefail
export LC_ALL=C

prog=build-image
die() { echo "$prog: $*" >&2; exit 1; }
usage_error() { echo "$prog: $*; see --help" >&2; exit 2; }

usage() {
    cat <<USAGE
Usage: $prog --output DIR --agent FILE [OPTION...]

Build a guest image (kernel + initramfs) from Debian packages.

  --output DIR       where to write the image (replaced atomically)
  --agent FILE       the statically linked vcguest binary
  --kernel-deb FILE  Debian linux-image .deb (default: the newest in
                     \$VC_CACHE/kernel, as put there by scripts/setup.sh)
  --payload-mb N     payload size in MiB, 0 for none (default 32)
  --modules LIST     kernel modules to load at boot, with their
                     dependencies (default "virtio_pci virtio_net virtio_blk")
  -h, --help         this help
USAGE
}

cache=${VC_CACHE:-/var/cache/vcluster}
out= agent= kdeb= payload_mb=32 modules="virtio_pci virtio_net virtio_blk"
# Debian packages whose files make the payload, in this order.
payload_pkgs="libvirt0 libglib2.0-0 libxml2 libopendht2 libsqlite3-0
libicu72 qemu-system-x86"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --output|--agent|--kernel-deb|--payload-mb|--modules)
        [[ $# -ge 2 ]] || usage_error "option '$1' needs a value"
        case "$1" in
        --output) out=$2 ;;
        --agent) agent=$2 ;;
        --kernel-deb) kdeb=$2 ;;
        --payload-mb) payload_mb=$2 ;;
        --modules) modules=$2 ;;
        esac
        shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown option '$1'" ;;
    esac
done

[[ -n $out ]] || usage_error "--output is required"
[[ -n $agent ]] || usage_error "--agent is required"
[[ -x $agent ]] || die "agent '$agent' is not an executable file"
[[ $payload_mb =~ ^[0-9]+$ && $payload_mb -le 4096 ]] ||
    usage_error "--payload-mb '$payload_mb' is not a number of MiB up to 4096"
if [[ -z $kdeb ]]; then
    kdeb=$(ls "$cache"/kernel/linux-image-*.deb 2>/dev/null | sort -V |
        tail -n 1) || true
    [[ -n $kdeb ]] || die "no kernel package in '$cache/kernel' (run scripts/setup.sh)"
fi
[[ -f $kdeb ]] || die "kernel package '$kdeb' not found"
busybox=/bin/busybox
[[ -x $busybox ]] && file_is_static=$(ldd "$busybox" 2>&1 || true)
[[ ${file_is_static:-} == *"not a dynamic"* ]] ||
    die "'$busybox' is not the static busybox (install busybox-static)"

parent=$(dirname "$out")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.$(basename "$out").XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. Kernel and the modules we need, straight out of the .deb.
kx=$work/kernel
mkdir -p "$kx"
dpkg-deb --fsys-tarfile "$kdeb" |
    tar -x -C "$kx" --wildcards './boot/vmlinuz-*' \
        './lib/modules/*/kernel/drivers/*' './lib/modules/*/kernel/net/*' \
        './lib/modules/*/kernel/lib/*' './lib/modules/*/kernel/fs/*' 2>/dev/null ||
    die "cannot extract kernel package '$kdeb'"
vmlinuz=$(ls "$kx"/boot/vmlinuz-* 2>/dev/null | head -n 1)
[[ -n $vmlinuz ]] || die "'$kdeb' holds no kernel"
kver=${vmlinuz##*/vmlinuz-}
moddir=$kx/lib/modules/$kver/kernel

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,payload,lib/modules}
cp "$busybox" "$root/bin/busybox"
cp "$agent" "$root/sbin/vcguest"
install -m 0755 "$(dirname "$0")/guest/init" "$root/init"

# Modules in dependency order (modinfo reads the .ko itself).
declare -A loaded=()
order=()
add_module() {
    local name=${1//-/_} file dep
    [[ -z ${loaded[$name]:-} ]] || return 0
    loaded[$name]=1
    file=$(find "$moddir" -name "$name.ko" -print -quit)
    [[ -n $file ]] || file=$(find "$moddir" -name "${name//_/-}.ko" -print -quit)
    [[ -n $file ]] || die "module '$name' not found in kernel $kver"
    for dep in $(modinfo -F depends "$file" | tr ',' ' '); do
        add_module "$dep"
    done
    cp "$file" "$root/lib/modules/"
    order+=("$(basename "$file")")
}
for m in $modules; do
    add_module "$m"
done
printf '%s\n' "${order[@]}" >"$root/lib/modules/load-order"

# 2. Payload: regular files of Debian packages, up to the size asked for.
limit=$((payload_mb * 1024 * 1024))
total=0 count=0
if [[ $limit -gt 0 ]]; then
    # shellcheck disable=SC2086
    while read -r f; do
        [[ -f $f && ! -L $f ]] || continue
        size=$(stat -c %s "$f")
        ((size > 0)) || continue
        if ((total + size > limit)); then
            continue
        fi
        name=${f#/}
        cp "$f" "$root/payload/${name//\//_}"
        total=$((total + size))
        count=$((count + 1))
    done < <(dpkg -L $payload_pkgs 2>/dev/null | grep -v '^/usr/share/doc' | sort -u)
    ((total * 10 >= limit * 9)) ||
        die "only $total bytes of payload found for $payload_mb MiB (are $payload_pkgs installed?)"
fi
payload_sum=$(cd "$root/payload" && find . -type f | sort | sed 's|^\./||' |
    xargs -r cat | sha256sum | cut -d' ' -f1)

# 3. Assemble.
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) >"$work/initrd.img"
cp "$vmlinuz" "$work/vmlinuz"
echo "$payload_sum" >"$work/payload.sha256"
cat >"$work/image.env" <<ENV
KERNEL_VERSION=$kver
KERNEL_DEB=$(basename "$kdeb")
PAYLOAD_BYTES=$total
PAYLOAD_FILES=$count
PAYLOAD_SHA256=$payload_sum
MODULES="${order[*]}"
ENV
rm -rf "$kx" "$root"

rm -rf "$out"
chmod 0755 "$work"
mv "$work" "$out"
trap - EXIT
echo "$prog: $out: kernel $kver, payload $count files, $total bytes" >&2
