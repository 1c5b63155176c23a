"""A third-party CometD client (aiocometd, from PyPI) against sfk-sim.

Run by tests/it/it_sim_cometd_aiocometd.sh, which starts the emulator and
exports SF_SIM_URL (host "localhost": aiohttp keeps no cookies for IP hosts),
SF_CA_FILE, SF_API_VERSION and SIM_TOKEN. Checks that an unmodified client
library can: handshake, subscribe with the replay extension (-2, then a stored
replay id), receive CDC events created through the org, and recover from
403::Unknown client by re-handshaking and resubscribing from where it was.
"""
import asyncio
import json
import os
import ssl
import urllib.request

import pytest
from aiocometd_noloop import Client, ConnectionType, Extension

URL = os.environ.get("SF_SIM_URL")
CA = os.environ.get("SF_CA_FILE")
TOKEN = os.environ.get("SIM_TOKEN")
VERSION = os.environ.get("SF_API_VERSION", "61.0")
CHANNEL = "/data/LeadChangeEvent"


def require_env():
    missing = [k for k in ("SF_SIM_URL", "SF_CA_FILE", "SIM_TOKEN") if not os.environ.get(k)]
    if missing:
        pytest.fail("environment not set (run tests/it/it_sim_cometd_aiocometd.sh): "
                    + ", ".join(missing))


class Replay(Extension):
    """Salesforce's replay extension, as EMP-Connector does it: remember the
    last replay id per channel, send the whole map on every subscribe."""

    def __init__(self, start):
        self.map = dict(start)
        self.handshakes = 0
        self.errors = []

    async def outgoing(self, payload, headers):
        headers["Authorization"] = "Bearer " + TOKEN
        for m in payload:
            if m.get("channel") == "/meta/subscribe":
                m.setdefault("ext", {})["replay"] = dict(self.map)

    async def incoming(self, payload, headers=None):
        for m in payload:
            if m.get("channel") == "/meta/handshake" and m.get("successful"):
                self.handshakes += 1
            if m.get("error"):
                self.errors.append(m["error"])
            rid = m.get("data", {}).get("event", {}).get("replayId")
            if rid is not None and m.get("channel") in self.map:
                self.map[m["channel"]] = rid


def sim(method, path, body=None):
    ctx = ssl.create_default_context(cafile=CA)
    req = urllib.request.Request(URL + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        data = r.read()
    return json.loads(data) if data else None


def new_lead(last):
    return sim("POST", "/sim/records/Lead", {"LastName": last, "Company": "Aio " + last})["id"]


async def until_lead(client, lead_id, timeout=20):
    """Messages received up to and including the event for lead_id."""
    seen = []

    async def loop():
        async for m in client:
            seen.append(m)
            ids = m.get("data", {}).get("payload", {}).get("ChangeEventHeader", {}).get(
                "recordIds", [])
            if lead_id in ids:
                return

    await asyncio.wait_for(loop(), timeout)
    return seen


def client_for(replay):
    ctx = ssl.create_default_context(cafile=CA)
    return Client(f"{URL}/cometd/{VERSION}", ConnectionType.LONG_POLLING, ssl=ctx,
                  extensions=[replay])


def test_replay_and_resume():
    require_env()
    first = new_lead("AioFirst")
    replay = Replay({CHANNEL: -2})

    async def run():
        async with client_for(replay) as c:
            await c.subscribe(CHANNEL)
            seen = await until_lead(c, first)
        ev = seen[-1]
        assert ev["channel"] == CHANNEL
        hdr = ev["data"]["payload"]["ChangeEventHeader"]
        assert hdr["changeType"] == "CREATE" and hdr["entityName"] == "Lead"
        assert ev["data"]["payload"]["Name"]["LastName"] == "AioFirst"
        stored = replay.map[CHANNEL]
        assert stored == ev["data"]["event"]["replayId"]

        # Resume from the stored id with a fresh client: the next event is
        # the new lead, never the one already seen.
        second = new_lead("AioSecond")
        again = Replay({CHANNEL: stored})
        async with client_for(again) as c2:
            await c2.subscribe(CHANNEL)
            seen2 = await until_lead(c2, second)
        ids = [m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0]
               for m in seen2 if "data" in m]
        assert first not in ids and ids[-1] == second

    asyncio.run(run())


def test_recovers_from_unknown_client():
    require_env()
    replay = Replay({CHANNEL: -1})

    async def run():
        async with client_for(replay) as c:
            await c.subscribe(CHANNEL)
            a = new_lead("AioBefore")
            await until_lead(c, a)
            # The server forgets every client: the next connect gets
            # 403::Unknown client + advice handshake; the library must
            # handshake again and resubscribe (replay map: after a).
            sim("POST", "/sim/faults", {"forget_cometd_clients": True})
            b = new_lead("AioAfter")
            seen = await until_lead(c, b, timeout=30)
            names = [m["data"]["payload"].get("Name", {}).get("LastName")
                     for m in seen if "data" in m]
            assert names[-1] == "AioAfter"
            assert "AioBefore" not in names
            assert "403::Unknown client" in replay.errors
            assert replay.handshakes == 2

    asyncio.run(run())
