"""``lakeray jobs submit|list|logs|stop``: lakeray's jobs through Ray's Jobs API.

A submitted job is an ordinary Ray job (``ray job list`` shows it) whose entrypoint is
``python -m lakeray.jobs.<name> --config config.yaml``: the config file travels as the job's
working directory, and the job runs as the submitting caller with a token made for it (the
caller's own token never leaves this machine), revoked by ``lakeray jobs stop``.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from lakeray.errors import InvalidArgument, NotFound, Unavailable
from lakeray.settings import Settings

#: what ``lakeray jobs submit <name>`` runs: the module of each job.
JOBS = {
    "pretrain": "lakeray.jobs.pretrain",
    "finetune": "lakeray.jobs.finetune",
    "tune": "lakeray.jobs.tune",
    "load_corpus": "lakeray.jobs.load_corpus",
    "build_chat": "lakeray.jobs.build_chat",
    "batch_infer": "lakeray.jobs.batch_infer",
}
#: the config model each job's YAML is checked against before submitting
CONFIGS = {"pretrain": "PretrainConfig", "finetune": "FinetuneConfig", "tune": "TuneConfig"}
JOB_TOKEN_LIFETIME_S = 7 * 24 * 3600


def _job_env(settings: Settings, token: str) -> dict:
    """The settings a job needs to find the platform, and its token."""
    env = {"LAKERAY_HOME": settings.home, "LAKERAY_DEFAULT_MODEL_SCHEMA": settings.default_model_schema,
           "LAKERAY_TOKEN": token}
    if settings.database_url:
        env["LAKERAY_DATABASE_URL"] = settings.database_url
    return env


def _jobs_client(settings: Settings):
    from ray.job_submission import JobSubmissionClient

    address = settings.ray_address if settings.ray_address.startswith("http") else None
    if address is None:
        from lakeray.lifecycle import connect_ray

        connect_ray(settings, start=False)  # joining the cluster also sets up Ray's token auth here
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise Unavailable(f"Ray's Jobs API is not reachable ({e}); is the platform up (`lakeray up`)?") from None


def _python(settings: Settings) -> str:
    # On a cluster this machine started (or joined locally) the job runs with this interpreter,
    # which has lakeray installed; on a remote cluster, with the cluster's `python`.
    return sys.executable if not settings.ray_address.startswith("http") else "python"


def submit(settings: Settings, client, job: str, config: str | None = None, overrides: list[str] | None = None,
           args: list[str] | None = None) -> dict:
    """Submit job ``job`` with a config file and ``--set`` overrides; returns ``{"job_id", "entrypoint"}``.

    ``client`` is the caller's lakeray client: the job gets a token of the caller's own.
    """
    if job not in JOBS:
        raise InvalidArgument(f"unknown job {job!r}: choose one of {', '.join(sorted(JOBS))}")
    cmd = [_python(settings), "-m", JOBS[job]]
    workdir = Path(tempfile.mkdtemp(prefix="lakeray-job-"))
    try:
        if config is not None:
            if not Path(config).is_file():
                raise InvalidArgument(f"config file {config} does not exist")
            shutil.copy(config, workdir / "config.yaml")
            cmd += ["--config", "config.yaml"]
            if job in CONFIGS:
                from lakeray.training import config as cfglib

                cfglib.load(getattr(cfglib, CONFIGS[job]), config, overrides)  # a bad config fails here, not in Ray
        for item in overrides or []:
            cmd += ["--set", item]
        cmd += list(args or [])
        token = client.create_token(lifetime_seconds=JOB_TOKEN_LIFETIME_S, comment=f"lakeray job {job}")
        env = _job_env(settings, token["token_value"])
        entrypoint = shlex.join(cmd)
        job_id = _jobs_client(settings).submit_job(
            entrypoint=entrypoint, runtime_env={"working_dir": str(workdir), "env_vars": env},
            metadata={"lakeray.job": job, "lakeray.token_id": token["token_info"]["token_id"],
                      "lakeray.submitted_by": client.whoami()["name"]})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"job_id": job_id, "entrypoint": entrypoint}


def list_jobs(settings: Settings) -> list[dict]:
    """lakeray's jobs on the cluster, newest first: id, job, status, submitter, times."""
    out = []
    for info in _jobs_client(settings).list_jobs():
        meta = info.metadata or {}
        if "lakeray.job" not in meta:
            continue
        out.append({"job_id": info.submission_id, "job": meta["lakeray.job"], "status": str(info.status.value),
                    "submitted_by": meta.get("lakeray.submitted_by"), "start_time": info.start_time,
                    "end_time": info.end_time, "message": info.message})
    return sorted(out, key=lambda j: j["start_time"] or 0, reverse=True)


def _info(settings: Settings, job_id: str):
    try:
        return _jobs_client(settings).get_job_info(job_id)
    except RuntimeError:
        raise NotFound(f"job {job_id} does not exist") from None


def logs(settings: Settings, job_id: str, follow: bool = False) -> None:
    """Print a job's output; with ``follow``, until it ends."""
    import asyncio

    _info(settings, job_id)
    jobs = _jobs_client(settings)
    if not follow:
        print(jobs.get_job_logs(job_id), end="")
        return

    async def tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            print(chunk, end="", flush=True)

    asyncio.run(tail())


def stop(settings: Settings, client, job_id: str) -> dict:
    """Stop a running job and revoke its token; returns its status."""
    info = _info(settings, job_id)
    jobs = _jobs_client(settings)
    stopped = jobs.stop_job(job_id)
    token_id = (info.metadata or {}).get("lakeray.token_id")
    if token_id:
        client.revoke_token(token_id)
    return {"job_id": job_id, "stopped": bool(stopped), "status": str(jobs.get_job_status(job_id).value)}
