"""The driver side of a training job: check, track, feed Ray Train, register the result.

``pretrain`` checks everything a worker would trip over (the config, the table and column, the
caller's SELECT, the output model's schema and rights) before any worker starts; then opens a
run, trains the tokenizer, streams the table through Ray Data into a ``TorchTrainer``, and
registers the final model as a new version of a catalog model with lineage table -> run -> model
version. Checkpoints live under the run's artifacts (``checkpoints/``), so a job resumed from a
run picks up its latest checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lakeray.errors import InvalidArgument, LakerayError, NotFound, PermissionDenied
from lakeray.job_context import job_id
from lakeray.training.config import PretrainConfig

CHECKPOINTS = "checkpoints"
#: Ray Train's record of the checkpoints it has committed, kept beside them
RAY_TRAIN_SNAPSHOT = "checkpoint_manager_snapshot.json"
WORKER_TOKEN_LIFETIME_S = 7 * 24 * 3600  # the longest a training job may run
PROXY = "mlflow-artifacts:/"


@dataclass
class Prepared:
    """What the checks found: the table's pinned version and the caller's identity."""

    table_version: int
    num_rows: int
    caller: str


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value if not isinstance(value, list | tuple) else json.dumps(list(value))
    return out


def check_source(client, table: str, column: str, fits, wanted: str, shown: str = "type_name") -> Prepared:
    """The table exists, the caller may SELECT it, it has rows, and ``fits(column_info)`` holds
    for ``column`` (``wanted`` says what that means and ``shown`` which type field the error
    names)."""
    try:
        info = client.describe_table(table)
    except NotFound:
        raise InvalidArgument(f"data.table {table} does not exist") from None
    except PermissionDenied as e:
        raise PermissionDenied(f"data.table {table}: {e.message}") from None
    columns = {c["name"]: c for c in info["columns"]}
    if column not in columns:
        raise InvalidArgument(f"data.column {column!r} is not a column of {table} "
                              f"(it has {', '.join(sorted(columns)) or 'none'})")
    if not fits(columns[column]):
        raise InvalidArgument(f"data.column {column!r} of {table} is {columns[column].get(shown)}, "
                              f"not {wanted}")
    if not info["num_rows"]:
        raise InvalidArgument(f"data.table {table} has no rows")
    return Prepared(int(info["version"]), int(info["num_rows"]), client.whoami()["name"])


def check_text_source(client, table: str, column: str) -> Prepared:
    """:func:`check_source` for a string column."""
    return check_source(client, table, column, lambda c: c.get("type_name") in ("STRING", "string"), "a string")


def check_output_model(client, full_name: str | None) -> None:
    """The output model's schema exists and the caller may add a version: owner or MANAGE of an
    existing model, or CREATE MODEL on the schema for a new one (admins may do anything)."""
    if full_name is None:
        return
    catalog, schema, _ = full_name.split(".")
    try:
        client.get_schema(f"{catalog}.{schema}")
    except NotFound:
        raise InvalidArgument(f"output.model: schema {catalog}.{schema} does not exist") from None
    try:
        model = client.get_registered_model(full_name)
    except NotFound:
        model = None
    me = client.whoami()
    if me.get("is_admin") or (model is not None and model.get("owner") == me["name"]):
        return
    held = set(client.effective_permissions("registered_model" if model else "schema",
                                            full_name if model else f"{catalog}.{schema}")["privileges"])
    if not held & ({"MANAGE"} if model else {"CREATE MODEL", "MANAGE"}):
        what = f"a new version of {full_name} (owner or MANAGE)" if model else \
            f"model {full_name} (CREATE MODEL on {catalog}.{schema})"
        raise PermissionDenied(f"output.model: you may not create {what}")


def run_artifact_dir(settings, run: dict) -> Path:
    """The local directory of a run's artifacts under the platform's artifact root."""
    uri = run["artifact_uri"]
    if not uri.startswith(PROXY):
        raise InvalidArgument(f"run {run['run_id']} keeps its artifacts at {uri!r}, not under the platform root")
    return Path(settings.artifact_root) / uri[len(PROXY):]


def committed_checkpoints(directory: Path) -> tuple[list[Path], Path | None]:
    """The checkpoints under a run's ``checkpoints/`` folder that Ray Train recorded as complete
    (every rank reported), and the latest of them. A checkpoint's directory appears before
    that, so a job killed mid-checkpoint leaves one that must not be resumed from."""
    root = directory / CHECKPOINTS
    try:
        snapshot = json.loads((root / RAY_TRAIN_SNAPSHOT).read_text())
    except (FileNotFoundError, ValueError):
        return [], None
    latest = snapshot.get("latest_checkpoint_result") or {}
    return ([root / r["checkpoint_dir_name"] for r in snapshot.get("checkpoint_results", [])],
            root / latest["checkpoint_dir_name"] if latest else None)


def latest_checkpoint(directory: Path):
    """The newest complete Ray Train checkpoint of a run (its artifact directory), or None."""
    import ray.train

    _, latest = committed_checkpoints(directory)
    return ray.train.Checkpoint.from_directory(str(latest)) if latest is not None and latest.is_dir() else None


def prune_uncommitted_checkpoints(directory: Path) -> None:
    """Remove the checkpoint directories Ray Train never recorded (written by a worker group
    that died before every rank reported): nothing can resume from them."""
    import shutil

    kept, _ = committed_checkpoints(directory)
    for path in (directory / CHECKPOINTS).glob("checkpoint_*"):
        if path.is_dir() and path not in kept:
            shutil.rmtree(path, ignore_errors=True)


def job_main(argv: list[str] | None, prog: str, doc: str, config_cls: str, run, resumable: bool = True) -> int:
    """The command line of a training job: ``--config``, ``--set``, optionally ``--resume-run``;
    the config is checked before Ray is touched; exit status 2 on a LakerayError, which is
    printed as ``error: <message>``; the result is printed as JSON.

    ``run(cfg, client, settings, **extra)`` does the job (``resume_run`` is passed if resumable).
    """
    import argparse
    import sys

    from lakeray.training import config as cfglib

    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[2])
    p.add_argument("--config", help="the job's YAML config (see jobs/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    if resumable:
        p.add_argument("--resume-run", help="continue this unfinished run from its latest checkpoint")
    args = p.parse_args(argv)
    try:
        cfg = cfglib.load(getattr(cfglib, config_cls), args.config, args.set)  # a bad config fails before Ray
        client, settings = connect_job()
        out = run(cfg, client, settings, **({"resume_run": args.resume_run} if resumable else {}))
    except LakerayError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


def connect_job():
    """``(client, settings)`` for a job driver: joins the cluster with worker output shown (the
    workers' per-step progress lines), then connects over Ray with the job's token."""
    import ray

    import lakeray
    from lakeray.settings import NAMESPACE, Settings

    settings = Settings.from_env()
    if not ray.is_initialized():
        ray.init(address=settings.ray_address or "auto", namespace=NAMESPACE, log_to_driver=True,
                 logging_level="WARNING")
    return lakeray.connect(settings=settings), settings


@dataclass
class Job:
    """One training job as the generic driver sees it.

    ``prepare(token, run, resume)`` returns ``(loop_config, datasets)`` for the workers (the
    common keys are added here); ``inputs`` are ``(table, version, column)`` read by the job;
    ``upstream`` are extra lineage sources ``(type, name)`` of the run (a base model version).
    """

    kind: str
    cfg: object
    describe: str
    params: dict
    inputs: list[tuple[str, int, str]]
    prepare: object
    mlmodel_kind: str
    upstream: list[tuple[str, str]] = field(default_factory=list)


def run_job(job: Job, client, settings, resume_run: str | None = None, parent_run_id: str | None = None,
            callbacks: list | None = None) -> dict:
    """Open (or resume) the run, train, log and register the model; returns ``{"run_id",
    "model", "version", "metrics"}``. ``parent_run_id`` nests the run (a search's trial);
    ``callbacks`` go to Ray Train (Tune's report callback)."""
    cfg = job.cfg
    if resume_run:
        run = client.get_run(resume_run)["info"]
        if run["status"] == "FINISHED":
            raise InvalidArgument(f"run {resume_run} has already finished; start a new job instead")
        resume = latest_checkpoint(run_artifact_dir(settings, run))
        if resume is None:
            raise InvalidArgument(f"run {resume_run} has no checkpoint to resume from")
    else:
        experiment = client.set_experiment(cfg.output.experiment)
        run = client.create_run(experiment, run_name=cfg.output.run_name, parent_run_id=parent_run_id,
                                tags={"lakeray.job": job.kind, "lakeray.job_id": job_id() or ""})
        resume = None
    run_id = run["run_id"]
    print(f"run {run_id} (job {job_id() or 'local'}): {job.describe}", flush=True)
    try:
        if not resume_run:
            client.log_batch(run_id, params=job.params)
            client.log_inputs(run_id, [{"dataset": {
                "name": table, "digest": f"v{version}", "source_type": "table",
                "source": json.dumps({"table": table, "version": version, "column": column})},
                "tags": [{"key": "mlflow.data.context", "value": "training"}]} for table, version, column in job.inputs])
            for table, _, _ in job.inputs:
                client.record_lineage("table", table, "run", run_id, run_id=run_id, job_id=job_id())
            for stype, name in job.upstream:
                client.record_lineage(stype, name, "run", run_id, run_id=run_id, job_id=job_id())
        # The workers log as the caller with a token of their own, revoked when the job ends.
        job_token = client.create_token(lifetime_seconds=WORKER_TOKEN_LIFETIME_S, comment=f"training run {run_id}")
        try:
            loop_config, datasets = job.prepare(job_token["token_value"], run, resume)
            loop_config.update({
                "optim": cfg.optim.model_dump(), "scaling": cfg.scaling.model_dump(),
                "schedule": cfg.schedule.model_dump(), "seed": cfg.seed, "run_id": run_id,
                "token": job_token["token_value"], "settings": settings.to_dict(),
                # an explicit resume: the workers start from this checkpoint unless Ray Train has
                # a newer one of this job (after a worker died)
                "resume_from": resume.path if resume is not None else None})
            result = _fit(cfg, settings, run, loop_config, datasets, callbacks)
        finally:
            client.revoke_token(job_token["token_info"]["token_id"])
        version = _register(cfg, client, run_id, result, job.mlmodel_kind, f"{job.kind}:{job.describe}")
    except BaseException:
        client.end_run(run_id, "FAILED")
        raise
    client.end_run(run_id, "FINISHED")
    return {"run_id": run_id, **version, "metrics": result["metrics"]}


def pretrain(cfg: PretrainConfig, client, settings, resume_run: str | None = None,
             parent_run_id: str | None = None, callbacks: list | None = None) -> dict:
    """Pretrain from scratch as ``client``'s caller (see :func:`run_job`)."""
    size = cfg.model.resolved()
    prepared = check_text_source(client, cfg.data.table, cfg.data.column)
    check_output_model(client, cfg.output.model)

    def prepare(token: str, run: dict, resume) -> tuple[dict, dict]:
        from lakeray.training.data import DATA_CPUS, token_blocks
        from lakeray.training.tokenizer import train_bpe

        ds = client.read_dataset(cfg.data.table, version=prepared.table_version, columns=[cfg.data.column],
                                 num_cpus=DATA_CPUS)
        if cfg.data.max_rows:
            ds = ds.limit(cfg.data.max_rows)
        sample = [r[cfg.data.column] for r in ds.limit(cfg.tokenizer_sample_rows).take_all()
                  if isinstance(r[cfg.data.column], str)]
        tokenizer = train_bpe(sample, size["vocab_size"])
        print(f"tokenizer: byte-level BPE, {len(tokenizer)} tokens, trained on {len(sample)} rows", flush=True)
        tokenizer_json = tokenizer.backend_tokenizer.to_str()
        train_ds, eval_ds = token_blocks(ds, tokenizer_json, cfg.data.column, size["block_size"],
                                         cfg.data.eval_fraction)
        return {"size": size, "tokenizer_json": tokenizer_json}, {"train": train_ds, "eval": eval_ds}

    job = Job("pretrain", cfg, f"pretraining on {cfg.data.table}@v{prepared.table_version}",
              {**_flatten(cfg.model_dump(mode="json")), **{f"resolved.{k}": v for k, v in size.items()}},
              [(cfg.data.table, prepared.table_version, cfg.data.column)], prepare, "completion")
    return run_job(job, client, settings, resume_run, parent_run_id, callbacks)


def _fit(cfg, settings, run: dict, loop_config: dict, datasets: dict, callbacks: list | None) -> dict:
    """Ray Train's TorchTrainer over the workers' loop; the final checkpoint's exported model."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from lakeray.training.loop import HF_DIR, train_loop

    env = {"DS_ACCELERATOR": "cpu"} if not cfg.scaling.use_gpu else {}
    trainer = TorchTrainer(
        train_loop, train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu,
                                               resources_per_worker={"CPU": cfg.scaling.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=CHECKPOINTS, storage_path=str(run_artifact_dir(settings, run)),
            failure_config=ray.train.FailureConfig(max_failures=cfg.scaling.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.schedule.keep_checkpoints),
            worker_runtime_env={"env_vars": env}, callbacks=callbacks),
        datasets=datasets)
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    prune_uncommitted_checkpoints(run_artifact_dir(settings, run))
    if result.checkpoint is None:
        raise LakerayError("training ended without a checkpoint")
    hf = Path(result.checkpoint.path) / HF_DIR
    if not hf.is_dir():
        raise LakerayError(f"the final checkpoint {result.checkpoint.path} holds no exported model")
    return {"hf_dir": hf, "metrics": dict(result.metrics or {})}


def _register(cfg, client, run_id: str, result: dict, kind: str, source: str) -> dict:
    """Log the exported model into the run (with an MLmodel) and, if ``output.model`` is set,
    register it as the model's next version (the registry records run -> model version)."""
    from lakeray.training.mlmodel import write_mlmodel

    hf = result["hf_dir"]
    write_mlmodel(hf, run_id=run_id, kind=kind, source=source)
    client.log_artifact(run_id, hf, "model")
    if cfg.output.model is None:
        return {"model": None, "version": None}
    try:
        client.get_registered_model(cfg.output.model)
    except NotFound:
        client.create_registered_model(cfg.output.model, comment=f"trained by lakeray ({source})")
    version = client.create_model_version(cfg.output.model, source=f"runs:/{run_id}/model", run_id=run_id)
    number = version.get("version")
    print(f"registered {cfg.output.model} version {number}", flush=True)
    return {"model": cfg.output.model, "version": number}
