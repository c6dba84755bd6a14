# cli.sh - the command line: help, version, usage errors, exit statuses (SPEC §2).
. "$TOP/tests/lib/testlib.sh"

run --help
expect_rc "cli: --help exits 0" 0
expect_out "cli: --help names convert" "convert FILE"
expect_out "cli: --help names validate" "validate FILE"
expect_out "cli: --help lists the exit statuses" "65 input rejected"

run --version
expect_rc "cli: --version exits 0" 0
expect_out "cli: --version prints the version" "^sagebridge [0-9]+\.[0-9]+\.[0-9]+$"

run frobnicate
expect_rc "cli: unknown command exits 64" 64
expect_err "cli: unknown command is named" 'unknown command "frobnicate"'
expect "cli: usage error is one line" [ "$(lines_of "$WORK/err")" = 1 ]

run --bogus convert x
expect_rc "cli: unknown global option exits 64" 64

run convert --bogus "$TOP/examples/orders-2026-11-01.json"
expect_rc "cli: unknown convert option exits 64" 64
expect "cli: convert option error is one line" [ "$(lines_of "$WORK/err")" = 1 ]

run convert --format pdf "$TOP/examples/orders-2026-11-01.json"
expect_rc "cli: bad --format exits 64" 64

run convert
expect_rc "cli: convert without a file exits 64" 64

run
expect_rc "cli: no command exits 64" 64

run convert "$WORK/no-such-file.json" -o "$WORK"
expect_rc "cli: missing input exits 66" 66
expect_err "cli: missing input is named" "no-such-file.json"

run convert "$TOP/examples/orders-2026-11-01.json" -o "$WORK/not-there"
expect_rc "cli: missing output folder exits 73" 73

mkdir -p "$WORK/ro" && chmod 0500 "$WORK/ro"
if [ "$(id -u)" != 0 ]; then
    run convert "$TOP/examples/orders-2026-11-01.json" -o "$WORK/ro"
    expect_rc "cli: unwritable output folder exits 73" 73
fi

printf '[sage\n' >"$WORK/bad.conf"
run -c "$WORK/bad.conf" convert "$TOP/examples/orders-2026-11-01.json" -o "$WORK"
expect_rc "cli: broken config exits 78" 78
expect_err "cli: broken config names file and line" "bad.conf:1:"

run -c "$WORK/missing.conf" convert "$TOP/examples/orders-2026-11-01.json" -o "$WORK"
expect_rc "cli: missing -c config exits 78" 78

run ledger check
expect_rc "cli: a command of a later release exits 64" 64
expect_err "cli: a later command says so" "not available"
