#!/usr/bin/env python3
"""Generate schema-valid flywheel records (schemas/flywheel.schema.json) for
the loader tests and benchmark, one `key<TAB>value` line each (kcat -P -K'\t').

  loader_gen.py --count N --seed S [--days D] [--start EPOCH] [--run TAG]
                [--dup-prompts K] [--bad]

Decision ids are "<workload>-<run>-<i>", unique per run. Timestamps spread
over D UTC days from --start. --dup-prompts K: every K-th record repeats the
user prompt of the previous one (for export de-duplication). --bad: emit one
malformed record (fails the schema) instead; --huge-ts: one schema-valid
record whose timestamp Elasticsearch refuses (document_parsing_exception)."""
import argparse
import json
import random
import sys

WORKLOADS = ["lead.route", "outreach.template_suggest"]


def record(i, run, ts, workload, prompt_id):
    did = "%s-%s-%d" % (workload.replace(".", "_"), run, i)
    facts = {"Company": "Acme %d" % prompt_id, "Country": "DE", "NumberOfEmployees": prompt_id % 5000}
    decision = {"owner": "005000000000%03dAAA" % (i % 1000), "reason": "segment.smb"}
    return did, {
        "timestamp": ts,
        "client_id": "sfk-test",
        "workload_id": workload,
        "request": {
            "model": "rules:routing_policy@1.0.0",
            "messages": [
                {"role": "system", "content": "Route the lead."},
                {"role": "user", "content": json.dumps(facts, sort_keys=True, separators=(",", ":"))},
            ],
            "metadata": {"decision_id": did, "event_id": "ev-%s-%d" % (run, i),
                         "lead_id": "00Q000000000001", "policy_version": "1.0.0"},
        },
        "response": {
            "id": "chatcmpl-" + did, "object": "chat.completion", "created": ts,
            "model": "rules:routing_policy@1.0.0",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant",
                                     "content": json.dumps(decision, separators=(",", ":"))}}],
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--start", type=int, default=1795564800)  # 2026-11-25 00:00 UTC
    ap.add_argument("--run", default="r")
    ap.add_argument("--dup-prompts", type=int, default=0)
    ap.add_argument("--bad", action="store_true")
    ap.add_argument("--huge-ts", action="store_true",
                    help="one schema-valid record whose timestamp Elasticsearch cannot store")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    out = sys.stdout
    if a.bad:
        did, r = record(0, a.run + "bad", a.start, WORKLOADS[0], 0)
        r["extra_top_level"] = True  # the strict index (and our schema) refuse it
        out.write("%s\t%s\n" % (did, json.dumps(r, separators=(",", ":"))))
        return
    if a.huge_ts:
        ts = 99999999999999999  # valid JSON Schema integer; beyond ES's date range
        did, r = record(0, a.run + "huge", ts, WORKLOADS[0], 0)
        out.write("%s\t%s\n" % (did, json.dumps(r, separators=(",", ":"))))
        return
    prompt = 0
    for i in range(a.count):
        wl = WORKLOADS[i % len(WORKLOADS)]
        ts = a.start + rnd.randrange(a.days * 86400)
        if not (a.dup_prompts and i % a.dup_prompts == 0 and i > 0):
            prompt += 1
        did, r = record(i, a.run, ts, wl, prompt)
        out.write("%s\t%s\n" % (did, json.dumps(r, separators=(",", ":"))))


if __name__ == "__main__":
    main()
