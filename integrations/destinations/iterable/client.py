"""Iterable's HTTP client: its auth, its documented rates and its error envelope.

Facts coded against are in ../shared/reference/iterable.md (section numbers in
the comments). Pacing, retries and timeouts are the shared transport's
(integrations.destinations.http).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings

from integrations.destinations.base import (
    DestinationError,
    TypeMismatchError,
    UnexpectedAnswerError,
    ValidationError,
)
from integrations.destinations.http import HttpClient, Response, error_for_status, retry_after_seconds
from integrations.destinations.iterable import answers

logger = logging.getLogger(__name__)

REGIONS = ("us", "eu")
KEY_TYPE_LABELS = {
    "server_side": "server-side",
    "read_only": "read-only",
    "mobile": "mobile",
    "javascript": "JavaScript",
    "client_side": "client-side (mobile or JavaScript)",
}
# Documented per-project limits, requests per second (reference 2.3). The client
# paces itself a little under them so that it never discovers them by a 429.
ENDPOINT_RATES = {
    "POST /api/users/update": 500,
    "POST /api/users/bulkUpdate": 5,
    "GET /api/users/getFields": 3,
    "GET /api/users/getByEmail": 100,
    "GET /api/users/byUserId": 100,
    "GET /api/lists": 100,
    "POST /api/lists/subscribe": 50,  # no limit documented: stay modest
    "POST /api/lists/unsubscribe": 50,  # no limit documented: as subscribe
    "GET /api/messageTypes": 100,
    "GET /api/channels": 100,
    # The Subscriptions API states no limit (peers-consent-erasure 3): as lists/subscribe.
    "PUT /api/subscriptions/{group}/{id}": 50,
    "PATCH /api/subscriptions/{group}/{id}/user/{email}": 50,
    "PATCH /api/subscriptions/{group}/{id}/byUserId/{userId}": 50,
    "DELETE /api/subscriptions/{group}/{id}/user/{email}": 50,
    "DELETE /api/subscriptions/{group}/{id}/byUserId/{userId}": 50,
    "POST /api/events/track": 2000,
    "POST /api/users/forget": 3,
    "POST /api/users/registerDeviceToken": 500,
    "POST /api/users/disableDevice": 500,  # not documented: as registerDeviceToken
    "DELETE /api/users/{email}": 100,
    "DELETE /api/users/byUserId/{userId}": 100,  # and 1,000 a day per project: past it, a 429 until the day is over
}
PACE = 0.95
# reference 2.2: "Max body size: 4 MB" per bulkUpdate, read as 4,000,000 bytes (as RudderStack does:
# the stricter reading). The emulator answers 413 above the same number (emulators/iterable/state.py).
MAX_BULK_BYTES = 4_000_000


NO_USER_CODE = "error.users.noUserWithIdExists"  # byUserId's "no such user" (reference 4)
# The HTTP status each error code of the envelope comes with (reference 5; codes not listed are 400s).
# A 2xx whose body carries one of these codes is that error, classed as if it had come with this status.
CODE_STATUSES = {
    "BadApiKey": 401,
    "BadAuthorizationHeader": 401,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "UnknownEmailError": 404,
    "UnknownUserIdError": 404,
    NO_USER_CODE: 404,
    "EmailAlreadyExists": 409,
    "UserIdAlreadyExists": 409,
    "ExternalKeyConflict": 409,
    "ForgottenUserError": 409,
    "BatchTooLarge": 413,
    "RateLimitExceeded": 429,
    "GenericError": 500,
    "DatabaseError": 500,
    "QueueEmailError": 500,
}
# The envelope's codes as Iterable documents them (reference 5: the Swagger's IterableApiResponse.code
# enum; lowercase dotted codes such as error.lists.invalidListId also name errors). A 2xx carrying one
# of these is that refusal; a 2xx carrying any other code is no documented answer at all.
DOCUMENTED_CODES = frozenset(CODE_STATUSES) | {
    "BadJsonBody",
    "BadParams",
    "ForbiddenParamsError",
    "InvalidEmailAddressError",
    "InvalidJwtPayload",
    "InvalidUserIdError",
    "JwtUserIdentifiersMismatched",
    "RequestFieldsTypesMismatched",
    "UniqueFieldsLimitExceeded",
}
_DOTTED_CODE = re.compile(r"error(?:\.\w+)+")


def base_url(region: str) -> str:
    return settings.ITERABLE_EU_BASE_URL if region == "eu" else settings.ITERABLE_US_BASE_URL


class TokenProvider:
    """Supplies an OAuth access token, refreshing it when told the current one is stale."""

    def token(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def refresh(self, stale: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class IterableClient(HttpClient):
    """Iterable's calls: its auth header (an API key, or an OAuth token renewed once on a 401), its
    documented rates, its error envelope. The loop itself is the shared one (destinations.http)."""

    label = "Iterable"
    destination = "iterable"
    rates = ENDPOINT_RATES
    pace = PACE
    pacing_setting = "ITERABLE_CLIENT_PACING"
    bucket_prefix = "iterable"

    def __init__(
        self,
        *,
        region: str = "us",
        api_key: str | None = None,
        tokens: TokenProvider | None = None,
        bucket_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``interactive`` (a keyword of HttpClient): the calls are made inside a web request, where
        someone waits for the page. Then the timeout is DESTINATION_WEB_TIMEOUT_SECONDS, nothing is
        retried and no 429 is waited out; the rate budget is waited for only when the call's turn
        comes within one request interval of its endpoint. Otherwise the call raises BusyError."""
        if not api_key and tokens is None:
            raise ValueError("an API key or an OAuth token provider is needed")
        self.region = region if region in REGIONS else "us"
        self.api_key = api_key
        self.tokens = tokens
        # The rate budget is per Iterable project: a connected integration passes its own bucket.
        super().__init__(base_url=base_url(self.region), bucket_id=bucket_id, bucket_seed=api_key or "oauth", **kwargs)

    def auth_headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Api-Key": self.api_key}
        assert self.tokens is not None
        return {"Authorization": f"Bearer {self.tokens.token()}"}

    def renew_auth(self, headers: dict[str, str]) -> dict[str, str] | None:
        # An access token may expire between our check and the call: renew it once.
        if self.tokens is None:
            return None
        return {"Authorization": f"Bearer {self.tokens.refresh(headers['Authorization'][7:])}"}

    def answer(self, method: str, path: str, response: Response) -> DestinationError | None:
        # A 2xx may still carry an error code (reference 2.1): only "Success" or none is a success.
        if response.status < 400 and not _error_code(response.body):
            return None
        return map_error(method, path, response)


USERS_SEPARATOR = b","  # what encode_body puts between list items (compact JSON)


def split_by_size(sizes: list[int], *, overhead: int, limit: int) -> Iterator[slice]:
    """Consecutive runs of records (by their encoded ``sizes``) whose bulk body stays within ``limit`` bytes.

    ``overhead`` is the size of the body with no users. The users list is the records joined by
    USERS_SEPARATOR, so a body's size is the overhead, the records' sizes and a separator between
    each two: exact, without encoding every candidate body. A record too large on its own comes alone.
    """
    start, size = 0, overhead
    gap = len(USERS_SEPARATOR)
    for index, weight in enumerate(sizes):
        if index > start and size + gap + weight > limit:
            yield slice(start, index)
            start, size = index, overhead
        size += weight + (gap if index > start else 0)
    if start < len(sizes):
        yield slice(start, len(sizes))


def _error_code(body: Any) -> str:
    """The envelope's code when it names an error. Bulk answers carry counts and no code at all."""
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if code and code != "Success" else ""


def map_error(method: str, path: str, response: Response) -> DestinationError:
    """Iterable's envelope ``{msg, code, params}`` to an exception. HTTP status first, code second (reference 5).

    Also maps a 2xx whose code is not "Success" (reference 2.1: such a body is a failure), by the
    status its code comes with (CODE_STATUSES), when the code is a documented one; a 2xx with any
    other code (a proxy's {"code": "Queued"}) proves nothing and is UnexpectedAnswerError (retryable).
    """
    body = response.body if isinstance(response.body, dict) else {}
    code = str(body.get("code") or "")
    msg = str(body.get("msg") or body.get("message") or f"HTTP {response.status}")
    params = body.get("params")
    where = f"{method} {path}"
    if response.status < 400 and code not in DOCUMENTED_CODES and not _DOTTED_CODE.fullmatch(code):
        problem = f"code {code!r} is not one of Iterable's"
        what = path.removeprefix("/api/")
        return UnexpectedAnswerError(
            answers.unexpected_message(what, response.status, response.body, problem), status=response.status
        )
    if response.status >= 400 and code == "Success":
        # "Iterable sometimes returns Success for errors" (reference 5: a bad list on lists/subscribe is
        # 400 with msg "error.lists.invalidListId(…)"): the status decides, the msg's dotted code names it.
        dotted = _DOTTED_CODE.match(msg)
        code = dotted.group(0) if dotted else ""
    status = response.status if response.status >= 400 else CODE_STATUSES.get(code, 400)
    if code == NO_USER_CODE:
        status = 404  # a definite "no such user", whatever status it came with (reference 4: seen with 500)
    kwargs = {"code": code or f"http_{status}", "status": response.status, "params": params}
    by_status = error_for_status(
        "Iterable", status, where, msg, retry_after=retry_after_seconds(response.headers), **kwargs
    )
    if by_status is not None:
        return by_status
    if code == "RequestFieldsTypesMismatched":
        errors = (params or {}).get("validationErrors") or {}
        field_errors = {
            name: (
                f"Iterable has '{name}' as {detail.get('expectedType')}, "
                f"the value sent was {detail.get('offendingValue')!r} ({', '.join(detail.get('incomingTypes') or [])})"
            )
            for name, detail in errors.items()
        }
        return TypeMismatchError(msg, field_errors=field_errors, **kwargs)
    field_errors = (
        {str(k): str(v) for k, v in params.items()} if code == "BadJsonBody" and isinstance(params, dict) else {}
    )
    return ValidationError(f"Iterable refused {where}: {msg}", field_errors=field_errors, **kwargs)
