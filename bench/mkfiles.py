#!/usr/bin/env python3
"""mkfiles.py - bench data that gen-orders.py does not write in one go.

    mkfiles.py orders DIR COUNT [--seed N]   COUNT one-order files DIR/orders-NNNNNN.json
                                              (a top-level array of one order each; distinct
                                              orderIds and contents, so no two are duplicates)
    mkfiles.py items FILE ROWS               a Sage 500 items export (ItemID, ShortDesc, Status,
                                              StdPrice) with ROWS rows: one product upsert each

The orders come from bench/gen-orders.py's own order() (imported, not copied), so a one-order
file is shaped exactly like a record of the big export.  Deterministic: same arguments, same
bytes.  Every file gets an mtime one hour back, so `run --once` takes it without waiting for
settle_ms (hard links made from these files share that mtime).
"""
import argparse
import importlib.util
import os
import random
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def gen_module():
    spec = importlib.util.spec_from_file_location("gen_orders", os.path.join(HERE, "gen-orders.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def old(path):
    t = time.time() - 3600
    os.utime(path, (t, t))


def orders(a):
    gen = gen_module()
    rnd = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    for i in range(a.count):
        p = os.path.join(a.dir, "orders-%06d.json" % i)
        with open(p, "w", encoding="utf-8", newline="\n") as f:
            # orderIds far above the big export's (1000000 + i) so the two never collide
            f.write("[\n" + gen.order(5000000 + i, rnd) + "\n]\n")
        old(p)


def items(a):
    rnd = random.Random(a.seed)
    with open(a.file, "w", encoding="utf-8", newline="") as f:
        f.write("ItemID,ShortDesc,Status,StdPrice\r\n")
        for i in range(a.rows):
            f.write("BENCH-%06d,Bench widget %d,1,%d.%02d\r\n"
                    % (i, i, rnd.randint(1, 999), rnd.randint(0, 99)))
    old(a.file)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("orders")
    o.add_argument("dir")
    o.add_argument("count", type=int)
    o.add_argument("--seed", type=int, default=7)
    o.set_defaults(fn=orders)
    it = sub.add_parser("items")
    it.add_argument("file")
    it.add_argument("rows", type=int)
    it.add_argument("--seed", type=int, default=7)
    it.set_defaults(fn=items)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
