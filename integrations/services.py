"""Connecting, verifying and disconnecting destinations. Every change is audited;
no secret is ever logged or written anywhere but the encrypted credentials."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from integrations import oauth
from integrations.destinations.base import (
    AuthError,
    BusyError,
    DeadlineError,
    DestinationError,
    ForbiddenError,
    ServerError,
    TransportError,
)
from integrations.destinations.iterable import (
    CREATE_KEY_HINT,
    IterableClient,
    IterableDestination,
    TokenProvider,
    detect_region,
    key_known_in,
    region_label,
)
from integrations.models import Integration
from lib import deadline
from sync_logs.services import alert_clear, alerts_for_attention
from workspaces.models import Workspace
from workspaces.services import audit_record

logger = logging.getLogger(__name__)


class ConnectError(Exception):
    """Connecting failed; ``message`` tells the admin what is wrong and what to do. Nothing was stored."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


@dataclass(frozen=True)
class ConnectRequest:
    api_key: str
    region: str  # "us", "eu" or "auto"
    project_type: str


# A client-side key set to require JWT refuses every call without one (401), exactly as an unknown key.
JWT_KEY_NOTE = (
    "A client-side (mobile or JavaScript) key that requires JWT is refused this way too; it could not sync anyway. "
)


def _check_project_type(region: str, project_type: str) -> None:
    if region == "eu" and project_type == Integration.ProjectType.EMAIL:
        raise ConnectError(
            "Iterable's EU data center has no email-based projects: pick userID-based or hybrid "
            "(Project settings in Iterable shows which yours is).",
            field="project_type",
        )


def _unreachable(exc: DestinationError, doing: str = "to check the key") -> ConnectError:
    return ConnectError(
        f"Iterable could not be reached {doing} ({exc.code}). Nothing was saved; try again in a minute.",
        code="unreachable",
    )


def _check_failed(exc: DestinationError, doing: str = "to check the key") -> ConnectError:
    """A check that failed for another reason than the credentials. Retryable failures (no connection,
    5xx, no room in the rate budget) say nothing about them: the admin should try again."""
    if isinstance(exc, BusyError | DeadlineError):
        return ConnectError(f"{exc.message} Nothing was saved.", code=exc.code)
    if exc.retryable:
        return _unreachable(exc, doing)
    return ConnectError(f"Iterable refused the check: {exc.message}", code=exc.code)


def _checked(check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``, its failure worded for the admin (ConnectError)."""
    try:
        return check(*args)
    except DestinationError as exc:
        raise _check_failed(exc) from None


def _verify(
    destination: IterableDestination,
    refused: Callable[[AuthError | ForbiddenError], ConnectError],
    doing: str = "to check the key",
) -> None:
    """The checks every way of connecting makes before anything is stored: the project type exists in the
    data center, and the destination's verify() proves the credentials read fields and write users.
    ``refused`` words Iterable's refusal for the kind of credentials (a pasted key, an OAuth grant)."""
    _check_project_type(destination.client.region, destination.project_type)
    try:
        destination.verify()
    except (AuthError, ForbiddenError) as exc:
        raise refused(exc) from None
    except DestinationError as exc:
        raise _check_failed(exc, doing) from None


def _verify_key(api_key: str, region: str, project_type: str) -> str:
    """The region the key works in, verified for reading fields and writing users; else ConnectError."""
    if region == "auto":
        found = _checked(detect_region, api_key)
        if found is None:
            raise ConnectError(
                "Iterable does not recognise this key in the US or the EU data center. Check you copied the whole "
                "key (Iterable shows it only once) and that it was not deleted. " + JWT_KEY_NOTE + CREATE_KEY_HINT,
                field="api_key",
                code="unknown_key",
            )
        region = found

    def refused(exc: AuthError | ForbiddenError) -> ConnectError:
        if isinstance(exc, ForbiddenError):
            return ConnectError(exc.message, field="api_key", code=exc.code)
        other = "eu" if region == "us" else "us"
        if _checked(key_known_in, api_key, other):
            return ConnectError(
                f"This key belongs to a project in the {region_label(other)} data center, not "
                f"{region_label(region)}. Pick {other.upper()} (or auto-detect) and connect again.",
                field="region",
                code="wrong_region",
            )
        return ConnectError(
            "Iterable does not recognise this key. Check you copied the whole key and that it was not deleted. "
            + JWT_KEY_NOTE
            + CREATE_KEY_HINT,
            field="api_key",
            code="unknown_key",
        )

    client = IterableClient(region=region, api_key=api_key, interactive=True)
    _verify(IterableDestination(client, project_type=project_type), refused)
    return region


def _integration(workspace: Workspace, kind: str) -> Integration:
    integration, _ = Integration.objects.select_for_update().get_or_create(workspace=workspace, kind=kind)
    return integration


def integration_connect_api_key(*, workspace: Workspace, actor: User, request: ConnectRequest) -> Integration:
    """Verify the key against Iterable, then store it encrypted. Raises ConnectError; stores nothing then."""
    api_key = request.api_key.strip()
    if not api_key:
        raise ConnectError("Paste the API key.", field="api_key")
    region = _verify_key(api_key, request.region, request.project_type)
    with transaction.atomic():
        integration = _integration(workspace, Integration.Kind.ITERABLE)
        _mark_connected(
            integration,
            actor=actor,
            auth_method=Integration.AuthMethod.API_KEY,
            credentials={"api_key": api_key},
            key_last4=api_key[-4:],
            region=region,
            project_type=request.project_type,
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            verb="integration.connected",
            target=integration.get_kind_display(),
            data={
                "method": "api_key",
                "key": integration.masked_key,
                "region": region,
                "project_type": request.project_type,
            },
        )
    return integration


def _mark_connected(integration: Integration, *, actor: User, **values: Any) -> None:
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


def oauth_check_project_type(project_type: str) -> None:
    """The data-center rule for the OAuth path, whose region is a setting: checked before the admin is sent
    to Iterable, and again before the code is spent. Raises ConnectError."""
    _check_project_type(settings.ITERABLE_OAUTH_REGION, project_type)


class _IssuedTokens(TokenProvider):
    """The tokens of a sign-in, not stored yet: they are verified first, like a pasted key."""

    def __init__(self, tokens: dict[str, Any]) -> None:
        self.tokens = tokens

    def token(self) -> str:
        return self.tokens["access_token"]

    def refresh(self, stale: str) -> str:
        # A token issued a moment ago and refused already: renewing it would not change Iterable's mind.
        raise AuthError("Iterable refused the token it has just issued.", code="oauth_token_refused")


def _oauth_refused(exc: AuthError | ForbiddenError) -> ConnectError:
    if isinstance(exc, ForbiddenError):
        return ConnectError(
            "Iterable granted this sign-in too few rights: it cannot create or update users, which every sync "
            "does. Nothing was connected. Sign in again and approve write access to users (an Iterable project "
            "admin may have to grant it).",
            code=exc.code,
        )
    region = settings.ITERABLE_OAUTH_REGION
    return ConnectError(
        f"Iterable did not accept the token it has just issued in the {region_label(region)} data center: "
        "this deployment's ITERABLE_OAUTH_REGION may not be your project's. Nothing was connected.",
        code=exc.code,
    )


def integration_connect_oauth(
    *, workspace: Workspace, actor: User, code: str, code_verifier: str, redirect_uri: str, project_type: str
) -> Integration:
    """Exchange the authorization code, verify the token as a key would be, and store the tokens.
    Raises ConnectError; stores nothing then."""
    oauth_check_project_type(project_type)
    try:
        tokens = oauth.exchange_code(code=code, code_verifier=code_verifier, redirect_uri=redirect_uri)
    except AuthError as exc:
        raise ConnectError(f"Iterable did not grant access: {exc.message}", code=exc.code) from None
    except (TransportError, ServerError) as exc:
        raise _unreachable(exc, "to finish the sign-in") from None
    region = settings.ITERABLE_OAUTH_REGION
    client = IterableClient(
        region=region, tokens=_IssuedTokens(tokens), bucket_id=f"oauth-connect-{workspace.pk}", interactive=True
    )
    _verify(IterableDestination(client, project_type=project_type), _oauth_refused, "to check the new token")
    with transaction.atomic():
        integration = _integration(workspace, Integration.Kind.ITERABLE)
        _mark_connected(
            integration,
            actor=actor,
            auth_method=Integration.AuthMethod.OAUTH,
            credentials=tokens,
            key_last4="",
            region=region,
            project_type=project_type,
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            verb="integration.connected",
            target=integration.get_kind_display(),
            data={"method": "oauth", "region": integration.region, "project_type": project_type},
        )
    return integration


def integration_disconnect(*, integration: Integration, actor: User) -> None:
    """Delete the credentials; keep the integration row and its history."""
    integration.credentials = None
    integration.status = Integration.Status.DISCONNECTED
    integration.key_last4 = ""
    integration.error_code = integration.error_message = ""
    integration.error_since = None
    integration.save()
    alert_clear(integration=integration)
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="integration.disconnected",
        target=integration.get_kind_display(),
    )


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


def integration_reverify(*, integration: Integration, actor: User | None) -> bool:
    """Check the stored credentials again; returns whether they still work (and records why not).

    Asked from a web page (the app's button, the admin's action): interactive calls, so a slow or busy
    Iterable gets a quick "try again" instead of holding the web thread."""
    from integrations.destinations import destination_for

    try:
        destination_for(integration, interactive=True).verify()
    except DestinationError as exc:
        if exc.retryable:
            # Iterable being down or busy says nothing about the key: keep the status.
            integration.error_message = (
                exc.message
                if isinstance(exc, BusyError | DeadlineError)
                else f"Could not reach Iterable to check ({exc.code}); try again shortly."
            )
            return False
        message = (
            exc.message
            if isinstance(exc, ForbiddenError)
            else (
                "Iterable no longer accepts the stored credentials (the key was revoked or the grant withdrawn). "
                "Connect again with a valid key."
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
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        status=Integration.Status.CONNECTED, verified_at=now, error_code="", error_message="", error_since=None
    )
    integration.refresh_from_db()
    audit_record(
        workspace=integration.workspace, actor=actor, verb="integration.verified", target=integration.get_kind_display()
    )
    return True


# --- Credentials for the client ---------------------------------------------------------------


# How soon a page may try again when a worker is renewing the token it needs: a renewal is one
# short call to the authorization server.
REFRESH_BUSY_RETRY_SECONDS = 5


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
        if not self.interactive:
            return settings.DESTINATION_TIMEOUT_SECONDS
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise DeadlineError("Iterable", settings.DESTINATION_WEB_DEADLINE_SECONDS)
        return (
            settings.DESTINATION_WEB_TIMEOUT_SECONDS
            if left is None
            else min(settings.DESTINATION_WEB_TIMEOUT_SECONDS, left)
        )

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


def rate_bucket_id(integration: Integration) -> str:
    """Whose rate budget the integration's calls spend (the Redis token bucket, DESIGN guarantee 5).

    Iterable's limits are per project, but its API tells no project id to a key, so the integration
    stands for its project: the same budget for every worker and run, across key rotation and a
    switch to OAuth. Two workspaces connected to one Iterable project still get a budget each; nothing
    we can see says they are the same. The database name keeps two deployments (or two test databases)
    that share a Redis from sharing budgets by coincidence of ids.
    """
    return f"{connection.settings_dict['NAME']}:integration-{integration.pk}"


def credentials_client_kwargs(integration: Integration, *, interactive: bool = False) -> dict[str, Any]:
    """How to build a client for ``integration``: its key, or a token provider for OAuth."""
    credentials = integration.credentials or {}
    kwargs: dict[str, Any] = {"region": integration.region, "bucket_id": rate_bucket_id(integration)}
    if integration.auth_method == Integration.AuthMethod.OAUTH:
        return {**kwargs, "tokens": StoredTokenProvider(integration.pk, interactive=interactive)}
    if not credentials.get("api_key"):
        raise AuthError("This integration is not connected.", code="not_connected")
    return {**kwargs, "api_key": credentials["api_key"]}
