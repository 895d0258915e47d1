"""Consent in the emulators (raw HTTP, no Flowsync client): Iterable's channels, message types and
Subscriptions API, lists/unsubscribe and the overwriting updateSubscriptions (Swagger;
../shared/reference/peers-consent-erasure.md 2.1), and Customer.io's subscription topics and
``cio_subscription_preferences`` (reference/customerio.md 2.3 and 5, the Track OpenAPI)."""

from __future__ import annotations

import urllib.parse

import pytest
import requests

from emulators.customerio.control import EmulatorControl as CustomerioControl
from emulators.customerio.server import start_in_thread as start_customerio
from emulators.iterable.control import EmulatorControl
from emulators.iterable.server import start_in_thread
from emulators.iterable.state import RATE_LIMITS

NOT_FOUND = {"msg": "Endpoint not found", "code": "NotFound", "params": None}


def bulk(api, group, group_id, action="subscribe", **body):
    return api("PUT", f"/api/subscriptions/{group}/{group_id}", params={"action": action}, json=body)


# --- Iterable: channels and message types ------------------------------------------------------------


def test_every_project_has_the_seeded_channels_and_message_types(api, iterable):
    assert api("GET", "/api/channels").json() == {
        "channels": [
            {"id": 1, "name": "Marketing email", "channelType": "Marketing", "messageMedium": "Email"},
            {"id": 2, "name": "Transactional email", "channelType": "Transactional", "messageMedium": "Email"},
        ]
    }
    types = api("GET", "/api/messageTypes").json()["messageTypes"]
    assert [(t["id"], t["name"], t["channelId"], t["subscriptionPolicy"]) for t in types] == [
        (11, "Newsletter", 1, "OptIn"),
        (12, "Product updates", 1, "OptOut"),
    ]
    assert all(isinstance(t["createdAt"], int) and isinstance(t["updatedAt"], int) for t in types)
    # The userID-based EU project has the same ones.
    eu = api("GET", "/api/channels", key=iterable.keys.eu_server_side, region="eu")
    assert [c["id"] for c in eu.json()["channels"]] == [1, 2]


def test_channels_and_message_types_answer_the_swaggers_shapes(api, iterable_swagger):
    for path, definition in (("/api/channels", "ChannelsResponse"), ("/api/messageTypes", "MessageTypesResponse")):
        errors: dict[str, str] = {}
        iterable_swagger._check({"$ref": f"#/definitions/{definition}"}, api("GET", path).json(), "obj", errors)
        assert errors == {}, (path, errors)


@pytest.mark.parametrize("path", ["/api/channels", "/api/messageTypes"])
def test_channels_and_message_types_take_the_keys_lists_takes(api, iterable, path):
    # reference 1.2: read-only keys may GET /api/channels and /api/messageTypes; client-side keys may not.
    assert api("GET", path, key=iterable.keys.read_only).status_code == 200
    assert api("GET", path, key=iterable.keys.mobile).json()["code"] == "Forbidden"
    refused = api("GET", path, key="nope")
    assert refused.status_code == 401 and refused.json()["code"] == "BadApiKey"
    assert api("GET", path, region="eu").status_code == 401  # a US key in the EU


def test_channels_and_message_types_are_limited_to_100_a_second_each(api, iterable):
    # Swagger: "Rate limit: 100 requests/second, per project", each endpoint its own budget.
    assert RATE_LIMITS["channels.get"] == RATE_LIMITS["messageTypes.get"] == RATE_LIMITS["lists.get"] == 100
    iterable.configure(rate_limit_overrides={"channels.get": 1, "messageTypes.get": 1})
    assert [api("GET", "/api/channels").status_code for _ in range(2)] == [200, 429]
    assert api("GET", "/api/messageTypes").status_code == 200
    assert api("GET", "/api/lists").status_code == 200


# --- Iterable: the Subscriptions API, bulk -----------------------------------------------------------


def test_an_email_list_subscription_is_added_and_removed_alone(api, iterable):
    first, second = iterable.add_list("Newsletter"), iterable.add_list("Offers")
    api("POST", "/api/lists/subscribe", json={"listId": first, "subscribers": [{"email": "a@b.co"}]})
    answer = bulk(api, "emailList", second, users=["a@b.co", "new@b.co"], usersByUserId=["u-9"])
    assert answer.status_code == 200 and answer.json()["code"] == "Success"
    # Additive: the list lists/subscribe put the user on stays, in the same profile field.
    assert iterable.subscriptions("a@b.co") == {"userListIds": [first, second]}
    # Unknown users are created, as Iterable creates unknown users on writes (reference 6.1).
    assert iterable.subscriptions("new@b.co") == {"userListIds": [second]}
    assert iterable.subscriptions(user_id="u-9") == {"userListIds": [second]}
    assert bulk(api, "emailList", second, "unsubscribe", users=["a@b.co"]).status_code == 200
    assert iterable.subscriptions("a@b.co") == {"userListIds": [first]}


def test_an_email_based_project_keeps_lists_in_email_list_ids(api, iterable):
    iterable.add_key("emailproject-1234", project_id=3, project_type="email")
    list_id = iterable.add_list("Newsletter", project_id=3)
    answer = api(
        "PUT",
        f"/api/subscriptions/emailList/{list_id}",
        key="emailproject-1234",
        params={"action": "subscribe"},
        json={"users": ["a@b.co"]},
    )
    assert answer.status_code == 200
    assert iterable.subscriptions("a@b.co", project_id=3) == {"emailListIds": [list_id]}


def test_a_message_type_moves_between_opted_in_and_opted_out(api, iterable):
    bulk(api, "messageType", 12, "unsubscribe", users=["a@b.co"])
    bulk(api, "messageType", 11, users=["a@b.co"])
    assert iterable.subscriptions("a@b.co") == {"subscribedMessageTypeIds": [11], "unsubscribedMessageTypeIds": [12]}
    bulk(api, "messageType", 12, users=["a@b.co"])
    bulk(api, "messageType", 11, "unsubscribe", users=["a@b.co"])
    assert iterable.subscriptions("a@b.co") == {"subscribedMessageTypeIds": [12], "unsubscribedMessageTypeIds": [11]}


def test_a_channel_unsubscribe_is_listed_and_a_subscribe_takes_it_off(api, iterable):
    bulk(api, "messageChannel", 1, "unsubscribe", users=["a@b.co"])
    bulk(api, "messageChannel", 2, "unsubscribe", users=["a@b.co"])
    assert iterable.subscriptions("a@b.co") == {"unsubscribedChannelIds": [1, 2]}
    bulk(api, "messageChannel", 1, users=["a@b.co"])
    assert iterable.subscriptions("a@b.co") == {"unsubscribedChannelIds": [2]}
    bulk(api, "messageChannel", 1, users=["new@b.co"])  # subscribed to a channel: nothing to list
    assert iterable.subscriptions("new@b.co") == {}


@pytest.mark.parametrize("group", ["messagetype", "MESSAGETYPE", "MessageType"])
def test_the_group_is_case_insensitive(api, iterable, group):
    # Swagger: "Subscription group (i.e.: emailList, messageType, messageChannel) [Alphanumeric, case insensitive]"
    assert bulk(api, group, 11, users=["a@b.co"]).status_code == 200
    assert iterable.subscriptions("a@b.co") == {"subscribedMessageTypeIds": [11]}


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/api/subscriptions/newsletters/11", "subscribe"),  # not a group
        ("/api/subscriptions/messageType/eleven", "subscribe"),  # not numeric
        ("/api/subscriptions/messageType/-11", "subscribe"),
        ("/api/subscriptions/messageType/99", "subscribe"),  # no such message type
        ("/api/subscriptions/messageChannel/3", "subscribe"),  # no such channel
        ("/api/subscriptions/emailList/999", "subscribe"),  # no such list
        ("/api/subscriptions/messageType/11", None),  # the action is required
        ("/api/subscriptions/messageType/11", "optIn"),
    ],
)
def test_a_bad_group_id_or_action_is_a_400_and_changes_nothing(api, iterable, path, action):
    params = {"action": action} if action else None
    answer = api("PUT", path, params=params, json={"users": ["a@b.co"]})
    assert answer.status_code == 400 and answer.json()["code"] == "BadParams", answer.text
    assert iterable.users() == []


def test_an_email_and_a_user_id_of_two_users_are_a_409_and_nothing_is_applied(api, iterable):
    api("POST", "/api/users/update", json={"email": "a@b.co", "userId": "u-a"})
    api("POST", "/api/users/update", json={"email": "other@b.co", "userId": "a@b.co"})  # a userId shaped like an email
    answer = bulk(api, "messageType", 11, users=["a@b.co", "c@b.co"], usersByUserId=["a@b.co"])
    assert answer.status_code == 409
    assert answer.json()["code"] == "ExternalKeyConflict" and answer.json()["msg"] == "Email/userId conflict"
    assert iterable.subscriptions("a@b.co") == iterable.subscriptions("other@b.co") == {}
    assert iterable.user("c@b.co") is None  # not even created
    # The same value in both lists naming one user is no conflict.
    same = bulk(api, "messageType", 11, users=["a@b.co"], usersByUserId=["u-a"])
    assert same.status_code == 200 and iterable.subscriptions("a@b.co") == {"subscribedMessageTypeIds": [11]}


def test_a_disabled_subscriptions_api_answers_404_on_every_endpoint(api, iterable):
    assert iterable.configure_project(subscriptions_api=False) == {
        "project_id": 1,
        "subscriptions_api": False,
        "subscriptions_bulk_status": 200,
    }
    assert bulk(api, "messageType", 11, users=["a@b.co"]).json() == NOT_FOUND
    assert bulk(api, "messageType", 11, users=["a@b.co"]).status_code == 404
    for method in ("PATCH", "DELETE"):
        for path in ("/api/subscriptions/messageType/11/user/a@b.co", "/api/subscriptions/messageType/11/byUserId/u"):
            answer = api(method, path)
            assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
    # Whatever the request holds: the endpoint is not there.
    assert api("PUT", "/api/subscriptions/nonsense/x").json() == NOT_FOUND
    assert iterable.users() == []
    # Only this project's: the EU project still has it; the rest of the API answers as before.
    eu = api("PATCH", "/api/subscriptions/messageType/11/byUserId/u-1", key=iterable.keys.eu_server_side, region="eu")
    assert eu.status_code == 200
    assert api("GET", "/api/messageTypes").status_code == 200
    iterable.configure_project(subscriptions_api=True)
    assert bulk(api, "messageType", 11, users=["a@b.co"]).status_code == 200


def test_the_success_answer_may_be_a_202_with_no_body(api, iterable):
    assert bulk(api, "messageType", 11, users=["a@b.co"]).json()["code"] == "Success"
    iterable.configure_project(subscriptions_bulk_status=202)
    answer = bulk(api, "messageType", 12, users=["a@b.co"])
    assert (answer.status_code, answer.content) == (202, b"")
    one = api("DELETE", "/api/subscriptions/messageType/11/user/a@b.co")
    assert (one.status_code, one.content) == (202, b"")
    assert iterable.subscriptions("a@b.co") == {
        "subscribedMessageTypeIds": [12],
        "unsubscribedMessageTypeIds": [11],
    }
    # Errors are answered as before.
    assert bulk(api, "messageType", 99, users=["a@b.co"]).status_code == 400


def test_the_project_settings_are_checked(iterable):
    with pytest.raises(requests.HTTPError) as refused:
        iterable.configure_project(subscriptions_bulk_status=201)
    assert refused.value.response.status_code == 400
    with pytest.raises(requests.HTTPError):
        iterable._call("POST", "projects", json={"project_id": 1, "subscriptions_api": "yes"})
    # A key's project may be given them when it is added.
    iterable.add_key("nosubs-123456", project_id=4, subscriptions_api=False)
    answer = requests.patch(
        f"{iterable.server.url}/us/api/subscriptions/messageType/11/user/a@b.co",
        headers={"Api-Key": "nosubs-123456"},
        timeout=10,
    )
    assert answer.status_code == 404


# --- Iterable: the Subscriptions API, one user -------------------------------------------------------


def test_patch_subscribes_and_delete_unsubscribes_one_user_by_email_or_user_id(api, iterable):
    list_id = iterable.add_list("Newsletter")
    email = "ada+news@b.co"
    quoted = urllib.parse.quote(email, safe="")
    assert api("PATCH", f"/api/subscriptions/emailList/{list_id}/user/{quoted}").json()["code"] == "Success"
    assert api("PATCH", f"/api/subscriptions/messageType/11/user/{quoted}").status_code == 200
    assert iterable.subscriptions(email) == {"userListIds": [list_id], "subscribedMessageTypeIds": [11]}
    assert api("DELETE", f"/api/subscriptions/messageType/11/user/{quoted}").status_code == 200
    assert iterable.subscriptions(email) == {
        "userListIds": [list_id],
        "subscribedMessageTypeIds": [],
        "unsubscribedMessageTypeIds": [11],
    }
    assert api("DELETE", "/api/subscriptions/messageChannel/1/byUserId/u-7").status_code == 200
    assert iterable.subscriptions(user_id="u-7") == {"unsubscribedChannelIds": [1]}
    assert api("PATCH", "/api/subscriptions/messageChannel/1/byUserId/u-7").status_code == 200
    assert iterable.subscriptions(user_id="u-7") == {"unsubscribedChannelIds": []}


def test_one_user_calls_check_the_group_and_the_identifier(api, iterable):
    assert api("PATCH", "/api/subscriptions/messageType/99/user/a@b.co").json()["code"] == "BadParams"
    assert api("DELETE", "/api/subscriptions/lists/11/user/a@b.co").json()["code"] == "BadParams"
    bad_email = api("PATCH", "/api/subscriptions/messageType/11/user/not-an-email")
    assert bad_email.status_code == 400 and bad_email.json()["code"] == "InvalidEmailAddressError"
    assert api("PATCH", "/api/subscriptions/messageType/11/users/a@b.co").status_code == 404  # no such endpoint
    assert api("PUT", "/api/subscriptions/messageType/11/user/a@b.co").status_code == 404
    assert iterable.users() == []


def test_a_user_id_based_project_cannot_create_an_email_only_user(api, iterable):
    # As write_user refuses it there (reference 6.1: userId is the identifier): the whole request, nothing applied.
    eu = iterable.keys.eu_server_side
    answer = api(
        "PUT",
        "/api/subscriptions/messageType/11",
        key=eu,
        region="eu",
        params={"action": "subscribe"},
        json={"users": ["a@b.co"], "usersByUserId": ["u-1"]},
    )
    assert answer.status_code == 400 and answer.json()["msg"] == "userId is required in a userID-based project"
    assert iterable.users(project_id=2) == []
    by_id = api("PATCH", "/api/subscriptions/messageType/11/byUserId/u-1", key=eu, region="eu")
    assert by_id.status_code == 200
    assert iterable.subscriptions(user_id="u-1", project_id=2) == {"subscribedMessageTypeIds": [11]}


def test_an_email_based_project_refuses_an_unknown_user_id_alone(api, iterable):
    iterable.add_key("emailproject-1234", project_id=3, project_type="email")
    answer = api("PATCH", "/api/subscriptions/messageType/11/byUserId/u-9", key="emailproject-1234")
    assert answer.status_code == 400 and answer.json()["code"] == "InvalidUserIdError"
    assert iterable.users(project_id=3) == []


def test_a_forgotten_user_is_a_409_and_not_stored_again(api, iterable):
    iterable.forget("gone@b.co")
    answer = bulk(api, "messageType", 11, users=["a@b.co", "gone@b.co"])
    assert answer.status_code == 409 and answer.json()["code"] == "ForgottenUserError"
    assert iterable.users() == []


@pytest.mark.parametrize("key_type", ["read_only", "mobile", "javascript"])
def test_only_a_server_side_key_may_change_subscriptions(api, iterable, key_type):
    key = getattr(iterable.keys, key_type)
    assert bulk(api, "messageType", 11, users=["a@b.co"]).status_code == 200
    refused = api("PUT", "/api/subscriptions/messageType/11", key=key, params={"action": "subscribe"}, json={})
    assert refused.status_code == 403
    assert api("PATCH", "/api/subscriptions/messageType/11/user/a@b.co", key=key).status_code == 403


def test_the_bulk_body_is_checked(api, iterable, iterable_swagger):
    answer = bulk(api, "messageType", 11, users="a@b.co")
    assert answer.status_code == 400 and answer.json()["params"] == {"obj.users": "Array value expected"}
    typo = bulk(api, "messageType", 11, emails=["a@b.co"])  # Swagger's BulkSubscriptionActionRequest is closed
    assert typo.json()["params"] == {"obj.emails": "Unknown field"}
    empty = api("PUT", "/api/subscriptions/messageType/11", params={"action": "subscribe"})
    assert empty.status_code == 400 and empty.json()["code"] == "BadJsonBody"
    assert bulk(api, "messageType", 11).status_code == 200  # nobody named: nothing to do
    assert iterable.users() == []


# --- Iterable: lists/unsubscribe -----------------------------------------------------------------------


def test_lists_unsubscribe_takes_users_off_the_list_and_creates_nobody(api, iterable):
    first, second = iterable.add_list("Newsletter"), iterable.add_list("Offers")
    for list_id in (first, second):
        api(
            "POST",
            "/api/lists/subscribe",
            json={"listId": list_id, "subscribers": [{"email": "a@b.co"}, {"email": "b@b.co", "userId": "u-b"}]},
        )
    answer = api(
        "POST",
        "/api/lists/unsubscribe",
        json={
            "listId": first,
            "subscribers": [{"email": "a@b.co"}, {"userId": "u-b"}, {"email": "nobody@b.co"}, {"userId": "nobody"}],
            "channelUnsubscribe": False,
        },
    )
    body = answer.json()
    assert answer.status_code == 200 and (body["successCount"], body["failCount"]) == (2, 2)
    assert body["failedUpdates"]["notFoundEmails"] == ["nobody@b.co"]
    assert body["failedUpdates"]["notFoundUserIds"] == ["nobody"]
    assert body["invalidEmails"] == body["invalidUserIds"] == []
    assert iterable.subscriptions("a@b.co") == iterable.subscriptions("b@b.co") == {"userListIds": [second]}
    assert iterable.user("nobody@b.co") is None
    # What Flowsync sent is in the request log: channelUnsubscribe ("essentially a global unsubscribe") false.
    assert iterable.requests("/api/lists/unsubscribe")[0]["body"]["channelUnsubscribe"] is False


def test_lists_unsubscribe_reports_malformed_identifiers_and_an_unknown_list(api, iterable):
    list_id = iterable.add_list("Newsletter")
    answer = api(
        "POST",
        "/api/lists/unsubscribe",
        json={"listId": list_id, "subscribers": [{"email": "not-an-email"}, {"userId": "trailing "}]},
    )
    assert answer.json()["failedUpdates"]["invalidEmails"] == ["not-an-email"]
    assert answer.json()["invalidUserIds"] == ["trailing "] and answer.json()["failCount"] == 2
    # As lists/subscribe answers a bad list (reference 5): a 400 whose code says "Success".
    bad = api("POST", "/api/lists/unsubscribe", json={"listId": 999, "subscribers": [{"email": "a@b.co"}]})
    assert bad.status_code == 400 and bad.json()["code"] == "Success"
    assert bad.json()["msg"] == "error.lists.invalidListId(999)" and bad.json()["params"]["listId"] == 999


def test_lists_unsubscribe_bodies_are_checked_against_the_swagger(api, iterable_swagger):
    typo = api("POST", "/api/lists/unsubscribe", json={"listId": 1, "subscribers": [{"email": "a@b.co", "x": 1}]})
    assert typo.status_code == 400 and typo.json()["params"] == {"obj.subscribers[0].x": "Unknown field"}
    flag = api("POST", "/api/lists/unsubscribe", json={"listId": 1, "subscribers": [], "channelUnsubscribe": "no"})
    assert flag.json()["params"] == {"obj.channelUnsubscribe": "Boolean value expected"}


# --- Iterable: updateSubscriptions overwrites (Flowsync must never call it) ----------------------------


def test_update_subscriptions_overwrites_and_is_counted(api, iterable):
    first, second = iterable.add_list("Newsletter"), iterable.add_list("Offers")
    bulk(api, "emailList", first, users=["a@b.co"])
    bulk(api, "messageType", 12, "unsubscribe", users=["a@b.co"])
    answer = api("POST", "/api/users/updateSubscriptions", json={"email": "a@b.co", "emailListIds": [second]})
    assert answer.status_code == 200 and answer.json()["code"] == "Success"
    # Swagger: "overwrites (does not merge) existing data for any non-null fields": the first list is gone,
    # the message types (not sent) are kept.
    assert iterable.subscriptions("a@b.co") == {"userListIds": [second], "unsubscribedMessageTypeIds": [12]}
    created = api("POST", "/api/users/updateSubscriptions", json={"email": "new@b.co", "unsubscribedChannelIds": [1]})
    assert created.status_code == 200
    assert iterable.subscriptions("new@b.co") == {"unsubscribedChannelIds": [1]}  # created
    assert iterable.stats()["counts"]["/api/users/updateSubscriptions"] == 2
    assert [r["body"]["email"] for r in iterable.requests("/api/users/updateSubscriptions")] == ["a@b.co", "new@b.co"]


def test_update_subscriptions_refuses_what_a_write_would(api, iterable):
    api("POST", "/api/users/update", json={"email": "a@b.co", "userId": "u-a"})
    api("POST", "/api/users/update", json={"email": "b@b.co", "userId": "u-b"})
    conflict = api("POST", "/api/users/updateSubscriptions", json={"email": "a@b.co", "userId": "u-b"})
    assert conflict.status_code == 409 and conflict.json()["msg"] == "Email/userId conflict"
    assert api("POST", "/api/users/updateSubscriptions", json={"email": "bad"}).status_code == 400
    assert api("POST", "/api/users/updateSubscriptions", json={"emailListIds": [1]}).json()["code"] == "BadParams"


def test_bulk_update_subscriptions_answers_per_user_and_is_counted(api, iterable):
    iterable.forget("gone@b.co")
    answer = api(
        "POST",
        "/api/users/bulkUpdateSubscriptions",
        json={
            "updateSubscriptionsRequests": [
                {"email": "a@b.co", "subscribedMessageTypeIds": [11]},
                {"email": "not-an-email", "subscribedMessageTypeIds": [11]},
                {"userId": "trailing ", "subscribedMessageTypeIds": [11]},
                {"email": "gone@b.co", "subscribedMessageTypeIds": [11]},
            ]
        },
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "successCount": 1,
        "failCount": 3,
        "invalidEmails": ["not-an-email"],
        "invalidUserIds": ["trailing "],
        "validEmailFailures": ["gone@b.co"],
        "validUserIdFailures": [],
    }
    assert iterable.subscriptions("a@b.co") == {"subscribedMessageTypeIds": [11]}
    assert iterable.stats()["counts"]["/api/users/bulkUpdateSubscriptions"] == 1


def test_update_subscriptions_bodies_are_checked(api, iterable, iterable_swagger):
    typo = api("POST", "/api/users/updateSubscriptions", json={"email": "a@b.co", "listIds": [1]})
    assert typo.status_code == 400 and typo.json()["params"] == {"obj.listIds": "Unknown field"}
    missing = api("POST", "/api/users/bulkUpdateSubscriptions", json={})
    assert missing.json()["params"] == {"obj.updateSubscriptionsRequests": "Missing required field"}


# --- Iterable: without the Swagger document ----------------------------------------------------------


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    server = start_in_thread(spec_path=str(tmp_path_factory.mktemp("no-spec") / "absent.json"))
    assert server.spec is None
    yield server
    server.shutdown()


@pytest.mark.parametrize(
    ("method", "path", "body", "problems"),
    [
        ("PUT", "/api/subscriptions/messageType/11?action=subscribe", [], {"obj": "Object value expected"}),
        (
            "PUT",
            "/api/subscriptions/messageType/11?action=subscribe",
            {"usersByUserId": [1]},
            {"obj.usersByUserId[0]": "String value expected"},
        ),
        (
            "POST",
            "/api/lists/unsubscribe",
            {"listId": "x", "subscribers": []},
            {"obj.listId": "Integer value expected"},
        ),
        ("POST", "/api/lists/unsubscribe", {"listId": 1}, {"obj.subscribers": "Missing required field"}),
        (
            "POST",
            "/api/users/updateSubscriptions",
            {"email": "a@b.co", "emailListIds": ["one"]},
            {"obj.emailListIds[0]": "Integer value expected"},
        ),
        (
            "POST",
            "/api/users/bulkUpdateSubscriptions",
            {"updateSubscriptionsRequests": [5]},
            {"obj.updateSubscriptionsRequests[0]": "Object value expected"},
        ),
    ],
)
def test_without_the_swagger_a_malformed_consent_body_is_a_400_not_a_crash(bare_server, method, path, body, problems):
    control = EmulatorControl(bare_server.url)
    control.reset()
    control.add_key("bare-key-123456")
    response = requests.request(
        method, f"{bare_server.url}/us{path}", headers={"Api-Key": "bare-key-123456"}, json=body, timeout=10
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "BadJsonBody" and response.json()["params"] == problems
    assert control.stats()["unhandled_errors"] == 0


def test_a_truncated_202_is_cut_not_a_crash(api, iterable):
    iterable.configure_project(subscriptions_bulk_status=202)
    iterable.fault("/api/subscriptions/messageType/11", kind="truncate")
    answer = bulk(api, "messageType", 11, users=["a@b.co"])
    assert (answer.status_code, answer.content) == (202, b"")
    assert iterable.subscriptions("a@b.co") == {"subscribedMessageTypeIds": [11]}  # carried out


# --- Customer.io: subscription topics (App API) -----------------------------------------------------


@pytest.fixture
def cio_app(customerio):
    def call(method, path, *, key=None, region="us", **options):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.request(method, f"{customerio.url}/{region}-api{path}", headers=headers, timeout=10, **options)

    return call


@pytest.fixture
def cio_track(customerio):
    def call(method, path, *, workspace=None, json=None):
        workspace = workspace or customerio.us
        auth = (workspace.site_id, workspace.api_key)
        return requests.request(method, f"{customerio.url}/{workspace.region}{path}", auth=auth, json=json, timeout=10)

    return call


SEEDED_TOPICS = [
    {
        "id": 1,
        "name": "Newsletter",
        "description": "Our newsletter, for people who ask for it.",
        "subscribed_by_default": False,
        "identifier": "topic_1",
    },
    {
        "id": 2,
        "name": "Product updates",
        "description": "News of product releases.",
        "subscribed_by_default": True,
        "identifier": "topic_2",
    },
]


def test_every_workspace_lists_the_seeded_topics_in_its_region(cio_app, customerio):
    for workspace in (customerio.us, customerio.eu):
        answer = cio_app("GET", "/v1/subscription_topics", key=workspace.app_key, region=workspace.region)
        assert answer.status_code == 200 and answer.json() == {"topics": SEEDED_TOPICS}
    assert customerio.topics(customerio.us.site_id) == SEEDED_TOPICS


def test_topics_take_the_app_apis_bearer_key_of_the_region(cio_app, customerio):
    unauthorized = {"meta": {"error": "Unauthorized request"}}
    assert cio_app("GET", "/v1/subscription_topics").json() == unauthorized
    assert cio_app("GET", "/v1/subscription_topics", key="nope").status_code == 401
    assert cio_app("GET", "/v1/subscription_topics", key=customerio.us.app_key, region="eu").status_code == 401
    track_pair = (customerio.us.site_id, customerio.us.api_key)
    as_track = requests.get(f"{customerio.url}/us-api/v1/subscription_topics", auth=track_pair, timeout=10)
    assert as_track.status_code == 401
    # The Track hosts have no such route.
    track = requests.get(f"{customerio.url}/us/v1/subscription_topics", auth=track_pair, timeout=10)
    assert track.status_code == 404


def test_topics_count_against_the_app_apis_rate_limit(cio_app, customerio):
    customerio.configure(app_rate_limit_rps=2)
    statuses = [cio_app("GET", "/v1/subscription_topics", key=customerio.us.app_key).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_the_control_api_replaces_a_workspaces_topics(cio_app, customerio):
    topics = customerio.set_topics(customerio.us.site_id, [{"id": 7, "name": "Events", "subscribed_by_default": True}])
    assert topics == [
        {"id": 7, "name": "Events", "description": "", "subscribed_by_default": True, "identifier": "topic_7"}
    ]
    assert cio_app("GET", "/v1/subscription_topics", key=customerio.us.app_key).json() == {"topics": topics}
    # The other workspace keeps its own.
    assert customerio.topics(customerio.eu.site_id) == SEEDED_TOPICS
    customerio.set_topics(customerio.us.site_id, [])
    # getTopics: "If there are no topics, it returns an empty array."
    assert cio_app("GET", "/v1/subscription_topics", key=customerio.us.app_key).json() == {"topics": []}
    with pytest.raises(requests.HTTPError):
        customerio.set_topics(customerio.us.site_id, [{"name": "no id"}])


# --- Customer.io: cio_subscription_preferences in identify ------------------------------------------


def identify(identifier, attributes, **extra):
    kind = "email" if "@" in identifier else "id"
    return {
        "type": "person",
        "action": "identify",
        "identifiers": {kind: identifier},
        "attributes": attributes,
        **extra,
    }


TOPIC_1 = "cio_subscription_preferences.topics.topic_1"
TOPIC_2 = "cio_subscription_preferences.topics.topic_2"


def preferences(customerio, identifier, workspace=None):
    attributes = customerio.attributes((workspace or customerio.us).site_id, identifier)
    return attributes.get("cio_subscription_preferences") if attributes is not None else None


def test_a_dot_key_in_a_batch_identify_sets_one_topic_and_keeps_the_others(cio_track, customerio):
    assert cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_1: True})]}).status_code == 200
    assert preferences(customerio, "42") == {"topics": {"topic_1": True}}
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_2: False, "first_name": "Ada"})]})
    assert preferences(customerio, "42") == {"topics": {"topic_1": True, "topic_2": False}}
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_1: False})]})
    attributes = customerio.attributes(customerio.us.site_id, "42")
    assert attributes == {
        "first_name": "Ada",
        "cio_subscription_preferences": {"topics": {"topic_1": False, "topic_2": False}},
    }  # no attribute named after the dot key


def test_a_whole_preferences_object_replaces_the_persons(cio_track, customerio):
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_1: True, TOPIC_2: True})]})
    whole = {"cio_subscription_preferences": {"topics": {"topic_2": False}}}
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", whole)]})
    assert preferences(customerio, "42") == {"topics": {"topic_2": False}}
    # A dot key beside a whole object refines it.
    both = {"cio_subscription_preferences": {"topics": {"topic_2": True}}, TOPIC_1: False}
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", both)]})
    assert preferences(customerio, "42") == {"topics": {"topic_2": True, "topic_1": False}}


def test_a_topic_the_workspace_does_not_list_is_kept(cio_track, customerio):
    # The Track OpenAPI names topics topic_<id> and refuses none: the preference is stored.
    cio_track(
        "POST",
        "/api/v2/batch",
        json={"batch": [identify("42", {"cio_subscription_preferences.topics.topic_99": True})]},
    )
    assert preferences(customerio, "42") == {"topics": {"topic_99": True}}


def test_a_null_topic_goes_back_to_the_topics_default(cio_track, customerio):
    # Track OpenAPI: "empty or missing values use the topic default": the topic is no longer set.
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_1: True, TOPIC_2: False})]})
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_1: None})]})
    assert preferences(customerio, "42") == {"topics": {"topic_2": False}}


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({TOPIC_1: "yes"}, f"attributes.{TOPIC_1}"),
        ({TOPIC_1: 1}, f"attributes.{TOPIC_1}"),
        ({"cio_subscription_preferences": {"topics": {"topic_1": "true"}}}, "attributes.cio_subscription_preferences"),
        ({"cio_subscription_preferences": "topic_1"}, "attributes.cio_subscription_preferences"),
    ],
)
def test_a_topic_preference_that_is_not_a_boolean_is_an_item_error(cio_track, customerio, attributes, field):
    # The Track OpenAPI types each topic as a boolean ("true subscribes, false unsubscribes").
    answer = cio_track(
        "POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_2: True}), identify("43", attributes)]}
    )
    assert answer.status_code == 207
    errors = answer.json()["errors"]
    assert {e["batch_index"] for e in errors} == {1} and all(e["field"].startswith(field) for e in errors), errors
    assert preferences(customerio, "42") == {"topics": {"topic_2": True}}
    assert customerio.person(customerio.us.site_id, "43") is None


def test_v1_identify_sets_topics_too(cio_track, customerio):
    assert cio_track("PUT", "/api/v1/customers/42", json={TOPIC_1: True, "plan": "basic"}).status_code == 200
    cio_track("PUT", "/api/v1/customers/42", json={TOPIC_2: True})
    assert preferences(customerio, "42") == {"topics": {"topic_1": True, "topic_2": True}}
    cio_track("PUT", "/api/v1/customers/42", json={"cio_subscription_preferences": {"topics": {"topic_1": False}}})
    assert preferences(customerio, "42") == {"topics": {"topic_1": False}}
    refused = cio_track("PUT", "/api/v1/customers/42", json={TOPIC_1: "no"})
    assert refused.status_code == 400 and TOPIC_1 in refused.json()["meta"]["error"]
    assert preferences(customerio, "42") == {"topics": {"topic_1": False}}


def test_an_email_workspace_sets_topics_by_email(cio_track, customerio):
    op = identify("ada@example.com", {TOPIC_1: True})
    assert cio_track("POST", "/api/v2/batch", workspace=customerio.eu, json={"batch": [op]}).status_code == 200
    assert preferences(customerio, "ada@example.com", customerio.eu) == {"topics": {"topic_1": True}}


def test_topic_updates_are_ordered_by_timestamp_per_topic(cio_track, customerio):
    batch = [
        identify("42", {TOPIC_1: True}, timestamp=200),
        identify("42", {TOPIC_1: False}, timestamp=100),  # older than topic_1's last update: dropped
        identify("42", {TOPIC_2: False}, timestamp=150),  # another topic: applies
        identify("42", {"cio_subscription_preferences": {"topics": {}}}, timestamp=180),  # older than topic_1's
    ]
    assert cio_track("POST", "/api/v2/batch", json={"batch": batch}).status_code == 200
    assert preferences(customerio, "42") == {"topics": {"topic_1": True, "topic_2": False}}
    newer = identify("42", {"cio_subscription_preferences": {"topics": {"topic_3": True}}}, timestamp=300)
    cio_track("POST", "/api/v2/batch", json={"batch": [newer]})
    assert preferences(customerio, "42") == {"topics": {"topic_3": True}}


def test_the_app_api_answers_preferences_as_a_json_string(cio_track, cio_app, customerio):
    cio_track("POST", "/api/v2/batch", json={"batch": [identify("42", {TOPIC_1: True}, timestamp=1_700_000_000)]})
    answer = cio_app("GET", "/v1/customers/42/attributes", key=customerio.us.app_key).json()["customer"]
    # Track OpenAPI customerAttributesObject: "subscription preferences as stringified JSON", with a timestamp.
    assert answer["attributes"]["cio_subscription_preferences"] == '{"topics":{"topic_1":true}}'
    assert answer["timestamps"]["cio_subscription_preferences"] == 1_700_000_000


def test_without_the_document_a_non_boolean_topic_is_still_refused(tmp_path):
    server = start_customerio(spec_path=str(tmp_path / "absent.json"))
    try:
        control = CustomerioControl(server.url)
        control.add_workspace("bare-site", "bare-key")
        answer = requests.post(
            f"{server.url}/us/api/v2/batch",
            auth=("bare-site", "bare-key"),
            json={"batch": [identify("42", {TOPIC_1: "yes"}), identify("43", {TOPIC_1: True})]},
            timeout=10,
        )
        assert answer.status_code == 207 and [e["batch_index"] for e in answer.json()["errors"]] == [0]
        assert control.attributes("bare-site", "43") == {"cio_subscription_preferences": {"topics": {"topic_1": True}}}
        assert control.stats()["unhandled_errors"] == 0
    finally:
        server.shutdown()
        server.server_close()
