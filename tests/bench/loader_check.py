#!/usr/bin/env python3
"""Check a loader JSONL directory against the generated records.

  loader_check.py DIR EXPECTED_IDS_FILE

EXPECTED_IDS_FILE: one `decision_id<TAB>workload<TAB>timestamp` per line.
Asserts: every file is named <workload>_<YYYY-MM-DD>[.<n>].jsonl[.gz] with
mode 0640; every line is a complete JSON object (no torn line); every
expected decision id appears exactly once across all files, in the file of
its own workload and UTC day; no unexpected id. Prints a summary; exit 1 on
any failure (listing the first problems)."""
import gzip
import json
import os
import re
import stat
import sys
import time

NAME = re.compile(r"^(?P<wl>[a-z0-9_.-]+)_(?P<day>\d{4}-\d{2}-\d{2})(\.(?P<seg>[1-9]\d*))?\.jsonl(\.gz)?$")


def main():
    d, expected_path = sys.argv[1], sys.argv[2]
    expected = {}
    with open(expected_path) as f:
        for line in f:
            did, wl, ts = line.rstrip("\n").split("\t")
            expected[did] = (wl, time.strftime("%Y-%m-%d", time.gmtime(int(ts))))
    problems = []
    seen = {}
    files = sorted(os.listdir(d))
    for name in files:
        m = NAME.match(name)
        path = os.path.join(d, name)
        if not m:
            problems.append("unexpected file name %s" % name)
            continue
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != 0o640:
            problems.append("%s has mode %o, want 640" % (name, mode))
        data = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
        if data and not data.endswith(b"\n"):
            problems.append("%s: torn last line" % name)
        for n, raw in enumerate(data.split(b"\n")[:-1] if data else []):
            try:
                rec = json.loads(raw)
                did = rec["request"]["metadata"]["decision_id"]
            except Exception as e:  # noqa: BLE001 - any failure is a problem
                problems.append("%s line %d: not a flywheel record (%s)" % (name, n + 1, e))
                continue
            seen[did] = seen.get(did, 0) + 1
            want = expected.get(did)
            if want is None:
                problems.append("%s: unexpected decision id %s" % (name, did))
            elif (m.group("wl"), m.group("day")) != want:
                problems.append("%s: %s belongs in %s_%s" % (name, did, want[0], want[1]))
    dups = [k for k, v in seen.items() if v > 1]
    missing = [k for k in expected if k not in seen]
    if dups:
        problems.append("%d decision ids written more than once, e.g. %s" % (len(dups), dups[:3]))
    if missing:
        problems.append("%d decision ids missing, e.g. %s" % (len(missing), missing[:3]))
    print("files=%d lines=%d unique=%d expected=%d duplicates=%d missing=%d"
          % (len(files), sum(seen.values()), len(seen), len(expected), len(dups), len(missing)))
    for p in problems[:20]:
        print("FAIL: " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
