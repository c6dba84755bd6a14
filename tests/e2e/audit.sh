# audit.sh - the archive commands (list, show, extract, verify, prune, report) and replay,
# end to end on a real spool (SPEC §2, §7, §8; src/audit.c).
. "$TOP/tests/lib/testlib.sh"
EX=$TOP/examples
TOOL=$TOP/tests/data/audit/audit_tool.py
tool() { python3 "$TOOL" "$@"; }
export SAGEBRIDGE_SPOOL_SETTLE_MS=0
unset SAGEBRIDGE_PATHS_TEMPLATES
TODAY=$(date -u +%F)
TOMORROW=$(date -u -d tomorrow +%F)
F1=$EX/orders-2026-11-01.json   # USD and CAD, one order shipped to CA
F2=$EX/orders-2026-11-02.ndjson
F3=$EX/export-2026-11-03.json
N1=$(basename "$F1")
N2=$(basename "$F2")
N3=$(basename "$F3")

# expect_any NAME REGEX : stdout or stderr of the last run matches
expect_any() {
    if cat "$WORK/out" "$WORK/err" | grep -q -E -- "$2"; then pass "$1"; else
        fail "$1" "output lacks /$2/: $(cat "$WORK/out" "$WORK/err" | head -c 400)"; fi
}
# clone NAME : a copy of the pristine spool x/ at $WORK/NAME, its config pointing at it
clone() {
    rm -rf "$WORK/$1"
    cp -a "$WORK/pristine" "$WORK/$1"
    sed -i "s|^spool = .*|spool = $WORK/$1|" "$WORK/$1/sagebridge.conf"
}
# arch SPOOL BATCH : the batch's archive file (its path in archive/ as the ledger has it)
declare -A ARCH
arch() { echo "$WORK/$1/archive/${ARCH[$2]}"; }
# snap SPOOL : names and hashes of everything in out/sage
snap() { (cd "$WORK/$1/out/sage" && find . -type f -exec sha256sum {} + | sort); }
# rows SPOOL TABLE : data rows over all out/sage/*_TABLE.csv
rows() { cat "$WORK/$1"/out/sage/*_"$2".csv | grep -v -c '^TranNo,'; }
# json_get FILE EXPR : a python expression on the JSON document d
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }

# --- a spool with the three examples processed: three batches, one chain
"$SB" init "$WORK/x" >/dev/null 2>&1
cp -p "$F1" "$F2" "$F3" x/in/clarity/
run -c x/sagebridge.conf run --once
expect_rc "audit: run --once processes the examples" 0
C="-c $WORK/x/sagebridge.conf"
# chain order = ledger order (rowid); the newest is the chain head
mapfile -t ORDER < <(tool sql x/ledger.db "SELECT id FROM batches WHERE state='archived' ORDER BY rowid")
FIRST=${ORDER[0]}
MID=${ORDER[1]}
NEW=${ORDER[2]}
expect "audit: three archived batches" [ "${#ORDER[@]}" = 3 ]
expect "audit: the ledger's chain head is the newest batch's manifest" [ "$(tool sql x/ledger.db "SELECT v FROM meta WHERE k='chain_head'")" = "$(tool sql x/ledger.db "SELECT manifest_sha256 FROM batches WHERE id='$NEW'")" ]
while IFS='|' read -r id a; do ARCH[$id]=$a; done < <(tool sql x/ledger.db "SELECT id, archive FROM batches")
B1=$(tool sql x/ledger.db "SELECT id FROM batches WHERE input_name='$N1'")
cp -a x pristine

# --- 1. archive list
run $C archive list
expect_rc "audit: archive list exits 0" 0
cp out list.txt
run $C archive list --json
expect_rc "audit: archive list --json exits 0" 0
cp out list.json
expect "audit: archive list --json parses as a JSON array of 3 batches" [ "$(json_get list.json 'len(d)')" = 3 ]
msg=$(tool check-list-text list.txt list.json "$N1=$F1" "$N2=$F2" "$N3=$F3" 2>&1)
expect "audit: archive list has one line per batch with id, kind, input, counts and totals per currency${msg:+ ($msg)}" [ -z "$msg" ]
msg=$(tool check-list-json list.json "$N1=$F1" "$N2=$F2" "$N3=$F3" 2>&1)
expect "audit: archive list --json control_totals are decimal strings equal to the inputs' sums${msg:+ ($msg)}" [ -z "$msg" ]
run $C archive list --json --since "$TOMORROW"
expect "audit: list --since tomorrow lists nothing" [ "$rc" = 0 -a "$(json_get out 'len(d)')" = 0 ]
run $C archive list --since "$TOMORROW"
expect "audit: list --since tomorrow (text) has no batch line" [ "$rc" = 0 -a -z "$(grep -E -- '-orders-' out)" ]
run $C archive list --json --since "$TODAY" --until "$TODAY"
expect "audit: list --since/--until today lists the 3 batches" [ "$(json_get out 'len(d)')" = 3 ]
run $C archive list --json --until 2001-01-01
expect "audit: list --until long ago lists nothing" [ "$rc" = 0 -a "$(json_get out 'len(d)')" = 0 ]
run $C archive list --json --kind orders
expect "audit: list --kind orders lists the 3 batches" [ "$(json_get out 'len(d)')" = 3 ]
run $C archive list --json --kind items
expect "audit: list --kind items lists nothing" [ "$rc" = 0 -a "$(json_get out 'len(d)')" = 0 ]
run $C archive list --since 2026-13-45
expect_rc "audit: list --since a bad date exits 64" 64
run $C archive list --until yesterday
expect_rc "audit: list --until a bad date exits 64" 64

# --- 2. archive show
run $C archive show "$B1"
expect_rc "audit: archive show exits 0" 0
expect_out "audit: archive show names the input" "$N1"
expect_out "audit: archive show gives the USD total" "USD.*total 158\.88"
expect_out "audit: archive show gives the CAD total" "CAD.*total 87\.45"
run $C archive show "$B1" --json
cp out show.json
python3 -c 'import sys,tarfile; sys.stdout.buffer.write(tarfile.open(sys.argv[1]).extractfile("manifest.json").read())' "$(arch x "$B1")" >manifest.json
expect "audit: archive show --json is the manifest.json member byte for byte" cmp -s show.json manifest.json
expect "audit: the manifest names its batch and input" [ "$(json_get show.json 'd["batch"]+" "+d["input"]["name"]')" = "$B1 $N1" ]
run $C archive show 20260101T000000Z-orders-00000000
expect_rc "audit: archive show of an unknown batch exits 66" 66

# --- 3. archive extract
mkdir -p "$WORK/ext"
run $C archive extract "$B1" "$WORK/ext/d"
expect_rc "audit: archive extract exits 0" 0
expect "audit: extract gives input/NAME byte-identical to the file dropped" cmp -s "$WORK/ext/d/input/$N1" "$F1"
bad=""
n=0
for f in "$WORK"/x/out/sage/SO_"$B1"[._]*; do
    n=$((n + 1))
    cmp -s "$f" "$WORK/ext/d/output/$(basename "$f")" || bad="$bad $(basename "$f")"
done
expect "audit: extract gives every output byte-identical to out/sage${bad:+ (differ:$bad)}" [ -z "$bad" -a "$n" -ge 3 ]
expect "audit: extract gives exactly the published outputs" [ "$(ls "$WORK/ext/d/output" | wc -l)" = "$n" ]
expect "audit: extract gives manifest.json and report.txt" [ -s "$WORK/ext/d/manifest.json" -a -s "$WORK/ext/d/report.txt" ]
for k in dotdot abs symlink; do
    clone "m$k"
    mkdir -p "$WORK/mal-$k/outside"
    tool evil "$(arch "m$k" "$B1")" "$k" "$WORK/mal-$k/outside" >/dev/null
    run -c "$WORK/m$k/sagebridge.conf" archive extract "$B1" "$WORK/mal-$k/d"
    expect "audit: extract refuses an archive with a $k member (non-zero exit)" [ "$rc" != 0 ]
    expect "audit: extract of the $k archive writes nothing outside DIR" [ -z "$(find "$WORK" -name '*evil' ! -path '*/archive/*')" -a -z "$(ls -A "$WORK/mal-$k/outside")" ]
    expect "audit: extract of the $k archive writes nothing in DIR" [ -z "$(ls -A "$WORK/mal-$k/d" 2>/dev/null)" ]
done

# --- 4. archive verify
run $C archive verify
expect_rc "audit: verify passes on a fresh spool" 0
run $C archive verify "$MID"
expect_rc "audit: verify BATCH on one batch exits 0" 0
run $C archive verify 20260101T000000Z-orders-00000000
expect_rc "audit: verify of an unknown batch exits 66" 66

# (a) one byte of an output CSV changed, the tar.gz rebuilt (valid gzip)
clone va
member=$(tool flip-member "$(arch va "$MID")" _StgSalesOrder.csv)
gzip -t "$(arch va "$MID")"
expect "audit: (a) the repacked archive is valid gzip" [ $? = 0 ]
run -c "$WORK/va/sagebridge.conf" archive verify
expect_rc "audit: (a) verify: a changed byte in a member exits 65" 65
expect_any "audit: (a) verify names the batch and the member" "$MID.*${member//./\\.}|${member//./\\.}.*$MID"
run -c "$WORK/va/sagebridge.conf" archive verify "$MID"
expect_rc "audit: (a) verify BATCH: a changed byte in that batch exits 65" 65
# (b) one byte of the compressed file changed
clone vb
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$(arch vb "$MID")"
run -c "$WORK/vb/sagebridge.conf" archive verify
expect_rc "audit: (b) verify: a flipped byte in the compressed file exits 65" 65
expect_any "audit: (b) verify names the batch" "$MID"
# (c) the middle archive deleted
clone vc
rm -f "$(arch vc "$MID")"
run -c "$WORK/vc/sagebridge.conf" archive verify
expect_rc "audit: (c) verify: the middle archive deleted exits 65" 65
expect_any "audit: (c) verify names the missing batch" "$MID"
# (d) the newest archive deleted
clone vd
rm -f "$(arch vd "$NEW")"
run -c "$WORK/vd/sagebridge.conf" archive verify
expect_rc "audit: (d) verify: the newest archive deleted exits 65" 65
expect_any "audit: (d) verify names the newest batch" "$NEW"
# (e) the newest archive and its ledger row deleted (CHAIN and the ledger head still name it)
clone ve
NEWSHA=$(tool sql ve/ledger.db "SELECT manifest_sha256 FROM batches WHERE id='$NEW'")
rm -f "$(arch ve "$NEW")"
tool sql ve/ledger.db "DELETE FROM batches WHERE id='$NEW'"
run -c "$WORK/ve/sagebridge.conf" archive verify
expect_rc "audit: (e) verify: the newest archive and its ledger row deleted exits 65" 65
expect_any "audit: (e) verify names what is gone" "$NEW|$NEWSHA"
# (f) manifest.json edited inside the archive
clone vf
tool edit-manifest "$(arch vf "$MID")"
run -c "$WORK/vf/sagebridge.conf" archive verify
expect_rc "audit: (f) verify: an edited manifest exits 65" 65
expect_any "audit: (f) verify says the manifest changed" "manifest.*changed"
expect_any "audit: (f) verify names the batch" "$MID"
# (g) a ledger row 'archived' with no archive file and a manifest no chain names
clone vg
ghost=$(tool ghost-row vg/ledger.db)
run -c "$WORK/vg/sagebridge.conf" archive verify
expect_rc "audit: (g) verify: an archived ledger row outside the chain exits 65" 65
expect_any "audit: (g) verify names that row's batch" "$ghost"
# (h) a stray .tar.gz beside the archives (a copy under a batch-like name), and one at the top
clone vh
day=$(dirname "$(arch vh "$MID")")
cp -p "$(arch vh "$MID")" "$day/${MID%-*}-deadbeef.tar.gz"
run -c "$WORK/vh/sagebridge.conf" archive verify
expect_rc "audit: (h) verify: a stray .tar.gz in the day folder exits 65" 65
expect_any "audit: (h) verify names the stray file" "${MID%-*}-deadbeef\.tar\.gz"
clone vh2
cp -p "$(arch vh2 "$MID")" "$WORK/vh2/archive/stray.tar.gz"
run -c "$WORK/vh2/sagebridge.conf" archive verify
expect_rc "audit: (h) verify: a stray .tar.gz at the top of archive/ exits 65" 65

# --- 5. archive prune
clone p
CP="-c $WORK/p/sagebridge.conf"
before=$(snap p)
run $CP archive prune --before 2026-99-01
expect_rc "audit: prune --before a bad date exits 64" 64
run $CP archive prune --before "$TOMORROW"
expect_rc "audit: prune --before tomorrow exits 0" 0
gone=1
for b in "${ORDER[@]}"; do [ -e "$(arch p "$b")" ] && gone=0; done
expect "audit: prune removes the archives from disk" [ "$gone" = 1 ]
run $CP archive list --json
pr=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(sorted(e["id"] for e in d if e["state"]=="pruned")))' out 2>/dev/null)
expect "audit: list shows the three batches as pruned" [ "$pr" = "$(printf '%s\n' "${ORDER[@]}" | sort | tr '\n' ' ' | sed 's/ $//')" ]
run $CP archive list
expect "audit: list (text) marks each pruned batch" [ "$(grep -c -E -- "-orders-.* pruned " out)" = 3 ]
run $CP archive verify
expect_rc "audit: verify after a prune exits 0" 0
expect_out "audit: verify after a prune counts the pruned batches (4 in the chain, 3 of them pruned)" "\b4 batches|\b3 (batches )?pruned"
run $CP archive extract "$MID" "$WORK/pext"
expect "audit: extract of a pruned batch fails and writes nothing" [ "$rc" != 0 -a -z "$(ls -A "$WORK/pext" 2>/dev/null)" ]
cp -p "$F1" p/in/clarity/
run $CP run --once
expect "audit: the same file dropped after the prune publishes nothing again" [ "$(snap p)" = "$before" ]
run $CP archive list --json
dup=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(str(e["duplicate_of"])+"/"+str(e["published"]) for e in d if e["id"] not in sys.argv[2:] and e["kind"] != "prune"))' out "${ORDER[@]}" 2>/dev/null)
expect "audit: the file dropped after the prune is recognised as a duplicate of $B1 ($dup)" [ "$dup" = "$B1/0" ]
expect "audit: the file dropped after the prune is not left waiting" [ -z "$(find p/in/clarity p/work -type f)" ]
run $CP archive verify
expect_rc "audit: verify after prune and a duplicate exits 0" 0

# --- 6. archive report
run $C archive report --date "$TODAY"
expect_rc "audit: report --date today exits 0" 0
USD=$(tool sums "$F1" "$F2" "$F3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["USD"]["total"])')
CAD=$(tool sums "$F1" "$F2" "$F3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["CAD"]["total"])')
expect_out "audit: report (txt) names the date" "$TODAY"
expect_out "audit: report (txt) gives the USD total $USD" "total +${USD//./\\.}"
expect_out "audit: report (txt) gives the CAD total $CAD" "total +${CAD//./\\.}"
run $C archive report --date "$TODAY" --format csv
expect_rc "audit: report --format csv exits 0" 0
cp out report.csv
msg=$(tool check-report-csv report.csv "$TODAY" "$F1" "$F2" "$F3" 2>&1)
expect "audit: report csv: header date,currency,measure,value and totals equal the inputs' sums${msg:+ ($msg)}" [ -z "$msg" ]
run $C archive report --date "$TODAY" --format html
expect_rc "audit: report --format html exits 0" 0
expect "audit: report html has no <script" [ -z "$(grep -i '<script' out)" ]
expect "audit: report html loads nothing over http(s)" [ -z "$(grep -i -E '(src|href)[[:space:]]*=[[:space:]]*["'\'']?https?:' out)" ]
expect "audit: report html has its own <style>" grep -q -i '<style' out
expect "audit: report html is a whole page" grep -q -i '</html>' out
expect_out "audit: report html gives the USD total $USD" "${USD//./\\.}"
run $C archive report --date 2001-01-01
expect "audit: report for a day without batches exits 0" [ "$rc" = 0 ]
expect_out "audit: report for a day without batches says so" "[Nn]othing|[Nn]o batch"
expect "audit: report for a day without batches shows no total" [ -z "$(grep -F -e "$USD" -e "$CAD" out)" ]
run $C archive report --date "$TODAY" --format pdf
expect_rc "audit: report --format pdf exits 64" 64
run $C archive report --date 26/11/2026
expect_rc "audit: report --date a bad date exits 64" 64

# --- 7. replay
clone r
CR="-c $WORK/r/sagebridge.conf"
RB=$(tool sql r/ledger.db "SELECT id FROM batches WHERE input_name='$N1'")
before=$(snap r)
nb=$(tool sql r/ledger.db "SELECT count(*) FROM batches")
run $CR replay "$RB" --dry-run
expect_rc "audit: replay --dry-run with today's templates exits 0" 0
expect_out "audit: replay --dry-run with unchanged templates says no differences" "no differences"
expect "audit: replay --dry-run publishes nothing" [ "$(snap r)" = "$before" ]
expect "audit: replay --dry-run adds no batch" [ "$(tool sql r/ledger.db "SELECT count(*) FROM batches")" = "$nb" ]
cp -r "$TOP/templates" tpl
sed -i 's/^CA,WEST\r\{0,1\}$/CA,EAST/' tpl/lookups/warehouses.csv
expect "audit: the template copy maps CA to EAST" grep -q '^CA,EAST' tpl/lookups/warehouses.csv
# the California order: its TranNo and line count
read -r CATRAN CALINES < <(python3 -c '
import json,re,sys
for o in json.load(open(sys.argv[1])):
    if o["shippingAddress"]["state"] == "CA":
        print("".join(re.findall("[0-9]", o["orderId"])).zfill(10), len(o["lineItems"]))' "$F1")
SAGEBRIDGE_PATHS_TEMPLATES=$WORK/tpl run $CR replay "$RB" --dry-run
expect "audit: replay --dry-run with changed templates succeeds" [ "$rc" = 0 ]
cp out dry.txt
fields=$(grep -o -E 'row [0-9]+ \([^)]*\) [A-Za-z0-9_]+: ' dry.txt | sed -E 's/.*\) ([^:]+): /\1/' | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')
expect "audit: replay --dry-run names exactly DfltWarehouseID once and WarehouseID per line ($fields)" [ "$fields" = "DfltWarehouseID=1 WarehouseID=$CALINES " ]
expect "audit: replay --dry-run: every change is the California order $CATRAN" [ -z "$(grep -E 'row [0-9]+ \(' dry.txt | grep -v -F "($CATRAN)")" ]
expect "audit: replay --dry-run: every change is WEST -> EAST" [ -z "$(grep -E 'row [0-9]+ \(' dry.txt | grep -v -F '"WEST" -> "EAST"')" ]
expect "audit: replay --dry-run: no row only on one side" [ -z "$(grep 'only in the' dry.txt)" ]
expect "audit: replay --dry-run with changed templates publishes nothing" [ "$(snap r)" = "$before" ]
expect "audit: replay --dry-run with changed templates adds no batch" [ "$(tool sql r/ledger.db "SELECT count(*) FROM batches")" = "$nb" ]

so_rows=$(rows r StgSalesOrder)
line_rows=$(rows r StgSOLine)
mapfile -t known < <(tool sql r/ledger.db "SELECT id FROM batches")
run $CR replay "$RB"
expect "audit: replay exits 0 or 65 (duplicates left out)" [ "$rc" = 0 -o "$rc" = 65 ]
cp err replay.err
new=$(tool sql r/ledger.db "SELECT id FROM batches ORDER BY rowid DESC LIMIT 1")
expect "audit: replay makes a new batch" [ -n "$new" -a "$(tool sql r/ledger.db "SELECT count(*) FROM batches")" = $((nb + 1)) ]
run $CR archive show "$new" --json
cp out replay1.json
expect "audit: the replay's manifest has replay_of = $RB" [ "$(json_get replay1.json 'd["replay_of"]')" = "$RB" ]
expect "audit: the replay's manifest has force_republish false" [ "$(json_get replay1.json 'd["force_republish"]')" = False ]
expect "audit: the replay publishes none of the 3 orders and counts them duplicate" [ "$(json_get replay1.json '(d["records"]["published"], d["records"]["duplicate"])')" = "(0, 3)" ]
expect "audit: replay adds no order row to out/sage" [ "$(rows r StgSalesOrder)" = "$so_rows" -a "$(rows r StgSOLine)" = "$line_rows" ]
dp=$(grep -c -E 'key (CL-100234|WEB-2026-000017|CL-100236)\).*DUPLICATE_PUBLISHED' replay.err)
expect "audit: replay reports each order as DUPLICATE_PUBLISHED ($dp of 3)" [ "$dp" = 3 ]
run $CR archive extract "$new" "$WORK/rext"
nd=$(cat "$WORK"/rext/output/*.rejects.json 2>/dev/null | grep -o '"code":"DUPLICATE_PUBLISHED"' | wc -l)
expect "audit: the replay's archive lists the 3 DUPLICATE_PUBLISHED records" [ "$nd" = 3 ]

run $CR replay "$RB" --force-republish
expect_rc "audit: replay --force-republish exits 0" 0
new2=$(tool sql r/ledger.db "SELECT id FROM batches ORDER BY rowid DESC LIMIT 1")
run $CR archive show "$new2" --json
cp out replay2.json
expect "audit: replay --force-republish makes another batch" [ -n "$new2" -a "$new2" != "$new" -a "$new2" != "$RB" ]
expect "audit: the forced replay's manifest has force_republish true and replay_of $RB" [ "$(json_get replay2.json '(d["force_republish"], d["replay_of"])')" = "(True, '$RB')" ]
expect "audit: replay --force-republish publishes the 3 orders again" [ "$(rows r StgSalesOrder)" = $((so_rows + 3)) -a "$(rows r StgSOLine)" = $((line_rows + 6)) ]
expect "audit: the forced replay's outputs hold the California order $CATRAN" grep -q "^$CATRAN," "r/out/sage/SO_${new2}_StgSalesOrder.csv"
(cd r/out/sage && sha256sum --quiet -c "SO_$new2.done") >/dev/null 2>&1
expect "audit: the forced replay's .done verifies" [ $? = 0 ]
run $CR archive verify
expect_rc "audit: verify passes after the replays" 0
