#!/usr/bin/env bash
# The guest side of Saline's contract (saline/README.md, "Guest
# contract"), with plain QEMU as salined would boot a job's VM: the job
# spec in fw_cfg, an overlay of the image's disk on vda, an output drive
# on vdb. Each VM runs its command, writes output and exit status in the
# drive's format and powers itself off; what the command writes to /job
# stays in its overlay. An SSI job spec with a bad key, or on an image
# without ssid, ends with 127 and why.
source "$(dirname "$0")/lib/functions.sh"
needs qemu-system-x86_64 qemu-img debugfs dumpe2fs base64

image=$VC_BUILDDIR/images/saline
qemu=${VC_QEMU:-qemu-system-x86_64}
[[ -f $image/disk.qcow2 && -f $image/initrd.img ]] ||
    fail "no Saline image in '$image' (meson compile)"
dir=$VC_TESTDIR

qemu_pid=
stop_qemu() {
    [[ -z $qemu_pid ]] || kill "$qemu_pid" 2>/dev/null || true
}
cleanup_fn stop_qemu

# spec NAME ARG...: the job spec of VM 1 of job 7 (2 VMs) running ARG...
spec() {
    local name=$1 a
    shift
    {
        printf 'saline-job 1\njob=7\nvm=1\nvms=2\nhostname=saline-7-1\n'
        printf 'ip=10.0.2.15/24\ngateway=10.0.2.2\n'
        printf 'peer=10.0.2.16\npeer=10.0.2.15\n'
        printf 'future-key=ignored\n'
        for a in "$@"; do
            printf 'arg=%s\n' "$(printf '%s' "$a" | base64 -w 0)"
        done
    } >"$dir/$name.spec"
}

# boot NAME [OUTPUT_BYTES]: boots a VM with $dir/NAME.spec, the overlay
# $dir/NAME.qcow2 (made from the image's disk unless it exists) and a new
# output drive $dir/NAME.out, and waits until it powers itself off.
boot() {
    local name=$1 out_bytes=${2:-$((64 << 20))} rc=0 start=$SECONDS
    [[ -e $dir/$name.qcow2 ]] ||
        qemu-img create -q -f qcow2 -b "$image/disk.qcow2" -F qcow2 \
            "$dir/$name.qcow2"
    rm -f "$dir/$name.out"
    truncate -s "$out_bytes" "$dir/$name.out"
    timeout 120 "$qemu" -machine pc,accel=tcg -m 256 \
        -nodefaults -display none -no-reboot \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "console=ttyS0 panic=-1 nokaslr no_timer_check" \
        -serial "file:$dir/$name.log" \
        -fw_cfg "name=opt/org.saline/job,file=$dir/$name.spec" \
        -drive "file=$dir/$name.qcow2,format=qcow2,if=virtio" \
        -drive "file=$dir/$name.out,format=raw,if=virtio" \
        -netdev user,id=n0 -device virtio-net-pci,netdev=n0 &
    qemu_pid=$!
    wait "$qemu_pid" || rc=$?
    qemu_pid=
    if ((rc != 0)); then
        tail -n 20 "$dir/$name.log" >&2 || true
        fail "VM '$name' did not power off by itself (status $rc)"
    fi
    log "VM '$name' ran and powered off in $((SECONDS - start)) s"
}

# header NAME: the output drive's header line.
header() { head -c 512 "$dir/$1.out" | tr -d '\0'; }

# output NAME: the output the header counts.
output() {
    local length
    length=$(header "$1" | sed -n 's/.* length=\([0-9]*\) .*/\1/p')
    tail -c +4097 "$dir/$1.out" | head -c "$length"
}

# stored NAME: the number of bytes on the drive before its zeros (no
# command here writes a NUL byte).
stored() { tail -c +4097 "$dir/$1.out" | tr -d '\0' | wc -c; }

# expect_not_started NAME REASON: the command of VM NAME did not start:
# exit status 127, REASON in the output.
expect_not_started() {
    assert_eq "$1: header" \
        "SALOUT1 state=exited exit=127 length=$(stored "$1") truncated=0" \
        "$(header "$1")"
    [[ $(output "$1") == *"$2"* ]] || fail "$1: no '$2' in '$(output "$1")'"
    log "ok: $1: $(output "$1")"
}

# (a) Environment, node file, stderr on the same pipe, cwd, exit status.
spec env sh -c 'echo hello $SALINE_VM_INDEX; cat $SALINE_NODEFILE; echo err >&2; pwd; exit 3'
boot env
expected=$'hello 1\n10.0.2.16\n10.0.2.15\nerr\n/job\n'
actual=$(output env; echo .)
assert_eq "output of the shell command" "$expected" "${actual%.}"
assert_eq "header after exit 3" \
    "SALOUT1 state=exited exit=3 length=${#expected} truncated=0" "$(header env)"
assert_eq "bytes on the drive" "${#expected}" "$(stored env)"
grep -q '^salguest: mounted /dev/vda on /job' "$dir/env.log" ||
    fail "serial log does not show the job disk mounted"
grep -q '^salguest: exit status 3, ' "$dir/env.log" ||
    fail "serial log does not show the exit status"
grep -q 'reboot: Power down' "$dir/env.log" || fail "no clean power down"

# (b) A command that does not exist: 127 and why.
spec missing no-such-command --flag
boot missing
expect_not_started missing \
    "cannot execute 'no-such-command': No such file or directory"

# (c) An argument with spaces, quotes and newlines arrives intact; (d) it
# is written to /job, host name and HOME are the spec's; the output
# overflows a small drive: truncated, and exactly the drive's capacity.
weird=$'two  spaces, a \'quote\', a "dq", $HOME\n\tand a tab\nlast line'
spec file sh -c 'printf "%s" "$1" >/job/arg.txt; printf "[%s]\n" "$1"; hostname; echo "$HOME"; head -c 100000 /dev/zero | tr "\0" x' \
    sh "$weird"
boot file $((8 * 1024))
assert_eq "header of a full drive" \
    "SALOUT1 state=exited exit=0 length=4096 truncated=1" "$(header file)"
prefix=$(printf '[%s]\nsaline-7-1\n/job\nxxx' "$weird")
[[ $(output file) == "$prefix"* ]] ||
    fail "output does not start with the argument: '$(output file | head -c 200)'"
log "ok: argument intact in the output"
qemu-img convert -f qcow2 -O raw "$dir/file.qcow2" "$dir/file.raw"
assert_eq "argument written to /job, read from the overlay" "$weird" \
    "$(debugfs -R 'cat /arg.txt' "$dir/file.raw" 2>/dev/null)"
[[ $(debugfs -R 'cat /README' "$dir/file.raw" 2>/dev/null) == *"Saline VM"* ]] ||
    fail "the base disk's README is not in the overlay"
assert_eq "file system label" saline \
    "$(dumpe2fs -h "$dir/file.raw" 2>/dev/null | sed -n 's/^Filesystem volume name: *//p')"
rm "$dir/file.raw"

# The overlay keeps the file across boots: a second run reads it.
spec file cat /job/arg.txt
boot file
assert_eq "file written by the first boot, second boot" "$weird" \
    "$(output file)"

# (e) A spec with an argument that is not base64: 127 and why.
spec badarg true
sed -i 's/^arg=.*/arg=not*base64/' "$dir/badarg.spec"
boot badarg
expect_not_started badarg "argument 0 is not valid base64"

# Bounds: 257 arguments; a spec over 1 MiB (padded with a key a newer
# salined might send).
mapfile -t many < <(yes true | head -n 257)
spec manyargs "${many[@]}"
boot manyargs
expect_not_started manyargs "job spec has more than 256 arguments"
spec big true
head -c $((1024 * 1024)) /dev/zero | tr '\0' x | sed 's/^/future-key=/' >>"$dir/big.spec"
boot big
expect_not_started big "job spec is larger than 1048576 bytes"

# (f) A job disk without a file system: 127 and why.
spec nofs true
qemu-img create -q -f qcow2 "$dir/nofs.qcow2" 16M
boot nofs
expect_not_started nofs "cannot mount '/dev/vda'"

# (g) An SSI job (saline/README.md, "SSI jobs"): a key that is not 64
# hex digits, and an image without ssid: 127 and why.
spec badkey true
printf 'ssi=1\nssi_cluster=saline-7\nssi_key=%s\n' "$(printf '%063d' 0)" >>"$dir/badkey.spec"
boot badkey
expect_not_started badkey "job spec: 'ssi_key' is not 64 hex digits"
spec nossid true
printf 'ssi=1\nssi_cluster=saline-7\nssi_key=%s\n' "$(printf '%064d' 0)" >>"$dir/nossid.spec"
boot nossid
expect_not_started nossid "this image has no '/sbin/ssid': not an SSI image"
