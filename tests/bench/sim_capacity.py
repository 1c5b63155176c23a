#!/usr/bin/env python3
"""sim_capacity.py - how many CDC events per second sfk-sim delivers over CometD.

A minimal Bayeux long-polling client (stdlib only: one keep-alive HTTPS
connection, the BAYEUX_BROWSER cookie kept by hand). Phases:
  replay  events already in the bus, drained from replay -2
  live    events created by the traffic generator while the client is connected
Prints one JSON line per phase: {"phase", "events", "seconds", "events_per_s"}.
Environment: SF_SIM_URL, SF_CA_FILE, SIM_TOKEN (an access token), SF_API_VERSION.
"""
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse


class Bayeux:
    def __init__(self, url, cafile, token, version):
        u = urllib.parse.urlparse(url)
        ctx = ssl.create_default_context(cafile=cafile) if u.scheme == "https" else None
        if ctx:
            self.conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=150)
        else:
            self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=150)
        self.path = "/cometd/" + version
        self.token = token
        self.cookie = None
        self.client_id = None

    def post(self, msgs):
        headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request("POST", self.path, body=json.dumps(msgs), headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        sc = r.getheader("Set-Cookie")
        if sc:
            self.cookie = sc.split(";", 1)[0]
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, body[:300]))
        return json.loads(body)

    def handshake(self):
        m = self.post([{"channel": "/meta/handshake", "version": "1.0",
                        "supportedConnectionTypes": ["long-polling"], "ext": {"replay": True}}])[0]
        if not m.get("successful"):
            raise RuntimeError("handshake failed: %s" % m)
        self.client_id = m["clientId"]

    def subscribe(self, channel, replay):
        m = self.post([{"channel": "/meta/subscribe", "clientId": self.client_id,
                        "subscription": channel, "ext": {"replay": {channel: replay}}}])[0]
        if not m.get("successful"):
            raise RuntimeError("subscribe failed: %s" % m)

    def connect(self):
        out = self.post([{"channel": "/meta/connect", "clientId": self.client_id,
                          "connectionType": "long-polling"}])
        meta = [m for m in out if m.get("channel") == "/meta/connect"]
        if not meta or not meta[0].get("successful"):
            raise RuntimeError("connect failed: %s" % meta)
        return [m for m in out if "data" in m]


def control(url, cafile, method, path, body=None):
    u = urllib.parse.urlparse(url)
    ctx = ssl.create_default_context(cafile=cafile) if u.scheme == "https" else None
    c = (http.client.HTTPSConnection(u.hostname, u.port, context=ctx) if ctx
         else http.client.HTTPConnection(u.hostname, u.port))
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return json.loads(data) if data else None


def drain(b, want, deadline_s):
    got, t0, last_id = 0, None, 0
    end = time.monotonic() + deadline_s
    while got < want and time.monotonic() < end:
        evs = b.connect()
        if evs and t0 is None:
            t0 = time.monotonic()
        for e in evs:
            rid = e["data"]["event"]["replayId"]
            if rid <= last_id:
                raise RuntimeError("replay ids not increasing: %d after %d" % (rid, last_id))
            last_id = rid
        got += len(evs)
    return got, (time.monotonic() - t0) if t0 else 0.0


def main():
    url, ca = os.environ["SF_SIM_URL"], os.environ.get("SF_CA_FILE")
    token, ver = os.environ["SIM_TOKEN"], os.environ.get("SF_API_VERSION", "61.0")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    # Leads only (no responses): one CDC event each.
    prof = {"leads": n, "rate": 100000, "seed": 11, "answer_ratio": 0}

    control(url, ca, "POST", "/sim/traffic", prof)
    tg = time.monotonic()
    end = time.monotonic() + 300
    while not control(url, ca, "GET", "/sim/traffic/status")["done"]:
        if time.monotonic() > end:
            raise SystemExit("traffic did not finish")
        time.sleep(0.05)
    tg = time.monotonic() - tg
    print(json.dumps({"phase": "generate", "events": n, "seconds": round(tg, 3),
                      "events_per_s": round(n / tg)}))
    b = Bayeux(url, ca, token, ver)
    b.handshake()
    b.subscribe("/data/ChangeEvents", -2)
    got, secs = drain(b, n, 300)
    print(json.dumps({"phase": "replay", "events": got, "seconds": round(secs, 3),
                      "events_per_s": round(got / secs) if secs else None}))

    b2 = Bayeux(url, ca, token, ver)
    b2.handshake()
    b2.subscribe("/data/LeadChangeEvent", -1)
    b2.connect()  # the first connect returns at once
    prof["seed"] = 12
    control(url, ca, "POST", "/sim/traffic", prof)
    got2, secs2 = drain(b2, n, 300)
    print(json.dumps({"phase": "live", "events": got2, "seconds": round(secs2, 3),
                      "events_per_s": round(got2 / secs2) if secs2 else None}))
    if got < n or got2 < n:
        raise SystemExit("lost events: replay %d live %d of %d" % (got, got2, n))


if __name__ == "__main__":
    main()
