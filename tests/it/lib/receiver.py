#!/usr/bin/env python3
"""A test HTTP receiver for notify.webhook (stdlib only).

    receiver.py [--secret NAME=SECRET]... [--kind NAME=webhook|slack|discord]...

Listens on 127.0.0.1 (free port, printed as "PORT <n>" on stdout) and accepts
POST /hook/<name>: the body must be JSON; webhook targets must carry a valid
X-Sfk-Signature (HMAC-SHA256 over X-Sfk-Timestamp "." body with the target's
secret, timestamp within 5 minutes), slack bodies {"text", "blocks": [...]}, discord bodies {"content",
"embeds": [...]}. Every request is counted by X-Sfk-Delivery.

Faults per target, set with POST /control/<name> {JSON}:
    {"fail": N}                  next N requests answer 500
    {"always": 500}              every request answers this status
    {"r429": N, "retry_after": S} next N requests answer 429 with Retry-After: S
    {"delay_ms": MS}             answer every request after MS
    {} resets.
GET /stats: {name: {"requests", "ok", "bad_signature", "bad_format",
"deliveries": {id: answered 2xx count}, "attempts": {id: [arrival time, ...]},
"answered": {id: time of the 2xx answer}, "status": [...]}}.
"""
import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY_MAX = 1 << 20  # a larger request is refused (413)
SKEW_MAX_S = 300  # X-Sfk-Timestamp older or newer than this: refused
LOCK = threading.Lock()
SECRETS = {}
KINDS = {}
FAULTS = {}
STATS = {}


def stats(name):
    return STATS.setdefault(name, {"requests": 0, "ok": 0, "bad_signature": 0, "bad_format": 0,
                                   "deliveries": {}, "attempts": {}, "answered": {},
                                   "status": []})


def format_ok(kind, doc):
    if not isinstance(doc, dict):
        return False
    if kind == "slack":
        return isinstance(doc.get("text"), str) and isinstance(doc.get("blocks"), list) and \
            all(isinstance(b, dict) and "type" in b for b in doc["blocks"]) and \
            len(doc["blocks"]) > 0 and len(doc["blocks"][0]["text"]["text"]) <= 150
    if kind == "discord":
        emb = doc.get("embeds")
        return isinstance(doc.get("content"), str) and 0 < len(doc["content"]) <= 2000 and \
            isinstance(emb, list) and 0 < len(emb) <= 10 and \
            all(isinstance(e, dict) and len(e.get("title", "")) <= 256 for e in emb)
    return isinstance(doc.get("delivery_id"), str) and isinstance(doc.get("event_id"), str)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, code, body=b"{}", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_MAX:
            return None
        return self.rfile.read(n)

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                body = json.dumps(STATS).encode()
            return self.reply(200, body)
        return self.reply(404)

    def do_POST(self):
        body = self.read_body()
        if body is None:
            return self.reply(413)
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] == "control":
            with LOCK:
                FAULTS[parts[1]] = json.loads(body or b"{}")
            return self.reply(200)
        if len(parts) != 2 or parts[0] != "hook":
            return self.reply(404)
        name = parts[1]
        did = self.headers.get("X-Sfk-Delivery", "")
        with LOCK:
            st = stats(name)
            st["requests"] += 1
            st["attempts"].setdefault(did, []).append(time.time())
            f = FAULTS.setdefault(name, {})
            delay = f.get("delay_ms", 0)
            code, extra = 200, {}
            if f.get("always"):
                code = f["always"]
            elif f.get("fail", 0) > 0:
                f["fail"] -= 1
                code = 500
            elif f.get("r429", 0) > 0:
                f["r429"] -= 1
                code, extra = 429, {"Retry-After": str(f.get("retry_after", 1))}
        if delay:
            time.sleep(delay / 1000.0)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        kind = KINDS.get(name, "webhook")
        good_fmt = format_ok(kind, doc)
        good_sig = True
        if kind == "webhook":
            secret = SECRETS.get(name, "").encode()
            ts = self.headers.get("X-Sfk-Timestamp", "")
            want = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            good_sig = hmac.compare_digest(want, self.headers.get("X-Sfk-Signature", ""))
            try:  # a replayed old request is refused like a forged one
                good_sig = good_sig and abs(time.time() - int(ts)) <= SKEW_MAX_S
            except ValueError:
                good_sig = False
            if good_fmt and doc.get("delivery_id") != did:
                good_fmt = False
        with LOCK:
            st = stats(name)
            st["status"].append(code)
            if not good_sig:
                st["bad_signature"] += 1
            if not good_fmt:
                st["bad_format"] += 1
            if code == 200 and good_sig and good_fmt:
                st["ok"] += 1
                st["deliveries"][did] = st["deliveries"].get(did, 0) + 1
                st["answered"][did] = time.time()
        if code == 200 and not (good_sig and good_fmt):
            code = 401 if not good_sig else 400
        self.reply(code, b"{}", extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("--kind", action="append", default=[])
    a = ap.parse_args()
    for s in a.secret:
        k, v = s.split("=", 1)
        SECRETS[k] = v
    for s in a.kind:
        k, v = s.split("=", 1)
        KINDS[k] = v
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
