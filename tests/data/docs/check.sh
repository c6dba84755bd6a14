#!/bin/bash
# check.sh - run every example of templates/README.md and compare the results
# with expected/ (byte for byte: output files, stdout, stderr, exit status).
#
#   tests/data/docs/check.sh            compare; prints PASS/FAIL per case
#   tests/data/docs/check.sh --update   rewrite expected/ from the current program
#
# Run it from anywhere after `make`; it uses ./sagebridge of the checkout.
set -u
cd "$(dirname "$0")/../../.." || exit 2
top=$PWD
bin=${SAGEBRIDGE_BIN:-$top/sagebridge}
docs=tests/data/docs
update=0
[ "${1:-}" = "--update" ] && update=1
work=$(mktemp -d "${TMPDIR:-/tmp}/sagebridge-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
export SAGEBRIDGE_PATHS_XSD=$top/xsd
unset SAGEBRIDGE_SAGE_TIMEZONE SAGEBRIDGE_SAGE_DEFAULT_WAREHOUSE SAGEBRIDGE_SAGE_DEFAULT_CUST_ID
passed=0
failed=0

# run CASE TEMPLATE_FOLDER [ENV=VALUE...] -- ARGS... ("@OUT" is the case's output folder)
run() {
    local name=$1 tdir=$2
    shift 2
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local out="$work/$name"
    mkdir -p "$out/files"
    local args=()
    for a in "$@"; do args+=("${a//@OUT/$out/files}"); done
    (cd "$top" && env SAGEBRIDGE_PATHS_TEMPLATES="$top/$tdir" "${envs[@]}" "$bin" "${args[@]}" \
        >"$out/stdout" 2>"$out/stderr"; echo $? >"$out/exit")
    sed -i -e "s#$out/files#@OUT#g" -e "s#$top/##g" "$out/stdout" "$out/stderr"
    local exp="$docs/expected/$name"
    if [ $update = 1 ]; then
        rm -rf "$exp"
        mkdir -p "$exp"
        cp -r "$out"/. "$exp"/
        echo "UPDATED $name"
    elif mkdir -p "$work/exp-$name" && cp -r "$exp"/. "$work/exp-$name"/ &&
        mkdir -p "$work/exp-$name/files" && # git keeps no empty folder
        diff -r "$work/exp-$name" "$out" >"$work/$name.diff" 2>&1; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        head -20 "$work/$name.diff" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

# every example template is valid
for t in text numbers lines lookup dates checks length; do
    run "validate-$t" "$docs" -- validate "$docs/$t.xml"
done
run validate-tz "$docs/tz" -- validate "$docs/tz/dates-chicago.xml"
run validate-default templates -- validate templates/clarity-orders.xml
run validate-bom "$docs/bom" -- validate "$docs/bom/bom-lookup.xml"

# the smallest template (section 1), chosen by the file name prefix
run minimal "$docs/minimal" -- convert "$docs/minimal/orders-1.json" -o @OUT --format csv

# the operations
run text    "$docs" -- convert "$docs/text.json"    -o @OUT --template docs-text    --format csv
run numbers "$docs" -- convert "$docs/numbers.json" -o @OUT --template docs-numbers --format csv
run lines   "$docs" -- convert "$docs/lines.json"   -o @OUT --template docs-lines   --format csv
run lookup  "$docs" -- convert "$docs/lookup.json"  -o @OUT --template docs-lookup  --format csv
run dates   "$docs" -- convert "$docs/dates.json"   -o @OUT --template docs-dates   --format csv
run dates-chicago "$docs/tz" -- -c "$docs/tz/sagebridge.conf" \
    convert "$docs/tz/dates.json" -o @OUT --template docs-dates-tz --format csv
run checks  "$docs" -- convert "$docs/checks.ndjson" -o @OUT --template docs-checks --format csv
run length  "$docs" -- convert "$docs/length.json"  -o @OUT --template docs-length  --format csv

# byte-order marks: a lookup table saved as Excel "CSV UTF-8", and a JSON input with a BOM
run bom "$docs/bom" -- convert "$docs/bom/orders-bom.json" -o @OUT --format csv

# settings: template default, configuration file, environment, *_FILE
run settings-default "$docs" -- convert "$docs/lookup.json" -o @OUT --template docs-lookup --format csv
run settings-conf "$docs" -- -c "$docs/sagebridge.conf" \
    convert "$docs/lookup.json" -o @OUT --template docs-lookup --format csv
run settings-env "$docs" SAGEBRIDGE_SAGE_DEFAULT_WAREHOUSE=DALLAS -- -c "$docs/sagebridge.conf" \
    convert "$docs/lookup.json" -o @OUT --template docs-lookup --format csv
run settings-file "$docs" SAGEBRIDGE_SAGE_DEFAULT_WAREHOUSE_FILE="$docs/warehouse.txt" -- \
    convert "$docs/lookup.json" -o @OUT --template docs-lookup --format csv

# choosing a template
for f in export-1 export-2 catalog products-2026 export-3; do
    run "select-$f" "$docs/select" -- convert "$docs/select/$f.json" -o @OUT --format csv
done
run select-dry-run "$docs/select" -- validate "$docs/select/export-1.json"
run select-named "$docs/select" -- convert "$docs/select/export-3.json" -o @OUT --format csv \
    --template sel-products
run select-unknown "$docs/select" -- convert "$docs/select/export-3.json" -o @OUT --format csv \
    --template nope

# the business key and control totals (section 14); the spool part is not replayed here
run validate-ledger "$docs/ledger" -- validate "$docs/ledger/orders-ledger.xml"
run ledger "$docs/ledger" -- convert "$docs/ledger/orders-7.json" -o @OUT --format csv

# Sage exports to Clarity API batches (sections 15 and 16); createdAt fixed by SOURCE_DATE_EPOCH
for t in a-products b-stock c-status; do
    run "validate-sage-$t" "$docs/sage" -- validate "$docs/sage/$t.xml"
done
sde=SOURCE_DATE_EPOCH=1795651200
run sage-items  "$docs/sage" $sde -- convert "$docs/sage/items-1.csv" -o @OUT
run sage-stock  "$docs/sage" $sde -- convert "$docs/sage/stock-0512.csv" -o @OUT
run sage-stock-chunk "$docs/sage" $sde SAGEBRIDGE_CLARITY_INVENTORY_CHUNK=500 -- \
    convert "$docs/sage/stock-0512.csv" -o @OUT
run sage-status "$docs/sage" $sde -- convert "$docs/sage/so_status-1.csv" -o @OUT
run sage-rules  "$docs/sage" $sde -- convert "$docs/sage/export-rules.csv" -o @OUT
run sage-rules-dry-run "$docs/sage" -- validate "$docs/sage/export-rules.csv"
run sage-missing-column "$docs/sage" $sde -- convert "$docs/sage/items-2.csv" -o @OUT
run sage-unknown-columns "$docs/sage" $sde -- convert "$docs/sage/export-x.csv" -o @OUT
# grouped operations, with the shipped templates (sage-shipments.xml)
run sage-shipments templates $sde -- convert "$docs/sage/shipments-1.csv" -o @OUT

# templates that are refused
for f in "$docs"/bad/*.xml; do
    run "bad-$(basename "$f" .xml)" "$docs/bad" -- validate "$f"
done
run bad-folder "$docs/bad" -- convert "$docs/text.json" -o @OUT --format csv

echo "$passed passed, $failed failed"
[ $update = 1 ] || [ $failed -eq 0 ]
