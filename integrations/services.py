"""Connecting, verifying and disconnecting destinations. Every change is audited;
no secret is ever logged or written anywhere but the encrypted credentials.

What a destination checks and stores is its own (Destination.connect and its
connect forms); this module stores the verified Connection it returns.
"""

from __future__ import annotations

import logging

from django.db import transaction

from accounts.models import User
from integrations.destinations import destination_class, destination_for
from integrations.destinations.base import (
    BusyError,
    Capability,
    ConnectError,
    Connection,
    DeadlineError,
    DestinationError,
)
from integrations.destinations.base import ForbiddenError as DestinationForbidden
from integrations.models import SYNC_EXTRAS, Integration
from integrations.status import (
    integration_mark_connected,
    integration_mark_disconnected,
    integration_mark_needs_attention,
    integration_mark_verified,
)
from workspaces.models import Workspace
from workspaces.services import audit_record

logger = logging.getLogger(__name__)

__all__ = [
    "ConnectError",
    "integration_connect",
    "integration_connect_verified",
    "integration_disconnect",
    "integration_reverify",
]


def _integration(workspace: Workspace, kind: str) -> Integration:
    integration, _ = Integration.objects.select_for_update().get_or_create(workspace=workspace, kind=kind)
    return integration


def integration_connect(*, workspace: Workspace, actor: User, kind: str, data: dict) -> Integration:
    """Verify the connect form's ``data`` with the destination of ``kind``, then store the connection.
    Raises ConnectError; stores nothing then."""
    destination = destination_class(kind)
    connection = destination.connect(data, bucket_id=f"connect-{kind}-{workspace.pk}")
    return integration_connect_verified(workspace=workspace, actor=actor, kind=kind, connection=connection)


def integration_connect_verified(
    *, workspace: Workspace, actor: User, kind: str, connection: Connection
) -> Integration:
    """Store a connection its destination verified (a pasted key, an OAuth grant)."""
    destination = destination_class(kind)
    with transaction.atomic():
        integration = _integration(workspace, kind)
        # The extras chosen before (a list, an event) survive a reconnect; the rest is the new connection's.
        extras = {k: v for k, v in (integration.config or {}).items() if k in SYNC_EXTRAS}
        config = destination.validate_config({**extras, **connection.config})
        # "Leave existing people unchanged" needs a lookup; a connection that cannot make one (an
        # optional key left out this time) updates them, and the sync settings say why.
        overwrite = integration.overwrite_existing or not destination.supports(Capability.LOOKUP, config)
        integration_mark_connected(
            integration,
            actor=actor,
            auth_method=connection.auth_method,
            credentials=connection.credentials,
            key_last4=connection.key_last4,
            config=config,
            overwrite_existing=overwrite,
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            verb="integration.connected",
            target=integration.get_kind_display(),
            data={
                "method": connection.auth_method,
                **({"key": integration.masked_key} if connection.key_last4 else {}),
                **connection.summary,
            },
        )
    return integration


def integration_disconnect(*, integration: Integration, actor: User) -> None:
    """Delete the credentials; keep the integration row and its history."""
    integration_mark_disconnected(integration)
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="integration.disconnected",
        target=integration.get_kind_display(),
    )


def integration_reverify(*, integration: Integration, actor: User | None) -> bool:
    """Check the stored credentials again; returns whether they still work (and records why not).

    Asked from a web page (the app's button, the admin's action): interactive calls, so a slow or busy
    destination gets a quick "try again" instead of holding the web thread."""
    label = integration.get_kind_display()
    try:
        destination_for(integration, interactive=True).verify()
    except DestinationError as exc:
        if exc.retryable:
            # The destination being down or busy says nothing about the credentials: keep the status.
            integration.error_message = (
                exc.message
                if isinstance(exc, BusyError | DeadlineError)
                else f"Could not reach {label} to check ({exc.code}); try again shortly."
            )
            return False
        message = (
            exc.message
            if isinstance(exc, DestinationForbidden)
            else (
                f"{label} no longer accepts the stored credentials (the key was revoked or the grant withdrawn). "
                "Connect again with valid credentials."
            )
        )
        integration_mark_needs_attention(integration=integration, code=exc.code, message=message)
        audit_record(
            workspace=integration.workspace,
            actor=actor,
            verb="integration.verify_failed",
            target=integration.get_kind_display(),
            data={"code": exc.code},
        )
        return False
    integration_mark_verified(integration)
    audit_record(
        workspace=integration.workspace, actor=actor, verb="integration.verified", target=integration.get_kind_display()
    )
    return True
