#!/usr/bin/env bash
# Build a test guest image from Debian packages: Debian's 6.1 kernel and
# an uncompressed initramfs with busybox, the virtio modules, the vcguest
# agent and a payload of real Debian files that stays in guest RAM. With
# --saline-agent and --disk-mb, a Saline image (saline/README.md, "Guest
# contract"): the salguest agent and a base disk for /job. With --ssi, an
# SSI image (ssi-guest/README.md): ssid, ssi, ssi-init and the SSI
# modules, CRIU, GNU tar and mdadm with their libraries, the modules CRIU
# needs and those of cluster memory. Both --saline-agent and --ssi: a Saline SSI image, for SSI jobs
# (saline/README.md, "SSI jobs").
#
# Output directory:
#   vmlinuz         the kernel
#   initrd.img      the initramfs (newc cpio)
#   payload.sha256  SHA-256 of the payload files, concatenated in name order
#   disk.qcow2      with --disk-mb: ext4 file system, label 'saline'
#   image.env       KERNEL_VERSION, PAYLOAD_BYTES, PAYLOAD_FILES, ...
set -euo pipefail
export LC_ALL=C

prog=build-image
die() { echo "$prog: $*" >&2; exit 1; }
usage_error() { echo "$prog: $*; see --help" >&2; exit 2; }

usage() {
    cat <<USAGE
Usage: $prog --output DIR --agent FILE|--saline-agent FILE|--ssi DIR [OPTION...]

Build a guest image (kernel + initramfs) from Debian packages.

  --output DIR       where to write the image (replaced atomically)
  --agent FILE       the statically linked vcguest binary
  --saline-agent FILE
                     the statically linked salguest binary, run instead of
                     vcguest when QEMU passes a Saline job; with --ssi
                     too, an image for Saline's SSI jobs
  --ssi DIR          build the SSI image from DIR, which holds ssid, ssi,
                     ssi-init and the modules *.ko (ssi.ko, ssi_pol_*.ko);
                     adds /usr/sbin/criu, /bin/tar, their libraries and the
                     modules CRIU needs, mdadm and the modules of
                     cluster memory; no payload unless --payload-mb
  --disk-mb N        also write disk.qcow2, an ext4 file system (label
                     'saline') of N MiB, 0 for none (default 0)
  --kernel-deb FILE  Debian linux-image .deb (default: the newest in
                     \$VC_CACHE/kernel, as put there by scripts/setup.sh)
  --payload-mb N     payload size in MiB, 0 for none (default 32)
  --modules LIST     kernel modules to load at boot, with their
                     dependencies (default "virtio_pci virtio_net virtio_blk")
  -h, --help         this help
USAGE
}

cache=${VC_CACHE:-/var/cache/vcluster}
out= agent= saline_agent= ssi_dir= kdeb= payload_mb= disk_mb=0
modules=
# What CRIU 3.17 needs in a guest (measured): nftables and crc32c for its
# kerndat probes, the *_diag modules to dump sockets, tun and veth for
# criu check's network probes.
# Cluster memory (ssi-guest/README.md): NVMe over TCP, host and target,
# md's RAID10 for the mirrors, zsmalloc for zswap in front.
ssi_modules="virtio_pci virtio_net virtio_blk qemu_fw_cfg crc32c_generic
nfnetlink nf_tables unix_diag inet_diag tcp_diag udp_diag netlink_diag
af_packet_diag tun veth
nvme_tcp nvmet_tcp raid10 zsmalloc"
# Debian packages whose files make the payload, in this order.
payload_pkgs="libvirt0 libglib2.0-0 libxml2 libopendht2 libsqlite3-0
libicu72 qemu-system-x86"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --output|--agent|--saline-agent|--ssi|--kernel-deb|--payload-mb|--disk-mb|--modules)
        [[ $# -ge 2 ]] || usage_error "option '$1' needs a value"
        case "$1" in
        --output) out=$2 ;;
        --agent) agent=$2 ;;
        --saline-agent) saline_agent=$2 ;;
        --ssi) ssi_dir=$2 ;;
        --disk-mb) disk_mb=$2 ;;
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
[[ -n $agent || -n $saline_agent || -n $ssi_dir ]] ||
    usage_error "--agent, --saline-agent or --ssi is required"
for a in $agent $saline_agent; do
    [[ -x $a ]] || die "agent '$a' is not an executable file"
done
if [[ -n $ssi_dir ]]; then
    [[ -d $ssi_dir ]] || die "SSI directory '$ssi_dir' not found"
    for f in ssid ssi ssi-init; do
        [[ -f $ssi_dir/$f && -x $ssi_dir/$f ]] ||
            die "SSI directory '$ssi_dir' has no executable '$f'"
    done
    for f in /usr/sbin/criu /usr/bin/tar; do
        [[ -x $f ]] || die "'$f' not found (run scripts/setup.sh)"
    done
    : "${payload_mb:=0}"
    : "${modules:=$ssi_modules}"
fi
: "${payload_mb:=32}"
: "${modules:=virtio_pci virtio_net virtio_blk}"
[[ $payload_mb =~ ^[0-9]+$ && $payload_mb -le 4096 ]] ||
    usage_error "--payload-mb '$payload_mb' is not a number of MiB up to 4096"
[[ $disk_mb =~ ^[0-9]+$ && ($disk_mb -eq 0 || ($disk_mb -ge 16 && $disk_mb -le 65536)) ]] ||
    usage_error "--disk-mb '$disk_mb' is not 0 or a number of MiB from 16 to 65536"
if ((disk_mb > 0)); then
    for t in mke2fs qemu-img; do
        command -v "$t" >/dev/null || die "'$t' not found (run scripts/setup.sh)"
    done
fi
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
        './lib/modules/*/kernel/lib/*' './lib/modules/*/kernel/fs/*' \
        './lib/modules/*/kernel/crypto/*' './lib/modules/*/kernel/block/*' \
        './lib/modules/*/kernel/mm/*' \
        2>/dev/null ||
    die "cannot extract kernel package '$kdeb'"
vmlinuz=$(ls "$kx"/boot/vmlinuz-* 2>/dev/null | head -n 1)
[[ -n $vmlinuz ]] || die "'$kdeb' holds no kernel"
kver=${vmlinuz##*/vmlinuz-}
moddir=$kx/lib/modules/$kver/kernel

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,payload,lib/modules}
cp "$busybox" "$root/bin/busybox"
[[ -z $agent ]] || cp "$agent" "$root/sbin/vcguest"
[[ -z $saline_agent ]] || cp "$saline_agent" "$root/sbin/salguest"
install -m 0755 "$(dirname "$0")/guest/init" "$root/init"

# copy_elf FILE DEST: FILE at DEST in the image, with the dynamic loader
# and every library ldd resolves for it, at the paths ldd gives (the
# loader looks there).
copy_elf() {
    local file=$1 dest=$2 lib out
    mkdir -p "$root$(dirname "$dest")"
    cp "$file" "$root$dest"
    out=$(ldd "$file" 2>&1) || true
    [[ $out != *"not a dynamic"* && $out != *"statically linked"* ]] || return 0
    [[ $out != *"not found"* ]] ||
        die "'$file' needs libraries this machine lacks: $(grep 'not found' <<<"$out" | tr -s ' \t\n' ' ')"
    for lib in $(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out"); do
        [[ -e $root$lib ]] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# The SSI parts, CRIU and what it runs. iptables and ip6tables are stubs:
# criu check probes them and would print errors; nothing here uses them.
ssi_kos=()
if [[ -n $ssi_dir ]]; then
    copy_elf "$ssi_dir/ssid" /sbin/ssid
    copy_elf "$ssi_dir/ssi-init" /sbin/ssi-init
    copy_elf "$ssi_dir/ssi" /bin/ssi
    [[ ! -f $ssi_dir/ssi-memtest ]] || copy_elf "$ssi_dir/ssi-memtest" /bin/ssi-memtest
    copy_elf /usr/sbin/criu /usr/sbin/criu
    copy_elf /usr/bin/tar /bin/tar
    # mdadm, from its package in the cache (scripts/setup.sh).
    mdadm_deb=$(ls "$cache"/guest-debs/mdadm_*.deb 2>/dev/null | sort -V |
        tail -n 1) || true
    [[ -n $mdadm_deb ]] ||
        die "no mdadm package in '$cache/guest-debs' (run scripts/setup.sh)"
    # Unpacked beside the kernel's files, which are removed at the end
    # ($work becomes the image).
    mkdir -p "$kx/mdadm"
    dpkg-deb --fsys-tarfile "$mdadm_deb" | tar -x -C "$kx/mdadm" ./sbin/mdadm ||
        die "cannot extract mdadm from '$mdadm_deb'"
    copy_elf "$kx/mdadm/sbin/mdadm" /sbin/mdadm
    for f in iptables ip6tables iptables-legacy ip6tables-legacy \
        iptables-restore ip6tables-restore iptables-legacy-restore \
        ip6tables-legacy-restore iptables-nft ip6tables-nft \
        iptables-nft-restore ip6tables-nft-restore; do
        printf '#!/bin/sh\n# stub: criu check probes it\nexit 0\n' >"$root/sbin/$f"
        chmod 0755 "$root/sbin/$f"
    done
    mkdir -p "$root/lib/modules/ssi" "$root/etc/ssi" "$root/var/log"
    [[ ! -f $ssi_dir/ssi.ko ]] || ssi_kos+=(ssi.ko)
    for f in "$ssi_dir"/*.ko; do
        [[ -f $f && $(basename "$f") != ssi.ko ]] || continue
        ssi_kos+=("$(basename "$f")")
    done
    if ((${#ssi_kos[@]} == 0)); then
        echo "$prog: warning: no SSI module (*.ko) in '$ssi_dir'" >&2
    elif [[ ${ssi_kos[0]} != ssi.ko ]]; then
        die "SSI directory '$ssi_dir' has policy modules but no 'ssi.ko'"
    fi
    for f in "${ssi_kos[@]}"; do
        cp "$ssi_dir/$f" "$root/lib/modules/ssi/"
    done
    printf '%s\n' "${ssi_kos[@]}" | sed '/^$/d' >"$root/lib/modules/ssi/load-order"
fi

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

# 3. The base disk, made without mounting anything: mke2fs copies a
# directory in.
if ((disk_mb > 0)); then
    mkdir "$work/disk"
    cat >"$work/disk/README" <<README
This is the job directory of a Saline VM: the command runs here, in
/job, with HOME=/job. The disk is a copy-on-write overlay of the image's
disk.qcow2, one per VM, deleted when the job ends.
README
    mke2fs -q -F -t ext4 -L saline -E root_owner=0:0 -d "$work/disk" \
        "$work/disk.raw" "${disk_mb}M" >/dev/null ||
        die "cannot make the ext4 file system of the disk"
    qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$work/disk.qcow2" ||
        die "cannot convert the disk to qcow2"
    rm -rf "$work/disk" "$work/disk.raw"
fi

# 4. Assemble.
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
if [[ -n $saline_agent ]]; then
    echo "SALINE_AGENT=salguest" >>"$work/image.env"
fi
if [[ -n $ssi_dir ]]; then
    printf 'SSI=1\nSSI_MODULES="%s"\nCRIU_VERSION=%s\n' "${ssi_kos[*]}" \
        "$(dpkg-query -W -f='${Version}' criu 2>/dev/null || echo unknown)" \
        >>"$work/image.env"
fi
if ((disk_mb > 0)); then
    printf 'DISK_MB=%s\nDISK_LABEL=saline\n' "$disk_mb" >>"$work/image.env"
fi
rm -rf "$kx" "$root"

rm -rf "$out"
chmod 0755 "$work"
mv "$work" "$out"
trap - EXIT
disk_note=
((disk_mb == 0)) || disk_note=", disk $disk_mb MiB"
echo "$prog: $out: kernel $kver, payload $count files, $total bytes$disk_note" >&2
