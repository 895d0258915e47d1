"""Which addresses an alert may be sent to, and the one HTTP session that sends them.

A webhook URL is typed by a workspace admin, and the worker that sends to it sits inside our
network: unchecked, it would post to internal hosts (the database, Redis, a cloud's metadata
service) for whoever asks. So only https URLs whose host resolves to a public address are
accepted, when saved and again at every delivery: the session (requests-hardened) resolves the
host, refuses a private, loopback, link-local or reserved address, and connects to the address it
checked (no second lookup a DNS answer could change in between), keeping the name for TLS.
Redirects are never followed (a public host could redirect inward).

``ALERT_WEBHOOKS_ALLOW_LOOPBACK`` (development and tests only; settings refuse it with DEBUG off)
lets 127.0.0.1 and plain http through, for a local receiver. Private ranges stay refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress, filter_host

CONNECT_TIMEOUT, READ_TIMEOUT = 3.05, 10.0


class UnsafeAddress(Exception):
    """The URL may not be sent to; the message says why, in plain words."""


def _loopback_allowed() -> bool:
    return bool(getattr(settings, "ALERT_WEBHOOKS_ALLOW_LOOPBACK", False))


def address_check(url: str) -> None:
    """Raise UnsafeAddress unless ``url`` is one an alert may go to now."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeAddress("This is not a valid URL.") from None
    host = parts.hostname or ""
    if not host:
        raise UnsafeAddress("This URL has no host.")
    if parts.username or parts.password:
        raise UnsafeAddress("Leave the user name and password out of the URL.")
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback_allowed()):
        raise UnsafeAddress("Use an https:// URL: alerts are only sent encrypted.")
    try:
        filter_host(host, port, allow_loopback=_loopback_allowed())
    except InvalidIPAddress:
        raise UnsafeAddress(
            f"{host} is a private or internal address: alerts only go to hosts on the public internet."
        ) from None
    except (OSError, requests.ConnectionError):
        raise UnsafeAddress(f"{host} could not be found: check the URL.") from None


def session() -> requests.Session:
    """The session every delivery goes through (the address checks above, no redirects, timeouts)."""
    chosen = Manager(
        Config(
            ip_filter_enable=True,
            ip_filter_allow_loopback_ips=_loopback_allowed(),
            never_redirect=True,
            default_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            user_agent_override="Flowsync-Alerts/1.0",
        )
    ).get_session()
    chosen.trust_env = False  # no proxy from the environment: it would resolve the host itself, unchecked
    return chosen


def is_refused_address(exc: Exception) -> bool:
    return isinstance(exc, InvalidIPAddress)
