#!/usr/bin/env python3
"""report.py - turn bench/run.sh's records into the table, the SPEC §10 verdicts and RESULTS.md.

    report.py RECORDS.jsonl RESULTS.md [--out-dir bench/out]

RECORDS holds one JSON object a line, written by bench/measure.py: "run" (wall, rss_kb, rc,
extra), "strace" (fsync), "meta" (anything, including "broken").  Prints the table and one
line per target (TARGET | MEASURED | PASS/FAIL) on stdout, writes RESULTS.md with the machine's
description.  Exit 1 when a measurement is broken or missing, else 0: a FAIL is a result.

Units: MB = 10^6 bytes (gen-orders.py's SIZE_MB, throughput and RSS alike); peak RSS is
ru_maxrss of the measured process, the largest over its runs.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from collections import defaultdict

RSS_LIMIT_MB = 32.0
LIST_LIMIT_S = 0.5  # "well under 1 s", read as: at most half of it


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Recs:
    def __init__(self, path):
        self.runs = defaultdict(list)
        self.traces = defaultdict(list)
        self.meta = defaultdict(list)
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                {"run": self.runs, "strace": self.traces, "meta": self.meta}[r["kind"]][r["id"]].append(r)

    def m(self, ident, key, default=None, how="last"):
        vals = [r[key] for r in self.meta.get(ident, []) if key in r]
        if not vals:
            return default
        return {"last": vals[-1], "min": min(vals), "max": max(vals)}[how]

    def broken(self, ident):
        b = self.m(ident, "broken")
        if b:
            return b
        if any(r.get("rc") for r in self.runs.get(ident, [])):
            return "a run exited non-zero"
        return None

    def ok(self, ident):
        return bool(self.runs.get(ident)) and not self.broken(ident)

    def best(self, ident):
        return min(r["wall"] for r in self.runs[ident])

    def best_extra(self, ident, key):
        vals = [r["extra"][key] for r in self.runs[ident] if r.get("extra") and r["extra"].get(key) is not None]
        return min(vals) if vals else None

    def rss_mb(self, ident):
        return max(r["rss_kb"] for r in self.runs[ident]) * 1024 / 1e6

    def n(self, ident):
        return len(self.runs[ident])

    def fsync(self, ident):
        t = self.traces.get(ident)
        return t[-1]["fsync"] if t else None

    def fsync_calls(self, ident):
        t = self.traces.get(ident)
        return t[-1].get("calls", {}) if t else {}


def fmt_s(s):
    return "%.3f s" % s if s < 10 else "%.1f s" % s


def fmt_mb(mb):
    return "%.1f MB" % mb


def fmt_rate(v, unit):
    return ("%.0f %s" if v >= 100 else "%.1f %s" if v >= 10 else "%.2f %s") % (v, unit)


def machine(out_dir, R):
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        mem = "%.1f GiB" % (kb / 1048576)
    except (OSError, AttributeError):
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
        cpu = m.group(1).strip() if m else platform.processor()
    except OSError:
        cpu = platform.processor()
    dirty = R.m("bench", "dirty", 0)
    return [
        ("date", R.m("bench", "started") or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("nproc", sh(["nproc"]) or str(os.cpu_count())),
        ("memory", mem),
        ("CPU", cpu),
        ("kernel", platform.release()),
        ("filesystem of bench/out", " ".join(sh(["df", "--output=fstype,source", out_dir]).splitlines()[1:2])
         or sh(["stat", "-f", "-c", "%T", out_dir]) or "?"),
        ("speed of each CPU (the yajl parse reference pinned with taskset, best of 3)",
         "; ".join("%s: %s" % (when, R.m("bench", "cpus_" + key)) for when, key in
                   (("at the start", "start"), ("after convert", "convert"), ("at the end", "end"))
                   if R.m("bench", "cpus_" + key)) or "not measured"),
        ("load average (1, 5, 15 min)", "%s at the start, %s at the end" % (R.m("bench", "load_start", "?"),
                                                                          R.m("bench", "load_end", "?"))),
        ("sagebridge", "%s, commit %s%s; binary built %s, sha256 %s… (a copy of it was measured)" % (
            R.m("bench", "version", "?"), R.m("bench", "commit", "?"),
            " + uncommitted changes to %s file(s) in src/, templates/, Makefile" % dirty if dirty else "",
            R.m("bench", "binary_mtime", "?"), R.m("bench", "binary_sha256", "?"))),
        ("yajl", sh(["dpkg-query", "-W", "-f", "${Version}", "libyajl2"]) or "?"),
        ("jq", sh(["jq", "--version"]) or "not installed"),
        ("strace", (sh(["strace", "-V"]).splitlines() or ["not installed"])[0]),
        ("python", platform.python_version()),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("records")
    ap.add_argument("results_md")
    ap.add_argument("--out-dir", default="bench/out")
    a = ap.parse_args()
    R = Recs(a.records)

    n_rep = R.m("bench", "n", 3)
    strace_on = R.m("bench", "strace", 1) == 1
    strace_note = R.m("bench", "strace_note")
    big = R.m("bench", "big", 0) == 1
    bytes200 = R.m("input200", "bytes", 0)
    mb200 = bytes200 / 1e6
    size_label = "%.0f MB" % mb200
    orders200 = R.m("input200", "orders", 0)
    spool_fmt = R.m("spool", "formats", "?")
    spool_fmt_note = "spool formats = %s (%s)" % (
        spool_fmt, "default of sagebridge init" if R.m("spool", "formats_line", "yes") == "yes"
        else "sagebridge init wrote no formats line")

    rows = []  # measurement, input, runs, best wall, throughput, peak RSS, fsync-family, reference, ratio
    broken = []
    speed = {}

    def fs_col(ident, per=None, unit=""):
        if not strace_on:
            return "skipped"
        f = R.fsync(ident)
        if f is None:
            return "—"
        if per:
            return "%.2f/%s (%d)" % (f / per, unit, f)
        return "%d" % f

    def bad(ident, label, inp):
        why = R.broken(ident) or "not measured"
        broken.append((ident, why))
        rows.append([label, inp, "", "ERROR", "", "", "", "", why])

    # references
    if R.ok("parse200"):
        speed["parse200"] = mb200 / R.best("parse200")
        rows.append(["yajl parse only (reference)", size_label, R.n("parse200"), fmt_s(R.best("parse200")),
                     fmt_rate(speed["parse200"], "MB/s"), fmt_mb(R.rss_mb("parse200")), fs_col("parse200"), "—", "—"])
    else:
        bad("parse200", "yajl parse only (reference)", size_label)
    if R.ok("jq200"):
        speed["jq200"] = mb200 / R.best("jq200")
        rows.append(["jq -r, line CSV only (reference)", size_label, R.n("jq200"), fmt_s(R.best("jq200")),
                     fmt_rate(speed["jq200"], "MB/s"), fmt_mb(R.rss_mb("jq200")), "not traced (reads only)", "—", "—"])
    else:
        bad("jq200", "jq -r, line CSV only (reference)", size_label)
    ref_ms = None
    if R.ok("fsyncref") and R.best_extra("fsyncref", "per_op_ms"):
        ref_ms = R.best_extra("fsyncref", "per_op_ms")
        ops = R.m("fsyncref", "ops", 500)
        rows.append(["write+fsync+rename+fsync(dir) (reference)", "%d small files" % ops, R.n("fsyncref"),
                     "%.3f ms/file" % ref_ms, fmt_rate(1000 / ref_ms, "files/s"),
                     "— (Python)", fs_col("fsyncref", ops, "file"), "—", "—"])
    else:
        bad("fsyncref", "write+fsync+rename+fsync(dir) (reference)", "500 small files")

    def big_row(ident, label, mb, ref_id, ref_label, how):
        if not R.ok(ident):
            bad(ident, label, "%.0f MB" % mb)
            return None
        sp = mb / R.best(ident)
        speed[ident] = sp
        ratio = "—"
        if ref_id in speed:
            r = sp / speed[ref_id]
            ratio = ("%.2f× its speed" % r) if how == "x" else ("%.1f %% of its speed" % (100 * r))
        rows.append([label, "%.0f MB" % mb, R.n(ident), fmt_s(R.best(ident)),
                     fmt_rate(sp, "MB/s"), fmt_mb(R.rss_mb(ident)),
                     "%d per input file" % R.fsync(ident) if strace_on and R.fsync(ident) is not None else fs_col(ident),
                     ref_label, ratio])
        return sp

    big_row("csv200", "convert --format csv", mb200, "jq200", "jq -r", "x")
    big_row("both200", "convert --format both", mb200, "parse200", "yajl parse", "%")
    if R.ok("copyref") and R.best_extra("copyref", "wall"):
        w = R.best_extra("copyref", "wall")
        out_mb = R.best_extra("copyref", "bytes") / 1e6
        bound = "—"
        if "parse200" in speed:
            bound = "bounds convert --format both at %.0f %% of yajl parse speed" % (
                100 * (mb200 / w) / speed["parse200"])
        rows.append(["durable copy of the --format both output (reference: write, fsync, rename)",
                     "%.0f MB written" % out_mb, R.n("copyref"), fmt_s(w), fmt_rate(out_mb / w, "MB/s"),
                     "— (Python)", "not traced", "—", bound])
    else:
        bad("copyref", "durable copy of the --format both output (reference)", "the both output")
    big_row("run200", "run --once (claim, convert, publish, archive, ledger)", mb200, "parse200", "yajl parse", "%")
    big_row("run200both", "run --once, formats = both (not a SPEC line: the spool's default is %s)" % spool_fmt,
            mb200, "parse200", "yajl parse", "%")

    files = R.m("files", "files", 0)
    files_pub = R.m("files", "published", 0, "min")
    files_arch = R.m("files", "archived", 0, "min")
    files_err = R.m("files", "errors", 0, "max")
    files_rate = None
    if R.ok("files"):
        w = R.best("files")
        files_rate = files / w
        per_ms = w / files * 1000
        ratio = "%.2f ms/file = %.1f× its time" % (per_ms, per_ms / ref_ms) if ref_ms else "—"
        rows.append(["run --once, one-order files dropped at once", "%d files" % files, R.n("files"),
                     fmt_s(w), fmt_rate(files_rate, "files/s"),
                     fmt_mb(R.rss_mb("files")), fs_col("files", files, "file"), "write+fsync+rename", ratio])
    else:
        bad("files", "run --once, one-order files dropped at once", "%d files" % files)

    lat = None
    if R.ok("latency") and R.runs["latency"][-1].get("extra"):
        lat = R.runs["latency"][-1]["extra"]
        ratio = "p95 = %.1f× its time" % (lat["p95_ms"] / ref_ms) if ref_ms else "—"
        rows.append(["rename into in/clarity → .done (run watching)", "%d single files" % lat["n"], 1,
                     "p50 %.1f ms, p95 %.1f ms, max %.1f ms%s" % (lat["p50_ms"], lat["p95_ms"], lat["max_ms"],
                                                                  ", %d timeouts" % lat["timeouts"] if lat["timeouts"] else ""),
                     "—", fmt_mb(lat["rss_kb"] * 1024 / 1e6) if lat.get("rss_kb") else "—",
                     "not traced (would skew it)", "write+fsync+rename", ratio])
    else:
        bad("latency", "rename into in/clarity → .done (run watching)", "single files")

    for sfx, label in (("", "deliver --once (mock API, TCP_NODELAY)"), ("stock", "deliver --once (stock mock API)")):
        ident, ref = "deliver" + sfx, "deliverref" + sfx
        ops = R.m(ident, "ops", 0)
        if R.ok(ident) and ops:
            w = R.best(ident)
            rate = ops / w
            ratio = "—"
            if R.ok(ref) and R.best_extra(ref, "wall"):
                ratio = "%.2f× its rate (%s)" % (rate / (ops / R.best_extra(ref, "wall")),
                                                fmt_rate(ops / R.best_extra(ref, "wall"), "ops/s"))
            elif not R.ok(ref):
                broken.append((ref, R.broken(ref) or "not measured"))
                ratio = "reference ERROR"
            rows.append([label, "%d product upserts" % ops, R.n(ident), fmt_s(w),
                         fmt_rate(rate, "ops/s"), fmt_mb(R.rss_mb(ident)),
                         fs_col(ident, ops, "op") if R.traces.get(ident) else "not traced",
                         "http.client, same mock", ratio])
        else:
            bad(ident, label, "%d product upserts" % ops)

    nb = R.m("list", "batches", 0)
    list_s = None
    if R.ok("list"):
        list_s = R.best("list")
        ratio = "—"
        if R.ok("listref"):
            ratio = "%.2f× its time (%s)" % (list_s / R.best("listref"), fmt_s(R.best("listref")))
        rows.append(["archive list", "%d batches" % nb, R.n("list"), fmt_s(list_s),
                     fmt_rate(nb / list_s, "batches/s"), fmt_mb(R.rss_mb("list")), fs_col("list"),
                     "%s SELECT *" % R.m("listref", "what", "sqlite3"), ratio])
    else:
        bad("list", "archive list", "%d batches" % nb)

    if big:
        mb1g = R.m("input1g", "bytes", 0) / 1e6
        if R.ok("parse1g"):
            speed["parse1g"] = mb1g / R.best("parse1g")
            rows.append(["yajl parse only (reference)", "%.0f MB" % mb1g, R.n("parse1g"), fmt_s(R.best("parse1g")),
                         fmt_rate(speed["parse1g"], "MB/s"), fmt_mb(R.rss_mb("parse1g")), "—", "—", "—"])
        else:
            bad("parse1g", "yajl parse only (reference)", "1 GB")
        big_row("csv1g", "convert --format csv", mb1g, "jq200", "jq -r at %s" % size_label, "x")
        big_row("both1g", "convert --format both", mb1g, "parse1g", "yajl parse", "%")

    # ------------------------------------------------------------------ targets
    targets = []

    def target(text, value, ok, skip=None):
        if skip:
            targets.append((text, skip, "SKIP"))
        elif value is None:
            targets.append((text, "not measured", "ERROR"))
        else:
            targets.append((text, value, "PASS" if ok else "FAIL"))

    def ratio(a_, b_):
        return speed[a_] / speed[b_] if a_ in speed and b_ in speed else None

    r = ratio("csv200", "jq200")
    target("convert --format csv >= 10x jq -r (line CSV), %s" % size_label,
           None if r is None else "%.2fx (%.1f vs %.1f MB/s)" % (r, speed["csv200"], speed["jq200"]), r is not None and r >= 10)
    r = ratio("both200", "parse200")
    target("convert --format both >= 30 %% of yajl parse speed, %s" % size_label,
           None if r is None else "%.1f %% (%.1f vs %.0f MB/s)" % (100 * r, speed["both200"], speed["parse200"]),
           r is not None and r >= 0.30)
    r = ratio("run200", "parse200")
    target("run --once >= 15 %% of yajl parse speed, %s" % size_label,
           None if r is None else "%.1f %% (%.1f vs %.0f MB/s)" % (100 * r, speed["run200"], speed["parse200"]),
           r is not None and r >= 0.15)
    ids = [i for i in ("csv200", "both200", "run200", "run200both") if R.ok(i)]
    if len(ids) == 4:
        peak = max(R.rss_mb(i) for i in ids)
        target("peak RSS < %.0f MB, %s input (convert csv, convert both, run --once, run --once formats = both)"
               % (RSS_LIMIT_MB, size_label),
               "%.1f MB (%s)" % (peak, ", ".join("%s %.1f" % (i, R.rss_mb(i)) for i in ids)), peak < RSS_LIMIT_MB)
    else:
        target("peak RSS < %.0f MB, %s input" % (RSS_LIMIT_MB, size_label), None, False)
    if big:
        ids = [i for i in ("csv1g", "both1g") if R.ok(i)]
        if len(ids) == 2:
            peak = max(R.rss_mb(i) for i in ids)
            target("peak RSS < %.0f MB, 1 GB input (convert csv, convert both)" % RSS_LIMIT_MB,
                   "%.1f MB (%s)" % (peak, ", ".join("%s %.1f" % (i, R.rss_mb(i)) for i in ids)), peak < RSS_LIMIT_MB)
        else:
            target("peak RSS < %.0f MB, 1 GB input" % RSS_LIMIT_MB, None, False)
    else:
        target("peak RSS < %.0f MB, 1 GB input" % RSS_LIMIT_MB, None, False, skip="not run (BENCH_BIG=1)")
    if files_rate is not None:
        complete = files_pub == files and files_arch == files and not files_err
        target("%d one-order files: all published and archived, >= 150 files/s" % files,
               "%.1f files/s, %d published, %d archived, %d in error/" % (files_rate, files_pub, files_arch, files_err),
               complete and files_rate >= 150)
    else:
        target("%d one-order files >= 150 files/s" % files, None, False)
    if not strace_on:
        target("<= 12 fsync-family calls per file (%d files)" % files, None, False,
               skip="strace skipped: %s" % (strace_note or "BENCH_STRACE=0"))
    elif R.fsync("files") is not None and files:
        per = R.fsync("files") / files
        calls = R.fsync_calls("files")
        target("<= 12 fsync-family calls per file (%d files, strace -c -f)" % files,
               "%.2f per file (%s)" % (per, ", ".join("%s %d" % kv for kv in sorted(calls.items())) or "none"), per <= 12)
    else:
        target("<= 12 fsync-family calls per file", None, False)
    if lat:
        target("rename -> .done p95 <= 200 ms (run watching)",
               "p95 %.1f ms (p50 %.1f, n %d%s)" % (lat["p95_ms"], lat["p50_ms"], lat["n"],
                                                  ", %d timeouts" % lat["timeouts"] if lat["timeouts"] else ""),
               lat["p95_ms"] <= 200)
    else:
        target("rename -> .done p95 <= 200 ms", None, False)
    if list_s is not None:
        target("archive list on %d batches well under 1 s (read: <= %.1f s)" % (nb, LIST_LIMIT_S),
               "%.3f s" % list_s, list_s <= LIST_LIMIT_S)
    else:
        target("archive list well under 1 s", None, False)

    # ------------------------------------------------------------------ output
    head = ["measurement", "input", "runs", "best wall", "throughput", "peak RSS", "fsync-family calls",
            "reference", "ratio to reference"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def line(r):
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()

    print()
    print("sagebridge bench (SPEC §10): best wall time of the runs, MB = 10^6 bytes; %s" % spool_fmt_note)
    print(line(head))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    print()
    tw = max(len(t[0]) for t in targets)
    vw = max(len(t[1]) for t in targets)
    print("SPEC §10 targets")
    for t, v, verdict in targets:
        print("  %s  %s  %s" % (t.ljust(tw), v.ljust(vw), verdict))
    secs = R.m("bench", "seconds")
    if secs is not None:
        print("\nbench took %d min %02d s; RESULTS.md: %s" % (secs // 60, secs % 60, a.results_md))
    for ident, why in broken:
        print("BROKEN %s: %s" % (ident, why))

    mach = machine(a.out_dir, R)
    md = ["# sagebridge benchmark results (SPEC §10)", "",
          "Written by `make bench` (bench/run.sh, bench/report.py); every figure below comes from one run "
          "of it, references included.  Absolute times vary from run to run; the targets are ratios "
          "against references measured in the same run.", "", "## Machine", "",
          "| | |", "|---|---|"]
    md += ["| %s | %s |" % (k, v) for k, v in mach]
    md += ["| bench duration | %s |" % ("%d min %02d s" % (secs // 60, secs % 60) if secs is not None else "?"),
           "| settings | BENCH_N=%s, %s, BENCH_BIG=%s, strace %s, %s |" % (
               n_rep, "%s with %d orders" % (size_label, orders200), "1" if big else "0",
               "on" if strace_on else "off (%s)" % (strace_note or "BENCH_STRACE=0"), spool_fmt_note),
           "", "## Measurements", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    md += ["", "## SPEC §10 targets", "", "| target | measured | verdict |", "|---|---|---|"]
    md += ["| %s | %s | **%s** |" % (t, v, verdict) for t, v, verdict in targets]
    if broken:
        md += ["", "Broken measurements: " + "; ".join("%s (%s)" % b for b in broken)]
    md += ["", "## How it is measured", "",
           "- *best wall*: the shortest of the runs (wall clock, `clock_gettime(CLOCK_MONOTONIC)` around fork..wait4 "
           "in bench/rss_exec.c); *throughput* = input size / best wall.  Inputs come from bench/gen-orders.py "
           "(array shape, seed 42), generated once into bench/out/ and kept; the page cache holds them, so "
           "reads are from memory for every contender alike.",
           "- *interleaved rounds*: the 200 MB lines and their references (yajl parse, jq, convert csv, "
           "convert both, the durable copy) run in %d rounds of one run each, in that order, rather "
           "than all runs of one and then all of the next; each is still the best of its runs.  This "
           "machine has slow minutes, and without the rounds a contender whose runs all fell into one "
           "of them was compared with references measured in a quiet one, or the other way round." % n_rep,
           "- *peak RSS*: `ru_maxrss` from wait4(2) of the measured process, the largest over its runs.  "
           "It is taken by a 1 MB C launcher (bench/rss_exec.c) rather than from Python's resource module "
           "directly: Linux carries the parent's peak across fork+exec, so anything spawned by Python "
           "reports at least the interpreter's ~14 MB.",
           "- *fsync-family calls*: one extra run under `strace -f -c --seccomp-bpf -e "
           "trace=fsync,fdatasync,sync_file_range,syncfs,sync` (only those calls are stopped, so the run is "
           "barely slowed); the count is per input file, per file, or per operation as the column says.",
           "- yajl reference: bench/parse_only.c, 256 KiB reads into `yajl_parse` with no callbacks.  jq "
           "reference: `jq -r '%s'` writing its CSV to a file." % (R.m("jq200", "filter", "?")),
           "- write+fsync+rename reference: bench/fsync_ref.py, 500 files the size of one one-order "
           "export, each written under a temp name, fsync'd, renamed, and the folder fsync'd "
           "(SPEC §3 rule 4's sequence and nothing else), in bench/out/ (the spools' filesystem).",
           "- durable copy reference: bench/copy_ref.py copies the files the last `convert --format both` "
           "left (two CSVs, the XML, the .done) into bench/out/ as publish.c writes them (256 KiB writes "
           "to a temp name, writeback started every 8 MiB, fsync, rename, fsync of the folder) and does "
           "nothing else; the sources are in the page cache.  Any program that leaves these bytes durable "
           "needs at least that long, so input size / its time is a ceiling for `--format both` on this "
           "disk, shown as a percentage of the parse reference's speed.",
           "- speed of each CPU: before the references, after the convert measurements and at the end, "
           "bench/parse_only is run three times pinned to each CPU (`taskset -c`), best time shown.  It is "
           "recorded to read the run by, not used in any ratio: the references are single-threaded and "
           "their best run lands on whichever CPU is fast, while sagebridge's reader and mapper threads "
           "use both CPUs at once.",
           "- `convert`: output into an empty folder in bench/out/.  `run --once`: a fresh spool "
           "(`sagebridge init`) with the export hard-linked into in/clarity/ (mtime an hour back, so "
           "settled); checked afterwards: one .done, one archive, nothing in error/ or in/.  The spool "
           "publishes what `sagebridge init` writes in its config: %s." % spool_fmt_note,
           "- run --once, formats = both: informational, not a SPEC §10 line (the spool's default is %s): "
           "the same run on the same %s export, as many runs as run --once, but with the fresh spool's "
           "`formats = ` line edited to `formats = both` before each run, so it publishes the XML beside "
           "the CSVs; checked like run --once plus one SO_*.xml in out/sage.  Its peak RSS counts in the "
           "%s-input RSS target; its speed gets no verdict." % (spool_fmt, size_label, size_label),
           "- one-order files: %d files (bench/mkfiles.py, orders shaped by gen-orders.py's order()) "
           "hard-linked into a fresh spool's in/clarity/, then one `run --once`; afterwards every input "
           "must have its .done in out/sage and its archive." % files,
           "- latency: bench/latency.py keeps `sagebridge run` watching (inotify) and renames one file at a "
           "time from an ignored temp name into in/clarity/; the time runs from just before rename(2) to "
           "the inotify event for out/sage/SO_<batch>.done; the next file goes in once the previous one "
           "is archived.  Percentiles are nearest-rank.",
           "- deliver: a Sage items export of N rows becomes one Clarity batch of N "
           "`POST /Products/Product/Upsert` operations (`run --once`), then `deliver --once` against "
           "tests/lib/mock_clarity.py `--auth none` on 127.0.0.1, reset before every run.  Reference: "
           "bench/deliver_ref.py sending the same operations over one keep-alive http.client connection.  "
           "The stock mock answers in two writes (headers, then body) with Nagle's algorithm on, so "
           "from the second request on every answer waits ~40 ms for the client's delayed ACK: any "
           "client tops out near 22 requests/s there.  The main row therefore runs the same mock through "
           "bench/mock_nodelay.py, which only sets `disable_nagle_algorithm` on its handler; the stock "
           "row (%d operations, one run) is kept to show the ceiling.  (Setting "
           "`Handler.disable_nagle_algorithm = True` in tests/lib/mock_clarity.py would also speed up "
           "the delivery tests.)" % R.m("deliverstock", "ops", 0),
           "- archive list: a fresh spool's ledger (`init`, then `status`) filled by bench/mkledger.py "
           "with %d batches in one transaction (ids, kinds, states, outputs and control totals like "
           "`run` writes), output to a file and checked to have one line per batch.  Reference: the "
           "sqlite3 CLI printing the same rows ordered by claim time." % nb,
           "- \"well under 1 s\" for archive list is read as at most %.1f s." % LIST_LIMIT_S,
           "", "Reproduce: `make bench` (defaults as above); `BENCH_BIG=1 make bench` adds the 1 GB rows; "
           "`BENCH_N`, `BENCH_FILES`, `BENCH_FILES_N`, `BENCH_LAT_N`, `BENCH_DELIVER_OPS`, "
           "`BENCH_BATCHES`, `BENCH_STRACE=0`, `BENCH_KEEP=1` are described at the top of bench/run.sh.", ""]
    # what each change bought: kept by hand in bench/HISTORY.md, carried into every report
    hist = os.path.join(os.path.dirname(os.path.abspath(__file__)), "HISTORY.md")
    if os.path.exists(hist):
        with open(hist, encoding="utf-8") as h:
            md += [h.read().rstrip("\n"), ""]
    with open(a.results_md, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
