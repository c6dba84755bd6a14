#!/usr/bin/env python3
"""gen-orders.py SIZE_MB OUT [--shape array|ndjson|wrapper] [--seed N]

Writes a deterministic Clarity export (camelCase orders) of about SIZE_MB
megabytes.  Every order passes the totals rule, so a conversion writes all
of them.  Same arguments, same bytes.
"""
import argparse
import random
from decimal import Decimal

STATES = [("CA", "US"), ("TX", "US"), ("NY", "US"), ("WA", "US"), ("IL", "US"), ("ON", "CA")]
METHODS = ["standard", "2-day", "overnight", "Ground"]


def order(i, rnd):
    lines = []
    net = Decimal(0)
    tax = Decimal(0)
    for n in range(rnd.randint(1, 5)):
        q = Decimal(rnd.randint(1, 9))
        up = Decimal(rnd.randint(100, 99999)) / 100
        disc = Decimal(rnd.choice([0, 0, 0, 100, 250])) / 100
        t = (q * up * Decimal("0.0825")).quantize(Decimal("0.01"))
        net += q * up - disc
        tax += t
        lines.append('{"sku":"SKU-%05d","name":"Widget model %d, blue","quantity":%s,'
                     '"unitPrice":%s,"tax":%s,"discount":%s}' % (rnd.randint(1, 99999), n, q, up, t, disc))
    ship = Decimal(rnd.choice([0, 595, 995, 1495])) / 100
    total = net + tax + ship
    st, co = rnd.choice(STATES)
    addr = ('{"name":"Customer %d","street1":"%d Main Street","street2":"Suite %d","city":"Springfield",'
            '"state":"%s","zipCode":"%05d","country":"%s"}' % (i, rnd.randint(1, 9999), rnd.randint(1, 99), st,
                                                             rnd.randint(10000, 99999), co))
    return ('{"orderId":"CL-%d","customerId":"C%06d","orderDate":"2026-11-%02dT%02d:%02d:00Z","status":"Paid",'
            '"totalAmount":%s,"currency":"USD","shippingMethod":"%s","shippingAmount":%s,"taxAmount":%s,'
            '"shippingAddress":%s,"billingAddress":%s,"lineItems":[%s],'
            '"paymentInfo":{"transactionId":"T%d","amount":%s,"method":"card"}}'
            % (1000000 + i, rnd.randint(1, 999999), rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59),
               total, rnd.choice(METHODS), ship, tax, addr, addr, ",".join(lines), i, total))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("size_mb", type=float)
    ap.add_argument("out")
    ap.add_argument("--shape", default="array", choices=["array", "ndjson", "wrapper"])
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    limit = int(a.size_mb * 1_000_000)
    size = 0
    i = 0
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        head = {"array": "[\n", "ndjson": "", "wrapper": '{"exportedAt":"2026-11-26T00:00:00Z","orders":[\n'}[a.shape]
        f.write(head)
        size += len(head)
        while size < limit:
            o = order(i, rnd)
            sep = ("\n" if a.shape == "ndjson" else ",\n") if i else ""
            f.write(sep + o)
            size += len(sep) + len(o)
            i += 1
        f.write({"array": "\n]\n", "ndjson": "\n", "wrapper": "\n]}\n"}[a.shape])


if __name__ == "__main__":
    main()
