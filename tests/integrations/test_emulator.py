"""The Iterable emulator behaves as ../shared/reference/iterable.md says (raw HTTP, no client)."""

from __future__ import annotations

import time

import pytest
import requests

from emulators.iterable.control import EmulatorControl
from emulators.iterable.server import start_in_thread
from tests.conftest import wait_for


def test_bodies_are_checked_against_iterables_swagger(api, iterable_swagger):
    response = api("POST", "/api/users/bulkUpdate", json={"users": [{"email": "a@b.co", "dataField": {}}]})
    assert response.status_code == 400
    assert response.json() == {
        "msg": "[/api/users/bulkUpdate] Invalid JSON body",
        "code": "BadJsonBody",
        "params": {"obj.users[0].dataField": "Unknown field"},
    }
    assert api("POST", "/api/events/track", json={"email": "a@b.co"}).json()["params"] == {
        "obj.eventName": "Missing required field"
    }


@pytest.mark.parametrize(
    ("key_type", "method", "path", "body", "status"),
    [
        ("read_only", "GET", "/api/users/getFields", None, 200),
        ("read_only", "POST", "/api/users/bulkUpdate", {"users": []}, 403),
        ("mobile", "GET", "/api/users/getFields", None, 403),
        ("mobile", "POST", "/api/users/update", {"email": "a@b.co"}, 200),
        ("mobile", "POST", "/api/users/bulkUpdate", {"users": []}, 403),
        ("javascript", "POST", "/api/users/update", {"email": "a@b.co"}, 403),
        ("server_side", "POST", "/api/users/bulkUpdate", {"users": []}, 200),
        # reference 1.2: mobile keys may also call the in-app endpoints
        *(
            ("mobile", "POST", f"/api/events/{name}", {"email": "a@b.co", "messageId": "m1"}, 200)
            for name in ("trackInAppOpen", "trackInAppClick", "trackInAppClose", "trackInAppDelivery", "inAppConsume")
        ),
        ("javascript", "POST", "/api/events/trackInAppOpen", {"email": "a@b.co", "messageId": "m1"}, 403),
    ],
)
def test_key_types_have_their_rights(api, iterable, key_type, method, path, body, status):
    response = api(method, path, key=getattr(iterable.keys, key_type), json=body)
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["code"] == "Forbidden"


@pytest.mark.parametrize("where", ["emulator", "key"])
def test_a_refused_key_type_is_answered_401_or_403_as_set(api, iterable, where):
    # Iterable's Swagger lists 401 "Invalid API key" for getFields, bulkUpdate and users/update and 403
    # only for users/merge: the emulator answers a key type's refusal either way.
    if where == "emulator":
        iterable.configure(refusal_status=401)
    else:
        iterable.add_key(iterable.keys.read_only, "read_only", refusal_status=401)
    refused = api("POST", "/api/users/bulkUpdate", key=iterable.keys.read_only, json={"users": []})
    assert refused.status_code == 401
    assert refused.json()["code"] == "BadApiKey" and refused.json()["msg"] == "Invalid API key"
    assert api("GET", "/api/users/getFields", key=iterable.keys.read_only).status_code == 200
    other = api("GET", "/api/users/getFields", key=iterable.keys.mobile)
    assert other.status_code == (401 if where == "emulator" else 403)


def test_a_strict_rate_limit_has_no_burst(api, iterable):
    # reference 2.3 names a leaky bucket and no burst: by default one second's worth, strictest none.
    assert [api("GET", "/api/users/getFields").status_code for _ in range(3)] == [200, 200, 200]
    iterable.configure(rate_burst=1)
    assert [api("GET", "/api/users/getFields").status_code for _ in range(2)] == [200, 429]


def test_arrivals_are_counted_whatever_the_answer(api, iterable):
    iterable.fault("/api/lists", status=503, times=1)
    api("GET", "/api/lists")
    api("GET", "/api/lists", key="nope")
    api("GET", "/api/lists")
    stats = iterable.stats()
    assert stats["arrived"]["/api/lists"] == 3 and stats["counts"]["/api/lists"] == 1


def test_writes_to_a_user_already_there_are_counted_per_project(api, iterable):
    # bench/processes.py counts duplicate deliveries so: one write per person expected, a rewrite is one more.
    users = [{"email": "a@b.co"}, {"email": "c@d.co"}]
    api("POST", "/api/users/bulkUpdate", json={"users": users})
    api("POST", "/api/users/bulkUpdate", json={"users": users[:1]})
    assert iterable.stats()["projects"]["1"] == {"users": 2, "writes": 3, "rewrites": 1}


def test_auth_errors_use_the_envelope(api, iterable):
    response = api("GET", "/api/users/getFields", key="nope")
    assert response.status_code == 401
    assert response.json()["code"] == "BadApiKey" and response.json()["params"]["endpoint"] == "/api/users/getFields"
    assert api("GET", "/api/users/getFields", key=iterable.keys.server_side, region="eu").status_code == 401


def test_types_are_inferred_from_the_first_value_and_then_enforced(api, iterable):
    ok = api(
        "POST",
        "/api/users/update",
        json={"email": "a@b.co", "dataFields": {"age": 3, "joined": "2024-01-02", "score": 1.5, "vip": True}},
    )
    assert ok.status_code == 200 and ok.json()["code"] == "Success"
    fields = iterable.fields()
    assert (fields["age"], fields["joined"], fields["score"], fields["vip"]) == ("long", "date", "double", "boolean")
    bad = api("POST", "/api/users/update", json={"email": "b@b.co", "dataFields": {"age": "ten"}})
    assert bad.status_code == 400
    detail = bad.json()["params"]["validationErrors"]["age"]
    assert bad.json()["code"] == "RequestFieldsTypesMismatched"
    assert detail == {
        "incomingTypes": ["string", "keyword"],
        "expectedType": "long",
        "_type": "UnexpectedType",
        "offendingValue": "ten",
        "category": "user",
    }
    assert api("POST", "/api/users/update", json={"email": "c@b.co", "dataFields": {"score": 2}}).status_code == 200


def test_merge_nested_objects(api, iterable):
    api("POST", "/api/users/update", json={"email": "a@b.co", "dataFields": {"settings": {"mobile": True}}})
    api(
        "POST",
        "/api/users/update",
        json={"email": "a@b.co", "dataFields": {"settings": {"email": True}}, "mergeNestedObjects": True},
    )
    assert iterable.user("a@b.co")["dataFields"]["settings"] == {"mobile": True, "email": True}
    api("POST", "/api/users/update", json={"email": "a@b.co", "dataFields": {"settings": {"sms": True}}})
    assert iterable.user("a@b.co")["dataFields"]["settings"] == {"sms": True}
    assert iterable.fields()["settings.sms"] == "boolean" and iterable.fields()["settings"] == "object"


def test_bulk_partial_failure_and_filtered_fields(api, iterable):
    response = api(
        "POST",
        "/api/users/bulkUpdate",
        json={
            "createNewFields": False,
            "users": [
                {"email": "a@b.co", "dataFields": {"firstName": "Ada", "unknownField": 1}},
                {"email": "not-an-email", "dataFields": {"firstName": "X"}},
            ],
        },
    )
    body = response.json()
    assert response.status_code == 200 and (body["successCount"], body["failCount"]) == (1, 1)
    assert body["failedUpdates"]["invalidEmails"] == ["not-an-email"] and body["filteredOutFields"] == ["unknownField"]
    assert "unknownField" not in iterable.user("a@b.co")["dataFields"]


def test_bulk_body_over_4mb_is_413(api):
    users = [{"email": f"u{i}@b.co", "dataFields": {"blob": "x" * 10_000}} for i in range(420)]
    response = api("POST", "/api/users/bulkUpdate", json={"users": users})
    assert response.status_code == 413 and response.json()["code"] == "BatchTooLarge"


def test_lookups_answer_empty_object_when_not_found(api):
    api("POST", "/api/users/update", json={"email": "a@b.co", "userId": "u-1", "dataFields": {}})
    assert api("GET", "/api/users/getByEmail", params={"email": "a@b.co"}).json()["user"]["email"] == "a@b.co"
    assert api("GET", "/api/users/a@b.co").json()["user"]["userId"] == "u-1"
    assert api("GET", "/api/users/byUserId/u-1").json()["user"]["email"] == "a@b.co"
    assert api("GET", "/api/users/getByEmail", params={"email": "nobody@b.co"}).json() == {}
    assert api("GET", "/api/users/byUserId", params={"userId": "nobody"}).json() == {}
    assert api("GET", "/api/users/getByEmail", params={"email": "000"}).json()["code"] == "InvalidEmailAddressError"


def test_project_types_decide_the_identifier(api, iterable):
    eu = iterable.keys.eu_server_side  # a userID-based EU project
    refused = api("POST", "/api/users/update", key=eu, region="eu", json={"email": "a@b.co", "dataFields": {}})
    assert refused.status_code == 400
    assert (
        api("POST", "/api/users/update", key=eu, region="eu", json={"userId": "u1", "dataFields": {}}).status_code
        == 200
    )
    iterable.add_key("emailkey-123456", project_id=3, project_type="email")
    lone = api("POST", "/api/users/update", key="emailkey-123456", json={"userId": "u9"})
    assert lone.status_code == 400
    placeholder = api("POST", "/api/users/update", key="emailkey-123456", json={"userId": "u9", "preferUserId": True})
    assert placeholder.status_code == 200 and iterable.user("u9@placeholder.email", project_id=3)


def test_rate_limits_answer_429(api, iterable):
    statuses = [api("GET", "/api/users/getFields").status_code for _ in range(6)]
    assert 429 in statuses and statuses[:3] == [200, 200, 200]  # 3 per second (reference 2.3)
    limited = next(r for r in [api("GET", "/api/users/getFields") for _ in range(3)] if r.status_code == 429)
    assert limited.json() == {"msg": "Exceeded rate limit.", "code": "RateLimitExceeded", "params": None}


def test_each_lookup_endpoint_has_its_own_rate_limit(api, iterable):
    # reference 2.3: getByEmail, /users/{email}, byUserId and byUserId/{userId}: 100 rps per project each.
    api("POST", "/api/users/update", json={"email": "a@b.co", "userId": "u-1", "dataFields": {}})
    lookups = [
        ("/api/users/getByEmail", {"email": "a@b.co"}),
        ("/api/users/a@b.co", None),
        ("/api/users/byUserId", {"userId": "u-1"}),
        ("/api/users/byUserId/u-1", None),
    ]
    iterable.configure(
        rate_limit_overrides=dict.fromkeys(
            ("users.getByEmail", "users.byEmailPath", "users.byUserId", "users.byUserIdPath"), 1
        )
    )
    assert [api("GET", path, params=params).status_code for path, params in lookups] == [200] * 4
    assert api("GET", "/api/users/getByEmail", params={"email": "a@b.co"}).status_code == 429


def test_lists_and_events(api, iterable):
    list_id = iterable.add_list("Newsletter")
    assert api("GET", "/api/lists").json()["lists"][0]["name"] == "Newsletter"
    sub = api("POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": [{"email": "a@b.co"}]})
    assert sub.json()["successCount"] == 1
    assert list_id in iterable.user("a@b.co")["dataFields"]["userListIds"]
    bad = api("POST", "/api/lists/subscribe", json={"listId": 999, "subscribers": [{"email": "a@b.co"}]})
    # As recorded from Iterable (reference 5): a 400 whose code says "Success", the error in msg.
    assert bad.status_code == 400 and bad.json()["code"] == "Success"
    assert bad.json()["msg"] == "error.lists.invalidListId(999)" and bad.json()["params"]["listId"] == 999
    assert api("POST", "/api/events/track", json={"eventName": "formSubmitted", "email": "a@b.co"}).status_code == 200
    assert iterable.events()[0]["eventName"] == "formSubmitted"


def test_an_event_with_a_known_id_is_updated_not_added(api, iterable):
    """Swagger, TrackRequest.id: "If an event exists with that id, the event will be updated. If none is
    specified, a new id will automatically be generated and returned." """
    first = {"eventName": "formSubmitted", "email": "a@b.co", "id": "flowsync-1-7", "dataFields": {"n": 1}}
    assert api("POST", "/api/events/track", json=first).json()["params"] == {"id": "flowsync-1-7"}
    api("POST", "/api/events/track", json={**first, "dataFields": {"n": 2}})
    generated = api("POST", "/api/events/track", json={"eventName": "formSubmitted", "email": "a@b.co"})
    events = iterable.events()
    assert [(e["id"], e.get("dataFields")) for e in events[:1]] == [("flowsync-1-7", {"n": 2})]
    assert len(events) == 2 and events[1]["id"] == generated.json()["params"]["id"] != "flowsync-1-7"


def test_latency_and_fault_knobs(api, iterable):
    iterable.configure(latency_ms=300)
    started = time.monotonic()
    api("GET", "/api/lists")
    assert time.monotonic() - started >= 0.3
    iterable.configure(latency_ms=0)
    iterable.fault("/api/lists", status=503, times=1)
    assert api("GET", "/api/lists").status_code == 503
    assert api("GET", "/api/lists").status_code == 200
    iterable.fault("/api/lists", kind="drop", times=1)
    with pytest.raises(requests.ConnectionError):
        api("GET", "/api/lists")


@pytest.mark.parametrize("kind", ["timeout", "drop"])
def test_a_client_that_gave_up_on_a_fault_leaves_no_traceback(iterable, capsys, kind):
    # The "timeout" fault answers after the client's timeout: the client has gone when the answer is
    # written. That is the fault working, not an emulator error.
    iterable.fault("/api/lists", kind=kind, seconds=0.6, times=1)
    with pytest.raises(requests.RequestException):
        requests.get(f"{iterable.server.url}/us/api/lists", headers={"Api-Key": iterable.keys.server_side}, timeout=0.2)
    wait_for(lambda: iterable.stats()["finished"].get("/api/lists") == 1, message="the emulator to finish")
    assert iterable.stats()["unhandled_errors"] == 0
    assert "Exception occurred" not in capsys.readouterr().err


# --- Without Iterable's Swagger document (a checkout without ../shared/specs) ---------------------


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    server = start_in_thread(spec_path=str(tmp_path_factory.mktemp("no-spec") / "absent.json"))
    assert server.spec is None
    yield server
    server.shutdown()


@pytest.fixture
def bare_api(bare_server):
    control = EmulatorControl(bare_server.url)
    control.reset()
    control.add_key("bare-key-123456")
    list_id = control.add_list("Newsletter")

    def call(method, path, *, json=None):
        json = json(list_id) if callable(json) else json
        return requests.request(
            method, f"{bare_server.url}/us{path}", headers={"Api-Key": "bare-key-123456"}, json=json, timeout=10
        )

    return call


@pytest.mark.parametrize(
    ("path", "body", "problems"),
    [
        ("/api/users/bulkUpdate", {}, {"obj.users": "Missing required field"}),
        ("/api/users/bulkUpdate", {"users": "ada"}, {"obj.users": "Array value expected"}),
        ("/api/users/bulkUpdate", {"users": [1]}, {"obj.users[0]": "Object value expected"}),
        (
            "/api/users/bulkUpdate",
            {"users": [{"email": "a@b.co", "dataFields": "x"}]},
            {"obj.users[0].dataFields": "Object value expected"},
        ),
        ("/api/users/update", [], {"obj": "Object value expected"}),
        ("/api/users/update", {"email": 5}, {"obj.email": "String value expected"}),
        ("/api/lists", {}, {"obj.name": "Missing required field"}),
        ("/api/lists/subscribe", {"subscribers": []}, {"obj.listId": "Missing required field"}),
        ("/api/lists/subscribe", {"listId": "abc", "subscribers": []}, {"obj.listId": "Integer value expected"}),
        ("/api/events/track", {"email": "a@b.co"}, {"obj.eventName": "Missing required field"}),
    ],
)
def test_without_the_swagger_a_malformed_body_is_a_400_not_a_crash(bare_api, path, body, problems):
    response = bare_api("POST", path, json=body)
    assert response.status_code == 400
    assert response.json() == {"msg": f"[{path}] Invalid JSON body", "code": "BadJsonBody", "params": problems}


def test_a_type_mismatch_on_subscribe_fails_the_request_with_the_envelope(bare_api):
    bare_api("POST", "/api/users/update", json={"email": "a@b.co", "dataFields": {"age": 3}})
    response = bare_api(
        "POST",
        "/api/lists/subscribe",
        json=lambda list_id: {
            "listId": list_id,
            "subscribers": [
                {"email": "b@b.co", "dataFields": {"age": 4}},
                {"email": "c@b.co", "dataFields": {"age": "x"}},
            ],
        },
    )
    assert response.status_code == 400 and response.json()["code"] == "RequestFieldsTypesMismatched"
    assert bare_api("GET", "/api/users/getByEmail?email=b@b.co").json() == {}  # nothing of it was written


def test_an_emulator_bug_answers_500_with_the_envelope_not_a_dropped_connection(bare_server):
    response = requests.post(f"{bare_server.url}/_emulator/keys", json={}, timeout=10)  # no "key": a KeyError
    assert response.status_code == 500
    assert response.json() == {"msg": "Emulator error; please try again later", "code": "GenericError", "params": None}
