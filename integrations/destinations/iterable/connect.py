"""Connecting Iterable: a pasted key (its data center found or checked), or an OAuth grant.

Nothing is stored here: each path verifies the credentials (they read fields and
write users, reference 1.2) and returns a Connection, or raises ConnectError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from integrations.destinations.base import (
    AuthError,
    BusyError,
    ConnectError,
    Connection,
    DestinationError,
    ForbiddenError,
    OAuthFlow,
    ServerError,
    TransportError,
)
from integrations.destinations.connecting import check_failed, checked, unreachable
from integrations.destinations.iterable import oauth, verification
from integrations.destinations.iterable.client import REGIONS, IterableClient
from integrations.destinations.iterable.forms import OAuthStartForm
from integrations.destinations.iterable.tokens import IssuedTokens
from integrations.destinations.iterable.verification import CREATE_KEY_HINT

LABEL = "Iterable"
# A client-side key set to require JWT refuses every call without one (401), exactly as an unknown key.
JWT_KEY_NOTE = (
    "A client-side (mobile or JavaScript) key that requires JWT is refused this way too; it could not sync anyway. "
)


def region_label(region: str) -> str:
    return "EU (api.eu.iterable.com)" if region == "eu" else "US (api.iterable.com)"


def check_project_type(region: str, project_type: str) -> None:
    if region == "eu" and project_type == "email":
        raise ConnectError(
            "Iterable's EU data center has no email-based projects: pick userID-based or hybrid "
            "(Project settings in Iterable shows which yours is).",
            field="project_type",
        )


def key_known_in(api_key: str, region: str) -> bool:
    """Whether the data center knows ``api_key``, whatever the key may call (interactive calls: an
    admin waits for the connect page). Raises what says nothing about the key (down, 5xx, busy)."""
    return verification.key_known(IterableClient(region=region, api_key=api_key, interactive=True))


def detect_region(api_key: str) -> str | None:
    """The data center that knows ``api_key``, or None when none does.

    A data center that gives no answer (down, 5xx) proves nothing about the key: when no other one
    knows it, that failure is raised (retryable) rather than calling the key unknown. No room in the
    rate budget is raised at once: the other data center would spend the same budget.
    """
    unanswered: DestinationError | None = None
    for region in REGIONS:
        try:
            if key_known_in(api_key, region):
                return region
        except BusyError:
            raise
        except DestinationError as exc:
            if not exc.retryable:
                raise
            unanswered = exc  # the other data center may still know the key
    if unanswered is not None:
        raise unanswered
    return None


def _verify(
    client: IterableClient,
    project_type: str,
    refused: Callable[[AuthError | ForbiddenError], ConnectError],
    doing: str = "to check the key",
) -> None:
    """The checks every way of connecting makes before anything is stored: the project type exists in the
    data center, and verify() proves the credentials read fields and write users. ``refused`` words
    Iterable's refusal for the kind of credentials (a pasted key, an OAuth grant)."""
    check_project_type(client.region, project_type)
    try:
        verification.verify(client)
    except (AuthError, ForbiddenError) as exc:
        raise refused(exc) from None
    except DestinationError as exc:
        raise check_failed(LABEL, exc, doing) from None


def verify_key(api_key: str, region: str, project_type: str) -> str:
    """The region the key works in, verified for reading fields and writing users; else ConnectError."""
    if region == "auto":
        found = checked(LABEL, detect_region, api_key)
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
        if checked(LABEL, key_known_in, api_key, other):
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
    _verify(client, project_type, refused)
    return region


def connect_api_key(data: dict[str, Any]) -> Connection:
    api_key = (data.get("api_key") or "").strip()
    if not api_key:
        raise ConnectError("Paste the API key.", field="api_key")
    project_type = data.get("project_type") or "hybrid"
    region = verify_key(api_key, data.get("region") or "auto", project_type)
    return Connection(
        credentials={"api_key": api_key},
        config={"region": region, "project_type": project_type},
        key_last4=api_key[-4:],
        summary={"region": region, "project_type": project_type},
    )


def oauth_check_project_type(project_type: str) -> None:
    """The data-center rule for the OAuth path, whose region is a setting: checked before the admin is sent
    to Iterable, and again before the code is spent. Raises ConnectError."""
    check_project_type(settings.ITERABLE_OAUTH_REGION, project_type)


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


def connect_oauth(*, code: str, code_verifier: str, redirect_uri: str, project_type: str, bucket_id: str) -> Connection:
    """Exchange the authorization code and verify the token as a key would be."""
    oauth_check_project_type(project_type)
    try:
        tokens = oauth.exchange_code(code=code, code_verifier=code_verifier, redirect_uri=redirect_uri)
    except AuthError as exc:
        raise ConnectError(f"Iterable did not grant access: {exc.message}", code=exc.code) from None
    except (TransportError, ServerError) as exc:
        raise unreachable(LABEL, exc, "to finish the sign-in") from None
    region = settings.ITERABLE_OAUTH_REGION
    client = IterableClient(region=region, tokens=IssuedTokens(tokens), bucket_id=bucket_id, interactive=True)
    _verify(client, project_type, _oauth_refused, "to check the new token")
    return Connection(
        credentials=tokens,
        config={"region": region, "project_type": project_type},
        auth_method="oauth",
        summary={"region": region, "project_type": project_type},
    )


class IterableOAuth(OAuthFlow):
    """Iterable publishes no third-party OAuth (reference 1.4): a deployment with an OAuth broker or
    partner access turns it on with the ITERABLE_OAUTH_* settings."""

    start_form = OAuthStartForm

    def enabled(self) -> bool:
        return settings.ITERABLE_OAUTH_ENABLED

    def disabled_reason(self) -> str:
        return (
            "Iterable does not offer OAuth to third-party apps. This deployment has no OAuth broker configured "
            "(ITERABLE_OAUTH_* settings), so connect with an API key."
        )

    def authorization_origin(self) -> str:
        return oauth.authorization_origin()

    def check_start(self, choices: dict[str, Any]) -> None:
        oauth_check_project_type(choices.get("project_type") or "hybrid")  # no round trip for a sign-in bound to fail

    def authorization_request(self, redirect_uri: str) -> tuple[str, str, str]:
        return oauth.authorization_request(redirect_uri)

    def connect(
        self, *, code: str, code_verifier: str, redirect_uri: str, choices: dict[str, Any], bucket_id: str
    ) -> Connection:
        return connect_oauth(
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            project_type=choices.get("project_type") or "hybrid",
            bucket_id=bucket_id,
        )
