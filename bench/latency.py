#!/usr/bin/env python3
"""latency.py - rename-into-in/clarity -> .done-in-out/sage latency, with `run` watching.

    latency.py SAGEBRIDGE CONF SPOOL COUNT [--rss-exec PATH] [--log FILE]

Starts `SAGEBRIDGE -c CONF run` (watching, inotify), waits for its "watching" line, then COUNT
times: writes a one-order file (shaped by bench/gen-orders.py's order()) under an ignored
temp name in SPOOL/in/clarity/, renames it to orders-lat-NNNN.json and times, from just before
rename(2), until SPOOL/out/sage/SO_<batch>.done appears (inotify on out/sage, the batch found by
the first 8 hex of the file's SHA-256).  Single files: the next one is dropped only once the
previous one has left in/ and work/ (archived), plus 20 ms.  Then SIGTERM; `run` must drain and
exit 0.

Prints one JSON line: {"n", "p50_ms", "p95_ms", "max_ms", "min_ms", "mean_ms", "timeouts",
"rss_kb" (the watcher's peak RSS, through rss_exec), "rc"}.  Percentiles are nearest-rank; a
sample with no .done after 10 s counts as 10 s (and in "timeouts").
Exit 1 when the watcher did not start or did not stop cleanly (exit 0 after SIGTERM).
"""
import argparse
import ctypes
import ctypes.util
import hashlib
import importlib.util
import json
import math
import os
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 10.0
IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x8, 0x80, 0x100


def gen_module():
    spec = importlib.util.spec_from_file_location("gen_orders", os.path.join(HERE, "gen-orders.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Watch:
    """inotify on one folder through libc (no third-party module); names as they appear"""

    def __init__(self, path):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = self.libc.inotify_add_watch(self.fd, path.encode(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + path)

    def names(self, timeout):
        r, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not r:
            return []
        out = []
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        i = 0
        while i + 16 <= len(buf):
            _, _, _, ln = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16:i + 16 + ln].split(b"\0", 1)[0].decode("utf-8", "replace")
            out.append(name)
            i += 16 + ln
        return out


def pct(sorted_ms, p):
    k = max(1, math.ceil(p / 100 * len(sorted_ms)))
    return sorted_ms[k - 1]


def wait_for(pred, timeout, step=0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sb")
    ap.add_argument("conf")
    ap.add_argument("spool")
    ap.add_argument("count", type=int)
    ap.add_argument("--rss-exec", default=os.path.join(HERE, "out", "rss_exec"))
    ap.add_argument("--log", default=os.devnull)
    a = ap.parse_args()

    inbox = os.path.join(a.spool, "in", "clarity")
    work = os.path.join(a.spool, "work")
    outbox = os.path.join(a.spool, "out", "sage")
    gen = gen_module()
    rnd = random.Random(11)
    watch = Watch(outbox)

    fd, report = tempfile.mkstemp(prefix="rss-", suffix=".txt")
    os.close(fd)
    errlog = tempfile.NamedTemporaryFile(prefix="watch-", suffix=".log", delete=False)
    proc = subprocess.Popen([a.rss_exec, report, a.sb, "-c", a.conf, "run"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog)

    def log_text():
        with open(errlog.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    result = {"n": 0, "timeouts": 0, "rc": None, "rss_kb": None}
    ok = wait_for(lambda: "event=watching" in log_text() or proc.poll() is not None, 15, 0.01)
    ok = ok and proc.poll() is None
    lat = []
    if not ok:
        sys.stderr.write("latency.py: the watcher did not start:\n" + log_text()[-2000:])
    for i in range(a.count if ok else 0):
        body = "[\n" + gen.order(9000000 + i, rnd) + "\n]\n"
        data = body.encode()
        sha8 = hashlib.sha256(data).hexdigest()[:8]
        name = "orders-lat-%04d.json" % i
        tmp = os.path.join(inbox, ".%s.part" % name)
        with open(tmp, "wb") as f:
            f.write(data)
        watch.names(0)  # drain what earlier batches left
        want = "-%s.done" % sha8
        t0 = time.perf_counter()
        os.rename(tmp, os.path.join(inbox, name))
        got = None
        while got is None:
            left = TIMEOUT_S - (time.perf_counter() - t0)
            if left <= 0:
                break
            for n in watch.names(left):
                if n.startswith("SO_") and n.endswith(want):
                    got = time.perf_counter()
        if got is None and any(n.startswith("SO_") and n.endswith(want) for n in os.listdir(outbox)):
            got = time.perf_counter()  # (an event lost to a queue overflow)
        if got is None:  # counted as TIMEOUT_S: it weighs on the percentiles, not on the exit status
            result["timeouts"] += 1
            lat.append(TIMEOUT_S * 1000)
            sys.stderr.write("latency.py: %s: no .done within %.0f s\n" % (name, TIMEOUT_S))
        else:
            lat.append((got - t0) * 1000)
        # single files: wait until this one is archived (gone from in/ and work/)
        wait_for(lambda: not os.path.exists(os.path.join(inbox, name)) and not os.listdir(work), TIMEOUT_S)
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    try:
        with open(report, encoding="ascii") as f:
            _, rss, rc = f.read().split()
        result["rss_kb"], result["rc"] = int(rss), int(rc)
    except (OSError, ValueError):
        result["rc"] = proc.returncode
    os.unlink(report)
    if a.log != os.devnull:
        with open(a.log, "a", encoding="utf-8") as f:
            f.write(log_text())
    os.unlink(errlog.name)
    lat.sort()
    result["n"] = len(lat)
    if lat:
        result.update(p50_ms=round(pct(lat, 50), 2), p95_ms=round(pct(lat, 95), 2),
                      max_ms=round(lat[-1], 2), min_ms=round(lat[0], 2),
                      mean_ms=round(sum(lat) / len(lat), 2))
    print(json.dumps(result, sort_keys=True))
    return 0 if ok and result["rc"] == 0 and lat else 1


if __name__ == "__main__":
    sys.exit(main())
