"""Filling the outbox: one row per contact per active integration.

Plain SQL ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (PostgreSQL and
SQLite both speak it): one statement queues a contact for every integration of
its workspace without reading the integrations first, and a repeat is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection, transaction
from django.utils import timezone

from flows.models import Contact
from integrations.models import Integration, OutboxItem

# Integrations that keep queueing: a paused or broken one drains once resumed or fixed.
QUEUEING_STATUSES = (Integration.Status.CONNECTED, Integration.Status.NEEDS_ATTENTION)
BACKFILL_CHUNK = 10_000

_COLUMNS = "integration_id, contact_id, status, attempts, next_attempt_at, updated_at, error_code, error_message"


def _tables() -> tuple[str, str, str]:
    return OutboxItem._meta.db_table, Integration._meta.db_table, Contact._meta.db_table


def outbox_enqueue(*, workspace_id: int, contact_ids: Sequence[int], late: bool = False) -> None:
    """Queue new contacts for every queueing integration of the workspace (call inside the capture transaction).
    ``late``: contacts captured a while ago (a double opt-in confirmed now): as a backfill's, marked sent_before,
    so that the engine keeps their older values off a newer capture of the same person delivered meanwhile."""
    if not contact_ids:
        return
    outbox, integrations, contacts = _tables()
    now = timezone.now()
    placeholders = ", ".join(["%s"] * len(contact_ids))
    sql = (
        f"INSERT INTO {outbox} ({_COLUMNS}, sent_before) "  # noqa: S608 - table names from models, values as parameters
        f"SELECT i.id, c.id, 'pending', 0, %s, %s, '', '', %s FROM {integrations} i JOIN {contacts} c "
        f"ON c.workspace_id = i.workspace_id WHERE i.workspace_id = %s AND i.status IN (%s, %s) "
        f"AND c.id IN ({placeholders}) ON CONFLICT (integration_id, contact_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now, late, workspace_id, *QUEUEING_STATUSES, *contact_ids])


def contact_insert_queued(contact: Contact) -> Contact:
    """Insert one contact and its outbox rows in a single statement (PostgreSQL).

    The capture hot path: a data-modifying CTE is atomic on its own and costs one
    round trip, where BEGIN / INSERT / INSERT / COMMIT would cost four.
    """
    outbox, integrations, contacts = _tables()
    now = timezone.now()
    sql = (
        f"WITH new AS (INSERT INTO {contacts} (workspace_id, flow_id, data, email, source, created_at, device, consents) "  # noqa: S608,E501
        f"VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s::jsonb, %s::jsonb) RETURNING id, workspace_id), "
        f"queued AS (INSERT INTO {outbox} ({_COLUMNS}) "
        f"SELECT i.id, new.id, 'pending', 0, %s, %s, '', '' FROM new JOIN {integrations} i "
        f"ON i.workspace_id = new.workspace_id WHERE i.status IN (%s, %s) "
        f"ON CONFLICT (integration_id, contact_id) DO NOTHING) "
        f"SELECT id FROM new"
    )
    params = [
        contact.workspace_id,
        contact.flow_id,
        json.dumps(contact.data),
        contact.email,
        contact.source,
        now,
        None if contact.device is None else json.dumps(contact.device),
        None if contact.consents is None else json.dumps(contact.consents),
        now,
        now,
        *QUEUEING_STATUSES,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        contact.pk = cursor.fetchone()[0]
    contact.created_at = now
    contact._state.adding = False
    contact._state.db = "default"
    return contact


def outbox_backfill(*, integration: Integration) -> int:
    """Queue every earlier contact of the workspace for ``integration``, in chunks (never all in memory)."""
    outbox, _, contacts = _tables()
    ids = Contact.objects.filter(workspace_id=integration.workspace_id)
    bounds = ids.order_by("id").values_list("id", flat=True)
    first, last = bounds.first(), ids.order_by("-id").values_list("id", flat=True).first()
    if first is None:
        return 0
    queued = 0
    now = timezone.now()
    for low in range(first, last + 1, BACKFILL_CHUNK):
        sql = (
            # sent_before: an earlier contact queued now may be older than a capture of the same person
            # delivered already; the engine then keeps it from putting older values back.
            f"INSERT INTO {outbox} ({_COLUMNS}, sent_before) "  # noqa: S608
            f"SELECT %s, c.id, 'pending', 0, %s, %s, '', '', %s FROM {contacts} c "
            f"WHERE c.workspace_id = %s AND c.id >= %s AND c.id < %s "
            # A contact still waiting to confirm its address (double opt-in) is queued when it does.
            f"AND (c.confirm_token_hash IS NULL OR c.confirmed_at IS NOT NULL) "
            f"ON CONFLICT (integration_id, contact_id) DO NOTHING"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [integration.pk, now, now, True, integration.workspace_id, low, low + BACKFILL_CHUNK])
            queued += max(cursor.rowcount, 0)
    return queued
