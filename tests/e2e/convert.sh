# convert.sh - `sagebridge convert` end to end on real files (SPEC §4, §5, §5.1).
. "$TOP/tests/lib/testlib.sh"
EX=$TOP/examples

# --- a good file: every output, .done verifies, XML valid, deterministic
mkdir -p o1 o2
run convert "$EX/orders-2026-11-01.json" -o o1
expect_rc "convert: examples convert cleanly" 0
expect "convert: all four files written" [ -s o1/SO_orders-2026-11-01_StgSalesOrder.csv -a -s o1/SO_orders-2026-11-01_StgSOLine.csv -a -s o1/SO_orders-2026-11-01.xml -a -s o1/SO_orders-2026-11-01.done ]
(cd o1 && sha256sum --quiet -c SO_orders-2026-11-01.done) >/dev/null 2>&1
expect "convert: sha256sum -c verifies the .done marker" [ $? = 0 ]
expect "convert: .done lists the three files" [ "$(lines_of o1/SO_orders-2026-11-01.done)" = 3 ]
xmllint --noout --schema "$TOP/xsd/sage500-salesorder.xsd" o1/SO_orders-2026-11-01.xml 2>/dev/null
expect "convert: XML valid against xsd/sage500-salesorder.xsd (xmllint)" [ $? = 0 ]
run validate o1/SO_orders-2026-11-01.xml
expect_rc "convert: sagebridge validate accepts the XML" 0
expect "convert: files are 0640" [ "$(stat -c %a o1/SO_orders-2026-11-01.xml)" = 640 ]
expect "convert: no temporary file left" [ -z "$(find o1 -name '.*' -type f)" ]
SOURCE_DATE_EPOCH=1 run convert "$EX/orders-2026-11-01.json" -o o2
expect "convert: same input gives byte-identical outputs" diff -r o1 o2
expect "convert: CSV rows end with CRLF" grep -q $'\r$' o1/SO_orders-2026-11-01_StgSOLine.csv
expect "convert: CSV has no BOM" [ "$(head -c 3 o1/SO_orders-2026-11-01_StgSalesOrder.csv)" = "Tra" ]

# --- formats and several files at once
mkdir -p o3
run convert --format csv "$EX/orders-2026-11-02.ndjson" "$EX/export-2026-11-03.json" -o o3
expect_rc "convert: two files, csv only" 0
expect "convert: csv only writes no XML" [ ! -e o3/SO_orders-2026-11-02.xml -a -e o3/SO_export-2026-11-03_StgSOLine.csv ]
mkdir -p o4
run convert --format xml "$EX/orders-2026-11-02.ndjson" -o o4
expect "convert: xml only writes no CSV" [ -e o4/SO_orders-2026-11-02.xml -a ! -e o4/SO_orders-2026-11-02_StgSOLine.csv ]

# --- a file that is not JSON to its end: nothing at all is written
mkdir -p bad
head -c 2000 "$EX/orders-2026-11-01.json" >trunc.json
run convert trunc.json -o bad
expect_rc "convert: truncated JSON exits 65" 65
expect_err "convert: truncated JSON says so" "truncated"
expect "convert: truncated JSON leaves no output" [ -z "$(ls -A bad)" ]
python3 - "$EX/orders-2026-11-01.json" <<'PY' >syntax.json
import sys
s = open(sys.argv[1], encoding="utf-8").read()
i = s.index('"orderId"', 1500)
sys.stdout.write(s[:i] + "}}}" + s[i:])
PY
run convert syntax.json -o bad
expect_rc "convert: syntax error exits 65" 65
expect_err "convert: syntax error names the byte offset" "byte [0-9]+"
expect "convert: syntax error leaves no output" [ -z "$(ls -A bad)" ]
printf '[{"orderId":"CL-1","name":"caf\xe9"}]' >latin1.json
run convert latin1.json -o bad
expect_rc "convert: invalid UTF-8 exits 65" 65
expect "convert: invalid UTF-8 leaves no output" [ -z "$(ls -A bad)" ]
python3 -c 'print("[" + "{\"a\":" * 70 + "1" + "}" * 70 + "]")' >deep.json
run convert deep.json -o bad
expect_rc "convert: nesting too deep exits 65" 65
expect_err "convert: nesting too deep says so" "nesting deeper"
: >empty.json
run convert empty.json -o bad
expect_rc "convert: empty file exits 65" 65
echo '42' >scalar.json
run convert scalar.json -o bad
expect_rc "convert: a bare number exits 65" 65
echo '[{"sku":"A1","name":"x"}]' >products-1.json
run convert products-1.json -o bad
expect_rc "convert: records no template knows exit 65" 65
expect_err "convert: unknown records suggest --template" "template"

# --- record errors: good records written, bad ones listed
mkdir -p rj
run convert "$TOP/tests/golden/orders-rejects/input/orders-rejects.json" -o rj
expect_rc "convert: rejected records exit 65" 65
expect "convert: good records still written" [ "$(grep -c CL-400001 rj/SO_orders-rejects_StgSalesOrder.csv)" = 1 ]
expect "convert: rejected records not written" [ "$(grep -c -E 'CL-40000[234]' rj/SO_orders-rejects_StgSalesOrder.csv)" = 0 ]
expect "convert: no line without its header" [ "$(grep -c -E '^0000400001,' rj/SO_orders-rejects_StgSOLine.csv)" = "$(($(lines_of rj/SO_orders-rejects_StgSOLine.csv) - 1))" ]
expect_err "convert: stderr names record, line, key and code" "record 2 \(line 19, key CL-400002\) rejected: totalAmount: TOTAL_MISMATCH"
expect_err "convert: stderr shows computed and found totals" "computed [0-9.]+, found [0-9.]+"
expect_err "convert: stderr names the rejects file" "rj/orders-rejects.rejects.json"
python3 -c 'import json,sys; d=json.load(open("rj/orders-rejects.rejects.json")); sys.exit(0 if [r["code"] for r in d]==["TOTAL_MISMATCH","NO_LINES","BAD_QUANTITY"] else 1)'
expect "convert: rejects.json lists each rejected record" [ $? = 0 ]
# a clean second run of a fixed file removes the stale rejects file
cp "$EX/orders-2026-11-01.json" orders-rejects.json
run convert orders-rejects.json -o rj
expect "convert: a clean run removes an old rejects file" [ ! -e rj/orders-rejects.rejects.json ]

# --- duplicate orderId and a duplicate-by-digits TranNo
cat >dup.ndjson <<'J'
{"orderId":"CL-7","customerId":"C1","orderDate":"2026-11-01","totalAmount":10,"currency":"USD","shippingAmount":0,"taxAmount":0,"lineItems":[{"sku":"A","quantity":1,"unitPrice":10}]}
{"orderId":"CL-7","customerId":"C1","orderDate":"2026-11-01","totalAmount":10,"currency":"USD","shippingAmount":0,"taxAmount":0,"lineItems":[{"sku":"A","quantity":1,"unitPrice":10}]}
J
mkdir -p dp
run convert dup.ndjson -o dp --format csv
expect_rc "convert: duplicate orderId exits 65" 65
expect_err "convert: duplicate orderId is DUPLICATE_KEY on line 2" "record 2 \(line 2, key CL-7\) rejected: orderId: DUPLICATE_KEY"

# --- settings from the config file and from the environment
printf '[sage]\ndefault_cust_id = WEB-RETAIL\n' >sb.conf
mkdir -p st
run -c sb.conf convert dup.ndjson -o st --format csv
expect "convert: default_cust_id from sagebridge.conf" grep -q ',WEB-RETAIL,' st/SO_dup_StgSalesOrder.csv
SAGEBRIDGE_SAGE_DEFAULT_CUST_ID=ENVCUST run -c sb.conf convert dup.ndjson -o st --format csv
expect "convert: SAGEBRIDGE_SAGE_DEFAULT_CUST_ID overrides the file" grep -q ',ENVCUST,' st/SO_dup_StgSalesOrder.csv
printf '[sage]\ntimezone = Mars/Olympus\n' >tz.conf
run -c tz.conf convert dup.ndjson -o st
expect_rc "convert: unknown time zone exits 78" 78
expect_err "convert: unknown time zone is named with the template line" "clarity-orders.xml:[0-9]+: time zone \"Mars/Olympus\""

# --- the templates folder decides: a customer lookup, a broken template
cp -r "$TOP/templates" tpl
printf 'from,to\nC1,ACME01\n' >tpl/lookups/customers.csv
SAGEBRIDGE_PATHS_TEMPLATES=$WORK/tpl run convert dup.ndjson -o st --format csv
expect "convert: customers.csv maps customerId to CustID" grep -q ',ACME01,' st/SO_dup_StgSalesOrder.csv
sed -i 's|<column name="Hold"><const>No</const></column>|<column name="Hold"><cost>No</cost></column>|' tpl/clarity-orders.xml
SAGEBRIDGE_PATHS_TEMPLATES=$WORK/tpl run convert dup.ndjson -o st
expect_rc "convert: an invalid template exits 78" 78
expect_err "convert: an invalid template is named with its line" "clarity-orders.xml:[0-9]+: .*cost"
run validate tpl/clarity-orders.xml
expect_rc "validate: invalid template exits 78" 78
run validate "$TOP/templates/clarity-orders.xml"
expect_rc "validate: shipped template is valid" 0
run validate "$EX/orders-2026-11-01.json"
expect_rc "validate: a good export is valid" 0
expect_out "validate: reports the record count" "3 records"
run validate "$TOP/tests/golden/orders-rejects/input/orders-rejects.json"
expect_rc "validate: an export with bad records exits 65" 65
run validate "$TOP/tests/data/xsd/valid-salesorder.xml"
expect_rc "validate: a hand-written XML within every facet is valid" 0
run validate "$TOP/tests/data/xsd/invalid-salesorder-trano.xml"
expect_rc "validate: an XML breaking the schema exits 65" 65
expect_err "validate: schema error names the line, the attribute and the facet" "invalid-salesorder-trano.xml:9: .*attribute 'TranNo'.*maxLength"

# --- memory does not grow with the input (SPEC §10: streaming).  What memory there is fills
# over the first megabytes (the records in flight between the threads grow to the largest
# record seen, the duplicate sets keep up to 131,072 keys before they spill to disk), so the
# input is doubled from 12 MB, past that: growing with the input would add 12 MB or more.
python3 "$TOP/bench/gen-orders.py" 12 half.json --shape ndjson
python3 "$TOP/bench/gen-orders.py" 24 large.json --shape ndjson
mkdir -p mem
# (under make asan, freed memory sits in ASan's quarantine and looks like growth: turn it off)
rss() { ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=0 python3 -c 'import resource,subprocess,sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$SB" convert "$1" -o mem --format both; }
half=$(rss half.json)
large=$(rss large.json)
expect "convert: peak memory for 24 MB within 2 MB of that for 12 MB ($half KB vs $large KB)" [ $((large - half)) -lt 2048 ]
expect "convert: the 24 MB file converted every order" [ "$(($(lines_of mem/SO_large_StgSalesOrder.csv) - 1))" = "$(lines_of large.json)" ]

# --- a control character cannot go into a Sage file: the record is rejected, naming the column
mkdir -p ctl
python3 - "$EX/orders-2026-11-02.ndjson" ctl/ctl.ndjson <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows[1]["shippingAddress"]["name"] = "Ann\u0001Lee"
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
PY
run convert ctl/ctl.ndjson -o ctl
expect_rc "convert: a control character rejects its record (65)" 65
expect "convert: the reject says BAD_CHARACTER for DfltShipToAddrName" python3 -c 'import json,sys; r=json.load(open("ctl/ctl.rejects.json")); sys.exit(not (len(r)==1 and r[0]["record"]==2 and r[0]["code"]=="BAD_CHARACTER" and r[0]["field"]=="DfltShipToAddrName" and "U+0001" in r[0]["message"]))'
expect "convert: the other records are written" [ "$(($(lines_of ctl/SO_ctl_StgSalesOrder.csv) - 1))" = "$(($(lines_of "$EX/orders-2026-11-02.ndjson") - 1))" ]
xmllint --noout --schema "$TOP/xsd/sage500-salesorder.xsd" ctl/SO_ctl.xml 2>/dev/null
expect "convert: the XML stays well-formed and valid" [ $? = 0 ]

# --- duplicate checks beyond what is kept in memory give the same answers (seen.c on disk)
mkdir -p dup-mem dup-disk
python3 - dup.ndjson <<'PY'
import importlib.util, json, os, random, sys
spec = importlib.util.spec_from_file_location("g", os.environ["TOP"] + "/bench/gen-orders.py")
g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)
rnd = random.Random(7)
rows = [json.loads(g.order(i, rnd)) for i in range(3000)]
# the same orderId again: early (its key is kept in memory) and late (on disk): rejected
for src, dst in ((5, 2000), (2500, 2990)):
    rows[dst] = dict(rows[src])
# another orderId with the same digits, so the same TranNo: it falls back to a W number
for src, dst in ((1, 3), (2700, 2995)):
    rows[dst]["orderId"] = "WEB/" + rows[src]["orderId"].split("-")[1]
with open(sys.argv[1], "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
PY
run convert dup.ndjson -o dup-mem --format csv
cp dup-mem/dup.rejects.json dup-mem.rejects.json 2>/dev/null
SAGEBRIDGE_SEEN_MEM=16 run convert dup.ndjson -o dup-disk --format csv
expect_rc "convert: with 16 keys in memory, the repeats are still rejected (65)" 65
expect "convert: the same records are rejected whether the keys were in memory or on disk" cmp -s dup-mem.rejects.json dup-disk/dup.rejects.json
expect "convert: the two repeated orderIds are rejected" [ "$(python3 -c 'import json; print(sorted(r["record"] for r in json.load(open("dup-disk/dup.rejects.json"))))')" = "[2001, 2991]" ]
expect "convert: the two TranNo clashes took W numbers" [ "$(grep -c '^W' dup-disk/SO_dup_StgSalesOrder.csv)" = 2 ]
expect "convert: the same rows are written either way" diff -r dup-mem dup-disk -x '*.rejects.json'

# --- the reading thread's speculative evaluation (tpl_settle) writes what the ordered one
# writes: every record speculated, none, or none on a second thread at all; with keys in
# memory and on disk (the file is over a megabyte, so it is read and mapped on two threads)
expect "convert: the duplicates file is big enough for two threads" [ "$(wc -c <dup.ndjson)" -gt 1048576 ]
mkdir -p dup-one
SAGEBRIDGE_NO_PIPELINE=1 run convert dup.ndjson -o dup-one --format both
for mode in always never; do
    for mem in 0 16; do
        d=dup-$mode-$mem
        mkdir -p $d
        if [ $mem = 0 ]; then
            SAGEBRIDGE_SPECULATE=$mode run convert dup.ndjson -o $d --format both
        else
            SAGEBRIDGE_SEEN_MEM=$mem SAGEBRIDGE_SPECULATE=$mode run convert dup.ndjson -o $d --format both
        fi
        expect "convert: speculate=$mode, seen_mem=$mem: the same files, rejects included, as one thread" diff -r dup-one $d
    done
done
