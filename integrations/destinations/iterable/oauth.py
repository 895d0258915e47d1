"""OAuth 2 for destinations: authorization code with PKCE (S256) through Authlib.

Iterable publishes no third-party OAuth (reference 1.4): this path follows the
standard so that a deployment with an OAuth broker or partner access turns it on
by setting ITERABLE_OAUTH_* (see settings). The tests run it against the
emulator's authorization server.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings

from integrations.destinations.base import AuthError, ServerError, TransportError

# Errors after which trying again later may work (RFC 6749 5.2 plus the usual 5xx words).
_TRANSIENT = {"server_error", "temporarily_unavailable"}


def _session(redirect_uri: str | None = None) -> OAuth2Session:
    return OAuth2Session(
        client_id=settings.ITERABLE_OAUTH_CLIENT_ID,
        client_secret=settings.ITERABLE_OAUTH_CLIENT_SECRET,
        scope=settings.ITERABLE_OAUTH_SCOPES,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )


def authorization_origin() -> str:
    """scheme://host[:port] of the authorization server's sign-in page (the CSP's form-action names it)."""
    parts = urlsplit(settings.ITERABLE_OAUTH_AUTHORIZE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def authorization_request(redirect_uri: str) -> tuple[str, str, str]:
    """(URL to send the browser to, state, code_verifier). Keep state and verifier in the session."""
    state = secrets.token_urlsafe(24)
    verifier = generate_token(64)
    url, _ = _session(redirect_uri).create_authorization_url(
        settings.ITERABLE_OAUTH_AUTHORIZE_URL, state=state, code_verifier=verifier
    )
    return url, state, verifier


def _normalize(token: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    expires_in = int(token.get("expires_in") or 3600)
    return {
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token", ""),
        "obtained_at": now,
        "expires_at": int(token.get("expires_at") or now + expires_in),
    }


def _token_call(fn: Any, *, timeout: float, **kwargs: Any) -> dict[str, Any]:
    # Authlib raises only when the JSON body has an "error" key; it does not look at the
    # HTTP status, so a body without access_token is checked here too.
    try:
        token = fn(settings.ITERABLE_OAUTH_TOKEN_URL, timeout=timeout, **kwargs)
    except OAuthError as exc:
        if exc.error in _TRANSIENT:
            raise ServerError(f"The authorization server failed: {exc.error}", code=exc.error) from None
        raise AuthError(
            f"The authorization server refused: {exc.error} {exc.description or ''}".strip(),
            code=exc.error or "oauth_error",
        ) from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status >= 500:
            raise ServerError(f"The authorization server answered {status}", code=f"http_{status}") from None
        raise AuthError(f"The authorization server refused ({status})", code=f"http_{status}") from None
    except requests.RequestException as exc:
        raise TransportError(f"The authorization server could not be reached: {type(exc).__name__}") from None
    except ValueError:
        raise AuthError("The authorization server's answer was not JSON.", code="oauth_bad_response") from None
    if not token or not token.get("access_token"):
        raise AuthError("The authorization server answered without an access token.", code="oauth_bad_response")
    return _normalize(token)


def exchange_code(*, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
    """Called by the OAuth callback, inside the web request: the web timeout."""
    session = _session(redirect_uri)
    return _token_call(
        session.fetch_token,
        timeout=settings.DESTINATION_WEB_TIMEOUT_SECONDS,
        grant_type="authorization_code",
        code=code,
        code_verifier=code_verifier,
    )


def refresh(refresh_token: str, *, timeout: float | None = None) -> dict[str, Any]:
    """Renew the tokens. ``timeout``: the worker's by default; a web request passes its own."""
    if not refresh_token:
        raise AuthError("No refresh token is stored: connect again.", code="oauth_no_refresh_token")
    return _token_call(
        _session().refresh_token, timeout=timeout or settings.DESTINATION_TIMEOUT_SECONDS, refresh_token=refresh_token
    )


def needs_refresh(credentials: dict[str, Any], now: float | None = None) -> bool:
    """Refresh once half of the token's lifetime is gone, or in its last minute."""
    now = time.time() if now is None else now
    obtained, expires = credentials.get("obtained_at", 0), credentials.get("expires_at", 0)
    half_life = obtained + (expires - obtained) / 2
    return now >= min(half_life, expires - 60)
