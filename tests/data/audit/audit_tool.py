#!/usr/bin/env python3
"""audit_tool.py - helpers for tests/e2e/audit.sh (archive commands, replay).

Subcommands (each exits 0 when all is well, else prints why and exits 1):
  sums FILE...                   expected control totals per currency (JSON, Decimal strings)
  check-list-json LIST NAME=FILE...  `archive list --json` output against the inputs' sums
  check-list-text TEXT JSON NAME=FILE...  `archive list`: one line per batch with its id,
                                 kind, input, counts and control totals per currency
  check-report-csv CSV DATE FILE...  `archive report --format csv` against the inputs' sums
  flip-member ARCHIVE SUFFIX     repack ARCHIVE (valid gzip) with one byte of the member
                                 whose name ends with SUFFIX changed
  edit-manifest ARCHIVE          repack ARCHIVE with manifest.json edited (a total changed)
  evil ARCHIVE KIND OUTSIDE      repack ARCHIVE adding a malicious member after the good
                                 ones: KIND dotdot ("../evil"), abs (OUTSIDE/abs-evil),
                                 symlink (a symlink member to OUTSIDE and a file through it)
  sql DB STATEMENT...            run statements on the ledger (committed)
  ghost-row DB                   add an 'archived' row whose archive file does not exist
                                 and whose manifest_sha256 no chain names
"""
import io
import json
import sqlite3
import sys
import tarfile
from decimal import Decimal

MEASURES = ("total", "tax", "freight", "discount", "quantity")


def load_orders(path):
    text = open(path, encoding="utf-8").read()
    if path.endswith(".ndjson"):
        return [json.loads(l, parse_float=Decimal) for l in text.splitlines() if l.strip()]
    d = json.loads(text, parse_float=Decimal)
    if isinstance(d, dict):
        d = d["orders"]
    return d


def D(v):
    return Decimal(str(v)) if v is not None else None


def sums(files):
    """control totals per currency, as SPEC §5.1/§7 define the order's amounts"""
    out = {}
    for f in files:
        for o in load_orders(f):
            c = out.setdefault(o["currency"], {"orders": 0, "lines": 0, **{m: Decimal(0) for m in MEASURES}})
            li = o["lineItems"]
            ext = sum(D(l["quantity"]) * D(l["unitPrice"]) for l in li)
            ldisc = sum(D(l.get("discount") or 0) for l in li)
            disc = ldisc + (D(o.get("discountAmount")) or 0)
            tax = D(o.get("taxAmount"))
            if tax is None:
                tax = sum(D(l.get("tax") or 0) for l in li)
            total = D(o["totalAmount"])
            freight = D(o.get("shippingAmount"))
            if freight is None:
                freight = total - (ext - disc + tax)
            c["orders"] += 1
            c["lines"] += len(li)
            c["total"] += total
            c["tax"] += tax
            c["freight"] += freight
            c["discount"] += disc
            c["quantity"] += sum(D(l["quantity"]) for l in li)
    return out


def is_dec_str(v):
    if not isinstance(v, str):
        return False
    try:
        Decimal(v)
    except Exception:
        return False
    import re
    return re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", v) is not None


def compare(got, want, where):
    errs = []
    if set(got) != set(want):
        errs.append(f"{where}: currencies {sorted(got)} != {sorted(want)}")
        return errs
    for cur, w in want.items():
        g = got[cur]
        for m in ("orders", "lines"):
            if str(g.get(m)) != str(w[m]):
                errs.append(f"{where} {cur} {m}: {g.get(m)!r} != {w[m]}")
        for m in MEASURES:
            v = g.get(m)
            if not is_dec_str(v):
                errs.append(f"{where} {cur} {m}: {v!r} is not a decimal string")
            elif Decimal(v) != w[m]:
                errs.append(f"{where} {cur} {m}: {v} != {w[m]}")
    return errs


def check_list_json(path, pairs):
    data = json.load(open(path))
    byname = {e.get("input"): e for e in data}
    errs = []
    for p in pairs:
        name, f = p.split("=", 1)
        e = byname.get(name)
        if e is None:
            errs.append(f"no entry for {name}")
            continue
        errs += compare(e.get("control_totals") or {}, sums([f]), name)
    return errs


def check_list_text(path, jpath, pairs):
    import re
    lines = [l for l in open(path, encoding="utf-8").read().splitlines() if l.strip()]
    data = json.load(open(jpath))
    errs = []
    if len(lines) != len(data):
        errs.append(f"{len(lines)} lines for {len(data)} batches")
    for p in pairs:
        name, f = p.split("=", 1)
        e = next((e for e in data if e.get("input") == name), None)
        if e is None:
            errs.append(f"no batch for {name} in --json")
            continue
        mine = [l for l in lines if name in l.split()]
        if len(mine) != 1:
            errs.append(f"{len(mine)} lines name {name}")
            continue
        l = mine[0]
        n = len(load_orders(f))
        for want in (e["id"], "orders", f"in {n} published {n}"):
            if want not in l:
                errs.append(f"line of {name} lacks {want!r}: {l}")
        for cur, w in sums([f]).items():
            m = re.search(re.escape(cur) + r" orders (\d+) lines (\d+) total (-?[0-9.]+)", l)
            if not m:
                errs.append(f"line of {name} has no {cur} totals: {l}")
            elif (int(m[1]), int(m[2]), Decimal(m[3])) != (w["orders"], w["lines"], w["total"]):
                errs.append(f"line of {name}: {cur} {m[0]!r}, expected orders {w['orders']} lines {w['lines']} total {w['total']}")
    return errs


def check_report_csv(path, date, files):
    rows = open(path, encoding="utf-8", newline="").read().splitlines()
    errs = []
    if not rows or rows[0] != "date,currency,measure,value":
        return [f"header is {rows[:1]!r}"]
    got = {}
    for r in rows[1:]:
        if not r:
            continue
        d, cur, m, v = r.split(",")
        if d != date:
            errs.append(f"row {r!r}: date is not {date}")
        got.setdefault(cur, {})[m] = v if m in MEASURES else int(v)
    return errs + compare(got, sums(files), "report")


def repack(path, change):
    """rewrite ARCHIVE with change(TarInfo, bytes) -> bytes applied to each member"""
    src = tarfile.open(path, "r:gz")
    members = [(ti, src.extractfile(ti).read() if ti.isfile() else None) for ti in src.getmembers()]
    src.close()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as dst:
        for ti, data in members:
            data = change(ti, data)
            if data is not None:
                ti.size = len(data)
                dst.addfile(ti, io.BytesIO(data))
            else:
                dst.addfile(ti)
        extra = getattr(repack, "extra", None)
        if extra:
            extra(dst)
    open(path, "wb").write(buf.getvalue())


def flip_member(path, suffix):
    hit = []

    def ch(ti, data):
        if data is not None and ti.name.endswith(suffix) and not hit:
            b = bytearray(data)
            i = len(b) // 2
            b[i] = ord("7") if b[i] != ord("7") else ord("8")
            hit.append(ti.name)
            return bytes(b)
        return data

    repack(path, ch)
    if not hit:
        return [f"no member ends with {suffix}"]
    print(hit[0])
    return []


def edit_manifest(path):
    hit = []

    def ch(ti, data):
        if ti.name == "manifest.json":
            m = json.loads(data)
            cur = next(iter(m["control_totals"]))
            m["control_totals"][cur]["total"] = "999999.99"
            hit.append(1)
            return json.dumps(m, indent=2).encode() + b"\n"
        return data

    repack(path, ch)
    return [] if hit else ["no manifest.json member"]


def evil(path, kind, outside):
    def extra(dst):
        payload = b"pwned\n"
        if kind == "dotdot":
            ti = tarfile.TarInfo("../evil")
        elif kind == "abs":
            ti = tarfile.TarInfo(outside.rstrip("/") + "/abs-evil")
        elif kind == "symlink":
            ln = tarfile.TarInfo("output/link")
            ln.type = tarfile.SYMTYPE
            ln.linkname = outside
            dst.addfile(ln)
            ti = tarfile.TarInfo("output/link/sym-evil")
        else:
            raise SystemExit(f"unknown kind {kind}")
        ti.size = len(payload)
        ti.mode = 0o640
        dst.addfile(ti, io.BytesIO(payload))

    repack.extra = extra
    repack(path, lambda ti, d: d)
    repack.extra = None
    names = tarfile.open(path).getnames()
    print(" ".join(names[-2:]))
    return []


def ghost_row(db):
    c = sqlite3.connect(db)
    cols = [r[1] for r in c.execute("PRAGMA table_info(batches)")]
    row = dict(zip(cols, c.execute("SELECT * FROM batches WHERE state='archived' ORDER BY rowid DESC LIMIT 1").fetchone()))
    row["id"] = row["id"][:17] + "orders-deadbeef"
    row["input_sha256"] = "deadbeef" + "0" * 56
    row["input_name"] = "ghost.json"
    row["archive"] = row["archive"].rsplit("/", 1)[0] + "/" + row["id"] + ".tar.gz"
    row["manifest_sha256"] = "ab" * 32
    c.execute(f"INSERT INTO batches({','.join(cols)}) VALUES({','.join('?' * len(cols))})", [row[k] for k in cols])
    c.commit()
    print(row["id"])
    return []


def main(a):
    cmd = a[0]
    if cmd == "sums":
        print(json.dumps({k: {m: str(v) for m, v in c.items()} for k, c in sums(a[1:]).items()}))
        errs = []
    elif cmd == "check-list-json":
        errs = check_list_json(a[1], a[2:])
    elif cmd == "check-list-text":
        errs = check_list_text(a[1], a[2], a[3:])
    elif cmd == "check-report-csv":
        errs = check_report_csv(a[1], a[2], a[3:])
    elif cmd == "flip-member":
        errs = flip_member(a[1], a[2])
    elif cmd == "edit-manifest":
        errs = edit_manifest(a[1])
    elif cmd == "evil":
        errs = evil(a[1], a[2], a[3])
    elif cmd == "sql":
        c = sqlite3.connect(a[1])
        for s in a[2:]:
            for r in c.execute(s):
                print("|".join("" if x is None else str(x) for x in r))
        c.commit()
        errs = []
    elif cmd == "ghost-row":
        errs = ghost_row(a[1])
    else:
        errs = [f"unknown command {cmd}"]
    for e in errs:
        print(e, file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as e:  # a one-line reason for the FAIL message, not a traceback
        print(f"{sys.argv[1] if len(sys.argv) > 1 else ''}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
