#!/usr/bin/env bash
# Set up (packages, guest kernel) and build the project into ./build.
# Used by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/setup.sh
if [[ ! -f build/build.ninja ]]; then
    meson setup build --werror >/dev/null
else
    meson configure build -Dwerror=true >/dev/null
fi
ninja -C build >/dev/null ||
    { echo "build: compilation failed; run 'ninja -C build' to see why" >&2; exit 1; }
# The patched QEMU, cached outside the work tree by patch series.
bash qemu-patches/build-qemu.sh >/dev/null
