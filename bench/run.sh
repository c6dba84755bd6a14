#!/usr/bin/env bash
# bench/run.sh - `make bench`: SPEC §10 measured against references run in the same invocation.
#
# Prints a table and one PASS/FAIL line per §10 target on stdout (progress goes to stderr) and
# writes bench/RESULTS.md with the machine's description.  Generated data and every scratch
# spool live in bench/out/ (gitignored); the inputs are generated once and kept there.
#
# Settings (environment):
#   BENCH_N=5             repeats of each timed measurement (best wall time is reported; this
#                         machine's speed changes from one minute to the next by 10-40 %, for
#                         the references as for sagebridge, and 3 runs often caught none fast)
#   BENCH_SIZE_MB=200     the large Clarity export (bench/gen-orders.py, --seed 42, array shape)
#   BENCH_BIG=0           1: also 1 GB (yajl parse, convert csv, convert both), BENCH_BIG_N=1 runs
#   BENCH_FILES=10000     one-order files dropped at once for `run --once`
#   BENCH_FILES_N=1       repeats of that measurement (each costs about a minute and a half)
#   BENCH_LAT_N=200       single files renamed into in/clarity/ with `run` watching
#   BENCH_DELIVER_OPS=2000  product upserts delivered per `deliver --once`
#   BENCH_BATCHES=100000  ledger rows for `archive list`
#   BENCH_STRACE=1        0: skip the fsync-family column (also skipped when strace is missing)
#   BENCH_KEEP=0          1: keep the scratch spools and outputs in bench/out/ afterwards
#
# Exit status: 0 when every measurement was made, whatever the targets say (a FAIL is a
# result); 1 when a measurement is broken (a command failed or its output was not what it
# must be); 2 when the bench cannot start (no ./sagebridge, no compiler, no yajl).
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$TOP/bench
OUT=$B/out
SB=$TOP/sagebridge
N=${BENCH_N:-5}
SIZE=${BENCH_SIZE_MB:-200}
BIG=${BENCH_BIG:-0}
BIG_N=${BENCH_BIG_N:-1}
NFILES=${BENCH_FILES:-10000}
FILES_N=${BENCH_FILES_N:-1}
LAT_N=${BENCH_LAT_N:-200}
DOPS=${BENCH_DELIVER_OPS:-2000}
DOPS_STOCK=50
NBATCH=${BENCH_BATCHES:-100000}
STRACE=${BENCH_STRACE:-1}
KEEP=${BENCH_KEEP:-0}
REC=$OUT/records.jsonl
LOG=$OUT/bench.log

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

[ -x "$SB" ] || die "no $SB: run make first"
mkdir -p "$OUT" || die "cannot create $OUT"
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || die "python3 is needed"
command -v cc >/dev/null || die "no C compiler (cc): tools/deps.sh build installs gcc"
pkg-config --exists yajl 2>/dev/null || die "yajl not found by pkg-config: tools/deps.sh build installs libyajl-dev"
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -o "$OUT/parse_only" "$B/parse_only.c" $(pkg-config --cflags --libs yajl) ||
    die "cannot compile bench/parse_only.c"
cc -O2 -Wall -Wextra -o "$OUT/rss_exec" "$B/rss_exec.c" || die "cannot compile bench/rss_exec.c"

# The binary measured is a snapshot, with its templates and schemas beside it (where it looks
# first): a rebuild of ./sagebridge while the bench runs changes nothing here.
BIN=$OUT/bin
if ! { rm -rf "$BIN" && mkdir -p "$BIN" && cp -p "$SB" "$BIN/sagebridge" && cp -r "$TOP/templates" "$TOP/xsd" "$BIN/" &&
    "$BIN/sagebridge" --version >/dev/null 2>&1; }; then
    die "cannot take a copy of $SB and its templates into $BIN"
fi
SB_SRC=$SB
SB=$BIN/sagebridge

T_START=$(date +%s)
: >"$REC"
: >"$LOG"
M() { "$PY" "$B/measure.py" "$@"; }
meta() { M meta "$REC" "$@" >/dev/null; }
broken() { # broken ID WHY : this measurement cannot be trusted
    say "BROKEN $1: $2"
    meta "$1" "broken=$2"
}
meta bench "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "n=$N" "strace=$STRACE" "big=$BIG" \
    "load_start=$(cut -d' ' -f1-3 /proc/loadavg)" "version=$("$SB" --version 2>&1 | head -1)" \
    "commit=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "dirty=$(git -C "$TOP" status --porcelain -- src templates Makefile 2>/dev/null | wc -l | tr -d ' ')" \
    "binary_sha256=$(sha256sum "$SB" | cut -c1-12)" "binary_mtime=$(date -u -r "$SB_SRC" +%Y-%m-%dT%H:%M:%SZ)"
[ "$(cut -d' ' -f1 /proc/loadavg | cut -d. -f1)" -ge 1 ] &&
    say "warning: load average $(cut -d' ' -f1-3 /proc/loadavg) before starting: other work on the machine skews the figures"

if ! command -v jq >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "jq is missing; installing it: apt-get install -y jq"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >&2 ||
            { apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >&2; }
    else
        say "jq is missing and we are not root: the jq reference cannot be measured (apt-get install -y jq)"
    fi
fi
if [ "$STRACE" = 1 ] && ! command -v strace >/dev/null; then
    say "strace is missing: the fsync-family column is skipped"
    STRACE=0
    meta bench "strace_note=strace not installed"
fi

# -------------------------------------------------------------------- the runner
# bench ID REPEATS SETUP CHECK TRACE [measure.py options] -- CMD...
#   REPEATS times: SETUP, then CMD timed by measure.py, then CHECK (all must succeed, else the
#   measurement is broken); then, when TRACE is 1 and strace is there, once more under strace
#   for the fsync-family count.  SETUP and CHECK are shell function names (":" for none).
bench() {
    local id=$1 reps=$2 setup=$3 check=$4 trace=$5 i
    shift 5
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    for ((i = 1; i <= reps; i++)); do
        say "$id: run $i/$reps"
        $setup || { broken "$id" "setup failed (see $LOG)"; return 1; }
        M run "$REC" "$id" --stderr "$LOG" "${opts[@]}" -- "$@" >/dev/null ||
            { broken "$id" "$1 failed (see $LOG)"; return 1; }
        $check || { broken "$id" "its output is not what it must be (see $LOG)"; return 1; }
    done
    if [ "$trace" = 1 ] && [ "$STRACE" = 1 ]; then
        say "$id: once more under strace -c -f (fsync family)"
        $setup || { broken "$id" "setup failed (see $LOG)"; return 1; }
        M strace "$REC" "$id" --stderr "$LOG" "${opts[@]}" -- "$@" >/dev/null ||
            { broken "$id" "$1 under strace failed (see $LOG)"; return 1; }
        $check || { broken "$id" "its output under strace is not what it must be"; return 1; }
    fi
    return 0
}

# newspool DIR : a fresh spool (sagebridge init), its config at DIR/sagebridge.conf
newspool() {
    rm -rf "$1" && "$SB" init "$1" >>"$LOG" 2>&1
}
count() { find "$1" -name "$2" -type f 2>/dev/null | wc -l | tr -d ' '; }

# ------------------------------------------------------------------- the inputs
# export SIZE_MB : the cached Clarity export (generated once; deterministic)
export_file() {
    local f=$OUT/orders-${1}mb-seed42.json
    if [ ! -s "$f" ]; then
        say "generating $f (bench/gen-orders.py $1, once)"
        "$PY" "$B/gen-orders.py" "$1" "$f.part" --shape array --seed 42 || die "gen-orders.py failed"
        mv "$f.part" "$f"
    fi
    touch -d '1 hour ago' "$f" # `run --once` takes it at once (settled)
    echo "$f"
}
F200=$(export_file "$SIZE")
BYTES200=$(stat -c %s "$F200")
ORDERS200=$(grep -c '"orderId"' "$F200")
meta input200 "bytes=$BYTES200" "orders=$ORDERS200" "mb=$SIZE"

FILES=$OUT/files-$NFILES
if [ ! -d "$FILES" ]; then
    say "generating $NFILES one-order files in $FILES (once)"
    rm -rf "$FILES.part"
    "$PY" "$B/mkfiles.py" orders "$FILES.part" "$NFILES" || die "mkfiles.py orders failed"
    mv "$FILES.part" "$FILES"
fi
ITEMS=$OUT/items-$DOPS.csv
ITEMS_STOCK=$OUT/items-$DOPS_STOCK.csv
[ -s "$ITEMS" ] || "$PY" "$B/mkfiles.py" items "$ITEMS" "$DOPS" || die "mkfiles.py items failed"
[ -s "$ITEMS_STOCK" ] || "$PY" "$B/mkfiles.py" items "$ITEMS_STOCK" "$DOPS_STOCK" || die "mkfiles.py items failed"

# ------------------------------------------------------------------- the CPUs
# cpu_probe WHEN : the parse reference pinned to each CPU in turn (taskset), best of 3 each.
# The two CPUs of this virtual machine do not always run at the same speed (one of them can be
# 50 % slower for minutes while the other is not); a single-threaded reference's best of N
# runs on whichever CPU is fast, and sagebridge's two threads use both.  Recorded, not used in
# any ratio: it tells how to read the run.
cpu_probe() {
    command -v taskset >/dev/null || { meta bench "cpus_$1=taskset not installed"; return 0; }
    local c ts out=""
    for ((c = 0; c < $(nproc); c++)); do
        ts=""
        for _ in 1 2 3; do
            ts="$ts $( { TIMEFORMAT=%R; time taskset -c "$c" "$OUT/parse_only" "$F200" >/dev/null 2>&1; } 2>&1 )"
        done
        # shellcheck disable=SC2086 # the three times, one per line
        out="$out${out:+, }cpu$c $(printf '%s\n' $ts | sort -g | head -1) s"
    done
    meta bench "cpus_$1=$out"
}
cpu_probe start

# ------------------------------------------------------------ references and convert
# The 200 MB lines and their references run in N interleaved rounds (parse, jq, convert csv,
# convert both, the durable copy; then again), not N runs of one then N of the next: this
# machine has slow minutes, and a contender whose runs all fall into one of them would be
# compared with references that were measured in a quiet one (or the other way round).  Each
# line is still the best of its N runs; strace counts the last round's commands once more.
JQ_CSV=$OUT/jq-lines.csv
# shellcheck disable=SC2016 # $o is jq's variable
JQ_FILTER='.[] | .orderId as $o | .lineItems | to_entries[] | [$o, .key + 1, .value.sku, .value.name, .value.quantity, .value.unitPrice, .value.tax, .value.discount] | @csv'
jq_check() { [ "$(wc -l <"$JQ_CSV")" -gt "$ORDERS200" ]; }
HAVE_JQ=0
if command -v jq >/dev/null; then HAVE_JQ=1; else broken jq200 "jq is not installed"; fi
CONV=$OUT/convert
conv_setup() { rm -rf "$CONV" && mkdir -p "$CONV"; }
conv_csv_check() { [ "$(count "$CONV" 'SO_*.done')" = 1 ] && [ "$(count "$CONV" 'SO_*_StgSOLine.csv')" = 1 ] && [ "$(count "$CONV" '*.xml')" = 0 ]; }
conv_both_check() { [ "$(count "$CONV" 'SO_*.done')" = 1 ] && [ "$(count "$CONV" 'SO_*_StgSOLine.csv')" = 1 ] && [ "$(count "$CONV" 'SO_*.xml')" = 1 ]; }
# the disk's share of --format both: the same output bytes copied and made durable, nothing else
COPY=$OUT/copy-ref
copy_setup() { rm -rf "$COPY"; }
declare -A GONE=() # measurements that broke: no further rounds of them
round() {          # round ID ARGS... : one run of ID in this round, unless it broke before
    local id=$1
    shift
    [ -n "${GONE[$id]:-}" ] && return 0
    bench "$id" "$@" || GONE[$id]=1
}
for ((r = 1; r <= N; r++)); do
    last=$((r == N))
    say "round $r/$N: yajl parse, jq, convert --format csv, convert --format both, durable copy ($SIZE MB)"
    round parse200 1 : : "$last" -- "$OUT/parse_only" "$F200"
    [ "$HAVE_JQ" = 1 ] && round jq200 1 : jq_check 0 --stdout "$JQ_CSV" -- jq -r "$JQ_FILTER" "$F200"
    round csv200 1 conv_setup conv_csv_check "$last" -- "$SB" convert "$F200" -o "$CONV" --format csv
    round both200 1 conv_setup conv_both_check "$last" -- "$SB" convert "$F200" -o "$CONV" --format both
    if conv_both_check; then
        round copyref 1 copy_setup : 0 --json-stdout -- "$PY" "$B/copy_ref.py" "$CONV" "$COPY"
    elif [ -z "${GONE[copyref]:-}" ]; then
        broken copyref "no --format both output to copy"
        GONE[copyref]=1
    fi
done
[ "$HAVE_JQ" = 1 ] && [ -s "$JQ_CSV" ] && meta jq200 "filter=$JQ_FILTER" "lines=$(wc -l <"$JQ_CSV")"
rm -rf "$CONV" "$COPY" "$JQ_CSV"
cpu_probe convert

FSREF=$OUT/fsync-ref
SAMPLE=$FILES/orders-000000.json
fsref_setup() { rm -rf "$FSREF" && mkdir -p "$FSREF"; }
say "reference: write+fsync+rename+fsync(dir), 500 small files"
bench fsyncref "$N" fsref_setup : 1 --json-stdout -- "$PY" "$B/fsync_ref.py" "$FSREF" 500 "$SAMPLE"
meta fsyncref "ops=500"
rm -rf "$FSREF"

# ------------------------------------------------------------------- run --once, one big file
RS=$OUT/spool-run
run_setup() { newspool "$RS" && ln "$F200" "$RS/in/clarity/orders-bench.json"; }
run_check() {
    [ "$(count "$RS/out/sage" 'SO_*.done')" = 1 ] && [ "$(count "$RS/archive" '*.tar.gz')" = 1 ] &&
        [ "$(count "$RS/error" '*')" = 0 ] && [ "$(count "$RS/in" '*')" = 0 ]
}
# which output form the default spool publishes: the `formats` line `sagebridge init` writes
FMT_DEFAULT=
if newspool "$OUT/spool-formats"; then
    FMT_DEFAULT=$(sed -n 's/^formats[[:space:]]*=[[:space:]]*//p' "$OUT/spool-formats/sagebridge.conf" | tail -1 | tr -d " \t\r")
fi
rm -rf "$OUT/spool-formats"
meta spool "formats=${FMT_DEFAULT:-?}" "formats_line=$([ -n "$FMT_DEFAULT" ] && echo yes || echo no)"
say "run --once, $SIZE MB (spool formats = ${FMT_DEFAULT:-?}, the default of sagebridge init)"
bench run200 "$N" run_setup run_check 1 -- "$SB" -c "$RS/sagebridge.conf" run --once
# informational, not a SPEC line: the same with the spool's config edited to formats = both
run_both_setup() {
    run_setup && sed -i 's/^formats[[:space:]]*=.*/formats = both/' "$RS/sagebridge.conf" &&
        grep -qx 'formats = both' "$RS/sagebridge.conf"
}
run_both_check() { run_check && [ "$(count "$RS/out/sage" 'SO_*.xml')" = 1 ]; }
say "run --once, $SIZE MB, spool formats = both (informational)"
bench run200both "$N" run_both_setup run_both_check 1 -- "$SB" -c "$RS/sagebridge.conf" run --once
rm -rf "$RS"

# ------------------------------------------------------------------- run --once, 10,000 files
FS=$OUT/spool-files
files_setup() {
    newspool "$FS" && (cd "$FILES" && find . -maxdepth 1 -name 'orders-*.json' -exec ln -t "$FS/in/clarity" {} +) &&
        [ "$(count "$FS/in/clarity" '*.json')" = "$NFILES" ]
}
files_check() {
    local pub arch err left
    pub=$(count "$FS/out/sage" 'SO_*.done')
    arch=$(count "$FS/archive" '*.tar.gz')
    err=$(count "$FS/error" '*')
    left=$(($(count "$FS/in" '*') + $(count "$FS/work" '*')))
    meta files "published=$pub" "archived=$arch" "errors=$err" "left=$left"
    true # a short count is a FAIL of the target, reported, not a broken measurement
}
say "run --once, $NFILES one-order files"
bench files "$FILES_N" files_setup files_check 1 -- "$SB" -c "$FS/sagebridge.conf" run --once
meta files "files=$NFILES"
rm -rf "$FS"

# ------------------------------------------------------------------- rename -> .done latency
LS=$OUT/spool-latency
lat_setup() { newspool "$LS"; }
say "rename -> .done latency, $LAT_N single files, run watching"
bench latency 1 lat_setup : 0 --json-stdout -- "$PY" "$B/latency.py" "$SB" "$LS/sagebridge.conf" "$LS" "$LAT_N" --log "$LOG"
rm -rf "$LS"

# ------------------------------------------------------------------- deliver
MOCK_PIDS=()
stop_mocks() {
    local p
    for p in "${MOCK_PIDS[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    MOCK_PIDS=()
}
trap stop_mocks EXIT
trap 'exit 130' INT TERM
# start_mock SCRIPT : a mock Clarity API (--auth none) on a free port; sets PORT
start_mock() {
    local f=$OUT/mock.out
    : >"$f"
    "$PY" "$1" --port 0 --auth none --lifetime 1200 >"$f" 2>>"$LOG" &
    MOCK_PIDS+=("$!")
    PORT=
    for _ in $(seq 100); do
        PORT=$(awk '$1 == "PORT" { print $2; exit }' "$f")
        [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    return 1
}
mock_reset() { curl -s -m 5 -X POST "http://127.0.0.1:$PORT/__mock/reset" >/dev/null; }
DS=$OUT/spool-deliver
DBATCH=$OUT/deliver-batch.json
DITEMS=
deliver_setup() {
    mock_reset && newspool "$DS" && ln "$DITEMS" "$DS/in/sage/" &&
        "$SB" -c "$DS/sagebridge.conf" run --once >>"$LOG" 2>&1 &&
        printf '\n[clarity]\nurl = http://127.0.0.1:%s\nauth = none\n' "$PORT" >>"$DS/sagebridge.conf" &&
        [ "$(count "$DS/out/clarity" 'CLARITY_*.json')" = 1 ] &&
        cp "$DS"/out/clarity/CLARITY_*.json "$DBATCH"
}
deliver_check() {
    [ "$(count "$DS/out/clarity" '*')" = 0 ] && [ "$(count "$DS/error" '*')" = 0 ] &&
        [ "$(count "$DS/sent/clarity" 'CLARITY_*.json')" -ge 1 ]
}
ref_setup() { mock_reset; }
deliver_pair() { # deliver_pair ID-SUFFIX MOCK-SCRIPT ITEMS REPEATS TRACE
    local sfx=$1 mock=$2 reps=$4 trace=$5
    DITEMS=$3
    if ! start_mock "$mock"; then
        broken "deliver$sfx" "the mock API did not start (see $LOG)"
        return
    fi
    bench "deliver$sfx" "$reps" deliver_setup deliver_check "$trace" -- "$SB" -c "$DS/sagebridge.conf" deliver --once &&
        bench "deliverref$sfx" "$reps" ref_setup : 0 --json-stdout -- "$PY" "$B/deliver_ref.py" "$PORT" "$DBATCH"
    meta "deliver$sfx" "ops=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["operations"]))' "$DBATCH" 2>/dev/null || echo 0)"
    stop_mocks
}
say "deliver --once, $DOPS product upserts, mock API with TCP_NODELAY (bench/mock_nodelay.py)"
deliver_pair "" "$B/mock_nodelay.py" "$ITEMS" "$N" 1
say "deliver --once, $DOPS_STOCK product upserts, stock mock API (tests/lib/mock_clarity.py)"
deliver_pair stock "$TOP/tests/lib/mock_clarity.py" "$ITEMS_STOCK" 1 0
rm -rf "$DS" "$DBATCH"

# ------------------------------------------------------------------- archive list
AS=$OUT/spool-ledger
say "archive list: a ledger of $NBATCH batches (bench/mkledger.py)"
if newspool "$AS" && "$SB" -c "$AS/sagebridge.conf" status >>"$LOG" 2>&1 && [ -f "$AS/ledger.db" ] &&
    "$PY" "$B/mkledger.py" "$AS/ledger.db" "$NBATCH"; then
    LIST=$OUT/list.txt
    list_check() { [ "$(wc -l <"$LIST")" = "$NBATCH" ]; }
    bench list "$N" : list_check 1 --stdout "$LIST" -- "$SB" -c "$AS/sagebridge.conf" archive list
    if command -v sqlite3 >/dev/null; then
        bench listref "$N" : list_check 0 --stdout "$LIST" -- sqlite3 "$AS/ledger.db" "SELECT * FROM batches ORDER BY claimed_at, id"
        meta listref "what=sqlite3 CLI"
    else
        bench listref "$N" : list_check 0 --stdout "$LIST" -- "$PY" -c 'import sqlite3,sys
for r in sqlite3.connect(sys.argv[1]).execute("SELECT * FROM batches ORDER BY claimed_at, id"): print("|".join("" if v is None else str(v) for v in r))' "$AS/ledger.db"
        meta listref "what=python sqlite3"
    fi
    meta list "batches=$NBATCH"
    rm -f "$LIST"
else
    broken list "could not build the $NBATCH-batch ledger (see $LOG)"
fi
rm -rf "$AS"

# ------------------------------------------------------------------- 1 GB (BENCH_BIG=1)
if [ "$BIG" = 1 ]; then
    F1G=$(export_file 1000)
    meta input1g "bytes=$(stat -c %s "$F1G")" "mb=1000"
    say "1 GB: yajl parse only, convert csv, convert both"
    bench parse1g "$BIG_N" : : 0 -- "$OUT/parse_only" "$F1G"
    bench csv1g "$BIG_N" conv_setup conv_csv_check 0 -- "$SB" convert "$F1G" -o "$CONV" --format csv
    bench both1g "$BIG_N" conv_setup conv_both_check 0 -- "$SB" convert "$F1G" -o "$CONV" --format both
    rm -rf "$CONV"
fi

# ------------------------------------------------------------------- the report
cpu_probe end
meta bench "seconds=$(($(date +%s) - T_START))" "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$KEEP" = 1 ] || rm -rf "$OUT"/spool-* "$CONV" "$BIN"
"$PY" "$B/report.py" "$REC" "$B/RESULTS.md" --out-dir "$OUT"
