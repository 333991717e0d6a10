#!/usr/bin/env bash
# Benchmark (not a test: nothing here is asserted): storing the state of
# every VM of a best-effort job on the site's storage node, with Kget+ and
# with what an operator would do without it, side by side in one run, and
# against the physical lower bound.
#
#   bench/kget-bench.sh [--vms 8] [--nodes 4] [--mem 512] [--rate 200]
#                       [--out DIR]
#
# One site (tests/lib/sites.sh) of NODES compute nodes, each with its own
# libvirtd (tests/lib/libvirt.sh), and one storage node whose link is
# capped at RATE Mbit/s (tbf on its bridge port, in the gateway: the
# direction the states travel). VMS guests of MEM MiB (the guest image,
# --unique-mb 16, RAM shared and file-backed) spread evenly over the
# compute nodes. Methods, in this order on the same guests:
#   save-par  `virsh save` of every VM at once to its node's local disk,
#             each file then copied with scp (sshd in the storage node's
#             namespace, keys made here) and its sha256 on the storage
#             node checked against the source;
#   save-seq  the same, one VM after the other;
#   kget      QEMU's background snapshot of every VM at once into
#             `kget snapshot --vmstate` (exec:, as salined does it), then
#             `kget seal`, `kget verify`, the VMs destroyed.
# The guests are restored (`virsh restore`) from the save files between
# methods, so each saves the same state. Then the incremental: fresh
# guests with a writer (DIRTY_RATE pages/s at random in DIRTY_MB MiB), a
# Kget+ snapshot inc@1, 60 s later inc@2; what @2 sent against what the
# writer dirtied.
# Measured: seconds until every node is free and every state verified
# (and until every node is free alone); the rx bytes of the storage
# node's interface; bytes stored; the lower bound: the distinct non-zero
# pages of all guests (hashed from their RAM files right before the kget
# run) over the link rate.
# Takes about 7 minutes here (2 shared cores, TCG).
#
# Knobs (environment): BENCH_UNIQUE_MB (16), BENCH_DIRTY_MB (64),
# BENCH_DIRTY_RATE (256 pages/s = 1 MiB/s per guest), BENCH_INC_GAP (60 s),
# BENCH_TIMEOUT (900 s per method), BENCH_KEEP (a directory to keep the
# raw lines in; bench/kget-report.py re-reads them).

source "$(dirname "$0")/../tests/lib/functions.sh"
source "$(dirname "$0")/../tests/lib/sites.sh"
source "$(dirname "$0")/../tests/lib/guests.sh"
source "$(dirname "$0")/../tests/lib/libvirt.sh"
source "$(dirname "$0")/lib/bench.sh"

usage() {
    echo "usage: kget-bench.sh [--vms N] [--nodes N] [--mem MIB] [--rate MBIT]" \
        "[--out DIR]" >&2
    exit 2
}

bench_cmd=$(env | { grep -E '^BENCH_[A-Z_]+=' | grep -v '^BENCH_KEEP=' || true; } |
    sort | tr '\n' ' ')
bench_cmd+="bench/kget-bench.sh${*:+ $*}"
VMS=8
NODES=4
MEM=512
RATE=200
arg_out=$VC_SRCDIR/bench/results
while (($#)); do
    (($# >= 2)) || usage
    case $1 in
    --vms) VMS=$2 ;;
    --nodes) NODES=$2 ;;
    --mem) MEM=$2 ;;
    --rate) RATE=$2 ;;
    --out) arg_out=$2 ;;
    *) usage ;;
    esac
    shift 2
done
for v in "$VMS" "$NODES" "$MEM" "$RATE"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || usage
done
((VMS <= 100 && NODES <= 50)) || usage
UNIQUE_MB=${BENCH_UNIQUE_MB:-16}
DIRTY_MB=${BENCH_DIRTY_MB:-64}
DIRTY_RATE=${BENCH_DIRTY_RATE:-256}
INC_GAP=${BENCH_INC_GAP:-60}
TIMEOUT=${BENCH_TIMEOUT:-900}
STORE_NODE=$((NODES + 1))
PORT=7410

requires_root
needs virsh nsenter unshare python3 gnuplot tc ssh scp ssh-keygen sha256sum
[[ -x /usr/sbin/sshd ]] || fail "no /usr/sbin/sshd (openssh-server; run scripts/setup.sh)"
KGET=$VC_BUILDDIR/saline/kget/cli/kget
KGET_STORE_BIN=$VC_BUILDDIR/saline/kget/store/kget-store
for exe in "$KGET" "$KGET_STORE_BIN" "$VC_WANEM"; do
    [[ -x $exe ]] || fail "'$exe' not built (ninja -C $VC_BUILDDIR)"
done
[[ -f $VC_IMAGE/vmlinuz ]] || fail "no guest image in '$VC_IMAGE'"
QEMU=/usr/bin/qemu-system-x86_64
# QEMU runs the node's kget as its migration target (exec:).
export VC_LV_QEMU_CONF="seccomp_sandbox = 0"
mkdir -p "$arg_out"
: >"$BENCH_RAW"
bench_t0=$SECONDS

sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
vm_node() { echo $(($1 % NODES + 1)); }
vm_addr() { echo "10.77.1.$((100 + $1))"; }
store_ip=$(node_ip a "$STORE_NODE")
store_rx() { on_node a "$STORE_NODE" cat /sys/class/net/eth0/statistics/rx_bytes; }
kg() { on_node a 1 "$KGET" --store "$store_ip:$PORT" --key-file "$key" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# stop_pid PID: SIGTERM, then SIGKILL after 10 s; only our own processes.
stop_pid() {
    [[ -n $1 ]] || return 0
    kill "$1" 2>/dev/null || return 0
    wait_for 10 bash -c "! kill -0 $1" || kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null || true
}

# ---- the site ----
sites_gc
machine_info
raw "scenario vms=$VMS nodes=$NODES mem_mib=$MEM rate_mbit=$RATE" \
    "unique_mib=$UNIQUE_MB dirty_mib=$DIRTY_MB dirty_pages_per_s=$DIRTY_RATE" \
    "inc_gap_s=$INC_GAP accel=$(vc_accel) qemu=$QEMU" \
    "qemu_version=\"$($QEMU --version | head -n 1 | sed 's/.*version //')\""
machine_load start
log "site: $NODES compute nodes, storage node a$STORE_NODE ($store_ip)"
sites_create 1 "$STORE_NODE" --rate 0 --delay 0 || fail "cannot create the site"
# The storage node's link: what goes to it leaves the gateway's bridge
# through its port n<STORE_NODE>.
on_gw a tc qdisc add dev "n$STORE_NODE" root tbf rate "${RATE}mbit" \
    burst 256kb latency 50ms || fail "cannot cap the storage link"
raw "link dev=n$STORE_NODE qdisc=\"$(on_gw a tc qdisc show dev "n$STORE_NODE" | head -n 1)\""
nodes=()
for ((n = 1; n <= NODES; n++)); do nodes+=("a$n"); done
lv_start_nodes "$QEMU" "${nodes[@]}" || fail "libvirtd did not start on every node"

# Storage node: kget-store and sshd, with a site key and an ssh key made
# here.
st=$VC_TESTDIR/storage
mkdir -p "$st/kget" "$st/copies" "$st/ssh"
key=$VC_TESTDIR/site.key
head -c 32 /dev/urandom >"$key"
chmod 0600 "$key"
store_pid=
ip netns exec "$(node_ns a "$STORE_NODE")" "$KGET_STORE_BIN" --dir "$st/kget" \
    --listen "$store_ip:$PORT" --key-file "$key" >>"$VC_TESTDIR/kget-store.log" 2>&1 &
store_pid=$!
cleanup_fn stop_pid "$store_pid"
wait_for 20 kg -q ls || fail "kget-store does not answer: $(tail -n 3 "$VC_TESTDIR/kget-store.log")"

ssh-keygen -q -t ed25519 -N '' -f "$st/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$st/ssh/id"
cp "$st/ssh/id.pub" "$st/ssh/authorized_keys"
cat >"$st/ssh/sshd_config" <<EOF
ListenAddress $store_ip
Port 22
HostKey $st/ssh/host_key
PidFile $st/ssh/sshd.pid
AuthorizedKeysFile $st/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
EOF
# sshd's privilege separation directory (the package makes it at boot).
if [[ ! -d /run/sshd ]]; then
    mkdir -m 0755 /run/sshd
    cleanup_fn rmdir /run/sshd
fi
ip netns exec "$(node_ns a "$STORE_NODE")" /usr/sbin/sshd -D -e -f "$st/ssh/sshd_config" \
    >>"$VC_TESTDIR/sshd.log" 2>&1 &
sshd_pid=$!
cleanup_fn stop_pid "$sshd_pid"
SSH_OPTS=(-i "$st/ssh/id" -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
wait_for 20 on_node a 1 ssh "${SSH_OPTS[@]}" "root@$store_ip" true ||
    fail "sshd on the storage node does not answer: $(tail -n 3 "$VC_TESTDIR/sshd.log")"
raw "copy tool=scp ssh=\"$(ssh -V 2>&1)\" cipher=default"

# ---- the guests ----
# start_guests PREFIX [vm_start options]: VMS guests, ready.
start_guests() {
    local prefix=$1 i
    shift
    for ((i = 0; i < VMS; i++)); do
        lv_vm_start "$prefix$i" a "$(vm_node "$i")" "$(vm_addr "$i")" --qemu "$QEMU" \
            --mem "$MEM" --unique-mb "$UNIQUE_MB" --seed $((100 + i)) "$@" ||
            fail "cannot start $prefix$i"
    done
    for ((i = 0; i < VMS; i++)); do
        vm_wait_ready "$prefix$i" 900 || fail "guest $prefix$i did not boot"
    done
}

# distinct NAME...: distinct non-zero pages of these guests' RAM files.
distinct() {
    local files=() g
    for g in "$@"; do files+=("$(vm_ram_file "$g")"); done
    python3 "$VC_SRCDIR/bench/kget-report.py" --distinct "${files[@]}"
}

# ---- virsh save + scp ----
disk() { echo "$VC_TESTDIR/disk/a$(vm_node "$1")"; }

# save_copy I: save guest I, copy its file, check the copy; one line of
# times (s since T0) into $VC_TESTDIR/m/I.
save_copy() {
    local i=$1 n f c t1 t2 t3 s1 s2
    n=$(vm_node "$i")
    f=$(disk "$i")/vm$i.save
    c=$st/copies/vm$i.save
    rm -f "$f" "$c"
    lv_virsh a "$n" save "vm$i" "$f" >/dev/null || { echo "fail save" >"$VC_TESTDIR/m/$i"; return 1; }
    t1=$(now)
    on_node a "$n" scp -q "${SSH_OPTS[@]}" "$f" "root@$store_ip:$c" ||
        { echo "fail scp" >"$VC_TESTDIR/m/$i"; return 1; }
    t2=$(now)
    s1=$(sha256sum "$f" | cut -d' ' -f1)
    s2=$(on_node a "$STORE_NODE" sha256sum "$c" | cut -d' ' -f1)
    t3=$(now)
    [[ $s1 == "$s2" ]] || { echo "fail sha256" >"$VC_TESTDIR/m/$i"; return 1; }
    echo "ok $(sub "$T0" "$t1") $(sub "$T0" "$t2") $(sub "$T0" "$t3") $(stat -c %s "$f")" \
        >"$VC_TESTDIR/m/$i"
}

# restore_guests: every guest back from its save file, running.
restore_guests() {
    local i pids=()
    for ((i = 0; i < VMS; i++)); do
        lv_virsh a "$(vm_node "$i")" restore "$(disk "$i")/vm$i.save" >/dev/null &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || fail "a restore failed"; done
    for ((i = 0; i < VMS; i++)); do
        lv_vm_moved "vm$i" a "$(vm_node "$i")"
        wait_for 60 vm_agent "vm$i" ping || fail "vm$i does not answer after its restore"
    done
}

# run_save MODE: par or seq.
run_save() {
    local mode=$1 id=save-$1 i pids=() rx0 rx1 t_end free verified bytes rc=0
    log "=== $id"
    machine_load "$id"
    rm -rf "$VC_TESTDIR/m" "$st/copies"
    mkdir -p "$VC_TESTDIR/m" "$st/copies"
    for ((i = 0; i < VMS; i++)); do mkdir -p "$(disk "$i")"; done
    rx0=$(store_rx)
    T0=$(now)
    for ((i = 0; i < VMS; i++)); do
        if [[ $mode == par ]]; then
            save_copy "$i" &
            pids+=($!)
        else
            save_copy "$i" || rc=1
        fi
    done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    t_end=$(now)
    sleep 1
    rx1=$(store_rx)
    ((rc == 0)) || fail "$id: $(cat "$VC_TESTDIR"/m/* | grep -v '^ok' | head -n 1)"
    free=$(awk '{ if ($2 > m) m = $2 } END { print m }' "$VC_TESTDIR"/m/*)
    verified=$(awk '{ if ($4 > m) m = $4 } END { print m }' "$VC_TESTDIR"/m/*)
    bytes=$(awk '{ s += $5 } END { print s }' "$VC_TESTDIR"/m/*)
    raw "run id=$id wall_s=$(sub "$T0" "$t_end") free_s=$free verified_s=$verified" \
        "link_rx_bytes=$((rx1 - rx0)) stored_bytes=$(du -sb "$st/copies" | cut -f1)" \
        "file_bytes=$bytes per_vm=\"$(for ((i = 0; i < VMS; i++)); do
            printf '%s;' "$(cat "$VC_TESTDIR/m/$i")"; done)\""
}

# ---- Kget+ ----
# qmp NAME JSON: a QMP command through the guest's node's libvirtd.
qmp() { lv_virsh a "$(_vm_get "$1" node)" qemu-monitor-command "$1" "$2"; }

# kget_snapshot SNAP PREFIX OUT: background snapshot of every guest into
# SNAP, all at once; returns when every sender has exited. Times (s since
# T0, which the caller sets) of completion per guest in OUT/I.done, the
# sender's JSON in OUT/I.json and its exit status in OUT/I.rc.
kget_snapshot() {
    local snap=$1 prefix=$2 out=$3 i pids=() cmd
    mkdir -p "$out"
    for ((i = 0; i < VMS; i++)); do
        cmd="$KGET --store $store_ip:$PORT --key-file $key -q --json snapshot $snap"
        cmd+=" --no-seal --vmstate vm$i/state=- >$out/$i.json 2>$out/$i.err; echo \$? >$out/$i.rc"
        (
            g=$prefix$i
            qmp "$g" '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"background-snapshot","state":true}]}}' >/dev/null &&
                qmp "$g" '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":1099511627776}}' >/dev/null &&
                qmp "$g" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:$cmd\"}}" >/dev/null ||
                { echo "migrate refused" >"$out/$i.err"; echo 99 >"$out/$i.rc"; exit 1; }
            local deadline=$((SECONDS + TIMEOUT)) ms
            while ((SECONDS < deadline)); do
                ms=$(qmp "$g" '{"execute":"query-migrate"}' | grep -o '"status":"[a-z-]*"' | head -n 1)
                case $ms in
                *'"completed"') sub "$T0" "$(now)" >"$out/$i.done"; break ;;
                *'"failed"' | *'"cancelled"') echo "migration $ms" >>"$out/$i.err"; exit 1 ;;
                esac
                sleep 0.2
            done
            wait_for "$TIMEOUT" test -s "$out/$i.rc"
            sub "$T0" "$(now)" >"$out/$i.sent"
        ) &
        pids+=($!)
    done
    local rc=0
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    for ((i = 0; i < VMS; i++)); do
        [[ $(cat "$out/$i.rc" 2>/dev/null) == 0 ]] ||
            { log "sender of $prefix$i: $(head -n 1 "$out/$i.err" 2>/dev/null)"; rc=1; }
    done
    return "$rc"
}

items() {
    local i
    for ((i = 0; i < VMS; i++)); do printf 'vm%d/state vm%d/state.ram ' "$i" "$i"; done
}

# sum_json OUT KEY: KEY summed over every item of every sender's JSON.
sum_json() {
    python3 - "$1" "$2" "$VMS" <<'PY'
import json, sys
out, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(sum(it[key] for i in range(n) for it in json.load(open(f"{out}/{i}.json"))["items"]))
PY
}

run_kget() {
    local id=kget out=$VC_TESTDIR/kget1 rx0 rx1 t_done t_sealed t_verified t_end i pids=()
    log "=== $id"
    machine_load "$id"
    rx0=$(store_rx)
    T0=$(now)
    kget_snapshot bench@1 vm "$out" || fail "$id: a sender failed"
    t_done=$(now)
    # shellcheck disable=SC2046
    kg -q seal bench@1 $(items) || fail "$id: seal failed"
    t_sealed=$(now)
    kg --json verify bench@1 >"$out/verify.json" || fail "$id: verify failed"
    t_verified=$(now)
    for ((i = 0; i < VMS; i++)); do
        lv_virsh a "$(vm_node "$i")" destroy "vm$i" >/dev/null &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || fail "$id: a destroy failed"; done
    t_end=$(now)
    sleep 1
    rx1=$(store_rx)
    kg --json ls bench >"$out/ls.json"
    raw "run id=$id wall_s=$(sub "$T0" "$t_end") free_s=$(sub "$T0" "$t_end")" \
        "verified_s=$(sub "$T0" "$t_verified") streams_done_s=$(sub "$T0" "$t_done")" \
        "seal_s=$(sub "$t_done" "$t_sealed") verify_s=$(sub "$t_sealed" "$t_verified")" \
        "destroy_s=$(sub "$t_verified" "$t_end")" \
        "link_rx_bytes=$((rx1 - rx0)) stored_bytes=$(du -sb "$st/kget" | cut -f1)" \
        "kget_bytes_sent=$(sum_json "$out" bytes_sent) kget_bytes_new=$(sum_json "$out" bytes_new)" \
        "kget_item_bytes=$(sum_json "$out" size)" \
        "ls_new_bytes=$(json 'd["snapshots"][0]["new_bytes"]' <"$out/ls.json")" \
        "ls_stored_bytes=$(json 'd["snapshots"][0]["stored_bytes"]' <"$out/ls.json")" \
        "verify_checked=$(json 'd["checked"]' <"$out/verify.json")" \
        "verify_ok=$(json 'd["ok"]' <"$out/verify.json")" \
        "completed_s=\"$(for ((i = 0; i < VMS; i++)); do printf '%s;' "$(cat "$out/$i.done")"; done)\"" \
        "sender_done_s=\"$(for ((i = 0; i < VMS; i++)); do printf '%s;' "$(cat "$out/$i.sent")"; done)\""
}

# writes PREFIX: the writer's page writes so far, summed over the guests.
writes() {
    local i s=0 w
    for ((i = 0; i < VMS; i++)); do
        w=$(vm_agent "$1$i" info | sed -n 's/^dirty_pages_written=//p')
        s=$((s + w))
    done
    echo "$s"
}

run_incremental() {
    local id=incremental seq t_snap rx0 rx1 w0 w1 wall
    log "=== $id: fresh guests with a writer"
    start_guests w --dirty-mb "$DIRTY_MB" --dirty-rate "$DIRTY_RATE"
    machine_load "$id"
    for seq in 1 2; do
        if ((seq == 2)); then
            sleep "$(awk -v t="$t_snap" -v n="$(now)" -v g="$INC_GAP" \
                'BEGIN { s = t + g - n; print (s > 0 ? s : 0) }')"
        fi
        w0=$(writes w)
        rx0=$(store_rx)
        T0=$(now)
        ((seq == 2)) && raw "inc_gap id=$id gap_s=$(sub "$t_snap" "$T0") writes=$((w0 - w_prev))"
        t_snap=$T0
        w_prev=$w0
        kget_snapshot "inc@$seq" w "$VC_TESTDIR/inc$seq" || fail "$id: a sender of @$seq failed"
        # shellcheck disable=SC2046
        kg -q seal "inc@$seq" $(items) || fail "$id: seal of @$seq failed"
        wall=$(sub "$T0" "$(now)")
        sleep 1
        rx1=$(store_rx)
        raw "inc id=$id seq=$seq wall_s=$wall link_rx_bytes=$((rx1 - rx0))" \
            "kget_bytes_sent=$(sum_json "$VC_TESTDIR/inc$seq" bytes_sent)" \
            "kget_bytes_new=$(sum_json "$VC_TESTDIR/inc$seq" bytes_new)" \
            "kget_chunks_new=$(sum_json "$VC_TESTDIR/inc$seq" chunks_new)" \
            "kget_item_bytes=$(sum_json "$VC_TESTDIR/inc$seq" size)"
    done
    kg --json verify >"$VC_TESTDIR/inc-verify.json" || fail "$id: verify failed"
    raw "inc_verify ok=$(json 'd["ok"]' <"$VC_TESTDIR/inc-verify.json")" \
        "checked=$(json 'd["checked"]' <"$VC_TESTDIR/inc-verify.json")" \
        "store_bytes=$(du -sb "$st/kget" | cut -f1)"
}

# ---- the run ----
log "=== guests: $VMS x $MEM MiB on $NODES nodes"
start_guests vm
sleep 5
guests=()
for ((i = 0; i < VMS; i++)); do guests+=("vm$i"); done
raw "$(distinct "${guests[@]}" | sed 's/^/distinct when=boot /')"
run_save par
restore_guests
run_save seq
restore_guests
raw "$(distinct "${guests[@]}" | sed 's/^/distinct when=kget /')"
run_kget
run_incremental
machine_load end
raw "bench wall_s=$((SECONDS - bench_t0))"

python3 "$VC_SRCDIR/bench/kget-report.py" --raw "$BENCH_RAW" --command "$bench_cmd" \
    --md "$arg_out/kget.md" --png "$arg_out/kget.png" --json "$arg_out/kget.json" ||
    fail "report failed"
log "report: $arg_out/kget.md, $arg_out/kget.png, $arg_out/kget.json"
if [[ -n ${BENCH_KEEP:-} ]]; then
    mkdir -p "$BENCH_KEEP"
    cp "$BENCH_RAW" "$BENCH_KEEP/"
fi
