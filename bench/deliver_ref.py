#!/usr/bin/env python3
"""deliver_ref.py - the reference for `deliver`: the mock API's own ceiling.

    deliver_ref.py PORT BATCH.json

Sends BATCH's operations to the mock Clarity API on 127.0.0.1:PORT (--auth none) in order,
one at a time, over one keep-alive HTTP/1.1 connection (http.client), each with its
Idempotency-Key, the way a minimal client would: no ledger, no retries, no response files.
Checks every answer is 2xx.  Prints one JSON line: {"ops": N, "wall": SECONDS,
"ops_per_s": R, "failed": F}.  Exit 1 when an operation failed.
"""
import http.client
import json
import sys
import time


def main():
    port, batch = int(sys.argv[1]), sys.argv[2]
    with open(batch, encoding="utf-8") as f:
        ops = json.load(f)["operations"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    failed = 0
    t0 = time.perf_counter()
    for op in ops:
        body = json.dumps(op.get("body"), separators=(",", ":")).encode() if "body" in op else None
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Idempotency-Key": op.get("idempotencyKey", "")}
        conn.request(op["method"], op["path"], body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        if not 200 <= r.status < 300:
            failed += 1
    wall = time.perf_counter() - t0
    conn.close()
    print(json.dumps({"ops": len(ops), "wall": round(wall, 6),
                      "ops_per_s": round(len(ops) / wall, 2) if wall else None, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
