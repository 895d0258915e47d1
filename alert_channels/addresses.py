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

import ipaddress
import socket
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress, filter_host
from urllib3.util import Timeout

CONNECT_TIMEOUT, READ_TIMEOUT = 3.05, 10.0
TOTAL_SECONDS = 15.0  # the whole exchange, however slowly the receiver drips its answer
ANSWER_BYTES = 2048  # what is read of an answer: enough for an error's name, never a flood

# Beside what the session refuses: IPv4-compatible (::a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d) and
# site-local (fec0::/10) IPv6 forms, which Python's is_private does not cover and some stacks route.
_ALSO_REFUSED = tuple(ipaddress.ip_network(n) for n in ("::/96", "::ffff:0:0:0/96", "fec0::/10"))


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
    local = host in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local and _loopback_allowed()):
        raise UnsafeAddress("Use an https:// URL: alerts are only sent encrypted.")
    try:
        filter_host(host, port, allow_loopback=_loopback_allowed())
        if any(_refused(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)):
            raise InvalidIPAddress(host)
    except InvalidIPAddress:
        raise UnsafeAddress(
            f"{host} is a private or internal address: alerts only go to hosts on the public internet."
        ) from None
    except (OSError, requests.ConnectionError):
        raise UnsafeAddress(f"{host} could not be found: check the URL.") from None


def _refused(address: str) -> bool:
    """Whether any address the host resolves to is one no alert may reach (the session checks the one it
    connects to; here every one the name has, so a name with one inward address is refused when saved)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and (ip.ipv4_mapped or ip.sixtofour or ip.teredo):
        inner = ip.ipv4_mapped or ip.sixtofour or ip.teredo[1]
        return not inner.is_global and not (_loopback_allowed() and inner.is_loopback)
    if _loopback_allowed() and ip.is_loopback:
        return False
    return not ip.is_global or ip.is_multicast or any(ip in net for net in _ALSO_REFUSED if ip.version == 6)


def post_capped(url: str, *, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST through the session and read at most ANSWER_BYTES of the answer, all within TOTAL_SECONDS:
    a receiver that answers byte by byte, or without end, holds a worker no longer than that."""
    started = time.monotonic()
    timeout = Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT, total=TOTAL_SECONDS)
    with session() as http, http.post(url, data=body, headers=headers, timeout=timeout, stream=True) as response:
        read = b""
        for chunk in response.iter_content(1):  # byte by byte: a chunk must not wait for a drip to fill it
            read += chunk
            if len(read) >= ANSWER_BYTES or time.monotonic() - started > TOTAL_SECONDS:
                break
        return response.status_code, read[:ANSWER_BYTES].decode("utf-8", "replace")


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
