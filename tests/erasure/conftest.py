from __future__ import annotations

import pytest

from erasure.tasks import erasure_step_run
from tests.sync.conftest import (  # noqa: F401 - connected, mapped workspaces
    capture,
    customerio_integration,
    flow,
    integration,
)


@pytest.fixture
def queued(monkeypatch) -> list[tuple[int, float]]:
    """The destination steps queued, as (step id, countdown), for the test to run."""
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(
        erasure_step_run,
        "apply_async",
        lambda args=None, kwargs=None, countdown=0, **kw: calls.append((args[0], countdown)),
    )
    return calls
