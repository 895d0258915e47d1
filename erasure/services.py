"""Erase a person from a workspace: their captured data, the personal data in the sync logs, their
place in the sync queue, and, through a step per destination, the person at each destination.

What stays is the ErasureRequest: who asked, when, how, what was done (counts), each destination's
outcome. Never the email: the steps hold the identifiers a destination knows the person by,
encrypted, until that destination confirms, and then they are emptied.

Order matters when a sync is sending this person while they are erased. The contacts, their outbox
rows and their log rows' personal data go in one transaction, so no later claim can take them; but a
batch claimed before may still push them and write its log rows after. So each step waits longer
than a claimed batch can take (ERASURE_DESTINATION_DELAY_SECONDS: its tries, timeouts and rate
waits are bounded, and a run that lost its lease writes nothing) before it asks the destination, and
scrubs the log rows of the erased contacts again before and after: the destination's delete comes
after any push of theirs, and no log row of theirs keeps their data.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import signature
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from erasure.models import ErasureRequest, ErasureStep
from field_mapping.services import build_record, mapping_plan
from flows.models import Contact
from integrations.destinations import destination_for
from integrations.destinations.base import AuthError, DestinationError, ForbiddenError
from integrations.models import Integration, OutboxItem
from lib.leased import row_claim, row_status, rows_overdue
from sync_logs.exchanges import exchanges_scrub
from sync_logs.models import SyncRecord
from workspaces.models import Workspace
from workspaces.scoping import scoped
from workspaces.services import audit_record

logger = logging.getLogger(__name__)
TASK = "erasure.tasks.erasure_step_run"

SENDING_LEASE = timedelta(minutes=5)
RETRY_CAP = timedelta(hours=1)
ERASED = "(erased)"


class ErasureRefused(Exception):
    """The request cannot be carried out as asked; the message says why."""


def _people_at(integration: Integration, contacts: list[Contact], email: str) -> list[dict[str, str]]:
    """The identifiers ``integration``'s destination knows each erased person by, as its mapping made
    them from the contacts, and the email itself where the destination identifies people by email
    (a person synced before their contacts were erased, or from a contact since removed)."""
    plan = mapping_plan(integration=integration)
    people: list[dict[str, str]] = []
    for contact in contacts:
        built = build_record(contact.data, plan)
        if built.record is not None:
            people.append(dict(built.record.identifiers))
    if "email" in plan.accepted and not any(p.get("email") == email for p in people):
        people.append({"email": email})
    unique = {tuple(sorted(p.items())): p for p in people}
    return list(unique.values())


def logs_scrub(*, workspace: Workspace, contact_ids: list[int], email: str = "") -> int:
    """Take the personal data out of the workspace's log rows of these contacts (or of this identifier):
    the payload, the identifier, and the message, which may quote a value. The rows stay, as counts."""
    runs = {"run__integration__workspace": workspace}
    scrubbed = SyncRecord.objects.filter(contact_id__in=contact_ids, **runs).update(
        payload=None, identifier="", error_message=ERASED, contact=None
    )
    if email:
        scrubbed += SyncRecord.objects.filter(identifier=email, **runs).update(
            payload=None, identifier="", error_message=ERASED, contact=None
        )
    return scrubbed


def _identifiers(people: list[dict[str, str]]) -> set[str]:
    return {str(value) for person in people for value in person.values() if value}


def exchanges_of_people_scrub(
    *, workspace: Workspace, contact_ids: list[int], people: list[dict[str, str]], email: str = ""
) -> int:
    """Take the people out of the workspace's HTTP exchanges (sync_logs.exchanges), found by every identifier
    they are known by: the log rows' (read before logs_scrub empties them), the destinations', the email."""
    logged = SyncRecord.objects.filter(contact_id__in=contact_ids, run__integration__workspace=workspace)
    identifiers = {*logged.values_list("identifier", flat=True).distinct(), *_identifiers(people), email}
    return exchanges_scrub(workspace=workspace, identifiers=identifiers)


def erasure_request(
    *, workspace: Workspace, email: str, via: str, actor: User | None = None, forget: bool = False
) -> ErasureRequest:
    """Erase the person with ``email`` from ``workspace`` now, and queue their deletion at each connected
    destination (``forget``: never collected again, where the destination offers it)."""
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254:
        raise ErasureRefused("Give the email address of the person to erase.")
    with transaction.atomic():
        contacts = list(scoped(Contact, workspace).filter(email=email).select_for_update())
        ids = [c.pk for c in contacts]
        integrations = [i for i in scoped(Integration, workspace).order_by("kind") if i.is_connected]
        people = {i.pk: _people_at(i, contacts, email) for i in integrations}
        outbox, _ = OutboxItem.objects.filter(contact_id__in=ids).delete()
        everyone = [person for found in people.values() for person in found]
        exchanges = exchanges_of_people_scrub(workspace=workspace, contact_ids=ids, people=everyone, email=email)
        scrubbed = logs_scrub(workspace=workspace, contact_ids=ids, email=email)
        Contact.objects.filter(pk__in=ids).delete()
        request = ErasureRequest.objects.create(
            workspace=workspace,
            requested_by=actor,
            via=via,
            mode=ErasureRequest.Mode.FORGET if forget else ErasureRequest.Mode.DELETE,
            contacts_erased=len(ids),
            log_rows_scrubbed=scrubbed,
            outbox_rows_removed=outbox,
            contact_ids=ids,
        )
        due = timezone.now() + timedelta(seconds=settings.ERASURE_DESTINATION_DELAY_SECONDS)
        steps = ErasureStep.objects.bulk_create(
            ErasureStep(
                request=request,
                integration=i,
                destination_label=i.get_kind_display(),
                identifiers={"people": people[i.pk]},
                people=len(people[i.pk]),
                due_at=due,
            )
            for i in integrations
            if people[i.pk]
        )
        if not steps:
            request.completed_at = timezone.now()
            request.save(update_fields=["completed_at"])
        audit_record(
            workspace=workspace,
            actor=actor,
            verb="contact.erased",
            target=f"erasure #{request.pk}",
            data={
                "via": via,
                "mode": request.mode,
                "contacts": len(ids),
                "destinations": len(steps),
                "exchanges": exchanges,
            },
        )
        for step in steps:
            transaction.on_commit(
                lambda pk=step.pk: _task_queue(pk, settings.ERASURE_DESTINATION_DELAY_SECONDS), robust=True
            )
    return request


def _task_queue(step_id: int, countdown: float = 0) -> None:
    # By name: the tasks module imports this one.
    signature(TASK, args=[step_id]).apply_async(countdown=countdown)


def erasure_step_retry(*, step: ErasureStep, actor: User) -> None:
    """An admin's "Try again" for a step that failed or waits: due now."""
    # Not one a worker holds now (its answer decides), nor one done or failed for good (its identifiers are gone).
    ErasureStep.objects.filter(pk=step.pk, status=ErasureStep.Status.PENDING).update(due_at=timezone.now())
    audit_record(
        workspace=step.request.workspace,
        actor=actor,
        verb="erasure.retried",
        target=f"erasure #{step.request_id}",
        data={"destination": step.destination_label},
    )
    transaction.on_commit(lambda: _task_queue(step.pk), robust=True)


def _retry_delay(attempts: int) -> timedelta:
    first = timedelta(seconds=settings.ERASURE_RETRY_SECONDS)
    return min(first * 2 ** (attempts - 1), RETRY_CAP) * random.uniform(0.8, 1.2)


def erasure_step_attempt(step_id: int) -> str:
    """Ask one destination to delete the request's people, if the step is due and nobody else holds
    it; returns its status afterwards. Retried (growing delays, at most an hour apart) until the
    destination confirms; a refusal that trying again cannot fix fails the step, visibly."""
    if not row_claim(ErasureStep, step_id, lease=SENDING_LEASE):
        return row_status(ErasureStep, step_id)
    step = ErasureStep.objects.select_related("request__workspace", "integration").get(pk=step_id)
    request = step.request
    logs_scrub(workspace=request.workspace, contact_ids=request.contact_ids)  # a sync's late rows, if any
    people = (step.identifiers or {}).get("people", [])
    # A sync's late exchanges too, before the destination is asked and after (a slice writes them as it ends).
    exchanges_scrub(workspace=request.workspace, identifiers=_identifiers(people))
    integration = step.integration
    error, retryable = "", True
    if integration is None:
        error, retryable = f"{step.destination_label} was removed from the workspace: delete the person there", False
    elif not integration.is_connected:
        error = f"{step.destination_label} is not connected: reconnect it, then press Try again"
    else:
        try:
            results = destination_for(integration).erase(people, forget=request.mode == ErasureRequest.Mode.FORGET)
        except NotImplementedError:
            error, retryable = f"{step.destination_label} does not support erasure: delete the person there", False
        except (AuthError, ForbiddenError) as exc:
            error = f"{step.destination_label} refused the credentials ({exc.message}): fix the connection"
        except DestinationError as exc:
            error, retryable = f"{step.destination_label}: {exc.message}", exc.retryable or exc.status in (None, 429)
        else:
            refused = [r for r in results if not r.delivered]
            if refused:
                error = f"{step.destination_label} refused {len(refused)} of {len(results)}: {refused[0].message}"
                retryable = any(r.retryable for r in refused)
    exchanges_scrub(workspace=request.workspace, identifiers=_identifiers(people))
    return _step_outcome(step, error=_without(error, people), retryable=retryable)


def _without(text: str, people: list[dict[str, str]]) -> str:
    """``text`` with the people's identifiers taken out: an answer may quote them, and the step's error
    is shown on the Privacy page and logged."""
    for person in people:
        for value in person.values():
            if value:
                text = text.replace(str(value), "(the person)")
    return text


def _step_outcome(step: ErasureStep, *, error: str, retryable: bool) -> str:
    now = timezone.now()
    fields: dict = {"last_error": error}
    delay = None
    if not error:
        fields.update(status=ErasureStep.Status.DONE, done_at=now, identifiers=None, due_at=now)
    elif retryable:
        delay = _retry_delay(step.attempts)
        fields.update(status=ErasureStep.Status.PENDING, due_at=now + delay)
        fields["last_error"] = f"{error}; trying again {_in(delay)}"
    else:
        # For good: the identifiers go too (nothing will use them), and the page says what to do by hand.
        fields.update(status=ErasureStep.Status.FAILED, identifiers=None)
    with transaction.atomic():
        # The request first, locked: two steps finishing at once must see each other's outcome.
        ErasureRequest.objects.select_for_update().filter(pk=step.request_id).first()
        # Only if it is still this attempt's: a worker that lost its lease must not overwrite a newer one.
        kept = ErasureStep.objects.filter(pk=step.pk, status=ErasureStep.Status.SENDING, attempts=step.attempts)
        if not kept.update(**fields):
            return row_status(ErasureStep, step.pk)
        if not error:
            logs_scrub(workspace=step.request.workspace, contact_ids=step.request.contact_ids)
        if not step.request.steps.exclude(status=ErasureStep.Status.DONE).exists():
            ErasureRequest.objects.filter(pk=step.request_id).update(completed_at=now)
        if delay is not None:
            transaction.on_commit(lambda: _task_queue(step.pk, delay.total_seconds()), robust=True)
    if error:
        logger.warning("Erasure step %s (%s): %s", step.pk, step.destination_label, fields["last_error"])
    return fields["status"]


def _in(delay: timedelta) -> str:
    seconds = int(delay.total_seconds())
    return f"in {seconds} s" if seconds < 120 else f"in {round(seconds / 60)} min"


def erasure_steps_resume(*, grace: timedelta = timedelta(minutes=2)) -> int:
    """Queue the steps overdue by more than ``grace``: a task lost with the broker, a worker killed mid-call.
    Their due time moves on as they are queued, so that a backlog is not queued again every minute."""
    overdue = rows_overdue(ErasureStep, grace=grace)
    for pk in overdue:
        _task_queue(pk)
    return len(overdue)
