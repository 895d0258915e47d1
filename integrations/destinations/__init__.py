"""One module per destination behind the interface in base.py."""

from __future__ import annotations

from integrations.destinations.base import Destination

KINDS = ("iterable", "customerio")


def destination_for(integration, *, interactive: bool = False) -> Destination:
    """The client for a connected integration (its credentials decrypted). ``interactive``: for a call
    made inside a web request (short timeout, no retries, no waiting for the rate budget)."""
    if integration.kind == "iterable":
        from integrations.destinations.iterable import IterableDestination

        return IterableDestination.for_integration(integration, interactive=interactive)
    raise NotImplementedError(f"no destination client for {integration.kind!r} yet")
