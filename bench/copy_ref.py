#!/usr/bin/env python3
"""copy_ref.py - the disk's share of `convert --format both`: writing its output bytes durably.

    copy_ref.py SRC_DIR DEST_DIR

Copies every regular file of SRC_DIR (the outputs of the last `convert --format both`: two
CSVs, the XML and the .done, about 3.8 times the input) to DEST_DIR the way publish.c writes
them -- 256 KiB writes to a temporary name, the kernel's writeback started every 8 MiB
(sync_file_range(2) without waiting, as publish.c does), fsync(2), rename(2), fsync(2) of the
folder -- with nothing else: no parsing, no mapping, no hashing.  The sources are in the page cache (just
written), so this measures the copy into the page cache and the disk's durable write speed,
which bound any program that must leave these bytes durable.  DEST_DIR should be on the
filesystem the spool is on (bench/out/).  Prints one JSON line:
{"files": N, "bytes": B, "wall": SECONDS, "mb_per_s": RATE} (the copy only, not start-up).
"""
import ctypes
import json
import os
import sys
import time

CHUNK = 256 * 1024
WRITEBACK = 8 << 20
SYNC_FILE_RANGE_WRITE = 2
libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def main():
    src, dest = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(src) if os.path.isfile(os.path.join(src, n)) and not n.startswith("."))
    os.makedirs(dest, exist_ok=True)
    dfd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    total = 0
    t0 = time.perf_counter()
    for name in names:
        tmp = os.path.join(dest, "." + name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        written = hinted = 0
        with open(os.path.join(src, name), "rb", buffering=0) as f:
            while True:
                b = f.read(CHUNK)
                if not b:
                    break
                os.write(fd, b)
                written += len(b)
                if written - hinted >= WRITEBACK:
                    libc.sync_file_range(fd, hinted, written - hinted, SYNC_FILE_RANGE_WRITE)
                    hinted = written
        total += written
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, os.path.join(dest, name))
    os.fsync(dfd)
    wall = time.perf_counter() - t0
    os.close(dfd)
    print(json.dumps({"files": len(names), "bytes": total, "wall": round(wall, 6),
                      "mb_per_s": round(total / wall / 1e6, 1)}))


if __name__ == "__main__":
    main()
