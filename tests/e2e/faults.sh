# faults.sh - fault injection against the real binary (SPEC §3 rules 1, 2, 4; §7).
#
# Crashes at every step of a batch (SAGEBRIDGE_CRASH_AT), also in a batch with
# business keys published before, kill -9 at random instants, two instances on
# one spool, SIGTERM while a batch is in hand, a slow uploader, a disk that
# fills up at each step (tmpfs; skipped when it cannot be mounted).  After each
# recovery the same invariants are checked (tests/data/faults/invariants.py):
# work/ empty, no temp left, every .done verifies, nothing doubled, nothing
# lost, every input archived exactly once, one manifest chain ending at
# archive/CHAIN (and `archive verify` agrees), the ledger (via status) says
# archived.  FAULTS_SEED=N repeats the random kill instants.
. "$TOP/tests/lib/testlib.sh"
EX=$TOP/examples
GEN=$TOP/bench/gen-orders.py
INV=$TOP/tests/data/faults/invariants.py
SEED=${FAULTS_SEED:-$$}
RANDOM=$SEED
echo "faults: random seed $SEED (FAULTS_SEED=$SEED to repeat the kill instants)"

BG=()     # every process started in the background
MOUNTS=() # every tmpfs mounted
cleanup_all() {
    local p m
    for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null; done
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
}
trap cleanup_all EXIT
trap 'exit 1' INT TERM

# check_invariants SPOOL EXPECTED_DIR LABEL [--allow-in] [--allow-error] [--no-order] [--states S]
check_invariants() {
    local spool=$1 exp=$2 label=$3
    shift 3
    python3 "$INV" "$SB" "$spool" "$exp" "$label" "$@"
}

# fresh NAME : a new spool in $WORK/NAME, its config in $CONF
fresh() {
    SPOOL=$WORK/$1
    rm -rf "$SPOOL"
    "$SB" init "$SPOOL" >/dev/null 2>&1 || fail "faults: $1: init" "sagebridge init $SPOOL failed"
    CONF=$SPOOL/sagebridge.conf
    # three outputs per batch (both CSVs and the XML), so that after-rename-3 has a rename
    sed -i 's/^formats = .*/formats = both/' "$CONF"
    LOG=$WORK/$1.log
}

# sb ARGS... : sagebridge on the current spool, status in $rc, logs appended to $LOG
sb() {
    # (a subshell, so that bash's "Killed" notice goes to the log, not to the results)
    ("$SB" -c "$CONF" "$@" >>"$LOG" 2>&1; exit $?) 2>>"$LOG"
    rc=$?
}

# wait_pid PID SECONDS : wait for a background process; status in $wrc (999: had to be killed)
wait_pid() {
    local pid=$1 end=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt "$end" ]; do sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
        wait "$pid"
        wrc=999
    else
        wait "$pid"
        wrc=$?
    fi
} 2>/dev/null # (bash's "Killed" notices)

# wait_for SECONDS CMD... : poll until CMD is true; false on time-out
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -ge "$end" ] && return 1
        sleep 0.02
    done
}

# snapshot SPOOL : what a repeated run must not change (out/sage, archive, error, work, in)
snapshot() {
    (cd "$1" && find in work out error archive -type f ! -name '.gitkeep' -print0 | sort -z |
        xargs -0 -r sha256sum)
}

# distinct_inputs DIR N SIZE SEEDS : N generated exports with distinct content and distinct
# orderIds; SEEDS different generator seeds (arrays and NDJSON), each file renamed apart
distinct_inputs() {
    local dir=$1 n=$2 size=$3 seeds=$4 k j ext
    mkdir -p "$dir" "$dir.base"
    for ((j = 0; j < seeds; j++)); do
        ext=json
        [ $((j % 2)) = 1 ] && ext=ndjson
        python3 "$GEN" "$size" "$dir.base/$j.$ext" --seed $((7000 + j)) --shape $([ $ext = json ] && echo array || echo ndjson)
    done
    for ((k = 1; k <= n; k++)); do
        j=$((k % seeds))
        ext=json
        [ $((j % 2)) = 1 ] && ext=ndjson
        # orderIds are CL-<1000000+i> in every file: give each file its own range
        sed "s/\"CL-1/\"CL-$((k + 1))/g" "$dir.base/$j.$ext" >"$dir/orders-$(printf %02d "$k").$ext"
    done
    rm -rf "$dir.base"
}

export SAGEBRIDGE_SPOOL_SETTLE_MS=0
mkdir -p "$WORK/exp-examples"
cp "$EX"/*.json "$EX"/*.ndjson "$WORK/exp-examples/"

# ------------------------------------------------------------------------
# 1. a crash at every step of a batch, then a restart (and one more)
for point in after-claim after-convert after-converted after-link after-rename-1 after-rename-2 \
    after-rename-3 after-done after-published after-archive-written after-archived \
    after-cleanup-input; do
    fresh "crash-$point"
    cp "$WORK/exp-examples"/* "$SPOOL/in/clarity/"
    SAGEBRIDGE_CRASH_AT=$point sb run --once
    expect "faults: crash $point: the process dies by SIGKILL (exit 137, got $rc)" [ "$rc" = 137 ]
    sb run --once
    r2=$rc
    snapshot "$SPOOL" >"$WORK/snap1"
    sb run --once
    r3=$rc
    snapshot "$SPOOL" >"$WORK/snap2"
    expect "faults: crash $point: the restart exits 0 (got $r2, then $r3)" [ "$r2" = 0 -a "$r3" = 0 ]
    if cmp -s "$WORK/snap1" "$WORK/snap2"; then
        pass "faults: crash $point: a third run changes nothing"
    else
        fail "faults: crash $point: a third run changes nothing" "$(diff "$WORK/snap1" "$WORK/snap2" | head -5 | tr '\n' ' ')"
    fi
    check_invariants "$SPOOL" "$WORK/exp-examples" "crash $point"
done

# ------------------------------------------------------------------------
# 1a. a crash after publication leaves the batch's links to its outputs in work/ (.ID=NAME,
# read by the archive); earlier versions kept them in a folder work/ID.d/.  A spool left
# in that older layout is taken over: the links are moved, the batch archived with every
# output, and work/ ends empty.
fresh crash-old-links
cp "$WORK/exp-examples"/* "$SPOOL/in/clarity/"
SAGEBRIDGE_CRASH_AT=after-published sb run --once
expect "faults: old links: the process dies by SIGKILL after publication (got $rc)" [ "$rc" = 137 ]
moved=0
for l in "$SPOOL"/work/.*=*; do
    [ -e "$l" ] || continue
    b=${l##*/}
    id=${b%%=*}
    id=${id#.}
    mkdir -p "$SPOOL/work/$id.d" && mv "$l" "$SPOOL/work/$id.d/${b#*=}" && moved=$((moved + 1))
done
published=$(ls "$SPOOL/out/sage" | grep -c '^SO_.*\.\(csv\|xml\)$')
expect "faults: old links: every output published and not yet archived had a link in work/ ($moved of $published)" [ "$moved" = "$published" -a "$moved" -ge 3 ]
sb run --once
expect "faults: old links: the restart exits 0 (got $rc)" [ "$rc" = 0 ]
arcout=$(for t in "$SPOOL"/archive/*/*/*/*.tar.gz; do tar -tzf "$t"; done 2>/dev/null | grep -c '^output/SO_.*\.\(csv\|xml\)$')
nout=$(ls "$SPOOL/out/sage" | grep -c '^SO_.*\.\(csv\|xml\)$')
expect "faults: old links: every published output is in an archive ($arcout of $nout)" [ "$arcout" = "$nout" ]
check_invariants "$SPOOL" "$WORK/exp-examples" "old links"
# a stale link of a batch the ledger does not know is removed at start; a hidden file that
# only looks a little like one is not touched
fresh stale-links
echo x >"$SPOOL/work/.20260101T000000Z-orders-deadbeef=SO_20260101T000000Z-orders-deadbeef_StgSOLine.csv"
echo y >"$SPOOL/work/.keep=me.json"
sb run --once
expect "faults: stale links: run --once exits 0 (got $rc)" [ "$rc" = 0 ]
expect "faults: stale links: a link of an unknown batch is removed" [ ! -e "$SPOOL/work/.20260101T000000Z-orders-deadbeef=SO_20260101T000000Z-orders-deadbeef_StgSOLine.csv" ]
expect "faults: stale links: another hidden file in work/ is left alone" [ -e "$SPOOL/work/.keep=me.json" ]


# ------------------------------------------------------------------------
# 1b. the same crashes in a batch whose orderIds partly were published before
# (SPEC §3 rule 3): after recovery the old keys are reported as duplicates,
# the new ones published, and no key of the batch counts as its own duplicate
mkdir -p "$WORK/exp-keys"
python3 "$GEN" 0.02 "$WORK/exp-keys/a.json" --seed 1
python3 "$GEN" 0.03 "$WORK/exp-keys/b.ndjson" --seed 2 --shape ndjson
overlap=$(python3 - "$WORK/exp-keys/a.json" "$WORK/exp-keys/b.ndjson" <<'PY'
import json, sys
a = {r["orderId"] for r in json.load(open(sys.argv[1]))}
b = [json.loads(l)["orderId"] for l in open(sys.argv[2]) if l.strip()]
print(sum(k in a for k in b))
PY
)
for point in after-claim after-convert after-converted after-link after-rename-2 after-done \
    after-published after-archive-written after-archived after-cleanup-input; do
    fresh "keys-$point"
    cp "$WORK/exp-keys/a.json" "$SPOOL/in/clarity/"
    sb run --once
    cp "$WORK/exp-keys/b.ndjson" "$SPOOL/in/clarity/"
    SAGEBRIDGE_CRASH_AT=$point sb run --once
    r1=$rc
    sb run --once
    sb run --once
    expect "faults: keys $point: dies at the crash point, then recovers ($r1)" [ "$r1" = 137 ]
    got=$(python3 - "$SPOOL/error/b.ndjson.rejects.json" <<'PY' 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(r["code"] == "DUPLICATE_PUBLISHED" for r in d), len(d))
PY
)
    expect "faults: keys $point: exactly the $overlap old orderIds are reported as duplicates (got: ${got:0:100})" [ "$got" = "$overlap $overlap" ]
    other=$(ls -A "$SPOOL/error" | grep -v -x 'b.ndjson.rejects.json' | tr '\n' ' ')
    expect "faults: keys $point: error/ holds only the rejects list ($other)" [ -z "$other" ]
    inarc=$(for t in "$SPOOL"/archive/*/*/*/*.tar.gz; do tar -tzf "$t"; done 2>/dev/null | grep -c 'output/b.ndjson.rejects.json')
    expect "faults: keys $point: the rejects list is archived once with its batch ($inarc)" [ "$inarc" = 1 ]
    check_invariants "$SPOOL" "$WORK/exp-keys" "keys $point" --allow-error
done

# ------------------------------------------------------------------------
# 2. kill -9 at random instants of a watching run, 15 times, then run to the end
fresh random
# about 90 ms of work per file: the 15 kills (0-400 ms after start) land inside batches
distinct_inputs "$WORK/exp-random" 20 1.5 4
cp "$WORK/exp-random"/* "$SPOOL/in/clarity/"
kills=0
for ((i = 1; i <= 15; i++)); do
    "$SB" -c "$CONF" run >>"$LOG" 2>&1 &
    pid=$!
    BG+=("$pid")
    ms=$((RANDOM % 401))
    sleep "$(printf '0.%03d' "$ms")"
    kill -9 "$pid" 2>/dev/null
    wait_pid "$pid" 10
    [ "$wrc" = 137 ] && kills=$((kills + 1))
done
echo "faults: random: $kills of 15 runs killed by SIGKILL; $(ls "$SPOOL/in/clarity" | wc -l) inputs not yet claimed"
sb run --once
expect "faults: random: the final run --once exits 0 (got $rc)" [ "$rc" = 0 ]
check_invariants "$SPOOL" "$WORK/exp-random" "random kill -9"

# ------------------------------------------------------------------------
# 3. two instances started at the same moment on one spool
fresh twin
distinct_inputs "$WORK/exp-twin" 20 0.05 20
cp "$WORK/exp-twin"/* "$SPOOL/in/clarity/"
"$SB" -c "$CONF" run --once >"$WORK/twin.a.log" 2>&1 &
pa=$!
"$SB" -c "$CONF" run --once >"$WORK/twin.b.log" 2>&1 &
pb=$!
BG+=("$pa" "$pb")
wait_pid "$pa" 60
ra=$wrc
wait_pid "$pb" 60
rb=$wrc
expect "faults: two instances: both finish with exit 0 (got $ra and $rb)" [ "$ra" = 0 -a "$rb" = 0 ]
ca=$(grep -c 'event=claimed' "$WORK/twin.a.log")
cb=$(grep -c 'event=claimed' "$WORK/twin.b.log")
echo "faults: two instances: claims $ca + $cb"
expect "faults: two instances: 20 claims between them ($ca + $cb)" [ $((ca + cb)) = 20 ]
check_invariants "$SPOOL" "$WORK/exp-twin" "two instances" --no-order

# ------------------------------------------------------------------------
# 4. SIGTERM while a large batch is in hand: it is finished, then exit 0
fresh sigterm
mkdir -p "$WORK/exp-sigterm"
python3 "$GEN" 20 "$WORK/exp-sigterm/orders-big.json" --seed 99
cp "$WORK/exp-sigterm/orders-big.json" "$SPOOL/in/clarity/.orders-big.json.part"
"$SB" -c "$CONF" run >>"$LOG" 2>&1 &
pid=$!
BG+=("$pid")
wait_for 10 grep -q 'event=watching' "$LOG"
mv "$SPOOL/in/clarity/.orders-big.json.part" "$SPOOL/in/clarity/orders-big.json"
in_empty() { [ -z "$(ls -A "$SPOOL/in/clarity")" ]; }
if wait_for 20 in_empty; then
    claimed_late=$(ls "$SPOOL"/out/sage/*.done 2>/dev/null | wc -l)
    kill -TERM "$pid"
    wait_pid "$pid" 90
    expect "faults: SIGTERM: the input was claimed before SIGTERM and not finished yet" [ "$claimed_late" = 0 ]
    expect "faults: SIGTERM: the process drains and exits 0 (got $wrc)" [ "$wrc" = 0 ]
    expect "faults: SIGTERM: the batch's .done exists" [ "$(ls "$SPOOL"/out/sage/*.done 2>/dev/null | wc -l)" = 1 ]
    expect "faults: SIGTERM: the batch is archived" [ "$(find "$SPOOL/archive" -name '*.tar.gz' | wc -l)" = 1 ]
    expect "faults: SIGTERM: work/ is empty" [ -z "$(ls -A "$SPOOL/work")" ]
    check_invariants "$SPOOL" "$WORK/exp-sigterm" "SIGTERM"
else
    kill -9 "$pid" 2>/dev/null
    fail "faults: SIGTERM: the input is claimed" "still in in/clarity after 20 s"
fi

# ------------------------------------------------------------------------
# 5. a slow uploader writing under the final name: never taken half-written
fresh slow
mkdir -p "$WORK/exp-slow"
python3 "$GEN" 0.1 "$WORK/exp-slow/orders-slow.ndjson" --shape ndjson --seed 5
SAGEBRIDGE_SPOOL_SETTLE_MS=700 "$SB" -c "$CONF" run >>"$LOG" 2>&1 &
pid=$!
BG+=("$pid")
wait_for 10 grep -q 'event=watching' "$LOG"
# five chunks cut at line ends: every prefix is itself a valid NDJSON file,
# so only the settle rule can tell that the upload is still going on
python3 - "$WORK/exp-slow/orders-slow.ndjson" "$SPOOL/in/clarity/orders-slow.ndjson" <<'PY'
import sys, time
data = open(sys.argv[1], "rb").read()
lines = data.splitlines(keepends=True)
cuts = [len(lines) * k // 5 for k in range(6)]
with open(sys.argv[2], "wb") as f:  # kept open, as an SFTP server does
    for k in range(5):
        f.write(b"".join(lines[cuts[k]:cuts[k + 1]]))
        f.flush()
        if k < 4:
            time.sleep(0.3)
PY
have_done() { ls "$SPOOL"/out/sage/*.done >/dev/null 2>&1 && [ -z "$(ls -A "$SPOOL/work")" ]; }
wait_for 15 have_done
sleep 0.3
kill -TERM "$pid"
wait_pid "$pid" 30
expect "faults: slow upload: the watcher exits 0 on SIGTERM (got $wrc)" [ "$wrc" = 0 ]
expect "faults: slow upload: one batch for the file" [ "$(find "$SPOOL/archive" -name '*.tar.gz' | wc -l)" = 1 ]
expect "faults: slow upload: nothing in error/" [ -z "$(ls -A "$SPOOL/error")" ]
check_invariants "$SPOOL" "$WORK/exp-slow" "slow upload"

# ------------------------------------------------------------------------
# 5b. what a power loss would keep: the order of syncs and renames (tests/lib/synclog.c)
# A kill -9 keeps everything the kernel has, so sections 1-3 cannot tell whether a step was
# durable before the next one began.  The calls' order can: a batch's conversion (its row and
# its business keys, in the ledger's write-ahead log) must be synced before any of its outputs
# is renamed into out/sage/, every output's data synced before its rename, the .done renamed
# after the others and the folder synced after each, the archive synced before its rename.
fresh sync
SHIM=$WORK/synclog.so
if ! cc -shared -fPIC -o "$SHIM" "$TOP/tests/lib/synclog.c" -ldl 2>"$WORK/synclog.cc"; then
    fail "faults: sync order: the shim builds" "$(head -c 400 "$WORK/synclog.cc")"
else
    cp "$EX"/orders-* "$SPOOL/in/clarity/"
    n_in=$(ls "$SPOOL/in/clarity" | wc -l)
    touch -d '1 hour ago' "$SPOOL"/in/clarity/*
    : >"$WORK/synclog"
    # (ASan wants to be first among the preloaded libraries; the shim only wraps libc calls)
    SYNCLOG=$WORK/synclog LD_PRELOAD=$SHIM ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0 \
        "$SB" -c "$CONF" run --once >>"$LOG" 2>&1
    rc=$?
    expect "faults: sync order: the run succeeds (exit $rc)" [ "$rc" = 0 ]
    expect "faults: sync order: examples to convert ($n_in)" [ "$n_in" -ge 2 ]
    python3 - "$WORK/synclog" "$SPOOL" "$n_in" <<'PY'
import os, re, sys
log, spool, n_in = sys.argv[1], os.path.realpath(sys.argv[2]), int(sys.argv[3])
ev = [l.rstrip("\n").split(" ") for l in open(log)]
out, arc = spool + "/out/sage/", spool + "/archive/"
wal = spool + "/ledger.db-wal"
def res(name, ok, why):
    print(("PASS " if ok else "FAIL ") + "faults: sync order: " + name + ("" if ok else ": " + why))
bad_wal, bad_data, bad_dir, bad_done, bad_arc = [], [], [], [], []
batches = {}
for i, e in enumerate(ev):
    if e[0] != "rename" or len(e) != 3 or not e[2].startswith(out) or "/." in e[2]:
        continue
    final = e[2]
    m = re.match(r"(?:SO|ITEM|CUST|RCPT)_(.*?)(?:_Stg\w+\.csv|\.xml|\.done)$", os.path.basename(final))
    if not m:
        continue
    b = batches.setdefault(m.group(1), {"first": i, "renames": []})
    b["renames"].append((i, final))
    # its data synced (as the temp name) before the rename
    if not any(x[0] in ("fsync", "fdatasync") and x[1] == e[1] for x in ev[:i]):
        bad_data.append(os.path.basename(final))
for bid, b in batches.items():
    first = b["first"]
    # the WAL synced after the batch's conversion was committed (after its outputs' data
    # were synced, which happens before the commit) and before its first rename
    data_syncs = [j for j, x in enumerate(ev[:first]) if x[0] in ("fsync", "fdatasync")
                  and bid in x[1] and x[1].startswith(out)]
    lo = max(data_syncs) if data_syncs else 0
    if not any(x[0] in ("fsync", "fdatasync") and x[1] == wal for x in ev[lo:first]):
        bad_wal.append(bid)
    names = [os.path.basename(f) for _, f in b["renames"]]
    if not names[-1].endswith(".done") or sum(n.endswith(".done") for n in names) != 1:
        bad_done.append(bid)
    # out/sage synced between the last data file's rename and the .done's, and after the .done's
    idone = b["renames"][-1][0]
    iprev = b["renames"][-2][0] if len(b["renames"]) > 1 else first
    dsync = lambda a, z: any(x[0] in ("fsync", "fdatasync") and x[1] == out.rstrip("/") for x in ev[a:z])
    if not dsync(iprev, idone) or not dsync(idone, len(ev)):
        bad_dir.append(bid)
    # its archive: data synced before the rename to the final name, the folder after it
    ren = [(j, x) for j, x in enumerate(ev) if x[0] == "rename" and len(x) == 3 and x[2].startswith(arc)
           and os.path.basename(x[2]) == bid + ".tar.gz"]
    if len(ren) != 1:
        bad_arc.append(bid + " (not archived once)")
    else:
        j, x = ren[0]
        synced = any(y[0] in ("fsync", "fdatasync") and y[1] == x[1] for y in ev[:j])
        dir_after = any(y[0] in ("fsync", "fdatasync") and y[1] == os.path.dirname(x[2]) for y in ev[j:])
        if not (synced and dir_after):
            bad_arc.append(bid)
# an input leaves work/ only once its archive's folder was synced after the archive's rename
# (in a group, the folder is synced once after all of the group's archives)
bad_rm = []
for u, x in enumerate(ev):
    if x[0] != "unlink" or os.path.dirname(x[1]) != spool + "/work" or os.path.basename(x[1]).startswith("."):
        continue
    ren = [j for j, y in enumerate(ev[:u]) if y[0] == "rename" and len(y) == 3 and y[2].startswith(arc)
           and y[2].endswith(".tar.gz")]
    if not ren or not any(y[0] in ("fsync", "fdatasync") and y[1] == os.path.dirname(ev[ren[-1]][2])
                          for y in ev[ren[-1]:u]):
        bad_rm.append(os.path.basename(x[1]))
removed = sum(1 for x in ev if x[0] == "unlink" and os.path.dirname(x[1]) == spool + "/work"
              and not os.path.basename(x[1]).startswith("."))
res("every input is removed from work/ after its archive's folder is synced (%d removed)" % removed,
    not bad_rm and removed >= n_in, str(bad_rm))
res("one batch per example published (%d of %d)" % (len(batches), n_in), len(batches) == n_in, str(sorted(batches)))
res("the ledger's WAL is synced after each conversion commits and before its first output is renamed into out/sage",
    batches and not bad_wal, "not for %s" % bad_wal)
res("every output's data is synced before its rename", not bad_data, str(bad_data))
res("the .done is renamed last, once, with out/sage synced before and after it", batches and not bad_done and not bad_dir,
    "order %s, folder %s" % (bad_done, bad_dir))
res("every archive is synced before its rename and its folder after", batches and not bad_arc, str(bad_arc))
PY
fi

# ------------------------------------------------------------------------
# 5c. a power loss that kept the input's removal from work/ but lost the ledger's last commits
# (published and archived are not synced one by one): recovery takes the input and the
# outputs back from the batch's archive, which was synced before those commits, and finishes
# the batch.  The loss is made by hand: the newest batch's row and the chain head set back.
rollback_newest() { # rollback_newest LEDGER STATE : the newest archived batch back to STATE
    python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
head = dict(db.execute("select k, v from meta").fetchall())
bid, prev = db.execute("select id, prev from batches where manifest_sha256 = ?", (head["chain_head"],)).fetchone()
before = db.execute("select id from batches where manifest_sha256 = ?", (prev,)).fetchone() if prev else None
db.execute("update batches set state = ?, archive = NULL, manifest_sha256 = NULL, prev = NULL where id = ?",
           (sys.argv[2], bid))
db.execute("update meta set v = ? where k = 'chain_head'", (prev,))
db.execute("update meta set v = ? where k = 'chain_batch'", (before[0] if before else None,))
db.commit()
print(bid)
PY
}
mkdir -p "$WORK/exp-lost"
cp "$EX"/orders-* "$WORK/exp-lost/"
for state in published converted; do
    fresh "lost-$state"
    cp "$WORK/exp-lost/"* "$SPOOL/in/clarity/"
    touch -d '1 hour ago' "$SPOOL"/in/clarity/*
    sb run --once
    arc_before=$(cd "$SPOOL/archive" && find . -name '*.tar.gz' -exec sha256sum {} + | sort)
    bid=$(rollback_newest "$SPOOL/ledger.db" "$state")
    sb run --once
    expect "faults: ledger commits lost ($state): recovery finishes the batch (exit $rc)" [ "$rc" = 0 ]
    expect "faults: ledger commits lost ($state): the input and outputs come back from the archive" \
        grep -q "batch=$bid.*restored from its archive" "$LOG"
    # (from converted the batch is published again, so its manifest's processed_at is new;
    # its input and outputs are checked byte for byte by the invariants)
    [ "$state" = published ] &&
        expect "faults: ledger commits lost ($state): the archives are byte for byte the same" \
            [ "$(cd "$SPOOL/archive" && find . -name '*.tar.gz' -exec sha256sum {} + | sort)" = "$arc_before" ]
    check_invariants "$SPOOL" "$WORK/exp-lost" "ledger commits lost ($state)"
done
# the same loss without the archive to take the input from: reported, named, nothing invented
fresh lost-noarchive
cp "$WORK/exp-lost/"* "$SPOOL/in/clarity/"
touch -d '1 hour ago' "$SPOOL"/in/clarity/*
sb run --once
bid=$(rollback_newest "$SPOOL/ledger.db" published)
find "$SPOOL/archive" -name "$bid.tar.gz" -delete
sb run --once
expect "faults: ledger commits lost, no archive: the run says so in its status (exit $rc)" [ "$rc" != 0 ] && [ "$rc" -lt 128 ]
expect "faults: ledger commits lost, no archive: recover-failed names the batch and the missing archive" \
    grep -q "batch=$bid.*event=recover-failed\|event=recover-failed.*batch=$bid" "$LOG"
expect "faults: ledger commits lost, no archive: ... and says which archive it looked for" \
    grep -q "no archive .*$bid.tar.gz" "$LOG"

# ------------------------------------------------------------------------
# 6. a full disk: no crash, nothing half-published, nothing lost; processed once there is room

# disk_full_after_run LABEL NAME ORIG : checks right after a run that ran out of space
disk_full_after_run() {
    local label=$1 name=$2 orig=$3 d bad="" where="" tmps
    expect "faults: $label: the run does not die by a signal (exit $rc)" [ "$rc" -lt 128 ]
    for d in "$SPOOL"/out/sage/*.done; do
        [ -e "$d" ] || continue
        (cd "$SPOOL/out/sage" && sha256sum --quiet -c "$(basename "$d")") >/dev/null 2>&1 || bad="$bad $(basename "$d")"
    done
    expect "faults: $label: no .done without all its files intact ($bad)" [ -z "$bad" ]
    tmps=$(find "$SPOOL/out/sage" "$SPOOL/error" "$SPOOL/archive" -name '*.sbtmp' | wc -l)
    expect "faults: $label: no temp file left behind ($tmps)" [ "$tmps" = 0 ]
    [ -e "$SPOOL/in/clarity/$name" ] && where="$where in"
    [ -e "$SPOOL/work/$name" ] && where="$where work"
    [ -e "$SPOOL/error/$name" ] && where="$where error"
    [ -n "$(find "$SPOOL/archive" -name '*.tar.gz')" ] && where="$where archive"
    expect "faults: $label: the input is kept in in/, work/, error/ or archived (found:$where)" [ -n "$where" ]
    if [ -e "$SPOOL/error/$name" ]; then
        cmp -s "$SPOOL/error/$name" "$orig"
        expect "faults: $label: the input in error/ is unchanged" [ $? = 0 ]
        # the reason beside it must name the real cause, not blame a valid JSON file
        local code ok=no
        code=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); e=d["errors"][0]; print(e["code"] + "|" + (e["message"] or ""))' "$SPOOL/error/$name.error.json" 2>&1)
        [[ "$code" != NOT_JSON* && "$code" != *"|" && "$code" =~ (space|write|ENOSPC) ]] && ok=yes
        expect "faults: $label: error.json names the write failure, not the input (got ${code:0:120})" [ $ok = yes ]
    fi
    # whatever Sage could see now must never change afterwards (no partial file on view)
    (cd "$SPOOL/out/sage" && find . -maxdepth 1 -type f ! -name '.*' -printf '%f\0' | xargs -0 -r sha256sum) >"$WORK/visible.sha"
}

# disk_full_recover LABEL NAME EXPDIR : room again; a run finishes the work
disk_full_recover() {
    local label=$1 name=$2 exp=$3
    # an input sent to error/ comes back the way its error.json says: requeue
    [ -e "$SPOOL/error/$name" ] && sb requeue "$name"
    sb run --once
    expect "faults: $label: with room again the run exits 0 (got $rc)" [ "$rc" = 0 ]
    if [ ! -s "$WORK/visible.sha" ] ||
        (cd "$SPOOL/out/sage" && sha256sum --quiet -c "$WORK/visible.sha") >/dev/null 2>&1; then
        pass "faults: $label: files visible during the shortage were complete (unchanged since)"
    else
        fail "faults: $label: files visible during the shortage were complete (unchanged since)" \
            "$(cd "$SPOOL/out/sage" && sha256sum -c "$WORK/visible.sha" 2>&1 | grep -v ': OK' | head -3 | tr '\n' ' ')"
    fi
    check_invariants "$SPOOL" "$exp" "$label" --states archived,rejected
}

MNT=$WORK/tmpfs
mkdir -p "$MNT"
if mount -t tmpfs -o size=2m tmpfs "$MNT" 2>/dev/null; then
    MOUNTS+=("$MNT")
    SPOOL=$MNT/spool
    "$SB" init "$SPOOL" >/dev/null 2>&1 || fail "faults: full disk: init" "sagebridge init failed"
    CONF=$SPOOL/sagebridge.conf
    LOG=$WORK/full.log
    mkdir -p "$WORK/exp-full"
    python3 "$GEN" 1.5 "$WORK/exp-full/orders-full.json" --seed 11
    cp "$WORK/exp-full/orders-full.json" "$SPOOL/in/clarity/"
    sb run --once
    expect "faults: full disk: the run fails (exit $rc)" [ "$rc" != 0 ]
    # SPEC §2: 73 cannot create output, 74 I/O error (75 try later); 65 would blame the input
    expect "faults: full disk: exit status says output/I-O failure, 73 or 74 (got $rc)" [ "$rc" = 73 -o "$rc" = 74 -o "$rc" = 75 ]
    disk_full_after_run "full disk" orders-full.json "$WORK/exp-full/orders-full.json"
    vis=$(find "$SPOOL/out/sage" -type f ! -name '.*' | wc -l)
    expect "faults: full disk: nothing visible in out/sage ($vis files)" [ "$vis" = 0 ]
    mount -o remount,size=64m "$MNT"
    disk_full_recover "full disk" orders-full.json "$WORK/exp-full"
    rm -rf "$SPOOL"

    # 6b. the disk fills up at each step of a batch: a run measures what a batch
    # needs (outputs O, archive A, all of it N), then runs start with less and
    # less room missing, so that the write that fails is in turn the ledger, a
    # temp output, the ledger's commit, the archive's temp, the archive's commit
    mount -o remount,size=8m "$MNT"
    mkdir -p "$WORK/exp-fill"
    python3 "$GEN" 0.2 "$WORK/exp-fill/orders-fill.json" --seed 12
    avail() { df -B1 --output=avail "$MNT" | tail -1 | tr -d ' '; }
    SPOOL=$MNT/measure
    "$SB" init "$SPOOL" >/dev/null 2>&1
    CONF=$SPOOL/sagebridge.conf
    LOG=$WORK/fill-measure.log
    cp "$WORK/exp-fill/orders-fill.json" "$SPOOL/in/clarity/"
    before=$(avail)
    I=$(du -sB1 "$SPOOL/in/clarity/orders-fill.json" | cut -f1)
    sb run --once
    # the input leaves work/ only at the end: at the peak it is there besides the rest
    need=$((before - $(avail) + I))
    O=$(du -sB1 "$SPOOL/out/sage" | cut -f1)
    A=$(du -sB1 "$SPOOL/archive" | cut -f1)
    L=$((need - O - A))
    rm -rf "$SPOOL"
    echo "faults: disk fills: a batch needs $need bytes at its peak (outputs $O, archive $A, ledger $L)"
    # (the ledger's WAL and the archive's temp make the true peak up to ~1.5 A above N)
    levels=("ledger:$((L / 4))" "outputs:$((O / 2))" "outputs-2:$((O + (need - O) / 2))")
    for j in 0 1 2 3 4 5 6 7 8 9; do levels+=("N+$j|6A:$((need + A * j / 6))"); done
    for lv in "${levels[@]}"; do
        stage=${lv%%:*}
        free=${lv#*:}
        SPOOL=$MNT/fill-${stage/|/-}
        "$SB" init "$SPOOL" >/dev/null 2>&1
        CONF=$SPOOL/sagebridge.conf
        LOG=$WORK/fill-${stage/|/-}.log
        cp "$WORK/exp-fill/orders-fill.json" "$SPOOL/in/clarity/"
        fallocate -l $(($(avail) - free)) "$MNT/filler" 2>/dev/null ||
            head -c $(($(avail) - free)) /dev/zero >"$MNT/filler" 2>/dev/null
        sb run --once
        disk_full_after_run "disk fills ($stage)" orders-fill.json "$WORK/exp-fill/orders-fill.json"
        rm -f "$MNT/filler"
        disk_full_recover "disk fills ($stage)" orders-fill.json "$WORK/exp-fill"
        rm -rf "$SPOOL"
    done
    cd "$WORK" && umount "$MNT" && MOUNTS=()
fi
exit 0
