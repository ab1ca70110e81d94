"""The HTTP API in-process: both dispatchers behind a FastAPI TestClient, as an admin."""

import pytest
from fastapi.testclient import TestClient

from lakeray.api.app import build_app
from lakeray.api.backend import LocalBackend


@pytest.fixture
def backend(registry, settings):
    """Both dispatchers in this process, on the test registry's stores."""
    from lakeray.tracker import Tracker

    return LocalBackend({"registry": registry, "tracker": Tracker(settings)})


@pytest.fixture
def api(backend, registry, admin):
    """A TestClient of the whole app (64 KiB body cap) with an admin's token."""
    app = build_app(backend, max_body_bytes=64 * 1024)
    token = registry.call_as(admin, "create_token")["token_value"]
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {token}"
    return client
