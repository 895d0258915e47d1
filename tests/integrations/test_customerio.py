"""The Customer.io destination against its emulator, over real HTTP on loopback: connect, push, look up,
events, and one EU integration through the sync engine. Flowsync's own code paths, nothing mocked."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from types import SimpleNamespace

import pytest

from field_mapping.services import RowChoice, mapping_save
from flows.models import FieldType
from flows.services import contact_capture
from integrations import engine
from integrations.destinations import REGISTRY, destination_for
from integrations.destinations.base import (
    AuthError,
    Capability,
    CoercionError,
    ConnectError,
    DestinationError,
    MappedRecord,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    ValidationError,
)
from integrations.destinations.customerio import AppClient, CustomerIODestination, TrackClient, batch_parts, rules
from integrations.destinations.customerio.client import map_error
from integrations.destinations.http import Response
from integrations.models import Integration
from integrations.services import integration_connect
from integrations.sync import sync_now
from sync_logs.explain import explain
from sync_logs.models import SyncRecord
from tests.factories import make_flow

BATCH = "/api/v2/batch"
LOOKUP = "/v1/customers/attributes"
ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


# --- The emulator -----------------------------------------------------------------------------


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def _destination(workspace, *, app: bool = True, sleeps: list | None = None, **options) -> CustomerIODestination:
    """A worker's client for ``workspace`` (a rate bucket of its own). With ``sleeps``, its waits are
    collected there and cut to 50 ms: a backoff is not sat out, the pacing still spaces the sends."""
    kwargs = {"region": workspace.region, "bucket_id": f"test-{uuid.uuid4().hex}", **options}
    if sleeps is not None:

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            time.sleep(min(seconds, 0.05))

        kwargs["sleep"] = sleep
    track = TrackClient(site_id=workspace.site_id, api_key=workspace.api_key, **kwargs)
    app_client = AppClient(app_api_key=workspace.app_key, **kwargs) if app else None
    return CustomerIODestination(track, app_client, identify_by=workspace.identify_by)


def _person(key: str, *, key_name: str = "id", **attributes) -> dict:
    return CustomerIODestination.payload(MappedRecord({key_name: key}, attributes), {})


def _connect_data(workspace, **overrides) -> dict:
    data = {
        "site_id": workspace.site_id,
        "api_key": workspace.api_key,
        "identify_by": workspace.identify_by,
        "app_api_key": workspace.app_key,
    }
    return {**data, **overrides}


def _connect(workspace, **overrides):
    return CustomerIODestination.connect(_connect_data(workspace, **overrides), bucket_id=f"c-{uuid.uuid4().hex}")


def _batches(customerio, region: str = "us") -> list[list[dict]]:
    return [r["body"]["batch"] for r in customerio.requests(BATCH, region=region) if r["body"]["batch"]]


# --- Declarations -----------------------------------------------------------------------------


def test_it_is_registered_with_its_declarations():
    assert REGISTRY["customerio"] is CustomerIODestination
    cls = CustomerIODestination
    assert cls.capabilities == {Capability.EVENTS, Capability.LOOKUP, Capability.DEVICES, Capability.SUBSCRIPTIONS}
    assert cls.identifier_names == ("id", "email")
    assert cls.accepted_identifiers({"identify_by": "email"}) == ("email",)
    assert cls.supports(Capability.LOOKUP, {"app_api": True})
    assert not cls.supports(Capability.LOOKUP, {"app_api": False})
    assert cls.unsupported_reason(Capability.LOOKUP, {}).startswith("Leave existing people unchanged needs an App API")
    assert cls.unsupported_reason(Capability.LOOKUP, {"app_api": True}) == ""
    assert not cls.supports(Capability.LISTS, {"app_api": True})
    assert cls.describe_config({"region": "eu", "environment_id": 12, "identify_by": "email"}) == (
        "EU region, workspace 12, people identified by email"
    )
    assert cls.describe_config({"region": "us", "environment_id": 3, "identify_by": "id"}) == (
        "US region, workspace 3, people identified by ID"
    )
    with pytest.raises(ValueError):
        cls.validate_config({"region": "ap", "identify_by": "id"})
    with pytest.raises(ValueError):
        cls.validate_config({"region": "us", "identify_by": "phone"})
    assert cls.new_field_types["number"] == "number" and cls.new_field_types["date"] == "date"
    assert cls.suggested_targets == {
        "email": "email",
        "first_name": "first_name",
        "last_name": "last_name",
        "phone": "phone",
    }


def test_the_catalogue_is_the_reserved_attributes_and_those_created_before_identifiers_first():
    fields = CustomerIODestination.catalogue({}, {"plan": "string", "cio_id": "string", "_update": "boolean"})
    names = [f.name for f in fields]
    assert names[:2] == ["email", "id"] and all(f.identifier for f in fields[:2])
    assert {"created_at", "first_name", "last_name", "phone", "unsubscribed", "plan"} <= set(names)
    assert not {"cio_id", "_update", "anonymous_id", "cio_relationships"} & set(names)
    assert {f.name: f.type for f in fields}["created_at"] == "date"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("plan", ""),
        ("favourite colour", ""),
        ("", "Give the new"),
        ("  ", "Give the new"),
        (" plan", "space"),
        ("é" * 76, "150 bytes"),  # 152 bytes in 76 characters
        ("email", "identifies people"),
        ("cio_id", "Customer.io's own keys"),
        ("cio_subscription_preferences", "Customer.io's own keys"),
        ("_update", "Customer.io's own keys"),
        ("anonymous_id", "Customer.io's own keys"),
        ("created_at", "already has"),
        ("made_before", "already has"),
    ],
)
def test_new_attribute_names(name, problem):
    found = CustomerIODestination.new_field_problem(name, config={}, schema_fields={"made_before": "string"})
    assert (problem in found) if problem else found == ""


def test_values_are_coerced_dates_as_unix_seconds():
    coerce = CustomerIODestination.coerce
    assert coerce("2024-01-02T03:04:05Z", "date", "d") == 1704164645
    assert coerce("2024-01-02", "date", "d") == 1704153600
    assert coerce("42", "number", "n") == 42 and isinstance(coerce("42", "number", "n"), int)
    assert coerce("4.5", "number", "n") == 4.5
    assert coerce("yes", "boolean", "b") is True
    assert coerce(12, "string", "s") == "12"
    with pytest.raises(CoercionError):
        coerce("ten", "number", "n")
    with pytest.raises(CoercionError):
        coerce("soon", "date", "d")


def test_identifiers_are_checked():
    value = CustomerIODestination.identifier_value
    assert value("email", " Ann@Example.COM ") == "ann@example.com"
    assert value("id", " 42 ") == "42"
    assert value("id", "é" * 75) == "é" * 75  # 150 bytes
    with pytest.raises(CoercionError, match="150 bytes"):
        value("id", "é" * 76)
    with pytest.raises(CoercionError):
        value("email", "not-an-address")
    with pytest.raises(CoercionError):
        value("id", "  ")
    assert CustomerIODestination.identifier_problem("email", "text") != ""
    assert CustomerIODestination.identifier_problem("email", "email") == ""


def test_a_record_is_one_identify_with_one_identifier_and_the_other_as_an_attribute():
    record = MappedRecord({"email": "ann@example.com", "id": "42"}, {"first_name": "Ann", "plan": None})
    op = CustomerIODestination.payload(record, {"identify_by": "email"})
    assert op == {
        "type": "person",
        "action": "identify",
        "identifiers": {"email": "ann@example.com"},
        "attributes": {"id": "42", "first_name": "Ann", "plan": None},
    }
    assert CustomerIODestination.sent_values(op, "ann@example.com") == {"id": "42", "first_name": "Ann", "plan": None}
    assert CustomerIODestination.request_preview([op], create_new_fields=True) == {"batch": [op]}


def test_the_dedupe_id_is_a_stable_ulid():
    first = rules.dedupe_id("flowsync-1-2")
    assert ULID.match(first) and first == rules.dedupe_id("flowsync-1-2") != rules.dedupe_id("flowsync-1-3")


def test_batch_parts_decide_before_adding_an_operation():
    overhead = rules.BATCH_OVERHEAD
    # Two operations and the comma between them: exactly 499,999 bytes fits, 500,000 does not.
    first = 250_000
    assert list(batch_parts([first, rules.MAX_BATCH_BYTES - 1 - overhead - first - 1])) == [slice(0, 2)]
    assert list(batch_parts([first, rules.MAX_BATCH_BYTES - overhead - first - 1])) == [slice(0, 1), slice(1, 2)]
    assert list(batch_parts([10] * 250)) == [slice(0, 100), slice(100, 200), slice(200, 250)]
    assert list(batch_parts([])) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"meta": {"error": "name cannot be blank"}}, "name cannot be blank"),
        ({"meta": {"errors": ["one", "two"]}}, "one; two"),
        ({"errors": [{"reason": "invalid", "field": "batch", "message": "is wrong"}]}, "batch: is wrong"),
        ({"msg": "<html>Bad Request</html>"}, "HTTP 400: <html>Bad Request</html>"),
    ],
)
def test_every_documented_error_body_is_read(body, message):
    error = map_error("POST", BATCH, Response(400, body, {}))
    assert type(error) is ValidationError and message in error.message and not error.retryable


def test_errors_map_by_status():
    assert isinstance(map_error("GET", "/x", Response(401, {"meta": {"error": "Unauthorized request"}}, {})), AuthError)
    limited = map_error("POST", BATCH, Response(429, {}, {"Retry-After": "3"}))
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 3
    assert isinstance(map_error("POST", BATCH, Response(502, {"msg": "Bad gateway"}, {})), ServerError)
    size = {"errors": [{"reason": "invalid", "field": "batch", "message": "batch request must be smaller than 500kb"}]}
    assert isinstance(map_error("POST", BATCH, Response(400, size, {})), PayloadTooLargeError)


# --- Connect --------------------------------------------------------------------------------------


def test_connect_a_us_workspace(customerio):
    us = customerio.us
    connection = _connect(us)
    assert connection.credentials == {"site_id": us.site_id, "api_key": us.api_key, "app_api_key": us.app_key}
    assert connection.config == {
        "region": "us",
        "environment_id": us.environment_id,
        "identify_by": "id",
        "app_api": True,
    }
    assert connection.key_last4 == us.api_key[-4:]
    assert us.api_key not in json.dumps(connection.summary) and us.app_key not in json.dumps(connection.summary)
    assert us.site_id not in json.dumps(connection.summary)


def test_connect_an_eu_workspace_checks_the_pair_on_the_eu_host(customerio):
    eu = customerio.eu
    connection = _connect(eu, app_api_key="")
    assert connection.config == {
        "region": "eu",
        "environment_id": eu.environment_id,
        "identify_by": "email",
        "app_api": False,
    }
    assert "app_api_key" not in connection.credentials
    # The region check answers from the US host; the write check goes to the region's own host.
    assert [r["status"] for r in customerio.requests("/api/v1/accounts/region", region="us")] == [200]
    assert [r["status"] for r in customerio.requests(BATCH, region="eu")] == [200]
    assert not customerio.requests(BATCH, region="us")


def test_connect_asks_the_eu_host_when_the_us_host_cannot_be_reached(customerio, settings):
    settings.CUSTOMERIO_TRACK_US_BASE_URL = _closed_port_url()
    assert _connect(customerio.eu).config["region"] == "eu"
    assert [r["status"] for r in customerio.requests("/api/v1/accounts/region", region="eu")] == [200]


def test_connect_a_wrong_pair(customerio):
    with pytest.raises(ConnectError) as refused:
        _connect(customerio.us, api_key="not-the-key")
    assert refused.value.field == "api_key" and refused.value.code == "unknown_pair"
    assert "does not recognise this Site ID and Track API key" in refused.value.message
    # A key of another workspace with this Site ID is the same wrong pair.
    with pytest.raises(ConnectError, match="does not recognise"):
        _connect(customerio.us, api_key=customerio.eu.api_key)


def test_connect_when_the_regions_own_host_refuses_the_pair(customerio):
    customerio.fault("/eu" + BATCH, status=401, body={"meta": {"error": "Unauthorized request"}})
    with pytest.raises(ConnectError) as refused:
        _connect(customerio.eu)
    assert refused.value.field == "api_key" and refused.value.code == "region_refused"
    assert "places this workspace in the EU region, but its EU Track host" in refused.value.message


def test_connect_when_customer_io_cannot_be_reached(customerio, settings):
    settings.CUSTOMERIO_TRACK_US_BASE_URL = settings.CUSTOMERIO_TRACK_EU_BASE_URL = _closed_port_url()
    with pytest.raises(ConnectError) as failed:
        _connect(customerio.us)
    assert failed.value.code == "unreachable" and "could not be reached" in failed.value.message
    assert "Nothing was saved" in failed.value.message


def test_connect_when_the_region_check_fails_on_customer_ios_side(customerio):
    customerio.fault("/api/v1/accounts/region", status=503)
    with pytest.raises(ConnectError) as failed:
        _connect(customerio.us)
    assert failed.value.code == "unreachable"


@pytest.mark.parametrize("which", ["unknown", "other_region", "track_key"])
def test_connect_with_an_app_api_key_that_is_refused(customerio, which):
    key = {"unknown": "nope", "other_region": customerio.eu.app_key, "track_key": customerio.us.api_key}[which]
    with pytest.raises(ConnectError) as refused:
        _connect(customerio.us, app_api_key=key)
    assert refused.value.field == "app_api_key" and refused.value.code == "app_key_refused"
    assert "refused the App API key in the US region" in refused.value.message


def test_connect_needs_the_pair(customerio):
    with pytest.raises(ConnectError) as missing:
        _connect(customerio.us, site_id="  ")
    assert missing.value.field == "site_id"
    with pytest.raises(ConnectError) as missing:
        _connect(customerio.us, api_key="")
    assert missing.value.field == "api_key"


@pytest.mark.django_db
def test_the_connect_page_and_a_refusal_on_it(alice_client, customerio):
    url = "/w/acme/integrations/customerio/connect/"
    html = alice_client.get(url).content.decode()
    assert 'type="password" name="api_key"' in html and 'type="password" name="app_api_key"' in html
    assert "<script" not in html.split("<main", 1)[-1].split("</main>", 1)[0] and " style=" not in html
    response = alice_client.post(url, _connect_data(customerio.us, api_key="wrong"))
    assert response.status_code == 400 and "does not recognise" in response.content.decode()
    assert not Integration.objects.exists()
    response = alice_client.post(url, _connect_data(customerio.us))
    assert response.status_code == 302
    integration = Integration.objects.get()
    assert integration.kind == "customerio" and integration.config["environment_id"] == customerio.us.environment_id
    assert destination_for(integration, interactive=True).verify().region == "us"


# --- Push -----------------------------------------------------------------------------------------


def test_push_identifies_people(customerio):
    us = customerio.us
    created = CustomerIODestination.coerce("2024-01-02T03:04:05Z", "date", "signed_up")
    people = [_person(f"u{i}", email=f"u{i}@example.com", first_name=f"U{i}", created_at=created) for i in range(3)]
    results = _destination(us).push(people)
    assert [(r.identifier, r.delivered) for r in results] == [("u0", True), ("u1", True), ("u2", True)]
    person = customerio.person(us.site_id, "u1")
    assert person["email"] == "u1@example.com"
    assert person["attributes"] == {"first_name": "U1", "created_at": 1704164645}


def test_a_207_fails_the_items_it_names_and_delivers_the_others(customerio):
    us = customerio.us
    # An email-keyed operation in a workspace that identifies people by id: Customer.io refuses that item.
    people = [_person("a1"), _person("b@example.com", key_name="email"), _person("c1")]
    results = _destination(us).push(people)
    assert [r.delivered for r in results] == [True, False, True]
    failed = results[1]
    assert (failed.identifier, failed.code, failed.retryable) == ("b@example.com", "invalid", False)
    assert "identifiers.email" in failed.message and "not enabled as an identifier" in failed.message
    assert customerio.person(us.site_id, "a1") and customerio.person(us.site_id, "c1")
    words = explain(failed.code, failed.message, destination=CustomerIODestination)
    assert words.summary.startswith("Customer.io refused this person's data: identifiers.email")


def test_a_record_over_the_limits_fails_alone_and_is_not_sent(customerio):
    us = customerio.us
    people = [
        _person("ok1", plan="basic"),
        _person("long-value", notes="x" * 1001),
        _person("many", **{f"a{i}": i for i in range(301)}),
        _person("long-name", **{"n" * 151: 1}),
        _person("big", **{f"a{i}": "y" * 900 for i in range(40)}),  # each value fits, the person does not
        _person("ok2", plan="pro"),
    ]
    results = _destination(us).push(people)
    assert [r.delivered for r in results] == [True, False, False, False, False, True]
    assert {r.code for r in results if not r.delivered} == {"over_limit"}
    assert "1,001 bytes" in results[1].message and "(attributes.notes)" in results[1].message
    assert "301 attributes" in results[2].message and "150 bytes" in results[3].message
    assert "32,000" in results[4].message
    assert not any(r.retryable for r in results)
    words = explain("over_limit", results[1].message, destination=CustomerIODestination)
    assert "over one of Customer.io's limits" in words.summary
    sent = [op["identifiers"]["id"] for batch in _batches(customerio) for op in batch]
    assert sent == ["ok1", "ok2"]


def test_a_batch_goes_in_requests_of_at_most_100_operations_and_under_500000_bytes(customerio):
    us = customerio.us
    small = [_person(f"s{i}") for i in range(250)]
    assert all(r.delivered for r in _destination(us).push(small))
    assert sorted(len(batch) for batch in _batches(customerio)) == [50, 100, 100]  # in flight at once: any order

    customerio.reset()
    customerio.add_workspace(us.site_id, us.api_key, region="us", app_key=us.app_key)
    big = [_person(f"b{i}", **{f"a{j}": "z" * 990 for j in range(30)}) for i in range(60)]  # ~30 KB each
    assert all(r.delivered for r in _destination(us).push(big))
    requests = [r for r in customerio.requests(BATCH, region="us") if r["body"]["batch"]]
    sizes = [len(json.dumps(r["body"], separators=(",", ":"), ensure_ascii=False).encode()) for r in requests]
    assert len(requests) > 3 and all(size < 500_000 for size in sizes)
    assert [r["status"] for r in requests] == [200] * len(requests)
    assert sum(len(r["body"]["batch"]) for r in requests) == 60
    assert len(customerio.people(us.site_id)) == 60


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 200, "body": {"status": "queued"}},
        {"status": 200, "raw": "<html><body>Welcome</body></html>"},
        {"status": 202, "body": {}},
        {"status": 207, "body": {"errors": [{"batch_index": 7, "reason": "invalid", "message": "x"}]}},
        {"status": 207, "body": {"errors": []}},
        {"status": 200, "body": {"status": "queued"}, "apply": True},
        {"kind": "truncate", "status": 200, "cut": 1},
    ],
)
def test_an_answer_of_another_shape_is_not_a_delivery(customerio, fault):
    customerio.fault(BATCH, **fault)
    results = _destination(customerio.us).push([_person("p1"), _person("p2")])
    assert [(r.delivered, r.code, r.retryable) for r in results] == [(False, "unexpected_answer", True)] * 2
    assert "not the documented one" in results[0].message


def test_429_and_5xx_are_retried(customerio, settings):
    settings.DESTINATION_MAX_RETRIES = 3
    customerio.fault(BATCH, status=429, times=2, headers={"Retry-After": "0"}, body={"meta": {"error": "slow"}})
    customerio.fault(BATCH, status=503, times=2)  # faults answer in the order they were added
    sleeps: list[float] = []
    destination = _destination(customerio.us, sleeps=sleeps)
    assert [r.delivered for r in destination.push([_person("r1")])] == [True]
    assert destination.client.rate_limited_waits == 2
    assert [r["status"] for r in customerio.requests(BATCH)] == [429, 429, 503, 503, 200]


def test_the_emulators_rate_limit_is_waited_out(customerio):
    customerio.configure(rate_limit_rps=1, retry_after=1)
    destination = _destination(customerio.us)  # the Retry-After second is sat out for real
    destination.push([_person("first")])
    assert [r.delivered for r in destination.push([_person("second")])] == [True]
    assert customerio.stats()["rate_limited"]  # the second came within the second, and waited


def test_an_outage_that_outlasts_the_retries_is_raised_retryable(customerio, settings):
    settings.DESTINATION_MAX_RETRIES = 1
    customerio.fault(BATCH, status=500, times=5)
    with pytest.raises(ServerError) as failed:
        _destination(customerio.us, sleeps=[]).push([_person("o1")])
    assert failed.value.retryable


def test_an_outage_after_some_requests_keeps_their_results(customerio, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    settings.CUSTOMERIO_PUSH_CONCURRENCY = 1  # one after the other, so "the second request" is a fixed one
    customerio.fault(BATCH, status=500, times=5, after=1)
    results = _destination(customerio.us, sleeps=[]).push([_person(f"o{i}") for i in range(150)])
    assert all(r.delivered for r in results[:100])
    assert all((r.delivered, r.retryable) == (False, True) for r in results[100:])


def test_a_400_for_the_whole_request_fails_its_records_with_the_reason(customerio):
    body = {"errors": [{"reason": "invalid", "field": "batch", "message": "the batch is malformed"}]}
    customerio.fault(BATCH, status=400, body=body)
    results = _destination(customerio.us).push([_person("w1"), _person("w2")])
    assert [(r.delivered, r.code, r.retryable) for r in results] == [(False, "invalid", False)] * 2
    assert "batch: the batch is malformed" in results[0].message


def test_a_400_about_the_size_is_split_by_the_engine(customerio):
    customerio.configure(max_batch_bytes=400)  # a reading of "500kb" stricter than ours: two people at most
    destination = _destination(customerio.us)
    people = [_person(f"z{i}", plan="x" * 60) for i in range(6)]
    with pytest.raises(PayloadTooLargeError):
        destination.push(people)
    results = engine.push_isolating(destination, people, create_new_fields=False)
    assert [r.delivered for r in results] == [True] * 6
    assert len(customerio.people(customerio.us.site_id)) == 6


def test_a_refused_pair_raises(customerio):
    destination = _destination(SimpleNamespace(**{**vars(customerio.us), "api_key": "revoked"}))
    with pytest.raises(AuthError):
        destination.push([_person("x")])


# --- Looking people up --------------------------------------------------------------------------------


def test_find_existing_with_an_app_api_key(customerio):
    us = customerio.us
    for i in range(0, 150, 3):
        customerio.add_person(us.site_id, id=f"k{i}")
    people = [_person(f"k{i}") for i in range(150)]
    assert _destination(us).find_existing(people) == [i % 3 == 0 for i in range(150)]
    calls = customerio.requests(LOOKUP, region="us")
    assert [len(c["body"]["ids"]) for c in calls] == [100, 50] and {c["query"]["id_type"] for c in calls} == {"id"}


def test_find_existing_by_email_in_the_eu(customerio):
    eu = customerio.eu
    customerio.add_person(eu.site_id, email="Known@Example.com")
    people = [_person("known@example.com", key_name="email"), _person("new@example.com", key_name="email")]
    assert _destination(eu).find_existing(people) == [True, False]
    assert customerio.requests(LOOKUP, region="eu")[0]["query"]["id_type"] == "email"


def test_find_existing_stays_under_the_app_apis_10_per_second(customerio):
    people = [_person(f"m{i}") for i in range(1200)]  # 12 calls
    assert _destination(customerio.us).find_existing(people) == [False] * 1200
    assert not customerio.stats()["rate_limited"]


def test_find_existing_without_an_app_api_key(customerio):
    with pytest.raises(DestinationError) as failed:
        _destination(customerio.us, app=False).find_existing([_person("k1")])
    assert failed.value.code == "no_app_api_key" and not failed.value.retryable
    assert "needs an App API key" in failed.value.message
    assert not customerio.requests(LOOKUP)


def test_a_lookup_answer_of_another_shape_is_raised_retryable(customerio):
    customerio.fault(LOOKUP, status=200, body={"customers": [{"customer": {"id": "someone-else"}}]})
    with pytest.raises(DestinationError) as failed:
        _destination(customerio.us).find_existing([_person("k1")])
    assert failed.value.code == "unexpected_answer" and failed.value.retryable


# --- Events ---------------------------------------------------------------------------------------


def test_an_event_sent_again_is_not_a_second_event(customerio):
    us = customerio.us
    destination = _destination(us)
    person = _person("e1")
    destination.push([person])
    for _ in range(2):
        destination.track("form_submitted", person, {"flowName": "Booth"}, event_id="flowsync-7-42")
    destination.track("form_submitted", person, {"flowName": "Booth"}, event_id="flowsync-7-43")
    events = customerio.events(us.site_id)
    assert len(events) == 2 and customerio.stats()["deduplicated_events"] == 1
    assert events[0]["id"] == rules.dedupe_id("flowsync-7-42") and ULID.match(events[0]["id"])
    assert events[0]["identifiers"] == {"id": "e1"} and events[0]["attributes"] == {"flowName": "Booth"}


def test_an_event_customer_io_refuses_raises(customerio):
    destination = _destination(customerio.us)
    with pytest.raises(ValidationError, match=r"refused the event: identifiers\.email"):
        destination.track("signed_up", _person("x@example.com", key_name="email"), {}, event_id="e")
    with pytest.raises(ValidationError, match="100 bytes"):
        destination.track("n" * 101, _person("x"), {}, event_id="e")
    customerio.fault(BATCH, status=200, body={"ok": True})
    with pytest.raises(DestinationError) as unexpected:
        destination.track("signed_up", _person("x"), {}, event_id="e")
    assert unexpected.value.code == "unexpected_answer" and unexpected.value.retryable


# --- Verify -----------------------------------------------------------------------------------------


def test_verify_checks_region_workspace_writing_and_the_app_key(customerio):
    us = customerio.us
    destination = _destination(us)
    destination.environment_id = us.environment_id
    assert destination.verify().detail == {"environment_id": us.environment_id, "app_api": True}
    destination.environment_id = us.environment_id + 1000
    with pytest.raises(AuthError, match=r"now for Customer\.io workspace"):
        destination.verify()
    destination.environment_id = us.environment_id
    customerio.add_workspace(us.site_id, us.api_key, region="us", app_key="rotated")
    with pytest.raises(AuthError) as refused:
        destination.verify()
    assert refused.value.code == "app_key_refused"
    assert [f.name for f in destination.fetch_fields()][:2] == ["id", "email"]


# --- Through the engine, in the EU ----------------------------------------------------------------------


@pytest.mark.django_db
def test_an_eu_workspace_end_to_end_through_the_engine(customerio, workspace_a, alice):
    eu = customerio.eu
    flow = make_flow(
        workspace_a,
        name="Booth",
        extra=[
            {"key": "age", "label": "Age", "field_type": FieldType.NUMBER},
            {"key": "signed_up", "label": "Signed up", "field_type": FieldType.DATE},
        ],
    )
    integration = integration_connect(
        workspace=workspace_a, actor=alice, kind="customerio", data=_connect_data(eu, app_api_key="")
    )
    assert integration.config["region"] == "eu" and integration.config["environment_id"] == eu.environment_id
    assert integration.destination_summary == f"EU region, workspace {eu.environment_id}, people identified by email"
    mapping_save(
        integration=integration,
        actor=alice,
        choices=[
            RowChoice("email", "email"),
            RowChoice("first_name", "first_name"),
            RowChoice("age", "age", create_new=True),
            RowChoice("signed_up", "signed_up", create_new=True),
        ],
    )
    integration.event_name = "form_submitted"
    integration.save()
    for i in range(3):
        contact_capture(
            flow=flow,
            raw={"email": f"Fan{i}@Example.com", "first_name": f"Fan{i}", "age": 30 + i, "signed_up": "2024-05-01"},
            source="api",
        )
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert (run.status, run.total, run.delivered, run.failed) == ("succeeded", 3, 3, 0)
    person = customerio.person(eu.site_id, "fan1@example.com")
    assert person["email"] == "fan1@example.com"
    assert person["attributes"] == {"first_name": "Fan1", "age": 31, "signed_up": 1714521600}
    rows = SyncRecord.objects.filter(run=run).order_by("contact_id")
    assert [r.status for r in rows] == ["delivered"] * 3
    assert rows[0].identifier == "fan0@example.com"
    assert rows[0].payload == {
        "type": "person",
        "action": "identify",
        "identifiers": {"email": "fan0@example.com"},
        "attributes": {"first_name": "Fan0", "age": 30, "signed_up": 1714521600},
    }
    events = customerio.events(eu.site_id)
    assert len(events) == 3 and all(ULID.match(e["id"]) for e in events)
    assert {e["identifiers"]["email"] for e in events} == {f"fan{i}@example.com" for i in range(3)}
    assert not customerio.requests(BATCH, region="us")  # nothing went through the US host


@pytest.mark.django_db
def test_leave_existing_people_unchanged_looks_them_up_with_the_app_api_key(customerio, workspace_a, alice):
    us = customerio.us
    flow = make_flow(workspace_a, extra=[{"key": "member", "label": "Member number", "field_type": FieldType.TEXT}])
    integration = integration_connect(workspace=workspace_a, actor=alice, kind="customerio", data=_connect_data(us))
    assert CustomerIODestination.supports(Capability.LOOKUP, integration.config)
    mapping_save(
        integration=integration,
        actor=alice,
        choices=[RowChoice("member", "id"), RowChoice("email", "email"), RowChoice("first_name", "first_name")],
    )
    integration.overwrite_existing = False
    integration.save()
    customerio.add_person(us.site_id, id="m1", attributes={"first_name": "Kept"})
    for number in ("m1", "m2"):
        contact_capture(flow=flow, raw={"member": number, "email": f"{number}@example.com", "first_name": "New"})
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert (run.status, run.delivered, run.skipped) == ("succeeded", 1, 1)
    assert SyncRecord.objects.get(run=run, identifier="m1").error_code == "existing_user"
    assert customerio.person(us.site_id, "m1")["attributes"] == {"first_name": "Kept"}
    assert customerio.person(us.site_id, "m2")["email"] == "m2@example.com"
    assert [c["body"]["ids"] for c in customerio.requests(LOOKUP, region="us")][-1] == ["m1", "m2"]


def test_a_batchs_requests_go_in_flight_together_and_an_outage_of_one_keeps_the_others(customerio, settings):
    # 250 people are three requests; with the emulator answering in 200 ms, they are all in flight at
    # once (the emulator counts them). One of them meets an outage: only its people fail (retryable).
    settings.CUSTOMERIO_PUSH_CONCURRENCY = 4
    customerio.configure(latency_ms=200)
    customerio.fault(BATCH, status=503, times=1)
    people = [_person(f"p{i}") for i in range(250)]
    results = _destination(customerio.us, max_retries=0).push(people)
    assert customerio.stats()["most_in_flight"] == 3
    failed = [r for r in results if not r.delivered]
    assert len(results) == 250 and len(failed) in (50, 100) and all(r.retryable for r in failed)
    assert len(customerio.people(customerio.us.site_id)) == 250 - len(failed)
