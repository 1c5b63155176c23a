#!/usr/bin/env bash
# it_cli_report: `sfk report` over flywheel JSONL written by this test the way
# sfk-loader lays it out (<workload>_<day>.jsonl, one closed day gzipped, a
# torn last line, a day outside the period), with records shaped as the
# workers build them. Every figure of the dashboard and the CSVs (TTFR median,
# P95, max, SLA breach rate with per-segment SLAs, buckets, by owner/region,
# daily trend; leads routed, distribution, confidence, assignment latency;
# template usage, send and reply rates, intents) is checked against values the
# embedded Python computes on its own from what it wrote. The HTML page must
# be self-contained (no scripts, no external resources) with its four charts.
# No services needed.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() {
	echo "it_cli_report: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -20 >&2; done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
command -v python3 >/dev/null || fail "python3 is needed to compute the expected figures"

cat >"$WORK/figures.py" <<'PY'
"""writes flywheel JSONL the way sfk-loader lays
it out (<workload>_<day>.jsonl, records as the workers build them) and checks
sfk report's dashboard and CSVs against figures computed here, independently
(statistics module: median, 'inclusive' quantiles = linear interpolation).

    figures.py gen DIR          -> DIR/*.jsonl, DIR/expected.json
    figures.py check DIR OUT  -> exit 1 with the differences
"""
import csv
import datetime as dt
import gzip
import json
import os
import random
import statistics
import sys

UTC = dt.timezone.utc
DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]
SEGMENTS = ["SMB", "MM", "ENT"]
REGIONS = ["NA", "EMEA", "APAC", "LATAM"]
OWNERS = ["005000000000001AAA", "005000000000002AAA", "005000000000003AAA",
          "005000000000004AAA"]
TEMPLATES = [("tpl_intro", "introduce"), ("tpl_demo", "book_demo"), ("tpl_ent", "enterprise")]
SLA = {"default": 60, "ENT": 30}


def iso(t):
    return dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def record(ts, wl, lead, facts, decision, seq):
    return {
        "timestamp": int(ts), "client_id": "sfk-test", "workload_id": wl,
        "request": {"model": "rules:test@1", "messages": [
            {"role": "system", "content": "decide"},
            {"role": "user", "content": json.dumps(facts)}],
            "metadata": {"decision_id": f"d{seq}", "event_id": f"e{seq}", "lead_id": lead,
                         "policy_version": "1.0.0"}},
        "response": {"id": f"chatcmpl-d{seq}", "object": "chat.completion", "created": int(ts),
                     "model": "rules:test@1", "choices": [{"index": 0, "message": {
                         "role": "assistant", "content": json.dumps(decision)},
                         "finish_reason": "stop"}]}}


def percentile(v, q):
    v = sorted(v)
    if len(v) == 1:
        return v[0]
    return statistics.quantiles(v, n=100, method="inclusive")[q - 1]


def gen(d):
    rnd = random.Random(8)
    recs = []  # (record, day it lands in by its timestamp)
    seq = 0
    exp_route, exp_first, exp_sugg, exp_reply = {}, {}, {}, set()
    for i in range(90):
        lead = "00Q" + f"{i:012d}" + "AAA"
        day = DAYS[i % 3]
        base = dt.datetime.fromisoformat(day + "T00:00:00+00:00").timestamp()
        created = base + 3600 + rnd.randrange(0, 18 * 3600)
        seg, reg = rnd.choice(SEGMENTS), rnd.choice(REGIONS)
        routed = i % 10 != 9  # every tenth lead has no routing record
        if routed:
            owner = rnd.choice(OWNERS)
            lat = rnd.uniform(0.2, 20.0)
            conf = round(rnd.uniform(0.5, 1.0), 3)
            sla = SLA.get(seg, SLA["default"])
            dec = {"segment": seg, "region": reg, "owner_id": owner, "owner_type": "User",
                   "reason_path": "pool", "reason": "rr", "confidence": conf, "priority": False,
                   "sla_minutes": sla, "policy_version": "1.0.0", "decided_by": "rules"}
            facts = {"Id": lead, "Country": "x", "CreatedDate": iso(created)}
            seq += 1
            t_route = created + lat * 60
            if i % 7 == 3:  # an earlier decision superseded by a later one
                old = dict(dec, owner_id=OWNERS[0], region="NA")
                recs.append(record(t_route - 5, "lead.route", lead, facts, old, seq))
                seq += 1
            recs.append(record(t_route, "lead.route", lead, facts, dec, seq))
            exp_route[lead] = {"seg": seg, "reg": reg, "owner": owner,
                               "lat": (int(t_route) - created) / 60, "conf": conf, "sla": sla}
        if i % 11 == 5:  # a decision that leaves the owner alone: not routed
            seq += 1
            recs.append(record(created + 60, "lead.route", "00Q" + f"{900 + i:012d}" + "AAA",
                               {"CreatedDate": iso(created)},
                               {"segment": seg, "region": reg, "owner_type": "unchanged",
                                "reason_path": "keep", "reason": "user owned",
                                "confidence": 1.0}, seq))
        if i % 8 != 7:  # most leads got a first response; some several candidates
            cands = sorted(rnd.uniform(1, 150) for _ in range(rnd.randrange(1, 4)))
            first_user = rnd.choice(OWNERS)
            for k, m in enumerate(reversed(cands)):  # the latest arrives first
                at = created + m * 60
                seq += 1
                recs.append(record(at + 30, "lead.first_touch_detect", lead,
                                   {"lead_id": lead, "lead_created_at": iso(created),
                                    "segment": seg},
                                   {"lead_id": lead, "outcome": "written",
                                    "first_response": {"at": iso(at), "source": "Task",
                                                       "user": first_user},
                                    "ttfr_minutes": round(m, 2)}, seq))
            m = cands[0]
            exp_first[lead] = {"ttfr": round(m, 2), "user": first_user, "created": created,
                               "seg": seg}
        tid, intent = TEMPLATES[i % 3] if i % 5 else TEMPLATES[0]
        send = i % 4 == 0
        seq += 1
        recs.append(record(created + 90, "outreach.template_suggest", lead, {"Id": lead},
                           {"lead_id": lead, "template_id": tid, "intent": intent,
                            "confidence": 0.5 + (i % 5) / 10, "score": 1.0, "variables": {},
                            "missing_variables": [], "auto_send": send, "send": send}, seq))
        exp_sugg[lead] = {"tid": tid, "intent": intent, "send": send,
                          "conf": 0.5 + (i % 5) / 10}
        if i % 4 == 1:
            seq += 1
            recs.append(record(created + 7200, "outreach.template_suggest", lead,
                               {"lead_id": lead},
                               {"outcome": "reply", "lead_id": lead, "template_id": tid,
                                "intent": intent, "confidence": 0.6, "template_applied": True},
                               seq))
            exp_reply.add(lead)
    # Records outside the period (must be ignored) and a torn last line.
    out_rec = record(dt.datetime(2026, 11, 21, 1, tzinfo=UTC).timestamp(),
                     "lead.first_touch_detect", "00Q999999999999AAA",
                     {"lead_id": "x", "lead_created_at": iso(0)},
                     {"lead_id": "x", "outcome": "written",
                      "first_response": {"at": iso(1), "source": "Task"}, "ttfr_minutes": 9999},
                     99999)
    files = {}
    for r in recs + [out_rec]:
        day = dt.datetime.fromtimestamp(r["timestamp"], UTC).strftime("%Y-%m-%d")
        files.setdefault(f"{r['workload_id']}_{day}.jsonl", []).append(json.dumps(r))
    os.makedirs(d, exist_ok=True)
    for name, lines in files.items():
        if name.startswith("outreach") and "11-19" in name:  # a closed, compressed day
            with gzip.open(os.path.join(d, name + ".gz"), "wt") as f:
                f.write("\n".join(lines) + "\n")
            continue
        with open(os.path.join(d, name), "w") as f:
            f.write("\n".join(lines) + "\n")
            if name.startswith("lead.route") and "11-20" in name:
                f.write('{"timestamp": 17, "client_id": "torn')  # a crashed writer's tail
    # The expected figures.
    ttfr = [v["ttfr"] for v in exp_first.values()]
    breaches, by_owner, by_region, daily = 0, {}, {}, {}
    for lead, v in exp_first.items():
        r = exp_route.get(lead)
        sla = r["sla"] if r else SLA.get(v["seg"], SLA["default"])
        breaches += v["ttfr"] > sla
        by_owner.setdefault(r["owner"] if r else v["user"], []).append(v["ttfr"])
        by_region.setdefault(r["reg"] if r else "unknown", []).append(v["ttfr"])
        daily.setdefault(dt.datetime.fromtimestamp(v["created"], UTC).strftime("%Y-%m-%d"),
                         []).append(v["ttfr"])
    buckets = [0] * 5
    for m in ttfr:
        buckets[0 if m < 5 else 1 if m < 15 else 2 if m < 30 else 3 if m < 60 else 4] += 1
    lats = [v["lat"] for v in exp_route.values()]
    seg_count, reg_count = {}, {}
    for v in exp_route.values():
        seg_count[v["seg"]] = seg_count.get(v["seg"], 0) + 1
        reg_count[v["reg"]] = reg_count.get(v["reg"], 0) + 1
    tpl = {}
    for lead, s in exp_sugg.items():
        t = tpl.setdefault(s["tid"], {"suggested": 0, "sent": 0, "replied": 0})
        t["suggested"] += 1
        t["sent"] += s["send"]
        t["replied"] += lead in exp_reply
    intents = {}
    for s in exp_sugg.values():
        intents[s["intent"]] = intents.get(s["intent"], 0) + 1
    exp = {
        "ttfr": {"leads": len(ttfr), "median": statistics.median(ttfr),
                 "p95": percentile(ttfr, 95), "max": max(ttfr),
                 "breach_rate": breaches / len(ttfr), "buckets": buckets,
                 "by_owner": {k: [len(v), statistics.median(v)] for k, v in by_owner.items()},
                 "by_region": {k: [len(v), statistics.median(v), percentile(v, 95)]
                               for k, v in by_region.items()},
                 "daily": {k: [statistics.median(v), percentile(v, 95)]
                           for k, v in daily.items()}},
        "routing": {"leads": len(exp_route), "lat_median": statistics.median(lats),
                    "lat_p95": percentile(lats, 95),
                    "conf_median": statistics.median(v["conf"] for v in exp_route.values()),
                    "by_segment": seg_count, "by_region": reg_count},
        "templates": {"suggested": len(exp_sugg),
                      "sent": sum(s["send"] for s in exp_sugg.values()),
                      "replied": len(exp_reply), "by_template": tpl, "intents": intents},
    }
    json.dump(exp, open(os.path.join(d, "expected.json"), "w"), indent=1)


def check(d, out):
    exp = json.load(open(os.path.join(d, "expected.json")))
    got = json.load(open(os.path.join(out, "dashboard_2026-11-20.json")))
    bad = []

    def eq(what, a, b, tol=0.01):
        if a is None or b is None or abs(a - b) > tol:
            bad.append(f"{what}: report {a}, expected {b}")

    t, et = got["ttfr"], exp["ttfr"]
    eq("ttfr.leads", t["leads"], et["leads"], 0)
    eq("ttfr.median", t["median_minutes"], et["median"])
    eq("ttfr.p95", t["p95_minutes"], et["p95"])
    eq("ttfr.max", t["max_minutes"], et["max"])
    eq("ttfr.sla_breach_rate", t["sla_breach_rate"], et["breach_rate"], 1e-6)
    for b, n in zip(t["buckets"], et["buckets"]):
        eq(f"ttfr.bucket {b['label']}", b["count"], n, 0)
    owners = {r["key"]: r for r in t["by_owner"]}
    for k, (n, med) in et["by_owner"].items():
        eq(f"ttfr.by_owner[{k}].leads", owners.get(k, {}).get("leads"), n, 0)
        eq(f"ttfr.by_owner[{k}].median", owners.get(k, {}).get("median_minutes"), med)
    regions = {r["key"]: r for r in t["by_region"]}
    for k, (n, med, p95) in et["by_region"].items():
        eq(f"ttfr.by_region[{k}].leads", regions.get(k, {}).get("leads"), n, 0)
        eq(f"ttfr.by_region[{k}].median", regions.get(k, {}).get("median_minutes"), med)
        eq(f"ttfr.by_region[{k}].p95", regions.get(k, {}).get("p95_minutes"), p95)
    if [r["day"] for r in t["daily"]] != sorted(et["daily"]):
        bad.append(f"ttfr.daily days {[r['day'] for r in t['daily']]}")
    for r in t["daily"]:
        med, p95 = et["daily"].get(r["day"], [None, None])
        eq(f"ttfr.daily[{r['day']}].median", r["median_minutes"], med)
        eq(f"ttfr.daily[{r['day']}].p95", r["p95_minutes"], p95)
    r, er = got["routing"], exp["routing"]
    eq("routing.leads_routed", r["leads_routed"], er["leads"], 0)
    eq("routing.latency.median", r["assignment_latency_minutes"]["median_minutes"],
       er["lat_median"])
    eq("routing.latency.p95", r["assignment_latency_minutes"]["p95_minutes"], er["lat_p95"])
    eq("routing.confidence.median", r["confidence"]["median"], er["conf_median"], 1e-6)
    for dim in ("by_segment", "by_region"):
        g = {x["key"]: x["leads"] for x in r[dim]}
        if g != er[dim]:
            bad.append(f"routing.{dim}: report {g}, expected {er[dim]}")
    p, ep = got["templates"], exp["templates"]
    for k in ("suggested", "sent", "replied"):
        eq(f"templates.{k}", p[k], ep[k], 0)
    for row in p["by_template"]:
        e = ep["by_template"].get(row["template_id"], {})
        for k in ("suggested", "sent", "replied"):
            eq(f"templates[{row['template_id']}].{k}", row[k], e.get(k), 0)
        eq(f"templates[{row['template_id']}].send_rate", row["send_rate"],
           e.get("sent", 0) / e.get("suggested", 1), 1e-6)
        eq(f"templates[{row['template_id']}].reply_rate", row["reply_rate"],
           e.get("replied", 0) / e.get("suggested", 1), 1e-6)
    if {x["key"]: x["leads"] for x in p["intents"]} != ep["intents"]:
        bad.append(f"templates.intents {p['intents']}")
    # The CSVs carry the same figures.
    rows = list(csv.DictReader(open(os.path.join(out, "ttfr_metrics_2026-11-20.csv"))))
    a = [x for x in rows if x["dimension"] == "all"][0]
    eq("ttfr csv median", float(a["median_minutes"]), et["median"])
    eq("ttfr csv p95", float(a["p95_minutes"]), et["p95"])
    rows = list(csv.DictReader(open(os.path.join(out, "routing_metrics_2026-11-20.csv"))))
    a = [x for x in rows if x["dimension"] == "all"][0]
    eq("routing csv leads", int(a["leads"]), er["leads"], 0)
    eq("routing csv latency median", float(a["assignment_latency_median_minutes"]),
       er["lat_median"])
    seg = {x["key"]: int(x["leads"]) for x in rows if x["dimension"] == "segment"}
    if seg != er["by_segment"]:
        bad.append(f"routing csv segments {seg}")
    rows = list(csv.DictReader(open(os.path.join(out, "template_metrics_2026-11-20.csv"))))
    for x in rows:
        e = ep["by_template"][x["template_id"]]
        eq(f"template csv {x['template_id']} suggested", int(x["suggested"]), e["suggested"], 0)
        eq(f"template csv {x['template_id']} reply_rate", float(x["reply_rate"]),
           e["replied"] / e["suggested"], 1e-4)
    if bad:
        print("\n".join(bad), file=sys.stderr)
        sys.exit(1)
    print(f"figures match: {et['leads']} TTFR leads, {er['leads']} routed, "
          f"{ep['suggested']} suggestions")


if __name__ == "__main__":
    {"gen": lambda: gen(sys.argv[2]), "check": lambda: check(sys.argv[2], sys.argv[3])}[
        sys.argv[1]]()
PY

python3 "$WORK/figures.py" gen "$WORK/in" || fail "could not write the test JSONL"
cat >"$WORK/routing_policy.json" <<'JSON'
{"sla_minutes": {"default": 60, "ENT": 30},
 "pools": [{"id": "p", "members": [{"owner_id": "005000000000002AAA", "name": "bo.chen"}]}]}
JSON
"$SFK" report --input "$WORK/in" --from 2026-11-18 --to 2026-11-20 --out "$WORK/out/r" \
	--routing-policy "$WORK/routing_policy.json" >"$WORK/report.out" 2>"$WORK/report.err" ||
	fail "sfk report exited $?"
for f in dashboard_2026-11-20.json routing_metrics_2026-11-20.csv ttfr_metrics_2026-11-20.csv \
	template_metrics_2026-11-20.csv report.html; do
	grep -qx "$WORK/out/r/$f" "$WORK/report.out" || fail "$f not listed on stdout"
	[ -s "$WORK/out/r/$f" ] || fail "$f not written"
done
grep -q "skipped 1 unreadable line" "$WORK/report.err" || fail "the torn line was not reported"
pass "five files written, torn line skipped and reported"

python3 "$WORK/figures.py" check "$WORK/in" "$WORK/out/r" >"$WORK/check.out" 2>&1 ||
	fail "figures differ from the independently computed ones"
pass "$(cat "$WORK/check.out")"

H=$WORK/out/r/report.html
[ "$(grep -c '<svg' "$H")" = 4 ] || fail "report.html should hold 4 inline SVG charts"
if grep -qiE '<script|<link|src="http|href="http|@import' "$H"; then
	fail "report.html is not self-contained"
fi
grep -q 'class="sla"' "$H" && grep -q 'SLA 60 min' "$H" || fail "no SLA line in the charts"
for day in 11-18 11-19 11-20; do grep -q ">$day</text>" "$H" || fail "trend misses day $day"; done
grep -q '<td>bo.chen <span class="id">005000000000002AAA</span>' "$H" ||
	fail "owner names from the routing policy not shown"
pass "report.html: self-contained, 4 SVG charts, SLA line, daily trend, owner names"

rc=0
"$SFK" report --input "$WORK/in" --from 2026-11-31 --out "$WORK/x" >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "an invalid day exited $rc, want 2"
pass "invalid day is a usage error (exit 2)"
