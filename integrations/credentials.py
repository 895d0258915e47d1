"""What a destination's client needs from a connected integration, besides its configuration."""

from __future__ import annotations

from typing import Any

from django.db import connection

from integrations.destinations.base import AuthError
from integrations.models import Integration


def rate_bucket_id(integration: Integration) -> str:
    """Whose rate budget the integration's calls spend (the Redis token bucket, DESIGN guarantee 5).

    Destinations limit per account or project, but an API key tells no project id, so the
    integration stands for its account: the same budget for every worker and run, across key
    rotation and a switch to OAuth. Two workspaces connected to one account still get a budget
    each; nothing we can see says they are the same. The database name keeps two deployments (or
    two test databases) that share a Redis from sharing budgets by coincidence of ids.
    """
    return f"{connection.settings_dict['NAME']}:integration-{integration.pk}"


def stored_credentials(integration: Integration) -> dict[str, Any]:
    """The decrypted credentials of a connected integration; AuthError when there are none."""
    if not integration.credentials:
        raise AuthError("This integration is not connected.", code="not_connected")
    return dict(integration.credentials)
