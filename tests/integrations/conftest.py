from __future__ import annotations

import pytest
import requests

from tests.sync.conftest import capture, flow, integration  # noqa: F401 - the same connected, mapped workspace


@pytest.fixture
def api(iterable):
    """Call the Iterable emulator directly (its routes, as a client of Iterable would), a server-side key by default."""

    def call(method, path, *, key=None, json=None, params=None, region="us"):
        headers = {"Api-Key": key or iterable.keys.server_side}
        return requests.request(
            method, f"{iterable.server.url}/{region}{path}", headers=headers, json=json, params=params, timeout=10
        )

    return call
