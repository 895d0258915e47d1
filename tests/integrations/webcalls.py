"""Helpers for the tests of calls made inside a web request: Iterable broken in each way a page must
not wait on, and what arrived at the emulator."""

from __future__ import annotations

from integrations.destinations.iterable import ENDPOINT_RATES, PACE
from lib import ratebucket

GET_FIELDS = "/api/users/getFields"
FAULTS = {
    "5xx": {"status": 503, "times": 20},
    "429": {"status": 429, "times": 20, "headers": {"Retry-After": "7"}},
    "slow": {"kind": "timeout", "seconds": 1.5, "times": 20},  # answers after the web timeout
}
SAID = {
    "5xx": "could not be reached",
    "429": "Iterable is busy, try again in 7 s",
    "slow": "could not be reached",
    "no-room": "Iterable is busy, try again in",
}


def arrived(iterable, path: str) -> int:
    return iterable.stats()["arrived"].get(path, 0)


def fill_budget(bucket_id: str, endpoint: str) -> None:
    """Promise the project's budget 5 s ahead (as other pages' calls would), so a page finds no room."""
    name, rate = f"iterable:{bucket_id}:{endpoint}", ENDPOINT_RATES[endpoint] * PACE
    while ratebucket.reserve(name, rate=rate) < 5:
        pass


def break_iterable(iterable, failure: str, path: str, bucket_id: str) -> None:
    if failure == "no-room":
        fill_budget(bucket_id, f"GET {path}")  # the two calls a page makes first are GETs
    else:
        iterable.fault(path, **FAULTS[failure])
