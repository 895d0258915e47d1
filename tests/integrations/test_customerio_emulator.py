"""The Customer.io emulator behaves as ../shared/reference/customerio.md and Customer.io's Track API
OpenAPI document say (raw HTTP with ``requests``, no Flowsync client)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from emulators.customerio.control import EmulatorControl
from emulators.customerio.server import start_in_thread

US = ("us-site", "us-key")
EU = ("eu-site", "eu-key")
MAIL = ("mail-site", "mail-key")  # a workspace that identifies people by email


@pytest.fixture(scope="module")
def server():
    server = start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cio(server):
    control = EmulatorControl(server.url)
    control.reset()
    control.add_workspace(*US, region="us", environment_id=101, app_key="us-app")
    control.add_workspace(*EU, region="eu", environment_id=202, app_key="eu-app")
    control.add_workspace(*MAIL, region="us", environment_id=303, identify_by="email")
    control.url = server.url
    control.server = server
    return control


@pytest.fixture
def track(cio):
    def call(method, path, *, auth=US, region="us", json=None, data=None, timeout=10, **options):
        return requests.request(
            method, f"{cio.url}/{region}{path}", auth=auth, json=json, data=data, timeout=timeout, **options
        )

    return call


@pytest.fixture
def app(cio):
    def call(method, path, *, key="us-app", region="us", json=None, params=None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.request(
            method, f"{cio.url}/{region}-api{path}", headers=headers, json=json, params=params, timeout=10
        )

    return call


def identify(identifier, attributes=None, **extra):
    kind = "email" if "@" in identifier else "id"
    op = {"type": "person", "action": "identify", "identifiers": {kind: identifier}, **extra}
    if attributes is not None:
        op["attributes"] = attributes
    return op


def event(identifier, name, *, dedupe=None, **attributes):
    op = {"type": "person", "action": "event", "identifiers": {"id": identifier}, "name": name}
    if dedupe:
        op["id"] = dedupe
    if attributes:
        op["attributes"] = attributes
    return op


UNAUTHORIZED = {"meta": {"error": "Unauthorized request"}}


# --- auth and regions ----------------------------------------------------------------------------


def test_region_check_answers_the_workspaces_region_url_and_id_from_either_host(track, cio):
    assert track("GET", "/api/v1/accounts/region").json() == {
        "url": f"{cio.url}/us",
        "region": "us",
        "environment_id": 101,
    }
    # reference 1.4: "works against either regional host"
    for host in ("us", "eu"):
        response = track("GET", "/api/v1/accounts/region", auth=EU, region=host)
        assert response.status_code == 200, host
        assert response.json() == {"url": f"{cio.url}/eu", "region": "eu", "environment_id": 202}
    assert track("GET", "/api/v1/accounts/region", region="eu").json()["region"] == "us"


@pytest.mark.parametrize("auth", [("us-site", "wrong"), ("nobody", "us-key"), ("eu-site", "us-key"), None], ids=str)
def test_a_wrong_or_missing_pair_is_a_401(track, auth):
    response = track("GET", "/api/v1/accounts/region", auth=auth)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert track("POST", "/api/v2/batch", auth=auth, json={"batch": []}).status_code == 401


def test_a_garbled_basic_header_is_a_401(cio):
    response = requests.get(
        f"{cio.url}/us/api/v1/accounts/region", headers={"Authorization": "Basic %%%not-base64"}, timeout=10
    )
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_a_pair_fails_on_the_other_regions_host_by_default(track, cio):
    # reference 1.3: a US account on the EU endpoint fails; an EU pair on the US host is a 401 by default too
    assert track("POST", "/api/v2/batch", auth=US, region="eu", json={"batch": [identify("1")]}).status_code == 401
    response = track("POST", "/api/v2/batch", auth=EU, region="us", json={"batch": [identify("1")]})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert cio.people("us-site") == cio.people("eu-site") == []
    assert cio.stats()["unauthorized"] == {"/eu/api/v2/batch": 1, "/us/api/v2/batch": 1}


def test_us_host_may_redirect_an_eu_pair_to_the_eu_host(track, cio):
    cio.configure(us_redirects_eu=True)
    body = {"batch": [identify("7", {"plan": "pro"})]}
    response = track("POST", "/api/v2/batch?x=1", auth=EU, json=body, allow_redirects=False)
    assert response.status_code == 307
    assert response.headers["Location"] == f"{cio.url}/eu/api/v2/batch?x=1"
    assert cio.people("eu-site") == []  # nothing written by the redirect itself
    # A 307 keeps the method and the body; the same host keeps the credentials.
    followed = track("POST", "/api/v2/batch", auth=EU, json=body)
    assert followed.status_code == 200
    assert [r.status_code for r in followed.history] == [307]
    assert cio.person("eu-site", "7")["attributes"] == {"plan": "pro"}
    assert cio.stats()["redirected"] == {"/us/api/v2/batch": 2}
    # Only that direction: a US pair on the EU host still fails.
    assert track("POST", "/api/v2/batch", auth=US, region="eu", json=body).status_code == 401


def test_a_path_without_region_prefix_is_the_us_host(cio):
    response = requests.get(f"{cio.url}/api/v1/accounts/region", auth=US, timeout=10)
    assert response.json()["environment_id"] == 101


def test_unknown_endpoints_are_404(track):
    assert track("GET", "/api/v9/nothing").status_code == 404


# --- /api/v2/batch ---------------------------------------------------------------------------------


def test_a_valid_batch_is_a_200_with_an_empty_object_and_applies_every_operation(track, cio):
    batch = [
        identify("42", {"first_name": "Jane", "created_at": 1772013598, "email": "jane@example.com"}),
        identify("43", {"first_name": "Joe"}, timestamp=1772013600),
        event("42", "signed_up", source="form"),
    ]
    response = track("POST", "/api/v2/batch", json={"batch": batch})
    assert response.status_code == 200
    assert response.json() == {}
    jane = cio.person("us-site", "42")
    # Dates are whatever was sent (Unix seconds); email set as an attribute is the person's email.
    assert jane["attributes"] == {"first_name": "Jane", "created_at": 1772013598}
    assert jane["email"] == "jane@example.com"
    assert cio.person("us-site", "JANE@example.com")["cio_id"] == jane["cio_id"]
    assert {p["id"] for p in cio.people("us-site")} == {"42", "43"}
    [stored] = cio.events("us-site")
    assert stored["name"] == "signed_up"
    assert stored["attributes"] == {"source": "form"}
    assert stored["cio_id"] == jane["cio_id"]


def test_an_empty_batch_is_accepted_as_the_document_sets_no_minimum(track):
    assert track("POST", "/api/v2/batch", json={"batch": []}).status_code == 200


def test_a_mixed_batch_is_a_207_naming_each_invalid_item_and_applies_the_others(track, cio):
    batch = [
        identify("ok-1", {"plan": "basic"}),  # 0
        {"type": "person", "action": "identify", "identifiers": {"id": "1", "email": "a@b.co"}},  # 1 two ids
        {"type": "person", "action": "identify", "attributes": {"a": 1}},  # 2 no identifiers
        identify("", {"a": 1}),  # 3 empty id
        {"type": "person", "action": "identify", "identifiers": {"id": 42}},  # 4 not a string
        identify("x" * 151),  # 5 id over 150 bytes
        identify("ok-2", {"n" * 151: 1}),  # 6 attribute name over 150 bytes
        identify("ok-3", {"bio": "é" * 501}),  # 7 1002 bytes (501 characters): bytes count
        identify("ok-4", {f"a{i}": i for i in range(301)}),  # 8 more than 300 attributes
        {"type": "person", "action": "event", "identifiers": {"id": "ok-1"}},  # 9 event without name
        {"type": "person", "action": "explode", "identifiers": {"id": "1"}},  # 10 unknown action
        "not an object",  # 11
        identify("ok-5", {f"a{i}": "v" for i in range(300)}),  # 12: exactly 300 is fine
        identify("ok-6", {"bio": "b" * 1000, "n" * 150: 1}),  # 13: exactly at the limits is fine
    ]
    response = track("POST", "/api/v2/batch", json={"batch": batch})
    assert response.status_code == 207
    errors = response.json()["errors"]
    by_index = {e["batch_index"]: e for e in errors}
    assert sorted(by_index) == list(range(1, 12))
    assert all(set(e) == {"batch_index", "reason", "field", "message"} for e in errors)
    assert by_index[1]["field"] == "identifiers"
    assert by_index[1]["reason"] == "invalid"
    assert by_index[2] == {
        "batch_index": 2,
        "reason": "required",
        "field": "identifiers",
        "message": "identifiers is required",
    }
    assert by_index[3]["message"] == "id attribute cannot be an empty string"
    assert by_index[4]["message"] == "id attribute must be a string value"
    assert by_index[5]["message"] == "id cannot be longer than 150 bytes"
    assert by_index[6]["message"] == "attribute name cannot be longer than 150 bytes"
    assert by_index[7] == {
        "batch_index": 7,
        "reason": "invalid",
        "field": "attributes.bio",
        "message": "value for attribute 'bio' cannot be longer than 1000 bytes",
    }
    assert by_index[8]["message"] == "cannot identify more than 300 attributes in one request"
    assert (by_index[9]["field"], by_index[9]["reason"]) == ("name", "required")
    assert by_index[10]["field"] == "action"
    # The valid ones were applied, the invalid ones not.
    assert {p["id"] for p in cio.people("us-site")} == {"ok-1", "ok-5", "ok-6"}


def test_email_identifiers_need_a_workspace_that_identifies_by_email(track, cio):
    body = {"batch": [identify("ann@example.com", {"plan": "pro"})]}
    response = track("POST", "/api/v2/batch", json=body)
    assert response.status_code == 207
    assert response.json()["errors"][0]["message"] == "email is not enabled as an identifier in this workspace"
    assert track("POST", "/api/v2/batch", auth=MAIL, json=body).status_code == 200
    assert cio.person("mail-site", "Ann@Example.com")["attributes"] == {"plan": "pro"}
    bad = track("POST", "/api/v2/batch", auth=MAIL, json={"batch": [identify("not-an@email")]})
    assert bad.json()["errors"][0]["message"] == "email is not a valid email address"


def test_an_item_over_32000_bytes_fails_alone(track, cio):
    big = identify("big", {f"k{i}": "v" * 990 for i in range(33)})
    assert len(json.dumps(big, separators=(",", ":"))) > 32_000
    fits = identify("fits", {f"k{i}": "v" * 990 for i in range(31)})
    assert len(json.dumps(fits, separators=(",", ":"))) < 32_000
    response = track("POST", "/api/v2/batch", json={"batch": [fits, big]})
    assert response.status_code == 207
    [error] = response.json()["errors"]
    assert error["batch_index"] == 1
    assert "32kb" in error["message"]
    assert [p["id"] for p in cio.people("us-site")] == ["fits"]


def test_a_body_over_500000_bytes_is_refused_whole_with_a_400(track, cio):
    item = identify("p", {f"k{i}": "v" * 900 for i in range(30)})  # ~27.5 kB each, under the item limit
    batch = [dict(item, identifiers={"id": f"p{i}"}) for i in range(17)]
    raw = json.dumps({"batch": batch}).encode()
    assert 450_000 < len(raw) < 500_000
    # JSON's own whitespace brings the body to the limit exactly: the whole request is what counts.
    at_limit = raw + b" " * (500_000 - len(raw))
    assert track("POST", "/api/v2/batch", data=at_limit).status_code == 200
    assert len(cio.people("us-site")) == 17
    cio.reset()
    cio.add_workspace(*US)
    response = track("POST", "/api/v2/batch", data=at_limit + b" ")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "batch"
    assert "500kb" in error["message"]
    assert cio.people("us-site") == []  # nothing of it applied
    # The documents give only 400 for it; a 413 is there for a client that should cope with one.
    cio.configure(batch_too_large_status=413)
    assert track("POST", "/api/v2/batch", data=at_limit + b" ").status_code == 413


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b"{not json", "body", "invalid"),
        (b"[1, 2]", "body", "invalid"),
        (b"{}", "batch", "required"),
        (b'{"batch": {"type": "person"}}', "batch", "invalid"),
    ],
)
def test_a_malformed_body_is_a_400_with_errors(track, raw, field, reason):
    response = track("POST", "/api/v2/batch", data=raw)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert set(error) == {"reason", "field", "message"}
    assert (error["field"], error["reason"]) == (field, reason)


def test_update_only_changes_known_people_and_does_nothing_for_unknown_ones(track, cio):
    cio.add_person("us-site", id="known", attributes={"plan": "basic"})
    batch = [identify("known", {"plan": "pro", "_update": True}), identify("ghost", {"plan": "pro", "_update": True})]
    assert track("POST", "/api/v2/batch", json={"batch": batch}).status_code == 200
    assert cio.person("us-site", "known")["attributes"] == {"plan": "pro"}  # _update is no attribute
    assert cio.person("us-site", "ghost") is None
    [activity] = cio.activities("us-site")
    assert activity["type"] == "failed_attribute_change"
    assert activity["identifiers"] == {"id": "ghost"}


def test_null_removes_an_attribute(track, cio):
    track("POST", "/api/v2/batch", json={"batch": [identify("1", {"a": 1, "b": 2})]})
    track("POST", "/api/v2/batch", json={"batch": [identify("1", {"a": None})]})
    assert cio.person("us-site", "1")["attributes"] == {"b": 2}


def test_timestamps_order_updates_sent_out_of_order(track, cio):
    newer = identify("1", {"plan": "pro"}, timestamp=1772013600)
    older = identify("1", {"plan": "basic", "seats": 3}, timestamp=1772013500)
    assert track("POST", "/api/v2/batch", json={"batch": [newer, older]}).status_code == 200
    assert cio.person("us-site", "1")["attributes"] == {"plan": "pro", "seats": 3}


def test_a_workspace_identifying_by_both_gives_the_new_id_to_the_person_with_that_email(track, cio):
    cio.add_workspace("both-site", "both-key", identify_by="both")
    cio.add_person("both-site", email="kim@example.com", attributes={"plan": "basic"})
    body = {"batch": [identify("k-1", {"email": "kim@example.com", "plan": "pro"})]}
    assert track("POST", "/api/v2/batch", auth=("both-site", "both-key"), json=body).status_code == 200
    [kim] = cio.people("both-site")
    assert (kim["id"], kim["email"], kim["attributes"]) == ("k-1", "kim@example.com", {"plan": "pro"})


def test_events_with_a_repeated_id_are_ignored(track, cio):
    first = event("1", "purchase", dedupe="01HZX3Y0000000000000000000", price=10)
    again = event("1", "purchase", dedupe="01HZX3Y0000000000000000000", price=99)
    other = event("1", "purchase", dedupe="01HZX3Y0000000000000000001", price=20)
    no_id = event("1", "viewed")
    assert track("POST", "/api/v2/batch", json={"batch": [first, again, other, no_id, no_id]}).status_code == 200
    # a retry of a whole batch repeats its ids: nothing more stored
    assert track("POST", "/api/v2/batch", json={"batch": [first, other]}).status_code == 200
    events = cio.events("us-site")
    assert [(e["name"], e["id"], e["attributes"].get("price")) for e in events] == [
        ("purchase", "01HZX3Y0000000000000000000", 10),
        ("purchase", "01HZX3Y0000000000000000001", 20),
        ("viewed", None, None),
        ("viewed", None, None),
    ]
    assert cio.stats()["deduplicated_events"] == 3


def test_the_openapi_document_checks_what_the_emulator_does_not_model(track, cio):
    if cio.server.spec is None:
        pytest.skip("no ../shared/specs/customerio-track-api-openapi.json here")
    batch = [
        identify("1", {"_update": "yes"}),
        identify("2", {"cio_subscription_preferences": {"topics": {"topic_1": "on"}}}),
        {"type": "delivery", "action": "event", "identifiers": {"id": "d1"}, "name": "clicked", "attributes": {}},
        {"type": "object", "action": "identify", "identifiers": {"object_type_id": "1", "object_id": "acme"}},
    ]
    response = track("POST", "/api/v2/batch", json={"batch": batch})
    assert response.status_code == 207
    errors = response.json()["errors"]
    assert {e["batch_index"] for e in errors} == {0, 1, 2}
    assert {"field": "attributes._update", "reason": "invalid"}.items() <= errors[0].items()
    assert errors[1]["field"] == "attributes.cio_subscription_preferences.topics.topic_1"
    assert cio.operations("us-site") == [batch[3]]  # a valid object operation: accepted, not modelled


def test_without_the_document_the_emulator_still_checks_structure(tmp_path):
    server = start_in_thread(spec_path=str(tmp_path / "absent.json"))
    try:
        assert server.spec is None
        control = EmulatorControl(server.url)
        control.add_workspace(*US)
        batch = [identify("1", {"a": 1}), {"type": "person", "action": "identify", "identifiers": {}}]
        response = requests.post(f"{server.url}/us/api/v2/batch", auth=US, json={"batch": batch}, timeout=10)
        assert response.status_code == 207
        assert [e["batch_index"] for e in response.json()["errors"]] == [1]
        assert control.person("us-site", "1")["attributes"] == {"a": 1}
    finally:
        server.shutdown()
        server.server_close()


def test_error_report_first_lists_one_error_per_item(track, cio):
    cio.configure(error_report="first")
    op = identify("1", {"n" * 151: 1, "m" * 151: 1})
    assert len(track("POST", "/api/v2/batch", json={"batch": [op]}).json()["errors"]) == 1
    cio.configure(error_report="all")
    assert len(track("POST", "/api/v2/batch", json={"batch": [op]}).json()["errors"]) == 2


def test_entity_takes_one_operation_and_answers_400_for_an_invalid_one(track, cio):
    assert track("POST", "/api/v2/entity", json=identify("e1", {"a": 1})).json() == {}
    response = track("POST", "/api/v2/entity", json=identify("e2", {"bio": "x" * 1001}))
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "attributes.bio"
    assert [p["id"] for p in cio.people("us-site")] == ["e1"]


# --- v1 ---------------------------------------------------------------------------------------------


def test_v1_identify_and_events(track, cio):
    assert track("PUT", "/api/v1/customers/v1%2Fperson", json={"plan": "basic", "created_at": 1700000000}).json() == {}
    assert cio.person("us-site", "v1/person")["attributes"] == {"plan": "basic", "created_at": 1700000000}
    assert track("PUT", "/api/v1/customers/nobody", json={"plan": "x", "_update": True}).status_code == 200
    assert cio.person("us-site", "nobody") is None
    body = {"name": "purchase", "id": "01HZX3Y00000000000000000AA", "data": {"price": 10}}
    assert track("POST", "/api/v1/customers/v1%2Fperson/events", json=body).status_code == 200
    assert track("POST", "/api/v1/customers/v1%2Fperson/events", json=body).status_code == 200
    [stored] = cio.events("us-site")
    assert (stored["via"], stored["attributes"]) == ("v1", {"price": 10})
    response = track("POST", "/api/v1/customers/v1%2Fperson/events", json={"data": {"a": 1}})
    assert response.status_code == 400
    assert "error" in response.json()["meta"]


def test_v1_limits_answer_400_in_either_documented_shape(track, cio):
    response = track("PUT", "/api/v1/customers/1", json={"bio": "x" * 1001})
    assert response.status_code == 400
    assert response.json() == {"meta": {"error": "value for attribute 'bio' cannot be longer than 1000 bytes"}}
    cio.configure(v1_error_shape="errors")
    response = track("PUT", "/api/v1/customers/1", json={"n" * 151: "x"})
    assert response.json() == {"meta": {"errors": ["attribute name cannot be longer than 150 bytes"]}}
    assert cio.people("us-site") == []


def test_v1_delete_removes_the_person(track, cio):
    cio.add_person("us-site", id="gone")
    assert track("DELETE", "/api/v1/customers/gone").status_code == 200
    assert cio.person("us-site", "gone") is None


# --- App API ------------------------------------------------------------------------------------


def test_app_api_looks_people_up_by_id_with_attributes_as_strings(track, app, cio):
    track(
        "POST",
        "/api/v2/batch",
        json={"batch": [identify("1", {"email": "a@example.com", "age": 30, "vip": True}), identify("2", {"x": "y"})]},
    )
    response = app("POST", "/v1/customers/attributes", json={"ids": ["1", "2", "unknown"]})
    assert response.status_code == 200
    customers = response.json()["customers"]
    assert [c["customer"]["id"] for c in customers] == ["1", "2"]  # unknown ids are left out
    first = customers[0]["customer"]
    assert first["identifiers"] == {"email": "a@example.com", "id": "1", "cio_id": first["identifiers"]["cio_id"]}
    assert first["attributes"] == {
        "age": "30",
        "vip": "true",
        "id": "1",
        "email": "a@example.com",
        "cio_id": first["identifiers"]["cio_id"],
    }
    by_email = app("POST", "/v1/customers/attributes", params={"id_type": "email"}, json={"ids": ["a@example.com"]})
    assert [c["customer"]["id"] for c in by_email.json()["customers"]] == ["1"]
    assert app("GET", "/v1/customers/1/attributes").json()["customer"]["attributes"]["age"] == "30"
    assert app("GET", "/v1/customers/404/attributes").status_code == 404


def test_app_api_takes_at_most_100_ids(app):
    assert app("POST", "/v1/customers/attributes", json={"ids": [str(i) for i in range(100)]}).status_code == 200
    assert app("POST", "/v1/customers/attributes", json={"ids": [str(i) for i in range(101)]}).status_code == 400
    assert app("POST", "/v1/customers/attributes", json={"ids": []}).status_code == 400


@pytest.mark.parametrize(("key", "region"), [("nope", "us"), (None, "us"), ("us-app", "eu"), ("eu-app", "us")])
def test_app_api_refuses_an_unknown_key_or_one_of_the_other_region(app, key, region):
    response = app("POST", "/v1/customers/attributes", key=key, region=region, json={"ids": ["1"]})
    assert response.status_code == 401


def test_app_api_track_credentials_are_not_app_credentials(cio):
    response = requests.post(f"{cio.url}/us-api/v1/customers/attributes", auth=US, json={"ids": ["1"]}, timeout=10)
    assert response.status_code == 401


def test_app_api_answers_429_over_10_requests_a_second_per_workspace(app, cio):
    statuses = [app("POST", "/v1/customers/attributes", json={"ids": ["1"]}).status_code for _ in range(12)]
    assert statuses[:10] == [200] * 10
    assert 429 in statuses[10:]
    limited = app("POST", "/v1/customers/attributes", json={"ids": ["1"]})
    assert limited.json() == {"meta": {"error": "Your request is over the 10-per-second limit"}}
    # per workspace: the EU workspace has its own budget
    assert app("POST", "/v1/customers/attributes", key="eu-app", region="eu", json={"ids": ["1"]}).status_code == 200
    assert cio.stats()["rate_limited"]["/us-api/v1/customers/attributes"] >= 2
    cio.configure(app_rate_limits_on=False)
    assert {app("POST", "/v1/customers/attributes", json={"ids": ["1"]}).status_code for _ in range(15)} == {200}


# --- Track rate limit, faults, latency ------------------------------------------------------------


def test_track_has_no_rate_limit_unless_configured(track, cio):
    session = requests.Session()
    statuses = {
        session.post(f"{cio.url}/us/api/v2/batch", auth=US, json={"batch": []}, timeout=10).status_code
        for _ in range(40)
    }
    assert statuses == {200}
    cio.configure(rate_limit_rps=5, retry_after=2)
    answers = [session.post(f"{cio.url}/us/api/v2/batch", auth=US, json={"batch": []}, timeout=10) for _ in range(8)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    limited = [a for a in answers if a.status_code == 429]
    assert limited
    assert limited[0].headers["Retry-After"] == "2"
    # per workspace
    assert session.post(f"{cio.url}/eu/api/v2/batch", auth=EU, json={"batch": []}, timeout=10).status_code == 200


def test_status_faults_answer_the_next_requests_then_stop(track, cio):
    cio.fault("/api/v2/batch", status=503, times=2, headers={"Retry-After": "1"})
    body = {"batch": [identify("1", {"a": 1})]}
    first, second, third = (track("POST", "/api/v2/batch", json=body) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Retry-After"] == "1"
    assert cio.stats()["faulted"] == {"/us/api/v2/batch": 2}
    assert cio.stats()["counts"]["/us/api/v2/batch"] == 1  # faulted requests never reached the handler


def test_a_fault_on_a_prefixed_path_touches_that_region_only(track, cio):
    cio.fault("/eu/api/v2/batch", status=500)
    assert track("POST", "/api/v2/batch", json={"batch": []}).status_code == 200
    assert track("POST", "/api/v2/batch", auth=EU, region="eu", json={"batch": []}).status_code == 500


def test_unexpected_2xx_bodies_with_or_without_the_write(track, cio):
    cio.fault("/api/v2/batch", status=200, body={"status": "queued"})
    response = track("POST", "/api/v2/batch", json={"batch": [identify("skipped")]})
    assert (response.status_code, response.json()) == (200, {"status": "queued"})
    assert cio.person("us-site", "skipped") is None
    cio.fault("/api/v2/batch", status=202, body={"status": "queued"}, apply=True)
    response = track("POST", "/api/v2/batch", json={"batch": [identify("written")]})
    assert (response.status_code, response.json()) == (202, {"status": "queued"})
    assert cio.person("us-site", "written") is not None


def test_an_html_page_fault(track, cio):
    cio.fault("/api/v2/batch", status=200, raw="<html><body>Maintenance</body></html>")
    response = track("POST", "/api/v2/batch", json={"batch": []})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html"
    with pytest.raises(ValueError):
        response.json()


def test_drop_timeout_and_truncate_faults(track, cio):
    cio.fault("/api/v2/batch", kind="drop")
    with pytest.raises(requests.ConnectionError):
        track("POST", "/api/v2/batch", json={"batch": [identify("dropped")]})
    assert cio.person("us-site", "dropped") is None
    cio.fault("/api/v2/batch", kind="drop", apply=True)
    with pytest.raises(requests.ConnectionError):
        track("POST", "/api/v2/batch", json={"batch": [identify("committed")]})
    assert cio.person("us-site", "committed") is not None  # written, though the client never heard
    cio.fault("/api/v1/accounts/region", kind="timeout", seconds=1)
    with pytest.raises(requests.Timeout):
        track("GET", "/api/v1/accounts/region", timeout=0.3)
    cio.fault("/api/v1/accounts/region", kind="truncate", cut=10)
    response = track("GET", "/api/v1/accounts/region")
    assert response.status_code == 200
    assert response.content == b'{"url": "h'


def test_latency_delays_answers_globally_or_per_region(track, cio, no_gc_pauses):
    cio.configure(latency_ms=150)
    started = time.monotonic()
    track("GET", "/api/v1/accounts/region")
    assert time.monotonic() - started >= 0.15
    cio.configure(latency_ms=0, region_latency_ms={"eu": 200})
    started = time.monotonic()
    track("GET", "/api/v1/accounts/region")
    assert time.monotonic() - started < 0.15
    started = time.monotonic()
    track("GET", "/api/v1/accounts/region", auth=EU, region="eu")
    assert time.monotonic() - started >= 0.2


def test_unknown_options_are_refused(cio):
    with pytest.raises(requests.HTTPError):
        cio.configure(latency=5)


# --- request log and counters ---------------------------------------------------------------------


def test_requests_and_stats_are_kept_per_region(track, app, cio):
    track("POST", "/api/v2/batch", json={"batch": [identify("1")]})
    track("POST", "/api/v2/batch", auth=EU, region="eu", json={"batch": [identify("2")]})
    track("POST", "/api/v2/batch", auth=EU, region="us", json={"batch": []})  # 401
    app("POST", "/v1/customers/attributes", json={"ids": ["1"]})
    logged = cio.requests("/api/v2/batch")
    assert [(r["region"], r["site_id"], r["status"]) for r in logged] == [
        ("us", "us-site", 200),
        ("eu", "eu-site", 200),
        ("us", None, 401),
    ]
    assert logged[0]["body"] == {"batch": [identify("1")]}
    assert [r["full_path"] for r in cio.requests("/api/v2/batch", region="eu")] == ["/eu/api/v2/batch"]
    assert cio.requests("/us-api/v1/customers/attributes")[0]["api"] == "app"
    stats = cio.stats()
    assert stats["counts"] == {"/us/api/v2/batch": 1, "/eu/api/v2/batch": 1, "/us-api/v1/customers/attributes": 1}
    assert stats["arrived"]["/us/api/v2/batch"] == 2
    assert stats["unhandled_errors"] == 0


def test_finished_counts_every_connection_the_server_is_done_with(track, cio):
    for _ in range(3):
        track("POST", "/api/v2/batch", json={"batch": []})
    deadline = time.monotonic() + 5
    while cio.stats()["finished"].get("/us/api/v2/batch", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cio.stats()["finished"]["/us/api/v2/batch"] == 3
    assert cio.stats()["unhandled_errors"] == 0


def test_add_workspace_answers_its_settings_and_numbers_workspaces(cio):
    added = cio.add_workspace("new-site", "new-key", region="eu", app_key="new-app")
    assert added == {
        "site_id": "new-site",
        "api_key": "new-key",
        "region": "eu",
        "environment_id": 304,
        "identify_by": "id",
        "app_key": "new-app",
    }
    with pytest.raises(requests.HTTPError):
        cio.add_workspace("bad", "k", region="apac")
    with pytest.raises(requests.HTTPError):
        cio.people("no-such-site")
    with pytest.raises(requests.HTTPError):
        cio.add_person("us-site", attributes={"a": 1})  # neither id nor email
    assert cio.stats()["unhandled_errors"] == 0
