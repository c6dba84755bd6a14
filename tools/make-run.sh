#!/bin/sh
# make-run.sh - what `make run` does (SPEC §9): create spool/ if needed, drop the
# examples into its inbound folder, run `sagebridge run --once`, show the result.
set -u
cd "$(dirname "$0")/.." || exit 1
conf=spool/sagebridge.conf
if [ ! -f "$conf" ]; then
    ./sagebridge init spool || exit $?
fi
# cp -p keeps the examples' old mtimes: complete files, taken without waiting to settle
for f in examples/*.json examples/*.ndjson; do
    [ -e "$f" ] && cp -p "$f" spool/in/clarity/
done
echo "dropped the examples into spool/in/clarity/; running: ./sagebridge -c $conf run --once"
./sagebridge -c "$conf" run --once
rc=$?
echo
./sagebridge -c "$conf" status
echo
echo "Sage import files are in spool/out/sage/ (each batch ends with its .done marker),"
echo "archives in spool/archive/. Run 'make run' again: the same files are recognised as"
echo "duplicates and nothing is published twice. Watch the spool with:"
echo "  ./sagebridge -c $conf run"
exit $rc
