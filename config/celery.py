"""The Celery app. Its configuration, beat schedule included, is the CELERY_*
settings in config/settings.py, so that it is read from the environment like
everything else."""

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from lib.logredact import RedactSecretsFilter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("flowsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def redact_worker_logs(logger: logging.Logger, **kwargs: object) -> None:
    """SECURITY: mask secrets in the worker's log too, where the destination clients run.

    A worker replaces the root logger's handlers (the ones settings.LOGGING gave the
    redaction filter) with its own, and gives the task logger a handler of its own
    that does not propagate; so the filter goes on every handler Celery sets up.
    """
    for handler in logger.handlers:
        if not any(isinstance(f, RedactSecretsFilter) for f in handler.filters):
            handler.addFilter(RedactSecretsFilter())
