"""Sending an alert delivery: signed webhooks, Slack's answers, retries with backoff, give-up, the address
checked again at delivery, no redirects, one send when two workers hold the same delivery."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from alert_channels import addresses, services
from alert_channels.models import AlertChannel, AlertDelivery

pytestmark = pytest.mark.django_db


def _due_now(delivery: AlertDelivery) -> None:
    AlertDelivery.objects.filter(pk=delivery.pk).update(due_at=timezone.now())


def _test(channel, alice, django_capture_on_commit_callbacks) -> AlertDelivery:
    with django_capture_on_commit_callbacks(execute=True):
        return services.channel_test(channel=channel, actor=alice)


def test_a_webhook_is_signed_and_keeps_its_id_across_retries(
    add_channel, receiver, queued, alice, django_capture_on_commit_callbacks
):
    channel, secret = add_channel("webhook", receiver.url())
    assert secret.startswith("whsec_") and channel.signing_secret == secret
    delivery = _test(channel, alice, django_capture_on_commit_callbacks)
    assert queued == [(delivery.pk, 0)]  # queued after commit, not sent in the request
    receiver.answers = [(503, "busy")]

    with django_capture_on_commit_callbacks(execute=True):
        assert services.delivery_attempt(delivery.pk) == "pending"
    delivery.refresh_from_db()
    (_, countdown) = queued[-1]
    assert 24 <= countdown <= 36 and delivery.attempts == 1  # 30 s, jittered
    assert delivery.last_error == "the receiver answered HTTP 503; trying again (attempt 1 of 6)"
    assert services.delivery_attempt(delivery.pk) == "pending"  # not due yet: nothing sent
    assert len(receiver.received) == 1

    _due_now(delivery)
    assert services.delivery_attempt(delivery.pk) == "delivered"
    first, second = receiver.received
    assert first.json()["id"] == second.json()["id"] == str(delivery.public_id)
    body = second.json()
    assert body["type"] == "test" and body["workspace"] == {"slug": "acme", "name": "Acme"}
    assert body["url"].endswith("/w/acme/settings/alerts/")
    # The receiver's check, as the settings page documents it.
    parts = dict(part.split("=", 1) for part in second.headers["Flowsync-Signature"].split(","))
    stamp, signed = parts["t"], parts["v1"]
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + second.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signed, expected) and abs(time.time() - int(stamp)) < 60
    channel.refresh_from_db()
    assert channel.last_delivered_at and channel.last_error == ""


def test_slack_gets_its_markup_and_a_removed_webhook_stops_the_retries(
    add_channel, receiver, queued, alice, django_capture_on_commit_callbacks
):
    channel, secret = add_channel("slack", receiver.url("/services/T0/B0/x7Qa"), name="#alerts")
    assert secret == "" and channel.address_hint == "127.0.0.1/…x7Qa"
    delivery = _test(channel, alice, django_capture_on_commit_callbacks)
    assert services.delivery_attempt(delivery.pk) == "delivered"
    text = receiver.received[0].json()["text"]
    assert text.startswith(":warning: *Test alert from Flowsync for Acme*") and "|Open in Flowsync>" in text

    receiver.answers = [(404, "no_service")]
    again = _test(channel, alice, django_capture_on_commit_callbacks)
    assert services.delivery_attempt(again.pk) == "failed"
    channel.refresh_from_db()
    assert channel.last_error == "Slack says this webhook no longer exists: add a new one (no_service); not tried again"


def test_slack_escapes_its_control_characters(add_channel, receiver, queued):
    channel, _ = add_channel("slack", receiver.url("/services/T0/B0/x"))
    (delivery,) = services.alert_channels_notify(
        workspace=channel.workspace, subject="Iterable <down>", message="a & b <@here>", link="https://app.example/x"
    )
    services.delivery_attempt(delivery.pk)
    assert "*Iterable &lt;down&gt;*\na &amp; b &lt;@here&gt;" in receiver.received[0].json()["text"]


def test_it_gives_up_after_the_last_attempt(add_channel, receiver, queued, settings):
    channel, _ = add_channel("webhook", receiver.url())
    receiver.answers = [(500, "no")] * settings.ALERT_DELIVERY_MAX_ATTEMPTS
    (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    for _ in range(settings.ALERT_DELIVERY_MAX_ATTEMPTS - 1):
        assert services.delivery_attempt(delivery.pk) == "pending"
        _due_now(delivery)
    assert services.delivery_attempt(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.last_error == "the receiver answered HTTP 500; gave up after 6 tries"
    assert len(receiver.received) == settings.ALERT_DELIVERY_MAX_ATTEMPTS


def test_a_slow_receiver_times_out_and_is_tried_again(add_channel, receiver, queued, monkeypatch):
    monkeypatch.setattr(addresses, "READ_TIMEOUT", 0.3)
    channel, _ = add_channel("webhook", receiver.url())
    receiver.answers = [(200, "ok", 1.0)]
    (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    started = time.monotonic()
    assert services.delivery_attempt(delivery.pk) == "pending"
    assert time.monotonic() - started < 1.0
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("the receiver did not answer in time; trying again")


def test_a_redirect_is_not_followed(add_channel, receiver, queued):
    channel, _ = add_channel("webhook", receiver.url())
    receiver.answers = [(302, "")]
    (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    assert services.delivery_attempt(delivery.pk) == "failed"
    assert [r.path for r in receiver.received] == ["/hook"]


def test_the_address_is_checked_again_at_delivery(add_channel, receiver, queued, settings):
    # Saved while it was allowed; by delivery time it points inward (as a DNS answer changed to
    # 127.0.0.1 would): refused before any connection, for good.
    channel, _ = add_channel("webhook", receiver.url())
    settings.ALERT_WEBHOOKS_ALLOW_LOOPBACK = False
    (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    assert services.delivery_attempt(delivery.pk) == "failed"
    assert receiver.received == []
    delivery.refresh_from_db()
    assert delivery.last_error == "Use an https:// URL: alerts are only sent encrypted; not tried again"
    AlertChannel.objects.filter(pk=channel.pk).update(secrets={"url": f"https://127.0.0.1:{receiver.port}/hook"})
    (second,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    assert services.delivery_attempt(second.pk) == "failed"
    second.refresh_from_db()
    assert "127.0.0.1 is a private or internal address" in second.last_error and receiver.received == []


def test_the_session_itself_refuses_an_internal_address(settings):
    # Below the saved-URL check: the connection is refused whatever calls the session.
    settings.ALERT_WEBHOOKS_ALLOW_LOOPBACK = False
    with addresses.session() as http, pytest.raises(Exception) as caught:
        http.post("http://127.0.0.1:9/x", data=b"{}")
    assert addresses.is_refused_address(caught.value)


def test_a_delivery_held_by_another_worker_is_not_sent_twice(add_channel, receiver, queued):
    channel, _ = add_channel("webhook", receiver.url())
    (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    AlertDelivery.objects.filter(pk=delivery.pk).update(status="sending", due_at=timezone.now() + timedelta(minutes=1))
    assert services.delivery_attempt(delivery.pk) == "sending" and receiver.received == []
    # Its worker died: once the lease is over, the sweep queues it again and it goes.
    AlertDelivery.objects.filter(pk=delivery.pk).update(due_at=timezone.now() - timedelta(minutes=5))
    assert services.deliveries_resume() == 1 and queued[-1] == (delivery.pk, 0)
    assert services.delivery_attempt(delivery.pk) == "delivered" and len(receiver.received) == 1


def test_a_broker_down_at_commit_loses_no_delivery(
    add_channel, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from alert_channels.tasks import alert_delivery_send

    def down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(alert_delivery_send, "apply_async", down)
    channel, _ = add_channel("webhook", receiver.url())
    with django_capture_on_commit_callbacks(execute=True):  # robust: the failure is logged, the caller goes on
        (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    assert AlertDelivery.objects.get(pk=delivery.pk).status == "pending"


def test_an_answer_without_end_holds_the_worker_a_bounded_time(add_channel, receiver, queued, monkeypatch):
    monkeypatch.setattr(addresses, "TOTAL_SECONDS", 1.0)
    channel, _ = add_channel("webhook", receiver.url())
    receiver.answers = [(200, "", "drip")]
    (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    started = time.monotonic()
    services.delivery_attempt(delivery.pk)
    assert time.monotonic() - started < 3


def test_no_attempt_past_the_last_even_after_a_killed_worker(add_channel, receiver, queued, settings):
    channel, _ = add_channel("webhook", receiver.url())
    (delivery,) = services.alert_channels_notify(workspace=channel.workspace, subject="s", message="m", link="")
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        status="sending", attempts=settings.ALERT_DELIVERY_MAX_ATTEMPTS, due_at=timezone.now() - timedelta(hours=1)
    )
    assert services.deliveries_resume() == 0
    assert services.delivery_attempt(delivery.pk) == "sending" and receiver.received == []
