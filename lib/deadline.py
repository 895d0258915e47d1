"""One deadline for all the destination calls a web request makes (DESTINATION_WEB_DEADLINE_SECONDS).

Each interactive call has its own short timeout, but a page may make several (auto-detect tries two
data centers with a few probes each; the admin re-verifies many integrations): the deadline bounds
their sum. ``lib.middleware.destination_deadline`` opens one per request; an interactive client
checks it before each call and gives the call no longer than what is left. Outside a request (a
worker, a shell) there is none.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ends_at: ContextVar[float | None] = ContextVar("destination_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Calls made inside end within ``seconds`` from now (or sooner, under an outer deadline)."""
    outer = _ends_at.get()
    ends_at = time.monotonic() + seconds
    token = _ends_at.set(ends_at if outer is None else min(outer, ends_at))
    try:
        yield
    finally:
        _ends_at.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (may be negative), or None when there is none."""
    ends_at = _ends_at.get()
    return None if ends_at is None else ends_at - time.monotonic()
