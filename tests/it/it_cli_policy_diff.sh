#!/usr/bin/env bash
# it_cli_policy_diff: `sfk policy diff` against the shared real Kafka broker.
# Lead events (plus noise: Task events, Lead UPDATEs, a redelivered CREATE)
# are produced to a per-run <prefix>wl.lead.route; the old policy is the
# shipped one, the new one moves the SMB/MM boundary, reweights smb_na and
# caps two owners. The expected report - owner changes, counts per
# segment/region and per owner with shares, cap breaches, exhausted pools -
# is computed HERE, independently (Python: segments, regions, pools, smooth
# weighted round robin, daily caps per UTC day of the commit timestamp), from
# the same events and both policy files, and compared with --json.
#   Also: --to excludes the records produced after it; the human output names
#   the changed leads; invalid policy -> exit 1; missing --old -> exit 2.
#
# Needs: eval "$(tests/stack/up --kafka real)" (KAFKA_BOOTSTRAP_SERVERS).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() {
	echo "it_cli_policy_diff: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -15 >&2; done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under eval \"\$(tests/stack/up --kafka real)\""
[ "${SFK_KAFKA_KIND:-real}" != mock ] || fail "needs a real broker (tests/stack/up --kafka real)"
cd "$SFK_SOURCE_DIR"

P="itpd$$x$RANDOM."
export SFK_TOPIC_PREFIX=$P
"$SFK" topics create --partitions 2 >"$WORK/topics.out" 2>&1 || fail "topics create exited $?"
OLD=$SFK_SOURCE_DIR/policies/routing_policy.json
NEW=$WORK/routing_policy_new.json
jq '.version = "1.1.0"
	| .segments[0].max_employees = 49 | .segments[1].min_employees = 50
	| (.pools[] | select(.id == "smb_na") | .members) |= [.[0] + {weight: 1, daily_cap: 2}, .[1] + {weight: 3}]
	| (.pools[] | select(.id == "smb_emea") | .members[0]) += {daily_cap: 1}' "$OLD" >"$NEW"

# Events: NDJSON of envelopes (key<TAB>value), batch 1 before T1, batch 2 after.
gen() { # gen SEED COUNT -> lines "key<TAB>envelope"
	python3 - "$1" "$2" "$OLD" <<'PY'
import json, random, sys
seed, count = int(sys.argv[1]), int(sys.argv[2])
pol = json.load(open(sys.argv[3]))
rnd = random.Random(seed)
def to18(i):
    s = ""
    for b in range(3):
        f = 0
        for j in range(5):
            if i[b * 5 + j].isupper():
                f |= 1 << j
        s += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[f]
    return i + s
countries = ["United States", "usa", "US", " us ", "United States", "Canada", "Germany", "gb", "Germany",
             "France", "Japan", "IN", "Brazil", "Atlantis", ""]
user = pol["pools"][3]["members"][0]["owner_id"]
unassigned = pol["unassigned_owners"][0]
base = 1773133200000 + seed * 1000  # 2026-03-10T09:00Z
def env(eid_entity, rid, ct, fields, ts, n):
    return {"envelope_version": 1, "event_id": f"{eid_entity}:{rid}:{n}", "entity": eid_entity,
            "change_type": ct, "record_id": rid, "record_index": 0, "record_count": 1, "replay_id": n,
            "channel": "/data/LeadChangeEvent", "commit_timestamp": ts, "commit_number": n,
            "transaction_key": "t", "sequence_number": 1, "change_origin": "", "changed_fields": [],
            "fields": fields, "flags": {"echo": False, "gap": False, "gap_resolved": False, "resynced": False},
            "ingested_at": ts}
out = []
for i in range(count):
    rid = to18("00Q%02d%010d" % (seed, i))
    f = {"LastName": "L%d" % i, "Company": "C"}
    c = rnd.choice(countries)
    if c:
        f["Address"] = {"Country": c} if rnd.random() < 0.5 else None
        if f["Address"] is None:
            del f["Address"]; f["Country"] = c
    if rnd.random() < 0.9:
        f["NumberOfEmployees"] = rnd.choice([5, 20, 30, 45, 49, 50, 60, 99, 100, 300, 999, 1000, 5000])
    r = rnd.random()
    f["OwnerId"] = user if r < 0.05 else unassigned
    # two UTC days: caps reset at midnight
    ts = base + (i * 17 * 60000 if i < count * 2 // 3 else 86400000 + i * 60000)
    e = env("Lead", rid, "CREATE", f, ts, 100 + i)
    out.append((rid, e))
    if i % 7 == 3:  # a redelivery of the same CREATE
        out.append((rid, e))
    if i % 5 == 1:  # an UPDATE and a Task on the lead: not routing input
        out.append((rid, env("Lead", rid, "UPDATE", {"NumberOfEmployees": 7}, ts + 5, 500 + i)))
        tid = to18("00T%02d%010d" % (seed, i))
        out.append((rid, env("Task", tid, "CREATE", {"WhoId": rid}, ts + 9, 900 + i)))
for k, e in out:
    print(k + "\t" + json.dumps(e))
PY
}
T0=$(date -u -d '-2 seconds' +%Y-%m-%dT%H:%M:%S.%3NZ)
gen 11 80 >"$WORK/batch1.tsv"
kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "${P}wl.lead.route" -K $'\t' <"$WORK/batch1.tsv" 2>/dev/null || fail "produce batch 1"
T1=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
# make sure T1 is strictly after every batch-1 record and before batch 2
until [ "$(date -u +%s%3N)" -gt "$(date -u -d "$T1" +%s%3N)" ]; do :; done
gen 12 12 >"$WORK/batch2.tsv"
kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "${P}wl.lead.route" -K $'\t' <"$WORK/batch2.tsv" 2>/dev/null || fail "produce batch 2"

expected() { # expected OUT BATCH...: the report computed independently
	python3 - "$OLD" "$NEW" "$@" <<'PY'
import json, sys, collections, datetime
oldp, newp, outf = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
leads, seen = [], set()
for f in sys.argv[4:]:
    for line in open(f):
        k, v = line.rstrip("\n").split("\t", 1)
        e = json.loads(v)
        if e["entity"] != "Lead" or e["change_type"] not in ("CREATE", "GAP_CREATE") or e["record_id"] in seen:
            continue
        seen.add(e["record_id"])
        leads.append(e)
leads.sort(key=lambda e: (e["commit_timestamp"], e["record_id"]))

def wrr(pool):
    ms = pool["members"]; w = [m.get("weight", 1) for m in ms]; cur = [0] * len(ms); seq = []
    for _ in range(sum(w)):
        cur = [c + x for c, x in zip(cur, w)]
        b = max(range(len(ms)), key=lambda i: (cur[i], -i))
        cur[b] -= sum(w); seq.append(b)
    return seq

class Sim:
    def __init__(self, name, p):
        self.name, self.p = name, p
        self.st = {x["id"]: {"ptr": 0, "day": None, "cnt": [0] * len(x["members"]), "turned": [0] * len(x["members"]),
                             "seq": wrr(x), "pool": x} for x in p["pools"]}
        self.out, self.breaches, self.exhausted = {}, [], 0
    def flush(self, s):
        for m, t in enumerate(s["turned"]):
            if s["day"] and t > 0:
                mem = s["pool"]["members"][m]
                self.breaches.append((self.name, s["day"], s["pool"]["id"], mem["owner_id"], mem.get("daily_cap", 0), s["cnt"][m], t))
    def decide(self, e):
        p, f = self.p, e["fields"]
        owner0 = f.get("OwnerId")
        emp = f.get("NumberOfEmployees")
        seg = None
        if emp is not None and emp >= 0:
            seg = next((s["name"] for s in p["segments"] if emp >= s.get("min_employees", 0)
                        and (s.get("max_employees") is None or emp <= s["max_employees"])), None)
        country = f.get("Country") or (f.get("Address") or {}).get("Country")
        reg = None
        if country and country.strip():
            reg = next((r for r, cs in p["regions"].items() if country.strip().lower() in [c.lower() for c in cs]), None)
        pool, owner = None, None
        if p.get("leave_user_owned", True) and owner0 and owner0.startswith("005") and owner0 not in p.get("unassigned_owners", []):
            reason = "skip.user_owned"
        elif not seg:
            owner, reason = p["fallback_queue"], "fallback.missing_employees"
        elif not reg:
            owner, reason = p["fallback_queue"], "fallback.unknown_country" if country else "fallback.missing_country"
        else:
            pool = next((x for x in p["pools"] if x["segment"] == seg and x["region"] == reg), None)
            if not pool:
                owner, reason = p.get("region_queues", {}).get(reg, p["fallback_queue"]), f"fallback.no_pool.{seg}.{reg}"
            else:
                reason = "pool." + pool["id"]
                s = self.st[pool["id"]]
                day = datetime.datetime.fromtimestamp(e["commit_timestamp"] / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
                if day != s["day"]:
                    self.flush(s)
                    s["day"], s["cnt"], s["turned"] = day, [0] * len(s["cnt"]), [0] * len(s["cnt"])
                pick = -1
                for _ in range(len(s["seq"])):
                    m = s["seq"][s["ptr"] % len(s["seq"])]; s["ptr"] += 1
                    cap = pool["members"][m].get("daily_cap", 0)
                    if cap > 0 and s["cnt"][m] >= cap:
                        s["turned"][m] += 1
                        continue
                    s["cnt"][m] += 1; pick = m; break
                if pick >= 0:
                    owner = pool["members"][pick]["owner_id"]
                else:
                    owner = p.get("region_queues", {}).get(reg, p["fallback_queue"])
                    reason = "fallback.pool_exhausted." + pool["id"]; self.exhausted += 1
        self.out[e["record_id"]] = {"owner_id": owner, "segment": seg, "region": reg, "reason_path": reason}
    def finish(self):
        for s in self.st.values():
            self.flush(s)

a, b = Sim("old", oldp), Sim("new", newp)
for e in leads:
    a.decide(e); b.decide(e)
a.finish(); b.finish()
n = len(leads)
def rows(key):
    o, w = collections.Counter(), collections.Counter()
    for e in leads:
        for sim, c in ((a, o), (b, w)):
            d = sim.out[e["record_id"]]
            c[key(d)] += 1
    return {k: {"old": o[k], "new": w[k], "delta": w[k] - o[k], "old_share": 100 * o[k] / n, "new_share": 100 * w[k] / n}
            for k in set(o) | set(w)}
changed = sorted([e["record_id"], a.out[e["record_id"]]["owner_id"], b.out[e["record_id"]]["owner_id"],
                  a.out[e["record_id"]]["reason_path"], b.out[e["record_id"]]["reason_path"]]
                 for e in leads if a.out[e["record_id"]]["owner_id"] != b.out[e["record_id"]]["owner_id"])
exp = {"leads": n, "changed": changed,
       "by_segment_region": rows(lambda d: f"{d['segment'] or '-'}/{d['region'] or '-'}"),
       "by_owner": rows(lambda d: d["owner_id"] or "unchanged"),
       "cap_breaches": sorted(list(x) for x in a.breaches + b.breaches),
       "pool_exhausted": {"old": a.exhausted, "new": b.exhausted}}
json.dump(exp, open(outf, "w"), indent=1, sort_keys=True)
PY
}
compare() { # compare EXPECTED ACTUAL
	python3 - "$1" "$2" <<'PY'
import json, sys
exp, got = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
errs = []
if got["leads"] != exp["leads"]:
    errs.append(f"leads {got['leads']} != {exp['leads']}")
gc = sorted([c["lead_id"], c["old"].get("owner_id"), c["new"].get("owner_id"), c["old"]["reason_path"], c["new"]["reason_path"]] for c in got["changed"])
if gc != exp["changed"]:
    errs.append(f"changed leads differ:\n got {gc}\n exp {exp['changed']}")
if got["owner_changes"] != len(exp["changed"]):
    errs.append("owner_changes count")
for name, key in (("by_segment_region", "segment_region"), ("by_owner", "owner_id")):
    g = {r[key]: r for r in got[name]}
    e = exp[name]
    if set(g) != set(e):
        errs.append(f"{name}: keys {sorted(g)} != {sorted(e)}")
    for k in set(g) & set(e):
        for f in ("old", "new", "delta"):
            if g[k][f] != e[k][f]:
                errs.append(f"{name} {k} {f}: {g[k][f]} != {e[k][f]}")
        for f in ("old_share", "new_share"):
            if abs(g[k][f] - e[k][f]) > 0.006:
                errs.append(f"{name} {k} {f}: {g[k][f]} != {e[k][f]:.3f}")
gb = sorted([x["policy"], x["day"], x["pool"], x["owner_id"], x["daily_cap"], x["assigned"], x["turned_away"]] for x in got["cap_breaches"])
if gb != exp["cap_breaches"]:
    errs.append(f"cap breaches:\n got {gb}\n exp {exp['cap_breaches']}")
if got["pool_exhausted"] != exp["pool_exhausted"]:
    errs.append(f"pool_exhausted {got['pool_exhausted']} != {exp['pool_exhausted']}")
errs and print("\n".join(errs), file=sys.stderr)
sys.exit(1 if errs else 0)
PY
}

# 1. [T0, T1): batch 1 only
expected "$WORK/exp1.json" "$WORK/batch1.tsv"
"$SFK" policy diff --old "$OLD" --new "$NEW" --from "$T0" --to "$T1" --json >"$WORK/got1.out" 2>"$WORK/got1.err" ||
	fail "policy diff exited $?"
compare "$WORK/exp1.json" "$WORK/got1.out" || fail "report differs from the independent computation (above)"
[ "$(jq '.changed | length' "$WORK/exp1.json")" -gt 3 ] || fail "too few owner changes to mean anything"
[ "$(jq '.cap_breaches | length' "$WORK/exp1.json")" -gt 0 ] || fail "no cap breach exercised"
pass "[T0,T1): $(jq .leads "$WORK/exp1.json") leads, $(jq '.changed|length' "$WORK/exp1.json") owner changes, $(jq '.cap_breaches|length' "$WORK/exp1.json") cap breaches - as computed independently"

# 2. from T0 to the end: both batches
expected "$WORK/exp2.json" "$WORK/batch1.tsv" "$WORK/batch2.tsv"
"$SFK" policy diff --old "$OLD" --new "$NEW" --from "$T0" --json >"$WORK/got2.out" 2>"$WORK/got2.err" ||
	fail "policy diff (no --to) exited $?"
compare "$WORK/exp2.json" "$WORK/got2.out" || fail "report (no --to) differs (above)"
[ "$(jq .leads "$WORK/exp2.json")" -gt "$(jq .leads "$WORK/exp1.json")" ] || fail "batch 2 added no lead"
pass "from T0: $(jq .leads "$WORK/exp2.json") leads, as computed independently"

# 3. human output, errors
"$SFK" policy diff --old "$OLD" --new "$NEW" --from "$T0" --to "$T1" >"$WORK/human.out" 2>"$WORK/human.err" || fail "human exited $?"
first=$(jq -r '.changed[0][0]' "$WORK/exp1.json")
grep "^$first " "$WORK/human.out" >/dev/null || fail "human output does not list changed lead $first"
grep "SEGMENT/REGION" "$WORK/human.out" >/dev/null && grep "TURNED-AWAY" "$WORK/human.out" >/dev/null || fail "human tables missing"
jq '.pools[0].members[0].weight = 0' "$NEW" >"$WORK/bad.json"
set +e
"$SFK" policy diff --old "$OLD" --new "$WORK/bad.json" --from "$T0" >"$WORK/bad.out" 2>"$WORK/bad.err"; r1=$?
"$SFK" policy diff --new "$NEW" --from "$T0" >"$WORK/u.out" 2>&1; r2=$?
set -e
[ "$r1 $r2" = "1 2" ] || fail "exits: invalid policy $r1 (want 1), usage $r2 (want 2)"
grep 'pools\[0\].members\[0\].weight' "$WORK/bad.err" >/dev/null || fail "invalid policy: path not reported"
pass "human tables list the changed leads; invalid policy -> exit 1 with its path; usage -> 2"
