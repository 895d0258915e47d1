"""Sliding-window rate limits kept in the Django cache (Redis in production).

Counts are kept per window (a minute unless the caller says otherwise), and a
hit is judged against the current window plus the previous one weighted by how
much of it still lies inside the last window's length. A plain fixed window
would let a burst straddling a boundary through at twice the limit; the
weighted estimate does not, at the price of one more cache read. ``cooldown``
is the other shape: one hit, then none until a fixed time has passed. Counters
live in the shared cache, so every web process sees the same count; with the
development LocMem cache each process counts alone, which is fine for one
machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

WINDOW_SECONDS = 60
COUNTER_SECONDS = 2 * WINDOW_SECONDS + 5  # a window's count is kept while the next one still weighs it
_clock = time.time  # a module attribute, so a test can move the clock for these counters only
_SAFE_IDENT = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    # The counter an allowed hit was counted in (for :func:`refund`); "" when nothing was counted.
    counted_in: str = field(default="", repr=False)


def hit(scope: str, ident: str, *, limit: int, cost: int = 1, window: int = WINDOW_SECONDS) -> Verdict:
    """Count ``cost`` against ``scope:ident``; ``limit`` per ``window`` seconds, 0 means no limit."""
    if limit <= 0:
        return Verdict(True)
    key, previous_key, into = _keys(scope, ident, window)
    count, previous = _add_and_read(key, previous_key, cost, window)
    estimate = count + previous * (1 - into / window)
    if estimate > limit:
        # A refused hit is not counted: a client that waits as told is then let in.
        with contextlib.suppress(ValueError):  # evicted meanwhile: nothing to take back
            cache.decr(key, cost)
        return Verdict(False, retry_after=_wait(count - cost, previous, into, limit - cost, window))
    return Verdict(True, counted_in=key)


def refund(verdict: Verdict, *, cost: int = 1) -> None:
    """Take back an allowed hit (in the window it was counted in, even if a new one began since).

    For limits on what went wrong (failed log-ins): every attempt is counted before it is judged,
    so that attempts at once cannot all slip under the limit, and one that went right is refunded.
    """
    if verdict.counted_in:
        with contextlib.suppress(ValueError):  # expired or evicted meanwhile: nothing to take back
            cache.decr(verdict.counted_in, cost)


def clear(scope: str, ident: str, *, window: int = WINDOW_SECONDS) -> None:
    """Forget every hit of ``scope:ident`` (a completed password reset ends its account's lockout)."""
    key, previous_key, _ = _keys(scope, ident, window)
    cache.delete_many([key, previous_key])


def cooldown(scope: str, ident: str, *, seconds: int) -> Verdict:
    """At most one hit per ``seconds`` for ``scope:ident`` (one reset mail per address, ...).

    ``cache.add`` is an atomic "set if absent" (SET NX on Redis), so of two requests at once
    exactly one gets through; the stored value is when the wait ends, to say how long is left.
    """
    if seconds <= 0:
        return Verdict(True)
    now = _clock()
    key = f"cd:{scope}:{_safe_ident(ident)}"
    if cache.add(key, now + seconds, timeout=seconds):
        return Verdict(True)
    ends = cache.get(key)
    if ends is not None and ends <= now:
        # Over by this clock, still held by the cache's (they agree but for a moment; a test moves
        # this one): the cool-down is over.
        cache.set(key, now + seconds, timeout=seconds)
        return Verdict(True)
    return Verdict(False, retry_after=max(1, math.ceil((ends or now + seconds) - now)))


def _safe_ident(ident: str) -> str:
    if _SAFE_IDENT.match(ident):
        return ident
    # Caller-supplied junk (or an email address) never becomes a raw cache key.
    return hashlib.sha256(ident.encode(errors="replace")).hexdigest()[:32]


def _keys(scope: str, ident: str, window: int) -> tuple[str, str, float]:
    """The counters of the current and the previous window, and how far into the current one we are."""
    number, into = divmod(_clock(), window)
    prefix = f"rl:{scope}:{_safe_ident(ident)}:"
    if window != WINDOW_SECONDS:  # a minute's counters keep their old names (no reset on deploy)
        prefix += f"{window}:"
    return f"{prefix}{int(number)}", f"{prefix}{int(number) - 1}", into


def _add_and_read(key: str, previous_key: str, cost: int, window: int) -> tuple[int, int]:
    """Add ``cost`` to the counter ``key`` and read the counter ``previous_key``.

    Every capture request passes here twice, so on Redis it is one pipelined round trip (INCRBY,
    EXPIRE, GET) instead of the three a cache API call each would cost. The counters stay plain
    integers under the cache's own key names, so ``cache.get``/``decr`` read and change them too.
    """
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        raw_key = backend.make_and_validate_key(key)
        pipe = _redis_client(backend, raw_key).pipeline(transaction=False)
        pipe.incrby(raw_key, cost)
        pipe.expire(raw_key, _counter_seconds(window))
        pipe.get(backend.make_and_validate_key(previous_key))
        count, _, previous = pipe.execute()
        return int(count), int(previous or 0)
    cache.add(key, 0, timeout=_counter_seconds(window))
    try:
        count = cache.incr(key, cost)
    except ValueError:  # evicted between add and incr: start the window again
        cache.set(key, cost, timeout=_counter_seconds(window))
        count = cost
    return count, cache.get(previous_key, 0)


def _redis_client(backend: RedisCache, raw_key: str):
    """The redis-py client for the counters, made once per backend instance (one per thread).

    Django's backend builds a new ``redis.Redis`` for every call (cheap pool, costly object: it
    fills ~170 response callbacks), which cost more CPU per capture request than the database
    insert. ``_cache`` is Django's client wrapper: the backend offers no pipeline of its own.
    """
    client = getattr(backend, "_flowsync_counter_client", None)
    if client is None:
        client = backend._flowsync_counter_client = backend._cache.get_client(raw_key, write=True)
    return client


def _counter_seconds(window: int) -> int:
    return 2 * window + 5  # a window's count is kept while the next one still weighs it


def _wait(current: int, previous: int, into: float, room: int, window: int) -> int:
    """Seconds until the weighted count drops to ``room`` (what a hit of this cost may find)."""
    if room < 0:  # the hit alone is over the limit: it never fits
        return window
    if current <= room and previous:
        # Later in this window, once enough of the previous one has slid out.
        at = window * (1 - (room - current) / previous)
        if at < window:
            return max(1, math.ceil(at - into))
    # In the next window, where this window's count is the one that slides out.
    then = 0.0 if current <= room else window * (1 - room / current)
    return max(1, math.ceil(window - into + then))


def client_ip(request: HttpRequest) -> str:
    """The address per-IP limits and lockouts count by: the client's, as our own proxies saw it.

    X-Forwarded-For is read from the right, and only as far as our trusted proxies wrote it
    (:func:`_client_address`); everything left of that is whatever the client chose to send.
    An IPv6 client is counted by its /64, the block one subscriber or server usually holds
    (it can pick any address inside it at will), written as that network's first address so
    that the answer is still an IP address (django-axes stores one). "unknown" when no hop
    is readable.
    """
    address = _client_address(request.META)
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.IPv6Address(int(address) & _IPV6_64_MASK))
    return str(address)


_IPV6_64_MASK = ((1 << 64) - 1) << 64


def _client_address(meta: dict) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Walk the hops nearest first: REMOTE_ADDR, then X-Forwarded-For from its right end.

    A hop is one of our proxies when it is among the first FLOWSYNC_TRUSTED_PROXY_COUNT (by
    position: each of them appended one entry) or inside FLOWSYNC_TRUSTED_PROXIES (by network);
    the first hop that is not is the client. When the header has fewer entries than the proxy
    count, the request did not come through them all: REMOTE_ADDR is all we know. A hop that is
    not an address stops the walk at the last readable one (a trusted proxy never writes one).

    SECURITY: with FLOWSYNC_TRUSTED_PROXIES set, the header is read only when REMOTE_ADDR is inside
    them: the proxy count alone trusts whoever is the peer, so a client that reached gunicorn past
    the proxy (a published port, a neighbour on the network) would pick its own address.
    """
    count = settings.FLOWSYNC_TRUSTED_PROXY_COUNT
    networks = settings.FLOWSYNC_TRUSTED_PROXIES
    forwarded = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    peer = _parse_address(meta.get("REMOTE_ADDR", ""))
    if len(forwarded) < count or (networks and not (peer and any(peer in network for network in networks))):
        return peer
    found = None
    for depth, raw in enumerate([meta.get("REMOTE_ADDR", ""), *reversed(forwarded)]):
        address = _parse_address(raw)
        if address is None:
            if depth < count:  # a proxy by position whose address we need not read (a unix socket)
                continue
            break
        found = address
        if depth >= count and not any(address in network for network in networks):
            break
    return found


def _parse_address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(raw.strip()[:64])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:  # a dual-stack socket's view of an IPv4 client
        return address.ipv4_mapped
    return address
