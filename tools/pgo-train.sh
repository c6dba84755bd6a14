#!/bin/bash
# pgo-train.sh PGODIR - the training run of the profile-guided build (Makefile, PGO=1).
#
# PGODIR holds the instrumented objects and binary (-fprofile-generate).  The binary does the
# work whose speed SPEC §10 measures, on a generated 2 MB orders export (bench/gen-orders.py,
# a fixed seed: above the megabyte from which convert reads and maps on two threads):
# convert --format both, convert --format csv, and run --once in a fresh spool (claim,
# convert, publish, archive, ledger).  The counts it leaves (PGODIR/*.gcda) are what the final
# objects are compiled with (-fprofile-use -dumpdir PGODIR/: gcc names a static function's
# counts after the object's dump name, so they are read where they were written).
#
# DIAGNOSTICS
#	Exits non-zero, with the failing step's own message, when a step fails: then make stops,
#	and `make PGO=0` builds without the profile.
set -eu
pgo=$1
top=$(pwd)
work=$pgo/train
rm -rf "$work"
rm -f "$pgo"/*.gcda
mkdir -p "$work/both" "$work/csv"
# the binary finds templates/ and xsd/ beside itself
ln -sfn "$top/templates" "$pgo/templates"
ln -sfn "$top/xsd" "$pgo/xsd"
python3 "$top/bench/gen-orders.py" 2 "$work/orders.json" --shape array --seed 7 >/dev/null
"$pgo/sagebridge" convert "$work/orders.json" -o "$work/both" --format both >/dev/null
"$pgo/sagebridge" convert "$work/orders.json" -o "$work/csv" --format csv >/dev/null
"$pgo/sagebridge" init "$work/spool" >/dev/null
cp "$work/orders.json" "$work/spool/in/clarity/orders-train.json"
touch -d '1 hour ago' "$work/spool/in/clarity/orders-train.json" # settled: taken at once
"$pgo/sagebridge" -c "$work/spool/sagebridge.conf" run --once >/dev/null 2>"$work/run.log" || {
    cat "$work/run.log" >&2
    exit 1
}
[ -n "$(ls "$work"/spool/out/sage/*.done 2>/dev/null)" ] || {
    echo "pgo-train.sh: run --once published nothing" >&2
    exit 1
}
rm -rf "$work"
