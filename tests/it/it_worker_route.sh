#!/usr/bin/env bash
# it_worker_route: sfk-worker --workload lead.route end to end, as an operator
# sees it: Leads created in the org (sfk-sim) -> sfk-bridge -> two worker
# replicas (one killed with SIGKILL mid-run, a third added) -> every Lead has
# the owner the policy prescribes (computed here from the policy file),
# round-robin shares within 1 of the weights, exactly one Salesforce write per
# Lead, an event delivered three times is written once, a poison message is
# dead-lettered with its headers, and one valid flywheel record per decision.
# Also: a policy with three mistakes -> start-up refused (exit 78) listing all.
#
# Needs KAFKA_BOOTSTRAP_SERVERS (the shared broker; topics get a per-run
# prefix). Starts its OWN sfk-sim and Redis (it counts writes per record).
set -euo pipefail
NAME=it_worker_route
IT_KILL=9 # no graceful stop needed
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
WORKER="$SFK_BIN_DIR/sfk-worker"
BRIDGE="$SFK_BIN_DIR/sfk-bridge"
POLICY="$SFK_SOURCE_DIR/policies/routing_policy.json"
it_require sfk-bridge sfk-worker sfk-sim -- kcat jq curl
python3 -c 'import jsonschema' 2>/dev/null || fail "python3 jsonschema not installed"
# A private sim + Redis (default seed: the ids in policies/routing_policy.json).
it_need_kafka
it_private_sim
it_pipeline_env itwr

topic() { # topic SUFFIX: "key<TAB>headers<TAB>value" lines (read_committed)
	kcat -b "$BROKERS" -C -t "$P$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%h\t%s\n' 2>/dev/null || true
}
wait_topic() { # wait_topic SUFFIX REGEX N SECONDS
	local deadline=$((SECONDS + $4))
	until [ "$(topic "$1" | grep -Ec -- "$2")" -ge "$3" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}
wait_log() { # wait_log FILE REGEX N SECONDS PID
	local deadline=$((SECONDS + $4)) n
	while n=$(grep -Ec -- "$2" "$1" 2>/dev/null); [ "${n:-0}" -lt "$3" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		kill -0 "$5" 2>/dev/null || fail "$(basename "$1" .log) exited"
		sleep 0.1
	done
}
LAST_PID=
start_worker() { # start_worker NAME: a lead.route replica with short session and lease
	KAFKA_SESSION_TIMEOUT_MS=6000 KAFKA_HEARTBEAT_INTERVAL_MS=1000 \
		"$WORKER" --workload lead.route --batch-size 5 --batch-wait 200ms --idem-lease 5s \
		2>"$WORK/$1.log" &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}
port_of() { sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/$1.log" | head -1; }
metric_sum() { # metric_sum OUTCOME NAME...: sfk_decisions_total over the named live workers
	local sum=0 n v port
	for n in "${@:2}"; do
		port=$(port_of "$n")
		v=$(curl -sf "http://127.0.0.1:$port/metrics" |
			sed -n "s/^sfk_decisions_total{workload=\"lead.route\",outcome=\"$1\"} \([0-9.e+]*\)$/\1/p")
		sum=$(python3 -c "print(int($sum + float('${v:-0}')))")
	done
	echo "$sum"
}

# 1. A policy with three mistakes: start-up refused, every mistake listed with its path.
jq '.version = "one" | .pools[2].members[0].weight = 0 | .fallback_queue = .unassigned_owners[0]' \
	"$POLICY" >"$WORK/bad_policy.json"
set +e
SFK_ROUTING_POLICY="$WORK/bad_policy.json" "$WORKER" --workload lead.route 2>"$WORK/bad.log" >/dev/null
rc=$?
set -e
[ $rc -eq 78 ] || fail "bad policy: exit $rc, want 78"
for path in '\$\.version' '\$\.pools\[2\]\.members\[0\]\.weight' '\$\.fallback_queue'; do
	grep -q "routing policy: $path" "$WORK/bad.log" || fail "bad policy: $path not listed"
done
[ "$(grep -c '^routing policy: \$' "$WORK/bad.log")" -eq 3 ] || fail "bad policy: not exactly 3 problems"
pass "policy with three mistakes -> exit 78 listing all three JSON paths"

# 2. A poison message first (it also creates the workload topic).
printf 'poison\t{not json\n' | kcat -b "$BROKERS" -P -t "${P}wl.lead.route" -K $'\t' 2>/dev/null ||
	fail "cannot produce the poison message"

"$BRIDGE" 2>"$WORK/bridge.log" &
BPID=$!
PIDS+=("$BPID")
wait_log "$WORK/bridge.log" '"msg":"cometd subscribed"' 3 30 "$BPID" || fail "bridge: not subscribed"
start_worker w1
W1=$LAST_PID
start_worker w2
W2=$LAST_PID
wait_log "$WORK/w1.log" '"msg":"admin listening"' 1 30 "$W1" || fail "w1: no admin port"
wait_log "$WORK/w2.log" '"msg":"admin listening"' 1 30 "$W2" || fail "w2: no admin port"

wait_topic dlq.lead.route '^poison	.*sfk.error_class=permanent' 1 60 || fail "poison: not dead-lettered"
hdrs=$(topic dlq.lead.route | grep '^poison	' | head -1 | cut -f2)
for h in sfk.error_code=parse "sfk.source_topic=${P}wl.lead.route" sfk.source_partition= \
	sfk.source_offset= sfk.attempts= sfk.error_message=; do
	grep -q -- "$h" <<<"$hdrs" || fail "poison: header $h missing in $hdrs"
done
pass "poison message -> dlq.lead.route with class, code, message, source, attempts"

# 3. Leads: each line "country|employees|industry|owner" ("-" = absent).
user_owner=$(jq -r '.pools[3].members[0].owner_id' "$POLICY")
queue=$(jq -r '.fallback_queue' "$POLICY")
batch_a=("United States|10|-|-" "us|20|-|$queue" "USA|30|-|-" "United States|40|Banking|-"
	"Germany|150|-|-" "gb|300|-|$queue" "France|450|-|-" "Japan|5000|-|-"
	"United States|-|-|-" "Atlantis|50|-|-" "Germany|60|-|$user_owner")
batch_b=("us|50|-|-" "USA|60|-|$queue" "United States|70|-|-" "us|80|-|-" "usa|90|-|-"
	"germany|600|-|-" "GB|750|-|-" "France|900|-|-" "IN|2000|-|-" "Brazil|5000|-|-")
: >"$WORK/leads.tsv"
create_leads() {
	local spec c e i o body id n=0
	for spec in "$@"; do
		IFS='|' read -r c e i o <<<"$spec"
		body=$(jq -nc --arg c "$c" --arg e "$e" --arg i "$i" --arg o "$o" \
			'{LastName: "Route", Company: "Acme"} + {Country: $c}
			 + (if $e == "-" then {} else {NumberOfEmployees: ($e | tonumber)} end)
			 + (if $i == "-" then {} else {Industry: $i} end)
			 + (if $o == "-" then {} else {OwnerId: $o} end)')
		id=$(ctl POST /sim/records/Lead "$body" | jq -r .id)
		[ -n "$id" ] && [ "$id" != null ] || fail "could not create a lead ($spec)"
		printf '%s\t%s\n' "$id" "$body" >>"$WORK/leads.tsv"
		n=$((n + 1))
	done
}
routed_count() {
	ctl GET /sim/org | jq --arg v "$(jq -r .version "$POLICY")" \
		'[.Lead[] | select(.Routing_Policy_Version__c == $v)] | length'
}
create_leads "${batch_a[@]}"
deadline=$((SECONDS + 60))
until [ "$(routed_count)" -ge 3 ]; do
	[ $SECONDS -lt $deadline ] || fail "no lead routed within 60 s"
	sleep 0.2
done
kill -9 "$W2" # mid-run: its claims expire, its partitions move
start_worker w3
W3=$LAST_PID
create_leads "${batch_b[@]}"
total=$(wc -l <"$WORK/leads.tsv")
want=$((total - 1)) # the user-owned lead is left alone
deadline=$((SECONDS + 150))
until [ "$(routed_count)" -ge $want ]; do
	[ $SECONDS -lt $deadline ] || fail "only $(routed_count) of $want leads routed within 150 s"
	kill -0 "$W1" || fail "w1 exited"
	sleep 0.5
done
pass "$want of $total leads routed with one replica killed (SIGKILL) and one added"

# 4. The same event delivered three times -> one write.
wait_log "$WORK/w3.log" '"msg":"admin listening"' 1 30 "$W3" || fail "w3: no admin port"
first=$(head -1 "$WORK/leads.tsv" | cut -f1)
env_line=$(topic wl.lead.route | grep "^$first	" | head -1)
[ -n "$env_line" ] || fail "no workload record for $first"
before=$(metric_sum duplicate w1 w3)
for _ in 1 2; do
	printf '%s\t%s\n' "$first" "$(cut -f3 <<<"$env_line")" |
		kcat -b "$BROKERS" -P -t "${P}wl.lead.route" -K $'\t' 2>/dev/null || fail "re-produce"
done
deadline=$((SECONDS + 60))
until [ "$(metric_sum duplicate w1 w3)" -ge $((before + 2)) ]; do
	[ $SECONDS -lt $deadline ] || fail "re-delivered event not counted as a duplicate"
	sleep 0.3
done
pass "same event delivered three times -> counted as duplicates"

# 4b. Redis loses everything (restarted without its data), then the same Lead
# CREATE (US, 10 employees: pool smb_na) comes again: the Lead is routed
# already, so it keeps its owner and the round robin takes no step for it (no
# pointer, memo or cap key comes back; found by tests/chaos).
redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null || fail "FLUSHALL"
before=$(metric_sum already_routed w1 w3)
printf '%s\t%s\n' "$first" "$(cut -f3 <<<"$env_line")" |
	kcat -b "$BROKERS" -P -t "${P}wl.lead.route" -K $'\t' 2>/dev/null || fail "re-produce"
deadline=$((SECONDS + 60))
until [ "$(metric_sum already_routed w1 w3)" -ge $((before + 1)) ]; do
	[ $SECONDS -lt $deadline ] || fail "the event after the wipe was not decided as already routed"
	sleep 0.3
done
rr=$(redis-cli -u "$REDIS_URL" --scan --pattern 'sfk:rr:*' | head -3)
[ -z "$rr" ] || fail "an already routed Lead took a round-robin step after the wipe: $rr"
pass "after a Redis wipe, an already routed Lead is left alone (no round-robin step)"

# 5. Owners, shares, writes per record, flywheel records: checked from the policy file.
# flywheel records are flushed right after the writes: wait until every lead has one
deadline=$((SECONDS + 30))
until [ "$(topic flywheel | cut -f3 | jq -r '.request.metadata.lead_id' | sort -u | wc -l)" -ge "$total" ]; do
	[ $SECONDS -lt $deadline ] || break # the check below names the missing ones
	sleep 0.3
done
ctl GET /sim/org >"$WORK/org.json"
ctl GET /sim/stats >"$WORK/stats.json"
topic flywheel | cut -f1,3 >"$WORK/flywheel.tsv"
python3 - "$POLICY" "$SFK_SOURCE_DIR/schemas/flywheel.schema.json" "$WORK" <<'PY' || fail "outcome checks (above)"
import json, sys, collections
import jsonschema
policy = json.load(open(sys.argv[1]))
schema = json.load(open(sys.argv[2]))
work = sys.argv[3]
org = {r["Id"]: r for r in json.load(open(work + "/org.json"))["Lead"]}
writes = json.load(open(work + "/stats.json"))["writes"]
errors = []

def to18(i):
    if len(i) == 18:
        return i
    s = ""
    for b in range(3):
        f = 0
        for j in range(5):
            if i[b * 5 + j].isupper():
                f |= 1 << j
        s += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[f]
    return i + s

def segment(emp):
    for s in policy["segments"]:
        lo, hi = s.get("min_employees", 0), s.get("max_employees")
        if emp >= lo and (hi is None or emp <= hi):
            return s["name"]
    return None

def region(country):
    c = (country or "").strip().lower()
    for r, names in policy["regions"].items():
        if c in [n.lower() for n in names]:
            return r
    return None

unassigned = set(policy.get("unassigned_owners", []))
shares = collections.defaultdict(collections.Counter)
leads = []
for line in open(work + "/leads.tsv"):
    lid, body = line.rstrip("\n").split("\t", 1)
    facts = json.loads(body)
    lead = org.get(lid)
    leads.append(lid)
    if lead is None:
        errors.append(f"{lid}: missing in the org")
        continue
    owner0 = facts.get("OwnerId")
    if owner0 and owner0.startswith("005") and owner0 not in unassigned and policy.get("leave_user_owned", True):
        if lead["OwnerId"] != owner0 or lead.get("Routing_Policy_Version__c"):
            errors.append(f"{lid}: user-owned lead was changed")
        if writes.get(lid):
            errors.append(f"{lid}: user-owned lead written {writes[lid]} times")
        continue
    seg = segment(facts["NumberOfEmployees"]) if "NumberOfEmployees" in facts else None
    reg = region(facts.get("Country"))
    pool = None
    if seg and reg:
        pool = next((p for p in policy["pools"] if p["segment"] == seg and p["region"] == reg), None)
    if pool:
        members = [m["owner_id"] for m in pool["members"]]
        if lead["OwnerId"] not in members:
            errors.append(f"{lid}: owner {lead['OwnerId']} not in pool {pool['id']}")
        shares[pool["id"]][lead["OwnerId"]] += 1
    else:
        want = policy["fallback_queue"]
        if seg and reg:
            want = policy.get("region_queues", {}).get(reg, want)
        if lead["OwnerId"] != want:
            errors.append(f"{lid}: owner {lead['OwnerId']}, want queue {want} (seg={seg} reg={reg})")
    if lead.get("Routing_Policy_Version__c") != policy["version"]:
        errors.append(f"{lid}: Routing_Policy_Version__c {lead.get('Routing_Policy_Version__c')}")
    if not (lead.get("Routing_Reason__c") or "").strip() or not lead.get("Owner_Assigned_At__c"):
        errors.append(f"{lid}: reason/assigned-at missing")
    if lead.get("Assignment_Latency_Minutes__c") is None or lead["Assignment_Latency_Minutes__c"] < 0:
        errors.append(f"{lid}: Assignment_Latency_Minutes__c {lead.get('Assignment_Latency_Minutes__c')}")
    if writes.get(lid) != 1:
        errors.append(f"{lid}: written {writes.get(lid)} times, want 1")

for p in policy["pools"]:
    got = shares.get(p["id"])
    if not got:
        continue
    n = sum(got.values())
    w = sum(m.get("weight", 1) for m in p["members"])
    for m in p["members"]:
        want = n * m.get("weight", 1) / w
        if abs(got[m["owner_id"]] - want) >= 1:
            errors.append(f"pool {p['id']}: {m['owner_id']} got {got[m['owner_id']]} of {n}, weight share {want:.2f}")
if not any(sum(c.values()) >= 6 for c in shares.values()):
    errors.append(f"round robin hardly exercised: {dict(shares)}")

# flywheel: every record valid; one decision id per lead (a re-emitted record keeps its id)
v = jsonschema.Draft202012Validator(schema)
per_lead = collections.defaultdict(set)
for line in open(work + "/flywheel.tsv"):
    key, val = line.rstrip("\n").split("\t", 1)
    rec = json.loads(val)
    for e in v.iter_errors(rec):
        errors.append(f"flywheel {key}: {e.json_path}: {e.message}")
    if rec.get("workload_id") != "lead.route" or rec["request"]["metadata"]["decision_id"] != key:
        errors.append(f"flywheel {key}: workload/decision id mismatch")
    if rec["timestamp"] != rec["response"]["created"]:
        errors.append(f"flywheel {key}: created != timestamp")
    decision = json.loads(rec["response"]["choices"][0]["message"]["content"])
    facts = json.loads(rec["request"]["messages"][1]["content"])
    lid = rec["request"]["metadata"]["lead_id"]
    if facts.get("Id") != lid:
        errors.append(f"flywheel {key}: user message is not about lead {lid}")
    if lid in org and decision.get("owner_id") and decision["owner_id"] != org[lid]["OwnerId"]:
        errors.append(f"flywheel {key}: decision owner {decision['owner_id']} != {org[lid]['OwnerId']}")
    per_lead[lid].add(key)
for lid in leads:
    if len(per_lead.get(to18(lid), ())) != 1:
        errors.append(f"{lid}: {len(per_lead.get(to18(lid), ()))} flywheel decision ids, want 1")
for e in errors:
    print("  " + e, file=sys.stderr)
print(f"  shares: { {k: dict(c) for k, c in shares.items()} }")
sys.exit(1 if errors else 0)
PY
pass "owners match the policy, shares within 1 of the weights, 1 write per lead, valid flywheel records (1 decision id per lead)"

# 6. Readiness, metrics, graceful stop.
curl -sf "http://127.0.0.1:$(port_of w1)/readyz" >/dev/null || fail "w1 not ready"
metrics=$(curl -sf "http://127.0.0.1:$(port_of w1)/metrics") || fail "w1 /metrics"
grep -q '^sfk_active_workers{workload="lead.route"} 1' <<<"$metrics" || fail "sfk_active_workers"
lat=0
for n in w1 w3; do
	curl -sf "http://127.0.0.1:$(port_of $n)/metrics" >"$WORK/metrics.$n" || fail "$n /metrics"
	grep -q '^sfk_worker_processing_latency_seconds_count{workload="lead.route"} [1-9]' \
		"$WORK/metrics.$n" && lat=1
done
[ $lat = 1 ] || fail "no processing latency observed (sfk_worker_processing_latency_seconds)"
[ "$(metric_sum routed w1 w3)" -ge 1 ] || fail "sfk_decisions_total{outcome=routed}"
for pid in "$W1" "$W3"; do kill -TERM "$pid"; done
for pid in "$W1" "$W3"; do
	deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || fail "worker $pid still running 30 s after SIGTERM"
		sleep 0.1
	done
	wait "$pid" || fail "worker $pid exit status $? after SIGTERM"
done
pass "/readyz, metrics, SIGTERM -> exit 0"
echo "it_worker_route: all cases passed"
