#!/usr/bin/env python3
"""measure.py - run one command once and record what it cost, as one JSON line.

    measure.py run RECORDS ID [--stdout FILE] [--stderr FILE] [--json-stdout] -- CMD...
        wall time, peak RSS of CMD (wait4's ru_maxrss in KiB: the largest of CMD and the
        children it waited for) and exit status, taken by bench/out/rss_exec (rss_exec.c: a
        process spawned straight from Python would also count the interpreter's own memory).
        --json-stdout: CMD prints a JSON object as its last stdout line; it is kept as "extra".
    measure.py strace RECORDS ID [--stdout FILE] [--stderr FILE] -- CMD...
        CMD under `strace -f -c --seccomp-bpf -e trace=<fsync family>`: how many fsync-family
        calls (fsync, fdatasync, sync_file_range, syncfs, sync) it and every thread/child made.
        Only those calls stop the tracee (seccomp-bpf), so the tracing costs next to nothing.
    measure.py meta RECORDS ID KEY=VALUE...
        a metadata record (numbers are stored as numbers).

Each call appends one JSON line to RECORDS (and says what it measured on stderr).  Exit status: 0 when CMD exited 0
(for strace: when strace and CMD exited 0), else 1.  Nothing here decides PASS/FAIL.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

FSYNC_FAMILY = ["fsync", "fdatasync", "sync_file_range", "syncfs", "sync"]


def append(records, rec):
    """add rec to RECORDS; a one-line summary on stderr (progress), none for meta"""
    line = json.dumps(rec, sort_keys=True)
    with open(records, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    if rec["kind"] == "run":
        extra = " " + json.dumps(rec["extra"], sort_keys=True) if rec.get("extra") else ""
        sys.stderr.write("        %.3f s, peak RSS %.1f MB, exit %d%s\n"
                         % (rec["wall"], rec["rss_kb"] * 1024 / 1e6, rec["rc"], extra))
    elif rec["kind"] == "strace":
        sys.stderr.write("        %d fsync-family calls %s, exit %d\n"
                         % (rec["fsync"], json.dumps(rec["calls"], sort_keys=True), rec["rc"]))


def parse_opts(argv):
    opts = {"stdout": os.devnull, "stderr": None, "json_stdout": False}
    i = 0
    while i < len(argv) and argv[i] != "--":
        a = argv[i]
        if a in ("--stdout", "--stderr"):
            opts[a[2:]] = argv[i + 1]
            i += 2
        elif a == "--json-stdout":
            opts["json_stdout"] = True
            i += 1
        else:
            sys.exit("measure.py: unknown option %s" % a)
    if i >= len(argv) - 1:
        sys.exit("measure.py: no command after --")
    return opts, argv[i + 1:]


RSS_EXEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "rss_exec")


def spawn(cmd, opts):
    """run cmd through rss_exec; (wall seconds, peak RSS KiB, exit status, stdout text or None)"""
    out_path = opts["stdout"]
    cap = None
    if opts["json_stdout"]:
        cap = tempfile.TemporaryFile(mode="w+b")
        out = cap
    else:
        out = open(out_path, "wb")
    err = open(opts["stderr"], "ab") if opts["stderr"] else None
    fd, report = tempfile.mkstemp(prefix="rss-", suffix=".txt")
    os.close(fd)
    p = subprocess.run([RSS_EXEC, report] + cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                       check=False)
    try:
        with open(report, encoding="ascii") as f:
            w, r, c = f.read().split()
        wall, rss, rc = float(w), int(r), int(c)
    except (OSError, ValueError):
        wall, rss, rc = 0.0, 0, p.returncode or 127
    os.unlink(report)
    text = None
    if cap is not None:
        cap.seek(0)
        text = cap.read().decode("utf-8", "replace")
        cap.close()
    else:
        out.close()
    if err:
        err.close()
    return wall, rss, rc, text


def cmd_run(records, ident, argv):
    opts, cmd = parse_opts(argv)
    wall, rss, rc, text = spawn(cmd, opts)
    rec = {"id": ident, "kind": "run", "wall": round(wall, 6), "rss_kb": rss, "rc": rc}
    if opts["json_stdout"]:
        lines = [ln for ln in (text or "").splitlines() if ln.strip()]
        try:
            rec["extra"] = json.loads(lines[-1])
        except (IndexError, ValueError):
            rec["extra"] = None
            rec["rc"] = rc if rc else 1
            sys.stderr.write("measure.py: %s printed no JSON line: %r\n" % (ident, (text or "")[-300:]))
    append(records, rec)
    return 0 if rec["rc"] == 0 else 1


def cmd_strace(records, ident, argv):
    opts, cmd = parse_opts(argv)
    fd, summary = tempfile.mkstemp(prefix="strace-", suffix=".txt")
    os.close(fd)
    st = ["strace", "-f", "-c", "-q", "--seccomp-bpf", "-e", "trace=" + ",".join(FSYNC_FAMILY),
          "-o", summary, "--"] + cmd
    wall, _, rc, _ = spawn(st, opts)
    counts = {}
    with open(summary, encoding="utf-8", errors="replace") as f:
        for line in f:
            # % time     seconds  usecs/call     calls    errors syscall
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$", line)
            if m and m.group(3) in FSYNC_FAMILY:
                counts[m.group(3)] = int(m.group(1))
    os.unlink(summary)
    rec = {"id": ident, "kind": "strace", "fsync": sum(counts.values()), "calls": counts, "rc": rc,
           "wall": round(wall, 6)}
    append(records, rec)
    return 0 if rc == 0 else 1


def cmd_meta(records, ident, argv):
    rec = {"id": ident, "kind": "meta"}
    for kv in argv:
        k, _, v = kv.partition("=")
        # a number only when it is written as one: a hash prefix such as 9802400e5476 is
        # text (float() took it for 9802400 x 10^5476, and the report printed "inf")
        if re.fullmatch(r"-?[0-9]+", v):
            rec[k] = int(v)
        elif re.fullmatch(r"-?[0-9]+\.[0-9]+", v):
            rec[k] = float(v)
        else:
            rec[k] = v
    append(records, rec)
    return 0


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    what, records, ident, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    fn = {"run": cmd_run, "strace": cmd_strace, "meta": cmd_meta}.get(what)
    if not fn:
        sys.exit(__doc__)
    sys.exit(fn(records, ident, rest))


if __name__ == "__main__":
    main()
