"""lakeray.jobs.tune on the session platform: 2 trials of the tiny pretraining config, each a
run nested under the search's run; the best trial's values on the parent; its model registered."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from tests.conftest import REPO

pytestmark = pytest.mark.ray


def test_a_two_trial_search_registers_the_best(platform):
    from lakeray.jobs.load_corpus import load

    c = platform.client("ray")
    load(c, "main.default.tune_docs")
    model = f"main.default.tuned_{uuid.uuid4().hex[:6]}"
    out = subprocess.run(
        [sys.executable, "-m", "lakeray.jobs.tune", "--config", "jobs/configs/tune_pretrain.yaml",
         "--set", "num_samples=2", "--set", "base.data.table=main.default.tune_docs",
         "--set", "base.optim.max_steps=6", "--set", "base.schedule.eval_every=3",
         "--set", "base.schedule.checkpoint_every=3", "--set", "search=optuna", f"--set=output.model={model}"],
        env=platform.env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    parent = c.get_run(result["run_id"])
    assert parent["info"]["status"] == "FINISHED"

    experiment = c.get_experiment_by_name("/lakeray/tune-trials")["experiment_id"]
    trials = c.search_runs([experiment], filter=f"tags.mlflow.parentRunId = '{result['run_id']}'")
    # ASHA may stop the weaker trial early: its run is closed as KILLED, never left RUNNING
    assert len(trials) == 2 and {t["info"]["status"] for t in trials} <= {"FINISHED", "KILLED"}
    lrs = {t["info"]["run_id"]: {p["key"]: p["value"] for p in t["data"]["params"]}["optim.lr"] for t in trials}
    assert len(set(lrs.values())) == 2  # two different points of the space

    best = result["best"]
    assert best["run_id"] in lrs
    scores = {t["info"]["run_id"]: {m["key"]: m["value"] for m in t["data"]["metrics"]}["eval_loss"] for t in trials
              if t["info"]["status"] == "FINISHED"}
    assert best["run_id"] == min(scores, key=scores.get)
    tags = {t["key"]: t["value"] for t in parent["data"]["tags"]}
    params = {p["key"]: p["value"] for p in parent["data"]["params"]}
    assert tags["lakeray.best_run_id"] == best["run_id"]
    assert float(params["best.optim.lr"]) == pytest.approx(float(lrs[best["run_id"]]))
    assert result["model"] == model and result["version"] == 1
    version = c.get_model_version(model, 1)
    assert version["run_id"] == best["run_id"]
