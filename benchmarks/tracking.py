"""python benchmarks/tracking.py [--rounds 3] [--quick] [--mlflow-venv ~/.cache/lakeray/bench-mlflow-venv]

MLflow tracking and registry: the same mlflow client workload against lakeray and against a real
``mlflow server`` on SQLite, in one run, interleaved; prints lakeray time / mlflow time per op.

The peer is the full ``mlflow`` package (the version of the ``mlflow-skinny`` client installed
here) in a venv of its own, created on first use and reused while its version matches, started as
``mlflow server --backend-store-uri sqlite:///... --serve-artifacts --workers 1``. lakeray is
brought up in a temporary LAKERAY_HOME on a private Ray head (see ``_common.py``). Each target
gets one long-lived worker process running the mlflow client from this venv (``--worker``), so
both see the same client code; the parent sends it one op class at a time and alternates which
target goes first, op by op and round by round.

Op classes (the Tracking & Registry issue): create_run x200, log_metric x2,000, log_batch of
1,000 metrics (10 keys x 100 steps, a fresh run each call), search_runs with a filter over 10,000
runs (``metrics.score > 0.5 and params.model = 'a'``: ~2,500 match, the client's default page
returns 1,000), get_metric_history of 10,000 steps, create_model_version x50 (from
``runs:/<run>/model``, a logged MLmodel). Targets: ratio <= 0.5 on small ops, <= 0.1 on
log_batch(1000) and search_runs over 10k runs. An op class that fails on a target prints
``n/a (error: ...)``; the others still run. Times include the mlflow client's own work, the same
for both targets (e.g. serialising 1,000 metrics, parsing 1,000 runs); for log_batch and
search_runs the time their HTTP requests spend on the wire and in the server (from the encoded
request going out to the whole answer in) is also recorded in the same calls and reported as
the servers' part.

Seeding is not timed. The history, the model source run and the registered model go through the
client; the 10k-run search corpus (identical rows on both) by default goes the fast way: on
lakeray through the tracker actor over Ray (the ``runs/create`` and ``runs/log-batch``
operations, minus the HTTP hops), on mlflow with its own SQLAlchemy models in one transaction.
``--seed-via api`` writes it through both REST APIs instead (much slower on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import requests
from _common import RAY_ENV, REPO, free_port, running_lakeray, stop_process_group

MODEL_NAME = "main.default.bench_model"  # a catalog name for lakeray; mlflow accepts the dots
SEARCH_FILTER = "metrics.score > 0.5 and params.model = 'a'"
DEFAULT_VENV = Path.home() / ".cache" / "lakeray" / "bench-mlflow-venv"

#: op class -> (what it does, ratio target)
OPS = {
    "create_run": ("create_run x{create_runs}", 0.5),
    "log_metric": ("log_metric x{log_metrics}", 0.5),
    "log_batch": ("log_batch({batch_size})", 0.1),
    "search_runs": ("search_runs / {search_runs} runs", 0.1),
    "get_metric_history": ("get_metric_history({history_steps})", 0.5),
    "create_model_version": ("create_model_version x{model_versions}", 0.5),
}
#: op classes whose target is below what the mlflow client itself spends (serialising 1,000
#: metrics, parsing 1,000 runs): the time of their HTTP exchanges is also recorded, call by
#: call, to show the servers' part.
WIRE_TIMED = ("log_batch", "search_runs")
FULL = dict(create_runs=200, log_metrics=2000, batch_size=1000, batch_repeats=5, search_runs=10_000,
            search_repeats=5, history_steps=10_000, history_repeats=3, model_versions=50)
QUICK = dict(create_runs=20, log_metrics=100, batch_size=1000, batch_repeats=2, search_runs=500,
             search_repeats=2, history_steps=1000, history_repeats=2, model_versions=5)


# ---------------------------------------------------------------- the worker (one per target)

class Workload:
    """The mlflow client side: seeding and the timed op classes, against MLFLOW_TRACKING_URI."""

    def __init__(self) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient()
        self.state: dict = {}
        self.wire_s: list[float] = []  # per timed call of a WIRE_TIMED op; the worker hands them on

    @contextlib.contextmanager
    def _wire(self):
        """Appends to ``wire_s`` the time the block spends in ``requests``' ``Session.send``,
        which the mlflow client's HTTP calls go through: the encoded request going out, the
        server's work and the whole answer coming in, but not the client building and encoding
        the request (``requests`` JSON-encodes the body before ``send``) or parsing the answer."""
        real, spent = requests.Session.send, [0.0]

        def timed(session, *args, **kwargs):
            start = time.perf_counter()
            try:
                return real(session, *args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start

        requests.Session.send = timed
        try:
            yield
        finally:
            requests.Session.send = real
            self.wire_s.append(spent[0])

    def setup(self, history_steps: int) -> dict:
        """Untimed: the experiments, the metric history, the model source run and the registered
        model. The search corpus is seeded afterwards (``seed_corpus`` or by the parent)."""
        from mlflow.entities import Metric

        c = self.client
        tag = f"{int(time.time())}-{random.randrange(10**6)}"
        search_exp = c.create_experiment(f"bench-search-{tag}")
        ops_exp = c.create_experiment(f"bench-ops-{tag}")
        history_run = c.create_run(ops_exp).info.run_id
        ts = int(time.time() * 1000)
        for start in range(0, history_steps, 1000):
            c.log_batch(history_run, metrics=[Metric("loss", 1.0 / (s + 1), ts + s, s)
                                              for s in range(start, min(start + 1000, history_steps))])
        source_run = c.create_run(ops_exp).info.run_id
        with tempfile.TemporaryDirectory() as d:
            Path(d, "MLmodel").write_text("artifact_path: model\nflavors: {}\nmodel_uuid: bench\n")
            Path(d, "weights.bin").write_bytes(os.urandom(4096))
            c.log_artifacts(source_run, d, "model")
        self.state = dict(search_exp=search_exp, ops_exp=ops_exp, history_run=history_run,
                          source_run=source_run, expected_matches=None, registry_error=None)
        try:
            c.create_registered_model(MODEL_NAME)
        except Exception as e:  # noqa: BLE001 - reported per op class, the rest still runs
            self.state["registry_error"] = _describe(e)
        return {"search_exp": search_exp, "registry_error": self.state["registry_error"]}

    def seed_corpus(self, rows: list, threads: int) -> dict:
        """The search corpus through the REST API (``--seed-via api``): create_run + log_batch
        per run, from ``threads`` client threads."""
        from mlflow.entities import Metric, Param

        c, exp = self.client, self.state["search_exp"]

        def one(item: tuple) -> None:
            i, (score, loss, model, ts) = item
            run = c.create_run(exp, start_time=ts, run_name=f"seed-{i}").info.run_id
            c.log_batch(run, metrics=[Metric("score", score, ts, 0), Metric("loss", loss, ts, 0)],
                        params=[Param("model", model), Param("lr", "0.01")])

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, enumerate(rows)))
        return {"runs": len(rows)}

    def expect(self, matches: int) -> dict:
        """Record how many corpus runs match the filter (shown next to what search returns)."""
        self.state["expected_matches"] = matches
        return {}

    def create_run(self, n: int) -> list[float]:
        """``n`` create_run calls in the ops experiment; one sample: their total."""
        exp = self.state["ops_exp"]
        start = time.perf_counter()
        for _ in range(n):
            self.client.create_run(exp)
        return [time.perf_counter() - start]

    def log_metric(self, n: int) -> list[float]:
        """``n`` log_metric calls (steps 0..n-1) on a fresh run; one sample: their total."""
        run = self.client.create_run(self.state["ops_exp"]).info.run_id
        start = time.perf_counter()
        for i in range(n):
            self.client.log_metric(run, "loss", 1.0 / (i + 1), step=i)
        return [time.perf_counter() - start]

    def log_batch(self, size: int, repeats: int) -> list[float]:
        """``repeats`` log_batch calls of ``size`` metrics, each on a fresh run; a sample each
        (and its time on the wire, see :meth:`_wire`)."""
        from mlflow.entities import Metric

        out = []
        keys = max(1, size // 100)  # e.g. 10 metrics x 100 steps, as a training loop logs them
        for _ in range(repeats):
            run = self.client.create_run(self.state["ops_exp"]).info.run_id
            ts = int(time.time() * 1000)
            metrics = [Metric(f"m{i % keys}", random.random(), ts + i, i // keys) for i in range(size)]
            with self._wire():
                start = time.perf_counter()
                self.client.log_batch(run, metrics=metrics)
                out.append(time.perf_counter() - start)
        return out

    def search_runs(self, repeats: int) -> tuple[list[float], dict]:
        """``repeats`` filtered searches of the corpus (the client's default page); a sample each
        (and its time on the wire, see :meth:`_wire`)."""
        out, found = [], 0
        for _ in range(repeats):
            with self._wire():
                start = time.perf_counter()
                found = len(self.client.search_runs([self.state["search_exp"]], filter_string=SEARCH_FILTER))
                out.append(time.perf_counter() - start)
        return out, {"returned": found, "matching": self.state["expected_matches"]}

    def get_metric_history(self, repeats: int) -> tuple[list[float], dict]:
        """``repeats`` reads of the seeded history; a sample each."""
        out, n = [], 0
        for _ in range(repeats):
            start = time.perf_counter()
            n = len(self.client.get_metric_history(self.state["history_run"], "loss"))
            out.append(time.perf_counter() - start)
        return out, {"steps": n}

    def create_model_version(self, n: int) -> list[float]:
        """``n`` versions of the registered model from ``runs:/<run>/model``; one sample: the total."""
        if self.state.get("registry_error"):
            raise RuntimeError(f"create_registered_model failed: {self.state['registry_error']}")
        run = self.state["source_run"]
        source = f"runs:/{run}/model"
        start = time.perf_counter()
        for _ in range(n):
            self.client.create_model_version(MODEL_NAME, source, run_id=run)
        return [time.perf_counter() - start]


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}"


def worker() -> None:
    """Reads one JSON command a line on stdin, answers one JSON line on the original stdout
    (everything the mlflow client prints goes to stderr)."""
    import logging

    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else written to stdout, from Python or not, lands on stderr
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    work = Workload()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            result = getattr(work, op)(**cmd)
            seconds, info = result if isinstance(result, tuple) else (result, {})
            reply = {"ok": True, "seconds": seconds, "wire": work.wire_s, "info": info} if op in OPS \
                else {"ok": True, "info": result}
        except Exception as e:  # noqa: BLE001 - the parent prints n/a for this op class
            reply = {"ok": False, "error": _describe(e)}
        work.wire_s = []
        out.write(json.dumps(reply) + "\n")


class Worker:
    """The parent's end of one target's worker process."""

    def __init__(self, name: str, url: str, token: str | None) -> None:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_REGISTRY_URI": url,
               "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("MLFLOW_TRACKING_TOKEN", None)
        if token:
            env["MLFLOW_TRACKING_TOKEN"] = token
        self.name = name
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], env=env, cwd=REPO, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, op: str, **kwargs) -> None:
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker died (exit code {self.proc.wait()})")
        return json.loads(line)

    def call(self, op: str, **kwargs) -> dict:
        self.send(op, **kwargs)
        return self.receive()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------- the peer: mlflow server

def ensure_mlflow_venv(venv: Path, want: str) -> Path:
    """A venv with ``mlflow==want``: reused when it has that version, else (re)created."""
    python = venv / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == want:
            return venv
    print(f"creating {venv} with mlflow=={want} (once; a few minutes) ...", flush=True)
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"mlflow=={want}"], check=True)
    return venv


@dataclass
class Peer:
    """The running mlflow server: its URL, its SQLite URI and its venv."""

    url: str
    db_uri: str
    venv: Path


@contextlib.contextmanager
def mlflow_server(venv: Path, wait_s: float = 180.0):
    """``mlflow server`` on SQLite in a temp dir, one worker, proxied artifacts; yields a Peer."""
    tmp = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cmd = [str(venv / "bin" / "mlflow"), "server", "--backend-store-uri", db_uri,
           "--artifacts-destination", str(tmp / "artifacts"), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # The server's job runner (GenAI judge jobs, huey consumers) is no part of this workload;
    # off, it does not compete for the two cores. 127.0.0.1 passes the default host check.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    print(f"starting mlflow server {version_of(venv)} in {tmp} on {url} ...", flush=True)
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not come up; see {tmp / 'server.log'}")
            time.sleep(0.5)
        yield Peer(url, db_uri, venv)
    finally:
        stop_process_group(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def version_of(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


# ---------------------------------------------------------------- fast seeding (not timed)

#: Run in the peer's venv: the search corpus written with mlflow's own SQLAlchemy models in one
#: transaction -- the rows ``SqlAlchemyStore.create_run`` + ``log_batch`` write (run, runName
#: tag, params, metrics, latest metrics), without a commit (and fsync) per request.
MLFLOW_BULK_SEED = """
import json, sys, uuid
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from mlflow.store.tracking.dbmodels.models import (SqlExperiment, SqlLatestMetric, SqlMetric, SqlParam,
                                                   SqlRun, SqlTag)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

db_uri, exp_id, rows_path = sys.argv[1:4]
rows = json.load(open(rows_path))
engine = create_engine(db_uri)
with Session(engine) as s, s.begin():
    location = s.get(SqlExperiment, int(exp_id)).artifact_location
    for i, (score, loss, model, ts) in enumerate(rows):
        rid, name = uuid.uuid4().hex, f"seed-{i}"
        s.add(SqlRun(run_uuid=rid, name=name, experiment_id=int(exp_id), user_id="bench",
                     artifact_uri=f"{location}/{rid}/artifacts", source_type="UNKNOWN", source_name="",
                     entry_point_name="", status="RUNNING", start_time=ts, end_time=None,
                     deleted_time=None, source_version="", lifecycle_stage="active"))
        s.add(SqlTag(run_uuid=rid, key=MLFLOW_RUN_NAME, value=name))
        s.add_all([SqlParam(run_uuid=rid, key="model", value=model), SqlParam(run_uuid=rid, key="lr", value="0.01")])
        for key, value in (("score", score), ("loss", loss)):
            s.add(SqlMetric(run_uuid=rid, key=key, value=value, timestamp=ts, step=0, is_nan=False))
            s.add(SqlLatestMetric(run_uuid=rid, key=key, value=value, timestamp=ts, step=0, is_nan=False))
"""


def seed_mlflow_bulk(peer: Peer, exp_id: str, rows: list, tmp: Path) -> subprocess.Popen:
    """Start writing the corpus into the peer's database (returns the running process)."""
    rows_path = tmp / "rows.json"
    rows_path.write_text(json.dumps(rows))
    return subprocess.Popen([str(peer.venv / "bin" / "python"), "-W", "ignore", "-c", MLFLOW_BULK_SEED,
                             peer.db_uri, exp_id, str(rows_path)])


def seed_lakeray_direct(lake, exp_id: str, rows: list) -> None:
    """The corpus through lakeray's tracker actor over Ray: the operations ``runs/create`` and
    ``runs/log-batch`` run, with the same bodies and the same checks, minus the HTTP hops."""
    os.environ.update(RAY_ENV)
    import ray

    from lakeray.settings import NAMESPACE, TRACKER_ACTOR

    ray.init(address=lake.ray.address, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR")
    try:
        tracker = ray.get_actor(TRACKER_ACTOR, namespace=NAMESPACE)
        for i, (score, loss, model, ts) in enumerate(rows):  # one at a time: the fastest here
            created = ray.get(tracker.call.remote("create_run", lake.token, None, {
                "experiment_id": exp_id, "start_time": ts, "run_name": f"seed-{i}"}))
            ray.get(tracker.call.remote("log_batch", lake.token, None, {
                "run_id": created["run"]["info"]["run_id"],
                "metrics": [{"key": "score", "value": score, "timestamp": ts, "step": 0},
                            {"key": "loss", "value": loss, "timestamp": ts, "step": 0}],
                "params": [{"key": "model", "value": model}, {"key": "lr", "value": "0.01"}]}))
            if (i + 1) % max(1, len(rows) // 4) == 0:
                print(f"  lakeray: {i + 1}/{len(rows)} runs", flush=True)
    finally:
        ray.shutdown()


def corpus(n: int) -> list:
    """The search corpus, the same on both targets: (score, loss, model, start_time) per run."""
    rng = random.Random(7)
    base = int(time.time() * 1000) - n
    return [(rng.random(), rng.random(), rng.choice("ab"), base + i) for i in range(n)]


def seed(workers: dict, peer: Peer, lake, sizes: dict, via: str, threads: int) -> None:
    """Everything untimed: set-up through the client on both targets, then the search corpus."""
    for w in workers.values():
        w.send("setup", history_steps=sizes["history_steps"])
    exps = {}
    for name, w in workers.items():
        reply = w.receive()
        if not reply["ok"]:
            raise SystemExit(f"setting up {name} failed: {reply['error']}")
        exps[name] = reply["info"]["search_exp"]
        if reply["info"]["registry_error"]:
            print(f"  {name}: create_registered_model failed: {reply['info']['registry_error']}", flush=True)
    rows = corpus(sizes["search_runs"])
    if via == "api":
        for w in workers.values():  # both at once
            w.send("seed_corpus", rows=rows, threads=threads)
        for name, w in workers.items():
            reply = w.receive()
            if not reply["ok"]:
                raise SystemExit(f"seeding {name} failed: {reply['error']}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            bulk = seed_mlflow_bulk(peer, exps["mlflow"], rows, Path(tmp))
            try:
                seed_lakeray_direct(lake, exps["lakeray"], rows)
            finally:
                if bulk.wait() != 0:
                    raise SystemExit(f"seeding mlflow's database failed (exit code {bulk.returncode})")
    matches = sum(1 for score, _, model, _ in rows if score > 0.5 and model == "a")
    for w in workers.values():
        w.call("expect", matches=matches)


# ---------------------------------------------------------------- the parent

def op_kwargs(op: str, sizes: dict) -> dict:
    return {
        "create_run": {"n": sizes["create_runs"]},
        "log_metric": {"n": sizes["log_metrics"]},
        "log_batch": {"size": sizes["batch_size"], "repeats": sizes["batch_repeats"]},
        "search_runs": {"repeats": sizes["search_repeats"]},
        "get_metric_history": {"repeats": sizes["history_repeats"]},
        "create_model_version": {"n": sizes["model_versions"]},
    }[op]


def fmt_s(values: list[float] | None) -> str:
    return f"{statistics.median(values):.3f}" if values else "-"


def report(samples: dict, wire: dict, errors: dict, sizes: dict, targets: list[str]) -> None:
    print()
    head = f"{'op':<34}" + "".join(f"{t + ' s':>12}" for t in targets) + f"{'ratio':>8}{'target':>8}  met"
    print(head)
    print("-" * len(head))
    for op, (label, target) in OPS.items():
        name = label.format(**sizes)
        failed = [t for t in targets if errors[t].get(op)]
        if failed:
            t = failed[0]
            cells = "".join(f"{('n/a' if errors[x].get(op) else fmt_s(samples[x][op])):>12}" for x in targets)
            print(f"{name:<34}{cells}{'n/a':>8}{'<= ' + str(target):>8}  n/a (error on {t}: {errors[t][op]})")
            continue
        lake, peer = (statistics.median(samples[t][op]) for t in targets)
        ratio = lake / peer
        cells = "".join(f"{fmt_s(samples[t][op]):>12}" for t in targets)
        print(f"{name:<34}{cells}{ratio:>8.3f}{'<= ' + str(target):>8}  {'yes' if ratio <= target else 'NO'}")
    timed = [op for op in WIRE_TIMED if all(wire[t][op] for t in targets) and not any(errors[t].get(op) for t in targets)]
    if timed:
        print()
        print("the servers' part: time the mlflow client's HTTP calls spend in requests' Session.send (the")
        print("encoded request out, the server's work, the whole answer in), measured in the same calls;")
        print("the rest is the client's own work (building, encoding, parsing)")
        for op in timed:
            name = OPS[op][0].format(**sizes)
            server = [statistics.median(wire[t][op]) for t in targets]
            client = [statistics.median(whole - on_wire for whole, on_wire in zip(samples[t][op], wire[t][op], strict=True))
                      for t in targets]
            target = OPS[op][1]
            ratio = server[0] / server[1]
            print(f"{name:<34}" + "".join(f"{s_:>12.3f}" for s_ in server) + f"{ratio:>8.3f}{'<= ' + str(target):>8}"
                  f"  {'yes' if ratio <= target else 'NO'}   (client's own: "
                  + ", ".join(f"{t} {c:.3f} s" for t, c in zip(targets, client, strict=True))
                  + f"; the whole-call ratio cannot go below {client[0] / statistics.median(samples['mlflow'][op]):.2f})")
    print()
    print("seconds: median over rounds of the whole op class (create_run, log_metric, create_model_version)")
    print("or of one call (log_batch, search_runs, get_metric_history); ratio = lakeray / mlflow.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    p.add_argument("--mlflow-venv", type=Path, default=DEFAULT_VENV,
                   help="venv of the peer mlflow server (created when missing or of another version)")
    p.add_argument("--seed-via", choices=["direct", "api"], default="direct",
                   help="how the search corpus is written: 'direct' (lakeray's tracker actor over Ray, "
                        "mlflow's SQLAlchemy models in one transaction; ~2 min for 10k runs) or 'api' "
                        "(create_run + log_batch through both REST APIs; ~12 min for 10k runs on 2 cores)")
    p.add_argument("--seed-threads", type=int, default=8, help="client threads per target with --seed-via api")
    p.add_argument("--search-runs", type=int, default=None, help="size of the search corpus")
    p.add_argument("--port", type=int, default=None, help="lakeray's HTTP port (default: a free one)")
    p.add_argument("--ray-address", default=None,
                   help="run lakeray on this Ray cluster instead of a private head (its actors and "
                        "Serve app must not belong to another platform: `lakeray down` removes them)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker()
        return
    sizes = dict(QUICK if args.quick else FULL)
    if args.search_runs:
        sizes["search_runs"] = args.search_runs
    want = version("mlflow-skinny")
    venv = ensure_mlflow_venv(args.mlflow_venv.expanduser(), want)
    targets = ["lakeray", "mlflow"]
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        peer = stack.enter_context(mlflow_server(venv))
        lake = stack.enter_context(running_lakeray(port=args.port, ray_address=args.ray_address))
        workers = {"lakeray": Worker("lakeray", lake.url, lake.token), "mlflow": Worker("mlflow", peer.url, None)}
        for w in workers.values():
            stack.callback(w.close)
        print(f"seeding: a {sizes['search_runs']}-run search corpus ({args.seed_via}), a "
              f"{sizes['history_steps']}-step history, {MODEL_NAME} (mlflow client {want}) ...", flush=True)
        seed_start = time.perf_counter()
        seed(workers, peer, lake, sizes, args.seed_via, args.seed_threads)
        print(f"seeded in {time.perf_counter() - seed_start:.0f}s", flush=True)

        samples = {t: {op: [] for op in OPS} for t in targets}
        errors: dict[str, dict[str, str]] = {t: {} for t in targets}
        wire = {t: {op: [] for op in OPS} for t in targets}  # per call, for WIRE_TIMED ops
        infos: dict[str, dict[str, dict]] = {t: {} for t in targets}
        for r in range(args.rounds):
            line = []
            for i, op in enumerate(OPS):
                order = targets if (r + i) % 2 == 0 else targets[::-1]
                for t in order:
                    if errors[t].get(op):
                        continue
                    reply = workers[t].call(op, **op_kwargs(op, sizes))
                    if reply["ok"]:
                        samples[t][op] += reply["seconds"]
                        wire[t][op] += reply["wire"]
                        infos[t][op] = reply["info"]
                    else:
                        errors[t][op] = reply["error"]
                cells = "/".join(fmt_s(samples[t][op][-1:]) if not errors[t].get(op) else "err" for t in targets)
                line.append(f"{op} {cells}")
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(line), flush=True)
            if not lake.ray.alive():
                print("the private Ray head died (`ray stop` anywhere on this machine stops every Ray "
                      "process): lakeray's numbers from here on are errors", flush=True)
        for t in targets:
            for op, info in infos[t].items():
                if info:
                    print(f"  {t} {op}: {info}")
        report(samples, wire, errors, sizes, targets)
    print(f"total {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
