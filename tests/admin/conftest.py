from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from flows.services import contact_capture
from tests.factories import UserFactory
from tests.sync.conftest import flow, integration  # noqa: F401 - the same connected, mapped workspace

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
def capture(flow):  # noqa: F811 - the fixture imported above
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
