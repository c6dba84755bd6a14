#!/bin/bash
# golden.sh WORKDIR - run every case of tests/golden/ and compare byte for byte.
#
# A case is a folder with:
#   args       the arguments after "sagebridge"; @IN is the case's input/ folder,
#              @OUT a fresh output folder
#   exit       the expected exit status
#   env        (optional) KEY=VALUE lines set for the run, e.g. SOURCE_DATE_EPOCH
#   expected/  every file the output folder must hold afterwards, byte for byte;
#              no other file may appear.  In *.rejects.json a "message" of "*"
#              matches any text (messages are for people; codes are the contract).
# Every XML file written is also validated with xmllint against its schema.
set -u
work=$1
mkdir -p "$work"
for d in "$TOP"/tests/golden/*/; do
    n=$(basename "$d")
    out="$work/$n"
    rm -rf "$out"
    mkdir -p "$out"
    read -r -a args < <(sed -e "s#@IN#${d}input#g" -e "s#@OUT#$out#g" "$d/args")
    envs=()
    [ -f "$d/env" ] && mapfile -t envs <"$d/env"
    env "${envs[@]}" "$SAGEBRIDGE_BIN" "${args[@]}" >"$work/$n.stdout" 2>"$work/$n.stderr"
    rc=$?
    why=""
    exp=$(cat "$d/exit")
    [ "$rc" = "$exp" ] || why="exit $rc, expected $exp; stderr: $(head -c 300 "$work/$n.stderr")"
    for f in "$d"/expected/*; do
        b=$(basename "$f")
        if [ ! -e "$out/$b" ]; then
            why="$why; $b missing"
        elif [[ $b == *.rejects.json ]]; then
            python3 "$TOP/tests/lib/json_match.py" "$f" "$out/$b" >"$work/$n.json" 2>&1 ||
                why="$why; $b: $(cat "$work/$n.json")"
        elif ! cmp -s "$f" "$out/$b"; then
            why="$why; $b differs: $(diff "$f" "$out/$b" | head -5 | tr '\n' ' ')"
        fi
    done
    for f in "$out"/*; do
        [ -e "$f" ] || continue
        b=$(basename "$f")
        [ -e "$d/expected/$b" ] || why="$why; unexpected file $b"
        if [[ $b == *.xml ]] && ! xmllint --noout --schema "$TOP/xsd/sage500-salesorder.xsd" "$f" 2>"$work/$n.xsd"; then
            why="$why; $b not valid against its schema: $(head -3 "$work/$n.xsd")"
        fi
    done
    if [ -z "$why" ]; then echo "PASS golden: $n"; else echo "FAIL golden: $n:${why#;}"; fi
done
