"""Fault-injection points: the tests crash or freeze a real worker at an exact place in its work.

``FLOWSYNC_FAULT_INJECTION`` (settings.FAULT_INJECTION) is empty everywhere but in those tests. It holds
``<point>=<action>[@<pass>]`` items, comma-separated: the ``pass``-th time (default the first) this
process reaches ``fault_point(<point>)`` it carries out ``action`` on itself:

- ``kill``: SIGKILL, a crash that nothing gets to clean up after (no ``finally``, no rollback but the
  database's own when the connection drops);
- ``stop``: SIGSTOP, a process frozen as a paused VM or a stalled host is, until it gets SIGCONT.

A real signal to a real process, not a stand-in: what the test then sees is what production would.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from django.conf import settings

logger = logging.getLogger(__name__)
ACTIONS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}

_lock = threading.Lock()
_passes: dict[str, int] = {}


def _planned(point: str) -> tuple[str, int] | None:
    for item in filter(None, (part.strip() for part in settings.FAULT_INJECTION.split(","))):
        name, _, rest = item.partition("=")
        action, _, nth = rest.partition("@")
        if name.strip() == point and action.strip() in ACTIONS:
            return action.strip(), int(nth or 1)
    return None


def fault_point(point: str) -> None:
    """Do nothing, unless a test planned a fault at ``point`` for this pass."""
    if not settings.FAULT_INJECTION:
        return
    planned = _planned(point)
    if planned is None:
        return
    action, nth = planned
    with _lock:
        _passes[point] = _passes.get(point, 0) + 1
        if _passes[point] != nth:
            return
    # The test waits for this line to know the fault happened.
    logger.warning("fault injection: %s at %s (pass %d, pid %d)", action, point, nth, os.getpid())
    os.kill(os.getpid(), ACTIONS[action])
