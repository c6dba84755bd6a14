# spool.sh - the spool end to end: init, run --once, exactly once, rejects,
# arrival rules, hold/release/requeue and the watching `run` (SPEC §2, §3, §7).
#
# Every scenario gets a fresh spool ($WORK/sN, made by `init`).  Inputs are
# made "settled" by an old mtime; every `run --once` is bounded by timeout(1);
# every background `run` is stopped at the end of its scenario (and by the
# EXIT trap should the script die on the way).
. "$TOP/tests/lib/testlib.sh"
EX=$TOP/examples
DATA=$TOP/tests/data/spool
GOLD=$TOP/tests/golden

# ------------------------------------------------------------------ helpers

BGPIDS=""
stop_all() {
    local p
    for p in $BGPIDS; do kill -TERM "$p" 2>/dev/null; done
    for p in $BGPIDS; do
        for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    BGPIDS=""
}
trap stop_all EXIT

cfg() { echo "$WORK/$1/sagebridge.conf"; }
# mk SPOOL : a fresh spool by `init`
# (with formats = both, so that the XML form goes through the spool too; the default, CSV
# alone, is checked on its own below)
mk() { "$SB" init "$WORK/$1" >/dev/null 2>&1 && sed -i 's/^formats = .*/formats = both/' "$(cfg "$1")"; }
# once SPOOL : `run --once` on that spool, bounded; $rc, $WORK/out, $WORK/err
# (stderr is also appended to $WORK/SPOOL.log)
once() {
    timeout -k 2 40 "$SB" -c "$(cfg "$1")" run --once >"$WORK/out" 2>"$WORK/err"
    rc=$?
    cat "$WORK/err" >>"$WORK/$1.log"
}
# drop SRC SPOOL NAME : copy SRC into in/clarity/NAME, settled long ago
drop() {
    cp "$1" "$WORK/$2/in/clarity/$3" && touch -d '10 minutes ago' "$WORK/$2/in/clarity/$3"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
sha8() { sha "$1" | cut -c1-8; }
empty() { [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; }
count() { ls -A "$1" 2>/dev/null | wc -l | tr -d ' '; }
# batch_of SPOOL FILE : the batch id published for FILE's content ("" if none)
batch_of() {
    local d
    d=$(ls "$WORK/$1/out/sage/" 2>/dev/null | grep -E "^SO_.*-orders-$(sha8 "$2")\.done$" | head -1)
    d=${d#SO_}
    echo "${d%.done}"
}
# archive_of SPOOL BATCH : path of the batch's archive
archive_of() {
    local b=$2
    echo "$WORK/$1/archive/${b:0:4}/${b:4:2}/${b:6:2}/$b.tar.gz"
}
# unpack SPOOL BATCH DIR : extract the batch's archive into DIR
unpack() {
    rm -rf "$3" && mkdir -p "$3" && tar -xzf "$(archive_of "$1" "$2")" -C "$3" 2>/dev/null
}
# none_bad NAME : $bad (a list of offenders) is empty
none_bad() {
    if [ -z "$bad" ]; then pass "$1"; else fail "$1" "not so for:$bad"; fi
}
# check NAME 'SHELL CONDITION' : like expect, for a compound condition
check() {
    if eval "$2" 2>/dev/null; then pass "$1"; else fail "$1" "not true: $2"; fi
}
# until_true N CMD... : wait at most N x 0.1 s for CMD to succeed
until_true() {
    local n=$1
    shift
    for _ in $(seq "$n"); do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}
has_done() { [ -n "$(batch_of "$1" "$2")" ]; }
# pycheck NAME FUNC ARGS... : an assertion of $WORK/chk.py; its last words are the reason
pycheck() {
    local name=$1
    shift
    if python3 "$WORK/chk.py" "$@" >"$WORK/py.err" 2>&1; then
        pass "$name"
    else
        fail "$name" "$(tail -n 3 "$WORK/py.err" | tr '\n' ' ' | tail -c 400)"
    fi
}

cat >"$WORK/chk.py" <<'PY'
import hashlib, json, os, re, sys
from decimal import Decimal

HEX64 = re.compile(r"^[0-9a-f]{64}$")
MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")
NUM = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def load(path):
    return json.load(open(path, encoding="utf-8"), parse_float=Decimal)


def records_of(path):
    text = open(path, encoding="utf-8").read()
    try:
        doc = json.loads(text, parse_float=Decimal)
    except ValueError:
        return [json.loads(l, parse_float=Decimal) for l in text.splitlines() if l.strip()]
    if isinstance(doc, dict):
        doc = next(v for v in doc.values() if isinstance(v, list))
    return doc


def nrecords(path):
    print(len(records_of(path)))


def manifest(dir, batch, src, outdir, tpl):
    """manifest.json of an unpacked archive: ids, template, input, outputs"""
    m = load(os.path.join(dir, "manifest.json"))
    assert m.get("batch") == batch, "batch %r" % m.get("batch")
    assert m.get("kind") == "orders", "kind %r" % m.get("kind")
    t = m.get("template") or {}
    assert t.get("name") == "clarity-orders", "template.name %r" % t.get("name")
    assert t.get("sha256") == sha(tpl), "template.sha256 %r is not the template's" % t.get("sha256")
    i = m.get("input") or {}
    assert i.get("name") == os.path.basename(src), "input.name %r" % i.get("name")
    assert i.get("size") == os.path.getsize(src), "input.size %r" % i.get("size")
    assert i.get("sha256") == sha(src), "input.sha256 %r" % i.get("sha256")
    outs = m.get("outputs")
    assert isinstance(outs, list) and outs, "outputs %r" % outs
    names = sorted(o["name"] for o in outs)
    want = sorted(["SO_%s_StgSalesOrder.csv" % batch, "SO_%s_StgSOLine.csv" % batch, "SO_%s.xml" % batch])
    assert [n for n in names if not n.endswith(".done")] == want, "outputs %r" % names
    for o in outs:
        p = os.path.join(outdir, o["name"])
        assert os.path.exists(p), "output %s not in out/sage" % o["name"]
        assert o.get("size") == os.path.getsize(p), "%s size %r" % (o["name"], o.get("size"))
        assert o.get("sha256") == sha(p), "%s sha256 %r" % (o["name"], o.get("sha256"))
    assert "prev" in m, "no prev"


def counts(dir, n_in, published, rejected, duplicate):
    """records{in,published,rejected,duplicate,held,warnings}"""
    r = load(os.path.join(dir, "manifest.json")).get("records") or {}
    for k in ("in", "published", "rejected", "duplicate", "held", "warnings"):
        assert isinstance(r.get(k), int), "records.%s is %r" % (k, r.get(k))
    got = (r["in"], r["published"], r["rejected"], r["duplicate"], r["held"])
    want = (int(n_in), int(published), int(rejected), int(duplicate), 0)
    assert got == want, "records (in, published, rejected, duplicate, held) = %r, expected %r" % (got, want)


def totals(dir, src):
    """control_totals per currency, decimal strings, matching the input"""
    ct = load(os.path.join(dir, "manifest.json")).get("control_totals")
    assert isinstance(ct, dict) and ct, "control_totals %r" % ct
    want = {}
    for o in records_of(src):
        w = want.setdefault(o["currency"], {"orders": 0, "lines": 0, "total": Decimal(0),
                                            "quantity": Decimal(0), "tax": Decimal(0)})
        w["orders"] += 1
        w["lines"] += len(o["lineItems"])
        w["total"] += Decimal(str(o["totalAmount"]))
        w["quantity"] += sum(Decimal(str(l["quantity"])) for l in o["lineItems"])
        if o.get("taxAmount") is not None:
            w["tax"] += Decimal(str(o["taxAmount"]))
        else:
            w["tax"] += sum(Decimal(str(l.get("tax") or 0)) for l in o["lineItems"])
    assert sorted(ct) == sorted(want), "currencies %r, expected %r" % (sorted(ct), sorted(want))
    for cur, w in want.items():
        c = ct[cur]
        for k in ("total", "tax", "freight", "discount"):
            assert isinstance(c.get(k), str) and MONEY.match(c[k]), "%s.%s = %r is not a decimal string" % (cur, k, c.get(k))
        assert isinstance(c.get("quantity"), str) and NUM.match(c["quantity"]), "%s.quantity = %r" % (cur, c.get("quantity"))
        assert c.get("orders") == w["orders"], "%s.orders %r, expected %d" % (cur, c.get("orders"), w["orders"])
        assert c.get("lines") == w["lines"], "%s.lines %r, expected %d" % (cur, c.get("lines"), w["lines"])
        assert Decimal(c["total"]) == w["total"], "%s.total %s, expected %s" % (cur, c["total"], w["total"])
        assert Decimal(c["tax"]) == w["tax"], "%s.tax %s, expected %s" % (cur, c["tax"], w["tax"])
        assert Decimal(c["quantity"]) == w["quantity"], "%s.quantity %s, expected %s" % (cur, c["quantity"], w["quantity"])


def chain(spool, order):
    """manifests in processing order: prev = sha256 of the previous manifest; CHAIN names the last"""
    import tarfile
    ids = [l.strip() for l in open(order) if l.strip()]
    assert ids, "no archived batch"
    prev = None
    for b in ids:
        a = os.path.join(spool, "archive", b[0:4], b[4:6], b[6:8], b + ".tar.gz")
        with tarfile.open(a, "r:gz") as t:
            raw = t.extractfile("manifest.json").read()
        m = json.loads(raw)
        assert m.get("prev") == prev, "%s: prev %r, expected %r" % (b, m.get("prev"), prev)
        prev = hashlib.sha256(raw).hexdigest()
    head = open(os.path.join(spool, "archive", "CHAIN")).read().split()
    assert head[:2] == [prev, ids[-1]], "CHAIN says %r, expected [%s, %s]" % (head, prev, ids[-1])


def done_last(outdir, batch):
    """the .done marker is not older than any file of its batch"""
    fs = [f for f in os.listdir(outdir) if f.startswith("SO_%s" % batch)]
    done = os.stat(os.path.join(outdir, "SO_%s.done" % batch)).st_mtime_ns
    for f in fs:
        assert os.stat(os.path.join(outdir, f)).st_mtime_ns <= done, "%s is newer than the .done" % f


def status_json(path, spool, n_out, *batches):
    s = json.load(open(path))
    f = s.get("folders") or {}
    for k in ("in/clarity", "work", "out/sage", "hold", "error"):
        assert k in f, "folders lacks %s: %r" % (k, list(f))
    assert f["in/clarity"].get("files") == 0, "in/clarity %r" % f["in/clarity"]
    assert f["out/sage"].get("files") == int(n_out), "out/sage %r, expected %s" % (f["out/sage"], n_out)
    ids = [b.get("id") for b in s.get("last_batches") or []]
    for b in batches:
        assert b in ids, "last_batches lacks %s: %r" % (b, ids)


def dup_manifest(dir, original):
    m = load(os.path.join(dir, "manifest.json"))
    assert m.get("duplicate_of") == original, "duplicate_of %r, expected %r" % (m.get("duplicate_of"), original)
    assert not m.get("outputs"), "a duplicate lists outputs %r" % m.get("outputs")


def error_json(path, src, code):
    """NAME.error.json: {file, sha256, received_at, kind, errors[{record,line,field,code,message}], hint}"""
    e = load(path)
    assert e.get("file") == os.path.basename(src), "file %r" % e.get("file")
    assert e.get("sha256") == sha(src), "sha256 %r" % e.get("sha256")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$", str(e.get("received_at"))), "received_at %r" % e.get("received_at")
    assert e.get("kind") == "orders", "kind %r" % e.get("kind")
    errs = e.get("errors")
    assert isinstance(errs, list) and errs, "errors %r" % errs
    for x in errs:
        for k in ("record", "line", "field", "code", "message"):
            assert k in x, "an error lacks %s: %r" % (k, x)
        assert isinstance(x["message"], str) and x["message"], "empty message"
    if code != "-":
        assert code in [x["code"] for x in errs], "codes %r, expected %s" % ([x["code"] for x in errs], code)
    assert isinstance(e.get("hint"), str) and e["hint"].strip(), "hint %r" % e.get("hint")


def error_line(path):
    """the first error names a line (a number >= 1)"""
    x = load(path)["errors"][0]
    assert isinstance(x.get("line"), int) and x["line"] >= 1, "line is %r for %r" % (x.get("line"), x.get("message"))


def rejects(path, *want):
    """NAME.rejects.json: [{record, line, field, code, message, key}] with these KEY:CODE"""
    r = load(path)
    assert isinstance(r, list), "not a list: %r" % r
    for x in r:
        for k in ("record", "line", "field", "code", "message"):
            assert k in x, "a reject lacks %s: %r" % (k, x)
    got = ["%s:%s" % (x.get("key"), x.get("code")) for x in r]
    assert got == list(want), "rejects %r, expected %r" % (got, list(want))


globals()[sys.argv[1]](*sys.argv[2:])
PY

# =================================================================== 1. init
S=$WORK/s1
run init "$S"
expect_rc "spool: init exits 0" 0
bad=""
for d in "" in in/clarity in/sage work out out/sage out/clarity sent sent/clarity hold error archive; do
    [ -d "$S/$d" ] && [ "$(stat -c %a "$S/$d")" = 750 ] || bad="$bad ${d:-.}($(stat -c %a "$S/$d" 2>/dev/null || echo missing))"
done
none_bad "spool: init creates every spool folder, mode 0750"
expect "spool: init writes DIR/sagebridge.conf" [ -f "$S/sagebridge.conf" ]
expect "spool: init's config names the spool by absolute path" grep -qx -e "spool = $S" -e "spool = $(cd "$S" && pwd -P)" "$S/sagebridge.conf"
expect "spool: init's config is 0640" [ "$(stat -c %a "$S/sagebridge.conf")" = 640 ]
(cd "$WORK" && "$SB" init rel >/dev/null 2>&1)
expect "spool: init with a relative DIR writes the absolute path" grep -qx "spool = $(cd "$WORK" && pwd -P)/rel" "$WORK/rel/sagebridge.conf"
echo "# edited by spool.sh" >>"$S/sagebridge.conf"
cp "$S/sagebridge.conf" "$WORK/s1.conf.edited"
run init "$S"
expect_rc "spool: init of an existing spool exits 0" 0
expect "spool: init twice keeps the edited config" cmp -s "$S/sagebridge.conf" "$WORK/s1.conf.edited"
mkdir -p "$WORK/cf"
run -c "$WORK/cf/my.conf" init "$WORK/s1b"
expect_rc "spool: init with -c exits 0" 0
expect "spool: init -c FILE writes the config to FILE" grep -qx -e "spool = $WORK/s1b" -e "spool = $(cd "$WORK" && pwd -P)/s1b" "$WORK/cf/my.conf"
expect "spool: init -c FILE writes no DIR/sagebridge.conf" [ ! -e "$WORK/s1b/sagebridge.conf" -a -d "$WORK/s1b/in/clarity" ]
run -c "$WORK/cf/my.conf" status
check "spool: the config written by init -c is usable" '[ "$rc" = 0 ] && grep -q "$WORK/s1b" "$WORK/out"'

# ============================================================ 2. run --once
mk s2
S=$WORK/s2
INPUTS="orders-2026-11-01.json orders-2026-11-02.ndjson export-2026-11-03.json"
for n in $INPUTS; do drop "$EX/$n" s2 "$n"; done
t0=$(date -u +%Y%m%dT%H%M%SZ)
once s2
t1=$(date -u +%Y%m%dT%H%M%SZ)
expect_rc "spool: run --once on the examples exits 0" 0
grep -o 'event=archived batch=[^ ]*' "$WORK/err" | sed 's/.*batch=//' >"$WORK/s2.order"
for n in $INPUTS; do
    b=$(batch_of s2 "$EX/$n")
    if [ -z "$b" ]; then
        fail "spool: $n published with a .done marker" "no SO_*-orders-$(sha8 "$EX/$n").done in out/sage: $(ls "$S/out/sage" | head -5 | tr '\n' ' ')"
        continue
    fi
    pass "spool: $n published with a .done marker"
    ts=${b%%-*}
    expect "spool: $n batch id is UTC claim time-orders-sha8" [ "$(echo "$b" | grep -cE '^[0-9]{8}T[0-9]{6}Z-orders-[0-9a-f]{8}$')" = 1 -a ! "$ts" \< "$t0" -a ! "$ts" \> "$t1" ]
    expect "spool: $n has the four batch files" [ -s "$S/out/sage/SO_${b}_StgSalesOrder.csv" -a -s "$S/out/sage/SO_${b}_StgSOLine.csv" -a -s "$S/out/sage/SO_$b.xml" -a -s "$S/out/sage/SO_$b.done" ]
    (cd "$S/out/sage" && sha256sum --quiet -c "SO_$b.done") >/dev/null 2>&1
    expect "spool: $n .done verifies with sha256sum -c" [ $? = 0 ]
    expect "spool: $n .done lists the three files" [ "$(lines_of "$S/out/sage/SO_$b.done")" = 3 ]
    pycheck "spool: $n .done is the newest file of its batch" done_last "$S/out/sage" "$b"
    A=$(archive_of s2 "$b")
    expect "spool: $n archived as archive/YYYY/MM/DD/BATCH.tar.gz" [ -f "$A" ]
    X=$WORK/x2-$n
    unpack s2 "$b" "$X"
    expect "spool: $n archive holds input/NAME byte-identical" cmp -s "$X/input/$n" "$EX/$n"
    same=1
    for f in "SO_${b}_StgSalesOrder.csv" "SO_${b}_StgSOLine.csv" "SO_$b.xml"; do cmp -s "$X/output/$f" "$S/out/sage/$f" || same=0; done
    for f in "$X"/output/*; do cmp -s "$f" "$S/out/sage/$(basename "$f")" || same=0; done
    expect "spool: $n archive output/ is byte-identical to out/sage" [ $same = 1 ]
    expect "spool: $n archive holds manifest.json and report.txt" [ -s "$X/manifest.json" -a -s "$X/report.txt" ]
    check "spool: $n report.txt names batch and input" 'grep -q "$b" "$X/report.txt" && grep -q "$n" "$X/report.txt"'
    pycheck "spool: $n manifest names batch, kind, template, input, outputs" manifest "$X" "$b" "$EX/$n" "$S/out/sage" "$TOP/templates/clarity-orders.xml"
    nrec=$(python3 "$WORK/chk.py" nrecords "$EX/$n")
    pycheck "spool: $n manifest counts records" counts "$X" "$nrec" "$nrec" 0 0
    pycheck "spool: $n manifest control totals per currency" totals "$X" "$EX/$n"
done
bad=$(find "$S/out/sage" -type f ! -perm 0640 | head -3)
none_bad "spool: published files are 0640"
expect "spool: out/sage holds no temporary file" [ -z "$(find "$S/out/sage" -name '.*' -type f)" ]
expect "spool: in/clarity is empty after run --once" empty "$S/in/clarity"
expect "spool: work/ is empty after run --once" empty "$S/work"
expect "spool: error/ is empty after clean inputs" empty "$S/error"
expect "spool: three batches archived" [ "$(find "$S/archive" -name '*.tar.gz' | wc -l)" = 3 -a "$(lines_of "$WORK/s2.order")" = 3 ]
pycheck "spool: manifests form a chain and CHAIN names the last" chain "$S" "$WORK/s2.order"
# CHAIN is replaced without fsync: after a power loss it may lag the ledger by several links;
# the next start brings it forward along the ledger's own chain, and only then
cp "$S/archive/CHAIN" "$WORK/chain.now"
first=$(head -1 "$WORK/s2.order")
fsha=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT manifest_sha256 FROM batches WHERE id = ?", (sys.argv[2],)).fetchone()[0])' "$S/ledger.db" "$first")
printf '%s  %s\n' "$fsha" "$first" >"$S/archive/CHAIN"
once s2
expect_err "spool: a CHAIN two links behind is repaired at start" "chain-repaired"
check "spool: the repaired CHAIN names the head again" 'cmp -s "$S/archive/CHAIN" "$WORK/chain.now"'
printf '%064d  %s\n' 7 "$first" >"$S/archive/CHAIN"
once s2
expect_err "spool: a CHAIN naming no ancestor is not repaired but reported" "chain-disagrees"
check "spool: ... and left as it was found" 'grep -q "^0000000000000000000000000000000000000000000000000000000000000007 " "$S/archive/CHAIN"'
cp "$WORK/chain.now" "$S/archive/CHAIN"
run -c "$(cfg s2)" status
expect_rc "spool: status exits 0" 0
ok=1
for k in in/clarity work out/sage hold error; do grep -q "$k" "$WORK/out" || ok=0; done
for n in $INPUTS; do b=$(batch_of s2 "$EX/$n"); [ -n "$b" ] && grep -q "$b" "$WORK/out" || ok=0; done
expect "spool: status shows the folders and the last batches" [ $ok = 1 ]
run -c "$(cfg s2)" status --json
expect_rc "spool: status --json exits 0" 0
pycheck "spool: status --json parses, counts folders, lists batches" status_json "$WORK/out" "$S" 12 \
    $(for n in $INPUTS; do batch_of s2 "$EX/$n"; done)

# ============================================================ 3. exactly once
ls "$S/out/sage" >"$WORK/s2.before"
orig=$(batch_of s2 "$EX/orders-2026-11-01.json")
drop "$EX/orders-2026-11-01.json" s2 again.json
once s2
grep -o 'event=archived batch=[^ ]*' "$WORK/err" | sed 's/.*batch=//' >>"$WORK/s2.order"
ls "$S/out/sage" >"$WORK/s2.after"
expect "spool: same content under another name publishes nothing" cmp -s "$WORK/s2.before" "$WORK/s2.after"
expect_err "spool: same content is logged as a duplicate" "duplicate.*again\.json|again\.json.*duplicate"
check "spool: duplicate leaves in/clarity and work/ empty" 'empty "$S/in/clarity" && empty "$S/work"'
dupb=$(tail -1 "$WORK/s2.order")
if [ -n "$dupb" ] && [ "$dupb" != "$(sed -n 3p "$WORK/s2.order")" ] && [ -f "$(archive_of s2 "$dupb")" ]; then
    pass "spool: duplicate is still archived"
    unpack s2 "$dupb" "$WORK/x2-dup"
    expect "spool: duplicate archive holds input/again.json" cmp -s "$WORK/x2-dup/input/again.json" "$EX/orders-2026-11-01.json"
    pycheck "spool: duplicate manifest has duplicate_of = the first batch" dup_manifest "$WORK/x2-dup" "$orig"
else
    fail "spool: duplicate is still archived" "no new archive: $(grep -c . "$WORK/s2.order") archived; stderr: $(head -c 300 "$WORK/err")"
fi
drop "$DATA/mixed-dup.ndjson" s2 mixed-dup.ndjson
once s2
grep -o 'event=archived batch=[^ ]*' "$WORK/err" | sed 's/.*batch=//' >>"$WORK/s2.order"
expect_rc "spool: a file repeating a published order exits 65" 65
mb=$(batch_of s2 "$DATA/mixed-dup.ndjson")
check "spool: its new order is published" '[ -n "$mb" ] && grep -q ",CL-900001," "$S/out/sage/SO_${mb}_StgSalesOrder.csv"'
check "spool: the order published before is not published again" '[ -n "$mb" ] && [ "$(grep -c "WEB-2026-000017" "$S/out/sage/SO_${mb}_StgSalesOrder.csv")" = 0 ] && [ "$(grep -l "WEB-2026-000017" "$S"/out/sage/*_StgSalesOrder.csv | wc -l)" = 1 ]'
expect "spool: the repeated order is listed in error/NAME.rejects.json" [ -f "$S/error/mixed-dup.ndjson.rejects.json" ]
pycheck "spool: rejects.json says DUPLICATE_PUBLISHED for the repeated order" rejects "$S/error/mixed-dup.ndjson.rejects.json" "WEB-2026-000017:DUPLICATE_PUBLISHED"
if [ -n "$mb" ]; then
    unpack s2 "$mb" "$WORK/x2-mixed"
    pycheck "spool: its manifest counts 1 published, 1 duplicate" counts "$WORK/x2-mixed" 2 1 0 1
fi
check "spool: the file itself is archived, not left in error/" '[ ! -e "$S/error/mixed-dup.ndjson" ] && empty "$S/in/clarity" && empty "$S/work"'
pycheck "spool: the chain continues over duplicates and later runs" chain "$S" "$WORK/s2.order"

bad=$(find "$S" -type f ! -path "$S/in/*" ! -path "$S/hold/*" ! -perm 0640 -printf '%P(%m) ' | head -c 300)
none_bad "spool: every file sagebridge writes in the spool is 0640"
bad=$(find "$S" -type d ! -perm 0750 -printf '%P(%m) ' | head -c 300)
none_bad "spool: every spool folder, archive/YYYY/MM/DD too, is 0750"

# ---- the default form: CSV alone (init writes formats = csv), the archive holds what is there
"$SB" init "$WORK/s9" >/dev/null 2>&1
expect "spool: init writes formats = csv" grep -q '^formats = csv$' "$(cfg s9)"
drop "$EX/orders-2026-11-01.json" s9 orders-2026-11-01.json
once s9
expect_rc "spool: the default spool converts the example" 0
b9=$(batch_of s9 "$EX/orders-2026-11-01.json")
check "spool: by default the two CSVs and the .done are published, no XML" '[ -n "$b9" ] && [ -s "$WORK/s9/out/sage/SO_${b9}_StgSalesOrder.csv" ] && [ -s "$WORK/s9/out/sage/SO_${b9}_StgSOLine.csv" ] && [ ! -e "$WORK/s9/out/sage/SO_$b9.xml" ] && [ "$(count "$WORK/s9/out/sage")" = 3 ]'
check "spool: the .done lists exactly the two CSVs" '[ -n "$b9" ] && (cd "$WORK/s9/out/sage" && sha256sum -c --quiet "SO_$b9.done") && [ "$(grep -c . "$WORK/s9/out/sage/SO_$b9.done")" = 2 ]'
if [ -n "$b9" ]; then
    unpack s9 "$b9" "$WORK/x9"
    check "spool: its archive holds the input, the CSVs, the .done, manifest and report" '[ "$(cd "$WORK/x9" && find . -type f | LC_ALL=C sort | tr "\n" " ")" = "./input/orders-2026-11-01.json ./manifest.json ./output/SO_${b9}.done ./output/SO_${b9}_StgSOLine.csv ./output/SO_${b9}_StgSalesOrder.csv ./report.txt " ]'
    check "spool: the archived input is the dropped file, byte for byte" 'cmp -s "$WORK/x9/input/orders-2026-11-01.json" "$EX/orders-2026-11-01.json"'
fi
sed -i 's/^formats = .*/formats = xml/' "$(cfg s9)"
drop "$EX/orders-2026-11-02.ndjson" s9 orders-2026-11-02.ndjson
once s9
b9x=$(ls "$WORK/s9/out/sage/" | grep -E "^SO_.*-orders-$(sha8 "$EX/orders-2026-11-02.ndjson")\.done$" | sed 's/^SO_//; s/\.done$//')
check "spool: formats = xml publishes the XML and no CSV" '[ -n "$b9x" ] && [ -s "$WORK/s9/out/sage/SO_$b9x.xml" ] && [ ! -e "$WORK/s9/out/sage/SO_${b9x}_StgSOLine.csv" ]'

# ---- two instances at once on one spool: each input processed exactly once
mk s3
S=$WORK/s3
python3 "$TOP/bench/gen-orders.py" 0.03 "$WORK/many.ndjson" --shape ndjson >/dev/null 2>&1
split -n l/8 -d --additional-suffix=.ndjson "$WORK/many.ndjson" "$WORK/part-"
for f in "$WORK"/part-*.ndjson; do drop "$f" s3 "$(basename "$f")"; done
drop "$WORK/part-00.ndjson" s3 same-as-part-00.ndjson
timeout -k 2 40 "$SB" -c "$(cfg s3)" run --once >/dev/null 2>"$WORK/s3a.log" &
pa=$!
timeout -k 2 40 "$SB" -c "$(cfg s3)" run --once >/dev/null 2>"$WORK/s3b.log" &
pb=$!
BGPIDS="$BGPIDS $pa $pb"
wait $pa
ra=$?
wait $pb
rb=$?
BGPIDS=""
expect "spool: two instances at once both exit 0" [ "$ra" = 0 -a "$rb" = 0 ]
ok=1
for f in "$WORK"/part-*.ndjson; do
    [ "$(ls "$S/out/sage" | grep -c -E "^SO_.*-orders-$(sha8 "$f")\.done$")" = 1 ] || { ok=0; echo "not published exactly once: $(basename "$f")"; }
done
expect "spool: two instances: every input published exactly once" [ $ok = 1 -a "$(ls "$S/out/sage" | grep -c '[.]done$')" = 8 ]
rows=$(cat "$S"/out/sage/*_StgSalesOrder.csv 2>/dev/null | grep -v -c '^TranNo,')
if [ "$rows" = "$(lines_of "$WORK/many.ndjson")" ]; then pass "spool: two instances: every order published once"
else fail "spool: two instances: every order published once" "$rows order rows for $(lines_of "$WORK/many.ndjson") orders"; fi
expect "spool: two instances: 9 inputs, 9 archives (one a duplicate)" [ "$(find "$S/archive" -name '*.tar.gz' | wc -l)" = 9 ]
check "spool: two instances: in/clarity, work/ and error/ end empty" 'empty "$S/in/clarity" && empty "$S/work" && empty "$S/error"'

# ================================================================ 4. rejects
mk s4
S=$WORK/s4
drop "$DATA/syntax-error.json" s4 syntax-error.json
once s4
expect_rc "spool: invalid JSON exits 65" 65
expect "spool: invalid JSON goes to error/ unchanged" cmp -s "$S/error/syntax-error.json" "$DATA/syntax-error.json"
expect "spool: invalid JSON gets error/NAME.error.json" [ -f "$S/error/syntax-error.json.error.json" ]
pycheck "spool: error.json has file, sha256, received_at, kind, errors[], hint" error_json "$S/error/syntax-error.json.error.json" "$DATA/syntax-error.json" -
pycheck "spool: error.json of a syntax error names its line" error_line "$S/error/syntax-error.json.error.json"
expect "spool: invalid JSON publishes nothing" empty "$S/out/sage"
check "spool: invalid JSON leaves in/clarity and work/ empty" 'empty "$S/in/clarity" && empty "$S/work"'
drop "$EX/orders-2026-11-01.json" s4 orders-2026-11-01.json
once s4
b=$(batch_of s4 "$EX/orders-2026-11-01.json")
check "spool: after a rejected file its records are still publishable" '[ "$rc" = 0 -a -n "$b" ] && [ "$(($(lines_of "$S/out/sage/SO_${b}_StgSalesOrder.csv") - 1))" = 3 ]'

mk s4b
S=$WORK/s4b
RJ=$GOLD/orders-rejects/input/orders-rejects.json
drop "$RJ" s4b orders-rejects.json
SAGEBRIDGE_SPOOL_ON_RECORD_ERROR=skip once s4b
expect_rc "spool: bad records with skip exit 65" 65
b=$(batch_of s4b "$RJ")
check "spool: skip publishes the good record" '[ -n "$b" ] && grep -q ",CL-400001," "$S/out/sage/SO_${b}_StgSalesOrder.csv"'
check "spool: skip publishes no bad record" '[ -n "$b" ] && [ "$(lines_of "$S/out/sage/SO_${b}_StgSalesOrder.csv")" = 2 ] && ! grep -q -E "CL-40000[234]" "$S/out/sage/SO_${b}_StgSalesOrder.csv"'
pycheck "spool: skip lists the 3 bad records in error/NAME.rejects.json" rejects "$S/error/orders-rejects.json.rejects.json" \
    CL-400002:TOTAL_MISMATCH CL-400003:NO_LINES CL-400004:BAD_QUANTITY
check "spool: skip archives the file instead of leaving it in error/" '[ ! -e "$S/error/orders-rejects.json" ] && [ -n "$b" ] && [ -f "$(archive_of s4b "$b")" ]'
if [ -n "$b" ]; then
    unpack s4b "$b" "$WORK/x4b"
    pycheck "spool: skip manifest counts 4 in, 1 published, 3 rejected" counts "$WORK/x4b" 4 1 3 0
fi

mk s4c
S=$WORK/s4c
drop "$RJ" s4c orders-rejects.json
SAGEBRIDGE_SPOOL_ON_RECORD_ERROR=reject_file once s4c
expect_rc "spool: bad records with reject_file exit 65" 65
expect "spool: reject_file sends the whole file to error/ unchanged" cmp -s "$S/error/orders-rejects.json" "$RJ"
pycheck "spool: reject_file writes error/NAME.error.json" error_json "$S/error/orders-rejects.json.error.json" "$RJ" -
expect "spool: reject_file publishes nothing" empty "$S/out/sage"
check "spool: reject_file leaves in/clarity and work/ empty" 'empty "$S/in/clarity" && empty "$S/work"'
cp "$DATA/rejects-fixed.json" "$S/error/orders-rejects.json"
touch -d '10 minutes ago' "$S/error/orders-rejects.json"
run -c "$(cfg s4c)" requeue orders-rejects.json
expect_rc "spool: requeue exits 0" 0
expect "spool: requeue moves the file back to in/clarity" [ -f "$S/in/clarity/orders-rejects.json" -a ! -e "$S/error/orders-rejects.json" ]
SAGEBRIDGE_SPOOL_ON_RECORD_ERROR=reject_file once s4c
expect_rc "spool: the requeued, fixed file is processed cleanly" 0
b=$(batch_of s4c "$DATA/rejects-fixed.json")
check "spool: the requeued file's order is published (reject_file consumed no key)" '[ -n "$b" ] && grep -q ",CL-400001," "$S/out/sage/SO_${b}_StgSalesOrder.csv"'
check "spool: after requeue in/clarity, work/ and error/ hold no input" 'empty "$S/in/clarity" && empty "$S/work" && [ ! -e "$S/error/orders-rejects.json" ]'
run -c "$(cfg s4c)" requeue no-such-file.json
expect_rc "spool: requeue of a missing name exits 66" 66
expect_err "spool: requeue of a missing name names it" "no-such-file\.json"

# ================================================================ 5. arrival
mk s5
S=$WORK/s5
TEMPS=(x.json.filepart x.json.part x.tmp .hidden.json '~$x.json' .in.x.json.)
for n in "${TEMPS[@]}"; do drop "$EX/orders-2026-11-01.json" s5 "$n"; done
cp "$EX/orders-2026-11-02.ndjson" "$WORK/link-target.ndjson"
ln -s "$WORK/link-target.ndjson" "$S/in/clarity/link.ndjson"
once s5
expect_rc "spool: temp names and a symlink: run --once exits 0" 0
ok=1
for n in "${TEMPS[@]}"; do cmp -s "$S/in/clarity/$n" "$EX/orders-2026-11-01.json" || { ok=0; echo "temp name taken: $n"; }; done
expect "spool: temp names are never touched" [ $ok = 1 ]
expect "spool: a symlink stays in in/clarity" [ -L "$S/in/clarity/link.ndjson" ]
expect "spool: a symlink's target is untouched" cmp -s "$WORK/link-target.ndjson" "$EX/orders-2026-11-02.ndjson"
check "spool: temp names and symlinks publish nothing" 'empty "$S/out/sage" && empty "$S/error" && empty "$S/work"'

mk s5b
S=$WORK/s5b
cp "$EX/orders-2026-11-01.json" "$S/in/clarity/fresh.json"  # mtime: now
drop "$EX/orders-2026-11-02.ndjson" s5b old.ndjson
SAGEBRIDGE_SPOOL_SETTLE_MS=60000 timeout -k 2 40 "$SB" -c "$(cfg s5b)" run --once >/dev/null 2>"$WORK/s5b.log" &
p=$!
BGPIDS="$BGPIDS $p"
until_true 30 has_done s5b "$EX/orders-2026-11-02.ndjson"
expect "spool: a settled file is taken at once whatever settle_ms" has_done s5b "$EX/orders-2026-11-02.ndjson"
sleep 1
check "spool: a file younger than settle_ms is not taken" '[ -f "$S/in/clarity/fresh.json" ] && ! has_done s5b "$EX/orders-2026-11-01.json"'
stop_all

mk s5c
S=$WORK/s5c
head -c 1800 "$EX/orders-2026-11-01.json" >"$WORK/trunc.json"
cp "$WORK/trunc.json" "$S/in/clarity/trunc.json"
SAGEBRIDGE_SPOOL_SETTLE_MS=0 once s5c
check "spool: a truncated JSON file with a fresh mtime waits in in/clarity" '[ -f "$S/in/clarity/trunc.json" ] && empty "$S/error" && empty "$S/out/sage"'
touch -d '30 seconds ago' "$S/in/clarity/trunc.json"
SAGEBRIDGE_SPOOL_INCOMPLETE_TIMEOUT_S=60 once s5c
check "spool: a truncated file younger than incomplete_timeout_s still waits" '[ -f "$S/in/clarity/trunc.json" ] && empty "$S/error"'
touch -d '1 hour ago' "$S/in/clarity/trunc.json"
SAGEBRIDGE_SPOOL_INCOMPLETE_TIMEOUT_S=60 once s5c
expect_rc "spool: a truncated file past incomplete_timeout_s exits 65" 65
expect "spool: a truncated file past incomplete_timeout_s goes to error/ unchanged" cmp -s "$S/error/trunc.json" "$WORK/trunc.json"
pycheck "spool: its error.json says INCOMPLETE" error_json "$S/error/trunc.json.error.json" "$WORK/trunc.json" INCOMPLETE
check "spool: a truncated file publishes nothing" 'empty "$S/out/sage" && empty "$S/in/clarity" && empty "$S/work"'
drop "$EX/orders-2026-11-01.json" s5c full.json
once s5c
b=$(batch_of s5c "$EX/orders-2026-11-01.json")
check "spool: the complete file after a truncated one publishes all its orders" '[ "$rc" = 0 -a -n "$b" ] && [ "$(lines_of "$S/out/sage/SO_${b}_StgSalesOrder.csv")" = 4 ]'

mk s5d
S=$WORK/s5d
drop "$EX/orders-2026-11-01.json" s5d dm.json
SAGEBRIDGE_SPOOL_DONE_MARKER=yes once s5d
check "spool: done_marker=yes: a file without NAME.done waits" '[ -f "$S/in/clarity/dm.json" ] && empty "$S/out/sage"'
touch "$S/in/clarity/dm.json.done"
SAGEBRIDGE_SPOOL_DONE_MARKER=yes once s5d
expect_rc "spool: done_marker=yes: run with the marker exits 0" 0
check "spool: done_marker=yes: with NAME.done the file is taken" '[ ! -e "$S/in/clarity/dm.json" ] && has_done s5d "$EX/orders-2026-11-01.json"'

# =========================================================== 6. hold/release
mk s6
S=$WORK/s6
drop "$EX/orders-2026-11-01.json" s6 h.json
run -c "$(cfg s6)" hold h.json
expect_rc "spool: hold exits 0" 0
check "spool: hold moves in/clarity/NAME to hold/" '[ ! -e "$S/in/clarity/h.json" ] && cmp -s "$S/hold/h.json" "$EX/orders-2026-11-01.json"'
once s6
check "spool: run does not take a held file" '[ -f "$S/hold/h.json" ] && empty "$S/out/sage"'
run -c "$(cfg s6)" release h.json
expect_rc "spool: release exits 0" 0
expect "spool: release moves it back to in/clarity" [ -f "$S/in/clarity/h.json" -a ! -e "$S/hold/h.json" ]
once s6
check "spool: run takes a released file" '[ "$rc" = 0 ] && has_done s6 "$EX/orders-2026-11-01.json" && empty "$S/in/clarity"'
run -c "$(cfg s6)" hold no-such.json
expect_rc "spool: hold of an unknown name exits 66" 66
run -c "$(cfg s6)" release no-such.json
expect_rc "spool: release of an unknown name exits 66" 66
run -c "$(cfg s6)" hold a/b.json
expect_rc "spool: hold of a name with a slash exits 64" 64
run -c "$(cfg s6)" release ../h.json
expect_rc "spool: release of a name with a slash exits 64" 64
run -c "$(cfg s6)" requeue a/b.json
expect_rc "spool: requeue of a name with a slash exits 64" 64
run -c "$(cfg s6)" hold ..
expect_rc "spool: hold .. exits 64" 64
drop "$EX/orders-2026-11-02.ndjson" s6 clash.json
echo 'held version' >"$S/hold/clash.json"
run -c "$(cfg s6)" release clash.json
check "spool: release never overwrites a file in in/clarity" '[ "$rc" != 0 ] && cmp -s "$S/in/clarity/clash.json" "$EX/orders-2026-11-02.ndjson" && grep -q "held version" "$S/hold/clash.json"'
run -c "$(cfg s6)" hold clash.json
check "spool: hold never overwrites a file in hold/" '[ "$rc" != 0 ] && cmp -s "$S/in/clarity/clash.json" "$EX/orders-2026-11-02.ndjson" && grep -q "held version" "$S/hold/clash.json"'

# ============================================================ 7. watch mode
# inotify, settle_ms = 60000 and rescan_s = 1 in the config file itself (so
# that a broken file on SIGHUP is not masked by the environment)
mk s7
S=$WORK/s7
sed -i 's/^settle_ms = .*/settle_ms = 60000/; s/^rescan_s = .*/rescan_s = 1/' "$(cfg s7)"
"$SB" -c "$(cfg s7)" run >/dev/null 2>"$WORK/s7.log" &
WPID=$!
BGPIDS="$BGPIDS $WPID"
until_true 50 grep -qs 'watching' "$WORK/s7.log"
expect "spool: run (watching) starts" grep -q 'watching' "$WORK/s7.log"
cp "$EX/orders-2026-11-01.json" "$S/in/clarity/up.json.filepart"
cp "$GOLD/orders-decimals/input/orders-decimals.json" "$S/in/clarity/copied.json"  # fresh, not renamed
sleep 0.5
check "spool: watch: an upload in progress (.filepart) is not taken" '[ -f "$S/in/clarity/up.json.filepart" ] && empty "$S/out/sage"'
mv "$S/in/clarity/up.json.filepart" "$S/in/clarity/up.json"
until_true 50 has_done s7 "$EX/orders-2026-11-01.json"
expect "spool: watch: a file renamed into in/clarity is taken within 5 s" has_done s7 "$EX/orders-2026-11-01.json"
cp "$EX/orders-2026-11-02.ndjson" "$S/moved.ndjson"
mv "$S/moved.ndjson" "$S/in/clarity/moved.ndjson"
until_true 50 has_done s7 "$EX/orders-2026-11-02.ndjson"
expect "spool: watch: a file mv'ed in from outside is taken within 5 s" has_done s7 "$EX/orders-2026-11-02.ndjson"
cp "$EX/export-2026-11-03.json" "$S/linked.json"
ln "$S/linked.json" "$S/in/clarity/linked.json"
until_true 50 has_done s7 "$EX/export-2026-11-03.json"
expect "spool: watch: a hard link is taken within 5 s" has_done s7 "$EX/export-2026-11-03.json"
check "spool: watch: a copied file younger than settle_ms is not taken" '[ -f "$S/in/clarity/copied.json" ] && ! has_done s7 "$GOLD/orders-decimals/input/orders-decimals.json"'
printf '[spool]\nsettle_ms = abc\n' >"$(cfg s7)"
kill -HUP "$WPID"
until_true 30 grep -q 'reload-refused' "$WORK/s7.log"
expect "spool: watch: SIGHUP with a broken config logs reload-refused" grep -q 'reload-refused' "$WORK/s7.log"
expect "spool: watch: still running after a refused reload" kill -0 "$WPID"
cp "$GOLD/orders-trano/input/orders-trano.json" "$S/after.json"
mv "$S/after.json" "$S/in/clarity/after-hup.json"
until_true 50 has_done s7 "$GOLD/orders-trano/input/orders-trano.json"
expect "spool: watch: still processing new files after a refused reload" has_done s7 "$GOLD/orders-trano/input/orders-trano.json"
expect "spool: watch: the old settle_ms still holds after a refused reload" [ -f "$S/in/clarity/copied.json" ]
touch -d '10 minutes ago' "$S/in/clarity/copied.json"  # no inotify event of interest: only a rescan sees it
until_true 40 has_done s7 "$GOLD/orders-decimals/input/orders-decimals.json"
expect "spool: watch: the rescan every rescan_s takes a file that has settled" has_done s7 "$GOLD/orders-decimals/input/orders-decimals.json"
cp "$GOLD/orders-csv-quoting/input/orders-quoting.json" "$S/in/clarity/quoting.json"  # fresh
printf '[spool]\ndir = %s\nsettle_ms = 0\nrescan_s = 1\n' "$S" >"$(cfg s7)"
kill -HUP "$WPID"
until_true 30 grep -q 'event=reloaded' "$WORK/s7.log"
expect "spool: watch: SIGHUP with a good config logs reloaded" grep -q 'event=reloaded' "$WORK/s7.log"
until_true 40 has_done s7 "$GOLD/orders-csv-quoting/input/orders-quoting.json"
expect "spool: watch: the reloaded settle_ms = 0 takes a fresh file" has_done s7 "$GOLD/orders-csv-quoting/input/orders-quoting.json"
# archive/CHAIN follows the batches of a watching run scan by scan, not only at its exit
chain_names() { [ "$(awk '{print $2}' "$S/archive/CHAIN" 2>/dev/null)" = "$(batch_of s7 "$GOLD/orders-csv-quoting/input/orders-quoting.json")" ]; }
until_true 30 chain_names
expect "spool: watch: archive/CHAIN names the newest batch while the run goes on" chain_names
kill -TERM "$WPID"
until_true 50 eval '! kill -0 "$WPID" 2>/dev/null'
if kill -0 "$WPID" 2>/dev/null; then
    fail "spool: watch: SIGTERM exits 0 within 5 s" "still running after 5 s"
else
    wait "$WPID"
    wrc=$?
    if [ "$wrc" = 0 ]; then pass "spool: watch: SIGTERM exits 0 within 5 s"; else fail "spool: watch: SIGTERM exits 0 within 5 s" "exit $wrc"; fi
fi
expect "spool: watch: work/ is empty after SIGTERM" empty "$S/work"
stop_all

# poll mode, settle_ms = 0: a plain copy is taken
mk s7b
S=$WORK/s7b
SAGEBRIDGE_SPOOL_WATCH=poll SAGEBRIDGE_SPOOL_POLL_MS=200 SAGEBRIDGE_SPOOL_SETTLE_MS=0 \
    "$SB" -c "$(cfg s7b)" run >/dev/null 2>"$WORK/s7b.log" &
WPID=$!
BGPIDS="$BGPIDS $WPID"
until_true 50 grep -qs 'watching' "$WORK/s7b.log"
expect "spool: watch=poll: runs in poll mode" grep -q 'mode=poll' "$WORK/s7b.log"
cp "$EX/orders-2026-11-01.json" "$S/in/clarity/polled.json"
until_true 50 has_done s7b "$EX/orders-2026-11-01.json"
expect "spool: watch=poll: a copied file is taken within 5 s" has_done s7b "$EX/orders-2026-11-01.json"
kill -TERM "$WPID"
until_true 50 eval '! kill -0 "$WPID" 2>/dev/null'
if kill -0 "$WPID" 2>/dev/null; then
    fail "spool: watch=poll: SIGTERM exits 0 within 5 s" "still running after 5 s"
else
    wait "$WPID"
    wrc=$?
    if [ "$wrc" = 0 ]; then pass "spool: watch=poll: SIGTERM exits 0 within 5 s"; else fail "spool: watch=poll: SIGTERM exits 0 within 5 s" "exit $wrc"; fi
fi
stop_all

# a file written in pieces, each piece ending on a whole NDJSON line (so the
# content looks complete every time): settle_ms alone must keep it waiting
mk s7c
S=$WORK/s7c
python3 "$TOP/bench/gen-orders.py" 0.02 "$WORK/grow.ndjson" --shape ndjson >/dev/null 2>&1
SAGEBRIDGE_SPOOL_SETTLE_MS=1500 "$SB" -c "$(cfg s7c)" run >/dev/null 2>"$WORK/s7c.log" &
WPID=$!
BGPIDS="$BGPIDS $WPID"
until_true 50 grep -qs 'watching' "$WORK/s7c.log"
nl=$(lines_of "$WORK/grow.ndjson")
q=$(((nl + 3) / 4))
for i in 0 1 2 3; do
    sed -n "$((i * q + 1)),$(((i + 1) * q))p" "$WORK/grow.ndjson" >>"$S/in/clarity/grow.ndjson"
    sleep 0.4
done
until_true 60 has_done s7c "$WORK/grow.ndjson"
b=$(batch_of s7c "$WORK/grow.ndjson")
check "spool: watch: a file written in pieces is taken once, whole" '[ -n "$b" ] && [ "$(ls "$S/out/sage" | grep -c "[.]done")" = 1 ] && [ "$(($(lines_of "$S/out/sage/SO_${b}_StgSalesOrder.csv") - 1))" = "$nl" ] && empty "$S/in/clarity" && empty "$S/error"'
stop_all

# --- archive_level: igzip's 0..3; anything else is refused with the range, 0 still archives
mk al
sed -i 's/^archive_level = .*/archive_level = 4/' "$(cfg al)"
drop "$EX/orders-2026-11-01.json" al orders-2026-11-01.json
once al
expect_rc "spool: archive_level = 4 is refused (78)" 78
expect_err "spool: the refusal names archive_level and its range" 'archive_level = 4: expected a whole number from 0 to 3'
expect "spool: a refused configuration leaves the input where it was" [ -f "$WORK/al/in/clarity/orders-2026-11-01.json" ]
sed -i 's/^archive_level = .*/archive_level = 0/' "$(cfg al)"
once al
expect_rc "spool: archive_level = 0 runs (0)" 0
"$SB" -c "$(cfg al)" archive verify >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_rc "spool: an archive written at level 0 verifies" 0
expect "spool: and gzip reads it as the same tar stream" sh -c "gzip -t $WORK/al/archive/*/*/*/*.tar.gz && tar tzf $WORK/al/archive/*/*/*/*.tar.gz | grep -q '^input/orders-2026-11-01.json$'"

# --- TranNo values of earlier batches: inside their range the ledger is asked, outside it
# nothing is (hook_used's bounds); either way a value used before falls back to a W number
mk tn
python3 - "$WORK/tn1.ndjson" "$WORK/tn2.ndjson" <<'PY'
import importlib.util, json, os, random, sys
spec = importlib.util.spec_from_file_location("g", os.environ["TOP"] + "/bench/gen-orders.py")
g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)
rnd = random.Random(11)
def orders(ids):
    rows = []
    for i, oid in enumerate(ids):
        r = json.loads(g.order(i, rnd))
        r["orderId"] = oid
        rows.append(json.dumps(r))
    return "\n".join(rows) + "\n"
open(sys.argv[1], "w").write(orders(["CL-1000", "CL-1005"]))
open(sys.argv[2], "w").write(orders(["WEB/1003", "WEB/1005", "WEB/2000", "WEB/0999"]))
PY
drop "$WORK/tn1.ndjson" tn tn1.ndjson
once tn
expect_rc "spool: TranNo batch 1 published (0)" 0
drop "$WORK/tn2.ndjson" tn tn2.ndjson
once tn
expect_rc "spool: TranNo batch 2 published (0)" 0
b=$(batch_of tn "$WORK/tn2.ndjson")
check "spool: TranNo: inside the earlier range a free number is kept, a used one falls back to W, outside the range numbers are kept" '[ "$(cut -d, -f1 "$WORK/tn/out/sage/SO_${b}_StgSalesOrder.csv" | tail -n +2 | tr "\n" " ")" = "0000001003 W000000001 0000002000 0000000999 " ]'
