#!/bin/bash
# run.sh - the whole test suite: unit tests (cmocka), golden files, end to end.
#
# Environment (set by make test / make asan):
#   SAGEBRIDGE_BIN  the binary under test
#   UNIT_DIR        folder of the compiled cmocka test programs
# Prints one line per test (PASS/FAIL) and ends with "N passed, M failed";
# exits 1 when anything failed.
set -u
cd "$(dirname "$0")/.." || exit 2
export SAGEBRIDGE_BIN=${SAGEBRIDGE_BIN:-$PWD/sagebridge}
export TOP=$PWD
UNIT_DIR=${UNIT_DIR:-$PWD/build/tests}
passed=0
failed=0
fails=()
work=$(mktemp -d "${TMPDIR:-/tmp}/sagebridge-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

tally() { # tally FILE: count PASS/FAIL lines a test part printed
    local p f
    p=$(grep -c '^PASS ' "$1")
    f=$(grep -c '^FAIL ' "$1")
    passed=$((passed + p))
    failed=$((failed + f))
    while IFS= read -r l; do fails+=("$l"); done < <(grep '^FAIL ' "$1")
}

echo "== unit tests"
for t in "$UNIT_DIR"/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out="$work/$name.out"
    CMOCKA_MESSAGE_OUTPUT=stdout "$t" >"$out" 2>&1
    rc=$?
    # one PASS/FAIL line per cmocka test case
    sed -n -e 's/^\[       OK \] \(.*\)$/PASS '"$name"': \1/p' \
           -e 's/^\[  FAILED  \] \([^ ].*\)$/FAIL '"$name"': \1/p' "$out" |
        grep -v -E ': [0-9]+ test\(s\)' | awk '!seen[$0]++' >"$out.res"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$out.res"; then
        echo "FAIL $name: exited $rc" >>"$out.res"
        tail -20 "$out" >&2
    fi
    grep '^FAIL' "$out.res" >/dev/null && grep -E 'ERROR|error|Failure|FAILED|runtime error|Sanitizer' "$out" | head -20 >&2
    cat "$out.res"
    tally "$out.res"
done

echo "== golden files"
tests/lib/golden.sh "$work/golden" >"$work/golden.res" 2>&1
cat "$work/golden.res"
tally "$work/golden.res"

echo "== the mock Clarity API's own checks (the end-to-end tests rely on it)"
python3 tests/lib/test_mock_clarity.py >"$work/mock.res" 2>&1
rc=$?
[ $rc -ne 0 ] && ! grep -q '^FAIL ' "$work/mock.res" && echo "FAIL test_mock_clarity.py: exited $rc" >>"$work/mock.res"
grep -E '^(PASS|FAIL) ' "$work/mock.res"
grep -q '^FAIL ' "$work/mock.res" && grep -v -E '^(PASS|FAIL) ' "$work/mock.res" | tail -15
tally "$work/mock.res"

echo "== end to end"
for s in tests/e2e/*.sh; do
    [ -f "$s" ] || continue
    d="$work/e2e-$(basename "$s" .sh)"
    mkdir -p "$d"
    WORK="$d" bash "$s" >"$d.res" 2>&1
    rc=$?
    [ $rc -ne 0 ] && echo "FAIL $(basename "$s"): script exited $rc" >>"$d.res"
    grep -E '^(PASS|FAIL) ' "$d.res"
    grep -q '^FAIL ' "$d.res" && grep -v -E '^(PASS|FAIL) ' "$d.res" | tail -15
    tally "$d.res"
done

echo
if [ ${#fails[@]} -gt 0 ]; then
    echo "Failures:"
    printf '  %s\n' "${fails[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
