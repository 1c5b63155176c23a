#!/usr/bin/env bash
# it_cli_backfill: `sfk backfill` - Leads (and a closed Task) created in a
# private sfk-sim before any bridge ran are read back through REST and fed
# through the bridge's normalization and fan-out into the shared real Kafka
# (per-run topic prefix), in transactions:
#   - --dry-run counts and produces nothing;
#   - every record is on <prefix>cdc.<entity> as a schema-valid CREATE
#     envelope flagged as backfilled (flags.backfilled, header sfk.backfill=1),
#     fanned out per policies/workloads.json (the Task keyed by its Lead);
#   - a lead.route worker started afterwards routes every backfilled Lead
#     (owner from the policy's pool or queue), one write per Lead; a second
#     backfill is absorbed by idempotency (same event ids, no new write).
#
# Needs: eval "$(tests/stack/up --kafka real --sim)" (the shared broker);
# starts its own sim + Redis (exact write counts).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORKER="$SFK_BIN_DIR/sfk-worker"
WORK=$(mktemp -d)
PIDS=()
PRIV_STACK=
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "$PRIV_STACK" ] && SFK_STACK_DIR=$PRIV_STACK "$SFK_SOURCE_DIR/tests/stack/down" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
	echo "it_cli_backfill: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err "$WORK"/*.log; do
		[ -s "$f" ] && grep -v '"level":"debug"' "$f" | tail -8 | sed "s|^|  $(basename "$f"): |" >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
[ -x "$WORKER" ] || fail "$WORKER not built"
[ -x "$SFK_BIN_DIR/sfk-sim" ] || fail "$SFK_BIN_DIR/sfk-sim not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
python3 -c 'import jsonschema' 2>/dev/null || fail "python3 jsonschema not installed"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under eval \"\$(tests/stack/up --kafka real --sim)\""
[ "${SFK_KAFKA_KIND:-real}" != mock ] || fail "needs a real broker (transactions, CreateTopics)"
BROKERS=$KAFKA_BOOTSTRAP_SERVERS
cd "$SFK_SOURCE_DIR"

env_out=$("$SFK_SOURCE_DIR/tests/stack/up" --sim --kafka none) || fail "private stack did not start"
eval "$env_out"
PRIV_STACK=$SFK_STACK_DIR
export KAFKA_BOOTSTRAP_SERVERS=$BROKERS

P="itbf$$x$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_CLIENT_ID=sfk-kpis SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_BACKFILL_TXN_ID="${P}backfill"
export SFK_ROUTING_POLICY=$SFK_SOURCE_DIR/policies/routing_policy.json
export SFK_ROUTING_POLICY_SCHEMA=$SFK_SOURCE_DIR/schemas/routing_policy.schema.json
"$SFK" topics create --partitions 2 >"$WORK/topics.out" 2>&1 || fail "topics create exited $?"

ctl() {
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
topic() { # topic SUFFIX: "key<TAB>headers<TAB>value" (read_committed)
	kcat -b "$BROKERS" -C -t "$P$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%h\t%s\n' 2>/dev/null || true
}

# 1. History: leads (and a closed Task on the first), no bridge running.
: >"$WORK/leads.tsv"
for spec in "United States|40" "Germany|300" "Japan|5000" "USA|20" "France|-" "Atlantis|50"; do
	IFS='|' read -r c e <<<"$spec"
	body=$(jq -nc --arg c "$c" --arg e "$e" '{LastName: "Hist", Company: "Acme", Country: $c}
		+ (if $e == "-" then {} else {NumberOfEmployees: ($e | tonumber)} end)')
	id=$(ctl POST /sim/records/Lead "$body" | jq -r .id)
	[ -n "$id" ] && [ "$id" != null ] || fail "could not create a lead"
	printf '%s\t%s\n' "$id" "$body" >>"$WORK/leads.tsv"
done
L1=$(head -1 "$WORK/leads.tsv" | cut -f1)
T1=$(ctl POST /sim/records/Task "$(jq -nc --arg w "$L1" '{WhoId: $w, Subject: "Call", Status: "Completed", Type: "Call"}')" | jq -r .id)
[ -n "$T1" ] && [ "$T1" != null ] || fail "could not create a task"
NL=$(wc -l <"$WORK/leads.tsv")
SINCE=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)

# 2. usage, dry run
set +e
"$SFK" backfill >"$WORK/u.out" 2>&1; r1=$?
"$SFK" backfill --since yesterday >"$WORK/u.out" 2>&1; r2=$?
set -e
[ "$r1 $r2" = "2 2" ] || fail "usage exits $r1 $r2, want 2 2"
"$SFK" backfill --since "$SINCE" --entities Lead,Task --dry-run --json >"$WORK/dry.out" 2>"$WORK/dry.err" ||
	fail "dry run exited $?"
[ "$(jq .entities.Lead "$WORK/dry.out")" = "$NL" ] || fail "dry run counted $(jq .entities.Lead "$WORK/dry.out") leads, want $NL"
[ "$(jq .entities.Task "$WORK/dry.out")" = 1 ] || fail "dry run counted $(jq .entities.Task "$WORK/dry.out") tasks, want 1"
[ -z "$(topic cdc.lead)" ] || fail "dry run produced records"
pass "usage errors exit 2; --dry-run counts $NL leads + 1 task and produces nothing"

# 3. backfill for real
"$SFK" backfill --since "$SINCE" --entities Lead,Task --json >"$WORK/bf.out" 2>"$WORK/bf.err" || fail "backfill exited $?"
[ "$(jq .records "$WORK/bf.out")" = $((NL + 1)) ] || fail "backfill: $(jq .records "$WORK/bf.out") records"
topic cdc.lead >"$WORK/cdc.tsv"
topic cdc.task >>"$WORK/cdc.tsv"
topic wl.lead.route >"$WORK/route.tsv"
topic wl.lead.first_touch_detect >"$WORK/ft.tsv"
python3 - "$WORK" "$SFK_SOURCE_DIR/schemas/event.schema.json" "$L1" "$T1" <<'PY' || fail "envelope checks (above)"
import json, sys, jsonschema
work, schema, l1, t1 = sys.argv[1:5]
v = jsonschema.Draft202012Validator(json.load(open(schema)))
leads = [l.split("\t")[0] for l in open(work + "/leads.tsv")]
errs = []
def rows(f):
    for line in open(f):
        k, h, val = line.rstrip("\n").split("\t", 2)
        yield k, h, json.loads(val)
cdc = list(rows(work + "/cdc.tsv"))
for k, h, env in cdc:
    for e in v.iter_errors(env):
        errs.append(f"{k}: {e.json_path}: {e.message}")
    if env["change_type"] != "CREATE" or not env["flags"].get("backfilled") or env["flags"]["resynced"] or "sfk.backfill=1" not in h:
        errs.append(f"{k}: not flagged as a backfilled CREATE ({env['change_type']}, {h})")
    if env["event_id"] != f"{env['entity']}:{env['record_id']}:0":
        errs.append(f"{k}: event id {env['event_id']}")
if sorted(k for k, _, e in cdc if e["entity"] == "Lead") != sorted(leads):
    errs.append("cdc.lead does not hold exactly the leads")
route = sorted(k for k, _, _ in rows(work + "/route.tsv"))
if route != sorted(leads):
    errs.append(f"wl.lead.route keys {route}")
ft = [(k, e["entity"]) for k, _, e in rows(work + "/ft.tsv")]
if (l1, "Task") not in ft:
    errs.append(f"the closed task is not fanned out to first_touch keyed by its lead: {ft}")
errs and print("\n".join(errs), file=sys.stderr)
sys.exit(1 if errs else 0)
PY
pass "$NL leads + 1 task: schema-valid CREATE envelopes flagged backfilled, fanned out (task keyed by its lead)"

# 4. A worker started afterwards routes them.
"$WORKER" --workload lead.route --batch-size 10 --batch-wait 100ms 2>"$WORK/worker.log" &
PIDS+=($!)
WPID=$!
routed() { ctl GET /sim/org | jq --arg v "$(jq -r .version "$SFK_ROUTING_POLICY")" '[.Lead[] | select(.Routing_Policy_Version__c == $v)] | length'; }
deadline=$((SECONDS + 90))
until [ "$(routed)" -ge "$NL" ]; do
	[ $SECONDS -lt $deadline ] || fail "only $(routed) of $NL backfilled leads routed in 90 s"
	kill -0 "$WPID" || fail "worker exited"
	sleep 0.3
done
check_owners() {
	ctl GET /sim/org >"$WORK/org.json"
	ctl GET /sim/stats >"$WORK/stats.json"
	python3 - "$WORK" "$SFK_ROUTING_POLICY" <<'PY'
import json, sys
work, pol = sys.argv[1:3]
p = json.load(open(pol))
org = {r["Id"]: r for r in json.load(open(work + "/org.json"))["Lead"]}
writes = json.load(open(work + "/stats.json"))["writes"]
errs = []
for line in open(work + "/leads.tsv"):
    lid, body = line.rstrip("\n").split("\t", 1)
    f = json.loads(body)
    emp, c = f.get("NumberOfEmployees"), f["Country"].lower()
    seg = None if emp is None else next((s["name"] for s in p["segments"] if emp >= s.get("min_employees", 0)
            and (s.get("max_employees") is None or emp <= s["max_employees"])), None)
    reg = next((r for r, cs in p["regions"].items() if c in [x.lower() for x in cs]), None)
    pool = next((x for x in p["pools"] if x["segment"] == seg and x["region"] == reg), None) if seg and reg else None
    allowed = [m["owner_id"] for m in pool["members"]] if pool else \
        [p["region_queues"].get(reg, p["fallback_queue"]) if seg and reg else p["fallback_queue"]]
    if org[lid]["OwnerId"] not in allowed:
        errs.append(f"{lid}: owner {org[lid]['OwnerId']} not in {allowed}")
    if writes.get(lid) != 1:
        errs.append(f"{lid}: {writes.get(lid)} writes, want 1")
errs and print("\n".join(errs), file=sys.stderr)
sys.exit(1 if errs else 0)
PY
}
check_owners || fail "owners/writes (above)"
pass "a lead.route worker routed all $NL backfilled leads per the policy, one write each"

# 5. Backfill again: same event ids -> duplicates, no new write.
"$SFK" backfill --since "$SINCE" --entities Lead >"$WORK/bf2.out" 2>"$WORK/bf2.err" || fail "second backfill exited $?"
port=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/worker.log" | head -1)
dups() { curl -sf "http://127.0.0.1:$port/metrics" | sed -n 's/^sfk_decisions_total{workload="lead.route",outcome="duplicate"} \([0-9.e+]*\)$/\1/p'; }
deadline=$((SECONDS + 60))
until [ "$(python3 -c "print(int(float('${d:=0}' or 0)))")" -ge "$NL" ]; do
	[ $SECONDS -lt $deadline ] || fail "second backfill: duplicates ${d:-0}, want $NL"
	sleep 0.3
	d=$(dups)
done
check_owners || fail "second backfill wrote again (above)"
pass "a second backfill is absorbed: $NL duplicates, still one write per lead"
