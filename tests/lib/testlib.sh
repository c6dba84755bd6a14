# testlib.sh - helpers for end-to-end test scripts (sourced).
#
# Each check prints "PASS name" or "FAIL name: why"; tests/run.sh counts them.
# $SAGEBRIDGE_BIN is the binary under test, $TOP the repository, $WORK a
# scratch folder of this script's own.

SB=${SAGEBRIDGE_BIN:?}
WORK=${WORK:-$(mktemp -d)}
cd "$WORK" || exit 2

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# run CMD... : run sagebridge, keeping status in $rc, output in out/err files
run() {
    "$SB" "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
}

# expect_rc NAME N : the last run exited N
expect_rc() {
    if [ "$rc" = "$2" ]; then pass "$1"; else fail "$1" "exit $rc, expected $2; stderr: $(head -c 400 "$WORK/err")"; fi
}

# expect_err NAME REGEX : stderr of the last run matches
expect_err() {
    if grep -q -E -- "$2" "$WORK/err"; then pass "$1"; else fail "$1" "stderr lacks /$2/: $(head -c 400 "$WORK/err")"; fi
}

# expect_out NAME REGEX : stdout of the last run matches
expect_out() {
    if grep -q -E -- "$2" "$WORK/out"; then pass "$1"; else fail "$1" "stdout lacks /$2/: $(head -c 400 "$WORK/out")"; fi
}

# expect NAME COMMAND... : a shell test
expect() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "not true: $*"; fi
}

# lines_of FILE : number of lines
lines_of() { wc -l <"$1" | tr -d ' '; }
