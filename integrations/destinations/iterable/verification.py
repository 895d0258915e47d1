"""What an Iterable key may do, found by calls that change nothing (reference 1.2): the checks of
connecting and of re-verifying a stored key."""

from __future__ import annotations

from typing import Any

from integrations.destinations.base import AuthError, ForbiddenError, ValidationError, VerifyResult
from integrations.destinations.iterable.client import KEY_TYPE_LABELS, IterableClient

CREATE_KEY_HINT = (
    "In Iterable, open Integrations > API Keys, create a key of type Server-side (standard permissions) "
    "for this project, and paste it here."
)


def _client_side_message(kind: str) -> str:
    label = KEY_TYPE_LABELS.get(kind, kind)
    return (
        f"This is a {label} key: client-side keys may only call a few endpoints and cannot read your fields "
        f"or import users. {CREATE_KEY_HINT}"
    )


def verify(client: IterableClient) -> VerifyResult:
    """Prove the credentials can read the schema and write users, without changing anything.

    Judged by what the key can do, not by the status of a refusal: Iterable's Swagger document
    lists only 401 "Invalid API key" for getFields, bulkUpdate and users/update, so a refusal
    (401 or 403) says no more than "not with this key". getFields proves reading; bulkUpdate
    with no users proves writing (nothing changes). A key that reads and may not write is
    read-only. A key that may not read is a client-side key when a call only such keys (and
    server-side ones) may make gets past the key check (client_side_kind), else Iterable does
    not know it here. Raises AuthError (unknown) or ForbiddenError (the wrong kind) with what to do.
    """
    try:
        client.request("GET", "/api/users/getFields")
    except (AuthError, ForbiddenError) as refused:
        kind = client_side_kind(client)
        if kind is not None:
            raise ForbiddenError(_client_side_message(kind), code="client_side_key") from None
        if isinstance(refused, AuthError):
            raise refused from None
        raise AuthError(refused.message, code=refused.code, status=refused.status) from None
    if not _may(client, "POST", "/api/users/bulkUpdate", {"users": []}):
        raise ForbiddenError(
            "This is a read-only key: it can read your project but cannot create or update users. " + CREATE_KEY_HINT,
            code="read_only_key",
        )
    return VerifyResult(region=client.region, key_type="server_side")


def client_side_kind(client: IterableClient) -> str | None:
    """Which client-side key this is ("client_side", "javascript"), or None when it is neither.

    Each probe is a call that key type may make (reference 1.2), sent without anything that
    identifies a user or a device, so Iterable refuses its content (400) once the key is through:
    nothing is written. A key Iterable does not know is refused (401) before the content is read.
    users/update is on the mobile key's list, but the JavaScript key's list is cut off and its
    SDK calls users/update too: passing it says "client-side", not which. registerBrowserToken
    is not on the mobile list: a key that may call only that is a JavaScript key. A client-side
    key set to require JWT passes neither without a JWT, and reads as unknown.
    """
    if _may(client, "POST", "/api/users/update", {"dataFields": {}}):
        return "client_side"
    if _may(client, "POST", "/api/users/registerBrowserToken", {}):
        return "javascript"
    return None


def key_known(client: IterableClient) -> bool:
    """Whether this data center knows the key, whatever it may call."""
    return _may(client, "GET", "/api/users/getFields") or client_side_kind(client) is not None


def _may(client: IterableClient, method: str, path: str, body: Any = None) -> bool:
    """Whether the key may call the endpoint: it answered, or refused the content rather than the key.
    Failures that say nothing about the key (5xx, timeouts, the rate budget) are raised."""
    try:
        client.request(method, path, json=body)
    except (AuthError, ForbiddenError):
        return False
    except ValidationError:
        return True
    return True
