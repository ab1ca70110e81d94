"""Which Ray job the current process belongs to, for lineage edges and run tags."""

from __future__ import annotations

import json
import os

#: the job config Ray's job supervisor hands the entrypoint (it names the submission)
_SUBMITTED_JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def job_id() -> str | None:
    """The submission id under ``ray job submit`` / ``lakeray jobs submit`` (what ``ray job
    list`` shows), else the Ray job id of this driver, else None outside Ray."""
    try:
        submitted = json.loads(os.environ.get(_SUBMITTED_JOB_CONFIG, "{}"))["metadata"]["job_submission_id"]
    except (ValueError, KeyError, TypeError):
        submitted = None
    if isinstance(submitted, str) and submitted:
        return submitted
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_job_id()
    except Exception:  # noqa: BLE001 - lineage without a job id is still useful
        return None
    return os.environ.get("RAY_JOB_ID")
