# shellcheck shell=bash
# deliver.sh - Sage CSV exports -> Clarity API batches -> `sagebridge deliver` against the mock
# Clarity API (tests/lib/mock_clarity.py), end to end (SPEC §6): batch format, final API state,
# transient faults, kill -9 and resume, unreachable API, refused credentials, oauth2 token
# refresh, unknown keys, secrets kept out of every file and output.
. "$TOP/tests/lib/testlib.sh"
D=$TOP/tests/data/deliver
MOCK=$TOP/tests/lib/mock_clarity.py
PY=$(python3 -c "import sys; print(sys.executable)" 2>/dev/null); PY=${PY:-python3} # not the slow pyenv shim, for each check
CHK() { "$PY" "$D/check.py" "$@"; }
T=deliver
PIDS=()
mkdir -p logs secret saved
NRUN=0
PW=Sup3r-S3cret-Zq9
CS=Cl13nt-S3cr3t-Wv7
printf '%s\n' "$PW" >secret/pw
printf '%s\n' "$CS" >secret/cs
printf '%s\n' 'wrong-Pa55-Hq3' >secret/wrong
chmod 600 secret/*
export SAGEBRIDGE_CLARITY_PASSWORD_FILE=$WORK/secret/pw

# PIDS: the processes this script started and that may still run (mock servers, the deliver
# that gets killed); each leaves the list once waited for, so no stale id is ever signalled
forget() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && sleep 0.2 && kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# sb ARGS... : run sagebridge like testlib's run (status in $rc, output in $WORK/out, err), at
# most 40 s, keeping every output for the secrets check
sb() {
    timeout -k 2 40 "$SB" "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    NRUN=$((NRUN + 1))
    cp "$WORK/out" "logs/$NRUN.out"
    cp "$WORK/err" "logs/$NRUN.err"
}

# start_mock NAME ARGS... : a mock API; sets PORT and MOCK_PID
start_mock() {
    local name=$1
    shift
    PORT=
    "$PY" "$MOCK" --port 0 --lifetime 120 --log "$WORK/logs/$name.mock.jsonl" "$@" \
        >"$WORK/logs/$name.mock.out" 2>"$WORK/logs/$name.mock.err" &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    for _ in $(seq 100); do
        PORT=$(awk '$1 == "PORT" { print $2; exit }' "$WORK/logs/$name.mock.out")
        [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { fail "$T: mock $name starts" "no PORT line: $(head -c 300 "$WORK/logs/$name.mock.err")"; PORT=1; }
}
stop_mock() {
    kill "$MOCK_PID" 2>/dev/null
    wait "$MOCK_PID" 2>/dev/null
    forget "$MOCK_PID"
}
mctl() { # mctl PATH [JSON] : POST a control request to the mock on $PORT
    local body=${2:-'{}'}
    curl -s -m 5 -X POST -H 'Content-Type: application/json' --data "$body" \
        "http://127.0.0.1:$PORT/__mock/$1" >/dev/null
}
# mcheck NAME EXPR [SHOW] : EXPR (Python over s = state, lg = log) holds on the mock at $PORT
mcheck() {
    local why
    if why=$(CHK state "$PORT" "$2" ${3:+"$3"} 2>&1); then pass "$T: $1"; else fail "$T: $1" "$(echo "$why" | tr '\n' ' ')"; fi
}
# pcheck NAME CHECK-ARGS... : a check.py assertion
pcheck() {
    local name=$1 why
    shift
    if why=$(CHK "$@" 2>&1); then pass "$T: $name"; else fail "$T: $name" "$(echo "$why" | tr '\n' ' ')"; fi
}

# spool DIR FILE... : a fresh spool with the Sage files dropped (settled) into in/sage/
spool() {
    local dir=$1 f
    shift
    "$SB" init "$dir" >/dev/null 2>&1 || fail "$T: init $dir" "sagebridge init failed"
    for f in "$@"; do
        cp "$f" "$dir/in/sage/"
        touch -d '1 hour ago' "$dir/in/sage/$(basename "$f")"
    done
}
# drop DIR FILE... : more Sage files into an existing spool
drop() {
    local dir=$1 f
    shift
    for f in "$@"; do
        cp "$f" "$dir/in/sage/"
        touch -d '1 hour ago' "$dir/in/sage/$(basename "$f")"
    done
}
# clarity DIR AUTH [KEY=VALUE...] : append a [clarity] section pointing at the mock on $PORT
clarity() {
    local dir=$1 auth=$2 kv
    shift 2
    {
        echo
        echo "[clarity]"
        echo "url = http://127.0.0.1:$PORT"
        echo "auth = $auth"
        echo "user = api"
        echo "client_id = sb-client"
        echo "timeout_s = 5"
        echo "connect_timeout_s = 2"
        echo "max_attempts = 6"
        echo "max_age_s = 60"
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
    } >>"$dir/sagebridge.conf"
}
batches() { ls "$1"/out/clarity/CLARITY_*.json 2>/dev/null; }
nfiles() { find "$1" -type f 2>/dev/null | wc -l | tr -d ' '; }
snapshot() { (cd "$1" && find in out sent error hold archive -type f 2>/dev/null | sort); }
# unmoved NAME DIR BEFORE : the files of DIR's folders are still BEFORE (a snapshot)
unmoved() {
    local now
    now=$(snapshot "$2")
    if [ "$3" = "$now" ]; then pass "$T: $1"; else
        fail "$T: $1" "changed: $(diff <(echo "$3") <(echo "$now") | grep '^[<>]' | tr '\n' ' ')"
    fi
}

# ======================================================================================
# 1. End to end: items, then inventory + order status + customers; the mock ends as the CSVs say
start_mock e2e --auth identity --user api --password "$PW"
mctl seed "$(cat "$D/orders-seed.json")"
spool e2e "$D/items.csv"
sb -c e2e/sagebridge.conf run --once
expect_rc "$T: run --once converts the items export" 0
b_items=$(batches e2e)
expect "$T: one batch CLARITY_<batch>.json in out/clarity" [ "$(echo "$b_items" | grep -c .)" = 1 ]
pcheck "items batch is a well-formed batch of the input (batchId, createdAt, source.sha256 = sha256sum, operations)" \
    format "$b_items" "$D/items.csv"
expect "$T: items batch: one product.upsert per row" [ "$(CHK ops "$b_items")" = 7 ]
cp "$b_items" saved/items.json
clarity e2e identity
sb -c e2e/sagebridge.conf deliver --once
expect_rc "$T: deliver --once sends the items batch (exit 0)" 0
name=$(basename "$b_items")
expect "$T: delivered items batch moved to sent/clarity" [ -f "e2e/sent/clarity/$name" -a ! -e "$b_items" ]
resp=$(ls e2e/sent/clarity/"$name"*responses.ndjson e2e/sent/clarity/"${name%.json}"*responses.ndjson 2>/dev/null | head -1)
expect "$T: NAME.responses.ndjson beside the delivered batch" [ -n "$resp" ]
pcheck "responses.ndjson: one line per operation" responses "${resp:-/dev/null}" saved/items.json
pcheck "items: every operation applied exactly once" once "$PORT" - saved/items.json

sleep 1 # a later batch name than the items'
drop e2e "$D/inventory.csv" "$D/so_status.csv" "$D/customers.csv"
SAGEBRIDGE_CLARITY_INVENTORY_CHUNK=2 sb -c e2e/sagebridge.conf run --once
expect_rc "$T: run --once converts inventory, so_status and customers" 0
expect "$T: three more batches" [ "$(batches e2e | grep -c .)" = 3 ]
b_inv=$(batches e2e | grep -i inventory)
b_so=$(batches e2e | grep -i -E 'so_status|so-status|status')
b_cu=$(batches e2e | grep -i customer)
pcheck "inventory batch is well-formed, {ID:…} placeholders have resolve entries" format "${b_inv:-/dev/null}" "$D/inventory.csv"
pcheck "so_status batch is well-formed" format "${b_so:-/dev/null}" "$D/so_status.csv"
pcheck "customers batch is well-formed" format "${b_cu:-/dev/null}" "$D/customers.csv"
expect "$T: INVENTORY_CHUNK=2 with 5 items gives 3 bulk operations" [ "$(CHK ops "${b_inv:-/dev/null}" 2>/dev/null)" = 3 ]
"$PY" -c 'import json,sys; o=json.load(open(sys.argv[1]))["operations"]; sys.exit(0 if [len(x["body"]["InventoryToPush"]) for x in o]==[2,2,1] and all(x.get("resolve") for x in o) else 1)' "${b_inv:-/dev/null}" 2>/dev/null
expect "$T: inventory chunks hold 2+2+1 items, each with its resolve map" [ $? = 0 ]
grep -q '{ID:' "${b_so:-/dev/null}"
expect "$T: order update uses an {ID:…} placeholder resolved at delivery" [ $? = 0 ]
for b in $b_inv $b_so $b_cu; do cp "$b" saved/; done
sb -c e2e/sagebridge.conf deliver --once
expect_rc "$T: deliver --once sends inventory, so_status, customers (exit 0)" 0
expect "$T: out/clarity is empty after delivery" [ -z "$(batches e2e)" ]
expect "$T: error/ is empty after a clean delivery" [ "$(nfiles e2e/error)" = 0 ]
for b in $b_inv $b_so $b_cu; do
    n=$(basename "$b")
    r=$(ls e2e/sent/clarity/"$n"*responses.ndjson e2e/sent/clarity/"${n%.json}"*responses.ndjson 2>/dev/null | head -1)
    pcheck "$n in sent/clarity with one response line per operation" responses "${r:-/dev/null}" "saved/$n"
done
pcheck "mock state equals the CSVs: product names/active/price, stock, order statuses, accounts" \
    expect "$PORT" "$D/expected-state.json"
pcheck "every operation of the four batches applied exactly once" once "$PORT" - saved/items.json \
    saved/"$(basename "$b_inv")" saved/"$(basename "$b_so")" saved/"$(basename "$b_cu")"
mcheck "inventory went through the bulk route with numeric ProductIDs (nothing skipped)" \
    's["operation_counts"].get("PUT /Providers/Inventory/BulkUpdateInventoryForProducts")==3 and not s["inventory_skipped"]' \
    '(s["operation_counts"], s["inventory_skipped"][:3])'
mcheck "one identity login per deliver run, not one per operation" \
    'sum(1 for e in lg if e["path"].lower()=="/auth/identity")<=2' '[e["path"] for e in lg][:10]'
sb -c e2e/sagebridge.conf deliver --once
expect_rc "$T: a second deliver --once with nothing waiting exits 0" 0
mcheck "a second deliver sends nothing again" 'all(v==1 for v in s["applied"].values()) and len(s["applied_ops"])==15' 'len(s["applied_ops"])'
stop_mock

# --- the same input converted twice: same idempotency keys
mkdir -p conv1 conv2
sb convert "$D/items.csv" -o conv1
sb convert "$D/items.csv" -o conv2
k1=$(CHK keys conv1/*.json 2>/dev/null)
k2=$(CHK keys conv2/*.json 2>/dev/null)
k0=$(CHK keys saved/items.json 2>/dev/null)
expect "$T: same input converted twice gives the same idempotencyKeys" [ -n "$k1" -a "$k1" = "$k2" ]
expect "$T: convert and run give the same idempotencyKeys for the same input" [ -n "$k0" -a "$k0" = "$k1" ]

# ======================================================================================
# 2. Transient faults: survived, nothing applied twice
# fault_case NAME FAULTS-JSON [KEY=VALUE...] : items batch through a mock with FAULTS
fault_case() {
    local name=$1 faults=$2
    shift 2
    start_mock "$name" --auth identity --user api --password "$PW"
    mctl faults "$faults"
    spool "$name" "$D/items.csv"
    sb -c "$name/sagebridge.conf" run --once
    FB=$(batches "$name")
    cp "$FB" "saved/$name.json"
    clarity "$name" identity "$@"
    local t0=${EPOCHREALTIME/./}
    sb -c "$name/sagebridge.conf" deliver --once
    ELAPSED_MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
    expect_rc "$T: fault $name: delivered (exit 0)" 0
    expect "$T: fault $name: batch in sent/clarity, not left in out/ or error/" \
        [ -f "$name/sent/clarity/$(basename "$FB")" -a -z "$(batches "$name")" -a "$(nfiles "$name/error")" = 0 ]
    pcheck "fault $name: each operation applied exactly once" once "$PORT" - "saved/$name.json"
    pcheck "fault $name: the mock holds the 7 products" state "$PORT" 'len(s["products"])==7' 'list(s["products"])'
}
fault_case f500 '[{"match":{},"times":3,"action":"status:500"}]'
stop_mock
fault_case f503 '[{"match":{"method":"POST","path_prefix":"/Products"},"times":2,"action":"status:503"}]'
stop_mock
fault_case f429 '[{"match":{"method":"POST","path_prefix":"/Products"},"times":1,"action":"status:429:retry-after=1"}]'
mcheck "fault f429: the 429 was answered and the request retried" \
    'sum(1 for e in lg if e["status"]==429)==1 and sum(1 for e in lg if e["method"]=="POST" and e["path"].startswith("/Products"))==8'
expect "$T: fault f429: Retry-After: 1 was honoured (delivery took >= 1 s, took ${ELAPSED_MS} ms)" [ "$ELAPSED_MS" -ge 1000 ]
stop_mock
fault_case fdelay '[{"match":{"method":"POST","path_prefix":"/Products"},"times":1,"action":"delay:2.5"}]' timeout_s=1
sleep 2 # the delayed request completes on the mock side (too late): must not apply twice
pcheck "fault fdelay: after the slow request finally completed, still applied once" once "$PORT" - saved/fdelay.json
stop_mock
fault_case fdrop '[{"match":{"method":"POST","path_prefix":"/Products"},"times":2,"action":"drop"}]'
stop_mock
fault_case fdropafter '[{"match":{"method":"POST","path_prefix":"/Products"},"times":2,"action":"drop_after"}]'
mcheck "fault fdropafter: the retried request was replayed, not re-applied" \
    'sum(1 for e in lg if e.get("replayed"))>=1 and s["operation_counts"].get("POST /Products/Product/Upsert")==7' \
    '(s["operation_counts"], [e.get("replayed") for e in lg])'
stop_mock

# --- faults on the {ID} resolution (GET …/Exists/Key) of an order status batch
start_mock fget --auth identity --user api --password "$PW"
mctl seed "$(cat "$D/orders-seed.json")"
mctl faults '[{"match":{"method":"GET","path_prefix":"/Ordering/SalesOrder/Exists"},"times":2,"action":"status:503"},{"match":{"method":"PUT"},"times":1,"action":"drop_after"}]'
spool fget "$D/so_status.csv"
sb -c fget/sagebridge.conf run --once
cp "$(batches fget)" saved/fget.json
clarity fget identity
sb -c fget/sagebridge.conf deliver --once
expect_rc "$T: 503 on the ID lookup and a lost PUT response: delivered (exit 0)" 0
pcheck "ID lookup faults: each order update applied once" once "$PORT" - saved/fget.json
mcheck "ID lookup faults: order statuses Processing / Void / Completed" \
    '[s["orders"][k]["StatusName"] for k in ("WEB-5001","WEB-5002","WEB-5003")]==["Processing","Void","Completed"]' \
    '[s["orders"][k]["StatusName"] for k in ("WEB-5001","WEB-5002","WEB-5003")]'
stop_mock

# --- transient failures outlasting max_attempts: the batch waits (75), then goes through
start_mock fwait --auth identity --user api --password "$PW"
mctl faults '[{"match":{"method":"POST","path_prefix":"/Products"},"times":-1,"action":"status:503"}]'
spool fwait "$D/items.csv"
sb -c fwait/sagebridge.conf run --once
b=$(batches fwait)
cp "$b" saved/fwait.json
clarity fwait identity max_attempts=2
sb -c fwait/sagebridge.conf deliver --once
expect_rc "$T: 503 beyond max_attempts: exit 75" 75
expect "$T: 503 beyond max_attempts: batch waits in out/clarity, not in error/" [ -f "$b" -a "$(nfiles fwait/error)" = 0 ]
mcheck "503 beyond max_attempts: max_attempts=2 tries, then stop (no storm)" \
    'sum(1 for e in lg if e["method"]=="POST" and e["path"].startswith("/Products"))==2' \
    'sum(1 for e in lg if e["method"]=="POST" and e["path"].startswith("/Products"))'
mctl faults '[]'
sb -c fwait/sagebridge.conf deliver --once
expect_rc "$T: API healthy again: the waiting batch is delivered" 0
pcheck "after waiting: each operation applied exactly once" once "$PORT" - saved/fwait.json
stop_mock

# --- ActionSucceeded:false: a permanent failure of that operation; the batch goes to error/
start_mock ffalse --auth identity --user api --password "$PW"
spool ffalse "$D/items.csv"
sb -c ffalse/sagebridge.conf run --once
b=$(batches ffalse)
name=$(basename "$b")
cp "$b" saved/ffalse.json
# the third POST is refused (after two good ones)
mctl faults '[{"match":{"method":"POST","path_prefix":"/Products"},"times":2,"action":"delay:0"},{"match":{"method":"POST","path_prefix":"/Products"},"times":1,"action":"succeeded_false"}]'
clarity ffalse identity
sb -c ffalse/sagebridge.conf deliver --once
expect "$T: ActionSucceeded false: deliver exits non-zero (not 75: nothing to wait for)" [ "$rc" != 0 -a "$rc" != 75 ]
expect "$T: ActionSucceeded false: batch moved to error/" [ -f "ffalse/error/$name" -a ! -e "$b" -a ! -e "ffalse/sent/clarity/$name" ]
ef=$(ls ffalse/error/"$name"*error.json ffalse/error/"${name%.json}"*error.json 2>/dev/null | head -1)
expect "$T: ActionSucceeded false: NAME.error.json in error/" [ -n "$ef" ]
pcheck "error.json names the failed operation's request, response and reason" errorfile "${ef:-/dev/null}" saved/ffalse.json 3 -
grep -q 'ActionSucceeded' "${ef:-/dev/null}" 2>/dev/null
expect "$T: error.json carries the API's response body" [ $? = 0 ]
pcheck "ActionSucceeded false: the others applied once, the refused one not at all (not retried into success)" \
    once "$PORT" 3 saved/ffalse.json
mcheck "ActionSucceeded false: the refused operation was sent once (permanent, no retry)" \
    'sum(1 for e in lg if e["method"]=="POST" and e["path"].startswith("/Products"))==7'
er=$(ls ffalse/error/"$name"*responses.ndjson ffalse/error/"${name%.json}"*responses.ndjson 2>/dev/null | head -1)
pcheck "error/ keeps every other operation's result (responses.ndjson without seq 3)" responses "${er:-/dev/null}" saved/ffalse.json 3
stop_mock

# ======================================================================================
# 3. kill -9 mid-delivery, then resume: every operation applied exactly once
"$PY" - "$WORK/items-200.csv" <<'PY'
import sys
with open(sys.argv[1], "w", newline="") as f:
    f.write("ItemID,ShortDesc,Status,StdPrice\r\n")
    for i in range(200):
        f.write("K-%04d,Bulk item %d,1,%d.25\r\n" % (i, i, i + 1))
PY
start_mock kill --auth identity --user api --password "$PW"
spool kill "$WORK/items-200.csv"
sb -c kill/sagebridge.conf run --once
b=$(batches kill)
name=$(basename "$b")
cp "$b" saved/kill.json
clarity kill identity
mctl faults '[{"match":{"method":"POST","path_prefix":"/Products"},"times":-1,"action":"delay:0.05"}]'
"$SB" -c kill/sagebridge.conf deliver --once >logs/kill1.out 2>logs/kill1.err &
DPID=$!
PIDS+=("$DPID")
for _ in $(seq 150); do # up to 15 s for about 40 operations to land
    n=$(curl -s -m 2 "http://127.0.0.1:$PORT/__mock/state" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["applied"]))' 2>/dev/null)
    [ "${n:-0}" -ge 40 ] && break
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
done
{ kill -9 "$DPID"; wait "$DPID"; } 2>/dev/null
forget "$DPID"
mcheck "kill -9 landed mid-way (some but not all of 200 applied)" '0 < len(s["applied"]) < 200' 'len(s["applied"])'
expect "$T: after kill -9 the batch is still in out/clarity" [ -f "$b" -a ! -e "kill/sent/clarity/$name" ]
mctl faults '[]'
sb -c kill/sagebridge.conf deliver --once
expect_rc "$T: deliver --once after kill -9 finishes (exit 0)" 0
expect "$T: after resume the batch is in sent/clarity" [ -f "kill/sent/clarity/$name" -a ! -e "$b" ]
pcheck "kill -9 + resume: each of 200 operations applied exactly once" once "$PORT" - saved/kill.json
mcheck "kill -9 + resume: the mock counted 200 product upserts, 200 products" \
    's["operation_counts"].get("POST /Products/Product/Upsert")==200 and len(s["products"])==200' \
    '(s["operation_counts"], len(s["products"]))'
mcheck "kill -9 + resume: operations confirmed before the kill were not sent again" \
    'len([e for e in lg if e["method"]=="POST" and e["path"].startswith("/Products")]) <= 200 + sum(1 for e in lg if e.get("replayed"))' \
    '(len([e for e in lg if e["method"]=="POST" and e["path"].startswith("/Products")]), sum(1 for e in lg if e.get("replayed")))'
kr=$(ls kill/sent/clarity/"$name"*responses.ndjson kill/sent/clarity/"${name%.json}"*responses.ndjson 2>/dev/null | head -1)
pcheck "kill -9 + resume: responses.ndjson still has one line per operation" responses "${kr:-/dev/null}" saved/kill.json
stop_mock

# ======================================================================================
# 4. API unreachable: exit 75, the batch stays, nothing else moves
start_mock gone --auth none
DEAD=$PORT
stop_mock
for auth in identity basic; do
    spool "un$auth" "$D/items.csv"
    sb -c "un$auth/sagebridge.conf" run --once
    b=$(batches "un$auth")
    PORT=$DEAD clarity "un$auth" "$auth" max_attempts=2
    before=$(snapshot "un$auth")
    t0=$SECONDS
    sb -c "un$auth/sagebridge.conf" deliver --once
    expect_rc "$T: unreachable API ($auth): exit 75" 75
    expect "$T: unreachable API ($auth): batch stays in out/clarity" [ -n "$b" -a -f "$b" ]
    unmoved "unreachable API ($auth): nothing else moved (in/ out/ sent/ error/ archive/)" "un$auth" "$before"
    expect "$T: unreachable API ($auth): gives up quickly (< 20 s)" [ $((SECONDS - t0)) -lt 20 ]
done

# ======================================================================================
# 5. Refused credentials: exit 78, a clear message, no retry storm
for auth in identity basic; do
    start_mock "pw$auth" --auth "$auth" --user api --password "$PW"
    spool "pw$auth" "$D/items.csv" "$D/customers.csv"
    sb -c "pw$auth/sagebridge.conf" run --once
    before=$(snapshot "pw$auth")
    clarity "pw$auth" "$auth"
    SAGEBRIDGE_CLARITY_PASSWORD_FILE=$WORK/secret/wrong sb -c "pw$auth/sagebridge.conf" deliver --once
    expect_rc "$T: wrong password ($auth): exit 78" 78
    expect_err "$T: wrong password ($auth): the message says the credentials were refused" '[Pp]assword|[Cc]redential|refused|401'
    mcheck "wrong password ($auth): no retry storm (at most 2 requests)" 'len(lg)<=2' '[(e["method"], e["path"], e["status"]) for e in lg][:8]'
    mcheck "wrong password ($auth): nothing applied" 'not s["applied_ops"]'
    unmoved "wrong password ($auth): batches wait in out/clarity, nothing moved to error/" "pw$auth" "$before"
    stop_mock
done
# basic auth, an order status batch: the first request is the {ID} lookup that needs auth
start_mock pwso --auth basic --user api --password "$PW"
mctl seed "$(cat "$D/orders-seed.json")"
spool pwso "$D/so_status.csv"
sb -c pwso/sagebridge.conf run --once
before=$(snapshot pwso)
clarity pwso basic
SAGEBRIDGE_CLARITY_PASSWORD_FILE=$WORK/secret/wrong sb -c pwso/sagebridge.conf deliver --once
expect_rc "$T: wrong password (basic, order status batch): exit 78" 78
mcheck "wrong password (basic, order status batch): no retry storm (at most 2 requests)" 'len(lg)<=2' '[(e["method"], e["path"], e["status"]) for e in lg][:8]'
unmoved "wrong password (basic, order status batch): batch waits, not in error/" pwso "$before"
stop_mock

# both secrets given as files (a shared unit file may set both): identity login still works
start_mock both --auth identity --user api --password "$PW"
spool both "$D/items.csv"
sb -c both/sagebridge.conf run --once
cp "$(batches both)" saved/both.json
clarity both identity
SAGEBRIDGE_CLARITY_CLIENT_SECRET_FILE=$WORK/secret/cs sb -c both/sagebridge.conf deliver --once
expect_rc "$T: PASSWORD_FILE and CLIENT_SECRET_FILE both set: identity delivery works (exit 0)" 0
mcheck "PASSWORD_FILE and CLIENT_SECRET_FILE both set: the login was accepted" \
    'any(e["path"]=="/auth/identity" and e["status"]==200 for e in lg) and len(s["applied"])==7' \
    '[(e["path"], e["status"], e["headers"].get("Content-Length")) for e in lg][:3]'
stop_mock

# ======================================================================================
# 6. oauth2: a 2 s token expires mid-batch -> refreshed, everything delivered
start_mock oauth --auth oauth2 --client-id sb-client --client-secret "$CS" --token-ttl 2
mctl seed "$(cat "$D/orders-seed.json")"
spool oauth "$D/items.csv"
sb -c oauth/sagebridge.conf run --once
sleep 1
drop oauth "$D/so_status.csv"
sb -c oauth/sagebridge.conf run --once
for b in $(batches oauth); do cp "$b" "saved/oauth-$(basename "$b")"; done
clarity oauth oauth2
mctl faults '[{"match":{"method":"POST","path_prefix":"/Products"},"times":1,"action":"delay:2.5"},{"match":{"method":"PUT","path_prefix":"/Ordering"},"times":1,"action":"delay:2.5"}]'
SAGEBRIDGE_CLARITY_PASSWORD_FILE='' SAGEBRIDGE_CLARITY_CLIENT_SECRET_FILE=$WORK/secret/cs \
    sb -c oauth/sagebridge.conf deliver --once
expect_rc "$T: oauth2 token expiring mid-batch: delivered (exit 0)" 0
expect "$T: oauth2: both batches in sent/clarity, none in error/" [ -z "$(batches oauth)" -a "$(nfiles oauth/error)" = 0 ]
mcheck "oauth2: the token was refreshed (more than one token request)" \
    'sum(1 for e in lg if e["path"].endswith("/oauth/token") and e["status"]==200)>=2' \
    '[(e["method"], e["path"], e["status"]) for e in lg]'
pcheck "oauth2: every operation applied exactly once" once "$PORT" - saved/oauth-*
mcheck "oauth2: order statuses Processing / Void / Completed" \
    '[s["orders"][k]["StatusName"] for k in ("WEB-5001","WEB-5002","WEB-5003")]==["Processing","Void","Completed"]' \
    '[s["orders"][k]["StatusName"] for k in ("WEB-5001","WEB-5002","WEB-5003")]'
stop_mock

# the token expires between two orders, right before an {ID} lookup (GET …/Exists/Key needs auth)
start_mock oauth2 --auth oauth2 --client-id sb-client --client-secret "$CS" --token-ttl 2
mctl seed "$(cat "$D/orders-seed.json")"
spool oauth2 "$D/so_status.csv"
sb -c oauth2/sagebridge.conf run --once
cp "$(batches oauth2)" saved/oauth2.json
clarity oauth2 oauth2
mctl faults '[{"match":{"method":"PUT","path_prefix":"/Ordering"},"times":1,"action":"delay:1.2"},{"match":{"method":"GET","path_prefix":"/Ordering/SalesOrder/Exists/Key/WEB-5002"},"times":1,"action":"delay:1.2"}]'
SAGEBRIDGE_CLARITY_PASSWORD_FILE='' SAGEBRIDGE_CLARITY_CLIENT_SECRET_FILE=$WORK/secret/cs \
    sb -c oauth2/sagebridge.conf deliver --once
expect_rc "$T: oauth2 token expiring before an ID lookup: delivered (exit 0)" 0
expect "$T: oauth2 token expiring before an ID lookup: batch in sent/clarity, none in error/" [ -z "$(batches oauth2)" -a "$(nfiles oauth2/error)" = 0 ]
pcheck "oauth2 token expiring before an ID lookup: every order update applied once" once "$PORT" - saved/oauth2.json
stop_mock

# ======================================================================================
# 7. Unknown key: inventory for an ItemID the API does not know
start_mock unk --auth identity --user api --password "$PW"
spool unk "$D/items.csv"
sb -c unk/sagebridge.conf run --once
clarity unk identity
sb -c unk/sagebridge.conf deliver --once
sleep 1
drop unk "$D/inventory-unknown.csv"
SAGEBRIDGE_CLARITY_INVENTORY_CHUNK=1 sb -c unk/sagebridge.conf run --once
b=$(batches unk)
name=$(basename "$b")
cp "$b" saved/unk.json
expect "$T: unknown key: one inventory operation per item (chunk 1)" [ "$(CHK ops saved/unk.json 2>/dev/null)" = 3 ]
sb -c unk/sagebridge.conf deliver --once
expect "$T: unknown key: deliver exits non-zero (not 75)" [ "$rc" != 0 -a "$rc" != 75 ]
expect "$T: unknown key: batch moved to error/" [ -f "unk/error/$name" -a ! -e "$b" ]
ef=$(ls unk/error/"$name"*error.json unk/error/"${name%.json}"*error.json 2>/dev/null | head -1)
pcheck "unknown key: error.json names the operation and a reason naming NOPE-404" errorfile "${ef:-/dev/null}" saved/unk.json 2 NOPE-404
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1])); t=json.dumps(e); sys.exit(0 if "SKU-100" not in json.dumps(e.get("failed", e)) else 1)' "${ef:-/dev/null}" 2>/dev/null
expect "$T: unknown key: only the failed operation is listed as failed" [ $? = 0 ]
pcheck "unknown key: the other two operations applied once, the unknown one not sent" once "$PORT" 2 saved/unk.json
mcheck "unknown key: the known items' stock was updated" \
    's["products"]["SKU-100"].get("StockQuantity")==41 and s["products"]["SKU-105"].get("StockQuantity")==16' \
    '{k: s["products"][k].get("StockQuantity") for k in ("SKU-100","SKU-105")}'
mcheck "unknown key: the lookup was not retried as if transient" \
    'sum(1 for e in lg if "NOPE-404" in e["path"])<=2' 'sum(1 for e in lg if "NOPE-404" in e["path"])'
# an inactive product (Sage Status 2): CEF's Exists/Key does not find inactive products, so
# its stock operation fails for good naming the key (a known limitation, in the issue notes);
# the other items' stock is still updated
drop unk "$D/inventory-inactive.csv"
SAGEBRIDGE_CLARITY_INVENTORY_CHUNK=1 sb -c unk/sagebridge.conf run --once
b=$(batches unk)
sb -c unk/sagebridge.conf deliver --once
expect_rc "$T: inventory for an inactive product: that operation fails (exit 65)" 65
expect_err "$T: inventory for an inactive product: the reason names the key" "SKU-102"
mcheck "inventory for an inactive product: the active item's stock is updated" \
    's["products"]["SKU-100"].get("StockQuantity")==42' \
    '{k: s["products"][k].get("StockQuantity") for k in ("SKU-100","SKU-102")}'
stop_mock

# ======================================================================================
# 7b. Shipments: one Shipment per ShipTranID with its lines and tracking number; the order
# is set Shipped only when nothing is left to ship (QtyOpenToShip 0 on every row)
start_mock shp --auth identity --user api --password "$PW"
mctl seed "$(cat "$D/orders-seed.json")"
spool shp "$D/shipments.csv"
sb -c shp/sagebridge.conf run --once
expect_rc "$T: shipments: run --once converts the export" 0
b_sh=$(batches shp)
clarity shp identity
sb -c shp/sagebridge.conf deliver --once
expect_rc "$T: shipments: delivered (exit 0)" 0
mcheck "shipments: SHP-1 holds its two lines and its tracking number" \
    'any(x.get("CustomKey")=="SHP-1" and x.get("TrackingNumber")=="1Z111" and len(x.get("ShipmentLines",[]))==2 for x in (s["shipments"].values() if isinstance(s["shipments"],dict) else s["shipments"]))' \
    's["shipments"]'
mcheck "shipments: the partial SHP-2 is there too" \
    'any(x.get("CustomKey")=="SHP-2" for x in (s["shipments"].values() if isinstance(s["shipments"],dict) else s["shipments"]))' \
    's["shipments"]'
mcheck "shipments: WEB-5001 (all shipped) is Shipped, WEB-5002 (partial) keeps its status" \
    '[o.get("StatusName") for o in (s["orders"].values() if isinstance(s["orders"],dict) else s["orders"]) if o.get("CustomKey") in ("WEB-5001","WEB-5002")]==["Shipped","Pending"]' \
    '[(o.get("CustomKey"),o.get("StatusName")) for o in (s["orders"].values() if isinstance(s["orders"],dict) else s["orders"])]'
stop_mock

# 7c. Per-location stock: a Sage warehouse listed in lookups/inventory-locations.csv updates
# that Clarity location (RelevantLocations, location ID resolved by key); others the product
start_mock loc --auth identity --user api --password "$PW"
mctl seed '{"products":[{"CustomKey":"SKU-100","Name":"Widget"}],"locations":[{"CustomKey":"LOC-WEST","Name":"West"}]}'
cp -r "$TOP/templates" loc-templates
printf 'from,to\nWEST,LOC-WEST\n' >loc-templates/lookups/inventory-locations.csv
spool loc "$D/inventory-locations.csv"
SAGEBRIDGE_PATHS_TEMPLATES=$PWD/loc-templates sb -c loc/sagebridge.conf run --once
expect_rc "$T: locations: run --once converts the export" 0
clarity loc identity
SAGEBRIDGE_PATHS_TEMPLATES=$PWD/loc-templates sb -c loc/sagebridge.conf deliver --once
expect_rc "$T: locations: delivered (exit 0)" 0
mcheck "locations: MAIN sets the product's stock, WEST the LOC-WEST location's" \
    's["inventory"]["SKU-100"]["QuantityPresent"]==40 and s["inventory"]["SKU-100"]["Locations"]["LOC-WEST"]["Quantity"]==5' \
    's["inventory"]'
stop_mock

# ======================================================================================
# 7d. libcurl is loaded only to deliver: with a libcurl.so.4 that cannot be loaded first on
# the library path, run --once still converts; deliver says what is missing (69) and the
# batch waits in out/clarity, untouched; with the real one it is delivered
mkdir -p nolib && : >nolib/libcurl.so.4
start_mock nocurl --auth identity --user api --password "$PW"
spool nocurl "$D/items.csv"
LD_LIBRARY_PATH=$PWD/nolib sb -c nocurl/sagebridge.conf run --once
expect_rc "$T: without a loadable libcurl, run --once converts (libcurl is not linked)" 0
b_nc=$(batches nocurl)
expect "$T: without libcurl: the batch is in out/clarity" [ "$(echo "$b_nc" | grep -c .)" = 1 ]
clarity nocurl identity
before=$(snapshot nocurl)
LD_LIBRARY_PATH=$PWD/nolib sb -c nocurl/sagebridge.conf deliver --once
expect_rc "$T: without a loadable libcurl, deliver exits 69" 69
expect "$T: deliver names libcurl and the package to install" grep -q "cannot load libcurl (libcurl.so.4).*install the libcurl4 package" "$WORK/err"
unmoved "without libcurl: nothing moved" nocurl "$before"
sb -c nocurl/sagebridge.conf deliver --once
expect_rc "$T: with libcurl, the waiting batch is delivered (exit 0)" 0
expect "$T: with libcurl: out/clarity is empty" [ -z "$(batches nocurl)" ]
stop_mock

# ======================================================================================
# 8. Secrets: the password / client secret in no file of any spool, archive, or output
sb -c e2e/sagebridge.conf status --json
expect_rc "$T: status --json runs" 0
sb --help
sb -c e2e/sagebridge.conf --help
leaks=""
for dir in e2e nocurl f500 f503 f429 fdelay fdrop fdropafter fget fwait ffalse kill unidentity unbasic pwidentity pwbasic pwso both oauth oauth2 unk conv1 conv2; do
    [ -d "$dir" ] || continue
    for s in "$PW" "$CS"; do
        l=$(grep -r -a -l -F -- "$s" "$dir" 2>/dev/null)
        [ -n "$l" ] && leaks="$leaks $l"
        while IFS= read -r a; do
            [ -n "$a" ] || continue
            if tar -xzOf "$a" 2>/dev/null | grep -a -q -F -- "$s" || zcat "$a" 2>/dev/null | grep -a -q -F -- "$s"; then
                leaks="$leaks $a"
            fi
        done < <(find "$dir" -name '*.gz')
    done
done
expect "$T: secrets appear in no spool file (batches, sent/, error/, ledger, archives incl. inside .tar.gz)${leaks:+:$leaks}" [ -z "$leaks" ]
narch=$(find e2e/archive -name '*.tar.gz' | wc -l)
expect "$T: (the secrets check did look into archives)" [ "$narch" -ge 1 ]
lo=$(grep -l -a -F -e "$PW" -e "$CS" logs/*.out logs/*.err 2>/dev/null | grep -v mock | tr '\n' ' ')
expect "$T: secrets in no stdout/stderr of the $NRUN sagebridge commands (incl. status --json, --help)${lo:+: $lo}" [ -z "$lo" ]
grep -a -q -F -e "$PW" -e "$CS" logs/kill1.out logs/kill1.err
expect "$T: secrets not in the output of the killed deliver" [ $? != 0 ]
