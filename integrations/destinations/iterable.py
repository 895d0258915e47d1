"""Iterable: the HTTP client and the destination built on it.

Facts coded against are in ../shared/reference/iterable.md (section numbers in
the comments). One ``requests.Session`` per client; every call has a timeout,
waits for a token from the project's rate bucket (shared through Redis), retries
429 / 5xx / connection errors with exponential backoff and jitter (honouring
Retry-After), and maps Iterable's error envelope to the errors of base.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings

from integrations.destinations import iterable_answers as answers
from integrations.destinations.base import (
    AuthError,
    BusyError,
    ConflictError,
    DeadlineError,
    DestinationError,
    DestinationField,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RecordResult,
    ServerError,
    TransportError,
    TypeMismatchError,
    UnexpectedAnswerError,
    ValidationError,
    VerifyResult,
)
from lib import deadline, ratebucket

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
    "POST /api/events/track": 2000,
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


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class IterableClient:
    """Low-level calls: auth header, pacing, retries, error mapping. No business logic."""

    def __init__(
        self,
        *,
        region: str = "us",
        api_key: str | None = None,
        tokens: TokenProvider | None = None,
        bucket_id: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_rate_wait: float | None = None,
        interactive: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``interactive``: the calls are made inside a web request, where someone waits for the page.
        Then the timeout is DESTINATION_WEB_TIMEOUT_SECONDS, nothing is retried and no 429 is waited
        out; the rate budget is waited for only when the call's turn comes within one request
        interval of its endpoint. Otherwise the call raises BusyError ("try again in N s")."""
        if not api_key and tokens is None:
            raise ValueError("an API key or an OAuth token provider is needed")
        self.region = region if region in REGIONS else "us"
        self.base_url = base_url(self.region)
        self.api_key = api_key
        self.tokens = tokens
        # The rate budget is per Iterable project: a connected integration passes its own bucket
        # (services.rate_bucket_id). A key being checked before any integration has it stands for
        # its project by itself (hashed: no secret in a Redis key name).
        self.bucket_id = bucket_id or hashlib.sha256((api_key or "oauth").encode()).hexdigest()[:16]
        self.interactive = interactive
        if interactive:
            self.timeout = timeout or settings.DESTINATION_WEB_TIMEOUT_SECONDS
            self.max_retries, self.max_rate_wait = 0, 0.0
        else:
            self.timeout = timeout or settings.DESTINATION_TIMEOUT_SECONDS
            self.max_retries = settings.DESTINATION_MAX_RETRIES if max_retries is None else max_retries
            self.max_rate_wait = settings.DESTINATION_MAX_RATE_WAIT_SECONDS if max_rate_wait is None else max_rate_wait
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers.update(
            {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "Flowsync/1.0"}
        )
        self.rate_limited_waits = 0  # for the engine's log and the tests

    # --- transport -------------------------------------------------------------------------

    def _auth_headers(self, *, fresh: bool = False, stale: str = "") -> dict[str, str]:
        if self.api_key:
            return {"Api-Key": self.api_key}
        assert self.tokens is not None
        token = self.tokens.refresh(stale) if fresh else self.tokens.token()
        return {"Authorization": f"Bearer {token}"}

    def _pace(self, endpoint: str) -> None:
        """Take this request's token from the project's budget at the moment it is sent.

        A token is taken only when one is free now; otherwise the worker sleeps until one should be
        and asks again. Reserving a future slot instead would time the reservation, not the send: a
        worker that woke late would send its request right before the next worker's, and two
        requests that close are a 429 for a limiter with no burst. PACE keeps the sends 5% further
        apart than the limit, which absorbs the jitter between taking a token and the request
        arriving (about 10 ms at bulkUpdate's 5 per second).

        An interactive call takes its token the same way, at the moment it is sent, but asks at most
        twice: when the next token comes within one interval it waits for it and asks once more;
        further out, or when a worker took that token first, BusyError says when to try again.
        """
        rate = ENDPOINT_RATES.get(endpoint)
        if not rate or not settings.ITERABLE_CLIENT_PACING:
            return
        name, pace = f"iterable:{self.bucket_id}:{endpoint}", rate * PACE
        if not self.interactive:
            while (wait := ratebucket.reserve(name, rate=pace, max_wait=0)) > 0:
                self.sleep(wait)
            return
        wait = ratebucket.reserve(name, rate=pace, max_wait=0)
        if wait > 0:
            if wait > 1 / pace:
                raise BusyError("Iterable", wait)
            self._check_deadline(wait)
            self.sleep(wait)
            if (wait := ratebucket.reserve(name, rate=pace, max_wait=0)) > 0:
                raise BusyError("Iterable", wait)

    def _check_deadline(self, need: float = 0.0) -> float | None:
        """The seconds left of the web request's deadline (lib.deadline) for an interactive call, None
        when there is none. Raises DeadlineError when fewer than ``need`` are left: the call is not made."""
        left = deadline.remaining() if self.interactive else None
        if left is not None and left <= need:
            raise DeadlineError("Iterable", settings.DESTINATION_WEB_DEADLINE_SECONDS)
        return left

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """How long to wait before try ``attempt + 1`` of one request (``attempt`` counts from 0)."""
        if retry_after is not None:
            return retry_after
        # Exponential with full jitter: 0.5 s, 1 s, 2 s, ... capped at 30 s.
        return random.uniform(0, min(30.0, 0.5 * 2 ** min(attempt, 6)))

    def request(
        self, method: str, path: str, *, json: Any = None, data: bytes | None = None, params: dict | None = None
    ) -> Response:
        """One logical call: paced, retried, and raised as a DestinationError when it fails.
        ``data`` is a body already encoded as JSON (push builds it from records encoded once)."""
        endpoint = f"{method} {path}"
        body = data if json is None else encode_body(json)
        attempt = 0  # failed tries (5xx, connection errors): bounded by max_retries
        rate_attempts = 0  # 429s of this request: they drive the backoff, and start over with each request
        rate_waited = 0.0
        refreshed = False
        headers = self._auth_headers()
        while True:
            self._check_deadline()  # past it, not even a token is taken
            self._pace(endpoint)
            left = self._check_deadline()
            timeout = self.timeout if left is None else min(self.timeout, left)
            try:
                raw = self.session.request(
                    method, self.base_url + path, data=body, params=params, headers=headers, timeout=timeout
                )
            except requests.RequestException as exc:
                if isinstance(exc, requests.Timeout) and timeout < self.timeout:
                    # Cut short by the request's deadline, not by the call's own timeout.
                    raise DeadlineError("Iterable", settings.DESTINATION_WEB_DEADLINE_SECONDS) from None
                error: DestinationError = TransportError(f"{method} {path}: {type(exc).__name__}: {exc}")
            else:
                response = Response(raw.status_code, _json(raw), dict(raw.headers))
                if raw.status_code < 400 and not _error_code(response.body):
                    return response
                error = map_error(method, path, response)
                if isinstance(error, AuthError) and self.tokens is not None and not refreshed:
                    # An access token may expire between our check and the call: refresh once.
                    refreshed = True
                    headers = self._auth_headers(fresh=True, stale=headers["Authorization"][7:])
                    continue
            if isinstance(error, RateLimitedError) and self.interactive:
                raise BusyError("Iterable", error.retry_after, status=error.status, params=error.params)
            if isinstance(error, RateLimitedError):
                # Waiting for the budget is not a failed attempt; it is bounded in time instead.
                wait = self._backoff(rate_attempts, error.retry_after)
                rate_attempts += 1
                self.rate_limited_waits += 1
                if rate_waited + wait > self.max_rate_wait:
                    raise error
                rate_waited += wait
                logger.info("Iterable %s rate limited; waiting %.1fs", endpoint, wait)
                self.sleep(wait)
                continue
            # An answer not understood is not sent again here: like a bulk answer of the wrong shape, its
            # records fail retryably and a later run sends them.
            if error.retryable and attempt < self.max_retries and not isinstance(error, UnexpectedAnswerError):
                # A 5xx may say when to come back (Retry-After); the max wait bounds it, so that one
                # answer cannot park a worker for an hour.
                wait = min(self._backoff(attempt, error.retry_after), self.max_rate_wait)
                attempt += 1
                logger.info("Iterable %s failed (%s); retry %d in %.1fs", endpoint, error.code, attempt, wait)
                self.sleep(wait)
                continue
            raise error


USERS_SEPARATOR = b", "  # what json.dumps puts between list items


def encode_body(value: Any) -> bytes:
    """A request body as the client sends it: what push measures against MAX_BULK_BYTES is what goes out."""
    return json.dumps(value, allow_nan=False).encode()


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


def _json(raw: requests.Response) -> Any:
    try:
        return raw.json()
    except ValueError:
        return {"msg": raw.text[:500]}


def _error_code(body: Any) -> str:
    """The envelope's code when it names an error. Bulk answers carry counts and no code at all."""
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if code and code != "Success" else ""


def _retry_after(headers: dict[str, str]) -> float | None:
    """Seconds to wait from a Retry-After header, in either of its forms: delay-seconds or an HTTP-date."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # an HTTP-date is in GMT
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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
    retry_after = _retry_after(response.headers)
    if status == 401:
        return AuthError(f"Iterable refused the credentials ({msg}) on {where}", **kwargs)
    if status == 403:
        return ForbiddenError(f"Iterable refused {where} for this key: {msg}", **kwargs)
    if status == 404:
        return NotFoundError(f"{where}: {msg}", **kwargs)
    if status == 409:
        return ConflictError(f"{where}: {msg}", **kwargs)
    if status == 413:
        return PayloadTooLargeError(f"{where}: the request body is too large ({msg})", **kwargs)
    if status == 429:
        return RateLimitedError(f"{where}: rate limited", retry_after=retry_after, **kwargs)
    if status >= 500:
        return ServerError(f"Iterable answered {status} on {where}: {msg}", retry_after=retry_after, **kwargs)
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


class IterableDestination:
    """The destination interface (integrations.destinations.base.Destination) for Iterable."""

    kind = "iterable"

    def __init__(self, client: IterableClient, *, project_type: str = "hybrid") -> None:
        self.client = client
        self.project_type = project_type
        # Values Iterable refused so far: an instance lives for one sync run (engine.run_sync).
        self.refused = answers.RefusedValues()

    @classmethod
    def for_integration(cls, integration, *, interactive: bool = False) -> IterableDestination:
        from integrations.services import credentials_client_kwargs

        client = IterableClient(
            **credentials_client_kwargs(integration, interactive=interactive), interactive=interactive
        )
        return cls(client, project_type=integration.project_type)

    # --- verify ----------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
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
            self.client.request("GET", "/api/users/getFields")
        except (AuthError, ForbiddenError) as refused:
            kind = self.client_side_kind()
            if kind is not None:
                raise ForbiddenError(_client_side_message(kind), code="client_side_key") from None
            if isinstance(refused, AuthError):
                raise refused from None
            raise AuthError(refused.message, code=refused.code, status=refused.status) from None
        if not self._may("POST", "/api/users/bulkUpdate", {"users": []}):
            raise ForbiddenError(
                "This is a read-only key: it can read your project but cannot create or update users. "
                + CREATE_KEY_HINT,
                code="read_only_key",
            )
        return VerifyResult(region=self.client.region, key_type="server_side")

    def client_side_kind(self) -> str | None:
        """Which client-side key this is ("client_side", "javascript"), or None when it is neither.

        Each probe is a call that key type may make (reference 1.2), sent without anything that
        identifies a user or a device, so Iterable refuses its content (400) once the key is through:
        nothing is written. A key Iterable does not know is refused (401) before the content is read.
        users/update is on the mobile key's list, but the JavaScript key's list is cut off and its
        SDK calls users/update too: passing it says "client-side", not which. registerBrowserToken
        is not on the mobile list: a key that may call only that is a JavaScript key. A client-side
        key set to require JWT passes neither without a JWT, and reads as unknown.
        """
        if self._may("POST", "/api/users/update", {"dataFields": {}}):
            return "client_side"
        if self._may("POST", "/api/users/registerBrowserToken", {}):
            return "javascript"
        return None

    def key_known(self) -> bool:
        """Whether this data center knows the key, whatever it may call."""
        return self._may("GET", "/api/users/getFields") or self.client_side_kind() is not None

    def _may(self, method: str, path: str, body: Any = None) -> bool:
        """Whether the key may call the endpoint: it answered, or refused the content rather than the key.
        Failures that say nothing about the key (5xx, timeouts, the rate budget) are raised."""
        try:
            self.client.request(method, path, json=body)
        except (AuthError, ForbiddenError):
            return False
        except ValidationError:
            return True
        return True

    # --- schema ----------------------------------------------------------------------------

    def fetch_fields(self) -> list[DestinationField]:
        body = self.client.request("GET", "/api/users/getFields").body
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise ServerError("Iterable's getFields answer had no 'fields' object", code="bad_response")
        return [DestinationField(name=str(k), type=str(v).lower()) for k, v in sorted(fields.items())]

    # --- write -----------------------------------------------------------------------------

    def identifier_of(self, record: dict[str, Any]) -> str:
        return str(
            record.get("userId") if self.project_type == "userId" else record.get("email") or record.get("userId")
        )

    @staticmethod
    def bulk_body(records: list[dict[str, Any]], *, create_new_fields: bool = False) -> dict[str, Any]:
        """The exact bulkUpdate request body: the mapping preview shows what this returns."""
        body: dict[str, Any] = {"users": records}
        if create_new_fields:
            body["createNewFields"] = True  # the mapping creates fields the project may not accept by default
        return body

    def push(self, records: list[dict[str, Any]], *, create_new_fields: bool = False) -> list[RecordResult]:
        """bulkUpdate one batch; one result per record, in order.

        The batch goes in as many requests as keep each body under MAX_BULK_BYTES (reference 2.2).
        Failures come back by identifier (reference 2.2), mapped here to records; an answer not in
        its documented shape delivers nothing (iterable_answers.read_bulk_answer). A request refused
        whole for values Iterable names (RequestFieldsTypesMismatched, params.validationErrors) fails
        the records carrying them and goes again at once without them; those values fail later
        records of this sync unsent. Raises TypeMismatchError when a refusal names nothing usable,
        PayloadTooLargeError on a 413: the caller splits the batch to isolate the record (records
        of requests already sent go again then; upserts make that harmless).
        """
        results: list[RecordResult | None] = [None] * len(records)
        sendable: list[int] = []
        for index, record in enumerate(records):
            if refusals := self.refused.carried_by(record):
                results[index] = answers.refused_result(self.identifier_of(record), refusals)
            else:
                sendable.append(index)
        # Each record is encoded once: its size decides the requests, its bytes go into the body.
        encoded = [encode_body(records[i]) for i in sendable]
        overhead = len(self.bulk_body_bytes([], create_new_fields=create_new_fields))
        for part in split_by_size([len(e) for e in encoded], overhead=overhead, limit=MAX_BULK_BYTES):
            indices = sendable[part]
            if len(indices) == 1 and overhead + len(encoded[part.start]) > MAX_BULK_BYTES:
                # It would be refused (413) however it is sent: fail it here, its neighbours still go.
                message = f"This user's data is over Iterable's {MAX_BULK_BYTES:,}-byte request limit."
                results[indices[0]] = RecordResult(
                    self.identifier_of(records[indices[0]]), False, "payload_too_large", message
                )
                continue
            try:
                chunk = self._push_refusing(
                    [records[i] for i in indices], encoded[part], create_new_fields=create_new_fields
                )
            except DestinationError as exc:
                if not exc.retryable or all(r is None for r in results):
                    raise  # the caller acts on it (isolates a bad record, stops the run), or nothing is decided yet
                # An outage after some records were decided (delivered, or failed for their own reason): those
                # keep their result, these and the rest wait for the retry.
                for i in sendable[part.start :]:
                    results[i] = RecordResult(
                        self.identifier_of(records[i]), False, exc.code, exc.message, retryable=True
                    )
                break
            for i, result in zip(indices, chunk, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    @classmethod
    def bulk_body_bytes(cls, encoded_records: list[bytes], *, create_new_fields: bool) -> bytes:
        """``encode_body(bulk_body(records))`` from records already encoded one by one: push encodes each
        record once, to measure it and to send it. ``users`` is the body's first key, so the users go
        where the encoded empty body has its first ``[]``."""
        head, tail = encode_body(cls.bulk_body([], create_new_fields=create_new_fields)).split(b"[]", 1)
        return head + b"[" + USERS_SEPARATOR.join(encoded_records) + b"]" + tail

    def _push_refusing(
        self, records: list[dict[str, Any]], encoded: list[bytes], *, create_new_fields: bool
    ) -> list[RecordResult]:
        """One request's records. Each refusal that names values takes out the records carrying them
        (failed with Iterable's reason) and sends the rest again: one round per refusal, not a bisection."""
        results: list[RecordResult | None] = [None] * len(records)
        left = list(range(len(records)))
        while left:
            body = self.bulk_body_bytes([encoded[i] for i in left], create_new_fields=create_new_fields)
            try:
                sent = self._push_chunk([records[i] for i in left], body)
            except TypeMismatchError as exc:
                refusals = answers.refused_values(exc)
                named = answers.RefusedValues(refusals)
                carriers = {i: found for i in left if (found := named.carried_by(records[i]))}
                if not carriers:
                    raise  # it names nothing any record carries: the caller bisects
                self.refused.add(refusals)
                for i, found in carriers.items():
                    results[i] = answers.refused_result(self.identifier_of(records[i]), found)
                left = [i for i in left if i not in carriers]
                continue
            for i, result in zip(left, sent, strict=True):
                results[i] = result
            break
        return [r for r in results if r is not None]

    def _push_chunk(self, records: list[dict[str, Any]], body: bytes) -> list[RecordResult]:
        response = self.client.request("POST", "/api/users/bulkUpdate", data=body)
        return self._bulk_results("bulkUpdate", response, records)

    def _bulk_results(self, what: str, response: Response, records: list[dict[str, Any]]) -> list[RecordResult]:
        return answers.read_bulk_answer(
            what=what, status=response.status, body=response.body, records=records, identifier_of=self.identifier_of
        )

    def find_existing(self, records: list[dict[str, Any]]) -> list[bool]:
        """Whether each record's user exists already, in order: one lookup each (100 rps per endpoint)."""
        return [self._exists(record) for record in records]

    def _exists(self, record: dict[str, Any]) -> bool:
        email, user_id = record.get("email"), record.get("userId")
        # A userID-based project knows users by userId only. Elsewhere the email identifies the user when
        # the record has one; a record with only a userId is looked up by it (getByEmail would refuse it).
        if email and self.project_type != "userId":
            path, params = "/api/users/getByEmail", {"email": email}
        elif user_id:
            path, params = "/api/users/byUserId", {"userId": user_id}
        else:
            return False  # nothing to look it up by: the push says what is missing
        try:
            response = self.client.request("GET", path, params=params)
        except NotFoundError as exc:
            if exc.code == NO_USER_CODE:  # byUserId's other way of saying "not found" (reference 4)
                return False
            raise
        except ValidationError as exc:
            # An identifier Iterable refuses (malformed email or userId) belongs to no user: not the
            # whole batch's failure. The push then fails that record alone, with Iterable's reason.
            if exc.code in ("InvalidEmailAddressError", "InvalidUserIdError"):
                return False
            raise
        return answers.lookup_found(what=path, status=response.status, body=response.body)

    def subscribe(self, list_id: int, records: list[dict[str, Any]]) -> list[RecordResult]:
        """Add the records' users to a static list (POST /api/lists/subscribe); one result per record.
        Its answer is the bulk one (reference 6.3), read as strictly as bulkUpdate's."""
        subscribers = [{k: r[k] for k in ("email", "userId") if r.get(k)} for r in records]
        response = self.client.request(
            "POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers}
        )
        return self._bulk_results("lists/subscribe", response, records)

    def track(
        self, event_name: str, record: dict[str, Any], data_fields: dict[str, Any], *, event_id: str = ""
    ) -> None:
        """One custom event for the record's user (POST /api/events/track). With ``event_id`` (at most
        512 bytes, reference 6.4) a repeat updates that event instead of adding another."""
        body = {
            "eventName": event_name,
            "dataFields": data_fields,
            **{k: record[k] for k in ("email", "userId") if record.get(k)},
            **({"id": event_id} if event_id else {}),
        }
        response = self.client.request("POST", "/api/events/track", json=body)
        answers.check_envelope(what="events/track", status=response.status, body=response.body)

    def lists(self) -> list[dict[str, Any]]:
        body = self.client.request("GET", "/api/lists").body
        return list(body.get("lists") or []) if isinstance(body, dict) else []


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


def key_known_in(api_key: str, region: str) -> bool:
    """Whether the data center knows ``api_key``, whatever the key may call (interactive calls: an
    admin waits for the connect page). Raises what says nothing about the key (down, 5xx, busy)."""
    return IterableDestination(IterableClient(region=region, api_key=api_key, interactive=True)).key_known()


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


def region_label(region: str) -> str:
    return "EU (api.eu.iterable.com)" if region == "eu" else "US (api.iterable.com)"
