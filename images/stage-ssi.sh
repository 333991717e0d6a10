#!/usr/bin/env bash
# Gather the SSI parts (ssid, ssi, ssi-init, *.ko) into one directory for
# build-image.sh --ssi. The directory is replaced atomically.
#
#   stage-ssi.sh --output DIR FILE...
set -euo pipefail

prog=stage-ssi
die() { echo "$prog: $*" >&2; exit 1; }

[[ $# -ge 3 && $1 == --output ]] || die "usage: $prog --output DIR FILE..."
out=$2
shift 2
parent=$(dirname "$out")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.$(basename "$out").XXXXXX")
trap 'rm -rf "$work"' EXIT
for f in "$@"; do
    [[ -f $f ]] || die "'$f' is not a file"
    [[ ! -e $work/$(basename "$f") ]] || die "two parts named '$(basename "$f")'"
    cp -p "$f" "$work/"
done
rm -rf "$out"
chmod 0755 "$work"
mv "$work" "$out"
trap - EXIT
