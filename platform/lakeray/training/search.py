"""Hyperparameter search with Ray Tune over pretraining configs.

The search is a parent run; each Tune trial runs ``runner.pretrain`` as a child run (its own
metrics, checkpoints and logged model) and forwards Ray Train's reports to Tune, so ASHA can
stop weak trials early. At the end the best trial's values and run go on the parent run, and
its model is registered as a new version of ``output.model``.
"""

from __future__ import annotations

import json

from lakeray.errors import LakerayError
from lakeray.job_context import job_id
from lakeray.training.config import Dimension, TuneConfig
from lakeray.training.runner import check_output_model, check_text_source

#: a trial's own process only drives Ray Train (its workers hold the CPUs)
TRIAL_RESOURCES = {"CPU": 0.01}  # Tune needs some resource per trial


def _space(dimensions: dict[str, Dimension]) -> dict:
    from ray import tune

    out = {}
    for key, d in dimensions.items():
        if d.choice is not None:
            out[key] = tune.choice(d.choice)
        elif d.uniform is not None:
            out[key] = tune.uniform(*d.uniform)
        elif d.loguniform is not None:
            out[key] = tune.loguniform(*d.loguniform)
        else:
            out[key] = tune.randint(d.randint[0], d.randint[1] + 1)  # inclusive, as written
    return out


def _trainable(cfg: TuneConfig, parent_run_id: str, token: str, settings_dict: dict):
    """The Tune function of one trial: a nested pretraining run reporting to Tune."""
    def trial(values: dict) -> None:
        from ray.tune.integration.ray_train import TuneReportCallback

        import lakeray
        from lakeray.settings import Settings
        from lakeray.training.runner import pretrain

        settings = Settings(**settings_dict)
        client = lakeray.connect(token=token, settings=settings)
        pretrain(cfg.trial_config(values), client, settings, parent_run_id=parent_run_id,
                 callbacks=[TuneReportCallback()])

    return trial


def tune(cfg: TuneConfig, client, settings) -> dict:
    """Run the search; returns ``{"run_id", "best": {"run_id", "values", "metric"}, "model", "version"}``."""

    first = cfg.trial_config({})  # the base alone (validated with every dimension already)
    check_text_source(client, first.data.table, first.data.column)
    check_output_model(client, cfg.output.model)
    experiment = client.set_experiment(cfg.output.experiment)
    parent = client.create_run(experiment, run_name=cfg.output.run_name,
                               tags={"lakeray.job": "tune", "lakeray.job_id": job_id() or ""})["run_id"]
    print(f"run {parent} (job {job_id() or 'local'}): {cfg.num_samples} trials, {cfg.scheduler}/{cfg.search}, "
          f"{cfg.mode} {cfg.metric}", flush=True)
    token = client.create_token(lifetime_seconds=7 * 24 * 3600, comment=f"tune run {parent}")
    try:
        client.log_batch(parent, params={"space": json.dumps({k: v.model_dump(exclude_none=True)
                                                              for k, v in cfg.space.items()}),
                                         "num_samples": cfg.num_samples, "scheduler": cfg.scheduler,
                                         "search": cfg.search, "metric": cfg.metric, "mode": cfg.mode})
        best = _settle(cfg, client, _search(cfg, parent, token["token_value"], settings))
        client.log_batch(parent, metrics={f"best_{cfg.metric}": best["metric"]},
                         params={f"best.{k}": v for k, v in best["values"].items()},
                         tags={"lakeray.best_run_id": best["run_id"]})
        version = {"model": None, "version": None}
        if cfg.output.model:
            version = _register_best(cfg, client, best["run_id"])
    except BaseException:
        client.end_run(parent, "FAILED")
        raise
    finally:
        client.revoke_token(token["token_info"]["token_id"])
    client.end_run(parent, "FINISHED")
    return {"run_id": parent, "best": best, **version}


def _search(cfg: TuneConfig, parent: str, token: str, settings) -> list:
    """Run the trials; returns ``[(result, run_id)]`` of those that reported the metric."""
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    scheduler = ASHAScheduler(grace_period=cfg.grace_period) if cfg.scheduler == "asha" else FIFOScheduler()
    search_alg = None
    if cfg.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(seed=cfg.seed)
    tuner = ray.tune.Tuner(
        ray.tune.with_resources(_trainable(cfg, parent, token, settings.to_dict()), TRIAL_RESOURCES),
        param_space=_space(cfg.space),
        tune_config=ray.tune.TuneConfig(metric=cfg.metric, mode=cfg.mode, num_samples=cfg.num_samples,
                                        scheduler=scheduler, search_alg=search_alg,
                                        max_concurrent_trials=cfg.max_concurrent_trials),
        run_config=ray.tune.RunConfig(name=f"tune-{parent}", storage_path=str(settings.artifact_root / "tune"),
                                      verbose=0))
    results = tuner.fit()
    trials = [(r, _trial_run_id(r)) for r in results if r.metrics and cfg.metric in r.metrics]
    if not trials:
        errors = [str(r.error) for r in results if r.error is not None]
        raise LakerayError(f"no trial reported {cfg.metric}" + (f": {errors[0][:500]}" if errors else ""))
    return trials


def _settle(cfg: TuneConfig, client, trials: list) -> dict:
    """Close the runs of trials the scheduler stopped early as KILLED, and pick the best trial
    among those that finished (only they have a model). A stopped trial's run is left RUNNING
    when its process ended mid-run, or FAILED when the stop reached ``run_job`` as an
    exception; Tune reports no error for either (a trial that really failed has one)."""
    finished = []
    for result, run_id in trials:
        status = client.get_run(run_id)["info"]["status"]
        if status == "RUNNING" or (status == "FAILED" and result.error is None):
            client.log_batch(run_id, tags={"lakeray.stopped_by": cfg.scheduler})
            client.end_run(run_id, "KILLED")
        elif status == "FINISHED":
            finished.append((result, run_id))
    if not finished:
        raise LakerayError("no trial ran to the end")
    best, run_id = (min if cfg.mode == "min" else max)(finished, key=lambda t: t[0].metrics[cfg.metric])
    print(f"best trial: run {run_id} {cfg.metric} {best.metrics[cfg.metric]:.4g} with {best.config}", flush=True)
    return {"run_id": run_id, "values": dict(best.config), "metric": float(best.metrics[cfg.metric])}


def _trial_run_id(result) -> str:
    """The child run of a trial: every report of its workers carries the run id."""
    run_id = (result.metrics or {}).get("run_id")
    if not isinstance(run_id, str):
        raise LakerayError("the best trial reported no run id")
    return run_id


def _register_best(cfg: TuneConfig, client, run_id: str) -> dict:
    from lakeray.errors import NotFound

    try:
        client.get_registered_model(cfg.output.model)
    except NotFound:
        client.create_registered_model(cfg.output.model, comment="best trial of lakeray.jobs.tune")
    version = client.create_model_version(cfg.output.model, source=f"runs:/{run_id}/model", run_id=run_id)
    print(f"registered {cfg.output.model} version {version['version']} (run {run_id})", flush=True)
    return {"model": cfg.output.model, "version": version["version"]}
