"""An integration's health (integrations/health.py): a failed run, a failure rate over the threshold,
or "needs attention" emails the admins, at most once per integration per hour, and shows a banner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from integrations.health import alerts_after_run
from integrations.models import AlertState
from integrations.status import integration_mark_needs_attention
from integrations.sync import sync_now
from integrations.tasks import sync_run_slice_task, sync_runs_reap_task
from sync_logs.models import SyncRun
from tests.sync_logs.factories import run_with_records
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def logs_url():
    """The alert's settings and Dismiss are on the integration's Sync Logs page."""

    def url(path: str = "") -> str:
        return f"/w/acme/integrations/iterable/logs/{path}"

    return url


def _finished(integration, **fields) -> SyncRun:
    return run_with_records(integration, fields.pop("count", 10), **fields)


def _alerts_after(run: SyncRun) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):  # the mail is queued after commit
        alerts_after_run(run)


def test_a_failed_run_emails_the_admins_once_an_hour(integration, alice, bob, workspace_a):
    _alerts_after(_finished(integration, status="failed", error_summary="Stopped: Iterable refused the key."))
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == [alice.email]  # owners and admins, not viewers (bob)
    assert "Iterable" in email.subject and workspace_a.name in email.subject
    assert "Stopped: Iterable refused the key." in email.body and "/integrations/iterable/logs/" in email.body

    _alerts_after(_finished(integration, status="failed", error_summary="Still failing."))
    assert len(mail.outbox) == 1  # within the hour: no second email
    assert "Still failing." in AlertState.objects.get(integration=integration).message  # the banner is current

    AlertState.objects.filter(integration=integration).update(last_sent_at=timezone.now() - timedelta(minutes=61))
    _alerts_after(_finished(integration, status="abandoned", error_summary="The worker stopped answering."))
    assert len(mail.outbox) == 2 and "abandoned" in mail.outbox[1].body


def test_failure_rate_over_the_threshold(integration):
    _alerts_after(_finished(integration, count=10, failed_every=5))  # 20%: not over the default 20%
    assert mail.outbox == []
    _alerts_after(_finished(integration, count=10, failed_every=3))  # 4 of 10
    assert len(mail.outbox) == 1 and "4 of 10 records failed (40%)" in mail.outbox[0].body
    assert "above the 20% alert threshold" in mail.outbox[0].body


def test_threshold_is_the_admins_and_zero_turns_it_off(alice_client, integration, logs_url):
    response = alice_client.post(logs_url("alerts/"), {"failure_rate_threshold": "0"})
    assert response.status_code == 302
    assert AlertState.objects.get(integration=integration).failure_rate_threshold == 0
    assert AuditEvent.objects.filter(verb="integration.alert_threshold_saved").exists()
    _alerts_after(_finished(integration, count=10, failed_every=1))  # partial? all failed: status partial
    assert mail.outbox == []
    bad = alice_client.post(logs_url("alerts/"), {"failure_rate_threshold": "150"}, follow=True)
    assert "whole percentage from 0 to 100" in bad.content.decode()


def test_a_clean_run_closes_the_alert_and_the_banner(alice_client, integration):
    _alerts_after(_finished(integration, status="failed", error_summary="Boom."))
    page = alice_client.get("/w/acme/").content.decode()
    assert 'data-testid="alert-banner"' in page and "Boom." in page
    _alerts_after(_finished(integration))
    assert 'data-testid="alert-banner"' not in alice_client.get("/w/acme/").content.decode()


def test_admin_dismisses_the_alert(alice_client, integration, logs_url):
    _alerts_after(_finished(integration, status="failed", error_summary="Boom."))
    alice_client.post(logs_url("alerts/"), {"action": "dismiss"})
    assert not AlertState.objects.get(integration=integration).is_open
    assert AuditEvent.objects.filter(verb="integration.alert_dismissed").exists()


def test_needs_attention_alerts_once(integration, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        integration_mark_needs_attention(integration=integration, code="auth_failed", message="The key was revoked.")
        integration_mark_needs_attention(integration=integration, code="auth_failed", message="The key was revoked.")
    assert len(mail.outbox) == 1
    assert "needs attention: The key was revoked." in mail.outbox[0].body


def test_the_sync_task_raises_alerts(integration, capture, iterable, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    settings.SYNC_MAX_ATTEMPTS = 1
    capture(2)
    iterable.fault("/api/users/bulkUpdate", status=500, times=5)
    run = sync_now(integration=integration)
    with TestCase.captureOnCommitCallbacks(execute=True):
        sync_run_slice_task(run.pk)  # the task body, in this process
    run.refresh_from_db()
    assert run.status == "failed" and len(mail.outbox) == 1 and f"Sync run #{run.pk} failed" in mail.outbox[0].body


def test_the_reaper_alerts_abandoned_runs(integration):
    run = SyncRun.objects.create(integration=integration, trigger="manual", status="running")
    SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=2))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert sync_runs_reap_task() == 1
    assert len(mail.outbox) == 1 and "abandoned" in mail.outbox[0].body


def test_a_broken_mail_server_does_not_break_the_sync(integration, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    settings.MAIL_MAX_RETRIES = 1
    _alerts_after(_finished(integration, status="failed", error_summary="Boom."))  # the mail task ran and gave up
    assert AlertState.objects.get(integration=integration).is_open  # the banner still says it
    assert "Gave up mailing" in caplog.text
