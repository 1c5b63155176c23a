#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of Elasticsearch for the loader tests.

  loader_es_proxy.py --upstream http://127.0.0.1:9200 --port-file F --stats F [--every K]

Passes every request through, except POST /_bulk calls:
  call % K == 1: answered 429 (es_rejected_execution_exception), not forwarded;
  call % K == 2: the first 3 documents are NOT forwarded and come back as
                 item-level 429s inside an otherwise real 200 answer
                 ("errors": true), so only a client that retries exactly the
                 failed items ends up with every document.
The listening port goes to --port-file; counters (whole_429, item_429,
bulk_calls) are rewritten to --stats as JSON after every _bulk call."""
import argparse
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATS = {"bulk_calls": 0, "whole_429": 0, "item_429": 0}
LOCK = threading.Lock()
ARGS = None


def rejected_item(action):
    op = next(iter(action))
    meta = action[op]
    return {op: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 429,
                 "error": {"type": "es_rejected_execution_exception",
                           "reason": "injected by the test proxy"}}}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, body):
        req = urllib.request.Request(ARGS.upstream + self.path, data=body, method=self.command)
        for h in ("Content-Type",):
            if self.headers.get(h):
                req.add_header(h, self.headers[h])
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "application/json")

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if self.command != "POST" or not self.path.startswith("/_bulk"):
            self.reply(*self.forward(body))
            return
        with LOCK:
            STATS["bulk_calls"] += 1
            call = STATS["bulk_calls"]
        mode = call % ARGS.every
        lines = body.decode().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        pairs = [(json.loads(lines[i]), lines[i + 1]) for i in range(0, len(lines), 2)]
        if mode == 1:
            with LOCK:
                STATS["whole_429"] += 1
            self.dump()
            self.reply(429, json.dumps({"error": {"type": "es_rejected_execution_exception",
                                                  "reason": "injected"}, "status": 429}).encode())
            return
        drop = min(3, len(pairs) - 1) if mode == 2 else 0
        rest = pairs[drop:]
        fwd = "".join(json.dumps(a) + "\n" + d + "\n" for a, d in rest).encode()
        status, resp, ctype = self.forward(fwd)
        if drop == 0 or status != 200:
            self.reply(status, resp, ctype)
            return
        r = json.loads(resp)
        r["items"] = [rejected_item(a) for a, _ in pairs[:drop]] + r["items"]
        r["errors"] = True
        with LOCK:
            STATS["item_429"] += drop
        self.dump()
        self.reply(200, json.dumps(r).encode())

    def dump(self):
        with LOCK:
            text = json.dumps(STATS)
        with open(ARGS.stats + ".tmp", "w") as f:
            f.write(text)
        import os
        os.replace(ARGS.stats + ".tmp", ARGS.stats)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--every", type=int, default=4)
    ARGS = ap.parse_args()
    ARGS.upstream = ARGS.upstream.rstrip("/")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
