#!/usr/bin/env python3
"""check.py - assertions for tests/e2e/deliver.sh (standard library only).

Each subcommand exits 0 when the property holds, else 1 with the reason on stdout.

  state PORT EXPR            EXPR (Python) is true over s = GET /__mock/state, lg = GET /__mock/log
  format BATCH INPUT         the batch file is a well-formed Clarity API batch of INPUT (SPEC §6)
  keys BATCH                 print the batch's idempotency keys, one a line
  ops BATCH                  print the number of operations
  once PORT SKIP BATCH...    every operation of the batches was applied by the mock exactly once
                             (those whose seq is in SKIP, "1,4" or "-", not at all), and no
                             idempotency key at all was applied more than once
  expect PORT EXPECTED.json  the mock's products / orders / accounts have the expected members
  responses FILE BATCH       FILE (NAME.responses.ndjson) has one JSON line per operation of BATCH
                             (each seq once; with SKIP as 3rd argument those seqs are absent)
  errorfile FILE BATCH SEQ WORD
                             FILE (NAME.error.json) names the failed operation SEQ of BATCH: its
                             request, its response and a reason (containing WORD unless "-")
"""
import json
import sys
import urllib.request


def mock(port, what):
    with urllib.request.urlopen("http://127.0.0.1:%s/__mock/%s" % (port, what), timeout=5) as r:
        return json.load(r)


def ops_of(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["operations"]


def bad(msg):
    print(msg[:600])
    sys.exit(1)


def main(argv):
    cmd = argv[0]
    if cmd == "state":
        s = mock(argv[1], "state")
        lg = mock(argv[1], "log")
        r = eval(argv[2], {"s": s, "lg": lg, "json": json})
        if not r:
            show = eval(argv[3], {"s": s, "lg": lg, "json": json}) if len(argv) > 3 else r
            bad("not true: %s (%r)" % (argv[2], show))
        return
    if cmd == "format":
        import hashlib
        with open(argv[1], encoding="utf-8") as f:
            b = json.load(f)
        with open(argv[2], "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        for k in ("batchId", "createdAt", "source", "target", "operations"):
            if k not in b:
                bad("no %s member" % k)
        src = b["source"]
        if not isinstance(src, dict) or src.get("sha256") != sha:
            bad("source.sha256 %r is not sha256sum of the input %s" % (src, sha))
        if not str(src.get("file", "")).endswith(argv[2].rsplit("/", 1)[-1]):
            bad("source.file %r does not name the input" % src.get("file"))
        if not isinstance(b["target"], dict) or not b["target"]:
            bad("target %r" % b["target"])
        ops = b["operations"]
        if not ops:
            bad("no operations")
        for i, op in enumerate(ops, 1):
            for k in ("seq", "op", "method", "path", "body", "idempotencyKey"):
                if k not in op:
                    bad("operation %d has no %s: %r" % (i, k, op))
            if op["seq"] != i:
                bad("operation %d has seq %r" % (i, op["seq"]))
            if op["method"] not in ("GET", "POST", "PUT", "PATCH", "DELETE") or not op["path"].startswith("/"):
                bad("operation %d: %s %s" % (i, op["method"], op["path"]))
            text = json.dumps(op["body"])
            import re
            holes = set(re.findall(r'"\{(ID:[^}"]*)\}"', text))
            res = op.get("resolve") or {}
            for h in holes:
                if h not in res or not str(res[h].get("from", "")).startswith("/"):
                    bad("operation %d: placeholder {%s} without a resolve entry: %r" % (i, h, res))
        keys = [op["idempotencyKey"] for op in ops]
        if len(set(keys)) != len(keys) or not all(isinstance(k, str) and len(k) >= 16 for k in keys):
            bad("idempotency keys not unique / too short: %r" % keys[:5])
        return
    if cmd == "keys":
        for op in ops_of(argv[1]):
            print(op["idempotencyKey"])
        return
    if cmd == "ops":
        print(len(ops_of(argv[1])))
        return
    if cmd == "once":
        s = mock(argv[1], "state")
        skip = set() if argv[2] == "-" else {int(x) for x in argv[2].split(",")}
        applied = s["applied"]
        probs = []
        for path in argv[3:]:
            for op in ops_of(path):
                n = applied.get(op["idempotencyKey"], 0)
                want = 0 if op["seq"] in skip else 1
                if n != want:
                    probs.append("seq %s applied %d times (expected %d)" % (op["seq"], n, want))
        over = {k: v for k, v in applied.items() if v > 1}
        if over:
            probs.append("keys applied more than once: %r" % over)
        if probs:
            bad("; ".join(probs[:8]) + (" (+%d more)" % (len(probs) - 8) if len(probs) > 8 else ""))
        return
    if cmd == "expect":
        s = mock(argv[1], "state")
        with open(argv[2], encoding="utf-8") as f:
            exp = json.load(f)
        probs = []
        for section, recs in exp.items():
            for key, members in recs.items():
                rec = s.get(section, {}).get(key)
                if rec is None:
                    probs.append("%s %s missing" % (section, key))
                    continue
                for m, v in members.items():
                    got = rec.get(m)
                    same = (abs(float(got) - float(v)) < 1e-9) if isinstance(v, (int, float)) and \
                        not isinstance(v, bool) and isinstance(got, (int, float)) and \
                        not isinstance(got, bool) else got == v
                    if not same:
                        probs.append("%s %s.%s = %r, expected %r" % (section, key, m, got, v))
        if probs:
            bad("; ".join(probs))
        return
    if cmd == "responses":
        n = len(ops_of(argv[2]))
        skip = set() if len(argv) < 4 or argv[3] == "-" else {int(x) for x in argv[3].split(",")}
        want = sorted(set(range(1, n + 1)) - skip)
        seqs = []
        with open(argv[1], encoding="utf-8") as f:
            for ln, line in enumerate(f, 1):
                try:
                    seqs.append(json.loads(line)["seq"])
                except (ValueError, KeyError, TypeError):
                    bad("line %d is not a JSON object with seq: %r" % (ln, line[:100]))
        if sorted(seqs) != want:
            missing = sorted(set(want) - set(seqs))
            dup = sorted({x for x in seqs if seqs.count(x) > 1})
            bad("%d lines for %d operations; missing seqs %r; repeated %r" %
                (len(seqs), len(want), missing[:10], dup[:10]))
        return
    if cmd == "errorfile":
        with open(argv[1], encoding="utf-8") as f:
            e = json.load(f)
        seq, word = int(argv[3]), argv[4]
        op = [o for o in ops_of(argv[2]) if o["seq"] == seq][0]
        text = json.dumps(e)
        if op["idempotencyKey"] not in text or op["path"] not in text:
            bad("the error file does not carry the request of seq %d: %s" % (seq, text[:300]))
        entries = []

        def walk(v):
            if isinstance(v, dict):
                if any(k in v for k in ("reason", "Reason")):
                    entries.append(v)
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(e)
        mine = [x for x in entries if op["idempotencyKey"] in json.dumps(x)]
        if not mine:
            bad("no entry with a reason for seq %d: %s" % (seq, text[:300]))
        x = mine[0]
        if not any(k in x for k in ("response", "Response")):
            bad("the entry for seq %d has no response: %s" % (seq, json.dumps(x)[:300]))
        reason = str(x.get("reason", x.get("Reason", "")))
        if not reason or (word != "-" and word.lower() not in reason.lower()):
            bad("reason %r does not name %r" % (reason, word))
        return
    bad("unknown subcommand %s" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
