"""A small in-process cache with expiry, for hot read paths that can be a few
seconds stale (the capture API's token and flow lookups)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, maxsize: int = 10_000) -> None:
        self._data: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def get_or_set(self, key: Hashable, ttl: float, factory: Callable[[], V | None]) -> V | None:
        """The cached value, or ``factory()``. None results are not cached (a miss stays cheap to fix)."""
        if ttl > 0:
            now = time.monotonic()
            with self._lock:
                hit = self._data.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = factory()
        if ttl > 0 and value is not None:
            with self._lock:
                if len(self._data) >= self._maxsize:
                    self._data.clear()  # crude, but bounded; entries are cheap to rebuild
                self._data[key] = (time.monotonic() + ttl, value)
        return value

    def get_many_or_set(
        self, keys: list[Hashable], ttl: float, factory: Callable[[list[Hashable]], dict[Hashable, V]]
    ) -> dict[Hashable, V]:
        """The cached values of ``keys``; the misses come from one ``factory(misses)`` call, which
        returns what it found by key (what it does not find stays a miss, as in get_or_set)."""
        found: dict[Hashable, V] = {}
        if ttl > 0:
            now = time.monotonic()
            with self._lock:
                for key in keys:
                    hit = self._data.get(key)
                    if hit is not None and hit[0] > now:
                        found[key] = hit[1]
        misses = [key for key in keys if key not in found]
        if misses:
            loaded = factory(misses)
            found.update(loaded)
            if ttl > 0 and loaded:
                with self._lock:
                    if len(self._data) + len(loaded) > self._maxsize:
                        self._data.clear()
                    expires = time.monotonic() + ttl
                    self._data.update((key, (expires, value)) for key, value in loaded.items())
        return found

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
