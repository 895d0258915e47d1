from tests.sync.conftest import flow, integration  # noqa: F401 - the same connected, mapped workspace
