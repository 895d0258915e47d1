"""The Celery app. Its configuration, beat schedule included, is the CELERY_*
settings in config/settings.py, so that it is read from the environment like
everything else."""

import inspect
import logging
import os
import time

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
)

from lib import metrics
from lib.logcontext import JsonLineFormatter, LogContextFilter, PlainFormatter, log_context
from lib.logredact import RedactSecretsFilter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("flowsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger("flowsync.tasks")


@after_setup_logger.connect
@after_setup_task_logger.connect
def redact_worker_logs(logger: logging.Logger, **kwargs: object) -> None:
    """SECURITY: mask secrets in the worker's log too, where the destination clients run.

    A worker replaces the root logger's handlers (the ones settings.LOGGING gave the
    redaction filter) with its own, and gives the task logger a handler of its own
    that does not propagate; so the filter goes on every handler Celery sets up, with
    the context's fields and, under LOG_FORMAT=json, the JSON format.
    """
    from django.conf import settings

    for handler in logger.handlers:
        if not any(isinstance(f, RedactSecretsFilter) for f in handler.filters):
            handler.addFilter(RedactSecretsFilter())
        if not any(isinstance(f, LogContextFilter) for f in handler.filters):
            handler.addFilter(LogContextFilter())
        if settings.LOG_FORMAT == "json":
            handler.setFormatter(JsonLineFormatter())
        elif not isinstance(handler.formatter, PlainFormatter):  # Celery's own format, with the context appended
            handler.setFormatter(PlainFormatter(getattr(handler.formatter, "_fmt", None)))


# --- task events: every line a task logs names the task (and its run), and each task's end is one line ---

_task_contexts: dict[str, tuple[object, float]] = {}


@task_prerun.connect
def task_started(task_id: str, task, args=None, kwargs=None, **_: object) -> None:
    fields = {"task": task.name, "task_id": task_id}
    try:  # the run a task is about, whether it came by name or by position
        run_id = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {})).arguments.get("run_id")
    except TypeError:
        run_id = None
    if isinstance(run_id, int):
        fields.update(run_id=run_id, **_run_fields(run_id))
    context = log_context(**fields)
    context.__enter__()
    _task_contexts[task_id] = (context, time.monotonic())
    logger.info("Task %s started", task.name)


def _run_fields(run_id: int) -> dict[str, int]:
    """The integration and workspace of a run, for every line of a task about it (one primary-key read)."""
    from django.db import DatabaseError

    from sync_logs.models import SyncRun

    try:
        found = SyncRun.objects.filter(pk=run_id).values_list("integration_id", "integration__workspace_id").first()
    except DatabaseError:  # the log line must not be why a task fails; the task meets the error itself
        return {}
    return {"integration_id": found[0], "workspace_id": found[1]} if found else {}


@task_postrun.connect
def task_ended(task_id: str, task, state: str | None = None, **_: object) -> None:
    context, started = _task_contexts.pop(task_id, (None, time.monotonic()))
    logger.info("Task %s ended: %s", task.name, state, extra={"state": state, "seconds": time.monotonic() - started})
    if context is not None:
        context.__exit__(None, None, None)


# --- metrics: a worker container serves its pool's counters on METRICS_PORT (lib.metrics) ---


@worker_init.connect
def metrics_serve(**_: object) -> None:
    from django.conf import settings

    metrics.multiprocess_start()
    if settings.METRICS_PORT:
        metrics.worker_serve(settings.METRICS_PORT, settings.METRICS_ADDR)


@worker_process_shutdown.connect
def metrics_child_exit(pid: int | None = None, **_: object) -> None:
    metrics.multiprocess_child_exit(pid or os.getpid())
