"""Disabling a mobile device: one command row per integration in the outbox (engine.commands_carry_out)."""

from __future__ import annotations

from field_mapping.services import build_record, mapping_plan
from flows.models import Contact
from integrations.models import Integration, OutboxItem
from integrations.outbox import QUEUEING_STATUSES
from workspaces.models import Workspace
from workspaces.scoping import scoped


def device_disable_queue(*, workspace: Workspace, token: str, email: str = "", user_id: str = "") -> int:
    """Queue "stop pushes to this device" for each of the workspace's integrations that queue contacts, carried
    out, retried and logged like a contact. The person is named as each destination knows them: by its
    mapping of their latest contact with that email when there is one, else by the email or the user id as
    given (``user_id``: the person's id at the destination, which each reads as its own). Returns how many
    were queued."""
    latest = scoped(Contact, workspace).filter(email=email).order_by("-id").first() if email else None
    given = {k: v for k, v in (("email", email), ("user_id", user_id)) if v}
    rows = []
    for integration in scoped(Integration, workspace).filter(status__in=QUEUEING_STATUSES):
        identifiers = given
        if latest is not None:
            built = build_record(latest.data, mapping_plan(integration=integration))
            if built.record is not None:
                identifiers = dict(built.record.identifiers)
        command = {"op": "device_disable", "token": token, "identifiers": identifiers}
        rows.append(OutboxItem(integration=integration, command=command))
    return len(OutboxItem.objects.bulk_create(rows))
