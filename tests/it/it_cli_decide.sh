#!/usr/bin/env bash
# it_cli_decide: `sfk decide` against the shared stack's sfk-sim and Redis.
# A routing policy copy with a per-run version (fresh round-robin keys
# sfk:rr:<version>:*); the expected owners are computed here from the policy
# file (segment, region, pool, smooth weighted round robin):
#   - a dry run prints the owner the policy implies, writes nothing to
#     Salesforce (/sim/stats) and nothing to Redis;
#   - --apply writes it once and advances the shared pointer, so a dry run on
#     the next lead shows the pool's next owner; a second --apply writes
#     nothing; a lead without NumberOfEmployees goes to the fallback queue;
#   - outreach.template_suggest prints a template and writes nothing;
#   - lead.first_touch_detect decides the Lead with its closed Task: the
#     dry run shows the first response and stores nothing; --apply twice
#     writes it once;
#   - usage errors exit 2.
#
# Needs: eval "$(tests/stack/up --kafka real --sim)" (REDIS_URL, SF_*).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() {
	echo "it_cli_decide: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -12 >&2; done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
for v in REDIS_URL SF_SIM_URL SF_CLIENT_ID SF_USERNAME SF_PRIVATE_KEY_PATH SF_CA_FILE; do
	[ -n "${!v:-}" ] || fail "$v is not set: run under eval \"\$(tests/stack/up --kafka real --sim)\""
done
command -v jq >/dev/null || fail "jq not installed"
cd "$SFK_SOURCE_DIR"

VER="9.$$.$RANDOM"
POLICY=$WORK/routing_policy.json
jq --arg v "$VER" '.version = $v' policies/routing_policy.json >"$POLICY"
export SFK_ROUTING_POLICY=$POLICY SFK_ROUTING_POLICY_SCHEMA=$SFK_SOURCE_DIR/schemas/routing_policy.schema.json

ctl() {
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
writes() { ctl GET /sim/stats | jq --arg id "$1" '.writes[$id] // 0'; }
rr_keys() { redis-cli -u "$REDIS_URL" --scan --pattern "sfk:rr:$VER:*" | wc -l; }
new_lead() { ctl POST /sim/records/Lead "$1" | jq -r .id; }

# Expected owners from the policy: pool for (employees, country) and the
# smooth weighted round-robin sequence (nginx) of its members.
expect() { # expect EMPLOYEES COUNTRY INDEX -> owner id (or queue)
	python3 - "$POLICY" "$1" "$2" "$3" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); emp = int(sys.argv[2]); country = sys.argv[3].lower(); k = int(sys.argv[4])
seg = next((s["name"] for s in p["segments"] if emp >= s.get("min_employees", 0)
            and (s.get("max_employees") is None or emp <= s["max_employees"])), None)
reg = next((r for r, cs in p["regions"].items() if country in [c.lower() for c in cs]), None)
pool = next((x for x in p["pools"] if x["segment"] == seg and x["region"] == reg), None)
if not pool:
    print(p["region_queues"].get(reg, p["fallback_queue"]) if seg and reg else p["fallback_queue"]); sys.exit()
ms = pool["members"]; w = [m.get("weight", 1) for m in ms]; cur = [0] * len(ms); seq = []
for _ in range(sum(w)):
    cur = [c + x for c, x in zip(cur, w)]
    b = max(range(len(ms)), key=lambda i: (cur[i], -i))
    cur[b] -= sum(w); seq.append(ms[b]["owner_id"])
print(seq[k % len(seq)])
PY
}

# 1. usage errors
set +e
"$SFK" decide --workload lead.route >"$WORK/u1.out" 2>&1; r1=$?
"$SFK" decide --workload lead.route --lead-id 001000000000001 >"$WORK/u2.out" 2>&1; r2=$?
"$SFK" decide --workload nope --lead-id 00Q000000000001 >"$WORK/u3.out" 2>&1; r3=$?
"$SFK" decide --help >"$WORK/help.out" 2>&1; r4=$?
set -e
[ "$r1 $r2 $r3 $r4" = "2 2 2 0" ] || fail "usage exits: $r1 $r2 $r3 $r4 (want 2 2 2 0)"
grep -e '--apply' "$WORK/help.out" >/dev/null || fail "--help does not list --apply"
pass "usage errors exit 2, --help lists the options"

# 2. dry run: the policy's owner, no write, no Redis key
A=$(new_lead '{"LastName":"Dec","Company":"Acme","Country":"United States","NumberOfEmployees":40}')
B=$(new_lead '{"LastName":"Dec","Company":"Beta","Country":"USA","NumberOfEmployees":55}')
[ -n "$A" ] && [ "$A" != null ] && [ -n "$B" ] || fail "could not create leads"
want0=$(expect 40 "United States" 0)
want1=$(expect 55 USA 1)
"$SFK" decide --workload lead.route --lead-id "$A" --json >"$WORK/dry.out" 2>"$WORK/dry.err" || fail "dry run exited $?"
got=$(jq -r .decision.owner_id "$WORK/dry.out")
[ "$got" = "$want0" ] || fail "dry run owner $got, policy says $want0"
[ "$(jq -r .decision.reason_path "$WORK/dry.out")" != null ] || fail "no reason"
[ "$(writes "$A")" = 0 ] || fail "dry run wrote to Salesforce"
[ "$(rr_keys)" = 0 ] || fail "dry run wrote Redis keys"
"$SFK" decide --workload lead.route --lead-id "$A" >"$WORK/human.out" 2>"$WORK/human.err" || fail "human output exited $?"
grep "owner_id *$want0" "$WORK/human.out" >/dev/null || fail "human output lacks the owner"
grep "dry run" "$WORK/human.err" >/dev/null || fail "no dry-run note on stderr"
pass "dry run: owner $want0 as the policy implies, nothing written to Salesforce or Redis"

# 3. --apply writes once and advances the pointer; the next dry run sees it
"$SFK" decide --workload lead.route --lead-id "$A" --apply --json >"$WORK/apply.out" 2>"$WORK/apply.err" || fail "--apply exited $?"
[ "$(jq -r .decision.owner_id "$WORK/apply.out")" = "$want0" ] || fail "--apply decided another owner"
[ "$(writes "$A")" = 1 ] || fail "--apply: $(writes "$A") writes, want 1"
[ "$(ctl GET "/sim/records/Lead/$A" | jq -r .OwnerId)" = "$want0" ] ||
	[ "$(ctl GET /sim/org | jq -r --arg id "$A" '.Lead[] | select(.Id == $id) | .OwnerId')" = "$want0" ] ||
	fail "Lead $A not owned by $want0 after --apply"
"$SFK" decide --workload lead.route --lead-id "$A" --apply --json >"$WORK/apply2.out" 2>"$WORK/apply2.err" || fail "second --apply exited $?"
[ "$(writes "$A")" = 1 ] || fail "second --apply wrote again ($(writes "$A") writes)"
"$SFK" decide --workload lead.route --lead-id "$B" --json >"$WORK/dry2.out" 2>"$WORK/dry2.err" || fail "dry run B exited $?"
[ "$(jq -r .decision.owner_id "$WORK/dry2.out")" = "$want1" ] ||
	fail "after one --apply the next owner is $(jq -r .decision.owner_id "$WORK/dry2.out"), want $want1"
[ "$(writes "$B")" = 0 ] || fail "dry run B wrote"
pass "--apply wrote once ($want0), a second --apply nothing; the next lead's dry run: $want1"

# 4. missing employees -> fallback queue
C=$(new_lead '{"LastName":"Dec","Company":"Gamma","Country":"Germany"}')
"$SFK" decide --workload lead.route --lead-id "$C" --json >"$WORK/fb.out" 2>"$WORK/fb.err" || fail "fallback exited $?"
[ "$(jq -r .decision.owner_id "$WORK/fb.out")" = "$(jq -r .fallback_queue "$POLICY")" ] || fail "not the fallback queue"
[ "$(jq -r .decision.reason_path "$WORK/fb.out")" = fallback.missing_employees ] || fail "fallback reason"
pass "missing NumberOfEmployees -> fallback queue with its reason"

# 5. another workload: a template suggestion, nothing written
"$SFK" decide --workload outreach.template_suggest --lead-id "$B" --json >"$WORK/tpl.out" 2>"$WORK/tpl.err" || fail "template exited $?"
[ "$(jq -r '.decision.template_id // empty' "$WORK/tpl.out")" != "" ] || fail "no template suggested"
[ "$(writes "$B")" = 0 ] || fail "template dry run wrote"
pass "outreach.template_suggest: template $(jq -r .decision.template_id "$WORK/tpl.out"), nothing written"

# 6. lead.first_touch_detect: the Lead with its closed Task, decided together
T=$(ctl POST /sim/records/Task "$(jq -nc --arg w "$C" '{WhoId: $w, Subject: "Call", Status: "Completed", Type: "Call"}')" | jq -r .id)
[ -n "$T" ] && [ "$T" != null ] || fail "could not create a task"
"$SFK" decide --workload lead.first_touch_detect --lead-id "$C" --json >"$WORK/ft.out" 2>"$WORK/ft.err" || fail "first_touch exited $?"
[ "$(jq -r '[.entity, .record_id, .outcome] | join(" ")' "$WORK/ft.out")" = "Task $T written" ] ||
	fail "first_touch: $(jq -c '[.entity, .record_id, .outcome]' "$WORK/ft.out"), want the task's response written"
[ "$(jq -r .write.First_Response_Source__c "$WORK/ft.out")" = Task ] || fail "first_touch: no First_Response_Source__c"
[ "$(writes "$C")" = 0 ] || fail "first_touch dry run wrote"
[ "$(redis-cli -u "$REDIS_URL" EXISTS "sfk:ttfr:$C")" = 0 ] || fail "first_touch dry run stored sfk:ttfr:$C"
"$SFK" decide --workload lead.first_touch_detect --lead-id "$C" --apply --json >"$WORK/ft2.out" 2>"$WORK/ft2.err" || fail "first_touch --apply exited $?"
"$SFK" decide --workload lead.first_touch_detect --lead-id "$C" --apply --json >"$WORK/ft3.out" 2>"$WORK/ft3.err" || fail "second first_touch --apply exited $?"
[ "$(writes "$C")" = 1 ] || fail "first_touch --apply twice: $(writes "$C") writes, want 1"
[ "$(ctl GET /sim/org | jq -r --arg id "$C" '.Lead[] | select(.Id == $id) | .First_Response_Source__c')" = Task ] ||
	fail "Lead $C has no First_Response_Source__c after --apply"
pass "first_touch: the lead's closed task decided (dry run: nothing written or stored); --apply twice writes once"
