"""The HTTP transport every destination's client is built on.

One ``requests.Session`` per client; every call has a timeout, takes a token from
the destination account's rate bucket as it is sent (lib.ratebucket: shared
through Redis, so every worker and run spends the same budget), and is retried on
429 / 5xx / connection errors with exponential backoff and full jitter, honouring
Retry-After. Waiting out a 429 is not a failed attempt; it is bounded in time
instead. Inside a web request (``interactive``) nothing is retried or waited out:
a short timeout within the request's deadline (lib.deadline), and BusyError when
the budget has no room now.

A destination's client subclasses :class:`HttpClient` and adds what is its own:
the base URL, its auth headers, its documented rates, and :meth:`HttpClient.answer`,
which reads a response as a success or one of the errors of base.py.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.utils import timezone

from integrations.destinations.base import (
    AuthError,
    BudgetWait,
    BusyError,
    ConflictError,
    DeadlineError,
    DestinationError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnexpectedAnswerError,
)
from lib import deadline, jsoncodec, ratebucket

logger = logging.getLogger(__name__)


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class Exchange:
    """One try of one request, as it went: what the metrics count (lib.metrics) and a sync run's exchange log
    keeps (sync_logs.exchanges). No header is in it: the credentials travel there."""

    destination: str  # the client's ``destination`` (a bounded label)
    method: str
    endpoint: str  # the path as its endpoint is named: never a person's identifier
    status: int | None  # None: no answer (a connection error, a timeout)
    error_code: str  # Flowsync's stable code of the refusal; "" for a success
    error: str  # the refusal in words; "" for a success
    started_at: datetime
    seconds: float  # from sending to the answer
    attempt: int  # this try's number within its call, from 1
    budget_wait: float  # seconds this try waited for the rate budget before it was sent
    retry_wait: float  # seconds slept before this try after the previous one failed (a 429, a 5xx)
    request_body: bytes | None
    response_body: Any  # the answer's JSON, or {"msg": its text}; None without an answer
    carries: tuple[str, ...]  # the identifiers of the people the request carried (the caller's ``carries``)
    run_id: int | None = None  # the sync run it was made for (HttpClient.run_id)


# What every exchange is shown to, in every process: lib.metrics registers its counter here (integrations.apps).
_observers: list[Callable[[Exchange], None]] = []


def exchanges_observe(observer: Callable[[Exchange], None]) -> None:
    if observer not in _observers:
        _observers.append(observer)


def encode_body(value: Any) -> bytes:
    """A request body as a client sends it: what a push measures against a size limit is what goes out."""
    return jsoncodec.dumps(value)


def call_timeout(timeout: float, *, interactive: bool, label: str) -> float:
    """The timeout of one call: ``timeout``, cut to what is left of the web request's deadline for an
    interactive call. Raises DeadlineError when nothing is left: the call is not made."""
    left = deadline.remaining() if interactive else None
    if left is not None and left <= 0:
        raise DeadlineError(label, settings.DESTINATION_WEB_DEADLINE_SECONDS)
    return timeout if left is None else min(timeout, left)


def retry_after_seconds(headers: dict[str, str]) -> float | None:
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


def error_for_status(
    label: str, status: int, where: str, message: str, /, *, retry_after: float | None = None, **kwargs: Any
) -> DestinationError | None:
    """The error a refusal's HTTP status says, in the same words for every destination; None for a
    status whose meaning is the destination's own (a 400 and its body, a 2xx or 3xx)."""
    if status == 401:
        return AuthError(f"{label} refused the credentials on {where} ({message})", **kwargs)
    if status == 403:
        return ForbiddenError(f"{label} refused {where} for these credentials: {message}", **kwargs)
    if status == 404:
        return NotFoundError(f"{where}: {message}", **kwargs)
    if status == 409:
        return ConflictError(f"{where}: {message}", **kwargs)
    if status == 413:
        return PayloadTooLargeError(f"{where}: the request body is too large ({message})", **kwargs)
    if status == 429:
        return RateLimitedError(f"{where}: rate limited ({message})", retry_after=retry_after, **kwargs)
    if status >= 500:
        return ServerError(f"{label} answered {status} on {where}: {message}", retry_after=retry_after, **kwargs)
    return None


def _json(raw: requests.Response) -> Any:
    try:
        return raw.json()
    except ValueError:
        return {"msg": raw.text[:500]}


def _headers_only(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


class HttpClient:
    """Low-level calls of one destination account: pacing, retries, timeouts. No business logic."""

    label: ClassVar[str] = "The destination"  # names it in messages ("<label> is busy, ...")
    destination: ClassVar[str] = "destination"  # names it in metrics and exchange logs (the registry's kind)
    # Documented limits, requests per second, by "METHOD /path". PACE keeps the sends a little
    # further apart than the limit (see _pace).
    rates: ClassVar[dict[str, float]] = {}
    pace: ClassVar[float] = 0.95
    pacing_setting: ClassVar[str] = ""  # a setting that turns pacing off (projects with raised limits)
    bucket_prefix: ClassVar[str] = "destination"  # the rate buckets' names: <prefix>:<bucket id>:<endpoint>
    # Requests that may go back to back after a pause (the bucket's capacity). 1: every send waits its
    # interval, the strictest reading of a limit documented without a burst (a leaky bucket).
    burst: ClassVar[float] = 1.0

    def __init__(
        self,
        *,
        base_url: str,
        bucket_id: str | None = None,
        bucket_seed: str = "",
        timeout: float | None = None,
        max_retries: int | None = None,
        max_rate_wait: float | None = None,
        interactive: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``bucket_id``: whose rate budget the calls spend (a connected integration's own, see
        integrations.credentials.rate_bucket_id). Credentials being checked before any integration
        has them stand for their account by themselves: ``bucket_seed`` hashed (no secret in a Redis
        key name). ``interactive``: see the module's docstring."""
        self.base_url = base_url
        self.bucket_id = bucket_id or hashlib.sha256(bucket_seed.encode()).hexdigest()[:16]
        self.interactive = interactive
        if interactive:
            self.timeout = timeout or settings.DESTINATION_WEB_TIMEOUT_SECONDS
            self.max_retries, self.max_rate_wait = 0, 0.0
        else:
            self.timeout = timeout or settings.DESTINATION_TIMEOUT_SECONDS
            self.max_retries = settings.DESTINATION_MAX_RETRIES if max_retries is None else max_retries
            self.max_rate_wait = settings.DESTINATION_MAX_RATE_WAIT_SECONDS if max_rate_wait is None else max_rate_wait
        self.sleep = sleep
        # One session per thread: a destination may send a batch's requests from several threads
        # (a push in flight together), and requests documents no thread safety for a shared Session.
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.rate_limited_waits = 0  # 429s waited out over the client's life (tests read it)
        # A sliced sync run's: a wait for the budget longer than this raises BudgetWait (Destination.hand_back_waits).
        self.yield_after: float | None = None
        # A sync run's: its id on every exchange, and the run's exchange log (Destination.record_exchanges).
        self.run_id: int | None = None
        self.recorder: Callable[[Exchange], None] | None = None

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(
                {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "Flowsync/1.0"}
            )
            # The credentials go in each request's headers (auth_headers). An auth of the session's own stops
            # requests from looking for a ~/.netrc on every request (a stat per call: 3% of a busy worker's
            # time measured); trust_env stays on, so the proxy variables of a deployment still apply.
            session.auth = _headers_only
        return session

    # --- what a destination adds -----------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {}

    def renew_auth(self, headers: dict[str, str]) -> dict[str, str] | None:
        """New auth headers after a refusal of ``headers`` (an OAuth token that expired between our
        check and the call), or None when there is nothing to renew. Asked once per call."""
        return None

    def answer(self, method: str, path: str, response: Response) -> DestinationError | None:
        """None when ``response`` is a success, else the error it is."""
        if response.status < 400:
            return None
        return DestinationError(f"{self.label} answered {response.status} on {method} {path}", status=response.status)

    # --- the loop --------------------------------------------------------------------------------

    def _pace(self, endpoint: str) -> None:
        """Take this request's token from the account's budget at the moment it is sent.

        A token is taken only when one is free now; otherwise the worker sleeps until one should be
        and asks again. Reserving a future slot instead would time the reservation, not the send: a
        worker that woke late would send its request right before the next worker's, and two
        requests that close are a 429 for a limiter with no burst. ``pace`` keeps the sends 5%
        further apart than the limit, which absorbs the jitter between taking a token and the
        request arriving (about 10 ms at 5 requests per second).

        An interactive call takes its token the same way, at the moment it is sent, but asks at most
        twice: when the next token comes within one interval it waits for it and asks once more;
        further out, or when a worker took that token first, BusyError says when to try again.
        """
        bucket = self._bucket(endpoint)
        if bucket is None:
            return
        name, pace = bucket
        if not self.interactive:
            while (wait := ratebucket.reserve(name, rate=pace, capacity=self.burst, max_wait=0)) > 0:
                if self.yield_after is not None and wait > self.yield_after:
                    raise BudgetWait(wait)
                self.sleep(wait)
            return
        wait = ratebucket.reserve(name, rate=pace, capacity=self.burst, max_wait=0)
        if wait > 0:
            if wait > 1 / pace:
                raise BusyError(self.label, wait)
            self._check_deadline(wait)
            self.sleep(wait)
            if (wait := ratebucket.reserve(name, rate=pace, capacity=self.burst, max_wait=0)) > 0:
                raise BusyError(self.label, wait)

    def _bucket(self, endpoint: str) -> tuple[str, float] | None:
        """(The budget's bucket name, its paced rate) for ``endpoint``; None when it is not paced."""
        rate = self.rates.get(endpoint)
        if not rate or (self.pacing_setting and not getattr(settings, self.pacing_setting)):
            return None
        return f"{self.bucket_prefix}:{self.bucket_id}:{endpoint}", rate * self.pace

    def budget_wait(self, endpoint: str) -> float:
        """Seconds until ``endpoint``'s budget has room, taking nothing: a sync run that would wait long
        hands its worker slot back instead (integrations.engine)."""
        bucket = self._bucket(endpoint)
        return ratebucket.peek(bucket[0], rate=bucket[1], capacity=self.burst) if bucket else 0.0

    def _check_deadline(self, need: float = 0.0) -> float | None:
        """The seconds left of the web request's deadline (lib.deadline) for an interactive call, None
        when there is none. Raises DeadlineError when fewer than ``need`` are left: the call is not made."""
        left = deadline.remaining() if self.interactive else None
        if left is not None and left <= need:
            raise DeadlineError(self.label, settings.DESTINATION_WEB_DEADLINE_SECONDS)
        return left

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """How long to wait before try ``attempt + 1`` of one request (``attempt`` counts from 0)."""
        if retry_after is not None:
            return retry_after
        # Exponential with full jitter: 0.5 s, 1 s, 2 s, ... capped at 30 s.
        return random.uniform(0, min(30.0, 0.5 * 2 ** min(attempt, 6)))

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict | None = None,
        template: str = "",
        carries: Sequence[str] = (),
    ) -> Response:
        """One logical call: paced, retried, and raised as a DestinationError when it fails.
        ``data`` is a body already encoded as JSON (a push builds it from records encoded once).
        ``template``: the path as its endpoint is named (``/api/users/{email}``) when ``path`` holds a
        person's identifier: the rate budget is the endpoint's, and logs and error messages never hold it.
        ``carries``: the identifiers of the people the request is about, kept on its exchanges (a log row's
        page finds the request that carried it)."""
        named = template or path
        endpoint = f"{method} {named}"
        body = data if json is None else encode_body(json)
        attempt = 0  # failed tries (5xx, connection errors): bounded by max_retries
        rate_attempts = 0  # 429s of this request: they drive the backoff, and start over with each request
        rate_waited = 0.0
        renewed = False
        headers = self.auth_headers()
        tries, slept = 0, 0.0  # for the exchanges: every try, and the sleep before the next one
        carried = tuple(carries)
        while True:
            self._check_deadline()  # past it, not even a token is taken
            paced_at = time.monotonic()
            self._pace(endpoint)
            left = self._check_deadline()
            timeout = self.timeout if left is None else min(self.timeout, left)
            tries += 1
            started_at, sent_at = timezone.now(), time.monotonic()
            response = None
            try:
                raw = self.session.request(
                    method, self.base_url + path, data=body, params=params, headers=headers, timeout=timeout
                )
            except requests.RequestException as exc:
                if isinstance(exc, requests.Timeout) and timeout < self.timeout:
                    # Cut short by the request's deadline, not by the call's own timeout.
                    error: DestinationError = DeadlineError(self.label, settings.DESTINATION_WEB_DEADLINE_SECONDS)
                    self._report(method, named, None, error, started_at, sent_at, paced_at, tries, slept, body, carried)
                    raise error from None
                error = TransportError(
                    f"{endpoint}: {type(exc).__name__}" if template else f"{endpoint}: {type(exc).__name__}: {exc}"
                )
            else:
                response = Response(raw.status_code, _json(raw), dict(raw.headers))
                error = self.answer(method, named, response)
            self._report(method, named, response, error, started_at, sent_at, paced_at, tries, slept, body, carried)
            slept = 0.0
            if error is None:
                return response
            if isinstance(error, AuthError) and not renewed:
                renewed = True
                fresh = self.renew_auth(headers)
                if fresh is not None:
                    headers = fresh
                    continue
            if isinstance(error, RateLimitedError) and self.interactive:
                raise BusyError(self.label, error.retry_after, status=error.status, params=error.params)
            if isinstance(error, RateLimitedError):
                # Waiting for the budget is not a failed attempt; it is bounded in time instead.
                wait = self._backoff(rate_attempts, error.retry_after)
                rate_attempts += 1
                with self._count_lock:
                    self.rate_limited_waits += 1
                if self.yield_after is not None and wait > self.yield_after:
                    if (bucket := self._bucket(endpoint)) is not None:
                        # A long wait: the whole budget waits, every worker's requests with this one's, and
                        # runs see it coming (budget_wait) before their next batch. Short waits (a request a
                        # few ms early) leave the budget to its pacing.
                        ratebucket.block(bucket[0], rate=bucket[1], seconds=wait, capacity=self.burst)
                    raise BudgetWait(wait)  # refused, so not applied: the run sends it again after the wait
                if rate_waited + wait > self.max_rate_wait:
                    raise error
                rate_waited += wait
                logger.info("%s %s rate limited; waiting %.1fs", self.label, endpoint, wait)
                self.sleep(wait)
                slept = wait
                continue
            # An answer not understood is not sent again here: like a bulk answer of the wrong shape, its
            # records fail retryably and a later run sends them.
            if error.retryable and attempt < self.max_retries and not isinstance(error, UnexpectedAnswerError):
                # A 5xx may say when to come back (Retry-After); the max wait bounds it, so that one
                # answer cannot park a worker for an hour.
                wait = min(self._backoff(attempt, error.retry_after), self.max_rate_wait)
                attempt += 1
                logger.info("%s %s failed (%s); retry %d in %.1fs", self.label, endpoint, error.code, attempt, wait)
                self.sleep(wait)
                slept = wait
                continue
            raise error

    def _report(
        self,
        method: str,
        endpoint: str,
        response: Response | None,
        error: DestinationError | None,
        started_at: datetime,
        sent_at: float,
        paced_at: float,
        tries: int,
        slept: float,
        body: bytes | None,
        carries: tuple[str, ...],
    ) -> None:
        """Show one try to the observers (metrics) and to the run's exchange log. Never fails the call:
        what watches a request must not be why it fails."""
        exchange = Exchange(
            destination=self.destination,
            method=method,
            endpoint=endpoint,
            status=response.status if response is not None else None,
            error_code=error.code if error is not None else "",
            error=str(error) if error is not None else "",
            started_at=started_at,
            seconds=time.monotonic() - sent_at,
            attempt=tries,
            budget_wait=sent_at - paced_at,
            retry_wait=slept,
            request_body=body,
            response_body=response.body if response is not None else None,
            carries=carries,
            run_id=self.run_id,
        )
        for observer in (*_observers, self.recorder):
            if observer is None:
                continue
            try:
                observer(exchange)
            except Exception:  # see the docstring
                logger.exception("An exchange observer failed")
