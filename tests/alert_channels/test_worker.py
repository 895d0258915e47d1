"""The whole trip with a real Celery worker and the broker: an integration's alert is queued after commit,
the worker posts it to the channel, a receiver that fails once costs one retry after the backoff."""

from __future__ import annotations

import pytest

from alert_channels.models import AlertDelivery
from integrations import health
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_delivers_the_alert_and_retries_a_failing_receiver(
    integration, add_channel, receiver, start_worker, settings
):
    worker = start_worker(
        extra_env={"DEBUG": "1", "ALERT_WEBHOOKS_ALLOW_LOOPBACK": "1", "ALERT_DELIVERY_RETRY_SECONDS": "1"}
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    add_channel("webhook", receiver.url())
    receiver.answers = [(502, "bad gateway")]
    assert health.alert_raise(integration=integration, reason="Sync run #3 failed: the key was revoked.")
    delivery = wait_for(
        lambda: AlertDelivery.objects.filter(status="delivered").first(), timeout=60, message="the delivery"
    )
    assert delivery.attempts == 2 and len(receiver.received) == 2
    assert receiver.received[1].json()["message"] == "Sync run #3 failed: the key was revoked."
