"""Sending one mail now: the work of mailer.tasks.mail_send_task, and of nothing else."""

from __future__ import annotations

from django.core.mail import EmailMessage


def mail_send(*, to: list[str], subject: str, body: str) -> None:
    """Send one mail now. Raises what the mail server raised, for the task to retry."""
    if not to:
        return
    # A header must be one line (Django refuses a newline with BadHeaderError, which no retry
    # fixes): a workspace name typed with a line break still gets its invitation.
    subject = " ".join(subject.split())
    EmailMessage(subject=subject, body=body, to=to).send()
