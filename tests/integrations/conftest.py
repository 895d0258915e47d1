from __future__ import annotations

from tests.sync.conftest import capture, flow, integration  # noqa: F401 - the same connected, mapped workspace
