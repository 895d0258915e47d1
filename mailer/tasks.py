"""Celery tasks: thin wrappers around mailer.sending (queued by mailer.services.mail_queue)."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from django.conf import settings

from mailer.sending import mail_send

logger = logging.getLogger(__name__)


@shared_task(bind=True, ignore_result=True, acks_late=True)
def mail_send_task(self, *, to: list[str], subject: str, body: str) -> None:  # type: ignore[no-untyped-def]
    """Send one mail; a failure the mail server may get over is retried with a doubling delay."""
    try:
        mail_send(to=to, subject=subject, body=body)
    except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, reset, timed out (EMAIL_TIMEOUT)
        if _permanent(exc) or self.request.retries >= settings.MAIL_MAX_RETRIES:
            # The body is not logged: it may hold a reset or invitation link.
            logger.error("Gave up mailing %r to %d recipient(s): %r", subject, len(to), exc)
            return
        # max_retries: the setting decides, read at run time; Celery's own default (3) would stop the
        # retries before MAIL_MAX_RETRIES and raise instead of giving up above.
        raise self.retry(
            exc=exc,
            countdown=settings.MAIL_RETRY_SECONDS * 2**self.request.retries,
            max_retries=settings.MAIL_MAX_RETRIES,
        ) from exc


def _permanent(exc: Exception) -> bool:
    """A 5xx answer (unknown recipient, refused login): sending the same mail again gets the same."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500
