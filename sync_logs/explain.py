"""A sync-log row's error in plain words, with what to do about it.

The engine stores a stable code and the destination's (or the mapper's) own
message. The viewer shows both: the raw answer for support, and this
explanation for the workspace admin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What a destination type is called in words an admin uses.
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
# The engine's type-mismatch detail: "Iterable has 'age' as long, the value sent was 'ten' (string)".
_MISMATCH = re.compile(
    r"Iterable has '(?P<field>[^']+)' as (?P<expected>\w+), the value sent was (?P<value>.*) \((?P<sent>[^)]*)\)"
)


# The engine's dropped-fields warning: "Delivered without the field(s) `notes`, `x`: Iterable dropped them ...".
_FILTERED = re.compile(r"Delivered without the field\(s\) (?P<fields>.+?): Iterable dropped")


@dataclass(frozen=True)
class Explanation:
    summary: str
    action: str


_BY_CODE: dict[str, Explanation] = {
    "no_identifier": Explanation(
        "The contact has no email (or userId), so Iterable cannot tell who it is.",
        "Make the identifier field required in the flow, or map the field that holds it.",
    ),
    "superseded": Explanation(
        "A newer capture of this person reached Iterable first and already set every value this one had.",
        "Nothing to do: sending this older one would have put older values back.",
    ),
    "existing_user": Explanation(
        "The user already exists in Iterable and this integration leaves existing users unchanged.",
        "Nothing to do; choose “Update existing users” in the sync settings to overwrite them.",
    ),
    "invalid_email": Explanation(
        "Iterable rejected the email address as malformed.",
        "Correct the address; the contact cannot be sent with it.",
    ),
    "invalid_user_id": Explanation(
        "Iterable rejected the userId (empty, too long or not plain ASCII).",
        "Correct the userId field in the form or the mapping.",
    ),
    "invalid_data": Explanation(
        "Iterable rejected one of this user's field values.",
        "Check the payload below against the field types in Iterable.",
    ),
    "conflict": Explanation(
        "Another Iterable user already has this email or userId.",
        "Merge or fix the users in Iterable, then retry.",
    ),
    "forgotten": Explanation(
        "This person asked Iterable to forget them (GDPR); Iterable will not store them again.",
        "Nothing to do: this is on purpose.",
    ),
    "payload_too_large": Explanation(
        "This contact's data is too large for one Iterable request.",
        "Shorten the long values (or stop syncing the field that holds them), then retry.",
    ),
    "rate_limited": Explanation(
        "Iterable asked us to slow down and the retries ran out.",
        "Retry: it usually passes once the rate limit resets.",
    ),
    "server_error": Explanation(
        "Iterable had an error on its side.",
        "Retry later; if it persists, check status.iterable.com.",
    ),
    "transport_error": Explanation(
        "Iterable could not be reached (timeout or dropped connection).",
        "Retry; if it persists, check the network and status.iterable.com.",
    ),
    "auth_failed": Explanation(
        "Iterable refused the credentials (revoked key or withdrawn access).",
        "Connect the integration again with a valid server-side key, then retry.",
    ),
    "forbidden": Explanation(
        "The key may not call this Iterable endpoint.",
        "Use a server-side key with full rights.",
    ),
    "not_found": Explanation("Iterable has no such user.", "Check the identifier, then retry."),
    "unexpected_answer": Explanation(
        "Iterable's answer was not the one it documents (a proxy's page, an empty or cut-off body, or counts "
        "that do not add up), so nothing proves this contact arrived.",
        "Nothing to fix in the contact: it goes again automatically (sending it twice is harmless). If this "
        "keeps happening, check what sits between Flowsync and Iterable (a proxy or firewall).",
    ),
    "invalid": Explanation(
        "Iterable refused the request's content.",
        "See the record for Iterable's full answer; fix the mapping or the value, then retry.",
    ),
}


# Iterable's own codes (and the client's http_<status> fallbacks) for the same causes as ours.
ALIASES = {
    "RequestFieldsTypesMismatched": "type_mismatch",
    "InvalidEmailAddressError": "invalid_email",
    "RateLimitExceeded": "rate_limited",
    "http_429": "rate_limited",
    "http_413": "payload_too_large",
    "BadApiKey": "auth_failed",
    "InvalidApiKey": "auth_failed",
    "BadAuthorizationHeader": "auth_failed",
    "http_401": "auth_failed",
    "http_403": "forbidden",
    "BadJsonBody": "invalid",
}


# Every code a log row usually carries, ours and Iterable's (the admin filters by these; listing
# the codes in use would be a DISTINCT over every log row).
KNOWN_CODES = (
    "mapping_error",
    "type_mismatch",
    "fields_filtered_out",
    *_BY_CODE,
    *ALIASES,
    "destination_error",
    *(f"http_{status}" for status in (500, 502, 503, 504)),
)


def canonical_code(code: str) -> str:
    """One name per cause, whichever layer named it."""
    if code.startswith("http_5"):
        return "server_error"
    return ALIASES.get(code, code)


def explain(code: str, message: str, retryable: bool = False) -> Explanation:
    """Plain words for a stored error; the message itself when the code is unknown."""
    code = canonical_code(code)
    if code == "type_mismatch":
        match = _MISMATCH.search(message)
        if match:
            expected = TYPE_WORDS.get(match["expected"], match["expected"])
            sent = ", ".join(TYPE_WORDS.get(t.strip(), t.strip()) for t in match["sent"].split(",") if t.strip())
            return Explanation(
                f"Iterable rejected the field `{match['field']}`: it is {expected} there, the form sent "
                f"{sent or 'another type'} ({match['value']}).",
                "Fix the mapping or the form.",
            )
        return Explanation(
            "Iterable rejected a value whose type differs from the field's type there.",
            "Fix the mapping or the form.",
        )
    if code == "fields_filtered_out":
        fields = _FILTERED.search(message)
        names = fields["fields"] if fields else "some fields"
        return Explanation(
            f"Delivered, but Iterable dropped {names}: the project does not have them and does not add unknown "
            "fields, so those values were not stored.",
            "In the field mapping, map them to fields Iterable has, or tick “Create new field” for them; "
            "contacts synced after that carry them.",
        )
    if code == "mapping_error":  # the mapper's own words name the field and the value (coercion, drift)
        return Explanation(
            message or "A value could not be mapped.",
            "Fix the value in the form, or the mapping (Field mapping > Refresh fields if Iterable changed).",
        )
    found = _BY_CODE.get(code)
    if found:
        return found
    if retryable:  # an outage whose envelope code we do not know (e.g. GenericError on a 503)
        return Explanation(
            "Iterable could not take the record just then (an error on its side, a timeout or a rate limit).",
            "Retry: nothing needs fixing on your side.",
        )
    return Explanation(
        message or "The destination refused this record.", "See the record for Iterable's full answer, then retry."
    )
