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


def test_artifact_writes_name_a_live_run_or_logged_model_of_the_experiment(registry, tracker, admin):
    """The path names a directory; a write must also name a run or logged model of the path's
    experiment, so no file lands where no run lists it and nothing cleans it up."""
    api = client_for(LocalBackend({"registry": registry, "tracker": tracker}), registry, admin)
    exp = api.post("/api/2.0/mlflow/experiments/create", json={"name": "owned"}).json()["experiment_id"]
    other = api.post("/api/2.0/mlflow/experiments/create", json={"name": "other"}).json()["experiment_id"]
    run = api.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    model = api.post("/api/2.0/mlflow/logged-models",
                     json={"experiment_id": exp, "name": "m"}).json()["model"]["info"]["model_id"]
    for owner, status in ((f"{exp}/{run}", 200), (f"{exp}/models/{model}", 200),
                          (f"{exp}/{'0' * 32}", 404), (f"{exp}/anything-at-all", 404),
                          (f"{exp}/models/m-{'0' * 32}", 404), (f"{other}/{run}", 404),
                          (f"{other}/models/{model}", 404)):
        resp = api.put(f"{ART}/experiments/{owner}/artifacts/f.txt", content=b"x")
        assert resp.status_code == status, (owner, resp.text)
        if status == 404:
            assert api.get(ART, params={"path": f"experiments/{owner}/artifacts"}).json()["files"] == []
    api.post("/api/2.0/mlflow/runs/delete", json={"run_id": run})
    resp = api.put(f"{ART}/experiments/{exp}/{run}/artifacts/late.txt", content=b"x")
    assert resp.status_code == 400 and "active" in resp.json()["message"]
    assert api.delete(f"{ART}/experiments/{exp}/{run}/artifacts/f.txt").status_code == 200  # clean-up stays possible


def test_deleting_artifacts_needs_manage(registry, tracker, admin):
    """As MLflow's auth layer has it: EDIT (which everyone holds on the Default experiment) lets a
    user add artifacts, MANAGE to delete them."""
    registry.call_as(admin, "create_principal", name="bob")
    backend = LocalBackend({"registry": registry, "tracker": tracker})
    api, bob = client_for(backend, registry, admin), client_for(backend, registry, admin, "bob")
    run = api.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    base = run["artifact_uri"][len("mlflow-artifacts:/"):]
    assert api.put(f"{ART}/{base}/report.txt", content=b"admin's").status_code == 200
    assert bob.put(f"{ART}/{base}/notes.txt", content=b"bob's").status_code == 200
    for target in (f"{base}/report.txt", base):
        resp = bob.delete(f"{ART}/{target}")
        assert resp.status_code == 403 and "MANAGE" in resp.json()["message"], resp.text
    assert api.get(f"{ART}/{base}/report.txt").content == b"admin's"
    assert api.delete(f"{ART}/{base}/report.txt").status_code == 200
    assert api.get(f"{ART}/{base}/report.txt").status_code == 404
