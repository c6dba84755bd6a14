# docs.sh - every example of templates/README.md still gives the result the README shows.
. "$TOP/tests/lib/testlib.sh"
bash "$TOP/tests/data/docs/check.sh" | sed -n -e 's/^PASS /PASS docs: /p' -e 's/^FAIL /FAIL docs: /p'
