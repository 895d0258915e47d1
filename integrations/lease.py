"""A run's lease: its heartbeat, which says that the run still holds its outbox rows (DESIGN.md, guarantee 10).

The beat's reaper (sync_logs.ledger.sync_runs_reap) closes a running run whose heartbeat is older than
SYNC_RUN_TIMEOUT_SECONDS and gives its rows back to the queue. So the heartbeat has to move
whenever the run is alive, also while one call to the destination takes minutes (timeouts and
retries, 429 waits, a bisected batch), and a run must stop writing once it has lost it.

Why a keeper thread rather than hooks in the destination client's waits: what the reaper needs
to know is whether the process still works for this run, and a thread of that process answers it
whatever the run is blocked on (an HTTP call, a rate wait, a slow query, a lock), with no code in
each transport's loops. Its blind spot is a run blocked forever in a live process: the keeper stops
renewing at SYNC_RUN_MAX_SECONDS after the run started, so such a run is reaped all the same.

The keeper only keeps the lease; the fences are the conditional writes: ``lease_renew`` (the last
statement of a claim's transaction and of a batch's outcome transaction in engine.py) moves the
heartbeat only ``WHERE status = 'running'``, and a run whose renewal matched no row raises
:class:`LeaseLost` and rolls back.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from sync_logs.models import SyncRun

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The run is no longer running (the reaper closed it): its rows are someone else's now.
    It must write nothing more and send nothing more."""


def lease_renew(run_id: int, token: int, **changes: Any) -> bool:
    """Move the run's heartbeat (and apply ``changes`` to the run), if it is still running and the slice
    holding ``token`` still holds it. False: the run lost its lease.

    As the last statement of a transaction it is that transaction's fence: it waits for a reaper
    that holds the run's row, then sees the run abandoned and the caller rolls back; or it locks the
    row first, and the reaper (SKIP LOCKED) leaves the run alone until the commit. Last, so that the
    row is held only for the commit: the run's claims and writes, in two threads, barely wait on
    each other.
    """
    return bool(
        SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.RUNNING, slice_token=token).update(
            heartbeat_at=timezone.now(), **changes
        )
    )


class Lease:
    """The lease of one run in this process: renewed by a keeper thread, checked before each send."""

    def __init__(self, run: SyncRun) -> None:
        self.run_id = run.pk
        self.token = run.slice_token
        self.deadline = (run.started_at or timezone.now()) + timedelta(seconds=settings.SYNC_RUN_MAX_SECONDS)
        self._lost = threading.Event()
        self._done = threading.Event()
        self._keeper: threading.Thread | None = None

    @property
    def overdue(self) -> bool:
        """The run has had its time (SYNC_RUN_MAX_SECONDS): it claims no more."""
        return timezone.now() >= self.deadline

    def check(self) -> None:
        """Raise LeaseLost if the keeper found the lease gone (no query: cheap enough before every call)."""
        if self._lost.is_set():
            raise LeaseLost(f"sync run {self.run_id} lost its lease")

    def hold(self) -> None:
        """Renew now, in the caller's connection, and raise LeaseLost if the run lost its lease.
        Before a send: the keeper's last word may be SYNC_RUN_TIMEOUT_SECONDS / 4 old."""
        self.check()
        if not lease_renew(self.run_id, self.token):
            self._lost.set()
            self.check()

    def keep(self) -> None:
        """Start the keeper thread. It has its own database connection: Django's are per thread."""
        self._keeper = threading.Thread(target=self._keep, name=f"sync-lease-{self.run_id}", daemon=True)
        self._keeper.start()

    def release(self) -> None:
        """Stop the keeper (the run is over, or stops)."""
        self._done.set()
        if self._keeper is not None:
            self._keeper.join()

    def _keep(self) -> None:
        interval = settings.SYNC_RUN_TIMEOUT_SECONDS / 4
        try:
            while not self._done.wait(interval):
                if self.overdue:
                    logger.warning(
                        "Sync run %s is past SYNC_RUN_MAX_SECONDS: its lease is no longer renewed", self.run_id
                    )
                    return
                try:
                    if not lease_renew(self.run_id, self.token):
                        logger.info("Sync run %s is no longer running: its lease keeper stops", self.run_id)
                        self._lost.set()
                        return
                except DatabaseError:
                    # The database may come back before the timeout; the fences hold meanwhile.
                    logger.warning("Sync run %s: could not renew its lease", self.run_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()
