#!/usr/bin/env python3
"""check_metrics.py - every sfk_* metric the dashboards and alert rules use is one our binaries expose.

Evidence, strongest first:
  scraped     the name was in a /metrics scrape of a running binary (--scrape FILE, repeatable)
  registered  a metrics_counter/gauge/histogram("name") call in the C sources AND the name is a
              string in a built binary of $bin_dir (sfk-bridge, sfk-worker, sfk-loader, sfk)
  source      registered in the C sources, but no built binary carries it (binary not built yet)
  pending     only named in DESIGN.md section 7 or tests/deploy/metrics-requested.txt (a metric
              the design promises that no binary registers yet): a failure with --strict-pending
              (check.sh's default; SFK_DEPLOY_LENIENT_METRICS=1 makes it a warning)
Anything else fails. Histogram series (_bucket/_count/_sum) need a histogram base name.
Non-sfk_ names (kube_*, up) come from other exporters and are listed, not checked.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

BINARIES = ("sfk-bridge", "sfk-worker", "sfk-loader", "sfk")
SUFFIXES = ("_bucket", "_count", "_sum")
PROMQL_WORDS = {"sum", "rate", "increase", "max", "min", "avg", "count", "by", "without", "and", "or",
                "unless", "time", "histogram_quantile", "label_replace", "on", "ignoring", "group_left",
                "group_right", "le", "bool", "offset", "topk", "bottomk", "abs", "clamp_min", "clamp_max",
                "vector", "scalar", "absent", "delta", "deriv", "irate", "avg_over_time", "max_over_time",
                "min_over_time", "changes", "resets", "humanize", "humanizePercentage", "humanizeDuration"}


def exprs_from_dashboards(paths):
    out = []
    for p in paths:
        def walk(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k == "expr" and isinstance(v, str):
                        out.append((os.path.basename(p), v))
                    else:
                        walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(json.load(open(p, encoding="utf-8")))
    return out


def exprs_from_rules(path):
    """expr: values of a Prometheus rules file (single line or block scalar)."""
    out, lines, i = [], open(path, encoding="utf-8").read().split("\n"), 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if m:
            ind, rest = len(m.group(1)), m.group(2)
            if rest.startswith("|") or rest.startswith(">") or rest == "":
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > ind):
                    block.append(lines[i]); i += 1
                out.append((os.path.basename(path), "\n".join(block)))
                continue
            out.append((os.path.basename(path), rest))
        i += 1
    return out


def metric_names(expr):
    """Metric names in a PromQL expression (identifiers not followed by '(' nor inside strings/braces)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "{}", e)
    e = re.sub(r"\[[^\]]*\]", "[]", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        n = m.group(1)
        if m.group(2) or n in PROMQL_WORDS or re.fullmatch(r"[0-9]+", n):
            continue
        if n.startswith("$") or n in ("e", "inf", "nan", "Inf", "NaN"):
            continue
        names.add(n)
    return names


def registered(source):
    """{name: kind} of metrics_counter/gauge/histogram registrations in C sources (macros resolved)."""
    out = {}
    files = []
    for d in ("common", "bridge", "workers", "cli"):
        files += glob.glob(os.path.join(source, d, "**", "*.[ch]"), recursive=True)
    defines = {}
    texts = {}
    for f in files:
        t = open(f, encoding="utf-8", errors="replace").read()
        texts[f] = t
        for m in re.finditer(r'#define\s+(\w+)\s+"(sfk_\w+)"', t):
            defines[m.group(1)] = m.group(2)
    for f, t in texts.items():
        for m in re.finditer(r'\bmetrics_(counter|gauge|histogram)\s*\(\s*(?:"(sfk_\w+)"|(\w+))', t):
            name = m.group(2) or defines.get(m.group(3))
            if name:
                out[name] = m.group(1)
    return out


def scraped(paths):
    out = {}
    for p in paths:
        for line in open(p, encoding="utf-8"):
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def binary_strings(bin_dir):
    out = {}
    for b in BINARIES:
        path = os.path.join(bin_dir, b) if bin_dir else ""
        if path and os.access(path, os.X_OK):
            data = open(path, "rb").read()
            out[b] = set(x.decode() for x in re.findall(rb"sfk_[a-z0-9_]+", data))
    return out


def design_names(path):
    text = open(path, encoding="utf-8").read()
    sec = re.search(r"## 7\. Metrics(.*?)\n## 8\.", text, re.S)
    return set(re.findall(r"`(sfk_\w+)", sec.group(1) if sec else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dashboards", nargs="*", default=[])
    ap.add_argument("--rules", action="append", default=[])
    ap.add_argument("--scrape", action="append", default=[])
    ap.add_argument("--bin-dir", default="")
    ap.add_argument("--source", required=True)
    ap.add_argument("--design")
    ap.add_argument("--requested")
    ap.add_argument("--strict-pending", action="store_true")
    a = ap.parse_args()

    uses = exprs_from_dashboards(a.dashboards)
    for r in a.rules:
        uses += exprs_from_rules(r)
    used = {}
    for where, e in uses:
        for n in metric_names(e):
            used.setdefault(n, set()).add(where)

    scr = scraped(a.scrape)
    reg = registered(a.source)
    bins = binary_strings(a.bin_dir)
    design = design_names(a.design) if a.design else set()
    requested = set()
    if a.requested and os.path.exists(a.requested):
        for line in open(a.requested, encoding="utf-8"):
            line = line.split("#", 1)[0].strip()
            if line:
                requested.add(line.split()[0])
    worker_built = "sfk-worker" in bins
    hist = {n for n, k in scr.items() if k == "histogram"} | {n for n, k in reg.items() if k == "histogram"} | \
        {n for n in design | requested if n.endswith("_seconds") and ("latency" in n or "duration" in n)}

    fails, warns, ok = [], [], []
    print("metrics: %d expressions, %d names used; scraped %d families from %d scrape(s); "
          "%d registrations in C; built: %s" % (len(uses), len(used), len(scr), len(a.scrape), len(reg),
                                                ", ".join(sorted(bins)) or "none"))
    for n in sorted(used):
        where = ",".join(sorted(used[n]))
        if not n.startswith("sfk_"):
            print("  other  %-48s (not ours: kube-state-metrics/Prometheus) [%s]" % (n, where))
            continue
        base = n
        for s in SUFFIXES:
            if n.endswith(s) and n[: -len(s)] in hist:
                base = n[: -len(s)]
        if base != n and base not in hist:
            fails.append("%s: %s series of a non-histogram" % (where, n))
            continue
        carriers = sorted(b for b, names in bins.items() if base in names)
        if base in scr:
            ok.append(n); print("  scraped    %-45s [%s]" % (n, where))
        elif base in reg and carriers:
            ok.append(n); print("  registered %-45s in %s [%s]" % (n, "+".join(carriers), where))
        elif base in reg:
            warns.append(n); print("  source     %-45s registered in C, no built binary has it [%s]" % (n, where))
        elif base in design or base in requested:
            src = "DESIGN.md section 7" if base in design else "metrics-requested.txt"
            if a.strict_pending:
                fails.append("%s: %s is only named in %s; no binary registers it" % (where, n, src))
            else:
                warns.append(n)
                print("  pending    %-45s WARNING only in %s, no binary registers it%s [%s]"
                      % (n, src, "" if worker_built else " (sfk-worker not built)", where))
        else:
            fails.append("%s: %s is exposed by no binary, registered nowhere, not in DESIGN.md" % (where, n))
    for f in fails:
        print("FAIL " + f)
    print("metrics: %d ok, %d warnings, %d failures" % (len(ok), len(warns), len(fails)))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
