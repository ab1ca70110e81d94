"""Which job a process belongs to: the submission id under Ray's job supervisor."""

from __future__ import annotations

import json

from lakeray.job_context import job_id


def test_the_submission_id_comes_from_the_job_supervisor(monkeypatch):
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(
        {"runtime_env": {}, "metadata": {"job_submission_id": "raysubmit_abc", "lakeray.job": "pretrain"}}))
    assert job_id() == "raysubmit_abc"


def test_outside_a_submitted_job(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as outside any Ray driver
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.delenv("RAY_JOB_ID", raising=False)
    assert job_id() is None
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "not json")
    assert job_id() is None
