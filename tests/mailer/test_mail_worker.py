"""The whole trip with a real Celery worker and the real broker: a web request queues the mail,
the worker sends it, a stalled mail server costs the worker a retry and the web request nothing."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_mails_the_invitation_and_retries_a_stalled_server(
    alice_client, workspace_a, smtp_server, start_worker, settings
):
    smtp_server.stall_first = 1  # the first attempt hangs until the worker's EMAIL_TIMEOUT
    worker = start_worker(
        extra_env={
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_server.port),
            "EMAIL_TIMEOUT": "1",
            "MAIL_RETRY_SECONDS": "1",
        }
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    # This process would send through the same stalled server if the request sent the mail itself.
    response = alice_client.post("/w/acme/settings/members/invite/", {"email": "gina@example.com", "role": "admin"})
    assert response.status_code == 302
    message = wait_for(lambda: smtp_server.messages[:1], timeout=60, message="the worker to deliver the mail")[0]
    assert message["To"] == "gina@example.com" and "Acme" in message["Subject"]
    assert smtp_server.connections == 2  # the stalled attempt, then the retry
    assert "retry" in worker.log().lower()
