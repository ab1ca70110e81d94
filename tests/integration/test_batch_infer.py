"""lakeray.jobs.batch_infer on the session platform: a registered model over a table as a real
Ray job (Ray Data actors load the version once each), and the same table through a serving
endpoint whose AI gateway records every batch; predictions, the result table's lineage and the
refusals of bad arguments."""

from __future__ import annotations

import pytest
from serving_support import API, LR, Api, unique

import lakeray

pytestmark = pytest.mark.ray
SOURCE = "main.default.batch_source"


@pytest.fixture(scope="module")
def source(platform, models):
    c = platform.client("ray")
    c.create_table(SOURCE, data=[{"id": i, "x": float(i), "note": f"row {i}"} for i in range(300)])
    return c


def test_a_registered_model_over_a_table_as_a_ray_job(platform, source):
    out = platform.cli("jobs", "submit", "batch_infer", "--follow", "--", "--source", SOURCE,
                       "--output", "main.default.batch_scored", "--model", LR, "--alias", "champion",
                       "--columns", "x", "--batch-size", "64", "--num-cpus", "0.5", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "wrote 300 scored rows into main.default.batch_scored" in out.stdout
    job_id = out.stdout.split("submitted job ")[1].split(":")[0]
    rows = sorted(source.read_table("main.default.batch_scored").to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(300)) and rows[7]["note"] == "row 7"
    assert all(r["prediction"] == pytest.approx(2 * r["x"]) for r in rows)  # champion -> version 1: y = 2x
    edges = source.get_lineage("table", "main.default.batch_scored")["edges"]
    assert {(e["source"]["type"], e["source"]["name"]) for e in edges} >= {
        ("table", SOURCE), ("model_version", f"{LR}/1")}
    assert all(e["job_id"] == job_id for e in edges)


def test_an_endpoint_over_a_table_through_its_gateway(platform, source):
    from lakeray.jobs.batch_infer import run

    api = Api(platform)
    name = unique("batch")
    api.create(name, {"entity_name": LR, "entity_version": "2"})
    api.wait(name, 1)
    api.put(f"{API}/{name}/ai-gateway", json={"usage_tracking_config": {"enabled": True}})
    platform.join()
    result = run(source, SOURCE, "main.default.batch_via_endpoint", endpoint=name, columns=["x"],
                 output_column="y", batch_size=100, connect={"url": platform.url, "token": platform.token})
    assert result["num_rows"] == 300
    rows = source.read_table("main.default.batch_via_endpoint").to_pylist()
    assert all(r["y"] == pytest.approx(3 * r["x"]) for r in rows)  # version 2: y = 3x
    import ray

    ray.get(ray.get_actor("gateway", namespace="lakeray").flush.remote(), timeout=60)
    usage = [r for r in source.read_table("system.serving.endpoint_usage").to_pylist() if r["endpoint_name"] == name]
    assert len(usage) == 3 and {r["status_code"] for r in usage} == {200}  # one call per batch of 100
    edges = source.get_lineage("table", "main.default.batch_via_endpoint")["edges"]
    assert ("serving_endpoint", name) in {(e["source"]["type"], e["source"]["name"]) for e in edges}
    # bad arguments are refused before anything is written
    for kwargs, message in [({"endpoint": name, "model": LR}, "exactly one of --endpoint or --model"),
                            ({"model": LR}, "exactly one of --version or --alias"),
                            ({"endpoint": name, "columns": ["nope"]}, "has no column 'nope'"),
                            ({"endpoint": name, "output_column": "x"}, "already a column")]:
        with pytest.raises(lakeray.InvalidArgument, match=message):
            run(source, SOURCE, "main.default.batch_never", **kwargs)
    with pytest.raises(lakeray.NotFound):
        source.get_table("main.default.batch_never")
    api.delete(f"{API}/{name}")
