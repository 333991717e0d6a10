# A Debian 12 root made by mmdebstrap, cached as a tarball; sourced (bash)
# by tests/test-debian-packages.sh and images/g5k/build-env.sh.
#
#   debian_root_tarball [--cache DIR] [--name NAME] [--log FILE] PKG...
#       prints the path of NAME-KEY.tar under DIR (default
#       ${VC_CACHE:-/var/cache/vcluster}/debian-root, name bookworm): a
#       bookworm root (mmdebstrap --variant=apt) with PKG... and what they
#       depend on, KEY a hash of the mirrors and the package list. It is
#       made the first time (minutes); NAME's tarballs of other lists are
#       then removed. mmdebstrap's output goes to FILE (default
#       /dev/null), its last lines to stderr on failure.
#   DEBIAN_ROOT_DEPS    the Debian packages the project's packages depend
#                       on: with them, dpkg -i of ours needs nothing more
#   DEBIAN_ROOT_MIRRORS the apt lines of the root, this machine's mirror

DEBIAN_ROOT_DEPS=(libglib2.0-0 libnettle8 libhogweed6 libgmp10 libvirt0 libxml2
                  libjson-glib-1.0-0 libsqlite3-0 libopendht-c2 libsoup-3.0-0
                  libzstd1 libpixman-1-0 libfdt1 libgnutls30 libslirp0 zlib1g
                  libsystemd0 seabios ipxe-qemu qemu-system-data)
DEBIAN_ROOT_MIRRORS=("deb http://deb.debian.org/debian bookworm main"
                     "deb http://deb.debian.org/debian bookworm-updates main"
                     "deb http://deb.debian.org/debian-security bookworm-security main")

debian_root_tarball() {
    local cache=${VC_CACHE:-/var/cache/vcluster}/debian-root name=bookworm
    local logf=/dev/null key tarball tmp
    while [[ $# -gt 0 ]]; do
        case $1 in
        --cache) cache=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --log) logf=$2; shift 2 ;;
        *) break ;;
        esac
    done
    [[ $# -gt 0 ]] || { echo "debian-root: no package" >&2; return 2; }
    key=$( {
        printf '%s\n' "${DEBIAN_ROOT_MIRRORS[@]}"
        printf '%s\n' "$@" | sort
    } | sha256sum | cut -c1-16)
    tarball=$cache/$name-$key.tar
    if [[ ! -f $tarball ]]; then
        echo "debian-root: mmdebstrap: a bookworm root with $# packages" >&2
        mkdir -p "$cache" || return 1
        # mmdebstrap picks the format from the name's end.
        tmp=$cache/tmp-$$.tar
        if ! mmdebstrap -q --variant=apt --include="$(IFS=,; echo "$*")" \
            bookworm "$tmp" "${DEBIAN_ROOT_MIRRORS[@]}" >"$logf" 2>&1; then
            [[ $logf == /dev/null ]] || tail -n 20 "$logf" >&2
            rm -rf "$tmp"
            echo "debian-root: mmdebstrap failed" >&2
            return 1
        fi
        mv "$tmp" "$tarball" || return 1
        # Roots of other package lists are stale.
        find "$cache" -name "$name-*.tar" ! -name "$name-$key.tar" -delete
    fi
    echo "$tarball"
}
