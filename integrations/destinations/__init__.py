"""One module per destination behind the interface in base.py."""

from __future__ import annotations

from integrations.destinations.base import Destination

KINDS = ("iterable", "customerio")


def destination_for(integration) -> Destination:
    """The client for a connected integration (its credentials decrypted)."""
    if integration.kind == "iterable":
        from integrations.destinations.iterable import IterableDestination

        return IterableDestination.for_integration(integration)
    raise NotImplementedError(f"no destination client for {integration.kind!r} yet")
