"""Customer.io's error codes in plain words for the sync-log viewer (sync_logs.explain asks here first)."""

from __future__ import annotations

from integrations.destinations.customerio.rules import OVER_LIMIT

NO_APP_API_KEY = "no_app_api_key"
APP_KEY_REFUSED = "app_key_refused"
_REFUSED_PREFIX = "Customer.io refused this person: "

_BY_CODE = {
    OVER_LIMIT: (
        "This person's data is over one of Customer.io's limits (300 attributes, 150-byte names, 1000-byte "
        "values, 32,000 bytes per person), so Flowsync did not send it.",
        "Shorten the value named in the record (or stop syncing the field that holds it), then retry.",
    ),
    "required": (
        "Customer.io refused this person: a value it requires is missing.",
        "Check the field named in the record; map a form field to it, then retry.",
    ),
    "lookup_unavailable": (
        "This integration leaves existing people unchanged, which needs Customer.io's App API to look them up, "
        "and it has no App API key.",
        "Connect Customer.io again with an App API key, or choose to update existing people; then retry.",
    ),
    APP_KEY_REFUSED: (
        "Customer.io refused the App API key (deleted, or of another workspace or region).",
        "Connect Customer.io again with a valid App API key, then retry.",
    ),
    "auth_failed": (
        "Customer.io refused the Site ID and Track API key (a deleted key, or the workspace moved).",
        "Connect Customer.io again with the workspace's current Track API key, then retry.",
    ),
    "server_error": (
        "Customer.io had an error on its side.",
        "Retry later; if it persists, check status.customer.io.",
    ),
    "transport_error": (
        "Customer.io could not be reached (timeout or dropped connection).",
        "Retry; if it persists, check the network and status.customer.io.",
    ),
}
# Customer.io's codes (of its answers and of this client) -> Flowsync's (STABLE_CODES).
STABLE_CODES = {
    "required": "invalid_data",
    NO_APP_API_KEY: "lookup_unavailable",
    APP_KEY_REFUSED: "auth_failed",
    "unknown_pair": "auth_failed",
    "region_refused": "auth_failed",
    "wrong_region": "auth_failed",
    "other_workspace": "auth_failed",
}


def explain(code: str, message: str, retryable: bool) -> tuple[str, str] | None:
    if code == "invalid" and message.startswith(_REFUSED_PREFIX):
        detail = message.removeprefix(_REFUSED_PREFIX)
        return (
            f"Customer.io refused this person's data: {detail}.",
            "Fix that value in the form or the mapping; the contact cannot be sent as it is.",
        )
    return _BY_CODE.get(code)
