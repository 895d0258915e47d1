"""Starting syncs: Sync Now, the schedule, pause and resume, and the sync settings (wizard step 3)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from celery import Celery, current_app, signals, signature
from celery.utils import uuid
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import Length
from django.utils import timezone
from kombu import Producer, Queue
from kombu.exceptions import ChannelError

from accounts.models import User
from integrations.models import SYNC_EXTRAS, Integration, OutboxItem
from integrations.outbox import outbox_backfill
from lib import jsoncodec
from sync_logs import ledger
from sync_logs.models import SyncRecord, SyncRun
from sync_logs.partitions import run_window
from workspaces.services import audit_record

logger = logging.getLogger(__name__)
# A run's slices, the first one included (engine.sync_run_slice). Deploy the workers before the web and beat
# processes: a worker of the previous release does not know this name (it still runs the old one's
# messages, see tasks.py).
SYNC_TASK = "integrations.tasks.sync_run_slice_task"


class SyncNotStarted(Exception):
    """Why no run was started, in words for the admin; ``run`` is the one already going, if any."""

    def __init__(self, message: str, run: SyncRun | None = None) -> None:
        super().__init__(message)
        self.message, self.run = message, run


class NothingToSync(SyncNotStarted):
    """No contact is due: every one is delivered, failed for good, or waiting for its retry backoff."""


def sync_now(*, integration: Integration, trigger: str = SyncRun.Trigger.MANUAL, actor: User | None = None) -> SyncRun:
    """Queue one run and send it to a worker. At most one queued-or-running run per integration:
    a second call while one is active starts nothing (a partial unique index decides races)."""
    if not integration.is_connected:
        raise SyncNotStarted("Connect the integration first.")
    if integration.is_paused:
        raise SyncNotStarted("The integration is paused. Resume it to sync; contacts keep queueing meanwhile.")
    if integration.status == Integration.Status.NEEDS_ATTENTION:
        raise SyncNotStarted(f"The integration needs attention: {integration.error_message}")
    now = timezone.now()
    pending = OutboxItem.objects.filter(integration=integration, status=OutboxItem.Status.PENDING)
    if not pending.filter(next_attempt_at__lte=now).exists():
        # A run with nothing to send would only add a "0 · 0 · 0" row to the logs (the beat
        # dispatcher starts none either). A run still going is the more useful thing to say.
        _refuse_if_running(integration)
        raise NothingToSync(_nothing_to_sync_message(pending, now))
    run = ledger.run_create(integration=integration, trigger=trigger)
    if run is None:
        _refuse_if_running(integration)
        raise SyncNotStarted("A sync is already running for this integration.")  # it ended meanwhile
    # After commit, so that the worker finds the run; the queue is read from settings now, not at import.
    # The task by its name: tasks.py calls this module, so importing it here would make a circle.
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    transaction.on_commit(lambda: signature(SYNC_TASK, args=[run.pk]).apply_async(queue=queue))
    if actor is not None:
        audit_record(
            workspace=integration.workspace,
            actor=actor,
            verb="integration.sync_started",
            target=integration.get_kind_display(),
            data={"run": run.pk, "trigger": trigger},
        )
    return run


def _refuse_if_running(integration: Integration) -> None:
    active = SyncRun.objects.filter(integration=integration, status__in=SyncRun.ACTIVE).first()
    if active is not None:
        raise SyncNotStarted("A sync is already running for this integration.", run=active)


def _nothing_to_sync_message(pending: QuerySet[OutboxItem], now: datetime) -> str:
    backing_off = pending.aggregate(count=Count("pk"), first=Min("next_attempt_at"))
    if not backing_off["count"]:
        return "Nothing to sync: all contacts are up to date."
    when = timezone.localtime(backing_off["first"]).strftime("%H:%M %Z")
    return (
        f"Nothing to sync now: {backing_off['count']} contact(s) wait to be tried again after a destination "
        f"error, the first at {when}. The first sync after that sends them; Retry failed on their run "
        "(Sync logs) sends them now."
    )


def sync_run_continue(*, run_id: int, token: int, after_id: int, countdown: float) -> None:
    """Queue a run's next slice: behind whatever waits for a worker now (other workspaces' runs and
    slices), ``countdown`` seconds from now when the destination's budget asked the run to wait."""
    signature(SYNC_TASK, args=[run_id, token, after_id]).apply_async(
        queue=settings.CELERY_TASK_DEFAULT_QUEUE, countdown=countdown if countdown > 0 else None
    )


def sync_tasks_waiting() -> bool:
    """Whether a task waits on the sync queue for a worker: a slice whose time is up hands its run on
    only then (with nothing else to do, handing on would only cost the run its pipeline). True when
    the broker cannot say: a slice then hands on, as it would anyway."""
    try:
        with current_app.connection_for_read() as conn:
            _, waiting, _ = conn.default_channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE, passive=True)
    except ChannelError as exc:
        if str(getattr(exc, "reply_code", "")) == "404":
            return False  # Redis keeps no empty list: a queue with nothing waiting is "not found"
        logger.warning("Could not read the sync queue's length", exc_info=True)
        return True
    except Exception:  # a broker failure of any kind means it cannot say
        logger.warning("Could not read the sync queue's length", exc_info=True)
        return True
    return waiting > 0


def integrations_enqueue_due() -> list[int]:
    """The beat task's work: one run for each connected, unpaused integration whose time has come.

    A few statements in one transaction whatever the number due (integrations_due_claim, then
    ledger.runs_create), then one task per new run, sent after commit over one producer
    (sync_runs_send). Two ticks at once never start the same integration twice: a tick's
    claim skips the rows the other holds, and once that one commits they are no longer due.
    Returns the ids of the runs started.
    """
    now = timezone.now()
    with transaction.atomic():
        startable = integrations_due_claim(now=now)
        run_ids = ledger.runs_create(integration_ids=startable, trigger=SyncRun.Trigger.SCHEDULE, now=now)
        if run_ids:
            transaction.on_commit(partial(_runs_send_or_withdraw, run_ids, now))
    return run_ids


def _runs_send_or_withdraw(run_ids: list[int], now: datetime) -> None:
    try:
        sync_runs_send(run_ids)
    except TasksNotSent as exc:
        # The broker failed part-way. A run left without its task would wait for the reaper and then alert
        # its workspace as abandoned, thousands at once: withdrawn instead, due again at the next tick.
        integration_ids = ledger.runs_withdraw(run_ids=exc.run_ids)
        Integration.objects.filter(pk__in=integration_ids).update(next_run_at=now)
        raise


def _due(now: datetime) -> Q:
    # Connected only: needs-attention (a revoked key) and disconnected ones wait until fixed.
    return Q(status=Integration.Status.CONNECTED, paused_at=None, frequency__gt=0) & (
        Q(next_run_at=None) | Q(next_run_at__lte=now)
    )


def integrations_due_claim(*, now: datetime) -> list[int]:
    """Move every due integration's next_run_at one period on (call inside the tick's transaction);
    the ids of those a run may start for (sync_now's refusals: not connected, paused, needs attention) and
    that have a contact due: a run with nothing to send is not started (most ticks of a quiet workspace;
    each would cost a worker slot, a schema fetch and a run row for nothing, docs/scale.md).

    Its rows stay locked until the tick commits, and another tick skips them (SKIP LOCKED: it never
    waits). The lock is FOR NO KEY UPDATE, what an UPDATE takes anyway: a capture committing
    meanwhile locks its integration FOR KEY SHARE (its outbox row's foreign key, checked at
    commit), which that lets through, where FOR UPDATE would hold every capture of the due
    workspaces until the tick commits. next_run_at moves for an integration whose run is still
    going too (it gets no second run): the next period tries again, as before.
    """
    if connection.vendor != "postgresql":
        return _due_claim_orm(now)
    return _due_claim_sql(now)


def _due_claim_sql(now: datetime) -> list[int]:
    # _due(now), in SQL.
    table, outbox = Integration._meta.db_table, OutboxItem._meta.db_table
    sql = (
        f"UPDATE {table} SET next_run_at = %s + frequency * interval '1 minute' "  # noqa: S608 - names from the model
        f"WHERE id IN (SELECT id FROM {table} WHERE status = %s AND paused_at IS NULL AND frequency > 0 "
        "AND (next_run_at IS NULL OR next_run_at <= %s) FOR NO KEY UPDATE SKIP LOCKED) "
        # An empty ciphertext reads back as no credentials (lib.crypto.EncryptedJSONField): not connected.
        "RETURNING id, credentials IS NOT NULL AND credentials <> '', "
        # Anything to send: one probe of the partial outbox_pending index ('pending' written out for it).
        f"EXISTS (SELECT 1 FROM {outbox} o WHERE o.integration_id = {table}.id AND o.status = 'pending' "
        "AND o.next_attempt_at <= %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, Integration.Status.CONNECTED, now, now])
        return [pk for pk, connected, due_rows in cursor.fetchall() if connected and due_rows]


def _due_claim_orm(now: datetime) -> list[int]:
    # SQLite has no row locks (its writers take turns) and ignores select_for_update; a few
    # statements all the same: one read, one update per frequency.
    due = Integration.objects.select_for_update(no_key=True, skip_locked=True).filter(_due(now))
    rows = list(due.annotate(secret=Length("credentials")).values_list("pk", "frequency", "secret"))
    by_frequency: dict[int, list[int]] = defaultdict(list)
    for pk, frequency, _ in rows:
        by_frequency[frequency].append(pk)
    for frequency, pks in by_frequency.items():
        Integration.objects.filter(pk__in=pks).update(next_run_at=now + timedelta(minutes=frequency))
    waiting = set(
        OutboxItem.objects.filter(
            integration_id__in=[pk for pk, _, _ in rows], status=OutboxItem.Status.PENDING, next_attempt_at__lte=now
        )
        .values_list("integration_id", flat=True)
        .distinct()
    )
    return [pk for pk, _, secret in rows if secret and pk in waiting]


# Messages per Redis pipeline. A broker failure withdraws the batch it interrupted and those after it: some
# of that batch's tasks may have gone, and a worker that gets one then finds no run and does nothing.
SEND_CHUNK = 1_000


class TasksNotSent(Exception):
    """Sending stopped part-way: the runs of ``run_ids`` (the failed batch's and those after it) may have no task."""

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__(f"{len(run_ids)} run(s) may be without their task")
        self.run_ids = run_ids


def sync_runs_send(run_ids: Sequence[int]) -> None:
    """Send one sync task per run to the workers: the message sync_now's apply_async sends, to its queue.

    Measured at 10,000 runs on two cores: apply_async one by one costs 1.9 ms a message, over one
    producer 1.7 ms (kombu's Redis transport makes a client for each publish), in that producer's
    publish batch (one Redis pipeline per thousand messages) 0.7 ms, most of it Celery looking
    its settings up through Django's for each message. Here Celery builds one message
    (create_task_message) and each run's is that one with its own task id and argument,
    published in the batch: about 0.15 ms a message.

    apply_async's own way is kept where this one would differ from it: eager mode (each run is
    executed in place), receivers of Celery's publish signals (they see every message), and a
    serializer other than JSON or a compression. Raises TasksNotSent when the broker fails.
    """
    app = current_app
    queue_name = settings.CELERY_TASK_DEFAULT_QUEUE
    if app.conf.task_always_eager:
        for run_id in run_ids:
            signature(SYNC_TASK, args=[run_id]).apply_async(queue=queue_name)
        return
    start = 0
    try:
        with app.producer_or_acquire() as producer:
            queue = app.amqp.queues[queue_name]  # created when missing, as for apply_async
            producer.maybe_declare(queue)
            publish = _publisher(app, producer, queue)
            for start in range(0, len(run_ids), SEND_CHUNK):
                with producer.batch():  # flushed, one pipeline, when the block ends; discarded if it fails
                    for run_id in run_ids[start : start + SEND_CHUNK]:
                        publish(run_id)
    except Exception as exc:
        # Whatever it was (a lost connection, a timeout, a refused write), these may have no task.
        raise TasksNotSent(list(run_ids[start:])) from exc


def _publisher(app: Celery, producer: Producer, queue: Queue) -> Callable[[int], None]:
    """How each run's message goes out over ``producer``."""
    conf = app.conf
    hooked = signals.before_task_publish.receivers or signals.after_task_publish.receivers
    if hooked or conf.task_serializer != "json" or conf.task_compression:
        return lambda run_id: signature(SYNC_TASK, args=[run_id]).apply_async(queue=queue.name, producer=producer)
    # reply_to and ignore_result as apply_async sends them from the worker the tick runs in, where
    # the task is registered (integrations.tasks declares ignore_result).
    headers, properties, (_, _, embed), _ = app.amqp.create_task_message(
        "", SYNC_TASK, (), {}, argsrepr="", kwargsrepr="{}", reply_to=app.thread_oid, ignore_result=True
    )
    delivery_mode = queue.exchange.delivery_mode or conf.task_default_delivery_mode

    def publish(run_id: int) -> None:
        task_id = uuid()
        producer.publish(
            jsoncodec.dumps([[run_id], {}, embed]),  # protocol 2's body: args, kwargs, embed
            content_type="application/json",
            content_encoding="utf-8",
            headers={**headers, "id": task_id, "root_id": task_id, "argsrepr": f"({run_id},)"},
            **{**properties, "correlation_id": task_id},
            # A direct queue is reached through the default exchange by its name, as Celery routes it.
            exchange="",
            routing_key=queue.name,
            delivery_mode=delivery_mode,
            declare=[],
            retry=False,  # a batch's flush is not retried by kombu either: a failure raises TasksNotSent
        )

    return publish


def integration_sync_settings_save(
    *,
    integration: Integration,
    actor: User,
    frequency: int,
    overwrite_existing: bool,
    backfill: bool,
    list_id: int | None = None,
    list_name: str = "",
    event_name: str = "",
    consent: dict[str, dict[str, str]] | None = None,
) -> int:
    """Save the frequency and overwrite policy; with ``backfill``, queue the contacts captured before.

    Returns how many earlier contacts were queued."""
    integration.frequency = frequency
    integration.overwrite_existing = overwrite_existing
    integration.next_run_at = timezone.now() + timedelta(minutes=frequency) if frequency else None
    # The extras live in the destination's configuration, beside what its connect step stored.
    config = {k: v for k, v in (integration.config or {}).items() if k not in SYNC_EXTRAS}
    if consent:
        # Form field key -> {"target", "name", "unticked"}: applied by the engine after each person's upsert.
        config["consent"] = consent
    if list_id:
        config.update(list_id=list_id, list_name=list_name)
    if event_name.strip():
        config["event_name"] = event_name.strip()
    integration.config = config
    integration.sync_configured_at = integration.sync_configured_at or timezone.now()
    integration.save(
        update_fields=["frequency", "overwrite_existing", "next_run_at", "config", "sync_configured_at", "updated_at"]
    )
    queued = outbox_backfill(integration=integration) if backfill else 0
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="integration.sync_settings_saved",
        target=integration.get_kind_display(),
        data={
            "frequency": frequency,
            "overwrite_existing": overwrite_existing,
            "backfilled": queued,
            "consent": {key: rule["target"] for key, rule in (consent or {}).items()},
        },
    )
    return queued


def integration_pause(*, integration: Integration, actor: User) -> None:
    integration.paused_at = timezone.now()
    integration.save(update_fields=["paused_at", "updated_at"])
    audit_record(
        workspace=integration.workspace, actor=actor, verb="integration.paused", target=integration.get_kind_display()
    )


def integration_resume(*, integration: Integration, actor: User) -> None:
    integration.paused_at = None
    integration.next_run_at = timezone.now()  # drain what queued up while paused at the next tick
    integration.save(update_fields=["paused_at", "next_run_at", "updated_at"])
    audit_record(
        workspace=integration.workspace, actor=actor, verb="integration.resumed", target=integration.get_kind_display()
    )


@dataclass
class Requeued:
    """What a retry or a backfill reset did: how many rows went back to the queue, and the run started, if any."""

    count: int
    run: SyncRun | None
    message: str


def _requeue(rows: QuerySet[OutboxItem]) -> int:
    """Put ``rows`` back in the queue, due now, with a fresh attempt budget. Rows being sent are left alone."""
    return rows.exclude(status=OutboxItem.Status.IN_FLIGHT).update(
        status=OutboxItem.Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        run=None,
        claimed_at=None,
        error_code="",
        error_message="",
        sent_before=True,  # a newer capture of the same person may have gone meanwhile (engine checks)
    )


def _start_after_requeue(integration: Integration, count: int, actor: User | None, noun: str) -> Requeued:
    if not count:
        return Requeued(0, None, f"Nothing to retry: no {noun} is still failed.")
    try:
        run = sync_now(integration=integration, trigger=SyncRun.Trigger.RETRY, actor=actor)
    except SyncNotStarted as exc:
        later = "the running sync or the next one" if exc.run else "the next sync once this is fixed"
        return Requeued(count, None, f"{count} {noun}(s) queued again; {later} sends them. ({exc.message})")
    return Requeued(count, run, f"{count} {noun}(s) queued again; a sync started: run #{run.pk} takes them.")


def retry_failed(
    *,
    integration: Integration,
    actor: User | None,
    run: SyncRun | None = None,
    record: SyncRecord | None = None,
) -> Requeued:
    """Send failed contacts again: one record's contact, a run's failed contacts, or every failed one.

    Contacts whose failure was retryable and that wait for their backoff are made due now
    too. A contact delivered since is not touched. A permanent failure that is still
    unfixed fails again with the same reason: nothing is dropped quietly.
    """
    rows = OutboxItem.objects.filter(
        integration=integration, status__in=[OutboxItem.Status.FAILED, OutboxItem.Status.PENDING]
    )
    if record is not None:
        rows = rows.filter(contact_id=record.contact_id)
    elif run is not None:
        failed = SyncRecord.objects.filter(run=run, status=SyncRecord.Status.FAILED, **run_window(run)).values(
            "contact_id"
        )
        # A failed outbox row keeps the run that failed it: that still finds them once retention
        # has deleted the run's log rows.
        rows = rows.filter(Q(contact_id__in=failed) | Q(run=run, status=OutboxItem.Status.FAILED))
    else:
        rows = rows.filter(Q(status=OutboxItem.Status.FAILED) | Q(attempts__gt=0))
    with transaction.atomic():
        count = _requeue(rows)
        if actor is not None:
            audit_record(
                workspace=integration.workspace,
                actor=actor,
                verb="integration.retry_requested",
                target=integration.get_kind_display(),
                data={"run": run.pk if run else None, "record": record.pk if record else None, "requeued": count},
            )
    return _start_after_requeue(integration, count, actor, "failed contact")


def backfill_reset(*, integration: Integration, actor: User | None) -> Requeued:
    """Queue every contact of the workspace again, delivered ones included (support's "Reset backfill":
    for a destination project that was emptied or replaced). Chunked; never all rows in memory."""
    added = outbox_backfill(integration=integration)
    reset = 0
    ids = OutboxItem.objects.filter(integration=integration).order_by("id").values_list("id", flat=True)
    last = 0
    while True:
        chunk = list(ids.filter(id__gt=last)[:10_000])
        if not chunk:
            break
        last = chunk[-1]
        reset += _requeue(OutboxItem.objects.filter(id__in=chunk).exclude(status=OutboxItem.Status.PENDING))
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="integration.backfill_reset",
        target=integration.get_kind_display(),
        data={"added": added, "requeued": reset},
    )
    return _start_after_requeue(integration, added + reset, actor, "contact")
