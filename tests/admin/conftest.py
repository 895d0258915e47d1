from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from field_mapping.services import RowChoice, mapping_save
from flows.services import contact_capture
from integrations.services import ConnectRequest, integration_connect_api_key
from tests.factories import UserFactory, make_flow

ADMIN = "/" + settings.ADMIN_URL


@pytest.fixture
def staff(db):
    return UserFactory(email="support@flowsync.test", name="Support", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def flow(workspace_a):
    return make_flow(workspace_a, name="Booth")


@pytest.fixture
def integration(iterable, workspace_a, alice, flow):
    """Workspace A connected to the emulator with its server-side key, email and first name mapped."""
    integration = integration_connect_api_key(
        workspace=workspace_a,
        actor=alice,
        request=ConnectRequest(api_key=iterable.keys.server_side, region="us", project_type="hybrid"),
    )
    mapping_save(
        integration=integration,
        actor=alice,
        choices=[RowChoice("email", "email"), RowChoice("first_name", "firstName")],
    )
    return integration


@pytest.fixture
def capture(flow):
    """Capture contacts through the real capture path (which queues them in the outbox)."""

    def make(count: int = 1, prefix: str = "user"):
        return [
            contact_capture(flow=flow, raw={"email": f"{prefix}{i}@example.com", "first_name": f"U{i}"}, source="api")
            for i in range(count)
        ]

    return make


def run_action(client: Client, model: str, action: str, pks: list[int], **extra: str):
    """POST an admin action for ``pks`` on the changelist of ``model`` ("app/model")."""
    return client.post(
        f"{ADMIN}{model}/", {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}, follow=True
    )
