#!/usr/bin/env bash
# Build QEMU 7.2 from Debian bookworm's source with this project's patch
# series (qemu-patches/series), cached outside the work tree.
#
# The result is keyed by the source version, the series (names and
# contents) and the configure line: if a binary for the key exists, nothing
# is built. Otherwise one working tree is brought to pristine + series
# (only the files the series touches change, so ninja recompiles only
# those) and built. Prints the path of the binary on stdout.
#
#   build-qemu.sh [--upto NNNN]
#
# --upto NNNN: only the series up to the patch whose name starts with
# NNNN, as an older peer (tests of stream versions use it).
#
#   VC_CACHE (default /var/cache/vcluster) holds:
#     qemu-src/qemu-7.2+dfsg/     pristine Debian source (with Debian's
#                                 own patches applied by dpkg-source)
#     qemu/work/{src,build}/      the incremental working tree
#     qemu/bin/<key>/             finished binaries
set -euo pipefail
export LC_ALL=C

prog=build-qemu
here=$(cd "$(dirname "$0")" && pwd)
cache=${VC_CACHE:-/var/cache/vcluster}
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

upto=
case "${1:-}" in
-h|--help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit 0 ;;
--upto)
    [[ ${2:-} =~ ^[0-9]{4}$ ]] || { echo "$prog: --upto needs a patch number, as 0007" >&2; exit 2; }
    upto=$2 ;;
"") ;;
*) echo "$prog: unknown argument '$1'; see --help" >&2; exit 2 ;;
esac

configure_args=(
    --target-list=x86_64-softmmu --without-default-features
    --enable-kvm --enable-tcg --enable-slirp --enable-fdt=system
    --enable-nettle --enable-gnutls --enable-zstd --disable-docs --disable-werror
    --with-git-submodules=ignore
    --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)

# 1. Pristine source, once.
srcroot=$cache/qemu-src
pristine=$(ls -d "$srcroot"/qemu-7.2*/ 2>/dev/null | head -n 1 || true)
if [[ -z $pristine ]]; then
    [[ $(id -u) -eq 0 ]] || die "fetching the QEMU source needs root"
    say "fetching Debian's QEMU source"
    mkdir -p "$srcroot"
    list=/etc/apt/sources.list.d/vcluster-qemu-src.sources
    cat >"$list" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    trap 'rm -f "$list"' EXIT
    apt-get update -qq
    (cd "$srcroot" && apt-get source -qq -o APT::Sandbox::User=root qemu >/dev/null)
    rm -f "$list"
    apt-get update -qq
    trap - EXIT
    pristine=$(ls -d "$srcroot"/qemu-7.2*/ | head -n 1)
fi
pristine=${pristine%/}
version=$(basename "$pristine")

# 2. The key.
series=()
if [[ -f $here/series ]]; then
    while read -r p; do
        [[ -z $p || $p == \#* ]] && continue
        [[ -f $here/$p ]] || die "patch '$p' named in series is missing"
        series+=("$p")
        [[ -n $upto && $p == "$upto"-* ]] && break
    done <"$here/series"
    [[ -z $upto || ${series[-1]} == "$upto"-* ]] || die "no patch $upto in the series"
fi
key=$( {
    echo "$version"
    printf '%s\n' "${configure_args[@]}"
    for p in "${series[@]}"; do echo "$p"; cat "$here/$p"; done
} | sha256sum | cut -c1-16)
out=$cache/qemu/bin/$key
if [[ -x $out/qemu-system-x86_64 ]]; then
    echo "$out/qemu-system-x86_64"
    exit 0
fi

# 3. Working tree: pristine + series, touching only what changes.
work=$cache/qemu/work
mkdir -p "$work"
exec 9>"$work/.lock"
flock 9
if [[ ! -d $work/src ]]; then
    say "copying pristine source"
    cp -a "$pristine" "$work/src.tmp"
    mv "$work/src.tmp" "$work/src"
    : >"$work/touched"
fi
# Undo the previous series: restore every file it touched (a fresh mtime,
# so ninja rebuilds what depended on the patched version).
while read -r f; do
    [[ -n $f ]] || continue
    if [[ -e $pristine/$f ]]; then
        cp "$pristine/$f" "$work/src/$f"
    else
        rm -f "$work/src/$f"
    fi
done <"$work/touched"
: >"$work/touched"
for p in "${series[@]}"; do
    lsdiff_files=$(grep -E '^\+\+\+ b/' "$here/$p" | sed 's|^+++ b/||; s|\s.*$||')
    printf '%s\n' $lsdiff_files >>"$work/touched"
    patch -d "$work/src" -p1 --quiet --forward <"$here/$p" ||
        die "patch '$p' does not apply to $version"
done

# A new configure line configures the tree again (the key changed with
# it, so a binary built the old way is never taken for the new one).
if [[ ! -f $work/build/build.ninja ||
      $(cat "$work/build/configure.args" 2>/dev/null) != "$(printf '%s\n' "${configure_args[@]}")" ]]; then
    say "configuring"
    rm -rf "$work/build"
    mkdir -p "$work/build"
    (cd "$work/build" && ../src/configure "${configure_args[@]}" >configure.log 2>&1) ||
        die "configure failed; see $work/build/configure.log"
    printf '%s\n' "${configure_args[@]}" >"$work/build/configure.args"
fi
say "building ($version + ${#series[@]} patches, key $key); a first build takes 6-13 min"
ninja -C "$work/build" qemu-system-x86_64 >"$work/build/ninja.log" 2>&1 ||
    die "build failed; see $work/build/ninja.log"
mkdir -p "$out.tmp"
cp "$work/build/qemu-system-x86_64" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out/qemu-system-x86_64"
