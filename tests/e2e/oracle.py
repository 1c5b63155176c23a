#!/usr/bin/env python3
"""tests/e2e/oracle.py [--no-es] [--rr-snapshot TSV]... WORK POLICY_DIR: the exact
end-to-end oracle of it_e2e.sh (and of tests/chaos/run).

Computes what every Lead must look like from the sim's ground truth
(WORK/truth.json), the org's records (WORK/org.json) and the routing policy,
independently of the workers' code, and compares with the org, the sim's write
counters (WORK/stats.json), the flywheel JSONL files (WORK/flywheel/*.jsonl),
the Elasticsearch count (WORK/es_count) and the DLQ dumps (WORK/dlq.*.tsv).
Standard library only. Prints the problems (first few per kind) and the
measured figures; exit status 1 when any problem was found.

--no-es: no Elasticsearch count to compare (JSONL only).
--rr-snapshot TSV (repeatable, in time order): the round robin's Redis keys
("key<TAB>value" of every sfk:rr:* key) at the end of each life of Redis: a
run that wiped Redis once passes the snapshot taken just before the wipe, then
the keys at the end. A wipe restarts every pool's pointer, so the org-wide
"within 1 of the weighted share" no longer holds; what does hold, and is
checked instead, per life: the owners the pointer handed out (one memo key
per Lead) are within 1 of the weighted shares, and every Lead routed to a pool
member has the owner of its memo in the life it was routed in. A Lead holding
a memo in two lives but keeping its first owner (already routed, redelivered
after the wipe) is a pointer step spent on a Lead that was not routed.
"""
import collections
import glob
import json
import os
import sys

import argparse

ap = argparse.ArgumentParser(description="the exact end-to-end oracle")
ap.add_argument("--no-es", action="store_true", help="no Elasticsearch sink to compare")
ap.add_argument("--rr-snapshot", action="append", default=[], metavar="TSV",
                help="sfk:rr:* keys at the end of one life of Redis (repeat, in order)")
ap.add_argument("work")
ap.add_argument("policy_dir")
opts = ap.parse_args()
work, policy_dir = opts.work, opts.policy_dir
policy = json.load(open(os.path.join(policy_dir, "routing_policy.json")))
truth = json.load(open(os.path.join(work, "truth.json")))["leads"]
org = json.load(open(os.path.join(work, "org.json")))
stats = json.load(open(os.path.join(work, "stats.json")))
expect_dlq = json.load(open(os.path.join(work, "expect_dlq.json")))
problems = collections.defaultdict(list)


def bad(kind, msg):
    problems[kind].append(msg)


def to18(i):
    if not i or len(i) != 15:
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
    if emp is None:
        return None
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


leads = {to18(r["Id"]): r for r in org.get("Lead", [])}
errors_in_truth = [t for t in truth if t.get("error") or not t.get("lead_id")]
if errors_in_truth:
    bad("truth", f"{len(errors_in_truth)} leads the generator failed to create")
truth = [t for t in truth if t.get("lead_id")]
failed = sum(1 for t in truth for r in t["responses"] if r.get("state") != "done")
if failed:
    bad("truth", f"{failed} responses not done (state != done)")

# ---- flywheel JSONL: one line per decision --------------------------------
fly = []
for path in sorted(glob.glob(os.path.join(work, "flywheel", "**", "*.jsonl"), recursive=True)):
    for line in open(path):
        if line.strip():
            fly.append(json.loads(line))
ids = collections.Counter(r["request"]["metadata"]["decision_id"] for r in fly)
dups = {k: v for k, v in ids.items() if v > 1}
if dups:
    bad("flywheel", f"{len(dups)} decision ids on more than one JSONL line, e.g. {list(dups)[:3]}")
es_count = None if opts.no_es else int(open(os.path.join(work, "es_count")).read().strip() or -1)
if es_count is not None and es_count != len(ids):
    bad("elasticsearch", f"{es_count} documents, {len(ids)} unique decision ids in the JSONL")
by_wl = collections.defaultdict(dict)  # workload -> lead -> [records]
for r in fly:
    lid = to18(r["request"]["metadata"].get("lead_id"))
    by_wl[r["workload_id"]].setdefault(lid, []).append(r)


def decision(rec):
    return json.loads(rec["response"]["choices"][0]["message"]["content"])


# ---- round-robin snapshots (--rr-snapshot) ------------------------------------
def load_life(path):
    memo = collections.defaultdict(dict)  # pool -> lead -> owner
    prefix = f"sfk:rr:{policy['version']}:"
    for line in open(path):
        if "\t" not in line:
            continue
        k, v = line.rstrip("\n").split("\t", 1)
        if not k.startswith(prefix):
            continue
        parts = k[len(prefix):].split(":")
        if len(parts) == 3 and parts[1] == "lead":
            memo[parts[0]][to18(parts[2])] = v
    return {"memo": memo}


lives = [load_life(f) for f in opts.rr_snapshot]

# ---- routing ---------------------------------------------------------------
unassigned = set(policy.get("unassigned_owners", []))
pool_of = {(p["segment"], p["region"]): p for p in policy["pools"]}
shares = collections.defaultdict(collections.Counter)
exhausted = collections.Counter()
# daily caps count per UTC day of the decision (the worker's clock)
per_day = collections.defaultdict(collections.Counter)  # (pool, day) -> owner -> leads
exhausted_days = collections.defaultdict(set)  # pool -> days with leads sent to the queue
route_fly = by_wl.get("lead.route", {})
for t in truth:
    lid = t["lead_id"]
    lead = leads.get(lid)
    if lead is None:
        bad("routing", f"{lid}: not in the org")
        continue
    owner0 = t.get("owner_at_create")
    if owner0 and owner0.startswith("005") and owner0 not in unassigned:
        bad("routing", f"{lid}: created user-owned ({owner0}); the generator should use a queue")
        continue
    seg = segment(lead.get("NumberOfEmployees"))
    reg = region(lead.get("Country"))
    pool = pool_of.get((seg, reg)) if seg and reg else None
    if pool:
        members = {m["owner_id"] for m in pool["members"]}
        rq = policy.get("region_queues", {}).get(reg, policy["fallback_queue"])
        recs0 = route_fly.get(lid) or [{"timestamp": 0}]
        day = int(recs0[0]["timestamp"]) // 86400
        if lead["OwnerId"] in members:
            shares[pool["id"]][lead["OwnerId"]] += 1
            per_day[(pool["id"], day)][lead["OwnerId"]] += 1
        elif lead["OwnerId"] == rq and any(m.get("daily_cap") for m in pool["members"]):
            exhausted[pool["id"]] += 1
            exhausted_days[pool["id"]].add(day)
        else:
            bad("routing", f"{lid}: owner {lead['OwnerId']} not in pool {pool['id']}")
    else:
        want = policy["fallback_queue"]
        if seg and reg:
            want = policy.get("region_queues", {}).get(reg, want)
        if lead["OwnerId"] != want:
            bad("routing", f"{lid}: owner {lead['OwnerId']}, want queue {want} (seg={seg} reg={reg})")
    if lead.get("Routing_Policy_Version__c") != policy["version"]:
        bad("routing", f"{lid}: Routing_Policy_Version__c {lead.get('Routing_Policy_Version__c')}")
    recs = route_fly.get(lid, [])
    if len({r["request"]["metadata"]["decision_id"] for r in recs}) != 1:
        bad("routing", f"{lid}: {len(recs)} lead.route flywheel records, want 1 decision")
    for r in recs[:1]:
        d = decision(r)
        if d.get("segment") != seg or d.get("region") != reg:
            bad("routing", f"{lid}: decision segment/region {d.get('segment')}/{d.get('region')}, policy {seg}/{reg}")
        if d.get("owner_id") != lead["OwnerId"]:
            bad("routing", f"{lid}: decision owner {d.get('owner_id')} != org owner {lead['OwnerId']}")
for p in policy["pools"]:
    got = shares.get(p["id"], collections.Counter())
    n = sum(got.values())
    caps = {m["owner_id"]: m.get("daily_cap") for m in p["members"]}
    capped = False
    days = {d for (pid, d) in per_day if pid == p["id"]} | exhausted_days[p["id"]]
    for day in days:
        g = per_day[(p["id"], day)]
        for o, c in caps.items():
            # each life of Redis counts the day's cap from 0
            if c and g[o] > c * max(1, len(lives)):
                bad("routing", f"pool {p['id']}: {o} got {g[o]} > daily cap {c} on day {day}")
            if c and g[o] >= c:
                capped = True
        if len(lives) <= 1 and day in exhausted_days[p["id"]] and not all(c and g[o] >= c for o, c in caps.items()):
            bad("routing", f"pool {p['id']}: leads sent to the region queue on day {day} while an owner had room")
    if capped or n == 0:
        continue
    if lives:
        continue  # checked per life of Redis below
    w = sum(m.get("weight", 1) for m in p["members"])
    for m in p["members"]:
        want = n * m.get("weight", 1) / w
        if abs(got[m["owner_id"]] - want) >= 1:
            bad("routing", f"pool {p['id']}: {m['owner_id']} got {got[m['owner_id']]} of {n}, weighted share {want:.2f}")

# ---- round robin per life of Redis (--rr-snapshot) -------------------------
respent = 0
if lives:
    for p in policy["pools"]:
        members = {m["owner_id"] for m in p["members"]}
        w = sum(m.get("weight", 1) for m in p["members"])
        has_cap = any(m.get("daily_cap") for m in p["members"])
        for li, life in enumerate(lives):
            memo = life["memo"].get(p["id"], {})
            got = collections.Counter(memo.values())
            n = len(memo)
            if not has_cap and n:
                for m in p["members"]:
                    want = n * m.get("weight", 1) / w
                    if abs(got[m["owner_id"]] - want) >= 1:
                        bad("routing", f"pool {p['id']} life {li + 1}: the pointer gave {m['owner_id']} {got[m['owner_id']]} of {n} leads, weighted share {want:.2f}")
        for lid, lead in leads.items():
            if lead["OwnerId"] not in members:
                continue
            mine = [life["memo"].get(p["id"], {}).get(lid) for life in lives]
            seen = [o for o in mine if o]
            if not seen:
                continue
            if len(seen) > 1 and lead["OwnerId"] == seen[0]:
                respent += 1
            elif lead["OwnerId"] != seen[-1]:
                bad("routing", f"{lid}: owner {lead['OwnerId']}, the round robin gave {seen[-1]} (lives: {mine})")
    if respent:
        bad("routing", f"{respent} leads already routed before the wipe took a round-robin step again after it (pointer spent on a lead that keeps its owner)")

# ---- first response ------------------------------------------------------
for t in truth:
    lead = leads.get(t["lead_id"])
    if lead is None:
        continue
    want, got = t.get("first_response_at"), lead.get("First_Response_At__c")
    if want != got:
        bad("first_response", f"{t['lead_id']}: First_Response_At__c {got}, truth {want}")

# ---- templates -------------------------------------------------------------
for t in truth:
    lead = leads.get(t["lead_id"])
    if lead is None:
        continue
    if not lead.get("Template_Recommended__c"):
        bad("template", f"{t['lead_id']}: no template recommended")
    elif lead.get("Template_Intent__c") != t.get("intent"):
        bad("template", f"{t['lead_id']}: intent {lead.get('Template_Intent__c')}, truth {t.get('intent')}")
    if len(by_wl.get("outreach.template_suggest", {}).get(t["lead_id"], [])) < 1:
        bad("template", f"{t['lead_id']}: no outreach.template_suggest flywheel record")

# ---- writes per Lead: no duplicate effect -----------------------------------
# route 1 + template 1 (+1 Template_Applied__c when the email was sent) +
# first touch: between 1 and its response events + 1 (an email is two events:
# the EmailMessage and its own Task; the +1 is the documented corrective write
# of it_worker_ttfr.sh), 0 when never answered. The generator's API create
# counts 1 for API leads.
writes = stats.get("writes", {})
for t in truth:
    lid = t["lead_id"]
    lead = leads.get(lid)
    if lead is None:
        continue
    w = writes.get(lid, 0) - (1 if t.get("api") else 0)
    n = sum(2 if r["kind"] == "email_message" else 1 for r in t["responses"] if r.get("state") == "done")
    applied = 1 if lead.get("Template_Applied__c") else 0
    lo = 2 + applied + (1 if n else 0)
    hi = 2 + applied + (n + 1 if n else 0)
    if not lo <= w <= hi:
        bad("writes", f"{lid}: {w} writes, allowed {lo}..{hi} ({n} response events, applied={applied})")

# ---- DLQs: only the injected records -----------------------------------------
for name, want in expect_dlq.items():
    path = os.path.join(work, f"dlq.{name}.tsv")
    lines = [l for l in open(path).read().split("\n") if l] if os.path.exists(path) else []
    keys = sorted(l.split("\t", 1)[0] for l in lines)
    if keys != sorted(want):
        bad("dlq", f"{name}: keys {keys[:5]}{'...' if len(keys) > 5 else ''} ({len(keys)}), want {sorted(want)}")

# ---- figures (information) -----------------------------------------------------
created = {t["lead_id"]: t["created_ms"] / 1000.0 for t in truth}
lat = sorted(
    r[0]["timestamp"] - created[lid]
    for lid, r in route_fly.items() if lid in created and r)
def pct(a, q):
    return a[min(len(a) - 1, int(q * len(a)))] if a else float("nan")
api_total = stats.get("api_usage", {}).get("used", 0)
print(f"  leads {len(truth)}, decisions {len(ids)} (route {len(route_fly)}, "
      f"first touch {sum(len(v) for v in by_wl.get('lead.first_touch_detect', {}).values())}, "
      f"template {sum(len(v) for v in by_wl.get('outreach.template_suggest', {}).values())}), "
      f"ES documents {es_count if es_count is not None else 'n/a'}")
print(f"  routing shares: { {k: dict(c) for k, c in shares.items()} }"
      + (f", pool exhausted -> region queue: {dict(exhausted)}" if exhausted else ""))
print(f"  latency Lead CreatedDate -> routing decision (1 s resolution): p50 {pct(lat, 0.5):.2f} s, p99 {pct(lat, 0.99):.2f} s")
print(f"  Salesforce API calls: {api_total} ({api_total * 1000 / max(1, len(truth)):.0f} per 1,000 leads)")
for kind, msgs in problems.items():
    print(f"  PROBLEM {kind}: {len(msgs)}", file=sys.stderr)
    for m in msgs[:8]:
        print(f"    {m}", file=sys.stderr)
sys.exit(1 if problems else 0)
