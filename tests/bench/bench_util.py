#!/usr/bin/env python3
"""bench_util.py - number crunching for tests/bench/run (stdlib only).

  hist BEFORE AFTER NAME [LABEL=VALUE]   quantiles of a Prometheus histogram's
        increase between two /metrics snapshots (files): prints
        "count p50 p95 p99 max_le" in seconds, linear interpolation inside a
        bucket (like histogram_quantile); max_le = upper edge of the highest
        non-empty bucket.
  scrape URL N                  N GETs of URL (a new connection each, like a
        scraper after a restart); prints "p50_ms p99_ms max_ms series bytes".
  coldstart PORT TIMEOUT -- CMD...   runs CMD, polls http://127.0.0.1:PORT/readyz
        every 5 ms until 200, prints the seconds from exec to that answer
        and CMD's VmRSS (KiB) one second later, then SIGTERMs CMD (SIGKILL after 5 s). Exit 1 if not ready in TIMEOUT s.
  stalls FILE START              FILE: lines "t total"; prints the longest
        time the total did not grow after time START while it was below its
        final value (the rebalance pause).
  rate FILE                      FILE: the bridge's log; from its "batch
        committed" lines prints "events first_ts last_ts events_per_s" where
        the rate counts the events after the first batch over the time from
        the first commit to the last.
  table TSV MD [KEY=VALUE...]    the results table: printed to stdout and
        written as markdown to MD with the KEY=VALUE metadata above it.
"""
import json
import os
import signal
import subprocess
import sys
import time
import http.client
from datetime import datetime


def parse_metrics(path, name, labels):
    """{le: cumulative count} for NAME_bucket lines matching labels."""
    out = {}
    want = [f'{k}="{v}"' for k, v in labels]
    with open(path) as f:
        for line in f:
            if not line.startswith(name + "_bucket{"):
                continue
            lab, _, val = line.rpartition(" ")
            if not all(w in lab for w in want):
                continue
            le = lab.split('le="', 1)[1].split('"', 1)[0]
            le = float("inf") if le == "+Inf" else float(le)
            out[le] = out.get(le, 0.0) + float(val)
    return out


def quantile(q, edges, counts):
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_edge, prev_c = 0.0, 0.0
    for e, c in zip(edges, counts):
        if c >= rank:
            if e == float("inf"):
                return prev_edge
            if c == prev_c:
                return e
            return prev_edge + (e - prev_edge) * (rank - prev_c) / (c - prev_c)
        prev_edge, prev_c = e, c
    return prev_edge


def cmd_hist(args):
    before, after, name = args[:3]
    labels = [a.split("=", 1) for a in args[3:]]
    b = parse_metrics(before, name, labels) if os.path.exists(before) else {}
    a = parse_metrics(after, name, labels)
    edges = sorted(a)
    counts = [a[e] - b.get(e, 0.0) for e in edges]
    if not counts or counts[-1] <= 0:
        print("0 nan nan nan nan")
        return 0
    max_le = next(e for e, c in zip(edges, counts) if c >= counts[-1])
    print("%d %.4f %.4f %.4f %s" % (counts[-1], quantile(0.5, edges, counts),
                                    quantile(0.95, edges, counts), quantile(0.99, edges, counts),
                                    "inf" if max_le == float("inf") else "%.3f" % max_le))
    return 0


def cmd_scrape(args):
    url, n = args[0], int(args[1])
    host_port, _, path = url.split("//", 1)[1].partition("/")
    host, _, port = host_port.partition(":")
    times, series, size = [], 0, 0
    for _ in range(n):
        t0 = time.perf_counter()
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("GET", "/" + path)
        r = c.getresponse()
        body = r.read()
        times.append(time.perf_counter() - t0)
        c.close()
        if r.status != 200:
            print("scrape: HTTP %d" % r.status, file=sys.stderr)
            return 1
        size = len(body)
        series = sum(1 for ln in body.decode().splitlines() if ln and not ln.startswith("#"))
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000
    print("%.3f %.3f %.3f %d %d" % (pick(0.5), pick(0.99), times[-1] * 1000, series, size))
    return 0


def cmd_coldstart(args):
    port, timeout = int(args[0]), float(args[1])
    cmd = args[args.index("--") + 1:]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.environ.get("COLDSTART_LOG", os.devnull), "w"))
    ready = None
    rss_kb = 0
    try:
        while time.perf_counter() - t0 < timeout:
            if p.poll() is not None:
                print("coldstart: %s exited with %d" % (cmd[0], p.returncode), file=sys.stderr)
                return 1
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    ready = time.perf_counter() - t0
                    time.sleep(1)
                    with open("/proc/%d/status" % p.pid) as st:
                        for ln in st:
                            if ln.startswith("VmRSS:"):
                                rss_kb = int(ln.split()[1])
                    break
            except OSError:
                pass
            time.sleep(0.005)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if ready is None:
        print("coldstart: %s not ready in %.0f s" % (cmd[0], timeout), file=sys.stderr)
        return 1
    print("%.3f %d" % (ready, rss_kb))
    return 0


def cmd_stalls(args):
    path, start = args[0], float(args[1])
    pts = []
    with open(path) as f:
        for line in f:
            t, v = line.split()
            pts.append((float(t), float(v)))
    final = pts[-1][1] if pts else 0
    worst, last_t, last_v = 0.0, None, None
    for t, v in pts:
        if t < start:
            last_t, last_v = t, v
            continue
        if last_t is None or v > last_v:
            last_t, last_v = t, v
        elif v < final:
            worst = max(worst, t - last_t)
    print("%.3f" % worst)
    return 0


def cmd_rate(args):
    events, first, last, first_n = 0, None, None, 0
    with open(args[0]) as f:
        for line in f:
            if '"batch committed"' not in line:
                continue
            j = json.loads(line)
            ts = datetime.strptime(j["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
            if first is None:
                first, first_n = ts, j["events"]
            last = ts
            events += j["events"]
    rate = (events - first_n) / (last - first) if first is not None and last > first else 0.0
    print("%d %.3f %.3f %.0f" % (events, first or 0, last or 0, rate))
    return 0


def fmt(v):
    if v in ("", "-", None):
        return "-"
    try:
        x = float(v)
    except ValueError:
        return v
    if x != x:
        return "n/a"
    if abs(x) >= 100 or x == int(x):
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def cmd_table(args):
    tsv, md = args[0], args[1]
    meta = [a.split("=", 1) for a in args[2:]]
    rows = []
    with open(tsv) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 8:
                continue
            sc, fig, val, unit, base, target, met, note = p[:8]
            ratio = "-"
            try:
                if base not in ("", "-") and float(base) != 0 and val not in ("", "-"):
                    ratio = "%.2f" % (float(val) / float(base))
            except ValueError:
                pass
            rows.append((sc, fig, fmt(val) + (" " + unit if unit and val not in ("", "-") else ""),
                         fmt(base), ratio, target or "-", met or "-", note))
    rows.sort(key=lambda r: int(r[0]) if r[0].isdigit() else 99)
    head = ("#", "figure", "value", "baseline", "ratio", "target", "met?", "how / notes")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(7)]
    line = lambda r: "  ".join(str(r[i]).ljust(widths[i]) for i in range(7))
    print(line(head))
    for r in rows:
        print(line(r))
    with open(md, "w") as f:
        for k, v in meta:
            f.write(f"- {k}: {v}\n")
        f.write("\n| " + " | ".join(head) + " |\n")
        f.write("|" + "---|" * len(head) + "\n")
        for r in rows:
            f.write("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |\n")
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    fn = {"hist": cmd_hist, "scrape": cmd_scrape, "coldstart": cmd_coldstart,
          "stalls": cmd_stalls, "rate": cmd_rate, "table": cmd_table}.get(sys.argv[1])
    if not fn:
        print(__doc__, file=sys.stderr)
        return 2
    return fn(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
