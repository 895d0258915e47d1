"""Iterable's error codes in plain words for the sync-log viewer (sync_logs.explain asks here first)."""

from __future__ import annotations

import re

from integrations.destinations.iterable.answers import FIELDS_FILTERED_OUT, TYPE_MISMATCH
from integrations.destinations.iterable.client import NO_USER_CODE

# A 404 from the Subscriptions API: the project does not have it (Iterable's customer success managers
# enable it per project), or the message type or channel is gone.
SUBSCRIPTIONS_API_MISSING = (
    "Iterable answered 404 Not Found: this project's Subscriptions API is not enabled, or the message type "
    "or channel no longer exists. Ask Iterable to enable the Subscriptions API, or map the consent to a list."
)

# What an Iterable field type is called in words an admin uses.
TYPE_WORDS = {
    "long": "a whole number",
    "double": "a number",
    "boolean": "a yes/no value",
    "date": "a date",
    "string": "text",
    "object": "an object",
    "geo_location": "a location",
    "nested": "a list of objects",
}
# The client's type-mismatch detail: "Iterable has 'age' as long, the value sent was 'ten' (string)".
_MISMATCH = re.compile(
    r"Iterable has '(?P<field>[^']+)' as (?P<expected>\w+), the value sent was (?P<value>.*) \((?P<sent>[^)]*)\)"
)
# The dropped-fields warning: "Delivered without the field(s) `notes`, `x`: Iterable dropped them ...".
_FILTERED = re.compile(r"Delivered without the field\(s\) (?P<fields>.+?): Iterable dropped")

_EMAIL = (
    "Iterable rejected the email address as malformed.",
    "Correct the address; the contact cannot be sent with it.",
)
_USER_ID = (
    "Iterable rejected the userId (empty, too long or not plain ASCII).",
    "Correct the userId field in the form or the mapping.",
)
# By Iterable's own code (a log row's destination_code) first, then by Flowsync's.
_BY_CODE = {
    "invalidEmails": _EMAIL,
    "InvalidEmailAddressError": _EMAIL,
    "invalidUserIds": _USER_ID,
    "InvalidUserIdError": _USER_ID,
    "conflict": (
        "Another Iterable user already has this email or userId.",
        "Merge or fix the users in Iterable, then retry.",
    ),
    "forgotten": (
        "This person asked Iterable to forget them (GDPR); Iterable will not store them again.",
        "Nothing to do: this is on purpose.",
    ),
    "server_error": (
        "Iterable had an error on its side.",
        "Retry later; if it persists, check status.iterable.com.",
    ),
    "transport_error": (
        "Iterable could not be reached (timeout or dropped connection).",
        "Retry; if it persists, check the network and status.iterable.com.",
    ),
    "auth_failed": (
        "Iterable refused the credentials (revoked key or withdrawn access).",
        "Connect the integration again with a valid server-side key, then retry.",
    ),
    "forbidden": (
        "The key may not call this Iterable endpoint.",
        "Use a server-side key with full rights.",
    ),
}
# Iterable's codes (of its envelope, its bulk answer and this client) -> Flowsync's (STABLE_CODES).
STABLE_CODES = {
    TYPE_MISMATCH: "type_mismatch",
    "InvalidEmailAddressError": "invalid_identifier",
    "InvalidUserIdError": "invalid_identifier",
    "BadApiKey": "auth_failed",
    "InvalidApiKey": "auth_failed",
    "BadAuthorizationHeader": "auth_failed",
    "Unauthorized": "auth_failed",
    "InvalidJwtPayload": "auth_failed",
    "JwtUserIdentifiersMismatched": "auth_failed",
    "oauth_refresh_failed": "auth_failed",
    "oauth_token_refused": "auth_failed",
    "Forbidden": "forbidden",
    "client_side_key": "forbidden",
    "read_only_key": "forbidden",
    "NotFound": "not_found",
    "UnknownEmailError": "not_found",
    "UnknownUserIdError": "not_found",
    NO_USER_CODE: "not_found",
    "EmailAlreadyExists": "conflict",
    "UserIdAlreadyExists": "conflict",
    "ExternalKeyConflict": "conflict",
    "ForgottenUserError": "forgotten",
    "BatchTooLarge": "payload_too_large",
    "RateLimitExceeded": "rate_limited",
    "oauth_refresh_busy": "busy",
    "GenericError": "server_error",
    "DatabaseError": "server_error",
    "QueueEmailError": "server_error",
    "bad_response": "unexpected_answer",
    "BadJsonBody": "invalid",
    "BadParams": "invalid",
    "ForbiddenParamsError": "invalid",
    "UniqueFieldsLimitExceeded": "invalid",
}


def explain(code: str, message: str, retryable: bool) -> tuple[str, str] | None:
    """``code``: Iterable's own, or Flowsync's (sync_logs.explain asks with both, Iterable's first)."""
    if code in ("type_mismatch", TYPE_MISMATCH):
        match = _MISMATCH.search(message)
        if match:
            expected = TYPE_WORDS.get(match["expected"], match["expected"])
            sent = ", ".join(TYPE_WORDS.get(t.strip(), t.strip()) for t in match["sent"].split(",") if t.strip())
            return (
                f"Iterable rejected the field `{match['field']}`: it is {expected} there, the form sent "
                f"{sent or 'another type'} ({match['value']}).",
                "Fix the mapping or the form.",
            )
        return None
    if code == FIELDS_FILTERED_OUT:
        fields = _FILTERED.search(message)
        names = fields["fields"] if fields else "some fields"
        return (
            f"Delivered, but Iterable dropped {names}: the project does not have them and does not add unknown "
            "fields, so those values were not stored.",
            "In the field mapping, map them to fields Iterable has, or tick “Create new field” for them; "
            "contacts synced after that carry them.",
        )
    return _BY_CODE.get(code)
