"""Customer.io, the second destination: its Track and App API clients, its data model, its connect
path and its words."""

from integrations.destinations.customerio.client import AppClient, TrackClient, app_base_url, track_base_url
from integrations.destinations.customerio.destination import CustomerIODestination, batch_parts

__all__ = ["AppClient", "CustomerIODestination", "TrackClient", "app_base_url", "batch_parts", "track_base_url"]
