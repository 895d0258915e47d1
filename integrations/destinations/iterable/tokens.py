"""Iterable OAuth tokens for the client: those stored on an integration, and those of a sign-in."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from integrations.destinations.base import AuthError, BusyError
from integrations.destinations.http import call_timeout
from integrations.destinations.iterable import oauth
from integrations.destinations.iterable.client import TokenProvider
from integrations.models import Integration
from integrations.status import integration_mark_needs_attention

logger = logging.getLogger(__name__)

# How soon a page may try again when a worker is renewing the token it needs: a renewal is one
# short call to the authorization server.
REFRESH_BUSY_RETRY_SECONDS = 5


class IssuedTokens(TokenProvider):
    """The tokens of a sign-in, not stored yet: they are verified first, like a pasted key."""

    def __init__(self, tokens: dict[str, Any]) -> None:
        self.tokens = tokens

    def token(self) -> str:
        return self.tokens["access_token"]

    def refresh(self, stale: str) -> str:
        # A token issued a moment ago and refused already: renewing it would not change Iterable's mind.
        raise AuthError("Iterable refused the token it has just issued.", code="oauth_token_refused")


class StoredTokenProvider(TokenProvider):
    """OAuth tokens kept on the Integration row, refreshed at half-life and on a 401.

    Refreshing takes a row lock, so that two workers never spend the same (rotating)
    refresh token: the second one finds the first one's fresh token and uses it.
    ``interactive`` (a web request): the renewal gets the web timeout, within the request's
    deadline, and never waits for the lock; a worker holding it means "busy, try again".
    """

    def __init__(self, integration_id: int, *, interactive: bool = False) -> None:
        self.integration_id = integration_id
        self.interactive = interactive
        self._credentials: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._credentials is None:
            self._credentials = Integration.objects.get(pk=self.integration_id).credentials or {}
        return self._credentials

    def token(self) -> str:
        credentials = self._load()
        if oauth.needs_refresh(credentials):
            return self.refresh(credentials.get("access_token", ""))
        return credentials["access_token"]

    def _timeout(self) -> float:
        timeout = settings.DESTINATION_WEB_TIMEOUT_SECONDS if self.interactive else settings.DESTINATION_TIMEOUT_SECONDS
        return call_timeout(timeout, interactive=self.interactive, label="Iterable")

    def _locked(self) -> Integration:
        # NO KEY UPDATE: the renewal changes no key, so rows that reference the integration (a captured
        # contact's outbox row, a schema row) are still inserted meanwhile; FOR UPDATE would hold them up.
        if not self.interactive:
            return Integration.objects.select_for_update(no_key=True).get(pk=self.integration_id)
        # SKIP LOCKED finds no row while a worker holds it (it is renewing the token): a page waits for no one.
        integration = (
            Integration.objects.select_for_update(no_key=True, skip_locked=True).filter(pk=self.integration_id).first()
        )
        if integration is None:
            raise BusyError("Iterable", REFRESH_BUSY_RETRY_SECONDS, code="oauth_refresh_busy")
        return integration

    def refresh(self, stale: str) -> str:
        timeout = self._timeout()
        with transaction.atomic():
            integration = self._locked()
            current = integration.credentials or {}
            if current.get("access_token") and current["access_token"] != stale and not oauth.needs_refresh(current):
                self._credentials = current  # another worker refreshed already
                return current["access_token"]
            try:
                fresh = oauth.refresh(current.get("refresh_token", ""), timeout=timeout)
            except AuthError as exc:
                refused = exc
            else:
                refused = None
                integration.credentials = fresh
                integration.save(update_fields=["credentials", "updated_at"])
        if refused is not None:
            # Outside the transaction above, so that the mark is not rolled back with it.
            integration_mark_needs_attention(
                integration=integration,
                code="oauth_refresh_failed",
                message="Iterable no longer accepts this connection's token and could not renew it "
                f"({refused.code}). Connect with Iterable again.",
            )
            raise AuthError(refused.message, code="oauth_refresh_failed")
        logger.info("Refreshed the OAuth token of integration %s", self.integration_id)
        self._credentials = fresh
        return fresh["access_token"]
