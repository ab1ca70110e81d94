"""lakeray.jobs.pretrain as a real job on the session platform: Ray Train with 2 workers and
DeepSpeed ZeRO-2, metrics in the run, checkpoints under its artifacts, the model registered
with lineage; a worker killed mid-run; an explicit resume; bad configs refused up front."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from tests.conftest import REPO

pytestmark = pytest.mark.ray
TABLE = "main.default.pretrain_docs"


@pytest.fixture(scope="module")
def corpus(platform):
    from lakeray.jobs.load_corpus import load

    load(platform.client("ray"), TABLE)
    return TABLE


def job_args(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "lakeray.jobs.pretrain", "--config", "jobs/configs/pretrain_tiny.yaml",
            "--set", f"data.table={TABLE}", "--set", "optim.warmup_steps=2", *[
                x for o in overrides for x in ("--set", o)]]


class Job:
    """A job process whose output is collected line by line (the run id comes first)."""

    def __init__(self, args: list[str], env: dict):
        self.proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def wait(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def run_id(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith("run "):
                    return line.split()[1]
            assert self.proc.poll() is None, self.output
            time.sleep(0.5)
        raise AssertionError("no run id printed:\n" + self.output)

    def ray_job_id(self) -> str:
        """The Ray job id the driver printed beside the run id."""
        line = next(x for x in self.lines if x.startswith("run "))
        return line.split("(job ", 1)[1].split(")", 1)[0]

    def result(self) -> dict:
        return json.loads([line for line in self.lines if line.startswith("{")][-1])


def checkpoints(platform, client, run_id: str) -> list:
    """The run's checkpoints Ray Train has committed."""
    from lakeray.training.runner import committed_checkpoints, run_artifact_dir

    return committed_checkpoints(run_artifact_dir(platform.settings, client.get_run(run_id)["info"]))[0]


def wait_for_checkpoint(platform, client, job: Job, run_id: str, timeout: float = 300) -> None:
    """Until Ray Train has committed a checkpoint of the run (every rank reported it)."""
    deadline = time.monotonic() + timeout
    while not checkpoints(platform, client, run_id):
        assert job.proc.poll() is None, job.output
        assert time.monotonic() < deadline, "no checkpoint was written:\n" + job.output
        time.sleep(0.5)


def test_pretrain_with_zero2_on_two_workers(platform, corpus, tmp_path):
    model = f"main.default.tiny_lm_{uuid.uuid4().hex[:6]}"
    job = Job(job_args("optim.max_steps=8", "schedule.eval_every=4", "schedule.checkpoint_every=4",
                       f"output.model={model}"), platform.env)
    assert job.wait() == 0, job.output
    out = job.result()
    c = platform.client("ray")
    run_id = out["run_id"]
    assert f"run {run_id}" in job.output and "step 8/8" in job.output  # ids first, progress per step
    assert out["model"] == model and out["version"] == 1

    run = c.get_run(run_id)
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["scaling.zero_stage"] == "2" and params["scaling.num_workers"] == "2"
    loss = [p["value"] for p in sorted(c.get_metric_history(run_id, "loss"), key=lambda p: p["step"])]
    assert len(loss) == 8 and loss[-1] < loss[0]  # it learns
    for key in ("lr", "grad_norm", "tokens_per_s", "eval_loss", "perplexity"):
        assert c.get_metric_history(run_id, key), key
    assert run["inputs"]["dataset_inputs"][0]["dataset"]["name"] == TABLE
    assert len(checkpoints(platform, c, run_id)) == 2  # keep_checkpoints

    # lineage table -> run -> model version
    edges = c.get_lineage("model_version", f"{model}/1", depth=2)["edges"]
    assert {(e["source"]["type"], e["source"]["name"]) for e in edges} >= {("run", run_id), ("table", TABLE)}
    # the workers' token is gone once the job ends
    [worker_token] = [t for t in c.list_tokens() if t["comment"] == f"training run {run_id}"]
    assert worker_token["revoked"]

    # the registered version is a loadable transformers model with its tokenizer
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token
    mlflow.set_tracking_uri(platform.url)
    mlflow.set_registry_uri(platform.url)
    local = mlflow.artifacts.download_artifacts(f"models:/{model}/1", dst_path=str(tmp_path))
    assert "MLmodel" in os.listdir(local)
    tok = AutoTokenizer.from_pretrained(local)
    net = AutoModelForCausalLM.from_pretrained(local)
    ids = tok("Ray is", return_tensors="pt")["input_ids"]
    assert net.generate(ids, max_new_tokens=5, do_sample=False).shape[1] == ids.shape[1] + 5


def test_a_killed_worker_restarts_from_the_last_checkpoint(platform, corpus):
    from ray.util.state import list_actors

    platform.join()
    c = platform.client("ray")
    # enough steps that the kill lands mid-run (a step of the tiny model takes ~0.1 s and Ray
    # Train commits a checkpoint within ~2 s of its report)
    job = Job(job_args("optim.max_steps=80", "schedule.checkpoint_every=10", "schedule.eval_every=1000",
                       "schedule.log_every=10", "scaling.max_failures=2", "output.model=null"), platform.env)
    run_id = job.run_id()
    ray_job = job.ray_job_id()
    wait_for_checkpoint(platform, c, job, run_id)
    # this job's workers only: another test's worker may still be listed as alive
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE"),
                                   ("job_id", "=", ray_job)], detail=True)
    assert workers, job.output
    os.kill(workers[-1].pid, signal.SIGKILL)
    assert job.wait() == 0, job.output
    assert "resumed from the checkpoint at step" in job.output
    steps = [p["step"] for p in c.get_metric_history(run_id, "loss")]
    assert max(steps) == 80 and set(range(10, 81, 10)) <= set(steps)
    assert c.get_run(run_id)["info"]["status"] == "FINISHED"
    # what the dead worker group left half-written is gone; the committed checkpoints remain
    root = checkpoints(platform, c, run_id)[0].parent
    assert sorted(p for p in root.glob("checkpoint_*") if p.is_dir()) == sorted(checkpoints(platform, c, run_id))


def test_resume_an_interrupted_run_explicitly(platform, corpus):
    c = platform.client("ray")
    job = Job(job_args("optim.max_steps=80", "schedule.checkpoint_every=10", "schedule.eval_every=1000",
                       "schedule.log_every=10", "output.model=null"), platform.env)
    run_id = job.run_id()
    wait_for_checkpoint(platform, c, job, run_id)
    os.killpg(job.proc.pid, signal.SIGKILL)  # the driver and everything it started in its session
    job.wait()
    assert c.get_run(run_id)["info"]["status"] == "RUNNING"  # nobody finished it

    again = Job([*job_args("optim.max_steps=80", "schedule.checkpoint_every=10", "schedule.eval_every=1000",
                           "schedule.log_every=10", "output.model=null"), "--resume-run", run_id], platform.env)
    assert again.wait() == 0, again.output
    assert "resumed from the checkpoint at step" in again.output
    assert c.get_run(run_id)["info"]["status"] == "FINISHED"
    assert max(p["step"] for p in c.get_metric_history(run_id, "loss")) == 80

    finished = Job([*job_args(), "--resume-run", run_id], platform.env)
    assert finished.wait() == 2 and "has already finished" in finished.output


@pytest.mark.parametrize("overrides, message", [
    (["scaling.zero_stage=5"], "scaling.zero_stage must be 0, 1, 2 or 3"),
    (["optim.lr=-1"], "optim.lr: Input should be greater than 0"),
    (["data.table=main.default.no_such_table"], "data.table main.default.no_such_table does not exist"),
    (["data.column=body"], "data.column 'body' is not a column of main.default.pretrain_docs"),
    (["data.column=num_chars"], "is LONG, not a string"),
    (["output.model=main.nowhere.m"], "schema main.nowhere does not exist"),
])
def test_bad_configs_fail_before_any_worker_starts(platform, corpus, overrides, message):
    c = platform.client("ray")
    experiment = c.set_experiment("/lakeray/pretrain")
    before = len(c.search_runs([experiment]))
    job = Job(job_args(*overrides), platform.env)
    assert job.wait(timeout=180) == 2, job.output
    assert message in job.output
    assert "step 1/" not in job.output
    assert len(c.search_runs([experiment])) == before  # no run was even opened


def test_no_select_on_the_table_is_refused_up_front(platform, corpus):
    admin = platform.client("ray")
    name = f"trainee_{uuid.uuid4().hex[:6]}"
    admin.create_principal(name)
    admin.grant("catalog", "main", name, "USE CATALOG")
    admin.grant("schema", "main.default", name, "USE SCHEMA")
    token = admin.create_token(principal=name)["token_value"]
    job = Job(job_args(), {**platform.env, "LAKERAY_TOKEN": token})
    assert job.wait(timeout=180) == 2, job.output
    assert f"data.table {TABLE}" in job.output and "SELECT" in job.output
