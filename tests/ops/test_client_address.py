"""Who the client is behind our proxies (lib/ratelimit.client_ip), and the per-IP limits that count by it."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory

from flows.models import Contact
from lib.ratelimit import client_ip
from tests.factories import make_flow

NGINX = "172.18.0.5"  # REMOTE_ADDR of every request that came through the compose proxy


def _ip(remote: str, forwarded: str | None = None) -> str:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


@pytest.fixture
def proxies(settings):
    def configure(count: int = 0, networks: tuple[str, ...] = ()) -> None:
        settings.FLOWSYNC_TRUSTED_PROXY_COUNT = count
        settings.FLOWSYNC_TRUSTED_PROXIES = [ipaddress.ip_network(n) for n in networks]

    configure()
    return configure


@pytest.mark.parametrize(
    ("count", "remote", "forwarded", "client"),
    [
        # No proxy: the header is the client's own words, whatever it says.
        (0, "198.51.100.7", "1.2.3.4", "198.51.100.7"),
        # One proxy (compose's nginx appends the address it saw): the last entry, nothing left of it.
        (1, NGINX, "1.2.3.4, 198.51.100.7", "198.51.100.7"),
        (1, NGINX, "198.51.100.7", "198.51.100.7"),
        # A load balancer in front of nginx: two entries are ours.
        (2, NGINX, "1.2.3.4, 198.51.100.7, 10.0.0.9", "198.51.100.7"),
        # Fewer entries than proxies: it did not come through them all, REMOTE_ADDR is what we know.
        (2, NGINX, "198.51.100.7", NGINX),
        (1, "198.51.100.7", None, "198.51.100.7"),
        # What a proxy of ours wrote is not an address: stop at the last hop we can read.
        (1, NGINX, "1.2.3.4, not-an-ip", NGINX),
        (1, NGINX, "1.2.3.4, 198.51.100.7:5555", NGINX),
        # A unix-socket peer has no address; a proxy by position need not have one.
        (1, "", "198.51.100.7", "198.51.100.7"),
        (0, "", None, "unknown"),
        # A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d.
        (0, "::ffff:198.51.100.7", None, "198.51.100.7"),
    ],
)
def test_the_client_is_read_past_the_configured_number_of_proxies(proxies, count, remote, forwarded, client):
    proxies(count=count)
    assert _ip(remote, forwarded) == client


def test_trusted_networks_are_skipped_from_the_right_and_only_when_the_peer_is_one(proxies):
    proxies(networks=("10.0.0.0/8", "fd00::/8"))
    assert _ip("10.1.2.3", "1.2.3.4, 198.51.100.7, 10.9.9.9") == "198.51.100.7"
    assert _ip("fd00::1", "1.2.3.4, 198.51.100.7, fd00::2") == "198.51.100.7"
    # A client talking to gunicorn directly is not one of ours: its header counts for nothing.
    assert _ip("198.51.100.7", "1.2.3.4, 10.9.9.9") == "198.51.100.7"
    # Every hop ours (a health check from inside): the farthest one.
    assert _ip("10.1.2.3", "10.9.9.9") == "10.9.9.9"


def test_count_and_networks_combine(proxies):
    proxies(count=1, networks=("172.18.0.0/16", "10.0.0.0/8"))  # nginx, behind a load balancer in 10/8
    assert _ip(NGINX, "1.2.3.4, 198.51.100.7, 10.20.0.4") == "198.51.100.7"


def test_with_trusted_networks_a_peer_outside_them_is_the_client_whatever_the_count(proxies):
    """The count trusts the peer by position: a client that reached gunicorn without the proxy
    (not in the proxies' network) wrote the header itself."""
    proxies(count=1, networks=("172.18.0.0/16",))
    assert _ip("198.51.100.7", "1.2.3.4") == "198.51.100.7"
    assert _ip("2001:db8:1:2::1", "1.2.3.4") == "2001:db8:1:2::"
    assert _ip("", "1.2.3.4") == "unknown"  # a peer without an address is not inside them either
    assert _ip(NGINX, "1.2.3.4") == "1.2.3.4"


def test_an_ipv6_client_counts_by_its_slash_64(proxies):
    proxies(count=1)
    first = _ip(NGINX, "2001:db8:1:2::1")
    assert first == "2001:db8:1:2::"
    assert _ip(NGINX, "2001:db8:1:2:ffff:ffff:ffff:ffff") == first
    assert _ip(NGINX, "2001:db8:1:3::1") != first
    ipaddress.ip_address(first)  # still an address: django-axes and logs can store it


def test_behind_a_proxy_one_hop_is_trusted_by_default(tmp_path):
    """FLOWSYNC_HTTPS (or BEHIND_PROXY) means one proxy unless told otherwise; without it, none."""
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    code = "import django; django.setup(); from django.conf import settings as s; print(json.dumps(s.FLOWSYNC_TRUSTED_PROXY_COUNT))"
    clean = {k: v for k, v in os.environ.items() if k not in {"FLOWSYNC_HTTPS", "BEHIND_PROXY"}}
    counts = []
    for extra in ({}, {"FLOWSYNC_HTTPS": "1"}, {"FLOWSYNC_HTTPS": "1", "FLOWSYNC_TRUSTED_PROXY_COUNT": "2"}):
        out = subprocess.run(
            [sys.executable, "-c", "import json; " + code],
            env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **extra},
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
        counts.append(json.loads(out.stdout))
    assert counts == [0, 1, 2]


def test_a_malformed_trusted_network_stops_start_up():
    import os
    import subprocess
    import sys

    from django.conf import settings

    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "FLOWSYNC_TRUSTED_PROXIES": "10.0.0.1/8"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "FLOWSYNC_TRUSTED_PROXIES: 10.0.0.1/8 has host bits set" in out.stderr


# --- The limits that count by it ------------------------------------------------------------------


@pytest.fixture
def flow(workspace_a):
    return make_flow(workspace_a)


@pytest.mark.django_db
def test_a_rotating_header_does_not_escape_the_form_limit(client, flow, proxies, settings):
    """Through the proxy, the entries a client puts in front of its own address change nothing."""
    proxies(count=1)
    settings.RATELIMIT_FORM_PER_IP = 3
    statuses = [
        client.post(
            f"/f/{flow.public_id}/",
            f"email=u{i}%40example.com",
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR=NGINX,
            HTTP_X_FORWARDED_FOR=f"10.{i}.{i}.{i}, 198.51.100.7",
        ).status_code
        for i in range(5)
    ]
    assert statuses == [302, 302, 302, 429, 429]
    assert Contact.objects.count() == 3


@pytest.mark.django_db
def test_without_a_proxy_the_header_is_ignored_even_with_https_on(client, flow, proxies, settings):
    """TLS terminated somewhere else, no proxy of ours configured: a forged header buys nothing."""
    proxies(count=0)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.RATELIMIT_FORM_PER_IP = 2
    statuses = [
        client.post(
            f"/f/{flow.public_id}/",
            f"email=u{i}%40example.com",
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(3)
    ]
    assert statuses == [302, 302, 429]


@pytest.mark.django_db
def test_the_capture_api_limits_a_slash_64_as_one_client(client, proxies, settings):
    proxies(count=1)
    settings.RATELIMIT_API_PER_IP = 2

    def post(address: str) -> int:
        return client.post(
            "/api/v1/contacts", "{}", content_type="application/json", REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR=address
        ).status_code

    # Counted before the token is looked at: 401 while allowed, 429 once over.
    assert [post(f"2001:db8:7:7::{i:x}") for i in range(1, 4)] == [401, 401, 429]
    assert post("2001:db8:7:8::1") == 401  # the next /64 is someone else
