"""The tracking service without Ray or HTTP: experiments, runs, metrics, params, tags,
inputs and logged models; MLflow's limits; permissions; audit; one-transaction batches
and concurrent writers (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import event, func, select

from lakeray.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from lakeray.storage.models import audit_log
from lakeray.tracking import tables
from lakeray.tracking.service import TrackingService
from lakeray.tracking.validation import FLOAT_MAX

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def svc(registry, tmp_path):
    return TrackingService(registry.db, registry.audit, tmp_path / "artifacts")


@pytest.fixture
def admin(registry):
    return registry.principals.caller("admin")


@pytest.fixture
def users(registry, admin):
    """bob and carol (plain users) and the group 'team' holding carol."""
    registry.call_as(admin, "create_principal", name="bob")
    registry.call_as(admin, "create_principal", name="carol")
    registry.call_as(admin, "create_principal", name="team", kind="group")
    registry.call_as(admin, "add_group_member", group="team", member="carol")
    return registry.principals.caller("bob"), registry.principals.caller("carol")


def new_run(svc, caller, exp="0", **kw) -> str:
    return svc.create_run(caller, experiment_id=exp, **kw)["run"]["info"]["run_id"]


def audit_count(registry, action: str) -> int:
    with registry.db.read() as conn:
        return conn.execute(select(func.count()).select_from(audit_log).where(audit_log.c.action == action)).scalar()


# -- experiments -------------------------------------------------------------------------------------
def test_experiment_lifecycle(svc, admin, tmp_path):
    exp_id = svc.create_experiment(admin, "churn", tags=[{"key": "team", "value": "ml"}])["experiment_id"]
    assert isinstance(exp_id, str) and exp_id.isdigit() and exp_id != "0"
    exp = svc.get_experiment(admin, exp_id)["experiment"]
    # shown as the proxied URI clients use; inside, the directory under the artifact root
    assert exp == {"experiment_id": exp_id, "name": "churn",
                   "artifact_location": f"mlflow-artifacts:/experiments/{exp_id}",
                   "lifecycle_stage": "active", "last_update_time": exp["last_update_time"],
                   "creation_time": exp["creation_time"], "tags": [{"key": "team", "value": "ml"}]}
    root = (tmp_path / "artifacts").resolve().as_uri()
    with svc.db.read() as conn:
        stored = conn.execute(select(tables.experiments.c.artifact_location)
                              .where(tables.experiments.c.experiment_id == int(exp_id))).scalar_one()
    assert stored == f"{root}/experiments/{exp_id}"
    assert svc.get_experiment_by_name(admin, "churn")["experiment"]["experiment_id"] == exp_id
    with pytest.raises(AlreadyExists):
        svc.create_experiment(admin, "churn")
    with pytest.raises(InvalidArgument, match="artifact_location cannot be chosen"):
        svc.create_experiment(admin, "elsewhere", artifact_location="s3://bucket/x")
    with pytest.raises(InvalidArgument, match="artifact_location cannot be chosen"):
        svc.create_experiment(admin, "elsewhere", artifact_location="file:///etc")
    assert svc.create_experiment(admin, "fine", artifact_location="")["experiment_id"]

    svc.update_experiment(admin, exp_id, "churn-v2")
    assert svc.get_experiment(admin, exp_id)["experiment"]["name"] == "churn-v2"
    with pytest.raises(NotFound, match="Could not find experiment with name 'churn'"):
        svc.get_experiment_by_name(admin, "churn")
    with pytest.raises(AlreadyExists):
        svc.update_experiment(admin, exp_id, "fine")

    svc.set_experiment_tag(admin, exp_id, "team", "platform")
    svc.set_experiment_tag(admin, exp_id, "note", "x" * 20000)
    tags = {t["key"]: t["value"] for t in svc.get_experiment(admin, exp_id)["experiment"]["tags"]}
    assert tags["team"] == "platform" and len(tags["note"]) == 20000
    svc.delete_experiment_tag(admin, exp_id, "note")
    with pytest.raises(NotFound, match="No tag with name: note"):
        svc.delete_experiment_tag(admin, exp_id, "note")

    run = new_run(svc, admin, exp_id)
    svc.delete_experiment(admin, exp_id)
    assert svc.get_experiment(admin, exp_id)["experiment"]["lifecycle_stage"] == "deleted"
    assert svc.get_run(admin, run)["run"]["info"]["lifecycle_stage"] == "deleted"
    with pytest.raises(NotFound):
        svc.delete_experiment(admin, exp_id)  # already deleted
    with pytest.raises(InvalidArgument, match="must be in the 'active' state"):
        svc.create_run(admin, experiment_id=exp_id)
    with pytest.raises(InvalidArgument, match="must be in the 'active' state"):
        svc.set_experiment_tag(admin, exp_id, "a", "b")
    with pytest.raises(InvalidArgument, match="non-active"):
        svc.update_experiment(admin, exp_id, "renamed")
    with pytest.raises(AlreadyExists, match="deleted state"):
        svc.create_experiment(admin, "churn-v2")
    svc.restore_experiment(admin, exp_id)
    assert svc.get_run(admin, run)["run"]["info"]["lifecycle_stage"] == "active"
    with pytest.raises(NotFound):
        svc.restore_experiment(admin, exp_id)  # not deleted


def test_default_experiment_and_bad_ids(svc, admin):
    default = svc.get_experiment(admin, "0")["experiment"]
    assert default["name"] == "Default" and default["experiment_id"] == "0"
    assert default["artifact_location"].endswith("/experiments/0")
    assert svc.get_experiment_by_name(admin, "Default")["experiment"]["experiment_id"] == "0"
    with pytest.raises(InvalidArgument, match="default experiment"):
        svc.delete_experiment(admin, "0")
    with pytest.raises(AlreadyExists):
        svc.create_experiment(admin, "Default")
    for bad in ("abc", "-1", "1.5", "", None, "1; DROP TABLE runs"):
        with pytest.raises(InvalidArgument, match="experiment"):
            svc.get_experiment(admin, bad)
    for missing in ("424242", "99999999999999999999"[:19]):
        with pytest.raises(NotFound, match="No Experiment with id="):
            svc.get_experiment(admin, missing)
    for bad_name in ("", None, "x" * 501, "nul\x00"):
        with pytest.raises(InvalidArgument):
            svc.create_experiment(admin, bad_name)


def test_bootstrap_creates_the_default_experiment_once(registry, admin, tmp_path):
    for _ in range(2):
        TrackingService(registry.db, registry.audit, tmp_path / "a").bootstrap()
    with registry.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(tables.experiments)).scalar() == 1
    assert audit_count(registry, "create_experiment") == 1


def test_default_experiment_is_created_by_the_first_write(registry, admin, tmp_path):
    # A fresh service whose first call is a write: the Default experiment is created in that
    # very transaction (so an idempotency claim covers both).
    svc = TrackingService(registry.db, registry.audit, tmp_path / "a")
    run = svc.create_run(admin)["run"]
    assert run["info"]["experiment_id"] == "0"
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/experiments/0/{run['info']['run_id']}/artifacts"
    assert svc.run_artifact_location(run["info"]["run_id"]) == \
        (tmp_path / "a").resolve().as_uri() + f"/experiments/0/{run['info']['run_id']}/artifacts"


# -- runs ----------------------------------------------------------------------------------------------
def test_run_lifecycle(svc, admin):
    exp = svc.create_experiment(admin, "runs")["experiment_id"]
    run = svc.create_run(admin, experiment_id=exp, user_id="someone-else", start_time=1234,
                         tags=[{"key": "mlflow.source.type", "value": "LOCAL"}])["run"]
    info = run["info"]
    assert info["status"] == "RUNNING" and info["user_id"] == "admin" and info["start_time"] == 1234
    assert "end_time" not in info
    assert info["run_id"] == info["run_uuid"] and re.fullmatch(r"[0-9a-f]{32}", info["run_id"])
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", info["run_name"])
    exp_loc = svc.get_experiment(admin, exp)["experiment"]["artifact_location"]
    assert info["artifact_uri"] == f"{exp_loc}/{info['run_id']}/artifacts"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags == {"mlflow.runName": info["run_name"], "mlflow.source.type": "LOCAL"}
    assert run["inputs"] == {"dataset_inputs": [], "model_inputs": []} and run["outputs"] == {"model_outputs": []}

    rid = info["run_id"]
    named = svc.create_run(admin, experiment_id=exp, run_name="mine")["run"]
    assert named["info"]["run_name"] == "mine"
    assert svc.create_run(admin, experiment_id=exp, tags=[{"key": "mlflow.runName", "value": "by-tag"}])[
        "run"]["info"]["run_name"] == "by-tag"
    with pytest.raises(InvalidArgument, match="different values"):
        svc.create_run(admin, experiment_id=exp, run_name="a", tags=[{"key": "mlflow.runName", "value": "b"}])
    with pytest.raises(InvalidArgument, match="250"):
        svc.create_run(admin, experiment_id=exp, run_name="n" * 251)
    with pytest.raises(InvalidArgument, match="250"):
        svc.create_run(admin, experiment_id=exp, tags=[{"key": "mlflow.runName", "value": "n" * 251}])

    child = svc.create_run(admin, experiment_id=exp, tags=[{"key": "mlflow.parentRunId", "value": rid}])["run"]
    found = svc.search_runs(admin, experiment_ids=[exp], filter=f"tags.mlflow.parentRunId = '{rid}'")["runs"]
    assert [r["info"]["run_id"] for r in found] == [child["info"]["run_id"]]

    updated = svc.update_run(admin, run_id=rid, status="FINISHED", end_time=5678, run_name="renamed")["run_info"]
    assert (updated["status"], updated["end_time"], updated["run_name"]) == ("FINISHED", 5678, "renamed")
    got = svc.get_run(admin, run_uuid=rid)["run"]
    assert {t["key"]: t["value"] for t in got["data"]["tags"]}["mlflow.runName"] == "renamed"
    svc.set_tag(admin, run_id=rid, key="mlflow.runName", value="by-set-tag")
    assert svc.get_run(admin, rid)["run"]["info"]["run_name"] == "by-set-tag"
    with pytest.raises(InvalidArgument, match="250"):
        svc.set_tag(admin, run_id=rid, key="mlflow.runName", value="n" * 251)
    for status in ("SCHEDULED", "FAILED", "KILLED", "RUNNING", 3):
        svc.update_run(admin, run_id=rid, status=status)
    assert svc.get_run(admin, rid)["run"]["info"]["status"] == "FINISHED"
    with pytest.raises(InvalidArgument, match="Invalid run status"):
        svc.update_run(admin, run_id=rid, status="DONE")
    with pytest.raises(InvalidArgument, match="end_time"):
        svc.update_run(admin, run_id=rid, end_time=-1)

    # a finished run still takes metrics, as in MLflow; a deleted one takes nothing
    svc.log_metric(admin, run_id=rid, key="late", value=1.0, timestamp=1)
    svc.delete_run(admin, rid)
    assert svc.get_run(admin, rid)["run"]["info"]["lifecycle_stage"] == "deleted"
    for write in (lambda: svc.log_metric(admin, run_id=rid, key="m", value=1.0, timestamp=1),
                  lambda: svc.log_param(admin, run_id=rid, key="p", value="1"),
                  lambda: svc.set_tag(admin, run_id=rid, key="t", value="1"),
                  lambda: svc.log_batch(admin, run_id=rid, metrics=[{"key": "m", "value": 1, "timestamp": 1}]),
                  lambda: svc.update_run(admin, run_id=rid, status="FINISHED")):
        with pytest.raises(InvalidArgument, match=f"The run {rid} must be in the 'active' state"):
            write()
    svc.restore_run(admin, rid)
    svc.log_param(admin, run_id=rid, key="p", value="1")

    with pytest.raises(NotFound, match="Run with id=0123456789abcdef0123456789abcdef not found"):
        svc.get_run(admin, "0123456789abcdef0123456789abcdef")
    for bad in ("", None, "../etc", "a b", "x" * 300):
        with pytest.raises(InvalidArgument):
            svc.get_run(admin, bad)


def test_tags(svc, admin):
    rid = new_run(svc, admin)
    svc.set_tag(admin, run_id=rid, key="k", value="v1")
    svc.set_tag(admin, run_id=rid, key="k", value="v2")
    assert {"key": "k", "value": "v2"} in svc.get_run(admin, rid)["run"]["data"]["tags"]
    svc.delete_tag(admin, rid, "k")
    assert "k" not in {t["key"] for t in svc.get_run(admin, rid)["run"]["data"]["tags"]}
    with pytest.raises(NotFound, match="No tag with name: k"):
        svc.delete_tag(admin, rid, "k")
    svc.set_tag(admin, run_id=rid, key="long", value="x" * 8000)
    with pytest.raises(InvalidArgument, match="8000"):
        svc.set_tag(admin, run_id=rid, key="long", value="x" * 8001)


# -- metrics and params -----------------------------------------------------------------------------
def test_nan_and_infinities_are_stored_as_mlflow_does(svc, admin, registry):
    rid = new_run(svc, admin)
    svc.log_batch(admin, run_id=rid, metrics=[
        {"key": "nan", "value": NAN, "timestamp": 1, "step": 0},
        {"key": "pinf", "value": INF, "timestamp": 1, "step": 0},
        {"key": "ninf", "value": -INF, "timestamp": 1, "step": 0},
        {"key": "json", "value": "NaN", "timestamp": 2, "step": 1},
        {"key": "jinf", "value": "-Infinity", "timestamp": 2, "step": 1}])
    latest = {m["key"]: m["value"] for m in svc.get_run(admin, rid)["run"]["data"]["metrics"]}
    # NaN comes back spelled as protobuf's JSON spells it (MLflow's server sends "NaN")
    assert latest["nan"] == latest["json"] == "NaN"
    assert latest["pinf"] == FLOAT_MAX == 1.7976931348623157e308 and latest["ninf"] == latest["jinf"] == -FLOAT_MAX
    history = svc.get_metric_history(admin, run_id=rid, metric_key="nan")["metrics"]
    assert len(history) == 1 and history[0]["value"] == "NaN"
    with registry.db.read() as conn:
        row = conn.execute(select(tables.run_metrics).where(tables.run_metrics.c.key == "nan")).one()
    assert (row.value, bool(row.is_nan)) == (0.0, True)
    # re-logging the identical NaN point is a no-op too
    svc.log_metric(admin, run_id=rid, key="nan", value=NAN, timestamp=1, step=0)
    assert len(svc.get_metric_history(admin, run_id=rid, metric_key="nan")["metrics"]) == 1


def test_metric_steps_timestamps_and_values_are_checked(svc, admin):
    rid = new_run(svc, admin)
    svc.log_metric(admin, run_id=rid, key="m", value=1, timestamp=0, step=2**63 - 1)
    svc.log_metric(admin, run_id=rid, key="m", value=2, timestamp=0, step=-(2**63))
    steps = sorted(m["step"] for m in svc.get_metric_history(admin, run_id=rid, metric_key="m")["metrics"])
    assert steps == [-(2**63), 2**63 - 1]
    for kw, message in [({"step": 2**63}, "step must be a 64-bit integer"),
                        ({"step": 1.5}, "step"),
                        ({"timestamp": -1}, "timestamp must be a non-negative"),
                        ({"timestamp": 2**63}, "timestamp"),
                        ({"value": True}, "valid double"),
                        ({"value": "abc"}, "valid double"),
                        ({"value": None}, "Missing value"),
                        ({"key": ""}, "Missing value"),
                        ({"key": "../up"}, "resolve to other names"),
                        ({"key": "/abs"}, "resolve to other names"),
                        ({"key": "a//b"}, "resolve to other names"),
                        ({"key": "bad*char"}, "names may only contain"),
                        ({"key": "nul\x00"}, "without NUL"),
                        ({"key": "k" * 251}, "250")]:
        args = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0, **kw}
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            svc.log_metric(admin, run_id=rid, **args)
    svc.log_metric(admin, run_id=rid, key="ok/with: spaces-and.dots", value=1.0, timestamp=1)
    svc.log_metric(admin, run_id=rid, key="k" * 250, value=1.0, timestamp=1)


def test_latest_metric_and_history_paging(svc, admin):
    rid = new_run(svc, admin)
    svc.log_batch(admin, run_id=rid, metrics=[{"key": "loss", "value": 1.0 / (s + 1), "timestamp": 100 + s, "step": s}
                                              for s in range(25)])
    # an older step logged later does not move the latest value back
    svc.log_metric(admin, run_id=rid, key="loss", value=9.0, timestamp=999, step=3)
    latest = svc.get_run(admin, rid)["run"]["data"]["metrics"]
    assert latest == [{"key": "loss", "value": 1.0 / 25, "timestamp": 124, "step": 24}]
    full = svc.get_metric_history(admin, run_id=rid, metric_key="loss")
    assert len(full["metrics"]) == 26 and "next_page_token" not in full
    assert [m["timestamp"] for m in full["metrics"]] == sorted(m["timestamp"] for m in full["metrics"])
    paged, token = [], None
    while True:
        page = svc.get_metric_history(admin, run_id=rid, metric_key="loss", max_results=10, page_token=token)
        paged += page["metrics"]
        token = page.get("next_page_token")
        if not token:
            break
    assert paged == full["metrics"]
    assert svc.get_metric_history(admin, run_id=rid, metric_key="other")["metrics"] == []
    with pytest.raises(NotFound):
        svc.get_metric_history(admin, run_id="f" * 32, metric_key="loss")


def test_params_are_immutable(svc, admin):
    rid = new_run(svc, admin)
    svc.log_param(admin, run_id=rid, key="lr", value="0.1")
    svc.log_param(admin, run_id=rid, key="lr", value="0.1")  # the same value again is fine
    with pytest.raises(InvalidArgument, match="Changing param values is not allowed. Param with key='lr'"):
        svc.log_param(admin, run_id=rid, key="lr", value="0.2")
    # a batch with a changed param applies nothing at all
    with pytest.raises(InvalidArgument, match="Changing param values is not allowed"):
        svc.log_batch(admin, run_id=rid, params=[{"key": "lr", "value": "0.3"}, {"key": "new", "value": "1"}],
                      metrics=[{"key": "m", "value": 1.0, "timestamp": 1}], tags=[{"key": "t", "value": "x"}])
    data = svc.get_run(admin, rid)["run"]["data"]
    assert data["params"] == [{"key": "lr", "value": "0.1"}] and data["metrics"] == []
    assert "t" not in {t["key"] for t in data["tags"]}
    with pytest.raises(InvalidArgument, match="Duplicate parameter keys"):
        svc.log_batch(admin, run_id=rid, params=[{"key": "a", "value": "1"}, {"key": "a", "value": "2"}])
    svc.log_batch(admin, run_id=rid, params=[{"key": "a", "value": "1"}, {"key": "a", "value": "1"}])
    svc.log_param(admin, run_id=rid, key="big", value="x" * 6000)
    with pytest.raises(InvalidArgument, match="6000"):
        svc.log_param(admin, run_id=rid, key="bigger", value="x" * 6001)
    with pytest.raises(InvalidArgument, match="must be a string"):
        svc.log_param(admin, run_id=rid, key="n", value=5)


def test_batch_limits(svc, admin):
    rid = new_run(svc, admin)
    metric = {"key": "m", "value": 1.0, "timestamp": 1}
    for kw, message in [({"metrics": [metric] * 1001}, "at most 1000 metrics"),
                        ({"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]}, "at most 100 params"),
                        ({"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]}, "at most 100 tags"),
                        ({"metrics": [metric] * 900, "params": [{"key": f"p{i}", "value": "v"} for i in range(100)],
                          "tags": [{"key": "t", "value": "v"}]}, "at most 1000 metrics, params, and tags"),
                        ({"metrics": [5]}, "must be an object"),
                        ({"metrics": {"key": "m"}}, "must be a list"),
                        ({"metrics": [metric, {"key": "m", "value": "x", "timestamp": 1}]}, "metrics[1].value")]:
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            svc.log_batch(admin, run_id=rid, **kw)
    svc.log_batch(admin, run_id=rid, metrics=[dict(metric, step=i) for i in range(1000)])
    # fields a newer client adds are ignored, as MLflow's server ignores them
    svc.log_batch(admin, run_id=rid, metrics=[dict(metric, step=5000, model_id_of_the_future="x")])
    assert svc.get_run(admin, rid)["run"]["data"]["metrics"][0]["step"] == 5000


def test_log_batch_of_1000_metrics_is_one_transaction(svc, admin, registry):
    rid = new_run(svc, admin)
    batch = [{"key": f"m{i % 10}", "value": float(i), "timestamp": 1000 + i, "step": i} for i in range(1000)]
    commits = []
    listener = lambda conn: commits.append(1)  # noqa: E731
    event.listen(registry.db.engine, "commit", listener)
    try:
        svc.log_batch(admin, run_id=rid, metrics=batch)
    finally:
        event.remove(registry.db.engine, "commit", listener)
    assert len(commits) == 1
    assert audit_count(registry, "log_batch") == 1
    data = svc.get_run(admin, rid)["run"]["data"]["metrics"]
    assert {m["key"]: m["step"] for m in data} == {f"m{i}": 990 + i for i in range(10)}
    # a client retrying the same batch (after a crash, say) changes nothing
    svc.log_batch(admin, run_id=rid, metrics=batch)
    svc.log_batch(admin, run_id=rid, metrics=batch[:500] + batch[:10])  # repeats within one call too
    assert len(svc.get_metric_history(admin, run_id=rid, metric_key="m0")["metrics"]) == 100
    with registry.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(tables.run_metrics)
                            .where(tables.run_metrics.c.run_id == rid)).scalar() == 1000


@pytest.mark.parametrize("size", [5, 200], ids=["small", "bulk"])
def test_a_point_repeated_within_a_new_batch_is_stored_once(svc, admin, registry, size):
    rid = new_run(svc, admin)
    points = [{"key": "m", "value": float(i), "timestamp": 10 + i, "step": i} for i in range(size)]
    # the same point twice, and a point differing only in value (a distinct point, as in MLflow)
    svc.log_batch(admin, run_id=rid, metrics=points + points[:3] + [dict(points[-1], value=-1.0)])
    history = svc.get_metric_history(admin, run_id=rid, metric_key="m")["metrics"]
    assert len(history) == size + 1
    assert sorted(m["value"] for m in history if m["step"] == size - 1) == [-1.0, float(size - 1)]
    # the latest value is the larger of the two at the last step
    assert svc.get_run(admin, rid)["run"]["data"]["metrics"] == [
        {"key": "m", "value": float(size - 1), "timestamp": 10 + size - 1, "step": size - 1}]


def test_concurrent_log_batch_writers(svc, admin):
    """8 threads x 50 log_batch calls on one database: no "database is locked", nothing lost."""
    runs = [new_run(svc, admin) for _ in range(8)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for call in range(50):
                svc.log_batch(admin, run_id=runs[n], metrics=[
                    {"key": f"k{j}", "value": float(call), "timestamp": call, "step": call} for j in range(20)],
                    tags=[{"key": "progress", "value": str(call)}])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for rid in runs:
        run = svc.get_run(admin, rid)["run"]
        assert {t["key"]: t["value"] for t in run["data"]["tags"]}["progress"] == "49"
        assert len(svc.get_metric_history(admin, run_id=rid, metric_key="k7")["metrics"]) == 50


# -- inputs and logged models --------------------------------------------------------------------
def test_dataset_inputs(svc, admin):
    rid = new_run(svc, admin)
    dataset = {"name": "train", "digest": "abc123", "source_type": "local", "source": '{"uri": "x"}',
               "schema": '{"mlflow_colspec": []}', "profile": '{"num_rows": 3}'}
    svc.log_inputs(admin, run_id=rid, datasets=[
        {"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "training"}]},
        {"dataset": dict(dataset), "tags": []},  # the same (name, digest) again: kept once
        {"dataset": {"name": "eval", "digest": "d2", "source_type": "local", "source": "{}"}}])
    svc.log_inputs(admin, run_id=rid, datasets=[{"dataset": dataset, "tags": []}])  # already recorded
    inputs = svc.get_run(admin, rid)["run"]["inputs"]["dataset_inputs"]
    assert inputs == [
        {"tags": [], "dataset": {"name": "eval", "digest": "d2", "source_type": "local", "source": "{}"}},
        {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": dataset}]
    other = new_run(svc, admin)
    svc.log_inputs(admin, run_id=other, datasets=[{"dataset": dataset}])  # reuses the experiment's dataset
    assert svc.get_run(admin, other)["run"]["inputs"]["dataset_inputs"][0]["dataset"] == dataset
    for bad, message in [([{"dataset": {"name": "x"}}], "digest cannot be None"),
                         ([{"dataset": dict(dataset, digest="d" * 37)}], "36"),
                         ([{"dataset": dataset, "tags": [{"key": "k", "value": "v" * 501}]}], "500"),
                         ([{"dataset": dataset, "tags": [{"key": "k"}]}], "cannot be None"),
                         ([{"data": dataset}], "dataset")]:
        with pytest.raises(InvalidArgument, match=message):
            svc.log_inputs(admin, run_id=rid, datasets=bad)


def test_logged_model_lifecycle(svc, admin):
    exp = svc.create_experiment(admin, "models")["experiment_id"]
    rid = new_run(svc, admin, exp)
    model = svc.create_logged_model(admin, experiment_id=exp, name="clf", model_type="sklearn", source_run_id=rid,
                                    params=[{"key": "alpha", "value": "0.5"}],
                                    tags=[{"key": "stage", "value": "dev"}])["model"]
    info, mid = model["info"], model["info"]["model_id"]
    assert re.fullmatch(r"m-[0-9a-f]{32}", mid)
    assert info["status"] == "LOGGED_MODEL_PENDING" and info["name"] == "clf" and info["source_run_id"] == rid
    exp_loc = svc.get_experiment(admin, exp)["experiment"]["artifact_location"]
    assert info["artifact_uri"] == f"{exp_loc}/models/{mid}/artifacts"
    assert info["tags"] == [{"key": "stage", "value": "dev"}]
    assert model["data"] == {"params": [{"key": "alpha", "value": "0.5"}], "metrics": []}

    svc.log_batch(admin, run_id=rid, metrics=[{"key": "acc", "value": 0.8, "timestamp": 5, "step": 1,
                                               "model_id": mid, "dataset_name": "eval", "dataset_digest": "d1"}])
    svc.log_outputs(admin, run_id=rid, models=[{"model_id": mid, "step": 1}])
    svc.log_inputs(admin, run_id=new_run(svc, admin, exp), models=[{"model_id": mid}])
    run = svc.get_run(admin, rid)["run"]
    assert run["outputs"] == {"model_outputs": [{"model_id": mid, "step": 1}]}
    got = svc.get_logged_model(admin, mid)["model"]
    assert got["data"]["metrics"] == [{"key": "acc", "value": 0.8, "timestamp": 5, "step": 1, "run_id": rid,
                                       "model_id": mid, "dataset_name": "eval", "dataset_digest": "d1"}]

    assert svc.finalize_logged_model(admin, mid, "LOGGED_MODEL_READY")["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    assert svc.finalize_logged_model(admin, mid, "FAILED")["model"]["info"]["status"] == "LOGGED_MODEL_UPLOAD_FAILED"
    with pytest.raises(InvalidArgument, match="finalized"):
        svc.finalize_logged_model(admin, mid, "LOGGED_MODEL_PENDING")

    svc.set_logged_model_tags(admin, mid, tags=[{"key": "stage", "value": "prod"}, {"key": "owner", "value": "me"}])
    tags = {t["key"]: t["value"] for t in svc.get_logged_model(admin, mid)["model"]["info"]["tags"]}
    assert tags == {"stage": "prod", "owner": "me"}
    svc.delete_logged_model_tag(admin, mid, "owner")
    with pytest.raises(NotFound, match="No tag with key 'owner'"):
        svc.delete_logged_model_tag(admin, mid, "owner")

    svc.log_logged_model_params(admin, mid, params=[{"key": "alpha", "value": "0.5"}, {"key": "beta", "value": "2"}])
    with pytest.raises(InvalidArgument, match="Changing param values is not allowed"):
        svc.log_logged_model_params(admin, mid, params=[{"key": "beta", "value": "3"}])
    assert len(svc.get_logged_model(admin, mid)["model"]["data"]["params"]) == 2

    anonymous = svc.create_logged_model(admin, experiment_id=exp)["model"]["info"]
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", anonymous["name"])
    for bad, error in [({"name": "a/b"}, InvalidArgument), ({"name": "a.b"}, InvalidArgument),
                       ({"source_run_id": "f" * 32}, NotFound), ({"experiment_id": "4242"}, NotFound)]:
        with pytest.raises(error):
            svc.create_logged_model(admin, **{"experiment_id": exp, **bad})
    with pytest.raises(NotFound, match="Logged model with ID 'm-nope' not found"):
        svc.log_metric(admin, run_id=rid, key="acc", value=1.0, timestamp=1, model_id="m-nope")
    with pytest.raises(NotFound):
        svc.log_outputs(admin, run_id=rid, models=[{"model_id": "m-nope", "step": 0}])

    svc.delete_logged_model(admin, mid)
    with pytest.raises(NotFound, match=f"Logged model with ID '{mid}' not found"):
        svc.get_logged_model(admin, mid)
    with pytest.raises(NotFound):
        svc.set_logged_model_tags(admin, mid, tags=[{"key": "a", "value": "b"}])


# -- permissions and audit -----------------------------------------------------------------------
def test_permissions(svc, admin, users, registry):
    bob, carol = users
    exp = svc.create_experiment(admin, "private")["experiment_id"]
    rid = new_run(svc, admin, exp)
    # everyone reads
    assert svc.get_experiment(bob, exp)["experiment"]["name"] == "private"
    assert svc.get_run(bob, rid)["run"]["info"]["run_id"] == rid
    assert len(svc.search_runs(bob, experiment_ids=[exp])["runs"]) == 1
    assert svc.get_experiment_permission(bob, exp) == {"experiment_id": exp, "permission": "READ"}
    # writing needs EDIT
    with pytest.raises(PermissionDenied, match="create run needs EDIT") as denied:
        svc.create_run(bob, experiment_id=exp)
    assert denied.value.audit == ("create_run", "experiment", exp)
    for write in (lambda c: svc.log_metric(c, run_id=rid, key="m", value=1.0, timestamp=1),
                  lambda c: svc.log_batch(c, run_id=rid, params=[{"key": "p", "value": "1"}]),
                  lambda c: svc.set_tag(c, run_id=rid, key="t", value="1"),
                  lambda c: svc.set_experiment_tag(c, exp, "t", "1"),
                  lambda c: svc.create_logged_model(c, experiment_id=exp)):
        with pytest.raises(PermissionDenied):
            write(bob)
    with pytest.raises(PermissionDenied, match="MANAGE"):
        svc.get_experiment_permissions(bob, exp)
    with pytest.raises(PermissionDenied):
        svc.set_experiment_permission(bob, exp, "bob", "MANAGE")

    # EDIT lets bob log, but not rename or delete
    perms = svc.set_experiment_permission(admin, exp, "bob", "EDIT")
    assert perms["owner"] == "admin"
    assert [(p["principal"], p["permission"]) for p in perms["permissions"]] == [("bob", "EDIT")]
    bobs_run = new_run(svc, bob, exp)
    svc.log_metric(bob, run_id=rid, key="m", value=1.0, timestamp=1)
    assert svc.get_run(bob, bobs_run)["run"]["info"]["user_id"] == "bob"
    for manage in (lambda: svc.update_experiment(bob, exp, "mine"), lambda: svc.delete_experiment(bob, exp),
                   lambda: svc.delete_run(bob, bobs_run)):
        with pytest.raises(PermissionDenied, match="needs MANAGE"):
            manage()

    # groups count: carol is in 'team'
    with pytest.raises(PermissionDenied):
        svc.create_run(carol, experiment_id=exp)
    svc.set_experiment_permission(admin, exp, "team", "MANAGE")
    svc.update_experiment(carol, exp, "shared")
    assert svc.get_experiment_permission(carol, exp)["permission"] == "MANAGE"
    svc.set_experiment_permission(carol, exp, "bob", "NO_PERMISSIONS")
    assert svc.get_experiment_permission(bob, exp)["permission"] == "READ"
    with pytest.raises(PermissionDenied):
        svc.log_metric(bob, run_id=rid, key="m", value=2.0, timestamp=2)
    svc.set_experiment_permission(admin, exp, "team", None)
    with pytest.raises(PermissionDenied):
        svc.create_run(carol, experiment_id=exp)

    # the creator of an experiment manages it; anyone may use the Default experiment
    own = svc.create_experiment(bob, "bobs")["experiment_id"]
    assert svc.get_experiment_permission(bob, own)["permission"] == "MANAGE"
    assert svc.get_experiment_permissions(bob, own)["owner"] == "bob"
    svc.set_experiment_permission(bob, own, "carol", "READ")
    svc.delete_experiment(bob, own)
    svc.restore_experiment(bob, own)
    assert svc.get_experiment_permission(bob, "0")["permission"] == "EDIT"
    new_run(svc, bob, "0")
    with pytest.raises(NotFound, match="principal 'nobody' does not exist"):
        svc.set_experiment_permission(admin, exp, "nobody", "READ")
    with pytest.raises(InvalidArgument, match="permission must be one of"):
        svc.set_experiment_permission(admin, exp, "bob", "OWNER")
    grants = registry.audit.query(action="set_experiment_permission")["events"]
    assert {(e["principal"], e["detail"]["principal"]) for e in grants} >= {("admin", "bob"), ("carol", "bob")}


def test_every_mutation_is_audited(svc, admin, registry):
    exp = svc.create_experiment(admin, "audited")["experiment_id"]
    rid = new_run(svc, admin, exp)
    svc.log_metric(admin, run_id=rid, key="m", value=1.0, timestamp=1)
    svc.log_param(admin, run_id=rid, key="p", value="1")
    svc.set_tag(admin, run_id=rid, key="t", value="1")
    svc.log_batch(admin, run_id=rid, metrics=[{"key": "m", "value": 2.0, "timestamp": 2}])
    svc.update_run(admin, run_id=rid, status="FINISHED")
    svc.set_experiment_tag(admin, exp, "k", "v")
    svc.delete_run(admin, rid)
    for action in ("create_experiment", "create_run", "log_metric", "log_param", "set_tag", "log_batch",
                   "update_run", "set_experiment_tag", "delete_run"):
        events = registry.audit.query(action=action, principal="admin")["events"]
        assert events, action
    run_events = registry.audit.query(securable=rid)["events"]
    assert {e["action"] for e in run_events} >= {"create_run", "log_metric", "log_batch", "delete_run"}
    assert all(e["securable_type"] == "run" for e in run_events)
    # a refused write leaves no audit row of its own
    before = audit_count(registry, "log_param")
    with pytest.raises(InvalidArgument):
        svc.log_param(admin, run_id=rid, key="p", value="2")
    assert audit_count(registry, "log_param") == before
