from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.models import Contact
from tests.factories import make_flow

pytestmark = pytest.mark.django_db


def test_it_creates_one_contact(api, flow):
    response = api({"flow": flow.public_id, "fields": {"email": " Ada@Example.com ", "age": 36, "vip": True}})
    assert response.status_code == 201, response.content
    contact = Contact.objects.get(pk=response.json()["id"])
    assert contact.email == "ada@example.com"
    assert contact.data == {"email": "Ada@Example.com", "age": 36, "vip": True}
    assert contact.source == Contact.Source.API and contact.workspace == flow.workspace


def test_it_types_values(api, flow):
    body = {"email": "a@b.co", "age": "42.5", "birthday": "1990-02-03", "size": "M", "phone": "+1 (555) 010-9999"}
    response = api({"flow": flow.public_id, "fields": body})
    assert response.status_code == 201
    assert Contact.objects.get().data == {**body, "age": 42.5}


def test_batch_answers_per_item(api, flow):
    items = [
        {"flow": flow.public_id, "fields": {"email": "one@example.com"}},
        {"flow": flow.public_id, "fields": {"email": "not-an-email"}},
        {"flow": flow.public_id, "fields": {"email": "three@example.com", "age": "ten"}},
        {"flow": flow.public_id, "fields": {"email": "four@example.com"}},
    ]
    response = api({"contacts": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["rejected"]) == (2, 2)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["created", "rejected", "rejected", "created"]
    assert "not a valid email" in body["results"][1]["errors"]["email"]
    assert body["results"][2]["errors"] == {"age": "Age: 'ten' is not a number"}
    assert set(Contact.objects.values_list("email", flat=True)) == {"one@example.com", "four@example.com"}


def test_batch_of_1000_is_one_request(api, flow):
    items = [{"flow": flow.public_id, "fields": {"email": f"u{i}@example.com"}} for i in range(1000)]
    response = api({"contacts": items})
    assert response.status_code == 200 and response.json()["created"] == 1000
    assert Contact.objects.count() == 1000


def test_a_batch_loads_its_flows_in_a_fixed_number_of_queries(api, flow, django_assert_max_num_queries):
    # Flows are loaded together, not one query per public id: 200 unknown ids cost no more than one.
    unknown = [{"flow": f"f{i:07d}x", "fields": {"email": "x@example.com"}} for i in range(200)]
    known = [{"flow": flow.public_id, "fields": {"email": f"u{i}@example.com"}} for i in range(3)]
    with django_assert_max_num_queries(12):
        response = api({"contacts": known + unknown})
    assert response.json()["created"] == 3


def test_flow_of_another_workspace_is_not_found(api, workspace_b):
    foreign = make_flow(workspace_b)
    response = api({"flow": foreign.public_id, "fields": {"email": "x@example.com"}})
    assert response.status_code == 404
    assert Contact.objects.count() == 0


# Each bad request: its status, its error code, and a word of the message that names the problem.
BAD_REQUESTS = [
    ("no token", dict(body={}, token=None), 401, "unauthorized", "Bearer"),
    ("wrong token", dict(body={}, token="fs_wrong"), 401, "unauthorized", "not valid"),
    ("not json", dict(body=None, raw="{email:"), 400, "invalid_json", "not valid JSON"),
    ("NaN", dict(body=None, raw='{"flow": NaN}'), 400, "invalid_json", "NaN"),
    (
        "form encoded",
        dict(body=None, raw="a=b", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
        "JSON",
    ),
    ("a list", dict(body=[1, 2]), 400, "invalid", "JSON object"),
    ("empty batch", dict(body={"contacts": []}), 400, "invalid", "non-empty"),
    ("batch not a list", dict(body={"contacts": {"a": 1}}), 400, "invalid", "non-empty list"),
    ("batch extra key", dict(body={"contacts": [{}], "x": 1}), 400, "invalid", "x"),
    ("oversized batch", dict(body={"contacts": [{}] * 1001}), 413, "batch_too_large", "at most 1000"),
    ("no flow", dict(body={"fields": {"email": "a@b.co"}}), 422, "invalid", "flow"),
    ("unknown flow", dict(body={"flow": "nope", "fields": {"email": "a@b.co"}}), 404, "flow_not_found", "flow"),
    ("fields not an object", dict(body={"flow": "$FLOW", "fields": ["a"]}), 422, "invalid", "fields"),
    ("unknown item key", dict(body={"flow": "$FLOW", "fields": {}, "extra": 1}), 422, "invalid", "extra"),
    ("unknown field", dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "shoe": 4}}), 422, "invalid", "shoe"),
    (
        "missing required",
        dict(body={"flow": "$FLOW", "fields": {"first_name": "Ada"}}),
        422,
        "invalid",
        "Email is required",
    ),
    ("invalid email", dict(body={"flow": "$FLOW", "fields": {"email": "ada@"}}), 422, "invalid", "email"),
    (
        "number as text",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "age": "ten"}}),
        422,
        "invalid",
        "Age",
    ),
    (
        "decimal comma",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "age": "1,5"}}),
        422,
        "invalid",
        "ambiguous",
    ),
    ("number as bool", dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "age": True}}), 422, "invalid", "Age"),
    (
        "bad date",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "birthday": "31/12/1990"}}),
        422,
        "invalid",
        "Birthday",
    ),
    ("bool as text", dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "vip": "yes"}}), 422, "invalid", "VIP"),
    ("bad choice", dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "size": "XL"}}), 422, "invalid", "Size"),
    (
        "bad phone",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "phone": "call me"}}),
        422,
        "invalid",
        "Phone",
    ),
    (
        "text as object",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "first_name": {"a": 1}}}),
        422,
        "invalid",
        "First name",
    ),
    (
        "too long",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "first_name": "x" * 2001}}),
        422,
        "invalid",
        "2000",
    ),
    # PostgreSQL's text and jsonb store neither of these: refused as input, never a 500 at INSERT.
    (
        "lone surrogate",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "first_name": "\ud800"}}),
        422,
        "invalid",
        "lone surrogate",
    ),
    (
        "email without a dotted domain",
        dict(body={"flow": "$FLOW", "fields": {"email": "user@localhost"}}),
        422,
        "invalid",
        "Email: 'user@localhost' is not a valid email address: it needs a full domain after the @",
    ),
    (
        "NUL",
        dict(body={"flow": "$FLOW", "fields": {"email": "a@b.co", "first_name": "Ada\u0000"}}),
        422,
        "invalid",
        "NUL",
    ),
    (
        "too many fields",
        dict(body={"flow": "$FLOW", "fields": {f"k{i}": 1 for i in range(101)}}),
        422,
        "invalid",
        "too many",
    ),
]


@pytest.mark.parametrize(
    ("case", "request_kwargs", "status", "code", "word"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_gets_a_clear_4xx_and_stores_nothing(api, flow, case, request_kwargs, status, code, word):
    kwargs = dict(request_kwargs)
    if kwargs.get("body") is not None:
        kwargs["body"] = json.loads(json.dumps(kwargs["body"]).replace("$FLOW", flow.public_id))
    response = api(**kwargs)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert word.lower() in json.dumps(error).lower()
    assert Contact.objects.count() == 0


def test_a_lone_surrogate_in_a_batch_rejects_its_item_only(api, flow):
    # The batch path stores with bulk_create, not the single-contact INSERT: the same refusal must hold there.
    items = [
        {"flow": flow.public_id, "fields": {"email": "one@example.com", "first_name": "x\udfff"}},
        {"flow": flow.public_id, "fields": {"email": "two@example.com", "first_name": "Ada"}},
    ]
    response = api({"contacts": items})
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["rejected", "created"]
    assert "First name" in response.json()["results"][0]["errors"]["first_name"]
    assert list(Contact.objects.values_list("email", flat=True)) == ["two@example.com"]


def test_disabled_flow_is_refused(api, flow):
    flow.is_enabled = False
    flow.save()
    response = api({"flow": flow.public_id, "fields": {"email": "a@b.co"}})
    assert response.status_code == 409 and response.json()["error"]["code"] == "flow_disabled"
    assert Contact.objects.count() == 0


def test_oversized_body_is_413(api, flow, settings):
    settings.CAPTURE_MAX_BODY_BYTES = 1000
    response = api({"flow": flow.public_id, "fields": {"email": "a@b.co", "first_name": "x" * 2000}})
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


def test_get_is_405(api_token, client):
    response = client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 405


def test_rotated_token_stops_working(api, flow, workspace_a, alice):
    from flows.services import capture_token_rotate

    new_token = capture_token_rotate(workspace=workspace_a, actor=alice)
    assert api({"flow": flow.public_id, "fields": {"email": "a@b.co"}}).status_code == 401
    assert api({"flow": flow.public_id, "fields": {"email": "a@b.co"}}, token=new_token).status_code == 201


def test_rate_limit_per_flow(api, flow, settings):
    settings.RATELIMIT_API_PER_FLOW = 3
    bodies = [{"flow": flow.public_id, "fields": {"email": f"u{i}@example.com"}} for i in range(4)]
    assert [api(b).status_code for b in bodies] == [201, 201, 201, 429]
    limited = api(bodies[0])
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited["Retry-After"]) > 0


def test_rate_limit_per_ip(api, flow, settings):
    settings.RATELIMIT_API_PER_IP = 2
    statuses = [api({"flow": flow.public_id, "fields": {"email": f"u{i}@example.com"}}).status_code for i in range(3)]
    assert statuses == [201, 201, 429]


def test_the_ip_limit_counts_requests_and_the_flow_limit_counts_contacts(api, flow, settings):
    settings.RATELIMIT_API_PER_IP, settings.RATELIMIT_API_PER_FLOW = 2, 8
    batch = {"contacts": [{"flow": flow.public_id, "fields": {"email": f"u{i}@example.com"}} for i in range(4)]}
    assert [api(batch).status_code for _ in range(2)] == [200, 200]  # 2 requests, 8 contacts: both budgets full
    settings.RATELIMIT_API_PER_IP = 10
    assert api(batch).status_code == 429  # the flow's budget, not the IP's, refuses the 9th contact


def test_another_workspace_cannot_spend_a_flows_budget(api, flow, settings, workspace_b, charlie):
    """Public ids are printed on public pages: naming another workspace's flow must cost that flow nothing."""
    from flows.services import capture_token_rotate

    settings.RATELIMIT_API_PER_FLOW = 3
    other_token = capture_token_rotate(workspace=workspace_b, actor=charlie)
    foreign = {"contacts": [{"flow": flow.public_id, "fields": {"email": "x@example.com"}}] * 3}
    for _ in range(3):
        response = api(foreign, token=other_token)
        assert response.status_code == 200
        assert {r["code"] for r in response.json()["results"]} == {"flow_not_found"}
    statuses = [api({"flow": flow.public_id, "fields": {"email": f"u{i}@example.com"}}).status_code for i in range(4)]
    assert statuses == [201, 201, 201, 429]


# Any code point JSON can carry, lone surrogates ("\ud800") and NUL included: the default
# st.text() leaves surrogates out, and they are exactly what PostgreSQL refuses to store.
texts = st.text(st.characters(codec=None, categories=None), max_size=30) | st.sampled_from(
    ["\ud800", "x\udfff", "a\x00"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
field_keys = st.sampled_from(["email", "first_name", "age", "birthday", "vip", "size", "phone", "other"])
# Random fields are nearly always refused for some other reason; a valid email and one free
# text field make an item that is stored unless that text is refused, so the text reaches the database.
fields = st.dictionaries(field_keys, json_values) | st.fixed_dictionaries(
    {"email": st.just("ada@example.com"), "first_name": texts}
)
item = (
    st.fixed_dictionaries(
        {
            "flow": st.sampled_from(["$FLOW", "nope"]) | json_values,
            "fields": fields | json_values,
        }
    )
    | json_values
)
body = item | st.fixed_dictionaries({"contacts": st.lists(item, max_size=5) | json_values}) | json_values


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(payload=body)
def test_random_json_never_500(api, flow, payload):
    text = json.dumps(payload).replace("$FLOW", flow.public_id)
    response = api(None, raw=text)
    assert response.status_code < 500
    assert response.status_code in {200, 201, 400, 404, 409, 413, 422}
    if response.status_code not in {200, 201}:
        assert response.json()["error"]["message"]
