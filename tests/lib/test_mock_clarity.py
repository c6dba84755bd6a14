#!/usr/bin/env python3
"""test_mock_clarity.py - self-test of tests/lib/mock_clarity.py.

Starts the mock as a subprocess (one per auth mode, plus a few for the start-up options) and
checks it over HTTP.  Prints one PASS/FAIL line per check and "N passed, M failed"; exits 1 when
anything failed.  Plain python3, standard library only.
"""
import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock_clarity.py")
PASSED = 0
FAILED = 0


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"PASS mock_clarity: {name}")
    else:
        FAILED += 1
        print(f"FAIL mock_clarity: {name}" + (f" ({detail})" if detail else ""))
    return cond


class Mock:
    def __init__(self, *args):
        self.p = subprocess.Popen([sys.executable, MOCK, "--port", "0", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"mock did not start: {line!r} {self.p.stderr.read()}")
        self.port = int(line.split()[1])
        self.cookies = {}

    def req(self, method, path, body=None, headers=None, raw=None, timeout=10):
        """-> (status, headers dict (lower-case names), parsed JSON or raw bytes, set-cookies)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if self.cookies and "Cookie" not in h:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            b = r.read()
            hd = {k.lower(): v for k, v in r.getheaders()}
            sc = r.headers.get_all("Set-Cookie") or []
        finally:
            c.close()
        try:
            parsed = json.loads(b) if b else None
        except ValueError:
            parsed = b
        return r.status, hd, parsed, sc

    def state(self):
        return self.req("GET", "/__mock/state")[2]

    def log(self):
        return self.req("GET", "/__mock/log")[2]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdout, self.p.stderr):
            f.close()


def basic(u, p):
    return {"Authorization": "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()}


def ok_cef(r):
    return r[0] == 200 and isinstance(r[2], dict) and r[2].get("ActionSucceeded") is True


def test_api(m, auth_headers, label):
    """Every route, idempotency and the state endpoint, with the given auth headers."""
    H = dict(auth_headers)
    r = m.req("POST", "/Products/Product/Upsert", {"CustomKey": "SKU-1", "Name": "Widget"}, H)
    check(f"{label}: product upsert creates", ok_cef(r) and isinstance(r[2].get("Result"), int), r)
    pid = r[2].get("Result") if isinstance(r[2], dict) else None
    r = m.req("GET", "/Products/Product/Exists/Key/SKU-1", headers=H)
    check(f"{label}: product exists -> numeric ID", r[0] == 200 and r[2] == pid, r)
    r = m.req("POST", "/Products/Product/Upsert", {"CustomKey": "SKU-1", "Name": "Widget v2"}, H)
    check(f"{label}: product upsert updates the same ID", ok_cef(r) and r[2]["Result"] == pid, r)
    r = m.req("GET", "/Products/Product/Exists/Key/NOPE", headers=H)
    check(f"{label}: missing key -> 204 No Content", r[0] == 204 and r[2] is None, r)
    r = m.req("GET", "/Products/Product/Key/SKU-1", headers=H)
    check(f"{label}: product by key", r[0] == 200 and r[2]["Name"] == "Widget v2", r)

    r = m.req("POST", "/Accounts/Account/Upsert", {"CustomKey": "C-77", "Name": "Acme"}, H)
    check(f"{label}: account upsert", ok_cef(r), r)
    aid = r[2].get("Result")
    r = m.req("GET", "/Accounts/Account/Exists/Key/C-77", headers=H)
    check(f"{label}: account exists", r[0] == 200 and r[2] == aid, r)

    m.req("POST", "/__mock/seed", {"locations": [{"CustomKey": "WH1", "ID": 7001}]})
    inv = {"InventoryToPush": [
        {"ProductID": pid, "QuantityPresent": 40, "QuantityAllocated": 2, "QuantityPreSold": 0},
        {"ProductID": pid, "RelevantLocations": [{"SlaveID": 7001, "Quantity": 30}]},
        {"ProductID": 999999, "QuantityPresent": 5}]}
    r = m.req("PUT", "/Providers/Inventory/BulkUpdateInventoryForProducts", inv, H)
    check(f"{label}: inventory bulk succeeds", ok_cef(r) and "Result" not in r[2], r)
    s = m.state()
    i = s["inventory"].get("SKU-1", {})
    check(f"{label}: inventory quantities set",
          i.get("QuantityPresent") == 40 and i.get("QuantityAllocated") == 2
          and i["Locations"]["WH1"]["Quantity"] == 30
          and s["products"]["SKU-1"]["StockQuantity"] == 40, i)
    check(f"{label}: unknown ProductID skipped silently",
          len(s["inventory_skipped"]) == 1 and s["inventory_skipped"][0]["entry"]["ProductID"] == 999999,
          s["inventory_skipped"])
    r = m.req("PUT", "/Providers/Inventory/BulkUpdateInventoryForProducts",
              {"InventoryToPush": [{"ProductID": "SKU-1", "QuantityPresent": 1}]}, H)
    check(f"{label}: non-numeric ProductID -> 400", r[0] == 400, r)
    r = m.req("PUT", "/Providers/Inventory/BulkUpdateInventoryForProducts", {"InventoryToPush": [
        {"ProductID": pid, "ProductKey": "SKU-1", "LocationKey": "WH1", "QuantityPresent": 7},
        {"ProductID": pid, "ProductKey": "SKU-1", "LocationKey": "WH2", "QuantityPresent": 9}]}, H)
    s = m.state()
    check(f"{label}: flat inventory: first entry per product wins, unknown members counted",
          ok_cef(r) and s["products"]["SKU-1"]["StockQuantity"] == 7
          and s["unbound_members"].get("InventoryToPush[].LocationKey") == 2
          and s["inventory_skipped"][-1]["index"] == 1, (r, s["unbound_members"]))

    r = m.req("POST", "/__mock/seed",
              [{"CustomKey": "CL-100234", "ID": 4711, "StatusName": "Processing"}])
    check(f"{label}: seed orders", r[0] == 200 and r[2]["seeded"] == 1, r)
    r = m.req("GET", "/Ordering/SalesOrder/Exists/Key/CL-100234", headers=H)
    check(f"{label}: order exists -> ID", r[0] == 200 and r[2] == 4711, r)
    r = m.req("PUT", "/Ordering/SalesOrder/Update", {"ID": 4711, "StatusKey": "Completed"}, H)
    check(f"{label}: order status update", ok_cef(r) and r[2]["Result"] == 4711, r)
    o = m.state()["orders"]["CL-100234"]
    check(f"{label}: order now Completed", o["StatusName"] == "Completed"
          and o["StateName"] == "History", o)
    r = m.req("PUT", "/Ordering/SalesOrder/Update", {"ID": 4711, "StatusName": "Bogus"}, H)
    check(f"{label}: unknown status -> ActionSucceeded false",
          r[0] == 200 and r[2]["ActionSucceeded"] is False, r)
    r = m.req("PATCH", "/Ordering/SalesOrder/Ship/4711", headers=H)
    check(f"{label}: ship by ID", ok_cef(r) and m.state()["orders"]["CL-100234"]["StatusName"] == "Shipped", r)
    r = m.req("PATCH", "/Ordering/SalesOrder/Ship/CL-100234", headers=H)
    check(f"{label}: ship by key -> 400 (numeric ID required)", r[0] == 400, r)
    r = m.req("PATCH", "/Ordering/SalesOrder/Ship/999", headers=H)
    check(f"{label}: ship unknown ID -> ActionSucceeded false",
          r[0] == 200 and r[2]["ActionSucceeded"] is False, r)

    shp = {"CustomKey": "SHP-1", "TrackingNumber": "1Z999", "SalesOrderID": 4711,
           "ShipmentLines": [{"Sku": "SKU-1", "ProductID": pid, "Quantity": 2}]}
    r = m.req("POST", "/Shipping/Shipment/Upsert", shp, H)
    check(f"{label}: shipment upsert", ok_cef(r) and isinstance(r[2]["Result"], int), r)
    sh = m.state()["shipments"].get("SHP-1", {})
    check(f"{label}: shipment stored with lines and tracking",
          sh.get("TrackingNumber") == "1Z999" and sh["ShipmentLines"][0]["Quantity"] == 2, sh)

    # idempotency
    hk = dict(H, **{"Idempotency-Key": f"{label}-op-1"})
    r1 = m.req("POST", "/Accounts/Account/Upsert", {"CustomKey": "C-88", "Name": "Beta"}, hk)
    r2 = m.req("POST", "/Accounts/Account/Upsert", {"CustomKey": "C-88", "Name": "Beta"}, hk)
    s = m.state()
    check(f"{label}: idempotent replay returns the first response",
          r1[2] == r2[2] and r2[1].get("idempotent-replayed") == "true", (r1, r2))
    check(f"{label}: idempotent replay not applied again",
          s["applied"].get(f"{label}-op-1") == 1 and s["accounts"]["C-88"]["WriteCount"] == 1, s["applied"])
    r3 = m.req("PUT", "/Ordering/SalesOrder/Update", {"ID": 4711, "StatusKey": "Void"}, hk)
    check(f"{label}: same key on another route -> 422", r3[0] == 422, r3)

    # errors
    r = m.req("GET", "/No/Such/Route", headers=H)
    check(f"{label}: unknown route -> 404 CEF failure",
          r[0] == 404 and r[2]["ActionSucceeded"] is False and r[2]["Messages"], r)
    r = m.req("GET", "/Products/Product/Upsert", headers=H)
    check(f"{label}: wrong method -> 405", r[0] == 405, r)
    r = m.req("POST", "/Products/Product/Upsert", headers=dict(H, **{"Content-Type": "text/plain"}),
              raw=b"CustomKey=x")
    check(f"{label}: non-JSON body -> 415", r[0] == 415, r)


def test_faults(m):
    rules = [
        {"match": {"method": "PUT", "path_prefix": "/Providers/Inventory"}, "times": 2,
         "action": "status:503"},
        {"match": {"path_prefix": "/Accounts/Account/Exists"}, "times": 1, "action": "status:500"},
        {"match": {"path_prefix": "/Accounts/Account/Key"}, "times": 1, "action": "status:408"},
        {"match": {"path_prefix": "/Ordering/SalesOrders"}, "times": 1,
         "action": "status:429:retry-after=2"},
        {"match": {"path_prefix": "/Shipping/Shipments"}, "times": 1, "action": "delay:0.6"},
        {"match": {"method": "POST", "path_prefix": "/Products/Product/Upsert"}, "times": 1,
         "action": "drop"},
        {"match": {"method": "POST", "path_prefix": "/Accounts/Account/Upsert"}, "times": 1,
         "action": "succeeded_false"},
        {"match": {"method": "POST", "path_prefix": "/Shipping/Shipment/Upsert"}, "times": 1,
         "action": "drop_after"},
    ]
    r = m.req("POST", "/__mock/faults", rules)
    check("faults: configured at run time", r[0] == 200 and len(r[2]) == len(rules), r)
    body = {"InventoryToPush": []}
    codes = [m.req("PUT", "/Providers/Inventory/BulkUpdateInventoryForProducts", body)[0]
             for _ in range(3)]
    check("faults: status:503 for the first 2 requests, then normal", codes == [503, 503, 200], codes)
    r = m.req("GET", "/Accounts/Account/Exists/Key/X")
    check("faults: status:500", r[0] == 500 and r[2]["ActionSucceeded"] is False, r)
    r = m.req("GET", "/Accounts/Account/Key/X")
    check("faults: status:408", r[0] == 408, r)
    r = m.req("GET", "/Ordering/SalesOrders")
    check("faults: status:429 with Retry-After", r[0] == 429 and r[1].get("retry-after") == "2", r)
    check("faults: status:429 only once", m.req("GET", "/Ordering/SalesOrders")[0] == 200)
    t = time.monotonic()
    r = m.req("GET", "/Shipping/Shipments")
    dt = time.monotonic() - t
    check("faults: delay then normal service", r[0] == 200 and dt >= 0.55, f"{r[0]} after {dt:.2f}s")

    hk = {"Idempotency-Key": "drop-1"}
    try:
        r = m.req("POST", "/Products/Product/Upsert", {"CustomKey": "D-1", "Name": "Dropped"}, hk)
        dropped = False
    except (http.client.RemoteDisconnected, ConnectionError):
        dropped = True
    s = m.state()
    check("faults: drop closes without a response", dropped, r if not dropped else "")
    check("faults: drop does not apply", "D-1" not in s["products"] and "drop-1" not in s["applied"])
    r = m.req("POST", "/Products/Product/Upsert", {"CustomKey": "D-1", "Name": "Dropped"}, hk)
    check("faults: retry after drop applies once", ok_cef(r) and m.state()["applied"]["drop-1"] == 1, r)

    r = m.req("POST", "/Accounts/Account/Upsert", {"CustomKey": "F-1", "Name": "F"})
    check("faults: succeeded_false = HTTP 200 + ActionSucceeded false",
          r[0] == 200 and r[2]["ActionSucceeded"] is False and r[2]["Messages"], r)
    check("faults: succeeded_false not applied", "F-1" not in m.state()["accounts"])

    hk = {"Idempotency-Key": "dropafter-1"}
    shp = {"CustomKey": "SHP-9", "TrackingNumber": "T9", "ShipmentLines": []}
    try:
        m.req("POST", "/Shipping/Shipment/Upsert", shp, hk)
        dropped = False
    except (http.client.RemoteDisconnected, ConnectionError):
        dropped = True
    check("faults: drop_after closes without a response", dropped)
    r = m.req("POST", "/Shipping/Shipment/Upsert", shp, hk)
    s = m.state()
    check("faults: drop_after applied once, the retry is a replay",
          ok_cef(r) and r[1].get("idempotent-replayed") == "true"
          and s["applied"]["dropafter-1"] == 1 and s["shipments"]["SHP-9"]["WriteCount"] == 1,
          (r, s["applied"]))
    f = m.req("GET", "/__mock/faults")[2]
    check("faults: hit counts reported", [x["hits"] for x in f] == [2, 1, 1, 1, 1, 1, 1, 1], f)
    lg = m.log()
    check("faults: the log names the fault",
          any(e["fault"] == "drop" and e["status"] is None for e in lg)
          and any(e["fault"] == "status:503" and e["status"] == 503 for e in lg))
    r = m.req("POST", "/__mock/faults", [{"match": {}, "action": "explode"}])
    check("faults: an unknown action is refused", r[0] == 400, r)


def run_identity(tmp):
    logf = os.path.join(tmp, "identity.jsonl")
    m = Mock("--auth", "identity", "--user", "api", "--password", "s3cret", "--log", logf,
             "--lifetime", "60")
    try:
        r = m.req("POST", "/auth/identity", {"UserName": "api", "Password": "wrong"})
        check("identity: wrong password -> 401", r[0] == 401, r)
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1")
        check("identity: no cookie -> 401", r[0] == 401, r)
        r = m.req("GET", "/Products/Product/Exists/Key/SKU-1")
        check("identity: product Exists is public (CEF)", r[0] == 204, r)
        r = m.req("POST", "/auth/identity", {"UserName": "api", "Password": "s3cret", "RememberMe": True})
        names = [c.split("=", 1)[0] for c in r[3]]
        check("identity: login -> 200 + ss-id/ss-pid/ss-opt cookies",
              r[0] == 200 and {"ss-id", "ss-pid", "ss-opt"} <= set(names), r)
        for c in r[3]:
            k, v = c.split(";", 1)[0].split("=", 1)
            m.cookies[k] = v
        test_api(m, {}, "identity")
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-77",
                  headers={"Cookie": "ss-id=forged"})
        check("identity: unknown session -> 401", r[0] == 401, r)
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-77",
                  headers={"X-ss-id": m.cookies["ss-id"], "Cookie": ""})
        check("identity: X-ss-id header accepted", r[0] == 200, r)
        m.req("POST", "/__mock/expire")
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-77")
        check("identity: expired session -> 401", r[0] == 401, r)
        lg = m.log()
        login = [e for e in lg if e["path"] == "/auth/identity"]
        check("identity: log masks Password and Cookie",
              login and login[-1]["body"]["Password"] == "***"
              and all("s3cret" not in json.dumps(e) for e in lg)
              and all(m.cookies["ss-id"] not in json.dumps(e) for e in lg))
        with open(logf, encoding="utf-8") as fh:
            lines = [json.loads(x) for x in fh]
        check("identity: --log file has one JSON line per request",
              len(lines) == len(lg) and lines[0]["method"] == "POST"
              and all(k in lines[0] for k in ("method", "path", "headers", "body")),
              f"{len(lines)} vs {len(lg)}")
        check("identity: control endpoints not logged",
              not any(e["path"].startswith("/__mock") for e in lines))
    finally:
        m.stop()


def run_basic():
    m = Mock("--auth", "basic", "--user", "api", "--password", "pw:with:colons", "--lifetime", "60")
    try:
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1")
        check("basic: no Authorization -> 401 + WWW-Authenticate",
              r[0] == 401 and "basic" in r[1].get("www-authenticate", "").lower(), r)
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1", headers=basic("api", "nope"))
        check("basic: wrong password -> 401", r[0] == 401, r)
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1", headers=basic("api", "pw:with:colons"))
        check("basic: right password -> 204", r[0] == 204, r)
        test_api(m, basic("api", "pw:with:colons"), "basic")
        lg = m.log()
        check("basic: log masks Authorization",
              all(e["headers"].get("Authorization", "Basic ***") == "Basic ***" for e in lg))
    finally:
        m.stop()


def run_oauth2():
    m = Mock("--auth", "oauth2", "--client-id", "cid", "--client-secret", "csec",
             "--token-ttl", "1", "--lifetime", "60")
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def token(cid, sec, grant="client_credentials"):
        return m.req("POST", "/oauth/token", headers=form, raw=urllib.parse.urlencode(
            {"grant_type": grant, "client_id": cid, "client_secret": sec}).encode())
    try:
        r = token("cid", "bad")
        check("oauth2: wrong secret -> 401 invalid_client",
              r[0] == 401 and r[2]["error"] == "invalid_client", r)
        r = token("cid", "csec", "password")
        check("oauth2: other grant -> 400", r[0] == 400, r)
        r = token("cid", "csec")
        check("oauth2: token issued",
              r[0] == 200 and r[2]["token_type"] == "Bearer" and r[2]["expires_in"] == 1
              and r[2]["access_token"], r)
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1")
        check("oauth2: no bearer -> 401", r[0] == 401, r)
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1", headers={"Authorization": "Bearer junk"})
        check("oauth2: unknown bearer -> 401", r[0] == 401, r)
        r = m.req("POST", "/oauth/token", headers=dict(form, **basic("cid", "csec")),
                  raw=b"grant_type=client_credentials")
        check("oauth2: client_secret_basic accepted", r[0] == 200, r)
        tok = r[2]["access_token"]
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1", headers={"Authorization": f"Bearer {tok}"})
        check("oauth2: bearer accepted", r[0] == 204, r)
        time.sleep(1.1)
        r = m.req("GET", "/Accounts/Account/Exists/Key/C-1", headers={"Authorization": f"Bearer {tok}"})
        check("oauth2: expired token -> 401 invalid_token",
              r[0] == 401 and "invalid_token" in r[1].get("www-authenticate", ""), r)
        lg = m.log()
        check("oauth2: log masks client_secret and bearer",
              all("csec" not in json.dumps(e) and tok not in json.dumps(e) for e in lg))
    finally:
        m.stop()
    m = Mock("--auth", "oauth2", "--client-id", "cid", "--client-secret", "csec", "--lifetime", "60")
    try:
        r = token("cid", "csec")
        check("oauth2: default token ttl 3600", r[2]["expires_in"] == 3600, r)
        test_api(m, {"Authorization": "Bearer " + r[2]["access_token"]}, "oauth2")
    finally:
        m.stop()


def run_none_and_options(tmp):
    orders = os.path.join(tmp, "orders.json")
    with open(orders, "w") as fh:
        json.dump([{"CustomKey": "CL-1", "ID": 9001, "StatusName": "Processing"},
                   {"CustomKey": "CL-2", "StatusName": "Awaiting Wire"}], fh)
    faults = os.path.join(tmp, "faults.json")
    with open(faults, "w") as fh:
        json.dump([{"match": {"path_prefix": "/Ordering"}, "times": 1, "action": "status:500"}], fh)
    base = "/DesktopModules/ClarityEcommerce/API-Admin"
    m = Mock("--auth", "none", "--seed-orders", orders, "--faults", faults, "--base", base,
             "--lifetime", "60")
    try:
        r = m.req("GET", base + "/Ordering/SalesOrder/Exists/Key/CL-1")
        check("options: --faults file applied", r[0] == 500, r)
        r = m.req("GET", base + "/Ordering/SalesOrder/Exists/Key/CL-1")
        check("options: --seed-orders file, --base prefix", r[0] == 200 and r[2] == 9001, r)
        r = m.req("GET", "/Ordering/SalesOrder/Exists/Key/CL-1")
        check("options: outside --base -> 404", r[0] == 404, r)
        o = m.state()["orders"]
        check("options: seeded statuses (unknown ones auto-created)",
              o["CL-1"]["StatusName"] == "Processing" and o["CL-2"]["StatusName"] == "Awaiting Wire"
              and isinstance(o["CL-2"]["ID"], int), o)
        r = m.req("GET", base + "/Ordering/SalesOrderStatus/Key/Shipped")
        check("options: status lookup by key", r[0] == 200 and r[2]["Name"] == "Shipped", r)
        r = m.req("GET", base + "/ordering/salesorder/exists/key/cl-1")
        check("options: routes and keys case-insensitive", r[0] == 200 and r[2] == 9001, r)
        m.req("POST", "/__mock/reset")
        s = m.state()
        check("options: reset clears state", not s["orders"] and not s["applied"] and not m.log(), s)
    finally:
        m.stop()
    m = Mock("--auth", "none", "--base", base, "--lifetime", "60")
    try:
        m2 = m
        m2.req("POST", "/__mock/faults", [])
        # run the route suite through the base prefix
        orig = m2.req

        def req(method, path, *a, **k):
            return orig(method, path if path.startswith("/__mock") else base + path, *a, **k)
        m2.req = req
        test_api(m2, {}, "none")
        test_faults(m2)  # (rules name paths without the base: matched either way)
    finally:
        m.stop()


def run_stopping():
    m = Mock("--lifetime", "1")
    t = time.monotonic()
    try:
        rc = m.p.wait(8)
    except subprocess.TimeoutExpired:
        rc = None
    check("stop: exits by itself after --lifetime", rc == 0 and time.monotonic() - t < 5,
          f"rc={rc}")
    m.stop()
    m = Mock("--lifetime", "60")
    m.p.send_signal(signal.SIGTERM)
    try:
        rc = m.p.wait(5)
    except subprocess.TimeoutExpired:
        rc = None
    check("stop: SIGTERM", rc == 0, f"rc={rc}")
    m.stop()
    m = Mock("--lifetime", "60")
    r = m.req("POST", "/__mock/shutdown")
    try:
        rc = m.p.wait(5)
    except subprocess.TimeoutExpired:
        rc = None
    check("stop: POST /__mock/shutdown", r[0] == 200 and rc == 0, f"rc={rc}")
    m.stop()


def run_tls(tmp):
    """--tls-cert/--tls-key (only when the openssl command is there to make a certificate)."""
    import shutil
    import ssl
    if not shutil.which("openssl"):
        print("SKIP mock_clarity: tls (no openssl command)")
        return
    crt, key = os.path.join(tmp, "mock.crt"), os.path.join(tmp, "mock.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    m = Mock("--tls-cert", crt, "--tls-key", key, "--lifetime", "30")
    try:
        ctx = ssl.create_default_context(cafile=crt)
        c = http.client.HTTPSConnection("127.0.0.1", m.port, context=ctx, timeout=5)
        c.request("GET", "/Products/Product/Exists/Key/X")
        r = c.getresponse()
        r.read()
        c.close()
        check("tls: verified HTTPS request", r.status == 204, r.status)
        try:
            c = http.client.HTTPSConnection("127.0.0.1", m.port, timeout=5,
                                            context=ssl.create_default_context())
            c.request("GET", "/Products/Product/Exists/Key/X")
            c.getresponse()
            refused = False
        except ssl.SSLError:
            refused = True
        check("tls: an untrusted certificate is refused by a verifying client", refused)
    finally:
        m.stop()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for fn in (lambda: run_identity(tmp), run_basic, run_oauth2,
                   lambda: run_none_and_options(tmp), lambda: run_tls(tmp), run_stopping):
            try:
                fn()
            except Exception as e:  # a crash counts as a failure, the rest still runs
                import traceback
                traceback.print_exc()
                check(f"no exception in {getattr(fn, '__name__', fn)}", False, repr(e))
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
