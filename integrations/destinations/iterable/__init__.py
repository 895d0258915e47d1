"""Iterable, the first destination: its client, its data model, its connect paths and its words."""

from integrations.destinations.http import encode_body
from integrations.destinations.iterable.client import (
    ENDPOINT_RATES,
    MAX_BULK_BYTES,
    PACE,
    IterableClient,
    base_url,
    map_error,
    split_by_size,
)
from integrations.destinations.iterable.destination import IterableDestination

__all__ = [
    "ENDPOINT_RATES",
    "MAX_BULK_BYTES",
    "PACE",
    "IterableClient",
    "IterableDestination",
    "base_url",
    "encode_body",
    "map_error",
    "split_by_size",
]
