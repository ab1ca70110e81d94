"""Durability: acknowledged writes survive a registry actor kill under load and a full
`lakeray down && lakeray up`. (Runs last: the restart test replaces the Ray cluster.)"""

import os
import threading
import time

import pyarrow as pa
import pytest
import ray

import lakeray

pytestmark = pytest.mark.ray
WRITERS = 4


def api_replica(wait_s: float = 120):
    """The handle of the running HTTP API replica, waiting up to ``wait_s`` for one (Serve
    starts a new one after a kill, which takes a few seconds)."""
    from ray.util.state import list_actors

    deadline = time.monotonic() + wait_s
    while True:
        for info in list_actors(filters=[("state", "=", "ALIVE")]):
            if info.name and info.name.startswith("SERVE_REPLICA::lakeray#api"):
                return ray.get_actor(info.name, namespace="serve")
        if time.monotonic() > deadline:
            raise AssertionError(f"no API replica is running after {wait_s}s")
        time.sleep(0.2)


def run_killing(actor: str, workers: list, kills: int, every_s: float) -> int:
    """Run ``workers`` in threads while killing ``actor`` (an actor name, or ``"api"`` for the
    HTTP API replica) ``kills`` times, ``every_s`` seconds apart (Ray and Serve restart it).

    Each worker is called with a ``threading.Event`` and works until it is set, so every kill
    lands while clients are working, however fast they are: after the last kill (and, for the
    API, once the killed replica is gone) they go on for another ``every_s`` against the
    restarted one, then are stopped and joined. Returns how many kills happened (fewer only if
    every worker stopped on an error first)."""
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(stop,)) for work in workers]
    for t in threads:
        t.start()
    done, victim = 0, None
    while done < kills and any(t.is_alive() for t in threads):
        time.sleep(every_s)
        if actor == "api" and victim is not None:
            _wait_dead(victim)  # then the next kill hits its replacement, once that is up
        victim = api_replica() if actor == "api" else ray.get_actor(actor, namespace="lakeray")
        ray.kill(victim, no_restart=False)
        done += 1
    if actor == "api" and victim is not None:
        _wait_dead(victim)
    time.sleep(every_s)
    stop.set()
    for t in threads:
        t.join(timeout=300)
    return done


def _wait_dead(victim, timeout_s: float = 120) -> None:
    """Wait until a killed API replica is gone: ray.kill returns at once, and a replica still
    dying could cut off the answer to a check made right after (Serve starts a new one)."""
    from ray.util.state import get_actor

    actor_id = victim._actor_id.hex()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = get_actor(actor_id)
        if info is None or info.state == "DEAD":
            return
        time.sleep(0.2)
    raise AssertionError(f"the killed API replica {actor_id} is still {info.state} after {timeout_s}s")


def test_actor_kill_during_concurrent_writers_loses_and_duplicates_nothing(platform):
    admin = platform.client("ray")
    table = "main.default.kill_test"
    admin.create_table(table, schema=pa.schema([("writer", pa.int64()), ("seq", pa.int64())]))
    acked: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(w: int, stop: threading.Event) -> None:
        c = platform.client("ray" if w % 2 == 0 else "http")
        seq = 0
        while not stop.is_set():
            try:
                c.append(table, pa.table({"writer": [w], "seq": [seq]}))
            except BaseException as e:  # noqa: BLE001 - collected and reported below
                errors.append(e)
                return
            with lock:
                acked.append((w, seq))
            seq += 1

    kills = run_killing(actor="registry", workers=[lambda stop, w=w: writer(w, stop) for w in range(WRITERS)],
                        kills=3, every_s=1.5)
    assert not errors, errors
    assert kills == 3
    rows = admin.read_table(table).to_pylist()
    got = [(r["writer"], r["seq"]) for r in rows]
    assert len(got) == len(set(got)), "a write landed twice"
    assert set(acked) <= set(got), "an acknowledged write was lost"
    assert {w for w, _ in acked} == set(range(WRITERS)), "a writer never got a write acknowledged"


def test_api_replica_kill_while_mlflow_clients_log(platform, monkeypatch):
    """mlflow clients keep logging while the API replica that runs their writes is killed and
    restarted: every acknowledged metric is there once (a retry after a lost response re-logs
    identical rows, which are no-ops, as in MLflow's SQL store)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", platform.token)
    client = MlflowClient(platform.url)
    run_id = client.create_run(client.create_experiment("kill-the-tracker")).info.run_id
    acked: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def logger(w: int, stop: threading.Event) -> None:
        c = MlflowClient(platform.url)
        step = 0
        while not stop.is_set():
            try:
                c.log_batch(run_id, metrics=[Metric(f"w{w}", float(step), 1000 + step, step)])
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return
            with lock:
                acked.append((f"w{w}", step))
            step += 1

    kills = run_killing(actor="api", workers=[lambda stop, w=w: logger(w, stop) for w in range(4)],
                        kills=2, every_s=2)
    assert not errors, errors
    assert kills == 2
    for w in range(4):
        steps = [m.step for m in client.get_metric_history(run_id, f"w{w}")]
        assert len(steps) == len(set(steps)), "a metric landed twice"
        assert {s for k, s in acked if k == f"w{w}"} <= set(steps), "an acknowledged metric was lost"
    assert {k for k, _ in acked} == {f"w{w}" for w in range(4)}, "a client never got a batch acknowledged"


def test_api_replica_kill_while_registering_models(platform, monkeypatch, tmp_path):
    """Model versions registered through kills of the API replica, which runs model registry
    writes: every acknowledged version is there, READY, with all its artifacts (the copy and
    the row commit together), and no version is left half made."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", platform.token)
    client = MlflowClient(platform.url, registry_uri=platform.url)
    run_id = client.create_run(client.create_experiment("kill-the-registry")).info.run_id
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "model" / "weights.bin").write_bytes(os.urandom(200_000))
    client.log_artifacts(run_id, str(tmp_path / "model"), "model")
    name = "main.default.kill_registry"
    client.create_registered_model(name)
    acked: list[str] = []
    errors: list[BaseException] = []

    def register(stop: threading.Event) -> None:
        c = MlflowClient(platform.url, registry_uri=platform.url)
        while not stop.is_set():
            stop.wait(0.2)  # a few dozen versions in all: each one's artifacts are checked below
            try:
                acked.append(c.create_model_version(name, f"runs:/{run_id}/model", run_id).version)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    kills = run_killing(actor="api", workers=[register for _ in range(2)], kills=2, every_s=1.5)
    assert not errors, errors
    assert kills == 2
    versions = {v.version: v for v in client.search_model_versions(f"name = '{name}'")}
    assert set(acked) <= set(versions), "an acknowledged version was lost"
    weights = (tmp_path / "model" / "weights.bin").read_bytes()
    for number in versions:
        assert versions[number].status == "READY"
        uri = client.get_model_version_download_uri(name, number)
        mlflow.set_tracking_uri(platform.url)
        local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / f"v{number}"))
        assert open(os.path.join(local, "weights.bin"), "rb").read() == weights


def test_down_and_up_keep_all_state(platform):
    c = platform.client("http")
    c.create_catalog("durable")
    c.create_schema("durable", "s")
    c.create_table("durable.s.t", data=pa.table({"x": [1, 2, 3]}))
    c.append("durable.s.t", [{"x": 4}])
    c.create_principal("keeper")
    c.grant("table", "durable.s.t", "keeper", "SELECT")
    keeper_token = c.create_token(principal="keeper")["token_value"]
    c.create_volume("durable", "s", "v")
    c.upload("/Volumes/durable/s/v/a.bin", b"\x00\x01")
    audit_before = c.query_audit(limit=5)["events"]
    admin_token = platform.token
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_TOKEN"] = admin_token
    mlc = MlflowClient(platform.url)
    run_id = mlc.create_run(mlc.create_experiment("survives-restart")).info.run_id
    mlc.log_metric(run_id, "loss", 0.5, step=3)
    mlc.log_text(run_id, "kept", "notes.txt")
    mlc.log_text(run_id, "flavors: {}\n", "model/MLmodel")
    mlc.create_registered_model("main.default.durable_model")
    mlc.create_model_version("main.default.durable_model", f"runs:/{run_id}/model", run_id)
    mlc.set_registered_model_alias("main.default.durable_model", "prod", 1)
    # a serving endpoint: its config survives, and what runs for it is deployed again
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(platform.url)
    mlflow.set_registry_uri(platform.url)
    x = np.arange(5, dtype=float).reshape(-1, 1)
    with mlflow.start_run():
        mlflow.sklearn.log_model(LinearRegression().fit(x, 2 * x.ravel()), name="model",
                                 serialization_format="cloudpickle", registered_model_name="main.default.durable_lr")
    c.serving.create("durable-ep", [{"entity_name": "main.default.durable_lr", "entity_version": "1"}])
    c.serving.wait("durable-ep")
    assert c.serving.query("durable-ep", inputs=[[1.0]])["predictions"] == pytest.approx([2.0])
    # its AI gateway config too, and the usage rows of calls answered before `down` (it flushes)
    c.serving.put_ai_gateway("durable-ep", rate_limits=[{"calls": 100, "key": "user", "renewal_period": "minute"}],
                             usage_tracking_config={"enabled": True})
    assert c.serving.query("durable-ep", inputs=[[2.0]])["predictions"] == pytest.approx([4.0])

    platform.down()
    platform.up()

    assert platform.token == admin_token
    c = platform.client("http")
    assert c.read_table("durable.s.t").column("x").to_pylist() == [1, 2, 3, 4]
    assert len(c.table_versions("durable.s.t")) == 2
    assert c.get_permissions("table", "durable.s.t")["privilege_assignments"] == [
        {"principal": "keeper", "privileges": ["SELECT"]}]
    assert platform.client("http", token=keeper_token).whoami()["name"] == "keeper"
    assert c.download("/Volumes/durable/s/v/a.bin") == b"\x00\x01"
    after = c.query_audit(limit=200)["events"]
    assert {e["id"] for e in audit_before} <= {e["id"] for e in after}
    with pytest.raises(lakeray.AlreadyExists):
        c.create_catalog("durable")
    mlc = MlflowClient(platform.url)
    assert [(m.value, m.step) for m in mlc.get_metric_history(run_id, "loss")] == [(0.5, 3)]
    mlflow.set_tracking_uri(platform.url)
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes.txt") == "kept"
    mlflow.set_registry_uri(platform.url)
    assert mlc.get_model_version_by_alias("main.default.durable_model", "prod").version == "1"
    assert mlflow.artifacts.load_text("models:/main.default.durable_model@prod/MLmodel") == "flavors: {}\n"
    assert c.serving.wait("durable-ep")["config"]["config_version"] == 1
    assert c.serving.query("durable-ep", inputs=[[1.0]])["predictions"] == pytest.approx([2.0])
    assert c.serving.get("durable-ep")["ai_gateway"] == {
        "rate_limits": [{"key": "user", "renewal_period": "minute", "calls": 100}],
        "usage_tracking_config": {"enabled": True}}
    usage = c.read_table("system.serving.endpoint_usage").to_pylist()
    assert any(r["endpoint_name"] == "durable-ep" and r["status_code"] == 200 for r in usage)
