"""The registry of destinations: kind -> the package's Destination class.

A destination is one package under integrations/destinations/ (its client, data
model, connect forms, words and templates) and one line here. Nothing else in
Flowsync names a destination.
"""

from __future__ import annotations

from integrations.destinations.base import Destination
from integrations.destinations.customerio import CustomerIODestination
from integrations.destinations.iterable import IterableDestination

REGISTRY: dict[str, type[Destination]] = {
    IterableDestination.kind: IterableDestination,
    CustomerIODestination.kind: CustomerIODestination,
}
KINDS = tuple(REGISTRY)


def destination_class(kind: str) -> type[Destination]:
    """The destination of ``kind``; KeyError for a kind no package provides."""
    return REGISTRY[kind]


def destination_for(integration, *, interactive: bool = False) -> Destination:
    """The client for a connected integration (its credentials decrypted). ``interactive``: for a call
    made inside a web request (short timeout, no retries, no waiting for the rate budget)."""
    return destination_class(integration.kind).for_integration(integration, interactive=interactive)
