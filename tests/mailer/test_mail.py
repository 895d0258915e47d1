"""Mail leaves after commit, through the mail task, with retries; never inside a web request."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import transaction

from mailer.services import mail_queue
from workspaces.models import Invitation

pytestmark = pytest.mark.django_db


def test_nothing_is_mailed_for_a_change_that_rolls_back(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        mail_queue(to=["a@example.com"], subject="Hello", body="Hi")
        raise RuntimeError("the change failed")
    assert mail.outbox == []


def test_an_invitation_to_a_workspace_named_with_a_line_break(
    alice_client, workspace_a, django_capture_on_commit_callbacks
):
    """The name becomes the mail's subject; a header may not hold a newline (Django raised
    BadHeaderError: a 500 after the invitation was stored)."""
    workspace_a.name = "Acme\nBcc: everyone@example.com"
    workspace_a.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/w/acme/settings/members/invite/", {"email": "gina@example.com", "role": "admin"})
    assert response.status_code == 302 and Invitation.objects.filter(email="gina@example.com").exists()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "You're invited to Acme Bcc: everyone@example.com on Flowsync"
    assert message.to == ["gina@example.com"] and message.bcc == []


def test_a_stalled_mail_server_costs_a_retry_not_a_hang(smtp_server, django_capture_on_commit_callbacks):
    """The first connection is accepted and never answered: EMAIL_TIMEOUT ends that attempt, the task
    tries again, and the mail arrives."""
    smtp_server.stall_first = 1
    with django_capture_on_commit_callbacks(execute=True):
        mail_queue(to=["gina@example.com"], subject="You're invited", body="Accept: https://example.com/")
    assert smtp_server.connections == 2
    [message] = smtp_server.messages
    assert message["To"] == "gina@example.com" and message["Subject"] == "You're invited"


@pytest.mark.parametrize("retries", [2, 4])  # 4: above Celery's default max_retries (3), which stopped them
def test_retries_are_bounded(retries, smtp_server, settings, caplog, django_capture_on_commit_callbacks):
    smtp_server.stall_first = 100
    settings.MAIL_MAX_RETRIES = retries
    with django_capture_on_commit_callbacks(execute=True):
        mail_queue(to=["gina@example.com"], subject="Hello", body="Hi")  # gives up: nothing raised
    assert smtp_server.connections == 1 + retries and smtp_server.messages == []  # one try, then the retries
    assert "Gave up mailing 'Hello' to 1 recipient(s)" in caplog.text


def test_a_refused_recipient_is_not_retried(smtp_server, caplog, django_capture_on_commit_callbacks):
    smtp_server.refuse_recipients = True
    with django_capture_on_commit_callbacks(execute=True):
        mail_queue(to=["nobody@example.com"], subject="Hello", body="Hi")
    assert smtp_server.connections == 1  # a 550 answers the same every time
    assert "Gave up mailing" in caplog.text and "no such user" in caplog.text


def test_imports_flow_one_way():
    """services (queues) -> tasks (retries) -> sending (sends): no function-level import hiding a cycle."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "mailer"
    imports = {}
    for module in ("services", "tasks", "sending"):
        tree = ast.parse((package / f"{module}.py").read_text())
        nested = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
        top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        assert nested == top, f"mailer/{module}.py imports inside a function"
        imports[module] = {node.module for node in top if isinstance(node, ast.ImportFrom) and node.module}
    assert "mailer.tasks" in imports["services"] and "mailer.sending" in imports["tasks"]
    assert not {"mailer.services", "mailer.tasks"} & (imports["tasks"] | imports["sending"]) - {"mailer.sending"}
