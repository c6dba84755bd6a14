#!/usr/bin/env python3
"""json_match.py EXPECTED ACTUAL - compare two JSON documents; "*" in EXPECTED matches any value."""
import json
import sys


def match(e, a, where):
    if e == "*":
        return None
    if type(e) is not type(a):
        return f"{where}: expected {e!r}, got {a!r}"
    if isinstance(e, dict):
        if list(e) != list(a):
            return f"{where}: keys {list(a)} differ from expected {list(e)}"
        for k in e:
            r = match(e[k], a[k], f"{where}.{k}")
            if r:
                return r
        return None
    if isinstance(e, list):
        if len(e) != len(a):
            return f"{where}: {len(a)} elements, expected {len(e)}"
        for i, (x, y) in enumerate(zip(e, a)):
            r = match(x, y, f"{where}[{i}]")
            if r:
                return r
        return None
    return None if e == a else f"{where}: expected {e!r}, got {a!r}"


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        e = json.load(f)
    try:
        with open(sys.argv[2], encoding="utf-8") as f:
            a = json.load(f)
    except (OSError, ValueError) as x:
        print(f"unreadable: {x}")
        return 1
    r = match(e, a, "$")
    if r:
        print(r)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
