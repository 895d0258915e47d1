from __future__ import annotations

import pytest

from field_mapping.services import RowChoice, mapping_save
from flows.models import FieldType
from flows.services import contact_capture
from integrations.services import integration_connect
from sync_logs.models import SyncRecord
from tests.factories import make_flow


@pytest.fixture
def flow(workspace_a):
    return make_flow(
        workspace_a,
        name="Booth",
        extra=[
            {"key": "age", "label": "Age", "field_type": FieldType.NUMBER},
            {"key": "notes", "label": "Notes", "field_type": FieldType.TEXT},
        ],
    )


@pytest.fixture
def integration(iterable, workspace_a, alice, flow):
    """Workspace A connected to the emulator, mapped: email, first_name -> firstName, age -> age (long)."""
    iterable.set_fields({"age": "long"})
    integration = integration_connect(
        workspace=workspace_a,
        actor=alice,
        kind="iterable",
        data={"api_key": iterable.keys.server_side, "region": "us", "project_type": "hybrid"},
    )
    mapping_save(
        integration=integration,
        actor=alice,
        choices=[
            RowChoice("email", "email"),
            RowChoice("first_name", "firstName"),
            RowChoice("age", "age"),
            RowChoice("notes", "notes", create_new=True),
        ],
    )
    return integration


@pytest.fixture
def capture(flow):
    """Capture contacts through the real capture path (which queues them in the outbox)."""

    def make(count: int = 1, **fields):
        return [
            contact_capture(
                flow=flow, raw={"email": f"user{i}@example.com", "first_name": f"User{i}", **fields}, source="api"
            )
            for i in range(count)
        ]

    return make


def delivered_log_rows_per_contact() -> dict[int, int]:
    """How many "delivered" log rows each contact has, across runs."""
    counts: dict[int, int] = {}
    for contact_id in SyncRecord.objects.filter(status="delivered").values_list("contact_id", flat=True):
        counts[contact_id] = counts.get(contact_id, 0) + 1
    return counts


@pytest.fixture
def customerio_integration(workspace_a, alice, flow, customerio):
    """Workspace A connected to the Customer.io emulator's US workspace (people identified by id), the
    email mapped to the id and first_name to first_name."""
    us = customerio.us
    integration = integration_connect(
        workspace=workspace_a,
        actor=alice,
        kind="customerio",
        data={"site_id": us.site_id, "api_key": us.api_key, "identify_by": "id", "app_api_key": ""},
    )
    mapping_save(
        integration=integration, actor=alice, choices=[RowChoice("email", "id"), RowChoice("first_name", "first_name")]
    )
    return integration
