"""The registry of destinations: kind -> the package's Destination class.

A destination is one package under integrations/destinations/ (its client, data
model, connect forms, words and templates) and one line here. Nothing else in
Flowsync names a destination.

The classes are named by dotted path and imported on first use, as Django names
its backends: the packages import the models they store (credentials, tokens),
and the models, the admin and the templates ask the registry for a label, so
importing the packages here would make a circle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from integrations.destinations.base import Destination

DESTINATIONS = {
    "iterable": "integrations.destinations.iterable.IterableDestination",
    "customerio": "integrations.destinations.customerio.CustomerIODestination",
}


@cache
def _load(path: str) -> type[Destination]:
    return import_string(path)


class _Registry(Mapping):
    """kind -> Destination class, read-only; tests may add a kind with monkeypatch.setitem on DESTINATIONS
    and a class in place of a path."""

    def __getitem__(self, kind: str) -> type[Destination]:
        found = DESTINATIONS[kind]
        return _load(found) if isinstance(found, str) else found

    def __iter__(self) -> Iterator[str]:
        return iter(DESTINATIONS)

    def __len__(self) -> int:
        return len(DESTINATIONS)


REGISTRY: Mapping[str, type[Destination]] = _Registry()


def destination_class(kind: str) -> type[Destination]:
    """The destination of ``kind``; KeyError for a kind no package provides."""
    return REGISTRY[kind]


def destination_for(integration, *, interactive: bool = False) -> Destination:
    """The client for a connected integration (its credentials decrypted). ``interactive``: for a call
    made inside a web request (short timeout, no retries, no waiting for the rate budget)."""
    return destination_class(integration.kind).for_integration(integration, interactive=interactive)
