"""Alert channels: add, remove, test; fan an alert out to a workspace's channels; send one delivery.

An alert never waits on a channel: ``alert_channels_notify`` writes one delivery row per channel and
queues a task after commit (robustly: a broker that is down fails nothing, and the sweep
``deliveries_resume`` queues what was never queued). The worker sends it with short timeouts and
retries with a growing, jittered delay; an answer that says the channel is gone stops the retries.
"""

from __future__ import annotations

import logging
import random
import secrets as secrets_module
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from celery import signature
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from alert_channels.addresses import UnsafeAddress, is_refused_address, post_capped
from alert_channels.models import AlertChannel, AlertDelivery
from alert_channels.transports import TRANSPORTS, transport_for
from lib.leased import row_claim, row_status, rows_overdue
from workspaces.models import Workspace
from workspaces.scoping import scoped
from workspaces.services import audit_record

logger = logging.getLogger(__name__)
TASK = "alert_channels.tasks.alert_delivery_send"

SENDING_LEASE = timedelta(minutes=2)  # a worker killed while sending: the delivery is due again after this


class ChannelRefused(Exception):
    """The channel cannot be saved; the message says why."""


def _hint(url: str) -> str:
    parts = urlsplit(url)
    host = str(parts.hostname)[:100]
    return f"{host}/…{url.rstrip('/')[-4:]}" if parts.path.strip("/") else host


def channel_create(*, workspace: Workspace, actor: User, kind: str, name: str, url: str) -> tuple[AlertChannel, str]:
    """A new channel, its URL checked (shape and address). Returns it and, for a webhook, its signing
    secret (shown once: stored encrypted, never displayed again)."""
    url = url.strip()
    try:
        TRANSPORTS[kind].url_check(url)
    except UnsafeAddress as exc:
        raise ChannelRefused(str(exc)) from None
    secret = f"whsec_{secrets_module.token_urlsafe(32)}" if kind == AlertChannel.Kind.WEBHOOK else ""
    channel = AlertChannel.objects.create(
        workspace=workspace,
        kind=kind,
        name=name.strip(),
        secrets={"url": url, **({"signing_secret": secret} if secret else {})},
        address_hint=_hint(url),
        created_by=actor,
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        verb="alert_channel.added",
        target=channel.name,
        data={"kind": kind, "address": channel.address_hint},
    )
    return channel, secret


def channel_delete(*, channel: AlertChannel, actor: User) -> None:
    audit_record(
        workspace=channel.workspace,
        actor=actor,
        verb="alert_channel.removed",
        target=channel.name,
        data={"kind": channel.kind, "address": channel.address_hint},
    )
    channel.delete()  # its waiting deliveries go with it: nothing is sent to a removed channel


def channel_test(*, channel: AlertChannel, actor: User) -> AlertDelivery:
    """Queue a test alert to one channel (the admin sees how it went on the settings page)."""
    link = settings.SITE_URL + f"/w/{channel.workspace.slug}/settings/alerts/"
    (delivery,) = _deliveries_queue(
        [channel],
        event="test",
        subject=f"Test alert from Flowsync for {channel.workspace.name}",
        message=f"{actor.email} sent this test. Sync alerts for this workspace will arrive here.",
        link=link,
    )
    return delivery


def alert_channels_notify(*, workspace: Workspace, subject: str, message: str, link: str) -> list[AlertDelivery]:
    """The alert to each of the workspace's channels (called with the alert email, under its hourly budget)."""
    return _deliveries_queue(
        list(scoped(AlertChannel, workspace)),
        event="integration.alert",
        subject=subject,
        message=message,
        link=link,
    )


def _deliveries_queue(channels, *, event: str, subject: str, message: str, link: str) -> list[AlertDelivery]:
    now = timezone.now()
    made = AlertDelivery.objects.bulk_create(
        AlertDelivery(channel=c, event=event, subject=subject[:200], message=message, link=link, due_at=now)
        for c in channels
    )
    for delivery in made:
        transaction.on_commit(lambda pk=delivery.pk: _task_queue(pk), robust=True)
    return made


def _task_queue(delivery_id: int, countdown: float = 0) -> None:
    # By name: the tasks module imports this one.
    signature(TASK, args=[delivery_id]).apply_async(countdown=countdown)


def _retry_delay(attempts: int) -> timedelta:
    """After the ``attempts``-th failure: ALERT_DELIVERY_RETRY_SECONDS doubling, each within ±20%
    (deliveries queued together do not all come back at once)."""
    first = timedelta(seconds=settings.ALERT_DELIVERY_RETRY_SECONDS)
    return first * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)


def delivery_attempt(delivery_id: int) -> str:
    """Send one delivery if it is due and nobody else holds it; returns its status afterwards.

    The claim is one conditional UPDATE (pending and due, or a sending lease that ran out), so two
    workers given the same delivery send it once; the request is made outside any transaction.
    """
    # A worker killed on the last attempt does not earn another.
    if not row_claim(
        AlertDelivery, delivery_id, lease=SENDING_LEASE, attempts__lt=settings.ALERT_DELIVERY_MAX_ATTEMPTS
    ):
        return row_status(AlertDelivery, delivery_id)
    delivery = AlertDelivery.objects.select_related("channel__workspace").get(pk=delivery_id)
    channel = delivery.channel
    transport = transport_for(channel)
    reason, permanent = "", False
    try:
        transport.url_check(channel.url)  # checked again: an address that turned private is not sent to
        headers, body = transport.request(channel, delivery)
        status, text = post_capped(channel.url, body=body, headers=headers)
        answer = transport.answer(status, text[:200])
        reason, permanent = answer.reason, answer.permanent
        if 300 <= status < 400:
            reason, permanent = (
                f"the receiver redirected (HTTP {status}); redirects are not followed",
                True,
            )
    except UnsafeAddress as exc:
        reason, permanent = str(exc), True
    except requests.RequestException as exc:
        if is_refused_address(exc):
            reason, permanent = "the address now resolves to a private or internal host: not sent", True
        elif isinstance(exc, requests.Timeout):
            reason = "the receiver did not answer in time"
        else:
            reason = "the receiver could not be reached"
    return _delivery_outcome(delivery, reason=reason, permanent=permanent)


def _delivery_outcome(delivery: AlertDelivery, *, reason: str, permanent: bool) -> str:
    now = timezone.now()
    reason = reason.rstrip(".")  # a sentence of its own elsewhere; here the outcome follows it
    channel_fields = {"last_attempt_at": now}
    if not reason:
        delivery.status, delivery.delivered_at, delivery.last_error = AlertDelivery.Status.DELIVERED, now, ""
        channel_fields.update(last_delivered_at=now, last_error="")
    elif permanent or delivery.attempts >= settings.ALERT_DELIVERY_MAX_ATTEMPTS:
        delivery.status = AlertDelivery.Status.FAILED
        delivery.last_error = (
            f"{reason}; not tried again" if permanent else f"{reason}; gave up after {delivery.attempts} tries"
        )
        channel_fields["last_error"] = delivery.last_error
    else:
        delay = _retry_delay(delivery.attempts)
        delivery.status, delivery.due_at = AlertDelivery.Status.PENDING, now + delay
        delivery.last_error = (
            f"{reason}; trying again (attempt {delivery.attempts} of {settings.ALERT_DELIVERY_MAX_ATTEMPTS})"
        )
        channel_fields["last_error"] = delivery.last_error
    with transaction.atomic():
        # Only if it is still ours: a channel removed meanwhile took the delivery with it.
        # Only if it is still this attempt's: a channel removed meanwhile took the delivery with it, and a
        # worker that outlived its lease must not overwrite a newer attempt's outcome.
        kept = AlertDelivery.objects.filter(
            pk=delivery.pk, status=AlertDelivery.Status.SENDING, attempts=delivery.attempts
        )
        if not kept.update(
            status=delivery.status,
            due_at=delivery.due_at,
            last_error=delivery.last_error,
            delivered_at=delivery.delivered_at,
        ):
            return row_status(AlertDelivery, delivery.pk)
        AlertChannel.objects.filter(pk=delivery.channel_id).update(**channel_fields)
        if delivery.status == AlertDelivery.Status.PENDING:  # the retry, queued once the row says it is due
            transaction.on_commit(lambda: _task_queue(delivery.pk, delay.total_seconds()), robust=True)
    if reason:
        logger.warning("Alert delivery %s to channel %s: %s", delivery.pk, delivery.channel_id, delivery.last_error)
    return delivery.status


def deliveries_resume(*, grace: timedelta = timedelta(minutes=2)) -> int:
    """Queue the deliveries overdue by more than ``grace``: their task was never queued (the broker
    was down at commit) or was lost, or the worker sending one was killed (its lease ran out). Their
    due time moves on as they are queued, so that a backlog is not queued again every minute."""
    overdue = rows_overdue(AlertDelivery, grace=grace, attempts__lt=settings.ALERT_DELIVERY_MAX_ATTEMPTS)
    for pk in overdue:
        _task_queue(pk)
    return len(overdue)
