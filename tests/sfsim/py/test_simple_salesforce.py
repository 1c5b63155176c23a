"""Fidelity test: a real third-party Salesforce client (simple-salesforce)
and a real JWT library (PyJWT) against sfk-sim, plus contract checks against
published Salesforce samples (samples/). Needs the SF_* variables printed by
tests/stack/up (or tests/stack/lib/sim.sh) and REQUESTS_CA_BUNDLE=$SF_CA_FILE.
"""
import json
import os
import pathlib
import re
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

SAMPLES = pathlib.Path(__file__).parent / "samples"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REQUIRED = ["SF_SIM_URL", "SF_LOGIN_URL", "SF_TOKEN_URL", "SF_CLIENT_ID", "SF_USERNAME",
            "SF_PRIVATE_KEY_PATH", "SF_API_VERSION", "SF_CA_FILE"]


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: start the stack (eval \"$(tests/stack/up sim)\")")
    return value


@pytest.fixture(scope="session", autouse=True)
def check_env():
    for name in REQUIRED:
        env(name)
    # Never verify=False: the sim's CA must be trusted explicitly.
    assert os.environ.get("REQUESTS_CA_BUNDLE") == env("SF_CA_FILE"), \
        "REQUESTS_CA_BUNDLE must be $SF_CA_FILE"


def private_key():
    return pathlib.Path(env("SF_PRIVATE_KEY_PATH")).read_bytes()


def assertion(**overrides):
    claims = {"iss": env("SF_CLIENT_ID"), "sub": env("SF_USERNAME"),
              "aud": env("SF_LOGIN_URL"), "exp": int(time.time()) + 120}
    key = overrides.pop("key", None) or private_key()
    for k, v in overrides.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    return jwt.encode(claims, key, algorithm="RS256")


def token_request(assertion_value, grant=GRANT):
    return requests.post(env("SF_TOKEN_URL") + "/services/oauth2/token",
                         data={"grant_type": grant, "assertion": assertion_value},
                         timeout=10)


def same_shape(actual, sample):
    """Same keys (recursively) and JSON types as the published sample."""
    if isinstance(sample, dict):
        assert isinstance(actual, dict), f"{actual!r} is not an object like {sample!r}"
        assert set(actual) == set(sample), f"keys {sorted(actual)} != {sorted(sample)}"
        for k in sample:
            same_shape(actual[k], sample[k])
    elif isinstance(sample, list):
        assert isinstance(actual, list)
        if len(sample) == len(actual):
            for item, expected in zip(actual, sample):
                same_shape(item, expected)
        elif sample:
            for item in actual:
                same_shape(item, sample[0])
    elif isinstance(sample, bool):
        assert isinstance(actual, bool)
    elif isinstance(sample, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool)
    else:
        assert isinstance(actual, type(sample)), f"{actual!r} vs {sample!r}"


def load(name):
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture(scope="session")
def token():
    r = token_request(assertion())
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="session")
def sf(token):
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                      version=env("SF_API_VERSION"))


@pytest.fixture
def tag():
    return "pytest-" + uuid.uuid4().hex[:12]


# ---- OAuth JWT bearer ----------------------------------------------------------------

def test_token_response_matches_published_sample(token):
    same_shape(token, load("jwt-token-response.help-doc.json"))
    assert token["token_type"] == "Bearer"
    assert token["instance_url"] == env("SF_SIM_URL")
    assert re.fullmatch(r"00D[0-9A-Za-z]{12}![0-9A-Za-z._]{40,}", token["access_token"])
    assert re.fullmatch(re.escape(env("SF_SIM_URL")) + r"/id/00D\w{15}/005\w{15}", token["id"])


def test_identity_url_names_the_user(token):
    r = requests.get(token["id"], headers={"Authorization": "Bearer " + token["access_token"]},
                     timeout=10)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["username"] == env("SF_USERNAME")
    assert token["id"].endswith("/" + me["user_id"])
    assert me["active"] is True
    r = requests.get(token["id"], timeout=10)
    assert r.status_code == 403


def test_exp_as_string_and_prn_accepted():
    r = token_request(assertion(exp=str(int(time.time()) + 60)))
    assert r.status_code == 200, r.text
    # prn wins over sub when both are present.
    r = token_request(assertion(prn=env("SF_USERNAME"), sub="nobody@example.com"))
    assert r.status_code == 200, r.text
    r = token_request(assertion(prn="nobody@example.com", sub=env("SF_USERNAME")))
    assert r.status_code == 400
    assert r.json()["error_description"] == "user hasn't approved this consumer"


def test_bad_audience_is_the_documented_error():
    r = token_request(assertion(aud="https://example.my.salesforce.com"))
    assert r.status_code == 400
    assert r.headers["Cache-Control"] == "no-store"
    assert r.json() == load("jwt-error-audience-validation-failed.help-doc.json")


@pytest.mark.parametrize("overrides,error,description", [
    ({"sub": "nobody@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ({"exp": int(time.time()) - 30}, "invalid_grant", "expired authorization code"),
    ({"exp": int(time.time() * 1000)}, "invalid_grant", "invalid assertion"),
    ({"iss": "not-our-app"}, "invalid_client_id", "client identifier invalid"),
])
def test_jwt_failures(overrides, error, description):
    r = token_request(assertion(**overrides))
    assert r.status_code == 400
    assert r.json() == {"error": error, "error_description": description}


def test_signature_from_another_key_is_rejected():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    r = token_request(assertion(key=pem))
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_other_grant_types_are_unsupported():
    r = token_request(assertion(), grant="password")
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"


def test_unknown_session_is_invalid_session_id(token):
    sf = Salesforce(instance_url=token["instance_url"], session_id="00Dbogus!AQxyz",
                    version=env("SF_API_VERSION"))
    with pytest.raises(SalesforceExpiredSession) as e:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert e.value.content == [{"message": "Session expired or invalid",
                                "errorCode": "INVALID_SESSION_ID"}]


# ---- REST --------------------------------------------------------------------------------

def create_leads(sf, tag, n):
    ids = []
    for start in range(0, n, 200):
        records = [{"attributes": {"type": "Lead"}, "LastName": f"Lead {i}",
                    "Company": tag, "NumberOfEmployees": i}
                   for i in range(start, min(n, start + 200))]
        res = sf.restful("composite/sobjects", method="POST",
                         json={"allOrNone": True, "records": records})
        assert len(res) == len(records)
        assert all(r["success"] and r["errors"] == [] for r in res)
        ids += [r["id"] for r in res]
    return ids


def test_query_all_paginates_over_2000_records(sf, tag):
    ids = create_leads(sf, tag, 2105)
    rows = sf.query_all(f"SELECT Id, Company FROM Lead WHERE Company = '{tag}'")
    assert rows["totalSize"] == 2105
    got = [r["Id"] for r in rows["records"]]
    assert sorted(got) == sorted(ids)
    first = sf.query(f"SELECT Id FROM Lead WHERE Company = '{tag}'")
    assert first["done"] is False and len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith(f"/services/data/v{env('SF_API_VERSION')}/query/01g")


def test_queues_are_groups_of_type_queue(sf):
    # Group is a reserved word in SOQL (GROUP BY) and still the object that
    # holds queues: the router looks queues up this way.
    rows = sf.query("SELECT Id, Name, DeveloperName FROM Group WHERE Type = 'Queue' "
                    "ORDER BY DeveloperName")
    assert rows["totalSize"] == 4 and rows["done"] is True
    assert [r["DeveloperName"] for r in rows["records"]] == [
        "AMER_Inbound", "APAC_Inbound", "EMEA_Inbound", "Unassigned_Leads"]
    assert all(r["Id"].startswith("00G") and len(r["Id"]) == 18 for r in rows["records"])
    assert rows["records"][0]["attributes"]["type"] == "Group"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELECT Type FROM Group GROUP BY Type")
    assert e.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert "unexpected token: 'GROUP'" in e.value.content[0]["message"]


def test_batch_size_header_pages_of_200(sf, tag):
    create_leads(sf, tag, 450)
    page = sf.query(f"SELECT Id FROM Lead WHERE Company = '{tag}'",
                    headers={"Sforce-Query-Options": "batchSize=200"})
    seen = []
    while True:
        assert page["totalSize"] == 450
        seen += [r["Id"] for r in page["records"]]
        assert page["records"][0]["attributes"]["type"] == "Lead"
        if page["done"]:
            break
        assert len(page["records"]) == 200
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert len(seen) == len(set(seen)) == 450


def test_create_get_update_delete(sf, tag):
    res = sf.Lead.create({"LastName": "Lovelace", "FirstName": "Ada", "Company": tag,
                          "Email": "ada@example.com", "Country": "Germany"})
    assert res["success"] is True and res["errors"] == []
    lead_id = res["id"]
    assert lead_id.startswith("00Q") and len(lead_id) == 18
    rec = sf.Lead.get(lead_id)
    assert rec["attributes"] == {"type": "Lead",
                                 "url": f"/services/data/v{env('SF_API_VERSION')}/sobjects/Lead/{lead_id}"}
    assert rec["Name"] == "Ada Lovelace"
    assert rec["Status"] == "Open - Not Contacted"
    assert rec["IsConverted"] is False
    assert rec["OwnerId"].startswith("005")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000", rec["CreatedDate"])
    assert rec["Owner_Assigned_At__c"] is None

    status = sf.Lead.update(lead_id, {"Routing_Reason__c": "segment=smb region=emea",
                                      "Owner_Assigned_At__c": "2026-11-21T10:15:00Z",
                                      "Assignment_Latency_Minutes__c": 1.5})
    assert status == 204
    rec = sf.Lead.get(lead_id)
    assert rec["Routing_Reason__c"] == "segment=smb region=emea"
    assert rec["Owner_Assigned_At__c"] == "2026-11-21T10:15:00.000+0000"
    assert rec["Assignment_Latency_Minutes__c"] == 1.5
    assert rec["LastModifiedDate"] >= rec["CreatedDate"]

    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get(lead_id)
    with pytest.raises(SalesforceResourceNotFound) as e:
        sf.Lead.update(lead_id, {"Company": "x"})
    assert e.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_write_errors(sf, tag):
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Lead.create({"LastName": "NoCompany"})
    assert e.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Lead.create({"LastName": "x", "Company": tag, "NoSuchField__c": 1})
    assert e.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Lead.create({"LastName": "x", "Company": "c" * 256})
    assert e.value.content[0]["errorCode"] == "STRING_TOO_LONG"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Lead.create({"LastName": "x", "Company": tag, "NumberOfEmployees": "many"})
    assert e.value.content[0]["errorCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Lead.create({"LastName": "x", "Company": tag, "Email": "not-an-email"})
    assert e.value.content[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    r = sf.session.post(sf.base_url + "sobjects/Lead/", data="{not json",
                        headers=sf.headers)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_malformed_id_matches_published_sample(sf):
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.Lead.update("00Q900K0001pPuOAAU", {"Company": "x"})
    body = e.value.content
    same_shape(body, load("error-malformed-id.doc.json"))
    assert body[0]["errorCode"] == "MALFORMED_ID" and body[0]["fields"] == ["Id"]


def test_query_errors(sf):
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELEKT Id FROM Lead")
    assert e.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELECT NoSuchField FROM Lead")
    assert e.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "NoSuchField" in e.value.content[0]["message"]


def test_describe(sf):
    d = sf.Lead.describe()
    assert d["name"] == "Lead" and d["keyPrefix"] == "00Q"
    fields = {f["name"]: f for f in d["fields"]}
    for name, ftype in [("Owner_Assigned_At__c", "datetime"),
                        ("Assignment_Latency_Minutes__c", "double"),
                        ("Routing_Reason__c", "string"), ("First_Response_At__c", "datetime"),
                        ("Time_to_First_Response__c", "double"),
                        ("Template_Applied__c", "boolean"), ("SLA_Breached__c", "boolean"),
                        ("NumberOfEmployees", "int"), ("Company", "string")]:
        assert fields[name]["type"] == ftype, name
    assert fields["Owner_Assigned_At__c"]["custom"] is True
    assert fields["OwnerId"]["referenceTo"] == ["Group", "User"]
    assert fields["OwnerId"]["relationshipName"] == "Owner"
    assert fields["CreatedDate"]["updateable"] is False
    statuses = [p["value"] for p in fields["Status"]["picklistValues"]]
    assert "Open - Not Contacted" in statuses
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Lead", "Task", "EmailMessage", "EmailMessageRelation", "User", "Group"} <= names
    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert task["TaskSubtype"]["updateable"] is False
    assert task["IsClosed"]["createable"] is False


def test_collection_update_partial_failure_matches_sample(sf, tag):
    lead = sf.Lead.create({"LastName": "Coll", "Company": tag})["id"]
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": "Lead"}, "id": lead, "Routing_Reason__c": "rr"},
        {"attributes": {"type": "Lead"}, "id": "001xx000003DGb2999", "Company": "x"}]}
    res = sf.restful("composite/sobjects", method="PATCH", json=body)
    same_shape(res, load("composite-sobjects-update-response-partial-failure.doc.json"))
    assert res[0] == {"id": lead, "success": True, "errors": []}
    assert res[1]["success"] is False and res[1]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert sf.Lead.get(lead)["Routing_Reason__c"] == "rr"

    body["allOrNone"] = True
    body["records"][0]["Routing_Reason__c"] = "should not stick"
    res = sf.restful("composite/sobjects", method="PATCH", json=body)
    assert res[0]["success"] is False
    assert res[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.Lead.get(lead)["Routing_Reason__c"] == "rr"


def test_collection_over_200_records_refused(sf, tag):
    records = [{"attributes": {"type": "Lead"}, "LastName": "x", "Company": tag}] * 201
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.restful("composite/sobjects", method="POST",
                   json={"allOrNone": False, "records": records})
    assert e.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sf.query(f"SELECT COUNT() FROM Lead WHERE Company = '{tag}'")["totalSize"] == 0


def test_limit_info_and_limits(sf):
    sf.query("SELECT Id FROM User LIMIT 1")
    usage = sf.api_usage["api-usage"]
    assert 0 < usage.used <= usage.total
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == usage.total
    assert limits["DailyApiRequests"]["Remaining"] <= usage.total - usage.used


def test_email_simple_records_the_send_like_enhanced_email(sf, tag):
    email = f"{tag}@example.com"
    lead = sf.Lead.create({"LastName": "Mail", "Company": tag, "Email": email})["id"]
    res = sf.restful("actions/standard/emailSimple", method="POST",
                     json={"inputs": [{"emailAddresses": email, "emailSubject": "Hello",
                                       "emailBody": "Thanks for your interest"}]})
    assert res == [{"actionName": "emailSimple", "errors": None, "isSuccess": True,
                    "outputValues": None}]
    tasks = sf.query(f"SELECT Id, TaskSubtype, IsClosed, Status FROM Task WHERE WhoId = '{lead}'")
    assert tasks["totalSize"] == 1
    task = tasks["records"][0]
    assert task["TaskSubtype"] == "Email" and task["IsClosed"] is True
    ems = sf.query(f"SELECT Id, Status, Incoming FROM EmailMessage WHERE ActivityId = '{task['Id']}'")
    assert ems["totalSize"] == 1
    em = ems["records"][0]
    assert em["Status"] == "3" and em["Incoming"] is False
    rels = sf.query("SELECT RelationId, RelationType, RelationObjectType FROM "
                    f"EmailMessageRelation WHERE EmailMessageId = '{em['Id']}' "
                    "AND RelationType = 'ToAddress'")
    assert [(r["RelationId"], r["RelationObjectType"]) for r in rels["records"]] == [(lead, "Lead")]


def test_unknown_resource_is_not_found(sf):
    r = sf.session.get(sf.base_url + "no/such/thing", headers=sf.headers)
    assert r.status_code == 404
    assert r.json() == [{"errorCode": "NOT_FOUND",
                         "message": "The requested resource does not exist"}]


def test_bulk2_ingest_insert_and_results(sf, tag):
    records = [{"LastName": f"Bulk {i}", "Company": tag, "NumberOfEmployees": str(i)}
               for i in range(450)]
    records.append({"LastName": "Broken", "Company": "", "NumberOfEmployees": "1"})
    res = sf.bulk2.Lead.insert(records=records, wait=1)
    assert len(res) == 1
    job = res[0]
    assert job["numberRecordsProcessed"] == 451
    assert job["numberRecordsFailed"] == 1
    failed = sf.bulk2.Lead.get_failed_records(job["job_id"])
    lines = failed.strip().splitlines()
    assert lines[0].startswith('"sf__Id","sf__Error"')
    assert len(lines) == 2 and "REQUIRED_FIELD_MISSING" in lines[1]
    ok = sf.bulk2.Lead.get_successful_records(job["job_id"]).strip().splitlines()
    assert ok[0].startswith('"sf__Id","sf__Created"') and len(ok) == 451
    assert sf.query(f"SELECT COUNT() FROM Lead WHERE Company = '{tag}'")["totalSize"] == 450
    info = sf.restful(f"jobs/ingest/{job['job_id']}")
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Ingest"
    assert info["object"] == "Lead" and info["operation"] == "insert"


def test_collection_delete_and_query_all_sees_deleted(sf, tag):
    ids = create_leads(sf, tag, 3)
    res = sf.restful("composite/sobjects", method="DELETE",
                     params={"ids": ",".join(ids[:2]), "allOrNone": "false"})
    assert res == [{"id": i, "success": True, "errors": []} for i in ids[:2]]
    live = sf.query(f"SELECT Id FROM Lead WHERE Company = '{tag}'")
    assert [r["Id"] for r in live["records"]] == ids[2:]
    every = sf.query_all(f"SELECT Id, IsDeleted FROM Lead WHERE Company = '{tag}'",
                         include_deleted=True)
    assert {r["Id"]: r["IsDeleted"] for r in every["records"]} == \
        {ids[0]: True, ids[1]: True, ids[2]: False}
    again = sf.restful("composite/sobjects", method="DELETE", params={"ids": ids[0]})
    assert again[0]["success"] is False
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


def test_collection_retrieve_in_request_order(sf, tag):
    ids = create_leads(sf, tag, 2)
    missing = "00Q000000000000AAA"
    res = sf.restful("composite/sobjects/Lead",
                     params={"ids": f"{ids[1]},{missing},{ids[0]}",
                             "fields": "Company,LastName"})
    assert res[1] is None
    assert [r["Id"] for r in (res[0], res[2])] == [ids[1], ids[0]]
    assert res[0]["Company"] == tag and res[0]["attributes"]["type"] == "Lead"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.restful("composite/sobjects/Lead", params={"ids": ids[0], "fields": "Nope"})
    assert e.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_point_queries_agree_with_full_scans(sf, tag):
    """The sim answers `Field = 'x'` / `Id IN (...)` conjuncts from a narrowed
    candidate set; wrapping the condition in parentheses forces a full scan.
    Both must return the same rows."""
    ids = create_leads(sf, tag, 120)
    for i, lead in enumerate(ids[:5]):
        sf.Lead.update(lead, {"Email": f"Point{i}@{tag}.test"})
    sf.Lead.delete(ids[6])
    task = sf.Task.create({"WhoId": ids[1], "Subject": "Call"})["id"]
    conds = [
        f"Id = '{ids[3]}'",
        f"Id = '{ids[3][:15]}'",
        f"Id IN ('{ids[0]}', '{ids[0]}', '{ids[2]}', '{ids[6]}')",
        f"Email = 'point1@{tag.upper()}.TEST'",
        f"Company = '{tag}' AND NumberOfEmployees > 100",
        f"Company = '{tag}' AND Id IN ('{ids[7]}', '{ids[8][:15]}')",
        f"NumberOfEmployees < 3 AND Company = '{tag}'",
        f"Email IN ('point0@{tag}.test', 'nobody@x.test')",
    ]
    for cond in conds:
        for query_all in (False, True):
            fast = sf.query_all(f"SELECT Id FROM Lead WHERE {cond}", include_deleted=query_all)
            full = sf.query_all(f"SELECT Id FROM Lead WHERE ({cond})",
                                include_deleted=query_all)
            assert sorted(r["Id"] for r in fast["records"]) == \
                sorted(r["Id"] for r in full["records"]), cond
            assert fast["totalSize"] == full["totalSize"], cond
    assert sf.query(f"SELECT COUNT() FROM Lead WHERE Company = '{tag}'")["totalSize"] == 119
    rows = sf.query(f"SELECT Id FROM Task WHERE WhoId = '{ids[1][:15]}'")["records"]
    assert [r["Id"] for r in rows] == [task]
