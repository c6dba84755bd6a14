#!/bin/sh
# make-run.sh - what `make run` does: convert the examples into the spool's
# Sage outbound folder and show what came out.  (The spool issue turns this
# into init + copy into in/clarity/ + `sagebridge run --once`.)
set -u
cd "$(dirname "$0")/.." || exit 1
out=spool/out/sage
mkdir -p "$out"
rc=0
for f in examples/*.json examples/*.ndjson; do
    [ -e "$f" ] || continue
    echo "sagebridge convert $f -o $out"
    ./sagebridge convert "$f" -o "$out" || rc=$?
done
echo
echo "Produced in $out/:"
ls -l "$out" | sed 1d
echo
echo "Check a batch:  (cd $out && sha256sum -c SO_orders-2026-11-01.done)"
exit $rc
