#!/usr/bin/env python3
"""invariants.py SB SPOOL EXPECTED_DIR LABEL [options]

The invariants a spool must satisfy once every crash has been recovered
(SPEC §3 rule 4, §7), checked from the outside: folders, out/sage, the
archive (manifests read with tarfile), `sagebridge archive verify` and
`sagebridge status --json` (the ledger is read only through the program).  EXPECTED_DIR holds a copy of
every input that was dropped into in/clarity.

Prints one "PASS faults: LABEL: what" or "FAIL faults: LABEL: what: why"
line per invariant (tests/lib/testlib.sh style).

Options:
  --allow-in           in/clarity may still hold files
  --allow-error        error/ may hold files (else it must be empty)
  --no-order           do not check that the chain follows claim order
                       (two instances may archive out of claim order)
  --states S1,S2       states allowed in status' last batches (default archived)
"""
import csv
import glob
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

args = sys.argv[1:]
opts = [a for a in args if a.startswith("--")]
pos = []
i = 0
states = {"archived"}
while i < len(args):
    a = args[i]
    if a == "--states":
        states = set(args[i + 1].split(","))
        i += 2
        continue
    if not a.startswith("--"):
        pos.append(a)
    i += 1
SB, SPOOL, EXPDIR, LABEL = pos[:4]
allow_in = "--allow-in" in opts
allow_error = "--allow-error" in opts
check_order = "--no-order" not in opts


def out(ok, what, why=""):
    if ok:
        print(f"PASS faults: {LABEL}: {what}")
    else:
        why = why.replace("\n", " ")
        if len(why) > 600:
            why = why[:600] + "…"
        print(f"FAIL faults: {LABEL}: {what}: {why}")


def sha_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def order_ids(path):
    """every orderId in a Clarity export: array, {"orders": [...]} or NDJSON"""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            recs = next((v for v in doc.values() if isinstance(v, list)), [])
        else:
            recs = doc
    except json.JSONDecodeError:
        recs = [json.loads(l) for l in text.splitlines() if l.strip()]
    return [r.get("orderId") for r in recs if isinstance(r, dict)]


def walk_files(top):
    for d, dirs, files in os.walk(top):
        for f in files:
            yield os.path.join(d, f)


# ---------------------------------------------------------------- expected
expected = {}  # sha -> name
exp_orders = []
for p in sorted(glob.glob(os.path.join(EXPDIR, "*"))):
    if os.path.isfile(p):
        expected[sha_file(p)] = os.path.basename(p)
        exp_orders += order_ids(p)

work = os.path.join(SPOOL, "work")
outd = os.path.join(SPOOL, "out/sage")
errd = os.path.join(SPOOL, "error")
arcd = os.path.join(SPOOL, "archive")
inc = os.path.join(SPOOL, "in/clarity")

# ---------------------------------------------------------------- folders
if not os.path.isdir(work):
    out(False, "the spool exists", f"{SPOOL}: no work/ folder")
    sys.exit(0)
left = sorted(os.listdir(work))
out(not left, "work/ is empty", f"work/ holds {left}")

temps = []
for top in (outd, errd, arcd):
    for p in walk_files(top):
        n = os.path.basename(p)
        if n.endswith(".sbtmp") or (top == outd and n.startswith(".")):
            temps.append(os.path.relpath(p, SPOOL))
out(not temps, "no hidden temp file in out/sage, error/, archive/", f"found {temps}")

if not allow_in:
    inl = sorted(os.listdir(inc))
    out(not inl, "in/clarity is empty", f"in/clarity holds {inl}")
if not allow_error:
    el = sorted(os.listdir(errd))
    out(not el, "error/ is empty", f"error/ holds {el}")

# ---------------------------------------------------------------- out/sage
dones = sorted(n for n in os.listdir(outd) if n.endswith(".done"))
bad = []
listed = {}  # name -> sha
done_of_batch = {}  # batch id -> {name: sha}
for d in dones:
    r = subprocess.run(["sha256sum", "--quiet", "-c", d], cwd=outd, capture_output=True, text=True)
    if r.returncode != 0:
        bad.append(f"{d}: {(r.stdout + r.stderr).strip()[:200]}")
    entries = {}
    with open(os.path.join(outd, d)) as f:
        for line in f:
            if line.strip():
                h, n = line.rstrip("\n").split("  ", 1)
                entries[n] = h
                listed[n] = h
    # SO_<batch>.done
    bid = d[:-5].split("_", 1)[1] if "_" in d else d[:-5]
    done_of_batch[bid] = entries
out(not bad, "every .done verifies with sha256sum -c", "; ".join(bad))

visible = sorted(n for n in os.listdir(outd) if not n.startswith(".") and not n.endswith(".done"))
unlisted = [n for n in visible if n not in listed]
out(not unlisted, "every published output is listed in a .done", f"not in any .done: {unlisted}")

out(len(dones) == len(expected), f"one .done per input ({len(expected)})",
    f"{len(dones)} .done files: {dones}")

pub = []
for n in visible:
    if n.startswith("SO_") and n.endswith("_StgSalesOrder.csv"):
        with open(os.path.join(outd, n), encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                pub.append(row.get("CustPONo"))
seen, doubled = set(), set()
for k in pub:
    if k in seen:
        doubled.add(k)
    seen.add(k)
out(not doubled, "no orderId published twice", f"{len(doubled)} doubled, e.g. {sorted(doubled)[:5]}")
missing = sorted(set(exp_orders) - seen)
out(not missing, f"every dropped order published ({len(set(exp_orders))})",
    f"{len(missing)} never published, e.g. {missing[:5]}")
extra = sorted(seen - set(exp_orders))
out(not extra, "no order published that was not dropped", f"e.g. {extra[:5]}")

# ---------------------------------------------------------------- archive
mans = []  # dicts: sha, man, raw, path, outputs{name: sha}
broken = []
for p in sorted(glob.glob(os.path.join(arcd, "*/*/*/*.tar.gz"))):
    try:
        with tarfile.open(p, "r:gz") as t:
            raw = t.extractfile("manifest.json").read()
            outs = {}
            for m in t.getmembers():
                if m.isfile() and m.name.startswith("output/") and not m.name.endswith(".rejects.json"):
                    outs[m.name[7:]] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
            inp = [m for m in t.getmembers() if m.name.startswith("input/")]
            in_sha = hashlib.sha256(t.extractfile(inp[0]).read()).hexdigest() if inp else None
        man = json.loads(raw)
        mans.append({"sha": hashlib.sha256(raw).hexdigest(), "man": man, "path": p,
                     "outputs": outs, "in_sha": in_sha})
    except Exception as e:  # a torn archive is a failure, not a crash of the checker
        broken.append(f"{os.path.relpath(p, SPOOL)}: {e}")
out(not broken, "every archive opens and has a manifest", "; ".join(broken))

per_sha = {}
for m in mans:
    per_sha.setdefault(m["man"]["input"]["sha256"], []).append(m)
probs = []
for sha, name in expected.items():
    ms = per_sha.get(sha, [])
    nd = [m for m in ms if m["man"].get("duplicate_of") is None]
    if len(nd) != 1:
        probs.append(f"{name}: {len(nd)} non-duplicate batches")
out(not probs, "every input archived exactly once as a non-duplicate batch", "; ".join(probs))
extra = [f"{os.path.basename(m['path'])} (input {m['man']['input']['name']}"
         f"{', duplicate' if m['man'].get('duplicate_of') else ''})"
         for m in mans if m["man"]["input"]["sha256"] not in expected
         or len(per_sha[m["man"]["input"]["sha256"]]) > 1]
out(not extra, "no other or second batch archived", "; ".join(extra[:6]))
wrong_in = [os.path.basename(m["path"]) for m in mans
            if m["in_sha"] != m["man"]["input"]["sha256"]]
out(not wrong_in, "archived inputs are byte-exact (sha256 as in the manifest)", f"{wrong_in}")

# archived outputs = what the batch's .done lists (the archive proves what Sage got)
mism = []
for m in mans:
    if m["man"].get("duplicate_of"):
        continue
    bid = m["man"]["batch"]
    d = done_of_batch.get(bid)
    # the marker itself may be archived too: then byte-equal to the published one
    outs = {n: h for n, h in m["outputs"].items() if not n.endswith(".done")}
    marks = {n: h for n, h in m["outputs"].items() if n.endswith(".done")}
    if d is None:
        mism.append(f"{bid}: archived but no .done in out/sage")
    elif d != outs:
        mism.append(f"{bid}: archived outputs {sorted(outs)} differ from its .done {sorted(d)}")
    for n, h in marks.items():
        p = os.path.join(outd, n)
        if not os.path.exists(p) or sha_file(p) != h:
            mism.append(f"{bid}: archived {n} differs from the one in out/sage")
out(not mism, "archived outputs are exactly the published ones", "; ".join(mism[:4]))

# chain
chain_probs = []
heads = [m for m in mans if m["man"].get("prev") is None]
if len(heads) != 1:
    chain_probs.append(f"{len(heads)} manifests have prev null")
by_prev = {}
for m in mans:
    if m["man"].get("prev") is not None:
        by_prev.setdefault(m["man"]["prev"], []).append(m)
for k, v in by_prev.items():
    if len(v) > 1:
        chain_probs.append(f"{len(v)} manifests share prev {k[:12]}")
order = []
if len(heads) == 1:
    cur = heads[0]
    seen_ids = set()
    while cur and cur["sha"] not in seen_ids:
        seen_ids.add(cur["sha"])
        order.append(cur)
        nxt = by_prev.get(cur["sha"], [])
        cur = nxt[0] if nxt else None
    if len(order) != len(mans):
        chain_probs.append(f"the chain from the first manifest reaches {len(order)} of {len(mans)}")
try:
    with open(os.path.join(arcd, "CHAIN")) as f:
        ch = f.read().split()
except OSError as e:
    ch = []
    if mans:
        chain_probs.append(f"archive/CHAIN: {e}")
if order and (len(ch) < 2 or ch[0] != order[-1]["sha"] or ch[1] != order[-1]["man"]["batch"]):
    chain_probs.append(f"archive/CHAIN says {' '.join(ch)[:90]}, the last manifest is "
                       f"{order[-1]['sha'][:12]} {order[-1]['man']['batch']}")
out(not chain_probs, "manifests form one chain ending at archive/CHAIN", "; ".join(chain_probs))
if check_order and order:
    rec = [m["man"].get("received_at") or "" for m in order]
    out(rec == sorted(rec), "the chain follows claim order", f"received_at along the chain: {rec}")

# ---------------------------------------------------------------- ledger
conf = os.path.join(SPOOL, "sagebridge.conf")
def sbrun(*a):
    try:
        return subprocess.run([SB, "-c", conf, *a], capture_output=True, text=True)
    except OSError as e:  # the binary could not be run at all
        return subprocess.CompletedProcess(a, 126, "", str(e))


r = sbrun("archive", "verify")
out(r.returncode == 0, "sagebridge archive verify passes",
    f"exit {r.returncode}: {(r.stdout + r.stderr).strip()[:300]}")
r = sbrun("status", "--json")
try:
    st = json.loads(r.stdout)
    badb = [f"{b['input']}: {b['state']}" for b in st["last_batches"] if b["state"] not in states]
    wf = st["folders"]["work"]["files"]
    out(r.returncode == 0 and not badb and wf == 0 and st["last_batches"],
        f"status --json: last batches {'/'.join(sorted(states))}, work/ empty",
        f"exit {r.returncode}, work files {wf}, {len(st['last_batches'])} last batches, "
        f"not {'/'.join(sorted(states))}: {badb}")
except Exception as e:
    out(False, "status --json: last batches archived, work/ empty",
        f"exit {r.returncode}: {e}: {r.stdout[:200]} {r.stderr[:200]}")
