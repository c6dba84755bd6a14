#!/usr/bin/env python3
"""mock_clarity.py - a mock of the Clarity eCommerce (CEF) admin API for the test suite.

Standard library only.  Serves plain HTTP (or HTTPS with --tls-cert/--tls-key) on 127.0.0.1.

    python3 tests/lib/mock_clarity.py --port 0 --auth identity --user api --password s3cret \\
        [--base /DesktopModules/ClarityEcommerce/API-Admin] [--seed-orders orders.json] \\
        [--seed state.json] [--faults faults.json] [--log requests.jsonl] [--lifetime 300]

First stdout line: "PORT <n>" (flushed).  Stops after --lifetime seconds, on SIGTERM or on
POST /__mock/shutdown (exit status 0).

Auth (--auth):
  identity  POST {base}/auth/identity {"UserName","Password","RememberMe"} -> 200, cookies
            ss-id / ss-pid / ss-opt; later calls need one of those cookies (or X-ss-id /
            X-ss-pid headers).  Wrong credentials -> 401.  --session-ttl S expires sessions.
  basic     "Authorization: Basic base64(user:password)" on every call, else 401.
  oauth2    POST /oauth/token (also {base}/oauth/token), form grant_type=client_credentials,
            client_id, client_secret (or HTTP Basic client auth) -> {"access_token",
            "token_type":"Bearer","expires_in":--token-ttl}; "Authorization: Bearer T" on every
            call; unknown or expired token -> 401 (WWW-Authenticate: Bearer error="invalid_token").
  none      no authentication.
  Product Exists/Key/ID reads are public in CEF, so they never need auth (--private-product-reads
  turns that off).

API routes (relative to --base; JSON bodies, PascalCase, matched case-insensitively):
  POST /{S}/{E}/Upsert  POST /{S}/{E}/Create  PUT /{S}/{E}/Update
       -> {"ActionSucceeded":true,"Messages":[],"Result":<ID>}
  GET  /{S}/{E}/Exists/Key/{Key}  /Exists/ID/{ID}  -> 200 body `123`, or 204 No Content when
       missing (--exists-missing 204|null|404)
  GET  /{S}/{E}/Key/{Key}  /ID/{ID}  -> the model (204 when missing);  GET /{S}/{Es} -> paged list
       for {S}/{E} in Products/Product, Accounts/Account, Ordering/SalesOrder, Shipping/Shipment,
       Inventory/InventoryLocationSection, Ordering/SalesOrderStatus
  PUT  /Providers/Inventory/BulkUpdateInventoryForProducts
       {"InventoryToPush":[{"ProductID":1001,"QuantityPresent":40,"QuantityAllocated":2,
        "QuantityPreSold":0,"RelevantLocations":[{"SlaveID":7001,"Quantity":30}]}]}
       -> {"ActionSucceeded":true,"Messages":[]}.  As in CEF: only the first entry per ProductID
       (per ProductID+SlaveID with RelevantLocations) counts, unknown / non-positive IDs are skipped
       silently (listed in state "inventory_skipped"), members CalculatedInventory lacks (e.g.
       ProductKey, LocationKey) are ignored (counted in state "unbound_members").
  PATCH /Ordering/SalesOrder/{Confirm|Pending|Hold|Backorder|CreatePickTicket|DropShip|Ship|
        ReadyForPickup|Complete|Void}/{ID}   -> {"ActionSucceeded":true,"Messages":[]}
  Non-numeric {ID} or ProductID -> 400 (RequestBindingException); unknown route -> 404;
  a known route with another method -> 405.  Error bodies carry both the CEF failure shape and
  ServiceStack's ResponseStatus: {"ActionSucceeded":false,"Messages":[m],"ResponseStatus":{...}}.

Idempotency: a mutating request (POST/PUT/PATCH/DELETE) with an Idempotency-Key header that was
already APPLIED with the same method+path gets the stored first response (header
Idempotent-Replayed: true) and is not applied again; the same key with another method/path -> 422.
State "applied" counts real applications per key (so it should never exceed 1).

Faults (--faults FILE.json or POST /__mock/faults, a list of rules; POST replaces, ?append=1 adds):
  {"match":{"method":"PUT","path_prefix":"/Providers/Inventory"}, "times":2, "action":"status:503"}
  actions: status:NNN[:retry-after=S]  delay:SECONDS (then normal service)  drop (close without a
  response, operation not applied)  drop_after (apply, then close without a response)
  succeeded_false (HTTP 200, ActionSucceeded false, not applied).  "times" defaults to 1, a
  negative value means forever.  path_prefix is compared with the path with and without --base.
  Faults are checked before auth; /__mock/* is never faulted.

Control endpoints (no auth, not logged): GET /__mock/health, GET /__mock/log, GET /__mock/state,
GET|POST /__mock/faults, POST /__mock/seed ({"orders":[..],"products":[..],"accounts":[..],
"locations":[..],"statuses":[..]} or a bare list of orders), POST /__mock/reset,
POST /__mock/expire (ends every session and token), POST /__mock/shutdown.

Request log (--log FILE, one JSON line per request; also GET /__mock/log): seq, time, method, path,
query, headers (Authorization / Cookie / X-ss-* values masked), body (Password / client_secret
masked), status, fault, idempotency_key, replayed, applied.
"""
import argparse
import base64
import binascii
import datetime
import http.cookies
import http.server
import json
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

MUTATING = ("POST", "PUT", "PATCH", "DELETE")

# Order statuses set by the CEF workflow (clarity.md §7); keys equal names.  IDs start at 101 so
# that an ID cannot be confused with a list index.
DEFAULT_STATUSES = [
    ("Pending", "Work"), ("Confirmed", "Work"), ("On Hold", "Work"), ("Backordered", "Work"),
    ("Processing", "Work"), ("Partial Payment Received", "Work"),
    ("Full Payment Received", "Work"), ("Shipped from Vendor", "Work"),
    ("Ready for Pickup", "Work"), ("Shipped", "Work"), ("Completed", "History"),
    ("Void", "History"), ("Split", "History"),
]
STATE_ACTIONS = {
    "confirm": "Confirmed", "pending": "Pending", "hold": "On Hold",
    "backorder": "Backordered", "createpickticket": "Processing",
    "dropship": "Shipped from Vendor", "ship": "Shipped",
    "readyforpickup": "Ready for Pickup", "complete": "Completed", "void": "Void",
}
# entity path -> (state name, plural route, first ID)
ENTITIES = {
    "Products/Product": ("products", "Products/Products", 1001),
    "Accounts/Account": ("accounts", "Accounts/Accounts", 2001),
    "Ordering/SalesOrder": ("orders", "Ordering/SalesOrders", 30001),
    "Shipping/Shipment": ("shipments", "Shipping/Shipments", 5001),
    "Inventory/InventoryLocationSection": ("locations", "Inventory/InventoryLocationSections", 7001),
    "Ordering/SalesOrderStatus": ("statuses", "Ordering/SalesOrderStatuses", 101),
}


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jdump(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


class Resp:
    """An HTTP response the handler will send."""

    def __init__(self, status, body=None, headers=None, raw=None):
        self.status = status
        self.headers = list(headers or [])
        if raw is not None:
            self.body = raw
        elif body is None:
            self.body = b""
        else:
            self.body = jdump(body)
            self.headers.append(("Content-Type", "application/json; charset=utf-8"))
        self.applied = False
        self.drop = False


def cef_ok(result=None, with_result=True, messages=None):
    d = {"ActionSucceeded": True, "Messages": list(messages or [])}
    if with_result:
        d["Result"] = result
    return d


def cef_fail(message, result=None, with_result=True):
    d = {"ActionSucceeded": False, "Messages": [message]}
    if with_result:
        d["Result"] = result
    return d


def err(status, code, message, headers=None):
    """An error body: CEF failure shape + ServiceStack ResponseStatus."""
    return Resp(status, {"ActionSucceeded": False, "Messages": [message],
                         "ResponseStatus": {"ErrorCode": code, "Message": message, "Errors": []}},
                headers=headers)


def ci_get(d, name, default=None):
    """Case-insensitive member lookup (ServiceStack binds JSON members case-insensitively)."""
    if not isinstance(d, dict):
        return default
    if name in d:
        return d[name]
    low = name.lower()
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return default


class BindError(Exception):
    pass


def as_id(v, what):
    """An int like ServiceStack binds it (number or digit string), else BindError."""
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise BindError(f"{what}: {v!r} is not an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v.strip())
    raise BindError(f"{what}: {v!r} is not an integer")


class Store:
    """One entity table: records by ID, a case-insensitive CustomKey index (SQL Server collation)."""

    def __init__(self, first_id):
        self.by_id = {}
        self.next_id = first_id

    def find_key(self, key):
        if key is None:
            return None
        k = str(key).casefold()
        for r in self.by_id.values():
            ck = r.get("CustomKey")
            if ck is not None and str(ck).casefold() == k:
                return r
        return None

    def insert(self, rec):
        rid = rec.get("ID") or 0
        if not rid:
            rid = self.next_id
        rec["ID"] = rid
        self.next_id = max(self.next_id, rid + 1)
        self.by_id[rid] = rec
        return rec

    def dump(self):
        out = {}
        for rid in sorted(self.by_id):
            r = self.by_id[rid]
            k = r.get("CustomKey")
            out[str(k) if k not in (None, "") else f"#{rid}"] = r
        return out


class Mock:
    def __init__(self, args):
        self.args = args
        self.base = (args.base or "").rstrip("/")
        self.lock = threading.RLock()
        self.log_lock = threading.Lock()
        self.log = []
        self.seq = 0
        self.logf = open(args.log, "a", encoding="utf-8") if args.log else None
        self.faults = []
        self.sessions = {}  # session id -> {"user", "expires"}
        self.tokens = {}  # token -> expiry (epoch seconds)
        self.stop_reason = None
        self.server = None
        self.reset_state()

    # ---- state ----
    def reset_state(self):
        with self.lock:
            self.stores = {name: Store(first) for _, (name, _, first) in ENTITIES.items()}
            for name, st in DEFAULT_STATUSES:
                self.stores["statuses"].insert(
                    {"CustomKey": name, "Name": name, "DisplayName": name, "StateName": st,
                     "Active": True})
            self.inventory = {}
            self.inventory_skipped = []
            self.unbound_members = {}  # request members the real API would silently ignore
            self.idem = {}  # key -> {"method","path","resp"}
            self.applied = {}  # idempotency key -> times really applied
            self.applied_ops = []  # every applied mutation
            self.op_counts = {}  # "METHOD /route" -> times applied

    def state(self):
        with self.lock:
            s = {name: self.stores[name].dump() for name in
                 ("products", "accounts", "orders", "shipments", "locations")}
            s["statuses"] = {r["Name"]: r["ID"] for r in self.stores["statuses"].by_id.values()}
            s["inventory"] = self.inventory
            s["inventory_skipped"] = self.inventory_skipped
            s["unbound_members"] = self.unbound_members
            s["applied"] = self.applied
            s["applied_ops"] = self.applied_ops
            s["operation_counts"] = self.op_counts
            s["idempotency_keys"] = sorted(self.idem)
            s["faults"] = self.faults
            return json.loads(json.dumps(s))

    def find_status(self, sid=None, key=None, name=None):
        st = self.stores["statuses"]
        if sid:
            return st.by_id.get(sid)
        for v in (key, name):
            if v:
                r = st.find_key(v)
                if r is None:
                    for r2 in st.by_id.values():
                        if str(r2.get("Name", "")).casefold() == str(v).casefold():
                            return r2
                return r
        return None

    def status_or_create(self, name):
        r = self.find_status(key=name)
        if r is None:  # CEF auto-creates a missing status with CustomKey = Name = DisplayName
            r = self.stores["statuses"].insert(
                {"CustomKey": name, "Name": name, "DisplayName": name, "StateName": "Work",
                 "Active": True})
        return r

    def set_order_status(self, order, status, via):
        old = order.get("StatusName")
        order["StatusID"] = status["ID"]
        order["StatusKey"] = status["CustomKey"]
        order["StatusName"] = status["Name"]
        order["StateName"] = status.get("StateName", "Work")
        order.setdefault("StatusHistory", []).append(
            {"From": old, "To": status["Name"], "Via": via, "At": now_iso()})
        order["UpdatedDate"] = now_iso()

    def seed(self, data):
        """Seed from {"orders":[...], "products":[...], ...} or a bare list of orders."""
        if isinstance(data, list):
            data = {"orders": data}
        if not isinstance(data, dict):
            raise ValueError("seed: expected an object or a list of orders")
        n = 0
        with self.lock:
            for st in data.get("statuses", []):
                if isinstance(st, str):
                    st = {"Name": st}
                name = ci_get(st, "Name") or ci_get(st, "CustomKey")
                rec = {"CustomKey": ci_get(st, "CustomKey") or name, "Name": name,
                       "DisplayName": name, "StateName": ci_get(st, "StateName") or "Work",
                       "Active": True}
                if ci_get(st, "ID"):
                    rec["ID"] = int(ci_get(st, "ID"))
                self.stores["statuses"].insert(rec)
                n += 1
            for section, store in (("products", "products"), ("accounts", "accounts"),
                                   ("locations", "locations"), ("shipments", "shipments"),
                                   ("orders", "orders")):
                for item in data.get(section, []):
                    rec = dict(item)
                    rec.setdefault("Active", True)
                    rec.setdefault("CreatedDate", now_iso())
                    if rec.get("ID") is not None:
                        rec["ID"] = int(rec["ID"])
                    if store == "orders":
                        status = None
                        if rec.get("StatusID"):
                            status = self.find_status(sid=int(rec["StatusID"]))
                        name = rec.get("StatusName") or rec.get("StatusKey")
                        if status is None and name:
                            status = self.status_or_create(name)
                        if status is None:
                            status = self.status_or_create("Pending")
                        rec["StatusID"] = status["ID"]
                        rec["StatusKey"] = status["CustomKey"]
                        rec["StatusName"] = status["Name"]
                        rec["StateName"] = status.get("StateName", "Work")
                        rec.setdefault("StatusHistory", [])
                    old = self.stores[store].find_key(rec.get("CustomKey"))
                    if old is not None and not rec.get("ID"):
                        rec["ID"] = old["ID"]
                    self.stores[store].insert(rec)
                    n += 1
        return n

    # ---- faults ----
    def set_faults(self, rules, append=False):
        if isinstance(rules, dict) and "faults" in rules:
            rules = rules["faults"]
        if isinstance(rules, dict):
            rules = [rules]
        if not isinstance(rules, list):
            raise ValueError("faults: expected a list of rules")
        clean = []
        for r in rules:
            if not isinstance(r, dict) or not isinstance(r.get("action"), str):
                raise ValueError(f"faults: bad rule {r!r}")
            parse_action(r["action"])  # validate
            m = r.get("match") or {}
            clean.append({"match": {k: m[k] for k in m}, "times": int(r.get("times", 1)),
                          "action": r["action"], "hits": 0})
        with self.lock:
            self.faults = (self.faults + clean) if append else clean

    def take_fault(self, method, raw_path, route_path):
        with self.lock:
            for r in self.faults:
                if r["times"] >= 0 and r["hits"] >= r["times"]:
                    continue
                m = r["match"]
                if m.get("method") and m["method"].upper() != method:
                    continue
                pp = m.get("path_prefix")
                if pp and not (raw_path.lower().startswith(pp.lower())
                               or (route_path or "").lower().startswith(pp.lower())):
                    continue
                if m.get("path") and m["path"].lower() not in (raw_path.lower(),
                                                               (route_path or "").lower()):
                    continue
                r["hits"] += 1
                return r["action"]
        return None

    # ---- request log ----
    def record(self, entry):
        with self.log_lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.log.append(entry)
            if self.logf:
                self.logf.write(json.dumps(entry) + "\n")
                self.logf.flush()

    def stop(self, reason):
        if self.stop_reason:
            return
        self.stop_reason = reason
        print(f"mock_clarity: stopping ({reason})", file=sys.stderr, flush=True)
        threading.Thread(target=self.server.shutdown, daemon=True).start()


def parse_action(a):
    """'status:429:retry-after=2' -> ('status', 429, {'retry-after': '2'}) etc."""
    parts = a.split(":")
    kind = parts[0].strip().lower()
    if kind == "status":
        if len(parts) < 2 or not parts[1].strip().isdigit():
            raise ValueError(f"fault action {a!r}: status needs a code")
        opts = {}
        for p in parts[2:]:
            k, _, v = p.partition("=")
            opts[k.strip().lower()] = v.strip()
        return ("status", int(parts[1]), opts)
    if kind == "delay":
        if len(parts) != 2:
            raise ValueError(f"fault action {a!r}: delay needs seconds")
        return ("delay", float(parts[1]), {})
    if kind in ("drop", "drop_after", "succeeded_false"):
        return (kind, None, {})
    raise ValueError(f"unknown fault action {a!r}")


SECRET_BODY_FIELDS = {"password", "client_secret", "clientsecret", "refresh_token"}


def mask_body(obj):
    if isinstance(obj, dict):
        return {k: ("***" if isinstance(k, str) and k.lower() in SECRET_BODY_FIELDS else mask_body(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_body(x) for x in obj]
    return obj


def mask_header(name, value):
    n = name.lower()
    if n in ("authorization", "proxy-authorization"):
        scheme = value.split(" ", 1)[0] if value else ""
        return f"{scheme} ***" if " " in value else "***"
    if n == "cookie":
        out = []
        for part in value.split(";"):
            k, eq, _ = part.strip().partition("=")
            out.append(f"{k}=***" if eq else k)
        return "; ".join(out)
    if n in ("x-ss-id", "x-ss-pid"):
        return "***"
    return value


class Handler(http.server.BaseHTTPRequestHandler):
    # answers go out at once (Nagle would hold each ~40 ms for the client's delayed ACK)
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "mock_clarity/1.0"
    mock: Mock = None  # set by main
    stop_after = False  # POST /__mock/shutdown: stop once its answer is written

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        if self.mock.args.verbose:
            sys.stderr.write("mock_clarity: " + (fmt % args) + "\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = \
        lambda self: self.handle_any()

    # ---- plumbing ----
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, resp):
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        if resp.status != 204 and resp.status >= 200:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.status != 204 and resp.body:
            self.wfile.write(resp.body)
        self.wfile.flush()

    def drop_connection(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- main dispatch ----
    def handle_any(self):
        m = self.mock
        method = self.command.upper()
        parsed = urllib.parse.urlsplit(self.path)
        raw_path = parsed.path
        query = parsed.query
        body_bytes = self.read_body()
        if raw_path.startswith("/__mock/") or raw_path == "/__mock":
            self.send(self.control(method, raw_path, query, body_bytes))
            if self.stop_after:  # only once the answer is out: the process ends right after
                m.stop("POST /__mock/shutdown")
            return None

        route_path = None
        if not m.base:
            route_path = raw_path
        elif raw_path.lower() == m.base.lower() or raw_path.lower().startswith(m.base.lower() + "/"):
            route_path = raw_path[len(m.base):] or "/"
        idem_key = self.headers.get("Idempotency-Key")
        entry = {"time": now_iso(), "method": method, "path": raw_path, "query": query,
                 "headers": {k: mask_header(k, v) for k, v in self.headers.items()},
                 "body": None, "status": None, "fault": None, "idempotency_key": idem_key,
                 "replayed": False, "applied": False}
        body = None
        if body_bytes:
            try:
                body = json.loads(body_bytes)
                entry["body"] = mask_body(body)
            except ValueError:
                text = body_bytes.decode("utf-8", "replace")
                if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                    entry["body"] = mask_body(dict(urllib.parse.parse_qsl(text)))
                else:
                    entry["body"] = text

        resp = None
        after_drop = False
        action = m.take_fault(method, raw_path, route_path)
        if action:
            entry["fault"] = action
            kind, val, opts = parse_action(action)
            if kind == "delay":
                time.sleep(val)
            elif kind == "drop":
                m.record(entry)
                return self.drop_connection()
            elif kind == "drop_after":
                after_drop = True
            elif kind == "status":
                hdrs = []
                if "retry-after" in opts:
                    hdrs.append(("Retry-After", opts["retry-after"]))
                resp = err(val, "InjectedFault", f"injected fault: HTTP {val}", headers=hdrs)
            elif kind == "succeeded_false":
                resp = Resp(200, cef_fail("injected fault: the action did not succeed"))
        if resp is None:
            try:
                resp = self.dispatch(method, raw_path, route_path, query, body_bytes, body,
                                     idem_key, entry)
            except BindError as e:
                resp = err(400, "RequestBindingException", str(e))
            except Exception as e:  # a bug in the mock: say so loudly
                import traceback
                traceback.print_exc()
                resp = err(500, type(e).__name__, f"mock error: {e}")
        entry["status"] = resp.status
        entry["applied"] = resp.applied
        m.record(entry)
        if after_drop:
            return self.drop_connection()
        self.send(resp)

    def dispatch(self, method, raw_path, route_path, query, body_bytes, body, idem_key, entry):
        m = self.mock
        a = m.args
        # token endpoint (oauth2 only)
        if a.auth == "oauth2" and (raw_path == a.token_path or route_path == a.token_path):
            if method != "POST":
                return err(405, "MethodNotAllowed", "use POST")
            return self.oauth_token(body_bytes)
        if route_path is None:
            return err(404, "NotFound", f"no route for {method} {raw_path} (outside base {m.base})")
        low = route_path.lower().rstrip("/")
        # auth routes (identity)
        if a.auth == "identity" and low in ("/auth/identity", "/auth/logout", "/auth"):
            return self.identity_route(method, low, body)
        route = self.match_route(method, route_path)
        if route is None:
            return err(404, "NotFound", f"no route for {method} {route_path}")
        if route == "405":
            return err(405, "NotImplementedException", f"{method} not allowed on {route_path}")
        fn, params, public = route
        if not public:
            bad = self.check_auth()
            if bad:
                return bad
        if method in ("POST", "PUT", "PATCH") and body_bytes:
            ctype = (self.headers.get("Content-Type") or "").lower()
            if "json" not in ctype:
                return err(415, "UnsupportedMediaType",
                           f"Content-Type {ctype or '(none)'}: expected application/json")
            if body is None:
                return err(400, "SerializationException", "request body is not valid JSON")
        mutating = method in MUTATING
        with m.lock:
            if mutating and idem_key:
                prev = m.idem.get(idem_key)
                if prev is not None:
                    if prev["method"] != method or prev["path"] != route_path:
                        return err(422, "IdempotencyKeyReused",
                                   f"Idempotency-Key {idem_key} was used for "
                                   f"{prev['method']} {prev['path']}")
                    entry["replayed"] = True
                    r = prev["resp"]
                    out = Resp(r.status, raw=r.body,
                               headers=r.headers + [("Idempotent-Replayed", "true")])
                    return out
            resp = fn(method, params, body, query)
            if mutating and resp.applied:
                k = f"{method} {route_path}"
                m.op_counts[k] = m.op_counts.get(k, 0) + 1
                m.applied_ops.append({"method": method, "path": route_path,
                                      "idempotency_key": idem_key, "time": now_iso()})
                if idem_key:
                    m.applied[idem_key] = m.applied.get(idem_key, 0) + 1
                    m.idem[idem_key] = {"method": method, "path": route_path, "resp": resp}
            return resp

    # ---- auth ----
    def check_auth(self):
        m = self.mock
        a = m.args
        if a.auth == "none":
            return None
        if a.auth == "basic":
            h = self.headers.get("Authorization") or ""
            hdr = [("WWW-Authenticate", 'Basic realm="/auth/basic"')]
            if not h.lower().startswith("basic "):
                return err(401, "Unauthorized", "Not Authenticated", headers=hdr)
            try:
                user, _, pw = base64.b64decode(h[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return err(401, "Unauthorized", "malformed Basic credentials", headers=hdr)
            if user != a.user or pw != a.password:
                return err(401, "Unauthorized", "Invalid UserName or Password", headers=hdr)
            return None
        if a.auth == "oauth2":
            h = self.headers.get("Authorization") or ""
            if not h.lower().startswith("bearer "):
                return err(401, "Unauthorized", "Not Authenticated",
                           headers=[("WWW-Authenticate", 'Bearer realm="clarity"')])
            tok = h[7:].strip()
            with m.lock:
                exp = m.tokens.get(tok)
            if exp is None:
                return err(401, "Unauthorized", "invalid token",
                           headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')])
            if time.time() >= exp:
                return err(401, "Unauthorized", "token expired",
                           headers=[("WWW-Authenticate",
                                     'Bearer error="invalid_token", '
                                     'error_description="The access token expired"')])
            return None
        # identity: session cookies or X-ss-* headers
        cands = []
        ck = http.cookies.SimpleCookie()
        try:
            ck.load(self.headers.get("Cookie") or "")
        except http.cookies.CookieError:
            pass
        for name in ("ss-id", "ss-pid"):
            if name in ck:
                cands.append(ck[name].value)
        for name in ("X-ss-id", "X-ss-pid"):
            if self.headers.get(name):
                cands.append(self.headers.get(name).strip())
        with m.lock:
            for c in cands:
                s = m.sessions.get(c)
                if s and (s["expires"] is None or time.time() < s["expires"]):
                    return None
        return err(401, "Unauthorized", "Not Authenticated")

    def identity_route(self, method, low, body):
        m = self.mock
        if low == "/auth/logout":
            ck = http.cookies.SimpleCookie()
            try:
                ck.load(self.headers.get("Cookie") or "")
            except http.cookies.CookieError:
                pass
            with m.lock:
                for name in ("ss-id", "ss-pid"):
                    if name in ck:
                        m.sessions.pop(ck[name].value, None)
            return Resp(200, {"ResponseStatus": {}}, headers=[
                ("Set-Cookie", "ss-id=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/"),
                ("Set-Cookie", "ss-pid=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/")])
        if low == "/auth":
            bad = self.check_auth()
            return bad or Resp(200, {"UserName": m.args.user, "ResponseStatus": {}})
        if method != "POST":
            return err(405, "NotImplementedException", "use POST /auth/identity")
        if not isinstance(body, dict):
            return err(400, "SerializationException", "expected a JSON body")
        user = ci_get(body, "UserName")
        pw = ci_get(body, "Password")
        if user != m.args.user or pw != m.args.password:
            return err(401, "Unauthorized", "Invalid UserName or Password")
        sid = secrets.token_urlsafe(15)
        pid = secrets.token_urlsafe(15)
        exp = (time.time() + m.args.session_ttl) if m.args.session_ttl > 0 else None
        with m.lock:
            m.sessions[sid] = {"user": user, "expires": exp}
            m.sessions[pid] = {"user": user, "expires": exp}
        remember = bool(ci_get(body, "RememberMe", False))
        far = "expires=Fri, 01 Jan 2044 00:00:00 GMT; "
        hdrs = [("Set-Cookie", f"ss-id={sid}; path=/; samesite=lax; httponly"),
                ("Set-Cookie", f"ss-pid={pid}; {far}path=/; samesite=lax; httponly"),
                ("Set-Cookie", f"ss-opt={'perm' if remember else 'temp'}; {far}path=/; "
                               "samesite=lax; httponly"),
                ("X-ss-pid", pid), ("X-ss-opt", "perm" if remember else "temp")]
        return Resp(200, {"UserId": "1", "SessionId": sid, "UserName": user,
                          "DisplayName": user, "ResponseStatus": {}}, headers=hdrs)

    def oauth_token(self, body_bytes):
        m = self.mock
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" not in ctype:
            return Resp(400, {"error": "invalid_request",
                              "error_description": "expected application/x-www-form-urlencoded"})
        form = dict(urllib.parse.parse_qsl(body_bytes.decode("utf-8", "replace")))
        cid, csec = form.get("client_id"), form.get("client_secret")
        h = self.headers.get("Authorization") or ""
        if h.lower().startswith("basic "):
            try:
                u, _, p = base64.b64decode(h[6:].strip()).decode().partition(":")
                cid, csec = urllib.parse.unquote_plus(u), urllib.parse.unquote_plus(p)
            except (binascii.Error, UnicodeDecodeError):
                pass
        if form.get("grant_type") != "client_credentials":
            return Resp(400, {"error": "unsupported_grant_type"})
        if cid != m.args.client_id or csec != m.args.client_secret:
            return Resp(401, {"error": "invalid_client"},
                        headers=[("WWW-Authenticate", 'Basic realm="token"')])
        tok = secrets.token_urlsafe(24)
        with m.lock:
            m.tokens[tok] = time.time() + m.args.token_ttl
        return Resp(200, {"access_token": tok, "token_type": "Bearer",
                          "expires_in": m.args.token_ttl},
                    headers=[("Cache-Control", "no-store")])

    # ---- routes ----
    def match_route(self, method, path):
        """-> (fn, params, public) or "405" or None."""
        p = path.rstrip("/") or "/"
        found_other = False
        for meth, rx, fn in ROUTES:
            mt = rx.fullmatch(p)
            if mt:
                if meth == method or (meth == "GET" and method == "HEAD"):
                    params = {k: urllib.parse.unquote(v) for k, v in mt.groupdict().items()}
                    # CEF: product Exists/Get routes carry no [Authenticate] (clarity.md §4.4)
                    public = (fn in PUBLIC_PRODUCT_READS
                              and params.get("entity", "").lower() == "products/product"
                              and not self.mock.args.private_product_reads)
                    return (getattr(self, fn), params, public)
                found_other = True
        return "405" if found_other else None

    def store_for(self, params):
        ent = params["entity"]
        for k, (name, _, _) in ENTITIES.items():
            if k.lower() == ent.lower():
                return k, self.mock.stores[name]
        raise KeyError(ent)

    def missing(self):
        mode = self.mock.args.exists_missing
        if mode == "null":
            return Resp(200, raw=b"null", headers=[("Content-Type", "application/json")])
        if mode == "404":
            return err(404, "NotFound", "not found")
        return Resp(204)

    def r_exists_key(self, method, params, body, query):
        _, st = self.store_for(params)
        r = st.find_key(params["key"])
        if r is None or not r.get("Active", True):
            return self.missing()
        return Resp(200, r["ID"])

    def r_exists_id(self, method, params, body, query):
        _, st = self.store_for(params)
        r = st.by_id.get(as_id(params["id"], "ID"))
        if r is None:
            return self.missing()
        return Resp(200, r["ID"])

    def r_get_key(self, method, params, body, query):
        _, st = self.store_for(params)
        r = st.find_key(params["key"])
        return Resp(200, r) if r is not None else self.missing()

    def r_get_id(self, method, params, body, query):
        _, st = self.store_for(params)
        r = st.by_id.get(as_id(params["id"], "ID"))
        return Resp(200, r) if r is not None else self.missing()

    def r_list(self, method, params, body, query):
        ent = params["plural"]
        store = None
        for k, (name, plural, _) in ENTITIES.items():
            if plural.lower() == ent.lower():
                store = self.mock.stores[name]
        q = {k.lower(): v for k, v in urllib.parse.parse_qsl(query)}
        rows = [store.by_id[i] for i in sorted(store.by_id)]
        if "customkey" in q:
            rows = [r for r in rows if str(r.get("CustomKey", "")).casefold() == q["customkey"].casefold()]
        return Resp(200, {"Results": rows, "CurrentPage": 1, "CurrentCount": len(rows),
                          "TotalPages": 1, "TotalCount": len(rows), "Sorts": [], "Groupings": []})

    def _resolve_order_status(self, body):
        sid = as_id(ci_get(body, "StatusID"), "StatusID")
        key = ci_get(body, "StatusKey")
        name = ci_get(body, "StatusName")
        if not sid and not key and not name:
            st = ci_get(body, "Status")
            if isinstance(st, dict):
                sid = as_id(ci_get(st, "ID"), "Status.ID")
                key = ci_get(st, "CustomKey")
                name = ci_get(st, "Name")
        if not sid and not key and not name:
            return None, None
        s = self.mock.find_status(sid=sid, key=key, name=name)
        if s is None:
            return None, f"unknown order status {sid or key or name!r}"
        return s, None

    def r_upsert(self, method, params, body, query):
        return self._write(params, body, params["op"].lower())

    def r_update(self, method, params, body, query):
        return self._write(params, body, "update")

    def _write(self, params, body, op):
        ent, st = self.store_for(params)
        if ent in ("Ordering/SalesOrderStatus",):
            return Resp(200, cef_fail(f"{ent} is read-only in the mock"))
        if not isinstance(body, dict):
            return err(400, "SerializationException", f"expected a {ent.split('/')[1]}Model object")
        rid = as_id(ci_get(body, "ID"), "ID")
        key = ci_get(body, "CustomKey")
        existing = None
        if rid > 0:
            existing = st.by_id.get(rid)
            if existing is None:
                return Resp(200, cef_fail(f"{ent} ID {rid} not found"))
        if op == "update":
            if rid <= 0:
                return err(400, "ArgumentException", "Update requires a valid ID")
        elif op == "create":
            if rid > 0:
                return Resp(200, cef_fail("Create requires ID 0"))
            if key and st.find_key(key):
                return Resp(200, cef_fail(f"{ent} with CustomKey {key!r} already exists"))
        elif existing is None:
            if key in (None, ""):
                return Resp(200, cef_fail("Upsert needs an ID or a CustomKey (mock rule)"))
            existing = st.find_key(key)
        status = None
        if ent == "Ordering/SalesOrder":
            status, msg = self._resolve_order_status(body)
            if msg:
                return Resp(200, cef_fail(msg))
        if existing is None and ent in ("Products/Product", "Accounts/Account") and \
                not ci_get(body, "Name"):
            return Resp(200, cef_fail(f"{ent} needs a Name to be created"))
        fields = {k: v for k, v in body.items() if k.lower() not in ("id", "createddate")}
        if existing is None:
            rec = {"ID": 0, "Active": True, "CreatedDate": now_iso()}
            rec.update(fields)
            rec["UpdatedDate"] = None
            rec["WriteCount"] = 1
            st.insert(rec)
            created = True
        else:
            rec = existing
            for f in ("StatusID", "StatusKey", "StatusName"):
                fields.pop(f, None)
            rec.update(fields)
            rec["UpdatedDate"] = now_iso()
            rec["WriteCount"] = rec.get("WriteCount", 0) + 1
            created = False
        if ent == "Ordering/SalesOrder":
            if created:
                self.mock.set_order_status(
                    rec, status or self.mock.status_or_create("Pending"), op)
            elif status is not None and status["ID"] != rec.get("StatusID"):
                self.mock.set_order_status(rec, status, op)
        r = Resp(200, cef_ok(rec["ID"]))
        r.applied = True
        return r

    def r_state_change(self, method, params, body, query):
        action = params["action"].lower()
        oid = as_id(params["id"], "ID")
        if oid <= 0:
            return err(400, "ArgumentException", "a valid order ID is required")
        order = self.mock.stores["orders"].by_id.get(oid)
        if order is None:
            return Resp(200, cef_fail(f"SalesOrder ID {oid} not found", with_result=False))
        status = self.mock.status_or_create(STATE_ACTIONS[action])
        self.mock.set_order_status(order, status, f"PATCH {params['action']}")
        order["WriteCount"] = order.get("WriteCount", 0) + 1
        r = Resp(200, cef_ok(with_result=False))
        r.applied = True
        return r

    def r_inventory_bulk(self, method, params, body, query):
        """CEF's Flat provider (product StockQuantity*) and PILS provider (RelevantLocations), both
        as in the CEF source: entries grouped by ProductID and only the FIRST entry of a product
        (PILS: of a product+SlaveID) is used; invalid or unknown IDs are skipped without a message;
        members CalculatedInventory does not have are ignored (counted in "unbound_members")."""
        if not isinstance(body, dict) or not isinstance(ci_get(body, "InventoryToPush"), list):
            return err(400, "SerializationException",
                       'expected {"InventoryToPush":[CalculatedInventory, ...]}')
        m = self.mock
        products = m.stores["products"]
        locations = m.stores["locations"]
        entries = ci_get(body, "InventoryToPush")
        for i, e in enumerate(entries):  # bind everything first: a binding error applies nothing
            if not isinstance(e, dict):
                raise BindError(f"InventoryToPush[{i}] is not an object")
            as_id(ci_get(e, "ProductID"), f"InventoryToPush[{i}].ProductID")
            for j, loc in enumerate(ci_get(e, "RelevantLocations") or []):
                as_id(ci_get(loc, "SlaveID"), f"InventoryToPush[{i}].RelevantLocations[{j}].SlaveID")
            for k in e:
                if str(k).lower() not in CALCULATED_INVENTORY_MEMBERS:
                    n = f"InventoryToPush[].{k}"
                    m.unbound_members[n] = m.unbound_members.get(n, 0) + 1
        seen_flat, seen_pils = set(), set()
        for i, e in enumerate(entries):
            pid = as_id(ci_get(e, "ProductID"), "ProductID")
            prod = products.by_id.get(pid) if pid > 0 else None
            if prod is None:  # CEF: "TODO: Add message stating why skipped" - silent skip
                m.inventory_skipped.append({"index": i, "entry": e,
                                            "reason": "unknown or invalid ProductID"})
                continue
            key = str(prod.get("CustomKey") or f"#{pid}")
            inv = m.inventory.setdefault(key, {"ProductID": pid, "Locations": {}})
            locs = ci_get(e, "RelevantLocations")
            if locs:
                for loc in locs:
                    lid = as_id(ci_get(loc, "SlaveID"), "SlaveID")
                    lrec = locations.by_id.get(lid) if lid > 0 else None
                    if lrec is None:
                        m.inventory_skipped.append({"index": i, "entry": loc, "ProductID": pid,
                                                    "reason": "unknown or invalid SlaveID"})
                        continue
                    if (pid, lid) in seen_pils:
                        m.inventory_skipped.append({
                            "index": i, "entry": loc, "ProductID": pid,
                            "reason": "repeated ProductID+SlaveID in one request (CEF uses the first)"})
                        continue
                    seen_pils.add((pid, lid))
                    lkey = str(lrec.get("CustomKey") or f"#{lid}")
                    inv["Locations"][lkey] = {
                        "SlaveID": lid,
                        "Quantity": ci_get(loc, "Quantity"),
                        "QuantityAllocated": ci_get(loc, "QuantityAllocated"),
                        "QuantityPreSold": ci_get(loc, "QuantityPreSold"),
                        "UpdatedDate": now_iso()}
            else:
                if pid in seen_flat:
                    m.inventory_skipped.append({
                        "index": i, "entry": e,
                        "reason": "repeated ProductID in one request (CEF uses the first)"})
                    continue
                seen_flat.add(pid)
                for src, dst in (("QuantityPresent", "StockQuantity"),
                                 ("QuantityAllocated", "StockQuantityAllocated"),
                                 ("QuantityPreSold", "StockQuantityPreSold")):
                    v = ci_get(e, src)
                    inv[src] = v
                    prod[dst] = v
                inv["UpdatedDate"] = now_iso()
        r = Resp(200, cef_ok(with_result=False))
        r.applied = True
        return r

    # ---- control endpoints ----
    def control(self, method, path, query, body_bytes):
        m = self.mock
        what = path[len("/__mock/"):].strip("/").lower()
        try:
            body = json.loads(body_bytes) if body_bytes else None
        except ValueError:
            return err(400, "SerializationException", "control body is not JSON")
        try:
            if what == "health":
                return Resp(200, {"ok": True, "auth": m.args.auth, "base": m.base})
            if what == "log" and method == "GET":
                with m.log_lock:
                    return Resp(200, list(m.log))
            if what == "state" and method == "GET":
                return Resp(200, m.state())
            if what == "faults":
                if method == "POST":
                    q = dict(urllib.parse.parse_qsl(query))
                    m.set_faults(body or [], append=q.get("append") in ("1", "true"))
                with m.lock:
                    return Resp(200, m.faults)
            if what == "seed" and method == "POST":
                return Resp(200, {"seeded": m.seed(body or {})})
            if what == "reset" and method == "POST":
                m.reset_state()
                with m.lock:
                    m.faults = []
                if not (isinstance(body, dict) and body.get("keep_log")):
                    with m.log_lock:
                        m.log = []
                return Resp(200, {"reset": True})
            if what == "expire" and method == "POST":
                with m.lock:
                    for s in m.sessions.values():
                        s["expires"] = 0
                    for t in m.tokens:
                        m.tokens[t] = 0
                return Resp(200, {"expired": True})
            if what == "shutdown" and method == "POST":
                self.stop_after = True
                r = Resp(200, {"stopping": True}, headers=[("Connection", "close")])
                self.close_connection = True
                return r
        except (ValueError, TypeError, KeyError) as e:
            return err(400, "BadControlRequest", str(e))
        return err(404, "NotFound", f"no control endpoint {method} {path}")


def _build_routes():
    ent = "(?P<entity>" + "|".join(re.escape(k) for k in ENTITIES) + ")"
    plural = "(?P<plural>" + "|".join(re.escape(v[1]) for v in ENTITIES.values()) + ")"
    rows = [
        ("GET", "/" + ent + "/Exists/Key/(?P<key>.+)", "r_exists_key"),
        ("GET", "/" + ent + "/Exists/ID/(?P<id>[^/]+)", "r_exists_id"),
        ("GET", "/" + ent + "/Key/(?P<key>.+)", "r_get_key"),
        ("GET", "/" + ent + "/ID/(?P<id>[^/]+)", "r_get_id"),
        ("GET", "/" + plural, "r_list"),
        ("POST", "/" + ent + "/(?P<op>Upsert|Create)", "r_upsert"),
        ("PUT", "/" + ent + "/Update", "r_update"),
        ("PATCH", "/Ordering/SalesOrder/(?P<action>" + "|".join(
            {"confirm": "Confirm", "pending": "Pending", "hold": "Hold", "backorder": "Backorder",
             "createpickticket": "CreatePickTicket", "dropship": "DropShip", "ship": "Ship",
             "readyforpickup": "ReadyForPickup", "complete": "Complete", "void": "Void"}.values())
         + ")/(?P<id>[^/]+)", "r_state_change"),
        ("PUT", "/Providers/Inventory/BulkUpdateInventoryForProducts", "r_inventory_bulk"),
    ]
    return [(meth, re.compile(pat, re.I), fn) for meth, pat, fn in rows]


ROUTES = _build_routes()
PUBLIC_PRODUCT_READS = ("r_exists_key", "r_exists_id", "r_get_key", "r_get_id")
# members of CEF's CalculatedInventory (clarity.md §6.6); anything else is ignored by ServiceStack
CALCULATED_INVENTORY_MEMBERS = {x.lower() for x in (
    "ProductID", "ProductUOM", "IsDiscontinued", "IsUnlimitedStock", "IsOutOfStock",
    "QuantityPresent", "QuantityAllocated", "QuantityOnHand", "QuantityPreSellable",
    "QuantityPreSold", "AllowBackOrder", "AllowPreSale", "PreSellEndDate",
    "MaximumPurchaseQuantity", "MaximumPurchaseQuantityIfPastPurchased",
    "MaximumPrePurchaseQuantity", "MaximumPrePurchaseQuantityIfPastPurchased",
    "MaximumPrePurchaseQuantityGlobal", "MaximumBackOrderPurchaseQuantity",
    "MaximumBackOrderPurchaseQuantityIfPastPurchased", "MaximumBackOrderPurchaseQuantityGlobal",
    "RelevantLocations")}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that gave up (time-out, reset) is normal in fault tests: stay quiet
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock of the Clarity eCommerce admin API")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--auth", choices=["identity", "basic", "oauth2", "none"], default="none")
    ap.add_argument("--user", default="api")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--client-id", default="client")
    ap.add_argument("--client-secret", default="secret")
    ap.add_argument("--token-ttl", type=float, default=3600)
    ap.add_argument("--token-path", default="/oauth/token")
    ap.add_argument("--session-ttl", type=float, default=0, help="identity sessions expire (0: never)")
    ap.add_argument("--base", default="", help="API base path, e.g. /DesktopModules/ClarityEcommerce/API-Admin")
    ap.add_argument("--lifetime", type=float, default=300)
    ap.add_argument("--seed-orders", help="JSON list of orders")
    ap.add_argument("--seed", help="JSON {orders,products,accounts,locations,statuses}")
    ap.add_argument("--faults", help="JSON list of fault rules")
    ap.add_argument("--log", help="append one JSON line per request")
    ap.add_argument("--exists-missing", choices=["204", "null", "404"], default="204")
    ap.add_argument("--private-product-reads", action="store_true",
                    help="product Exists/Key/ID reads need auth too")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    mock = Mock(args)
    for f in (args.seed, args.seed_orders):
        if f:
            with open(f, encoding="utf-8") as fh:
                mock.seed(json.load(fh))
    if args.faults:
        with open(args.faults, encoding="utf-8") as fh:
            mock.set_faults(json.load(fh))

    Handler.mock = mock
    srv = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    mock.server = srv
    signal.signal(signal.SIGTERM, lambda *_: mock.stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: mock.stop("SIGINT"))
    print(f"PORT {srv.server_address[1]}", flush=True)
    if args.lifetime > 0:
        t = threading.Timer(args.lifetime, mock.stop, args=("lifetime",))
        t.daemon = True
        t.start()
    try:
        srv.serve_forever(poll_interval=0.1)
    finally:
        srv.server_close()
        if mock.logf:
            mock.logf.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
