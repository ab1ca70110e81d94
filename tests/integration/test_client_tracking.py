"""The Python client's tracking methods behave the same over HTTP and over Ray: experiments,
runs, nested runs, batches, metric history, search, dataset inputs and artifact uploads."""

from __future__ import annotations

import uuid

import pytest

import lakeray

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("via", ["http", "ray"])
def test_tracking_through_the_client(platform, via, tmp_path):
    c = platform.client(via)
    name = f"client-{via}-{uuid.uuid4().hex[:6]}"
    exp = c.set_experiment(name)
    assert c.set_experiment(name) == exp  # found, not created twice
    parent = c.create_run(exp, run_name="parent")
    child = c.create_run(exp, run_name="child", parent_run_id=parent["run_id"], tags={"kind": "trial"})
    for step in range(3):
        c.log_batch(child["run_id"], metrics={"loss": 1.0 / (step + 1)}, step=step)
    c.log_batch(child["run_id"], params={"lr": 0.001, "layers": 4}, tags={"phase": "train"})
    c.log_inputs(child["run_id"], [{"dataset": {"name": "main.default.docs", "digest": "abc", "source_type": "table",
                                                "source": "main.default.docs"}}])
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"layers": 4}')
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "sub" / "weights.bin").write_bytes(b"\x00" * 1000)
    assert c.log_artifact(child["run_id"], tmp_path / "model", "model") == ["model/config.json",
                                                                          "model/sub/weights.bin"]
    c.end_run(child["run_id"])

    run = c.get_run(child["run_id"])
    assert run["info"]["status"] == "FINISHED"
    data = run["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.001", "layers": "4"}
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["mlflow.parentRunId"] == parent["run_id"] and tags["kind"] == "trial"
    assert [p["value"] for p in c.get_metric_history(child["run_id"], "loss")] == [1.0, 0.5, 1 / 3]
    assert run["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "main.default.docs"
    found = c.search_runs([exp], filter="tags.kind = 'trial' and metrics.loss < 0.5")
    assert [r["info"]["run_id"] for r in found] == [child["run_id"]]

    # the uploaded files are real artifacts, readable through the artifact API
    import requests

    listing = requests.get(f"{platform.url}/api/2.0/mlflow/artifacts/list",
                           params={"run_id": child["run_id"], "path": "model/sub"},
                           headers={"Authorization": f"Bearer {platform.token}"}, timeout=30).json()
    assert listing["files"] == [{"path": "model/sub/weights.bin", "is_dir": False, "file_size": 1000}]

    with pytest.raises(lakeray.InvalidArgument):
        c.log_artifact(child["run_id"], tmp_path / "missing")
    with pytest.raises(lakeray.NotFound):
        c.get_experiment_by_name(f"no-such-{uuid.uuid4().hex}")
