#!/usr/bin/env bash
# Bad input to the image builder gives one line on stderr, a non-zero exit
# and leaves nothing behind; a good build is complete and consistent.
source "$(dirname "$0")/lib/functions.sh"

builder=$VC_SRCDIR/images/build-image.sh
agent=$VC_BUILDDIR/images/vcguest
out=$VC_TESTDIR/out

# expect_error WHAT PATTERN ARGS...: exit != 0, exactly one stderr line
# matching PATTERN, and no file left in $VC_TESTDIR/out's parent.
expect_error() {
    local what=$1 pattern=$2 err rc=0
    shift 2
    err=$("$builder" "$@" 2>&1 >/dev/null) || rc=$?
    ((rc != 0)) || fail "$what: exit status 0"
    [[ $(wc -l <<<"$err") -eq 1 ]] || fail "$what: not one line: $err"
    [[ $err =~ $pattern ]] || fail "$what: '$err' does not match '$pattern'"
    [[ -z $(ls -A "$VC_TESTDIR") ]] || fail "$what: left $(ls -A "$VC_TESTDIR")"
    log "ok: $what -> $err"
}

expect_error "unknown option" "unknown option '--bogus'" --bogus
expect_error "missing value" "needs a value" --output
expect_error "no output" "--output is required" --agent "$agent"
expect_error "bad payload size" "payload-mb 'lots'" --output "$out" \
    --agent "$agent" --payload-mb lots
expect_error "no agent" "--agent, --saline-agent or --ssi is required" \
    --output "$out"
expect_error "bad disk size" "disk-mb '8'" --output "$out" \
    --agent "$agent" --disk-mb 8
expect_error "missing kernel" "kernel package '.*nope.deb' not found" \
    --output "$out" --agent "$agent" --kernel-deb "$VC_TESTDIR/nope.deb"
mkdir -p "$VC_TESTDIR/empty"
expect_error_cache() {
    local err rc=0
    err=$(VC_CACHE=$VC_TESTDIR/empty "$builder" --output "$out" \
        --agent "$agent" 2>&1 >/dev/null) || rc=$?
    ((rc != 0)) || fail "empty cache: exit status 0"
    [[ $err == *"no kernel package"* ]] || fail "empty cache: '$err'"
    [[ ! -e $out && -z $(find "$VC_TESTDIR" -name '.out.*') ]] ||
        fail "empty cache: left files behind"
    log "ok: empty kernel cache -> $err"
}
expect_error_cache
rmdir "$VC_TESTDIR/empty"

# A truncated kernel package fails, leaving no partial image.
head -c 100000 "$(ls /var/cache/vcluster/kernel/linux-image-*.deb | head -n 1)" \
    >"$VC_TESTDIR/broken.deb"
rc=0
"$builder" --output "$out" --agent "$agent" --kernel-deb "$VC_TESTDIR/broken.deb" \
    2>/dev/null || rc=$?
((rc != 0)) || fail "broken kernel package accepted"
[[ ! -e $out && -z $(find "$VC_TESTDIR" -name '.out.*') ]] ||
    fail "broken kernel package left files behind"
rm "$VC_TESTDIR/broken.deb"
log "ok: truncated kernel package rejected, nothing left"

# A small good build: every part present, checksum agrees with the agent.
"$builder" --output "$out" --agent "$agent" --payload-mb 4
for f in vmlinuz initrd.img payload.sha256 image.env; do
    [[ -s $out/$f ]] || fail "image lacks $f"
done
mkdir "$VC_TESTDIR/x"
(cd "$VC_TESTDIR/x" && cpio -id --quiet <"$out/initrd.img")
for f in init bin/busybox sbin/vcguest lib/modules/load-order; do
    [[ -e $VC_TESTDIR/x/$f ]] || fail "initramfs lacks $f"
done
grep -qx virtio_net.ko "$VC_TESTDIR/x/lib/modules/load-order" ||
    fail "virtio_net not loaded at boot"
# Dependencies load before the modules that need them.
[[ $(grep -n virtio_ring.ko "$VC_TESTDIR/x/lib/modules/load-order" | cut -d: -f1) -lt \
   $(grep -n virtio_pci.ko "$VC_TESTDIR/x/lib/modules/load-order" | cut -d: -f1) ]] ||
    fail "module load order ignores dependencies"
assert_eq "payload sum, agent vs builder" "$(cat "$out/payload.sha256")" \
    "$("$agent" --no-cmdline --payload "$VC_TESTDIR/x/payload" --payload-sum)"
size=$(cat "$VC_TESTDIR"/x/payload/* | wc -c)
((size * 10 >= 4 * 1024 * 1024 * 9 && size <= 4 * 1024 * 1024)) ||
    fail "payload of $size bytes for 4 MiB"
