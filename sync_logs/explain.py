"""A sync-log row's error in plain words, with what to do about it.

The engine stores a stable code and the destination's (or the mapper's) own
message. The viewer shows both: the raw answer for support, and this
explanation for the workspace admin. A destination words its own codes
(Destination.explain); the causes every destination shares are worded here,
with the destination's name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from integrations.destinations.base import STABLE_CODES, Destination, shared_stable_code


@dataclass(frozen=True)
class Explanation:
    summary: str
    action: str
    # False: Flowsync stopped the record itself (the mapping refused a value, no identifier, a newer
    # capture went first), so the destination never saw it and there is no answer of its to show.
    sent: bool = True


# Codes Flowsync gives a record it did not send; payload_too_large is one too when Flowsync measured
# it (no destination code), not when the destination refused the request.
NOT_SENT = frozenset({"mapping_error", "no_identifier", "superseded", "existing_user"})


def was_sent(code: str, destination_code: str = "") -> bool:
    code = shared_stable_code(code) or code
    return not (code in NOT_SENT or (code == "payload_too_large" and not destination_code))


# {name}: the destination's name ({Name} at the start of a sentence).
_BY_CODE: dict[str, tuple[str, str]] = {
    "no_identifier": (
        "The contact has nothing {name} identifies people by, so {name} cannot tell who it is.",
        "Make the identifier field required in the flow, or map the field that holds it.",
    ),
    "superseded": (
        "A newer capture of this person reached {name} first and already set every value this one had.",
        "Nothing to do: sending this older one would have put older values back.",
    ),
    "existing_user": (
        "The person already exists in {name} and this integration leaves existing people unchanged.",
        "Nothing to do; choose to update existing people in the sync settings to overwrite them.",
    ),
    "invalid_data": (
        "{Name} rejected one of this person's values.",
        "Check the payload below against the field types in {name}.",
    ),
    "payload_too_large": (
        "This contact's data is too large for one {name} request.",
        "Shorten the long values (or stop syncing the field that holds them), then retry.",
    ),
    "rate_limited": (
        "{Name} asked us to slow down and the retries ran out.",
        "Retry: it usually passes once the rate limit resets.",
    ),
    "server_error": ("{Name} had an error on its side.", "Retry later; if it persists, check {name}'s status page."),
    "transport_error": (
        "{Name} could not be reached (timeout or dropped connection).",
        "Retry; if it persists, check the network and {name}'s status page.",
    ),
    "auth_failed": (
        "{Name} refused the credentials (revoked key or withdrawn access).",
        "Connect the integration again with valid credentials, then retry.",
    ),
    "forbidden": ("The credentials may not make this call to {name}.", "Use credentials with full rights."),
    "not_found": ("{Name} has no such person.", "Check the identifier, then retry."),
    "type_mismatch": (
        "{Name} rejected a value whose type differs from the field's type there.",
        "Fix the mapping or the form.",
    ),
    "unexpected_answer": (
        "{Name}'s answer was not the one it documents (a proxy's page, an empty or cut-off body, or counts "
        "that do not add up), so nothing proves this contact arrived.",
        "Nothing to fix in the contact: it goes again automatically (sending it twice is harmless). If this "
        "keeps happening, check what sits between Flowsync and {name} (a proxy or firewall).",
    ),
    "invalid": (
        "{Name} refused the request's content.",
        "See the record for {name}'s full answer; fix the mapping or the value, then retry.",
    ),
}

# The codes a log row carries (the admin filters by these; listing the codes in use would be a
# DISTINCT over every log row).
KNOWN_CODES = tuple(sorted(STABLE_CODES))


def explain(
    code: str,
    message: str,
    retryable: bool = False,
    *,
    destination: type[Destination] | None = None,
    destination_code: str = "",
) -> Explanation:
    """Plain words for a stored error (see _explain), and whether the record reached the destination."""
    explanation = _explain(code, message, retryable, destination=destination, destination_code=destination_code)
    return replace(explanation, sent=was_sent(code, destination_code))


def _explain(
    code: str,
    message: str,
    retryable: bool = False,
    *,
    destination: type[Destination] | None = None,
    destination_code: str = "",
) -> Explanation:
    """Plain words for a stored error (Flowsync's ``code``; the destination's own ``destination_code``
    asked first, for words only it has); the message itself when the code is unknown."""
    name = destination.label if destination is not None else "the destination"
    words = {"name": name, "Name": name[:1].upper() + name[1:]}
    # One name per cause, whichever layer named it (a row may hold the transport's http_<status>), by
    # the destinations' shared mapping; a code only a destination knows stays as it is, for its words.
    code = shared_stable_code(code) or code
    if destination is not None:
        own = (destination_code and destination.explain(destination_code, message, retryable)) or destination.explain(
            code, message, retryable
        )
        if own is not None:
            return Explanation(*own)
    if code == "mapping_error":  # the mapper's own words name the field and the value (coercion, drift)
        return Explanation(
            message or "A value could not be mapped.",
            f"Fix the value in the form, or the mapping (Field mapping > Refresh fields if {name} changed).",
        )
    found = _BY_CODE.get(code)
    if found:
        return Explanation(found[0].format(**words), found[1].format(**words))
    if retryable:  # an outage whose code we do not know (e.g. a generic error on a 503)
        return Explanation(
            f"{words['Name']} could not take the record just then (an error on its side, a timeout or a rate limit).",
            "Retry: nothing needs fixing on your side.",
        )
    return Explanation(
        message or f"{words['Name']} refused this record.", f"See the record for {name}'s full answer, then retry."
    )
