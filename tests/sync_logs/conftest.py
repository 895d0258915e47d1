from __future__ import annotations

import pytest

from integrations import engine
from integrations.sync import sync_now
from sync_logs.models import SyncRun
from tests.sync.conftest import capture, flow, integration  # noqa: F401 - the same connected, mapped workspace


@pytest.fixture
def run_sync():
    """Press Sync Now and carry the run out in this process (the worker tests cover the broker)."""

    def run(connected) -> SyncRun:
        return engine.sync_run_execute(sync_now(integration=connected).pk)

    return run


@pytest.fixture
def logs_url():
    def url(path: str = "", kind: str = "iterable", slug: str = "acme") -> str:
        return f"/w/{slug}/integrations/{kind}/logs/{path}"

    return url
