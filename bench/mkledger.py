#!/usr/bin/env python3
"""mkledger.py - fill a spool's ledger with COUNT archived batches, for `archive list`.

    mkledger.py LEDGER.db COUNT [--seed N]

LEDGER.db must already exist with sagebridge's schema (`sagebridge init DIR` then
`sagebridge -c DIR/sagebridge.conf status` creates it; see src/ledger.c).  Rows look like what
`run` writes: ids YYYYMMDDTHHMMSSZ-KIND-XXXXXXXX one every ~5 minutes over a year, a kind mix led
by orders, control totals for orders, three outputs with sizes and SHA-256, an archive path and
a manifest chain; a few rejected and duplicate batches.  One transaction; deterministic.
"""
import argparse
import datetime
import hashlib
import json
import random
import sqlite3

KINDS = [("orders", 60), ("items", 10), ("customers", 10), ("payments", 8), ("inventory", 7),
         ("shipments", 5)]
PREFIX = {"orders": "SO", "items": "ITEM", "customers": "CUST", "payments": "RCPT"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("count", type=int)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    kinds = [k for k, w in KINDS for _ in range(w)]
    t = datetime.datetime(2025, 11, 1, tzinfo=datetime.timezone.utc)
    prev = ""
    rows = []
    for i in range(a.count):
        t += datetime.timedelta(seconds=rnd.randint(60, 570))
        kind = rnd.choice(kinds)
        sha = hashlib.sha256(b"bench-batch-%d" % i).hexdigest()
        bid = "%s-%s-%s" % (t.strftime("%Y%m%dT%H%M%SZ"), kind, sha[:8])
        ts = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        upd = (t + datetime.timedelta(seconds=rnd.randint(0, 3))).strftime("%Y-%m-%dT%H:%M:%SZ")
        n = rnd.randint(1, 400)
        state, rejected, dup, dup_of, err = "archived", 0, 0, None, None
        r = rnd.random()
        if r < 0.02:
            state, rejected, err = "error", n, "record 1: orderId: missing"
        elif r < 0.03:
            state, dup, dup_of = "duplicate", n, "%s-%s-%s" % (t.strftime("%Y%m%dT%H%M%SZ"), kind, sha[8:16])
        name = "%s-%s-%05d.%s" % (kind, t.strftime("%Y-%m-%d"), i, "json" if kind in PREFIX and kind != "inventory" else "csv")
        p = PREFIX.get(kind, "CLARITY")
        outputs = json.dumps([{"name": "%s_%s%s" % (p, bid, suf), "sha256": hashlib.sha256((bid + suf).encode()).hexdigest(),
                               "size": rnd.randint(500, 900000)} for suf in ("_A.csv", "_B.csv", ".xml")],
                             separators=(",", ":"))
        totals = None
        if kind == "orders":
            lines = n * rnd.randint(1, 5)
            totals = json.dumps({"USD": {"orders": n, "lines": lines,
                                         "total": "%d.%02d" % (n * rnd.randint(50, 900), rnd.randint(0, 99)),
                                         "tax": "%d.%02d" % (n * rnd.randint(4, 70), rnd.randint(0, 99)),
                                         "freight": "%d.%02d" % (n * rnd.randint(0, 15), rnd.randint(0, 99)),
                                         "discount": "%d.%02d" % (rnd.randint(0, 500), rnd.randint(0, 99)),
                                         "quantity": str(lines * 3)}}, separators=(",", ":"))
        manifest = hashlib.sha256((bid + prev).encode()).hexdigest()
        archive = "%s/%s.tar.gz" % (t.strftime("%Y/%m/%d"), bid) if state != "error" else None
        rows.append((bid, kind, name, sha, state, ts, upd, "clarity-" + kind, n, n - rejected - dup,
                     rejected, dup, 0, rnd.choice([0, 0, 0, 1, 2]), outputs, totals, archive,
                     manifest if archive else None, prev or None, err, dup_of, "/srv/spool/out/sage"))
        if archive:
            prev = manifest
    db = sqlite3.connect(a.db)
    with db:
        db.executemany("INSERT INTO batches(id, kind, input_name, input_sha256, state, claimed_at, updated_at,"
                       " template, records, published, rejected, duplicate, held, warnings, outputs, totals,"
                       " archive, manifest_sha256, prev, error, duplicate_of, out_dir)"
                       " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


if __name__ == "__main__":
    main()
