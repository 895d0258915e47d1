"""Rows a worker takes one at a time under a lease: an alert delivery, an erasure step.

Such a model has ``status`` ("pending", "sending", and final ones), ``due_at`` (pending: when it is
due; sending: until when its worker holds it) and ``attempts``. A worker takes a row with one
conditional UPDATE, so two given the same row send it once; a worker killed while it holds one
leaves it due again when the lease runs out, and the periodic sweep queues it again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

WAITING = ("pending", "sending")


def row_claim(model: type[models.Model], pk: int, *, lease: timedelta, **conditions: Any) -> bool:
    """Take row ``pk`` if it is pending and due, or held by a lease that ran out (and meets ``conditions``):
    it is "sending", held for ``lease``, one attempt more. Whether it was taken."""
    now = timezone.now()
    return bool(
        model._default_manager.filter(pk=pk, status__in=WAITING, due_at__lte=now, **conditions).update(
            status="sending", due_at=now + lease, attempts=F("attempts") + 1
        )
    )


def row_status(model: type[models.Model], pk: int) -> str:
    """The row's status now ("gone" when it was deleted): what a worker that did not take it answers."""
    return model._default_manager.filter(pk=pk).values_list("status", flat=True).first() or "gone"


def rows_overdue(model: type[models.Model], *, grace: timedelta, limit: int = 1000, **conditions: Any) -> list[int]:
    """The rows overdue by more than ``grace`` (a task lost with the broker, a worker killed holding one), their
    due time moved to now as they are returned, so that a backlog is not returned again at every sweep."""
    now = timezone.now()
    with transaction.atomic():
        overdue = list(
            model._default_manager.select_for_update(skip_locked=True)
            .filter(status__in=WAITING, due_at__lt=now - grace, **conditions)
            .values_list("pk", flat=True)[:limit]
        )
        model._default_manager.filter(pk__in=overdue).update(due_at=now)
    return overdue
