"""An integration's connection status, in one place: connected, needs attention, disconnected.

Every change of status goes through here, so that the admins' alerts follow it
(integrations.health: once per change, after commit) and nothing else sets it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from integrations.health import alert_clear, alerts_for_attention
from integrations.models import Integration


def integration_mark_connected(integration: Integration, *, actor: User, **values: Any) -> None:
    """Store a verified connection (``values``: credentials, config, auth method, key's last 4)."""
    now = timezone.now()
    for name, value in values.items():
        setattr(integration, name, value)
    integration.status = Integration.Status.CONNECTED
    integration.connected_by = actor
    integration.connected_at = now
    integration.verified_at = now
    integration.error_code = integration.error_message = ""
    integration.error_since = None
    integration.save()
    alert_clear(integration=integration)


def integration_mark_verified(integration: Integration) -> None:
    Integration.objects.filter(pk=integration.pk).update(
        status=Integration.Status.CONNECTED,
        verified_at=timezone.now(),
        error_code="",
        error_message="",
        error_since=None,
    )
    integration.refresh_from_db()


def integration_mark_disconnected(integration: Integration) -> None:
    """Drop the credentials; the row and its history stay."""
    integration.credentials = None
    integration.status = Integration.Status.DISCONNECTED
    integration.key_last4 = ""
    integration.error_code = integration.error_message = ""
    integration.error_since = None
    integration.save()
    alert_clear(integration=integration)


def integration_mark_needs_attention(*, integration: Integration, code: str, message: str) -> None:
    changed = (
        Integration.objects.filter(pk=integration.pk)
        .exclude(status=Integration.Status.NEEDS_ATTENTION, error_code=code)
        .update(
            status=Integration.Status.NEEDS_ATTENTION,
            error_code=code,
            error_message=message,
            error_since=timezone.now(),
        )
    )
    integration.status, integration.error_code, integration.error_message = (
        Integration.Status.NEEDS_ATTENTION,
        code,
        message,
    )
    if changed:  # the admins hear of it once the change is committed, not on every repeat of the same error
        transaction.on_commit(lambda: alerts_for_attention(integration))
