"""sfk-sim's control API and fault injection, seen through simple-salesforce.
Changes global sim state (faults, clock), so it runs against a private sim
started by tests/it/it_sim_faults.sh, never against the shared stack sim.
"""
import os
import time
import uuid

import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set (run through tests/it/it_sim_faults.sh)")
    return value


def new_token():
    claims = {"iss": env("SF_CLIENT_ID"), "sub": env("SF_USERNAME"),
              "aud": env("SF_LOGIN_URL"), "exp": int(time.time()) + 120}
    key = open(env("SF_PRIVATE_KEY_PATH"), "rb").read()
    r = requests.post(env("SF_TOKEN_URL") + "/services/oauth2/token",
                      data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                            "assertion": jwt.encode(claims, key, algorithm="RS256")},
                      timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def client():
    t = new_token()
    return Salesforce(instance_url=t["instance_url"], session_id=t["access_token"],
                      version=env("SF_API_VERSION"))


def control(method, path, **kw):
    r = requests.request(method, env("SF_SIM_URL") + path, timeout=30, **kw)
    return r


@pytest.fixture(autouse=True)
def no_faults():
    assert control("POST", "/sim/faults", json={}).status_code == 200
    yield
    assert control("POST", "/sim/faults", json={}).status_code == 200


def stats():
    r = control("GET", "/sim/stats")
    assert r.status_code == 200
    return r.json()


def test_ui_records_and_org_dump():
    tag = uuid.uuid4().hex[:10]
    r = control("POST", "/sim/records/Lead", json={"LastName": "Ui", "Company": tag})
    assert r.status_code == 201
    lead = r.json()["id"]
    assert control("PATCH", f"/sim/records/Lead/{lead}",
                   json={"Country": "Japan"}).status_code == 204
    rec = control("GET", f"/sim/records/Lead/{lead}").json()
    assert rec["Country"] == "Japan" and rec["Company"] == tag
    dump = control("GET", "/sim/org").json()
    assert any(l["Id"] == lead for l in dump["Lead"])
    assert len([g for g in dump["Group"] if g["Type"] == "Queue"]) >= 1
    assert control("DELETE", f"/sim/records/Lead/{lead}").status_code == 204
    r = control("GET", f"/sim/records/Lead/{lead}")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    # UI writes are not API writes: nothing counted for this record.
    assert lead not in stats()["writes"]
    r = control("POST", "/sim/records/Lead", json={"LastName": "NoCompany"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_stats_count_api_writes_per_record():
    sf = client()
    lead = sf.Lead.create({"LastName": "Dup", "Company": "stats"})["id"]
    sf.Lead.update(lead, {"Routing_Reason__c": "a"})
    sf.Lead.update(lead, {"Routing_Reason__c": "a"})
    s = stats()
    assert s["writes"][lead] == 3
    assert s["records_written_more_than_once"] >= 1
    assert s["api"]["PATCH /services/data/vXX.X/sobjects/Lead/{id}"] >= 2
    assert s["tokens"]["ok"] >= 1


def test_server_errors_on_matching_paths():
    sf = client()
    control("POST", "/sim/faults", json={"error_rate": 1.0, "error_paths": "/query"})
    with pytest.raises(SalesforceGeneralError) as e:
        sf.query("SELECT Id FROM User LIMIT 1")
    assert e.value.status == 503
    assert e.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    # Other paths are untouched.
    assert sf.User.describe()["name"] == "User"


def test_error_rules_per_path_pattern():
    sf = client()
    r = control("POST", "/sim/faults", json={"errors": [
        {"path": "/limits", "rate": 1.0, "status": 500},
        {"path": "/query", "rate": 1.0}]})
    assert r.status_code == 200 and len(r.json()["errors"]) == 2
    with pytest.raises(SalesforceGeneralError) as e:
        sf.limits()
    assert e.value.status == 500
    assert e.value.content[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    with pytest.raises(SalesforceGeneralError) as e:
        sf.query("SELECT Id FROM User LIMIT 1")
    assert e.value.status == 503
    assert sf.User.describe()["name"] == "User"
    r = control("POST", "/sim/faults", json={"errors": [{"path": "/x", "rate": 2}]})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FAULT"


def test_request_limit_exceeded():
    sf = client()
    control("POST", "/sim/faults", json={"request_limit_exceeded": True})
    with pytest.raises(SalesforceRefusedRequest) as e:
        sf.query("SELECT Id FROM User LIMIT 1")
    assert e.value.content == [{"message": "TotalRequests Limit exceeded.",
                                "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def test_unable_to_lock_row_per_record():
    sf = client()
    lead = sf.Lead.create({"LastName": "Lock", "Company": "lock"})["id"]
    control("POST", "/sim/faults", json={"lock_rate": 1.0})
    res = sf.restful("composite/sobjects", method="PATCH", json={
        "allOrNone": False,
        "records": [{"attributes": {"type": "Lead"}, "id": lead, "Company": "x"}]})
    assert res[0]["success"] is False
    assert res[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Lead.update(lead, {"Company": "y"})
    assert e.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    control("POST", "/sim/faults", json={})
    assert sf.Lead.get(lead)["Company"] == "lock"


def test_rates_are_reproducible_with_a_seed():
    sf = client()

    def pattern():
        control("POST", "/sim/faults", json={"error_rate": 0.5, "error_paths": "/limits",
                                             "seed": 42})
        out = []
        for _ in range(20):
            try:
                sf.limits()
                out.append(True)
            except SalesforceGeneralError:
                out.append(False)
        return out

    first = pattern()
    assert True in first and False in first
    assert pattern() == first


def test_latency_and_dropped_connections():
    sf = client()
    control("POST", "/sim/faults", json={"latency_ms": 300})
    start = time.monotonic()
    sf.limits()
    assert time.monotonic() - start >= 0.3
    control("POST", "/sim/faults", json={"drop_rate": 1.0, "drop_paths": "/limits"})
    with pytest.raises((requests.exceptions.ConnectionError,
                        requests.exceptions.ChunkedEncodingError)):
        sf.limits()


def test_dropped_answer_after_the_write_happened():
    """A cut connection does not undo the write: the client must not assume
    failure means nothing happened (idempotency matters)."""
    sf = client()
    lead = sf.Lead.create({"LastName": "Cut", "Company": "cut"})["id"]
    control("POST", "/sim/faults", json={"drop_rate": 1.0, "drop_paths": "/composite"})
    with pytest.raises((requests.exceptions.ConnectionError,
                        requests.exceptions.ChunkedEncodingError)):
        sf.restful("composite/sobjects", method="PATCH", json={
            "allOrNone": False,
            "records": [{"attributes": {"type": "Lead"}, "id": lead, "Company": "after"}]})
    control("POST", "/sim/faults", json={})
    assert sf.Lead.get(lead)["Company"] == "after"


def test_body_over_the_cap_is_413():
    r = control("POST", "/sim/records/Lead", data=b"x" * (2 * 1024 * 1024),
                headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_expire_sessions_now():
    sf = client()
    sf.limits()
    control("POST", "/sim/faults", json={"expire_sessions": True})
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()
    client().limits()


def test_clock_advance_expires_tokens_and_dates_records():
    sf = client()
    before = control("GET", "/sim/clock").json()["now_ms"]
    r = control("POST", "/sim/clock", json={"advance_ms": 3 * 3600 * 1000})
    assert r.status_code == 200
    assert r.json()["now_ms"] >= before + 3 * 3600 * 1000
    # Token lifetime (--token-ttl, default 2 h) is measured on the sim clock.
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()
    # JWT exp is checked against the wall clock (clients mint it from theirs),
    # so a fresh token works after the jump and lives on sim time.
    sf = client()
    sf.limits()
    assert sf.api_usage["api-usage"].used > 10
    # DailyApiRequests is a 24 h window: a day later the count starts over.
    control("POST", "/sim/clock", json={"advance_ms": 25 * 3600 * 1000})
    sf = client()
    sf.limits()
    assert sf.api_usage["api-usage"].used == 1
    r = control("POST", "/sim/clock", json={"advance_ms": -1})
    assert r.status_code == 400
