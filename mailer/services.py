"""Outgoing mail: queued after commit, sent by a Celery task with retries.

Every mail the app sends (invitations, password resets, address verification, sign-up notes,
sync alerts) goes through :func:`mail_queue`. Nothing is sent inside a web request or a sync
run: a mail server that is slow, down or refusing a header costs a retry in a worker, never
a page or a sync. Imports flow one way: this module queues the task (mailer.tasks), which
calls mailer.sending.mail_send.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from mailer.tasks import mail_send_task


def mail_queue(*, to: list[str], subject: str, body: str) -> None:
    """Send the mail once the surrounding transaction commits (at once outside one).

    A rolled-back change mails nothing. ``robust``: a broker that is down is logged and does not
    turn the caller's committed change (an invitation, a reset) into an error page.
    """
    message = {"to": list(to), "subject": subject, "body": body}
    queue = settings.CELERY_TASK_DEFAULT_QUEUE  # read now, as integrations.sync does: tests give workers their own
    transaction.on_commit(lambda: mail_send_task.apply_async(kwargs=message, queue=queue), robust=True)
