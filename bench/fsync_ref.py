#!/usr/bin/env python3
"""fsync_ref.py - the small-file reference: what publishing one file durably costs at least.

    fsync_ref.py DIR COUNT SAMPLE

COUNT times: write SAMPLE's bytes to DIR/.NAME.tmp, fsync(2) it, rename(2) it to DIR/NAME,
fsync(2) DIR -- the sequence SPEC §3 rule 4 asks of every published file, and nothing else.
DIR should be on the filesystem the spool is on (bench/out/).  Prints one JSON line:
{"ops": COUNT, "wall": SECONDS, "per_op_ms": MS, "bytes": SIZE} (the loop only, not start-up).
"""
import json
import os
import sys
import time


def main():
    d, count, sample = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(sample, "rb") as f:
        data = f.read()
    os.makedirs(d, exist_ok=True)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    t0 = time.perf_counter()
    for i in range(count):
        name = "ref-%06d.json" % i
        tmp = os.path.join(d, "." + name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, os.path.join(d, name))
        os.fsync(dfd)
    wall = time.perf_counter() - t0
    os.close(dfd)
    print(json.dumps({"ops": count, "wall": round(wall, 6), "per_op_ms": round(wall / count * 1000, 4),
                      "bytes": len(data)}))


if __name__ == "__main__":
    main()
