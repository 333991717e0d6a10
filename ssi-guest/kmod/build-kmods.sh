#!/usr/bin/env bash
# Builds ssi.ko and the policy modules with Kbuild against the headers of
# the guest kernel, the one images/build-image.sh puts in guest images
# (the newest $VC_CACHE/kernel/linux-image-*.deb).
#
#   build-kmods.sh WORKDIR OUTDIR SOURCE...
#
# SOURCE... are copied into WORKDIR (Kbuild writes next to its sources),
# the .ko files land in OUTDIR. Quiet unless something fails.
set -euo pipefail

die() { printf 'build-kmods: %s\n' "$*" >&2; exit 1; }

(($# >= 3)) || die "usage: build-kmods.sh WORKDIR OUTDIR SOURCE..."
work=$1 out=$2
shift 2
cache=${VC_CACHE:-/var/cache/vcluster}

kdeb=$(ls "$cache"/kernel/linux-image-*.deb 2>/dev/null | sort -V | tail -n 1) || true
[[ -n $kdeb ]] || die "no kernel package in '$cache/kernel' (run scripts/setup.sh)"
# linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb -> 6.1.0-57-amd64
kver=$(basename "$kdeb")
kver=${kver#linux-image-}
kver=${kver%%_*}
headers=/usr/src/linux-headers-$kver
[[ -f $headers/Makefile && -f $headers/Module.symvers ]] ||
    die "no headers for guest kernel '$kver' in '$headers' (run scripts/setup.sh)"

rm -rf "$work"
mkdir -p "$work"
cp -- "$@" "$work/"
if ! make -C "$headers" M="$(cd "$work" && pwd)" modules >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    die "Kbuild failed for kernel '$kver'"
fi
for ko in ssi.ko ssi_pol_leastload.ko ssi_pol_roundrobin.ko; do
    cp -- "$work/$ko" "$out/$ko"
done
