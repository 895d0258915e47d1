"""Fixed-window rate limits kept in the Django cache (Redis in production).

A window is one minute. Counters live in the shared cache, so every web
process sees the same count; with the development LocMem cache each process
counts alone, which is fine for one machine.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

WINDOW_SECONDS = 60
_SAFE_IDENT = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


def hit(scope: str, ident: str, *, limit: int, cost: int = 1) -> Verdict:
    """Count ``cost`` against ``scope:ident``; ``limit`` per minute, 0 means no limit."""
    if limit <= 0:
        return Verdict(True)
    now = int(time.time())
    window = now // WINDOW_SECONDS
    if not _SAFE_IDENT.match(ident):  # caller-supplied junk never becomes a raw cache key
        ident = hashlib.sha256(ident.encode(errors="replace")).hexdigest()[:32]
    key = f"rl:{scope}:{ident}:{window}"
    cache.add(key, 0, timeout=WINDOW_SECONDS + 5)
    try:
        count = cache.incr(key, cost)
    except ValueError:  # evicted between add and incr: start the window again
        cache.set(key, cost, timeout=WINDOW_SECONDS + 5)
        count = cost
    if count > limit:
        return Verdict(False, retry_after=WINDOW_SECONDS - now % WINDOW_SECONDS)
    return Verdict(True)


def client_ip(request: HttpRequest) -> str:
    """The caller's address. Behind a trusted proxy, the address our proxy appended to X-Forwarded-For
    (the last hop: earlier hops are whatever the client chose to send)."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]
    return request.META.get("REMOTE_ADDR", "")[:64]
