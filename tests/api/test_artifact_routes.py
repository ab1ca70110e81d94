"""The proxied artifact routes in-process: bodies stream to disk in the API process (no actor
hop), permission checks come first, the audit record still lands, and with a store-less backend
the bytes go through the tracker operation instead."""

import os

import pytest
from fastapi.testclient import TestClient

from lakeray.api.app import build_app
from lakeray.api.backend import LocalBackend

ART = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def tracker(settings, registry):
    from lakeray.tracker import Tracker

    return Tracker(settings)


class StorelessBackend(LocalBackend):
    """Like the actor backend: no artifact store in this process."""

    def artifact_store(self):
        return None


def client_for(backend, registry, admin, name="admin") -> TestClient:
    caller = registry.principals.caller(name) if name != "admin" else admin
    token = registry.call_as(admin, "create_token", principal=None if name == "admin" else name)["token_value"]
    assert caller
    client = TestClient(build_app(backend, max_body_bytes=64 * 1024, max_artifact_bytes=64 * 1024 * 1024))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.mark.parametrize("backend_cls", [LocalBackend, StorelessBackend])
def test_upload_download_round_trip(registry, tracker, admin, backend_cls):
    api = client_for(backend_cls({"registry": registry, "tracker": tracker}), registry, admin)
    exp = api.post("/api/2.0/mlflow/experiments/create", json={"name": "routes"}).json()["experiment_id"]
    run = api.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]
    base = run["artifact_uri"][len("mlflow-artifacts:/"):]
    blob = os.urandom(20 * 1024 * 1024 + 3)  # bigger than the spool's memory part and the body cap
    assert api.put(f"{ART}/{base}/big.bin", content=blob).status_code == 200
    got = api.get(f"{ART}/{base}/big.bin")
    assert got.status_code == 200 and got.content == blob
    listed = api.get(ART, params={"path": base}).json()["files"]
    assert listed == [{"path": "big.bin", "is_dir": False, "file_size": len(blob)}]
    events = registry.call_as(admin, "query_audit", action="upload_artifact")["events"]
    assert events[0]["detail"]["bytes"] == len(blob)
    assert api.get(f"{ART}/{base}/missing.bin").status_code == 404
    assert api.get(f"{ART}/{base}/../../x").status_code in (400, 404)


def test_refused_upload_reads_nothing_and_writes_nothing(registry, tracker, admin):
    registry.call_as(admin, "create_principal", name="eve")
    backend = LocalBackend({"registry": registry, "tracker": tracker})
    api = client_for(backend, registry, admin)
    exp = api.post("/api/2.0/mlflow/experiments/create", json={"name": "private"}).json()["experiment_id"]
    run = api.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]
    base = run["artifact_uri"][len("mlflow-artifacts:/"):]
    eve = client_for(backend, registry, admin, "eve")
    resp = eve.put(f"{ART}/{base}/x.bin", content=b"x" * 1000)
    assert resp.status_code == 403
    assert api.get(ART, params={"path": base}).json()["files"] == []
    assert eve.get(f"{ART}/{base}/x.bin").status_code == 404  # reading is open, the file is absent
