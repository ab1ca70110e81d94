"""Contract: the unmodified mlflow client (mlflow-skinny) against lakeray's tracking API."""

import math
import os

import pytest

pytestmark = pytest.mark.ray

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


@pytest.fixture
def tracking(platform, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", platform.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    mlflow.set_tracking_uri(platform.url)
    yield MlflowClient(platform.url)
    mlflow.set_tracking_uri(None)


def test_experiments(tracking):
    exp_id = tracking.create_experiment("contract-exp", tags={"team": "ml"})
    exp = tracking.get_experiment(exp_id)
    assert exp.name == "contract-exp" and exp.tags["team"] == "ml"
    assert exp.artifact_location.startswith("mlflow-artifacts:/")
    assert tracking.get_experiment_by_name("contract-exp").experiment_id == exp_id
    assert tracking.get_experiment_by_name("no-such-experiment") is None
    found = tracking.search_experiments(filter_string="name LIKE 'contract-%'")
    assert [e.name for e in found] == ["contract-exp"]
    tracking.set_experiment_tag(exp_id, "stage", "dev")
    tracking.rename_experiment(exp_id, "contract-exp-2")
    assert tracking.get_experiment(exp_id).name == "contract-exp-2"
    tracking.delete_experiment(exp_id)
    assert tracking.get_experiment(exp_id).lifecycle_stage == "deleted"
    tracking.restore_experiment(exp_id)
    with pytest.raises(MlflowException) as err:
        tracking.create_experiment("contract-exp-2")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException):
        tracking.create_experiment("elsewhere", artifact_location="file:///etc")


def test_runs_params_metrics_tags(tracking):
    mlflow.set_experiment("contract-runs")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"lr": 0.1, "layers": 4})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("weird", math.nan)
        mlflow.set_tag("owner", "contract")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.9)
    run = tracking.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "parent"
    assert run.data.params == {"lr": "0.1", "layers": "4"}
    assert run.data.metrics["loss"] == pytest.approx(0.2)
    assert math.isnan(run.data.metrics["weird"])
    assert run.data.tags["owner"] == "contract"
    history = tracking.get_metric_history(parent.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    kids = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                              output_format="list")
    assert [k.info.run_id for k in kids] == [child.info.run_id]
    with pytest.raises(MlflowException) as err:
        tracking.log_param(parent.info.run_id, "lr", 0.5)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_batch_and_search(tracking):
    exp_id = tracking.create_experiment("contract-search")
    ids = []
    for i in range(6):
        run = tracking.create_run(exp_id, run_name=f"r{i}")
        tracking.log_batch(run.info.run_id, metrics=[Metric("score", i * 1.5, 0, s) for s in range(3)],
                           params=[Param("model", "a" if i % 2 else "b")], tags=[RunTag("i", str(i))])
        tracking.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    big = tracking.create_run(exp_id)
    tracking.log_batch(big.info.run_id, metrics=[Metric(f"m{i}", float(i), 0, 0) for i in range(1000)])
    assert len(tracking.get_run(big.info.run_id).data.metrics) == 1000
    hits = tracking.search_runs([exp_id], "metrics.score > 4 AND params.model = 'a'",
                                order_by=["metrics.score DESC"])
    assert [r.info.run_name for r in hits] == ["r5", "r3"]
    page = tracking.search_runs([exp_id], "attributes.status = 'FINISHED'", max_results=4)
    assert len(page) == 4 and page.token
    rest = tracking.search_runs([exp_id], "attributes.status = 'FINISHED'", max_results=4, page_token=page.token)
    assert len(rest) == 2
    with pytest.raises(MlflowException) as err:
        tracking.search_runs([exp_id], "metrics.score ~ 3")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    tracking.delete_run(ids[0])
    assert len(tracking.search_runs([exp_id], "")) == 6


def test_artifacts_round_trip(tracking, tmp_path):
    mlflow.set_experiment("contract-artifacts")
    (tmp_path / "plot.txt").write_text("a plot")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.json").write_text('{"a": 1}')
    (tmp_path / "dir" / "sub").mkdir()
    (tmp_path / "dir" / "sub" / "b.bin").write_bytes(os.urandom(3000))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "plot.txt"))
        mlflow.log_artifacts(str(tmp_path / "dir"), artifact_path="bundle")
        mlflow.log_text("hello", "notes/hello.txt")
    files = {f.path for f in tracking.list_artifacts(run.info.run_id)}
    assert files == {"plot.txt", "bundle", "notes"}
    nested = {f.path for f in tracking.list_artifacts(run.info.run_id, "bundle")}
    assert nested == {"bundle/a.json", "bundle/sub"}
    out = tracking.download_artifacts(run.info.run_id, "bundle", str(tmp_path / "out"))
    assert (tmp_path / "out" / "bundle" / "sub" / "b.bin").read_bytes() == \
        (tmp_path / "dir" / "sub" / "b.bin").read_bytes()
    assert os.path.isdir(out)
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/hello.txt") == "hello"


def test_bad_artifact_paths_are_400(platform, tracking):
    import requests

    run = tracking.create_run(tracking.create_experiment("contract-paths"))
    base = f"{platform.url}/api/2.0/mlflow-artifacts/artifacts/"
    headers = {"Authorization": f"Bearer {platform.token}"}
    location = run.info.artifact_uri.split("mlflow-artifacts:/", 1)[1].lstrip("/")
    for bad in ("../../etc/passwd", "%2e%2e/%2e%2e/x", "%252e%252e%252fx", "..\\..\\x", "a%00b", "a;b", "x%23/../../y"):
        resp = requests.put(base + location + "/" + bad, data=b"x", headers=headers, timeout=30)
        assert 400 <= resp.status_code < 500, (bad, resp.status_code, resp.text)
    assert requests.get(base + "experiments", headers={}, timeout=30).status_code == 401


def test_other_users_cannot_write_into_my_experiment(platform, tracking):
    admin = platform.client("http")
    admin.create_principal("mlflow_reader")
    reader_token = admin.create_token(principal="mlflow_reader")["token_value"]
    exp_id = tracking.create_experiment("contract-private")
    run = tracking.create_run(exp_id)
    os.environ["MLFLOW_TRACKING_TOKEN"] = reader_token
    try:
        other = MlflowClient(platform.url)
        assert other.get_run(run.info.run_id).info.run_id == run.info.run_id  # reading is allowed
        with pytest.raises(MlflowException) as err:
            other.log_metric(run.info.run_id, "x", 1.0)
        assert err.value.error_code == "PERMISSION_DENIED"
    finally:
        os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token


def test_eight_clients_log_batch_concurrently(tracking):
    """8 mlflow clients x 1,000 log_batch calls at once: none fails (no "database is locked"),
    every metric is there once."""
    import threading

    clients, calls = 8, 1000
    exp_id = tracking.create_experiment("contract-concurrent")
    runs = [tracking.create_run(exp_id).info.run_id for _ in range(clients)]
    errors: list[BaseException] = []

    def logger(n: int) -> None:
        c = MlflowClient(tracking.tracking_uri)
        try:
            for step in range(calls):
                c.log_batch(runs[n], metrics=[Metric("loss", 1.0 / (step + 1), 1000 + step, step),
                                              Metric("acc", step / calls, 1000 + step, step)])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=logger, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[:3]
    for run_id in runs:
        history = tracking.get_metric_history(run_id, "acc")
        assert sorted(m.step for m in history) == list(range(calls))
