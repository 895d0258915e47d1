"""Error reporting to Sentry (sentry-sdk), on when SENTRY_DSN is set, with personal data and secrets taken
out of every event before it leaves the process.

Flowsync holds its customers' contacts: an exception raised while a contact is handled carries its email in
messages, breadcrumbs (log lines), request data and URLs (the capture API's erasure takes ``?email=``).
sentry-sdk's own defaults (neither ``send_default_pii`` nor ``data_collection`` set) keep cookies, users and
IPs out but not those, so :func:`event_scrub` walks the whole event and rewrites every string: credentials
masked as the log filter masks them (lib.logredact), email addresses replaced. Request bodies and local
variables are never sent.
"""

from __future__ import annotations

import re
from typing import Any

from lib.logredact import redact

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# URL-encoded, as a query string carries it (ada%40example.com).
_EMAIL_ENCODED = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+%40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", re.IGNORECASE)
EMAIL_MASK = "[email]"
# Headers whose value is a credential or a session, whatever it looks like.
_SECRET_HEADERS = {
    "authorization",
    "cookie",
    "set-cookie",
    "api-key",
    "x-api-key",
    "x-csrftoken",
    "proxy-authorization",
}
FILTERED = "[Filtered]"


def text_scrub(text: str) -> str:
    """``text`` without credentials or email addresses."""
    text = redact(text)
    text = _EMAIL.sub(EMAIL_MASK, text)
    return _EMAIL_ENCODED.sub(EMAIL_MASK, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return text_scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_item(key, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def _scrub_item(key: Any, value: Any) -> Any:
    name = str(key).lower()
    if name in _SECRET_HEADERS or any(word in name for word in ("password", "secret", "token", "api_key", "apikey")):
        return FILTERED
    return _scrub(value)


def event_scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's ``before_send`` (and ``before_send_transaction``): the event with nothing personal or secret."""
    request = event.get("request")
    if isinstance(request, dict):
        # Bodies and cookies never leave; the query string may name a person (?email=): only its keys stay.
        request.pop("data", None)
        request.pop("cookies", None)
        query = request.get("query_string")
        if isinstance(query, str) and query:
            request["query_string"] = "&".join(f"{part.split('=', 1)[0]}={FILTERED}" for part in query.split("&"))
    user = event.get("user")
    if isinstance(user, dict):
        event["user"] = {"id": user["id"]} if "id" in user else {}
    return _scrub(event)


def sentry_init(*, dsn: str, environment: str, release: str, traces_sample_rate: float, **options: Any) -> None:
    """Start reporting (web processes and workers alike: settings call this once). ``options`` go to
    sentry_sdk.init as they are (a test gives its own transport)."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        include_local_variables=False,  # a frame's variables hold contacts and decrypted credentials
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=event_scrub,
        before_send_transaction=event_scrub,
        **options,
    )
