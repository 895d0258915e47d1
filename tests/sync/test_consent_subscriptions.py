"""A consent field mapped to a subscription: after the person's upsert a ticked box subscribes them (Iterable:
a list, or a message type or channel through the additive Subscriptions API, never updateSubscriptions;
Customer.io: one subscription-center topic in dot notation). An unticked box unsubscribes only when the admin
chose that; a box never answered does nothing. Each outcome is the log row's."""

from __future__ import annotations

import re

import pytest

from field_mapping.services import RowChoice, mapping_save
from flows.services import contact_capture, flow_field_add
from integrations import engine
from integrations.destinations.iterable.words import SUBSCRIPTIONS_API_MISSING
from integrations.services import integration_connect
from integrations.sync import integration_sync_settings_save, sync_now
from sync_logs.models import SyncRecord

pytestmark = pytest.mark.django_db

NEWSLETTER = {"target": "messageType:11", "name": "Message type: Newsletter (opt-in)"}


@pytest.fixture(autouse=True)
def consent_field(flow):
    return flow_field_add(flow=flow, kind="custom", key="newsletter", label="Newsletter", field_type="consent",
                          actor=None)  # fmt: skip


def _consent(integration, alice, **rule):
    integration_sync_settings_save(
        integration=integration, actor=alice, frequency=0, overwrite_existing=True, backfill=False,
        consent={"newsletter": rule},
    )  # fmt: skip
    integration.refresh_from_db()


def _capture(flow, email, **fields):
    return contact_capture(flow=flow, raw={"email": email, "first_name": "Ada", **fields}, source="api")


def _run(integration):
    return engine.sync_run_execute(sync_now(integration=integration).pk)


# --- Iterable -------------------------------------------------------------------------------------------


def test_a_ticked_box_subscribes_through_the_subscriptions_api_and_nothing_else_does(integration, flow, iterable,
                                                                                    alice):  # fmt: skip
    _consent(integration, alice, **NEWSLETTER, unticked="leave")
    _capture(flow, "yes@example.com", newsletter=True)
    _capture(flow, "no@example.com", newsletter=False)
    _capture(flow, "silent@example.com")
    run = _run(integration)
    assert run.delivered == 3 and run.failed == 0
    (call,) = iterable.requests("/api/subscriptions/messageType/11")
    assert call["method"] == "PUT"
    assert call["body"] == {"users": ["yes@example.com"], "usersByUserId": []}
    assert iterable.subscriptions("yes@example.com")["subscribedMessageTypeIds"] == [11]
    assert "subscribedMessageTypeIds" not in iterable.subscriptions("no@example.com")
    assert not iterable.requests("/api/users/updateSubscriptions")  # it overwrites: never called
    assert not iterable.requests("/api/users/bulkUpdateSubscriptions")


def test_an_unticked_box_unsubscribes_only_when_the_admin_chose_it(integration, flow, iterable, alice):
    _consent(integration, alice, **NEWSLETTER, unticked="unsubscribe")
    _capture(flow, "no@example.com", newsletter=False)
    _capture(flow, "silent@example.com")
    _run(integration)
    (call,) = iterable.requests("/api/subscriptions/messageType/11")
    assert call["body"] == {"users": ["no@example.com"], "usersByUserId": []}
    assert iterable.subscriptions("no@example.com")["unsubscribedMessageTypeIds"] == [11]


def test_a_list_is_joined_and_left_additively(integration, flow, iterable, alice):
    list_id = iterable.add_list("Newsletter")
    _consent(integration, alice, target=f"emailList:{list_id}", name="List: Newsletter", unticked="unsubscribe")
    _capture(flow, "yes@example.com", newsletter=True)
    _capture(flow, "no@example.com", newsletter=False)
    run = _run(integration)
    assert run.delivered == 2 and run.failed == 0
    (joined,) = iterable.requests("/api/lists/subscribe")
    assert joined["body"]["listId"] == list_id and joined["body"]["subscribers"] == [{"email": "yes@example.com"}]
    (left,) = iterable.requests("/api/lists/unsubscribe")
    assert left["body"]["subscribers"] == [{"email": "no@example.com"}]
    assert left["body"]["channelUnsubscribe"] is False  # never a global unsubscribe
    assert iterable.subscriptions("yes@example.com")["userListIds"] == [list_id]  # a hybrid project's list field


def test_a_202_with_no_body_is_a_subscription(integration, flow, iterable, alice):
    iterable.configure_project(subscriptions_bulk_status=202)
    _consent(integration, alice, **NEWSLETTER, unticked="leave")
    contact = _capture(flow, "yes@example.com", newsletter=True)
    _run(integration)
    record = SyncRecord.objects.get(contact=contact)
    assert record.status == "delivered" and not record.error_message


def test_a_project_without_the_subscriptions_api_keeps_the_person_and_says_why(integration, flow, iterable, alice):
    iterable.configure_project(subscriptions_api=False)
    _consent(integration, alice, **NEWSLETTER, unticked="leave")
    contact = _capture(flow, "yes@example.com", newsletter=True)
    _run(integration)
    record = SyncRecord.objects.get(contact=contact)
    assert record.status == "delivered" and not record.retryable  # asking again changes nothing
    assert SUBSCRIPTIONS_API_MISSING in record.error_message
    assert record.error_message.startswith("Delivered; subscribing them to Message type: Newsletter")


def test_a_subscription_iterable_fails_to_take_is_tried_again(integration, flow, iterable, alice, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    iterable.fault("/api/subscriptions/messageType/11", status=503, times=1)
    _consent(integration, alice, **NEWSLETTER, unticked="leave")
    contact = _capture(flow, "yes@example.com", newsletter=True)
    run = _run(integration)
    record = SyncRecord.objects.get(run=run, contact=contact)
    assert record.status == "failed" and record.retryable
    assert record.error_message.startswith("The person is in Iterable, but subscribing them to")
    assert iterable.user("yes@example.com") is not None  # the upsert went; only the subscription waits


def test_a_409_on_the_bulk_call_is_pinned_to_its_person_one_call_each(integration, flow, iterable, alice):
    """A 409 (an email and a userId of two users) refuses the whole bulk request: one call each then says whose."""
    _consent(integration, alice, **NEWSLETTER, unticked="leave")
    _capture(flow, "one@example.com", newsletter=True)
    _capture(flow, "two@example.com", newsletter=True)
    iterable.fault("/api/subscriptions/messageType/11", status=409, times=1,
                   body={"code": "ExternalKeyConflict", "msg": "Email/userId conflict", "params": None})  # fmt: skip
    run = _run(integration)
    assert run.delivered == 2 and not SyncRecord.objects.exclude(error_message="").exists()
    singles = [r for r in iterable.requests() if "/api/subscriptions/messageType/11/user/" in r["path"]]
    assert sorted(r["method"] for r in singles) == ["PATCH", "PATCH"]
    assert iterable.subscriptions("two@example.com")["subscribedMessageTypeIds"] == [11]


# --- Customer.io ----------------------------------------------------------------------------------------


@pytest.fixture
def customerio_with_app_key(workspace_a, alice, flow, customerio):
    us = customerio.us
    integration = integration_connect(
        workspace=workspace_a, actor=alice, kind="customerio",
        data={"site_id": us.site_id, "api_key": us.api_key, "identify_by": "id", "app_api_key": us.app_key},
    )  # fmt: skip
    mapping_save(integration=integration, actor=alice, choices=[RowChoice("email", "id")])
    return integration


def test_customerio_sets_one_topic_and_keeps_the_others(customerio_with_app_key, flow, customerio, alice):
    integration, us = customerio_with_app_key, customerio.us
    from integrations.destinations import destination_for

    targets = destination_for(integration, interactive=True).subscription_targets()
    assert {"id": "topic:1", "name": "Topic: Newsletter"} in targets
    _consent(integration, alice, target="topic:1", name="Topic: Newsletter", unticked="unsubscribe")
    _capture(flow, "yes@example.com", newsletter=True)
    _capture(flow, "no@example.com", newsletter=False)
    _capture(flow, "silent@example.com")
    run = _run(integration)
    assert run.delivered == 3 and run.failed == 0
    assert customerio.attributes(us.site_id, "yes@example.com")["cio_subscription_preferences"] == {
        "topics": {"topic_1": True}
    }
    assert customerio.attributes(us.site_id, "no@example.com")["cio_subscription_preferences"] == {
        "topics": {"topic_1": False}
    }
    assert "cio_subscription_preferences" not in customerio.attributes(us.site_id, "silent@example.com")


def test_customerio_without_an_app_key_says_why_consent_cannot_be_mapped(customerio_integration, alice, client):
    client.force_login(alice)
    page = client.get(f"/w/{customerio_integration.workspace.slug}/integrations/customerio/sync/")
    assert "needs an App API key" in page.content.decode()


def test_the_settings_step_offers_the_destinations_subscriptions_and_saves_the_choice(integration, alice, client):
    client.force_login(alice)
    url = f"/w/{integration.workspace.slug}/integrations/iterable/sync/"
    page = client.get(url).content.decode()
    assert "Message type: Newsletter (opt-in)" in page and "Channel: Marketing email (Email)" in page
    assert "Transactional email" not in page  # nobody is subscribed to transactional mail
    response = client.post(url, {"frequency": "60", "overwrite_existing": "1", "consent__newsletter": "messageType:11",
                                 "unticked__newsletter": "unsubscribe", "save": "1"})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    integration.refresh_from_db()
    assert integration.config["consent"] == {
        "newsletter": {
            "target": "messageType:11",
            "name": "Message type: Newsletter (opt-in)",
            "unticked": "unsubscribe",
        }
    }


def test_a_late_confirmation_does_not_undo_a_newer_answer(integration, flow, iterable, alice, workspace_a,
                                                           django_capture_on_commit_callbacks):  # fmt: skip
    """Ada says no on a double opt-in flow, then yes on another, which is delivered; confirming the first
    afterwards must not unsubscribe her, nor put its older values back."""
    from django.core import mail

    from flows.services import contact_confirm, flow_update
    from tests.factories import make_flow

    _consent(integration, alice, **NEWSLETTER, unticked="unsubscribe")
    confirming = make_flow(workspace_a, name="Confirming")
    flow_field_add(flow=confirming, kind="custom", key="newsletter", label="Newsletter", field_type="consent",
                   actor=None)  # fmt: skip
    flow_update(flow=confirming, actor=alice, double_opt_in=True)
    with django_capture_on_commit_callbacks(execute=True):
        contact_capture(flow=confirming, raw={"email": "ada@example.com", "first_name": "Old", "newsletter": False})
    _capture(flow, "ada@example.com", newsletter=True)  # "first_name": "Ada"
    _run(integration)
    assert iterable.subscriptions("ada@example.com")["subscribedMessageTypeIds"] == [11]

    (token,) = re.findall(r"/c/([^/\s]+)/", mail.outbox[0].body)
    contact_confirm(raw=token)
    run = _run(integration)
    assert run.failed == 0
    assert len(iterable.requests("/api/subscriptions/messageType/11")) == 1  # no unsubscribe went
    assert iterable.subscriptions("ada@example.com")["subscribedMessageTypeIds"] == [11]
    assert iterable.user("ada@example.com")["dataFields"]["firstName"] == "Ada"


def test_a_yes_no_field_of_the_same_key_in_another_flow_subscribes_nobody(integration, flow, iterable, alice,
                                                                         workspace_a):  # fmt: skip
    from tests.factories import make_flow

    _consent(integration, alice, **NEWSLETTER, unticked="leave")
    other = make_flow(workspace_a, name="Survey", extra=[{"key": "newsletter", "label": "Reads our newsletter",
                                                          "field_type": "boolean"}])  # fmt: skip
    contact_capture(flow=other, raw={"email": "ada@example.com", "newsletter": True}, source="api")
    run = _run(integration)
    assert run.delivered == 1
    assert not iterable.requests("/api/subscriptions/messageType/11")  # a yes/no answer is not consent
