"""Shared words for a connect step whose check failed for another reason than the credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from integrations.destinations.base import BusyError, ConnectError, DeadlineError, DestinationError


def unreachable(label: str, exc: DestinationError, doing: str = "to check the key") -> ConnectError:
    return ConnectError(
        f"{label} could not be reached {doing} ({exc.code}). Nothing was saved; try again in a minute.",
        code="unreachable",
    )


def check_failed(label: str, exc: DestinationError, doing: str = "to check the key") -> ConnectError:
    """Retryable failures (no connection, 5xx, no room in the rate budget) say nothing about the
    credentials: the admin should try again."""
    if isinstance(exc, BusyError | DeadlineError):
        return ConnectError(f"{exc.message} Nothing was saved.", code=exc.code)
    if exc.retryable:
        return unreachable(label, exc, doing)
    return ConnectError(f"{label} refused the check: {exc.message}", code=exc.code)


def checked(label: str, check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``, its failure worded for the admin (ConnectError)."""
    try:
        return check(*args)
    except DestinationError as exc:
        raise check_failed(label, exc) from None
