"""`lakeray jobs submit|list|logs|stop` wrap Ray's Jobs API: a job runs as the submitter with a
token of its own, shows in the list, its logs stream, stopping it revokes its token, and a bad
config is refused before anything is submitted."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.ray


def _status(platform, job_id: str) -> str:
    listed = platform.cli("jobs", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    jobs = json.loads(listed.stdout)["jobs"]
    return next(j["status"] for j in jobs if j["job_id"] == job_id)


def _submitted_id(out) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.split("submitted job ")[1].split(":")[0]


def test_submit_follow_list_a_job(platform):
    out = platform.cli("jobs", "submit", "load_corpus", "--follow", "--", "--table", "main.default.jobs_cli_docs",
                       timeout=600)
    job_id = _submitted_id(out)
    assert "loaded" in out.stdout and "main.default.jobs_cli_docs" in out.stdout
    assert _status(platform, job_id) == "SUCCEEDED"
    logs = platform.cli("jobs", "logs", job_id)
    assert "loaded" in logs.stdout
    c = platform.client("ray")
    assert c.get_table("main.default.jobs_cli_docs")["owner"] == "admin"  # it ran as the submitter
    edges = c.get_lineage("table", "main.default.jobs_cli_docs")["edges"]
    assert edges and edges[0]["job_id"] == job_id  # lineage names the submission


def test_stop_a_running_job_revokes_its_token(platform):
    out = platform.cli("jobs", "submit", "pretrain", "--config", "jobs/configs/pretrain_tiny.yaml",
                       "--set", "data.table=main.default.jobs_cli_docs", "--set", "optim.max_steps=100000",
                       "--set", "output.model=null")
    job_id = _submitted_id(out)
    deadline = time.monotonic() + 120
    while _status(platform, job_id) == "PENDING" and time.monotonic() < deadline:
        time.sleep(1)
    stopped = json.loads(platform.cli("jobs", "stop", job_id).stdout)
    assert stopped["stopped"] is True
    deadline = time.monotonic() + 120
    while _status(platform, job_id) not in ("STOPPED", "FAILED") and time.monotonic() < deadline:
        time.sleep(1)
    assert _status(platform, job_id) == "STOPPED"
    tokens = [t for t in platform.client("ray").list_tokens() if t["comment"] == "lakeray job pretrain"]
    assert tokens and all(t["revoked"] for t in tokens)


def test_bad_submissions_are_refused_before_ray(platform):
    before = len(json.loads(platform.cli("jobs", "list").stdout)["jobs"])
    bad = platform.cli("jobs", "submit", "pretrain", "--config", "jobs/configs/pretrain_tiny.yaml",
                       "--set", "scaling.zero_stage=7")
    assert bad.returncode == 1 and "scaling.zero_stage must be 0, 1, 2 or 3" in bad.stderr
    unknown = platform.cli("jobs", "submit", "train_everything")
    assert unknown.returncode == 1 and "unknown job 'train_everything'" in unknown.stderr
    missing = platform.cli("jobs", "submit", "pretrain", "--config", "nope.yaml")
    assert missing.returncode == 1 and "config file nope.yaml does not exist" in missing.stderr
    assert len(json.loads(platform.cli("jobs", "list").stdout)["jobs"]) == before
    assert platform.cli("jobs", "logs", "raysubmit_nope").returncode == 1
