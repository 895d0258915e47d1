"""The sync engine: claim outbox rows, map them, push them, record every outcome.

Guarantees (../shared/DESIGN.md, "The sync engine"): every claimed row ends
delivered, skipped or failed with a reason, or goes back to pending; rows are
claimed with SELECT ... FOR UPDATE SKIP LOCKED so two workers never send the
same row in one pass; a batch refused whole for one record is split until the
record is isolated; an auth failure stops the run and keeps the rows pending.

Runs are fenced (guarantee 10, integrations/lease.py): a claim, a batch's outcomes and the
finish each move the run's heartbeat WHERE it is still running, in their transaction (rolled
back when it matched nothing), and outbox rows are changed only WHERE they are still this run's
and in flight. A run the
reaper closed gets LeaseLost at its next claim, send or write, and stops. A batch's outcomes
(outbox rows, log rows, the run's counts) commit together or not at all (guarantee 11).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from field_mapping.services import BuiltRecord, MappingPlan, build_record, mapping_plan, schema_refresh
from flows.models import Contact, ConversionFlow
from integrations.destinations import destination_for
from integrations.destinations.base import (
    AuthError,
    BudgetWait,
    Capability,
    Destination,
    DestinationError,
    ForbiddenError,
    MappedRecord,
    PayloadTooLargeError,
    RecordResult,
    TypeMismatchError,
)
from integrations.lease import Lease, LeaseLost, lease_renew
from integrations.models import Integration, OutboxItem
from integrations.status import integration_mark_needs_attention
from integrations.sync import SyncNotStarted, sync_now, sync_run_continue, sync_tasks_waiting
from lib import jsoncodec, metrics
from lib.faults import fault_point
from lib.logcontext import log_context
from sync_logs import ledger
from sync_logs.exchanges import ExchangeLog, exchange_log_flush, exchange_log_open
from sync_logs.models import SyncRecord, SyncRun
from sync_logs.partitions import CLOCK_SLACK

logger = logging.getLogger(__name__)
Status = OutboxItem.Status
# Wait before retrying a retryable failure, by attempt number (then the last one again).
RETRY_DELAYS = [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1)]


class StopRun(Exception):
    """The run cannot go on (credentials refused); claimed rows go back to pending."""


@dataclass
class Outcome:
    status: str  # delivered | skipped | failed
    code: str = ""
    message: str = ""
    retryable: bool = False
    payload: dict[str, Any] | None = None
    identifier: str = ""
    destination_code: str = ""  # the destination's own name for the cause, beside Flowsync's ``code``


def _coded(destination: Destination, code: str, destination_code: str = "") -> tuple[str, str]:
    """(Flowsync's stable code, the destination's own) for a code a destination gave."""
    stable = destination.stable_code(code)
    return stable, destination_code or (code if code != stable else "")


# --- Claiming --------------------------------------------------------------------------------


@dataclass
class Claimed:
    """A claimed outbox row with its contact's data: plain values, not model instances (hot path)."""

    id: int
    contact_id: int
    attempts: int
    data: dict[str, Any]
    flow_id: int = 0
    sent_before: bool = False
    device: dict[str, Any] | None = None  # a mobile device to register once the person is upserted
    consents: dict[str, Any] = field(default_factory=dict)  # Contact.consents: each consent box's answer
    # A newer capture of the same person was delivered already (_without_newer_values): this row's
    # answers are older than the destination's, so none of its consent answers is applied.
    overtaken: bool = False


def claim_batch(*, run: SyncRun, size: int, after_id: int = 0) -> list[Claimed]:
    """Take up to ``size`` due pending rows of the run's integration for this run, ids above ``after_id``.

    SKIP LOCKED lets several workers claim side by side without waiting on, or
    taking, each other's rows; the claim commits before anything is sent. On
    PostgreSQL it is one statement that also returns the contacts' data.
    ``after_id`` lets a run walk the queue forward: the index entries of rows it
    has claimed stay behind until vacuum, and starting every claim from the
    lowest id would step over all of them again (quadratic in a big backlog).

    Fenced: raises LeaseLost, claiming nothing (rolled back), when the run is no longer running:
    a claim never leaves rows in flight under a run the reaper closed.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        outbox, contacts = OutboxItem._meta.db_table, Contact._meta.db_table
        sql = (
            f"UPDATE {outbox} o SET status = %s, run_id = %s, claimed_at = %s "  # noqa: S608 - tables from models
            # = ANY(ARRAY(...)), not IN (...): the locked ids are then a value the update looks up in the
            # primary key; as an IN subquery the planner may hash them and read the whole outbox (every
            # row ever queued) on every claim, which made the claim most of a sync's database time.
            f"FROM {contacts} c WHERE c.id = o.contact_id AND o.id = ANY(ARRAY("
            # 'pending' written out, not a parameter: the planner must see it to use the partial outbox_pending.
            # Command rows (no contact) are commands_carry_out's, not a batch's.
            f"SELECT id FROM {outbox} WHERE integration_id = %s AND status = 'pending' AND id > %s "
            f"AND next_attempt_at <= %s AND contact_id IS NOT NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)) "
            f"RETURNING o.id, o.contact_id, o.attempts, c.data, c.flow_id, o.sent_before, c.device, c.consents"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [Status.IN_FLIGHT, run.pk, now, run.integration_id, after_id, now, size])
            rows = cursor.fetchall()
            _fence(run)
        # The contacts' data comes as the database's JSON text (Django reads jsonb so), parsed here once.
        loads = jsoncodec.loads
        return sorted(
            (
                Claimed(
                    r[0],
                    r[1],
                    r[2],
                    r[3] if isinstance(r[3], dict) else loads(r[3]),
                    r[4],
                    r[5],
                    r[6] if r[6] is None or isinstance(r[6], dict) else loads(r[6]),
                    (r[7] if isinstance(r[7], dict) else loads(r[7])) if r[7] is not None else {},
                )
                for r in rows
            ),
            key=lambda c: c.id,
        )
    with transaction.atomic():
        claimed = list(
            OutboxItem.objects.select_for_update(skip_locked=True)
            .filter(integration_id=run.integration_id, status=Status.PENDING, id__gt=after_id, next_attempt_at__lte=now)
            .exclude(contact=None)
            .order_by("id")
            .values_list("id", "contact_id", "attempts", "sent_before")[:size]
        )
        if claimed:
            OutboxItem.objects.filter(id__in=[r[0] for r in claimed]).update(
                status=Status.IN_FLIGHT, run=run, claimed_at=now
            )
        _fence(run)
    found = Contact.objects.filter(id__in=[r[1] for r in claimed]).values_list(
        "id", "data", "flow_id", "device", "consents"
    )
    by_id = {cid: rest for cid, *rest in found}
    missing = ({}, 0, None, None)
    return [
        Claimed(
            r[0],
            r[1],
            r[2],
            *by_id.get(r[1], missing)[:2],
            sent_before=r[3],
            device=by_id.get(r[1], missing)[2],
            consents=by_id.get(r[1], missing)[3] or {},
        )
        for r in claimed
    ]


def _fence(run: SyncRun, **changes: Any) -> None:
    """The end of a transaction of the run: move its heartbeat (and apply ``changes``), or raise
    LeaseLost so that the transaction rolls back."""
    if not lease_renew(run.pk, run.slice_token, **changes):
        raise LeaseLost(f"sync run {run.pk} is no longer running")


def release(items: list[Claimed], *, run: SyncRun, sent: bool = False) -> None:
    """Give this run's claimed rows back: no attempt is counted. ``sent``: they may have reached the
    destination already (a run stopped in the middle), so the newer-values check applies to them."""
    changes: dict[str, Any] = {"status": Status.PENDING, "run": None, "claimed_at": None}
    if sent:
        changes["sent_before"] = True
    OutboxItem.objects.filter(id__in=[i.id for i in items], run_id=run.pk, status=Status.IN_FLIGHT).update(**changes)


# --- Pushing ---------------------------------------------------------------------------------


def push_isolating(
    destination: Destination, records: list[dict[str, Any]], *, create_new_fields: bool
) -> list[RecordResult]:
    """Push ``records``; when the destination refuses the whole batch for one record and cannot say
    which (a type mismatch naming no value a record carries, a 413), split it in halves until the
    culprits stand alone. Refusals that name their values are handled inside push, in one round."""
    try:
        return destination.push(records, create_new_fields=create_new_fields)
    except (TypeMismatchError, PayloadTooLargeError) as exc:
        if len(records) == 1:
            detail = "; ".join(exc.field_errors.values()) or exc.message
            return [RecordResult(destination.identifier_of(records[0]), False, exc.code, detail)]
        middle = len(records) // 2
        return push_isolating(destination, records[:middle], create_new_fields=create_new_fields) + push_isolating(
            destination, records[middle:], create_new_fields=create_new_fields
        )


def _split_duplicates(pairs: list[tuple[Claimed, BuiltRecord]]) -> tuple[list, list[Claimed]]:
    """Keep one record per identifier in a batch (failures come back by identifier, so two
    copies could not be told apart); the later ones wait for the next batch, in order."""
    seen: set[str] = set()
    kept, deferred = [], []
    for item, built in pairs:
        key = _identity(built.identifier)
        if key in seen:
            deferred.append(item)
        else:
            seen.add(key)
            kept.append((item, built))
    return kept, deferred


SUPERSEDED_MESSAGE = "A newer capture of this person reached {name} first and set every value this one had."


def _without_newer_values(
    *, integration: Integration, plan: MappingPlan, pairs: list[tuple[Claimed, BuiltRecord]]
) -> tuple[list[tuple[Claimed, BuiltRecord]], list[tuple[Claimed, BuiltRecord]]]:
    """Keep a row sent before from overwriting what a newer capture of the same person put in the destination.

    A row that waits out a retry backoff, that Retry queued again, or that a backfill queued late
    can be overtaken by a later capture of the same person; an upsert of the old row would then
    put its older values back. The values the newer captures were delivered with (their log rows'
    payloads: what was sent, whatever the mapping is now, read back by the destination) are taken
    out of its neutral record, and the payload is made again from what is left. Returns the pairs
    to send and those left with nothing to send. Rows on their first attempt go in capture order,
    so this costs nothing on the hot path.
    """
    again = [pair for pair in pairs if pair[0].sent_before]
    if not again:
        return pairs, []
    newer: dict[str, dict[int, dict]] = {}  # identifier -> newer contact id -> a payload it was delivered with
    oldest = min(item.contact_id for item, _ in again)
    # A newer capture's log rows are written after the oldest one here was captured: that bounds the
    # rows' time, so PostgreSQL reads only the log partitions since then, not every day's.
    captured = Contact.objects.filter(pk=oldest).values_list("created_at", flat=True).first()
    since = {"created_at__gte": captured - CLOCK_SLACK} if captured else {}
    for identifier, contact_id, payload in SyncRecord.objects.filter(
        run__integration_id=integration.pk,
        status=SyncRecord.Status.DELIVERED,
        identifier__in={built.identifier for _, built in again},
        contact_id__gt=oldest,
        **since,
    ).values_list("identifier", "contact_id", "payload"):
        if payload:
            newer.setdefault(identifier, {})[contact_id] = payload
    if not newer:
        return pairs, []
    destination = plan.destination
    kept, superseded = [], []
    for item, built in pairs:
        later = newer.get(built.identifier, {}) if item.sent_before else {}
        taken: set[str] = set()
        for contact_id, payload in later.items():
            if contact_id > item.contact_id:
                taken |= set(destination.sent_values(payload, built.identifier))
        if not taken:
            kept.append((item, built))
            continue
        item.overtaken = True
        record = built.record
        assert record is not None  # an "ok" record has one
        key_name = next(iter(record.identifiers))
        trimmed = MappedRecord(
            identifiers={k: v for k, v in record.identifiers.items() if k == key_name or k not in taken},
            attributes={k: v for k, v in record.attributes.items() if k not in taken},
        )
        if not trimmed.attributes and len(trimmed.identifiers) == 1:
            superseded.append((item, built))
            continue
        built.record, built.payload = trimmed, destination.payload(trimmed, plan.config)
        kept.append((item, built))
    return kept, superseded


def record_batch(*, run: SyncRun, items: list[Claimed], outcomes: dict[int, Outcome]) -> None:
    """The database half of a batch: every outcome written (rows without one went back to the queue)."""
    _record(run=run, items=[i for i in items if i.id in outcomes], outcomes=outcomes)


@dataclass
class Prepared:
    """A batch built and sorted, before anything is sent: what fails or is skipped already, what goes,
    what waits for the next batch (a second capture of one person), what a newer capture superseded."""

    outcomes: dict[int, Outcome]
    sendable: list[tuple[Claimed, BuiltRecord]]
    deferred: list[Claimed]
    superseded: list[tuple[Claimed, BuiltRecord]]


def prepare_batch(*, integration: Integration, plan: MappingPlan, items: list[Claimed]) -> Prepared:
    outcomes: dict[int, Outcome] = {}
    sendable: list[tuple[Claimed, BuiltRecord]] = []
    for item in items:
        built = build_record(item.data, plan)
        if built.status == "error":
            outcomes[item.id] = Outcome("failed", "mapping_error", built.reason, identifier=built.identifier)
        elif built.status == "skip":
            outcomes[item.id] = Outcome("skipped", "no_identifier", built.reason)
        else:
            sendable.append((item, built))
    sendable, deferred = _split_duplicates(sendable)
    sendable, superseded = _without_newer_values(integration=integration, plan=plan, pairs=sendable)
    return Prepared(outcomes, sendable, deferred, superseded)


def decide_batch(
    *, integration: Integration, destination: Destination, plan: MappingPlan, prepared: Prepared, lease: Lease
) -> dict[int, Outcome]:
    """The destination half of a prepared batch: look up, push, list and event. Returns the outcomes of
    its rows (the deferred ones have none: they went back to the queue).

    Raises LeaseLost instead of sending when the run lost its lease (checked in the database before
    the lookups and before the push, and by the keeper's flag before the extras)."""
    outcomes, sendable, superseded = dict(prepared.outcomes), prepared.sendable, prepared.superseded
    label = plan.destination.label
    for item, built in superseded:
        outcomes[item.id] = Outcome(
            "skipped", "superseded", SUPERSEDED_MESSAGE.format(name=label), identifier=built.identifier
        )
    if sendable:
        fault_point("sync.before_push")  # tests freeze a worker here (tests/sync/test_worker_sync.py)
        lease.hold()
    try:
        if sendable and not integration.overwrite_existing:
            found = destination.find_existing([b.payload for _, b in sendable])
            for (item, built), exists in zip(sendable, found, strict=True):
                if exists:
                    outcomes[item.id] = Outcome(
                        "skipped",
                        "existing_user",
                        f"This person already exists in {label} and the integration leaves existing people unchanged.",
                        identifier=built.identifier,
                    )
            sendable = [pair for pair, exists in zip(sendable, found, strict=True) if not exists]
            if sendable:
                lease.hold()  # the lookups take a while (one call per record)
        results = (
            push_isolating(destination, [b.payload for _, b in sendable], create_new_fields=plan.create_new_fields)
            if sendable
            else []
        )
    except (AuthError, ForbiddenError):
        raise
    except DestinationError as exc:
        # The whole batch failed for a reason that may pass (outage, rate budget spent).
        results = [RecordResult(b.identifier, False, exc.code, exc.message, exc.retryable) for _, b in sendable]
    for (item, built), result in zip(sendable, results, strict=True):
        code, own = _coded(destination, result.code, result.destination_code) if result.code else ("", "")
        outcomes[item.id] = Outcome(
            "delivered" if result.delivered else "failed",
            code,
            result.message,
            result.retryable,
            payload=built.payload,
            identifier=built.identifier,
            destination_code=own,
        )
    delivered = [(item, built) for item, built in sendable if outcomes[item.id].status == "delivered"]
    # A superseded row's person is in the destination already: its submission still gets its list and event.
    delivered += superseded
    if delivered and (
        integration.list_id
        or integration.event_name
        or consent_rules(integration, destination)
        or any(item.device for item, _ in delivered)
    ):
        _extras(integration=integration, destination=destination, delivered=delivered, outcomes=outcomes, lease=lease)
    return outcomes


def _extras(
    *,
    integration: Integration,
    destination: Destination,
    delivered: list[tuple[Claimed, BuiltRecord]],
    outcomes: dict[int, Outcome],
    lease: Lease,
) -> None:
    """The optional list subscription, event and mobile device per delivered contact.

    The person is in the destination already. A step refused for good (a bad list, a forgotten user) is
    noted on the record, which stays delivered. A step that may pass later (an outage, an answer
    not understood) fails the record retryably: the contact goes again, push, list and event
    (an upsert, an idempotent subscription; a contact whose subscription failed gets no event now).
    Each event carries a stable id (``event_id``), so a contact sent again (a retry, a reaped run's
    rows) updates its event in the destination instead of adding a second one.
    """
    check = lease.check
    if integration.list_id:
        check()
        _batch_step(
            destination,
            outcomes,
            delivered,
            f"adding to the list '{integration.list_name}'",
            lambda payloads: destination.subscribe(integration.list_id, payloads),
        )
        delivered = [pair for pair in delivered if not outcomes[pair[0].id].retryable]
    _consents_apply(
        integration=integration, destination=destination, delivered=delivered, outcomes=outcomes, check=check
    )
    delivered = [pair for pair in delivered if not outcomes[pair[0].id].retryable]
    if integration.event_name:
        flows = dict(ConversionFlow.objects.filter(id__in={i.flow_id for i, _ in delivered}).values_list("id", "name"))
        for item, built in delivered:
            check()
            try:
                destination.track(
                    integration.event_name,
                    built.payload,
                    {"flowName": flows.get(item.flow_id, ""), "flowsyncContactId": item.contact_id},
                    event_id=event_id(integration.pk, item.contact_id),
                )
            except (AuthError, ForbiddenError):
                raise
            except DestinationError as exc:
                result = RecordResult(built.identifier, False, exc.code, exc.message, exc.retryable)
                _extra_failed(outcomes[item.id], f"tracking '{integration.event_name}'", result, destination)
    with_device = [pair for pair in delivered if pair[0].device and not outcomes[pair[0].id].retryable]
    if with_device and not destination.supports(Capability.DEVICES, integration.config or {}):
        for item, _ in with_device:
            _extra_failed(
                outcomes[item.id],
                "registering the device",
                RecordResult("", False, "unsupported", f"{destination.label} takes no mobile devices from Flowsync"),
                destination,
            )
        with_device = []
    for item, built in with_device:
        check()
        try:
            destination.device_register(built.payload, item.device)
        except (AuthError, ForbiddenError):
            raise
        except DestinationError as exc:
            result = RecordResult(built.identifier, False, exc.code, exc.message, exc.retryable)
            _extra_failed(outcomes[item.id], "registering the device", result, destination)


def consent_rules(integration: Integration, destination: Destination) -> dict[str, dict[str, str]]:
    """The integration's consent mapping: form field key -> {"target", "name", "unticked"} (the sync
    settings step), where the destination can subscribe people."""
    rules = (integration.config or {}).get("consent") or {}
    return rules if rules and destination.supports(Capability.SUBSCRIPTIONS, integration.config or {}) else {}


def _consents_apply(
    *,
    integration: Integration,
    destination: Destination,
    delivered: list[tuple[Claimed, BuiltRecord]],
    outcomes: dict[int, Outcome],
    check: Any,
) -> None:
    """Each consent field's answer as the admin mapped it: a ticked box subscribes the person to its target;
    an unticked one unsubscribes them only when the admin chose that ("unticked": "unsubscribe"), and a
    box never answered (the capture API did not send it) does nothing. Nobody who did not tick is ever
    subscribed. Only an answer to a consent box counts (Contact.consents, with the words it was given to): a
    yes/no field of the same key in another flow, or a contact captured before the box was a consent field,
    subscribes nobody. An answer older than a capture of the person delivered already is not applied."""
    fresh = [pair for pair in delivered if not pair[0].overtaken]
    for key, rule in consent_rules(integration, destination).items():
        for subscribe in (True, False):
            if not subscribe and rule.get("unticked") != "unsubscribe":
                continue
            group = [
                (item, built)
                for item, built in fresh
                if (item.consents.get(key) or {}).get("given") is subscribe and not outcomes[item.id].retryable
            ]
            if not group:
                continue
            check()
            name = rule.get("name") or rule["target"]
            _batch_step(
                destination,
                outcomes,
                group,
                f"subscribing them to {name}" if subscribe else f"unsubscribing them from {name}",
                lambda payloads, target=rule["target"], subscribe=subscribe: destination.subscriptions_apply(
                    target, subscribe, payloads
                ),
            )


def _batch_step(
    destination: Destination,
    outcomes: dict[int, Outcome],
    pairs: list[tuple[Claimed, BuiltRecord]],
    step: str,
    send: Any,
) -> None:
    """One extra made for a group of delivered people at once (``send(payloads)``: a result each); what it
    could not do is the records' (_extra_failed). A refused key stops the run, as in the push."""
    try:
        results = send([b.payload for _, b in pairs])
    except (AuthError, ForbiddenError):
        raise
    except DestinationError as exc:
        results = [RecordResult(b.identifier, False, exc.code, exc.message, exc.retryable) for _, b in pairs]
    for (item, _), result in zip(pairs, results, strict=True):
        if not result.delivered:
            _extra_failed(outcomes[item.id], step, result, destination)


def _extra_failed(outcome: Outcome, step: str, result: RecordResult, destination: Destination) -> None:
    if result.retryable:
        outcome.status, outcome.retryable = "failed", True
        outcome.code, outcome.destination_code = _coded(destination, result.code, result.destination_code)
        outcome.message = f"The person is in {destination.label}, but {step} failed: {result.message}"
        return
    note = f"Delivered; {step} failed: {result.message}"
    outcome.message = f"{outcome.message} {note}" if outcome.message else note


def event_id(integration_id: int, contact_id: int) -> str:
    """The id of a contact's event in the destination: the same every time this integration sends it."""
    return f"flowsync-{integration_id}-{contact_id}"


def _record(*, run: SyncRun, items: list[Claimed], outcomes: dict[int, Outcome]) -> None:
    """Write the outcome of each row: the outbox row, one log row per contact, the run's counts.

    One transaction, fenced: all of it commits or none (a worker killed half-way, a database
    error in the COPY), so a contact marked delivered always has its log row and its count.
    Outbox rows change only WHERE they are still this run's and in flight (a row no longer held,
    its contact deleted meanwhile, gets no log row and no count); the run's counts go last, with
    its heartbeat, WHERE it is still running: when the reaper closed it, LeaseLost and nothing
    of the batch is written.

    Outbox rows are updated per group of identical changes, not per row: a batch that failed
    whole (an outage) is one UPDATE, not a thousand.
    """
    now, started = timezone.now(), time.monotonic()
    max_attempts = settings.SYNC_MAX_ATTEMPTS
    log_rows: dict[int, tuple] = {}  # outbox id -> its log row
    groups: dict[tuple, list[int]] = {}  # (status, attempts or None, code, stored message) -> outbox ids
    for item in items:
        outcome = outcomes[item.id]
        message = outcome.message
        if outcome.status == "failed":
            attempts = item.attempts + 1
            if outcome.retryable and attempts < max_attempts:
                message = f"{message} Will retry (attempt {attempts + 1} of {max_attempts})."
                key = (Status.PENDING, attempts, outcome.code, outcome.message)
            else:
                if outcome.retryable:
                    message = f"{message} Gave up after {attempts} attempts; press Retry to try again."
                key = (Status.FAILED, attempts, outcome.code, message)
        else:
            key = (Status.DELIVERED if outcome.status == "delivered" else Status.SKIPPED, None, "", "")
        groups.setdefault(key, []).append(item.id)
        log_rows[item.id] = (
            run.pk,
            item.contact_id,
            outcome.identifier[:254],
            outcome.status,
            outcome.code[:50],
            outcome.destination_code[:100],
            message,
            outcome.retryable,
            outcome.payload,
            now,
        )
    with transaction.atomic():
        held: list[int] = []
        for (status, attempts, code, stored), ids in groups.items():
            changes: dict[str, Any] = {"status": status, "error_code": code, "error_message": stored}
            if attempts is not None:
                changes["attempts"] = attempts
            if status == Status.PENDING:  # back in the queue, due after the backoff for this attempt
                changes.update(
                    next_attempt_at=now + RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)],
                    run_id=None,
                    claimed_at=None,
                    sent_before=True,
                )
            held += update_outbox(ids, changes, run_id=run.pk, count_attempt=attempts is None)
        fault_point("sync.before_log_rows")  # tests kill a worker here (tests/sync/test_worker_sync.py)
        ledger.records_write([log_rows[outbox_id] for outbox_id in sorted(held)])
        counts = {"delivered": 0, "skipped": 0, "failed": 0}
        for outbox_id in held:
            counts[outcomes[outbox_id].status] += 1
        _fence(
            run,
            total=F("total") + len(held),
            delivered=F("delivered") + counts["delivered"],
            skipped=F("skipped") + counts["skipped"],
            failed=F("failed") + counts["failed"],
        )
    metrics.records_written(run.integration.kind, ((outcomes[i].status, outcomes[i].code) for i in held))
    logger.info(
        "Batch of %d recorded: %d delivered, %d skipped, %d failed",
        len(items),
        counts["delivered"],
        counts["skipped"],
        counts["failed"],
        extra={"batch": len(items), **counts, "write_ms": round((time.monotonic() - started) * 1000, 1)},
    )


COMMANDS_PER_SLICE = 100


def commands_due(*, integration_id: int, now) -> QuerySet[OutboxItem]:
    """The integration's command rows due now, oldest first: found through the contact key's index (which
    holds the NULLs), so a backlog of contact rows is never walked to find none."""
    return OutboxItem.objects.filter(
        integration_id=integration_id, status=Status.PENDING, contact=None, next_attempt_at__lte=now
    ).order_by("id")


def commands_carry_out(*, run: SyncRun, destination: Destination) -> int:
    """The command rows due for the run's integration (a device to disable), up to COMMANDS_PER_SLICE a
    slice: claimed like contacts (SKIP LOCKED, fenced), carried out one by one, each written as an
    outbox outcome and a log row of its own by the same _record (retries, backoff, counts)."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            commands_due(integration_id=run.integration_id, now=now)
            .select_for_update(skip_locked=True)
            .values_list("id", "attempts", "sent_before", "command")[:COMMANDS_PER_SLICE]
        )
        if not rows:
            return 0
        OutboxItem.objects.filter(id__in=[r[0] for r in rows]).update(status=Status.IN_FLIGHT, run=run, claimed_at=now)
        _fence(run)
    items = [Claimed(r[0], None, r[1], {}, 0, r[2]) for r in rows]  # type: ignore[arg-type]
    config = run.integration.config or {}
    outcomes = {
        item.id: _command_outcome(destination, row[3] or {}, config) for row, item in zip(rows, items, strict=True)
    }
    _record(run=run, items=items, outcomes=outcomes)
    return len(items)


def _command_outcome(destination: Destination, command: dict[str, Any], config: dict[str, Any]) -> Outcome:
    identifiers = {k: v for k, v in (command.get("identifiers") or {}).items() if v}
    token = str(command.get("token") or "")
    shown = next(iter(identifiers.values()), "") or f"device …{token[-6:]}"
    payload = {"disable_device": {"token": token, **identifiers}}
    if command.get("op") != "device_disable" or not token:
        return Outcome("failed", "invalid", "Not a command Flowsync knows.", identifier=shown, payload=payload)
    if not destination.supports(Capability.DEVICES, config):
        return Outcome(
            "skipped",
            "unsupported",
            f"{destination.label} takes no mobile devices from Flowsync.",
            identifier=shown,
            payload=payload,
        )
    try:
        destination.device_disable(token, identifiers)
    except (AuthError, ForbiddenError) as exc:
        raise StopRun(exc.message) from exc
    except DestinationError as exc:
        code, destination_code = _coded(destination, exc.code, "")
        return Outcome(
            "failed",
            code,
            f"Disabling the device failed: {exc.message}",
            exc.retryable,
            payload,
            shown,
            destination_code,
        )
    return Outcome("delivered", message="Device disabled.", identifier=shown, payload=payload)


def update_outbox(ids: list[int], changes: dict[str, Any], *, run_id: int, count_attempt: bool = False) -> list[int]:
    """Apply ``changes`` (column -> value) to those of the outbox rows ``ids`` that run ``run_id``
    still holds in flight, in one UPDATE. Returns the ids it changed.

    On PostgreSQL the ids go as one array parameter: an IN list of a thousand
    placeholders costs the worker more to compile and bind than the update costs
    the database.
    """
    if connection.vendor != "postgresql":
        if count_attempt:
            changes = {**changes, "attempts": F("attempts") + 1}
        held = OutboxItem.objects.filter(id__in=ids, run_id=run_id, status=Status.IN_FLIGHT)
        changed = list(held.values_list("id", flat=True))
        OutboxItem.objects.filter(id__in=changed).update(**changes)
        return changed
    assignments = [f"{column} = %s" for column in changes]
    if count_attempt:
        assignments.append("attempts = attempts + 1")
    sql = (
        f"UPDATE {OutboxItem._meta.db_table} SET {', '.join(assignments)} "  # noqa: S608 - columns from the code
        f"WHERE id = ANY(%s) AND run_id = %s AND status = %s RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*changes.values(), ids, run_id, Status.IN_FLIGHT])
        return [row[0] for row in cursor.fetchall()]


# --- A run -------------------------------------------------------------------------------------


@dataclass
class SliceBudget:
    """What one slice of a run may do before it hands the run on to a new task, behind the queue's
    other work: so many batches, until a moment (time.monotonic), and rate-budget waits up to
    ``yield_after`` seconds slept out in its worker slot (a longer one gives the slot back)."""

    batches: int
    ends_at: float
    yield_after: float

    @classmethod
    def start(cls) -> SliceBudget | None:
        """This slice's budget (SYNC_SLICE_*), or None where a run goes to its end in one go: slicing
        turned off, eager tasks (a next slice would run inside this one), or inside a transaction."""
        seconds = settings.SYNC_SLICE_SECONDS
        if seconds <= 0 or settings.CELERY_TASK_ALWAYS_EAGER or connection.in_atomic_block:
            return None
        return cls(max(1, settings.SYNC_SLICE_BATCHES), time.monotonic() + seconds, settings.SYNC_SLICE_YIELD_SECONDS)

    def spent(self, batches: int) -> bool:
        return batches >= self.batches or time.monotonic() >= self.ends_at

    def renew(self, batches: int) -> None:
        """Another slice's worth from now (``batches`` done so far): nothing else waited for a worker."""
        self.batches = batches + max(1, settings.SYNC_SLICE_BATCHES)
        self.ends_at = time.monotonic() + settings.SYNC_SLICE_SECONDS


def _slice_ends(budget: SliceBudget | None, batches: int) -> bool:
    """Whether the slice ends after this batch: its budget is spent and other work waits for a worker. Spent
    with nothing waiting, it is renewed here, before the next batch is claimed ahead: a renewal found only at
    the next batch would claim that batch without its look-ahead, a stall in the pipeline at every slice."""
    if budget is None or not budget.spent(batches):
        return False
    if sync_tasks_waiting():
        return True
    budget.renew(batches)
    return False


@dataclass
class Handoff:
    """A slice ended with rows perhaps left: the run goes on in a new task ``resume_in`` seconds from
    now, claiming from above ``after_id`` (where this slice stopped)."""

    resume_in: float
    after_id: int


@dataclass
class _Push:
    """A batch whose push is in flight: its rows, its prepared records, the push's future."""

    items: list[Claimed]
    prepared: Prepared
    future: Future
    keys: set[str]


def _here() -> contextvars.Context:
    """This thread's context, for work handed to a pool thread: its log lines name the run as this one's do."""
    return contextvars.copy_context()


def _identity(identifier: str) -> str:
    """What makes two records the same person for the engine's ordering: identifiers compared without case
    (a destination may read Erin@x.com and erin@x.com as one person)."""
    return identifier.lower()


def _run_batches(
    *,
    run: SyncRun,
    integration: Integration,
    destination: Destination,
    plan: MappingPlan,
    lease: Lease,
    budget: SliceBudget | None = None,
    after_id: int = 0,
    exchanges: ExchangeLog | None = None,
) -> Handoff | bool:
    """Claim and push batch after batch until none is left, the slice's budget is spent, or the run has
    had its time.

    Returns a Handoff when the slice ended (``budget``: its batches or seconds are spent, or the
    destination's rate budget would keep the run waiting longer than the slice sleeps out), else
    True when it stopped for time (SYNC_RUN_MAX_SECONDS) rather than for want of rows. Between slices
    the run holds nothing: pushes in flight are answered and written, rows claimed ahead go back.

    Pipelined, each stage in its own thread with its own database connection: batch k+1 is claimed
    and built (mapped, coerced, encoded for the destination) while batch k is sent; up to
    SYNC_PUSHES_IN_FLIGHT pushes are in flight at once, so a destination that takes its time to
    answer does not leave the run's rate budget unused (the destination's pacing still spaces every
    request); batch k's outcomes are written while later batches are sent, one batch at a time and
    in order. One person's captures still reach the destination in capture order: a batch that
    carries a person of a push still in flight waits for that push to be answered before it goes,
    and a batch's second capture of one person waits for the next batch (release, below). Inside an
    outer transaction (the in-process tests) a second connection could not see its rows, so batches
    then run one after the other.

    ``exchanges``: the run's exchange log, written after each batch's outcomes (by the same thread).
    """
    batch_size = settings.SYNC_BATCH_SIZE
    pipelined = not connection.in_atomic_block
    depth = max(1, settings.SYNC_PUSHES_IN_FLIGHT) if pipelined else 1
    recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-record") if pipelined else None
    claimer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-claim") if pipelined else None
    pusher = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="sync-push") if pipelined else None
    previous: Future | None = None  # the write of the last batch answered
    ahead: Future | None = None  # the next batch's claim (and build), made while this one is sent
    in_flight: deque[_Push] = deque()  # oldest first
    out_of_time = False
    handoff: Handoff | None = None

    def claim_ahead(after_id: int) -> tuple[list[Claimed], Prepared | None]:
        items = claim_batch(run=run, size=batch_size, after_id=after_id)
        if any(item.sent_before for item in items):
            return items, None  # built once every batch before it has its outcomes written (below)
        return items, prepare_batch(integration=integration, plan=plan, items=items)

    def decide(items: list[Claimed], prepared: Prepared) -> dict[int, Outcome]:
        try:
            return decide_batch(
                integration=integration, destination=destination, plan=plan, prepared=prepared, lease=lease
            )
        except (AuthError, ForbiddenError) as exc:
            raise StopRun(exc.message) from exc

    def write(items: list[Claimed], outcomes: dict[int, Outcome]) -> None:
        record_batch(run=run, items=items, outcomes=outcomes)
        exchange_log_flush(exchanges)  # after the batch's transaction, never inside it: it may fail alone

    def land() -> None:
        """The oldest push's answer: its outcomes go to be written, after the batch before them."""
        nonlocal previous, handoff
        push = in_flight.popleft()
        try:
            outcomes = push.future.result()  # StopRun: every row still in flight goes back (_carry_out)
        except BudgetWait as exc:
            # The budget wants a long wait: the slot goes back and the next slice sends these rows. Sent before:
            # part of the batch (or its list step) may have gone before the wait was asked for.
            release(push.items, run=run, sent=True)
            first_id = min(item.id for item in push.items) - 1
            wait = max(exc.seconds, handoff.resume_in if handoff else 0.0)
            metrics.budget_handed_back(integration.kind, exc.seconds)
            handoff = Handoff(wait, min(first_id, handoff.after_id) if handoff else first_id)
            return
        if recorder is None:
            write(push.items, outcomes)
            return
        if previous is not None:
            previous.result()  # one batch written at a time, in order; its errors surface here
        previous = recorder.submit(_here().run, write, push.items, outcomes)

    try:
        batches = 0
        while True:
            if batches and lease.overdue:
                out_of_time = True  # at least one batch per run, however short SYNC_RUN_MAX_SECONDS is
                break
            if budget is not None and batches:  # at least one batch per slice
                if budget.spent(batches):
                    if sync_tasks_waiting():
                        handoff = Handoff(0.0, after_id)
                        break
                    budget.renew(batches)  # no other work waits: the run goes on in this task
                if (wait := destination.budget_wait()) > budget.yield_after:
                    # A 429 told the whole budget to wait: the slot goes to other work meanwhile.
                    metrics.budget_handed_back(integration.kind, wait)
                    handoff = Handoff(wait, after_id)
                    break
            prepared: Prepared | None = None
            if ahead is not None:
                (items, prepared), ahead = ahead.result(), None
            else:
                items = claim_batch(run=run, size=batch_size, after_id=after_id)
            if not items:
                if after_id == 0:
                    break
                after_id = 0  # one pass from the start for rows that came back behind us (reaped, requeued)
                continue
            batches += 1
            after_id = items[-1].id
            if prepared is None:
                if any(item.sent_before for item in items):
                    # A row sent before is checked against what was delivered since (_without_newer_values):
                    # every batch before it must be answered and written first.
                    while in_flight:
                        land()
                    if previous is not None:
                        previous.result()
                prepared = prepare_batch(integration=integration, plan=plan, items=items)
            # Held-back duplicates go back before the next claim, not with the outcomes: the next
            # batch then takes them (lowest ids first) ahead of any later row of the same person,
            # so one person's data reaches the destination in the order it was captured.
            release(prepared.deferred, run=run)
            if prepared.deferred:
                after_id = min(after_id, min(i.id for i in prepared.deferred) - 1)
            if claimer is not None and not lease.overdue and not _slice_ends(budget, batches):
                # The next batch is claimed and built (its own connection) while this one is sent: its push
                # still starts only after this one's, so one person's captures keep their order.
                ahead = claimer.submit(_here().run, claim_ahead, after_id)
            if pusher is None:
                write(items, decide(items, prepared))
                continue
            keys = {_identity(built.identifier) for _, built in prepared.sendable + prepared.superseded}
            # A person of a push still in flight: that push is answered before this one goes.
            while in_flight and (len(in_flight) >= depth or any(keys & push.keys for push in in_flight)):
                land()
            if handoff is not None:
                release(items, run=run)  # a push was told to wait: this batch waits for the next slice too
                handoff.after_id = min(handoff.after_id, items[0].id - 1)
                break
            in_flight.append(_Push(items, prepared, pusher.submit(_here().run, decide, items, prepared), keys))
            while in_flight and in_flight[0].future.done():
                land()
            if handoff is not None:
                break
        while in_flight:
            land()
        if previous is not None:
            previous.result()
    finally:
        _wind_down(
            run=run,
            claimer=claimer,
            ahead=ahead,
            pusher=pusher,
            pushes=[push.future for push in in_flight],
            depth=depth,
            recorder=recorder,
            previous=previous,
        )
    return handoff or out_of_time


def _wind_down(
    *,
    run: SyncRun,
    claimer: ThreadPoolExecutor | None,
    ahead: Future | None,
    pusher: ThreadPoolExecutor | None,
    pushes: list[Future],
    depth: int,
    recorder: ThreadPoolExecutor | None,
    previous: Future | None,
) -> None:
    """Stop the run's helper threads, each on its own: one's failure must not leave another's connection
    open. Pushes still in flight are let finish (a run that stops sends nothing new, and whatever it
    sent is its rows' to be written or given back); rows claimed ahead and never sent go back."""
    try:
        if pusher is not None:
            wait(pushes)  # their answers are dropped: the rows are given back, or the reaper's (LeaseLost)
            # Every push thread idle: one task per thread closes that thread's connection (the lease
            # checks before each send use it), the barrier keeping each task on a thread of its own.
            barrier = threading.Barrier(depth)

            def close_own() -> None:
                connections.close_all()
                barrier.wait(timeout=30)

            for future in [pusher.submit(close_own) for _ in range(depth)]:
                future.result()
            pusher.shutdown(wait=True)
    finally:
        try:
            if claimer is not None:
                try:
                    if ahead is not None and ahead.exception() is None:
                        release(ahead.result()[0], run=run)  # claimed ahead and never sent: back to the queue
                finally:
                    claimer.submit(connections.close_all).result()
                    claimer.shutdown(wait=True)
        finally:
            if recorder is not None:
                # Let the write in progress finish before anything else happens; a failure of it that
                # nothing else surfaces (the run stops for another reason) is logged.
                if previous is not None and (failed := previous.exception()) is not None:
                    logger.error("Sync run %s: a batch's write failed as the run stopped: %r", run.pk, failed)
                recorder.submit(connections.close_all).result()  # the thread's own connection
                recorder.shutdown(wait=True)


def sync_run_execute(run_id: int) -> SyncRun | None:
    """Carry out a queued run to the end, in this process, in one go (no slices). Safe to call twice:
    only a queued run starts. Returns None when there was nothing to start, or when the run lost its
    lease on the way (the reaper closed it and alerted; it wrote nothing after that)."""
    return sync_run_slice(run_id, sliced=False)


def sync_run_slice(run_id: int, token: int | None = None, after_id: int = 0, *, sliced: bool = True) -> SyncRun | None:
    """One slice of a run: start it (``token`` None: a queued run) or take it back (the token its last
    slice handed on), work for at most one slice (SYNC_SLICE_SECONDS, SYNC_SLICE_BATCHES), then hand it
    on to a new task, queued behind the other work waiting for a worker (so workspaces take turns), or
    finish it. A task delivered twice, or for a run the reaper closed, does nothing.

    Returns the run when it finished in this slice; None when it was handed on, when there was
    nothing to do, or when the run lost its lease on the way.
    """
    run = ledger.run_start(run_id) if token is None else ledger.run_resume(run_id, token)
    if run is None:
        return None  # a redelivered task, a run the reaper closed, or a slice taken already
    budget = SliceBudget.start() if sliced else None
    lease = Lease(run)
    if not connection.in_atomic_block:  # the keeper's own connection could not see an uncommitted run
        lease.keep()
    integration = run.integration
    try:
        with log_context(
            run_id=run.pk,
            integration_id=integration.pk,
            workspace_id=integration.workspace_id,
            destination=integration.kind,
        ):
            result = _carry_out(run, lease, budget=budget, after_id=after_id, first=token is None)
    except LeaseLost as exc:
        logger.warning("Sync run %s lost its lease and stops (%s); the next run takes its contacts", run.pk, exc)
        return None
    finally:
        lease.release()
    if isinstance(result, Handoff):
        return _hand_off(run, result)
    return result


def _hand_off(run: SyncRun, handoff: Handoff) -> SyncRun | None:
    """Queue the run's next slice. If the queue refuses it, the run finishes here with what it did (its
    rows not sent stay queued for the next sync) rather than waiting for the reaper."""
    if not ledger.run_hand_off(run, resume_in=handoff.resume_in):
        logger.warning("Sync run %s lost its lease between two slices; the next run takes its contacts", run.pk)
        return None
    fault_point("sync.after_hand_off")  # tests kill a worker here (tests/sync/test_slices.py)
    try:
        sync_run_continue(run_id=run.pk, token=run.slice_token, after_id=handoff.after_id, countdown=handoff.resume_in)
    except Exception:
        logger.exception("Sync run %s: its next slice could not be queued", run.pk)
        try:
            return ledger.run_finish(
                run, error="The next part of this sync could not be queued; the next sync takes the contacts left."
            )
        except LeaseLost:
            return None
    return None


def _carry_out(
    run: SyncRun, lease: Lease, *, budget: SliceBudget | None = None, after_id: int = 0, first: bool = True
) -> SyncRun | Handoff:
    integration = run.integration
    if not integration.is_connected:
        return ledger.run_finish(run, error="The integration is not connected.", forced_status=SyncRun.Status.FAILED)
    if integration.is_paused:
        if not first:  # paused while the run went on: what it did stands, the rest waits for the resume
            return ledger.run_finish(run, error="Paused during the sync: the contacts left stay queued.")
        return ledger.run_finish(
            run, error="The integration is paused: contacts keep queueing.", forced_status=SyncRun.Status.FAILED
        )
    # The freshest types, for drift, once per run (its first slice); the last copy on error, and for later slices.
    schema = schema_refresh(integration=integration) if first else None
    plan = mapping_plan(integration=integration, schema=schema)
    if not plan.fields:
        return ledger.run_finish(
            run,
            error="Map the fields first: nothing was sent and every contact stays queued.",
            forced_status=SyncRun.Status.FAILED,
        )
    destination = destination_for(integration)
    destination.hand_back_waits(budget.yield_after if budget is not None else None)
    exchanges = exchange_log_open(run_id=run.pk)
    destination.record_exchanges(run.pk, exchanges)
    try:
        return _carry_out_batches(run, integration, destination, plan, lease, budget, after_id, exchanges)
    finally:
        # Finished, handed on, stopped or crashed: what the slice's tries left unwritten is written now.
        destination.record_exchanges(None)
        exchange_log_flush(exchanges)


def _carry_out_batches(
    run: SyncRun,
    integration: Integration,
    destination: Destination,
    plan: MappingPlan,
    lease: Lease,
    budget: SliceBudget | None,
    after_id: int,
    exchanges: ExchangeLog,
) -> SyncRun | Handoff:
    try:
        commands_carry_out(run=run, destination=destination)
        stopped = _run_batches(
            run=run,
            integration=integration,
            destination=destination,
            plan=plan,
            lease=lease,
            budget=budget,
            after_id=after_id,
            exchanges=exchanges,
        )
    except LeaseLost:
        raise
    except StopRun as exc:
        # The refused batch went back already; a batch whose write failed as the run stopped may still
        # be in flight under this run, which the reaper never looks at once the run is closed.
        OutboxItem.objects.filter(run=run, status=Status.IN_FLIGHT).update(
            status=Status.PENDING, run=None, claimed_at=None, sent_before=True
        )
        integration_mark_needs_attention(
            integration=integration,
            code="auth_failed",
            message=f"{plan.destination.label} refused the credentials during a sync (revoked key or withdrawn "
            "access). Every contact stays queued; connect again to resume.",
        )
        return ledger.run_finish(run, error=f"Stopped: {exc}", forced_status=SyncRun.Status.FAILED)
    except Exception as exc:
        logger.exception("Sync run %s crashed", run.pk)
        # Fenced like every write of the run; sent before: the crash may have come after a push.
        OutboxItem.objects.filter(run=run, status=Status.IN_FLIGHT).update(
            status=Status.PENDING, run=None, claimed_at=None, sent_before=True
        )
        return ledger.run_finish(
            run,
            error=f"Internal error: {type(exc).__name__}. Queued contacts were kept.",
            forced_status=SyncRun.Status.FAILED,
        )
    if isinstance(stopped, Handoff):
        return stopped
    finished = ledger.run_finish(run)
    if stopped:
        _follow_up(finished)
    return finished


def _follow_up(run: SyncRun) -> None:
    """A run that stopped for time leaves its due rows to a new run, queued at once (a fresh lease)."""
    due = OutboxItem.objects.filter(
        integration_id=run.integration_id, status=Status.PENDING, next_attempt_at__lte=timezone.now()
    )
    if not due.exists():
        return
    try:
        sync_now(integration=run.integration, trigger=run.trigger)
    except SyncNotStarted as exc:
        logger.info("Sync run %s: no follow-up run (%s)", run.pk, exc.message)
