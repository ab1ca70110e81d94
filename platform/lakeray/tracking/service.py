"""The tracking service: MLflow experiments, runs, metrics, params, tags, inputs and logged
models on the metadata DB.

Plain Python, no Ray and no HTTP: the tracker actor wraps it and the REST routes call it.
Method names and keyword arguments are the fields of MLflow's REST requests, and each
method returns the body MLflow's server sends for that request (``{"run": {...}}``,
``{"experiment_id": "1"}``, ``{}``...), so a route can pass a request body straight through.
Every method takes the :class:`~lakeray.principals.service.Caller` first; permissions are
described in :mod:`lakeray.tracking.permissions`. Each mutating call is one write
transaction holding everything it changes and its one audit row (a ``log_batch`` of 1,000
metrics is one transaction), so a request id claimed by the dispatcher covers all of it.

Artifact locations are always chosen here, under the platform's artifact root:
``<root>/experiments/<id>`` for an experiment, ``.../<run_id>/artifacts`` for a run,
``.../models/<model_id>/artifacts`` for a logged model.
"""

from __future__ import annotations

import pathlib
import uuid

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from lakeray.catalog.audit import AuditLog
from lakeray.errors import AlreadyExists, InvalidArgument, NotFound
from lakeray.ids import now_ms
from lakeray.principals.service import Caller
from lakeray.storage.db import Database
from lakeray.storage.sql import plain_rows
from lakeray.tracking import filters, render, search, validation, writes
from lakeray.tracking import tables as t
from lakeray.tracking.logged_models import LoggedModels
from lakeray.tracking.permissions import (
    DEFAULT_EXPERIMENT_ID,
    EDIT,
    MANAGE,
    ExperimentPermissions,
    require,
    run_with_experiment,
)
from lakeray.tracking.run_names import random_name

DEFAULT_EXPERIMENT_NAME = "Default"
SEARCH_DEFAULT, SEARCH_LIMIT = 1000, 50000
MAX_HISTORY_PAGE = 1_000_000


def _run_id(run_id: object, run_uuid: object) -> str:
    # MLflow clients send both run_id and the deprecated run_uuid; either names the run.
    value = run_id if run_id not in (None, "") else run_uuid
    if value in (None, ""):
        raise InvalidArgument("Missing value for required parameter 'run_id'")
    return validation.run_id(value)


def _items(value: object, what: str, limit: int = validation.MAX_ENTITIES_PER_BATCH) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or len(value) > limit:
        raise InvalidArgument(f"{what} must be a list of at most {limit} entries")
    return list(value)


# Look-ups on most calls' path, built once (SQLAlchemy then reuses their compiled form; a
# statement built per call costs more to build than to run).
_EXPERIMENT = select(t.experiments).where(t.experiments.c.experiment_id == bindparam("experiment_id"))
_RUN = select(t.runs).where(t.runs.c.run_id == bindparam("run_id"))


class TrackingService(ExperimentPermissions, LoggedModels):
    """Experiments, runs and logged models, as MLflow's tracking server serves them."""

    def __init__(self, db: Database, audit: AuditLog, artifact_root: pathlib.Path):
        self.db = db
        self.audit = audit
        self.artifact_root = pathlib.Path(artifact_root).expanduser().resolve()
        self._root_uri = self.artifact_root.as_uri()
        self._default_ready = False  # a per-process memo, never authorisation-related

    def bootstrap(self) -> None:
        """Create the Default experiment (id "0") if it is missing; idempotent. The tracker
        calls it at start, so reads served elsewhere (API replicas) find it and never write;
        otherwise the first read or write that needs it creates it."""
        self._ensure_default()

    # -- helpers ------------------------------------------------------------------------------
    def experiment_location(self, experiment_id: int) -> str:
        """The artifact location of an experiment (a file:// URI under the artifact root)."""
        return f"{self._root_uri}/experiments/{experiment_id}"

    def _create_default(self, conn: Connection) -> None:
        exps = t.experiments
        if conn.execute(select(exps.c.experiment_id).where(
                (exps.c.experiment_id == DEFAULT_EXPERIMENT_ID) | (exps.c.name == DEFAULT_EXPERIMENT_NAME))).first():
            return
        now = now_ms()
        conn.execute(exps.insert().values(
            experiment_id=DEFAULT_EXPERIMENT_ID, name=DEFAULT_EXPERIMENT_NAME, lifecycle_stage="active",
            artifact_location=self.experiment_location(DEFAULT_EXPERIMENT_ID), creation_time=now,
            last_update_time=now, owner="system"))
        self.audit.record("system", "create_experiment", "experiment", str(DEFAULT_EXPERIMENT_ID), conn=conn,
                          detail={"name": DEFAULT_EXPERIMENT_NAME})

    def _ensure_default(self) -> None:
        """Create the Default experiment before a read that may show it (its own write:
        never called from a mutating method, whose first write must be its own)."""
        if self._default_ready:
            return
        with self.db.read() as conn:
            found = conn.execute(select(t.experiments.c.experiment_id).where(
                t.experiments.c.experiment_id == DEFAULT_EXPERIMENT_ID)).first()
        if found is None:
            with self.db.write() as conn:
                self._create_default(conn)
        self._default_ready = True

    def _experiment(self, conn: Connection, experiment_id: int, stages: tuple[str, ...] | None = None):
        row = conn.execute(_EXPERIMENT, {"experiment_id": experiment_id}).first()
        if row is None or (stages is not None and row.lifecycle_stage not in stages):
            raise NotFound(f"No Experiment with id={experiment_id} exists")
        return row

    def _experiment_for_write(self, conn: Connection, experiment_id: int, stages: tuple[str, ...] | None = None):
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            self._create_default(conn)  # first use, inside the caller's own transaction
        return self._experiment(conn, experiment_id, stages)

    @staticmethod
    def _check_active(experiment) -> None:
        if experiment.lifecycle_stage != "active":
            raise InvalidArgument(f"The experiment {experiment.experiment_id} must be in the 'active' state. "
                                  f"Current state is {experiment.lifecycle_stage}.")

    def _run(self, conn: Connection, run_id: str):
        row = conn.execute(_RUN, {"run_id": run_id}).first()
        if row is None:
            raise NotFound(f"Run with id={run_id} not found")
        return row

    def _run_for_write(self, conn: Connection, caller: Caller, run_id: str, action: str, level: str = EDIT,
                       active: bool = True):
        """The run (see :func:`run_with_experiment`: its id, experiment, stage and artifact URI),
        after the permission and lifecycle checks of a write; one query."""
        run = run_with_experiment(conn, run_id)
        if run is None:
            raise NotFound(f"Run with id={run_id} not found")
        require(conn, caller, run, level, action, "run", run_id)  # the row carries the experiment's name and owner
        if active and run.lifecycle_stage != "active":
            raise InvalidArgument(f"The run {run_id} must be in the 'active' state. "
                                  f"Current state is {run.lifecycle_stage}.")
        return run

    # -- experiments ------------------------------------------------------------------------
    def create_experiment(self, caller: Caller, name: str, artifact_location: str | None = None,
                          tags: list[dict] | None = None) -> dict:
        """Create an experiment owned by the caller; its artifact location is chosen by the
        platform (a client-supplied one is refused). Returns ``{"experiment_id"}``."""
        name = validation.experiment_name(name)
        if artifact_location not in (None, ""):
            raise InvalidArgument("artifact_location cannot be chosen: experiments keep their artifacts under "
                                  f"the platform's artifact root (got {str(artifact_location)[:200]!r})")
        tag_pairs = [validation.experiment_tag(x, f"tags[{i}]") for i, x in enumerate(_items(tags, "tags"))]
        exps = t.experiments
        with self.db.write() as conn:
            self._create_default(conn)
            existing = conn.execute(select(exps.c.lifecycle_stage).where(exps.c.name == name)).first()
            if existing is not None:
                hint = (" in deleted state; restore it, or choose another name"
                        if existing.lifecycle_stage == "deleted" else "")
                raise AlreadyExists(f"Experiment(name={name}) already exists{hint}.")
            exp_id = max(1, (conn.execute(select(func.max(exps.c.experiment_id))).scalar() or 0) + 1)
            now = now_ms()
            conn.execute(exps.insert().values(
                experiment_id=exp_id, name=name, artifact_location=self.experiment_location(exp_id),
                lifecycle_stage="active", creation_time=now, last_update_time=now, owner=caller.name))
            if tag_pairs:
                conn.execute(t.experiment_tags.insert(), [{"experiment_id": exp_id, "key": k, "value": v}
                                                          for k, v in dict(tag_pairs).items()])
            self.audit.record(caller.name, "create_experiment", "experiment", str(exp_id), conn=conn,
                              detail={"name": name})
        return {"experiment_id": str(exp_id)}

    def get_experiment(self, caller: Caller, experiment_id: str) -> dict:
        """``{"experiment": {...}}`` (deleted experiments too, as MLflow)."""
        exp_id = validation.experiment_id(experiment_id)
        self._ensure_default()
        with self.db.read() as conn:
            return {"experiment": render.experiments(conn, [self._experiment(conn, exp_id)], self._root_uri)[0]}

    def get_experiment_by_name(self, caller: Caller, experiment_name: str) -> dict:
        """``{"experiment": {...}}`` of the experiment with that name."""
        name = validation.experiment_name(experiment_name)
        self._ensure_default()
        with self.db.read() as conn:
            row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
            if row is None:
                raise NotFound(f"Could not find experiment with name '{name}'")
            return {"experiment": render.experiments(conn, [row], self._root_uri)[0]}

    def search_experiments(self, caller: Caller, max_results: int | None = None, page_token: str | None = None,
                           filter: str | None = None, order_by: list[str] | None = None,
                           view_type: str | None = None) -> dict:
        """``{"experiments": [...], "next_page_token"?}`` matching MLflow's experiment filter
        (``name``, ``tags.<key>``, ``creation_time``, ``last_update_time``, ``experiment_id``)."""
        comparisons = search.parse_filter(search.EXPERIMENTS, filter)
        orders = search.parse_order_by(search.EXPERIMENTS, order_by)
        stages = validation.view_type(view_type)
        size = search.max_results(max_results, SEARCH_DEFAULT, SEARCH_LIMIT)
        digest = search.query_digest("experiments", filter, order_by, stages)
        offset = search.page_offset(page_token, digest)
        exps = t.experiments
        query = (select(exps).where(exps.c.lifecycle_stage.in_(stages),
                                    *filters.experiment_conditions(comparisons, self.db.dialect))
                 .order_by(*filters.experiment_order(orders)).offset(offset).limit(size + 1))
        self._ensure_default()
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            out: dict = {"experiments": render.experiments(conn, rows[:size], self._root_uri)}
        if len(rows) > size:
            out["next_page_token"] = search.page_token(offset + size, digest)
        return out

    def update_experiment(self, caller: Caller, experiment_id: str, new_name: str) -> dict:
        """Rename an active experiment (MANAGE)."""
        exp_id = validation.experiment_id(experiment_id)
        name = validation.experiment_name(new_name)
        exps = t.experiments
        with self.db.write() as conn:
            experiment = self._experiment_for_write(conn, exp_id)
            require(conn, caller, experiment, MANAGE, "update_experiment")
            if experiment.lifecycle_stage != "active":
                raise InvalidArgument("Cannot rename a non-active experiment.")
            clash = conn.execute(select(exps.c.experiment_id).where(exps.c.name == name)).scalar()
            if clash is not None and clash != exp_id:
                raise AlreadyExists(f"Experiment(name={name}) already exists.")
            conn.execute(update(exps).where(exps.c.experiment_id == exp_id)
                         .values(name=name, last_update_time=now_ms()))
            self.audit.record(caller.name, "update_experiment", "experiment", str(exp_id), conn=conn,
                              detail={"old_name": experiment.name, "new_name": name})
        return {}

    def delete_experiment(self, caller: Caller, experiment_id: str) -> dict:
        """Mark an active experiment and all its runs deleted (MANAGE); restorable."""
        exp_id = validation.experiment_id(experiment_id)
        if exp_id == DEFAULT_EXPERIMENT_ID:
            raise InvalidArgument("Cannot delete the default experiment '0'. This is an internally reserved "
                                  "experiment.")
        now = now_ms()
        with self.db.write() as conn:
            experiment = self._experiment(conn, exp_id, ("active",))
            require(conn, caller, experiment, MANAGE, "delete_experiment")
            conn.execute(update(t.experiments).where(t.experiments.c.experiment_id == exp_id)
                         .values(lifecycle_stage="deleted", last_update_time=now))
            conn.execute(update(t.runs).where(t.runs.c.experiment_id == exp_id)
                         .values(lifecycle_stage="deleted", deleted_time=now))
            self.audit.record(caller.name, "delete_experiment", "experiment", str(exp_id), conn=conn)
        return {}

    def restore_experiment(self, caller: Caller, experiment_id: str) -> dict:
        """Restore a deleted experiment and its runs (MANAGE)."""
        exp_id = validation.experiment_id(experiment_id)
        with self.db.write() as conn:
            experiment = self._experiment(conn, exp_id, ("deleted",))
            require(conn, caller, experiment, MANAGE, "restore_experiment")
            conn.execute(update(t.experiments).where(t.experiments.c.experiment_id == exp_id)
                         .values(lifecycle_stage="active", last_update_time=now_ms()))
            conn.execute(update(t.runs).where(t.runs.c.experiment_id == exp_id)
                         .values(lifecycle_stage="active", deleted_time=None))
            self.audit.record(caller.name, "restore_experiment", "experiment", str(exp_id), conn=conn)
        return {}

    def set_experiment_tag(self, caller: Caller, experiment_id: str, key: str, value: str) -> dict:
        """Set (or replace) a tag on an active experiment (EDIT)."""
        exp_id = validation.experiment_id(experiment_id)
        name, value = validation.experiment_tag({"key": key, "value": value})
        with self.db.write() as conn:
            experiment = self._experiment_for_write(conn, exp_id)
            require(conn, caller, experiment, EDIT, "set_experiment_tag")
            self._check_active(experiment)
            writes.upsert(conn, t.experiment_tags, ["experiment_id", "key"],
                          [{"experiment_id": exp_id, "key": name, "value": value}])
            self.audit.record(caller.name, "set_experiment_tag", "experiment", str(exp_id), conn=conn,
                              detail={"key": name})
        return {}

    def delete_experiment_tag(self, caller: Caller, experiment_id: str, key: str) -> dict:
        """Delete a tag of an active experiment (EDIT); NotFound if it has none by that key."""
        exp_id = validation.experiment_id(experiment_id)
        name = validation.text(key, "key", validation.MAX_EXPERIMENT_TAG_KEY_LENGTH)
        et = t.experiment_tags
        with self.db.write() as conn:
            experiment = self._experiment_for_write(conn, exp_id)
            require(conn, caller, experiment, EDIT, "delete_experiment_tag")
            self._check_active(experiment)
            gone = conn.execute(et.delete().where(et.c.experiment_id == exp_id, et.c.key == name)).rowcount
            if not gone:
                raise NotFound(f"No tag with name: {name} in experiment with id {exp_id}")
            self.audit.record(caller.name, "delete_experiment_tag", "experiment", str(exp_id), conn=conn,
                              detail={"key": name})
        return {}

    # -- runs -------------------------------------------------------------------------------------
    def create_run(self, caller: Caller, experiment_id: str | None = None, user_id: str | None = None,
                   run_name: str | None = None, start_time: int | None = None,
                   tags: list[dict] | None = None) -> dict:
        """Start a RUNNING run in an active experiment (EDIT; the Default experiment when none
        is named). ``user_id`` is the caller's name whatever the client sends; a missing name
        is generated; nested runs carry the ``mlflow.parentRunId`` tag. Returns ``{"run"}``."""
        del user_id  # who runs it is the authenticated caller, not a client claim
        exp_id = validation.experiment_id(experiment_id if experiment_id not in (None, "") else "0")
        tag_pairs = [validation.tag(x, f"tags[{i}]") for i, x in enumerate(_items(tags, "tags"))]
        tag_map = dict(tag_pairs)
        name_tag = tag_map.get(writes.RUN_NAME_TAG)
        if run_name not in (None, ""):
            run_name = validation.text(run_name, "run_name", validation.MAX_ENTITY_KEY_LENGTH)
            if name_tag and name_tag != run_name:
                raise InvalidArgument("Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                                      f"different values (run_name='{run_name}', mlflow.runName='{name_tag}').")
        run_name = run_name or name_tag or random_name()
        tag_map[writes.RUN_NAME_TAG] = run_name
        start = validation.int64(start_time, "start_time", 0) if start_time not in (None, 0) else now_ms()
        run_id = uuid.uuid4().hex
        with self.db.write() as conn:
            experiment = self._experiment_for_write(conn, exp_id)
            require(conn, caller, experiment, EDIT, "create_run")
            self._check_active(experiment)
            row = dict(run_id=run_id, experiment_id=exp_id, name=run_name, user_id=caller.name, status="RUNNING",
                       start_time=start, end_time=None, deleted_time=None, lifecycle_stage="active",
                       artifact_uri=f"{experiment.artifact_location}/{run_id}/artifacts")
            conn.execute(t.runs.insert(), row)
            conn.execute(t.run_tags.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in tag_map.items()])
            self.audit.record(caller.name, "create_run", "run", run_id, conn=conn,
                              detail={"experiment_id": str(exp_id)})
        return {"run": render.new_run(tuple(row[c.name] for c in t.runs.c), tag_map, self._root_uri)}

    def get_run(self, caller: Caller, run_id: str | None = None, run_uuid: str | None = None) -> dict:
        """``{"run": {info, data, inputs, outputs}}`` (deleted runs too, as MLflow)."""
        rid = _run_id(run_id, run_uuid)
        with self.db.read() as conn:
            return {"run": render.runs(conn, [self._run(conn, rid)], self._root_uri)[0]}

    def run_artifact_location(self, run_id: str | None = None, run_uuid: str | None = None) -> str:
        """A run's artifact location inside the server (a ``file://`` URI under the artifact
        root; answers show the ``mlflow-artifacts:/`` form)."""
        rid = _run_id(run_id, run_uuid)
        with self.db.read() as conn:
            return self._run(conn, rid).artifact_uri

    def update_run(self, caller: Caller, run_id: str | None = None, run_uuid: str | None = None,
                   status: str | None = None, end_time: int | None = None, run_name: str | None = None) -> dict:
        """Change an active run's status (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED), end
        time or name (EDIT). Returns ``{"run_info"}``."""
        rid = _run_id(run_id, run_uuid)
        values: dict = {}
        if status is not None:
            values["status"] = validation.run_status(status)
        if end_time is not None:
            values["end_time"] = validation.int64(end_time, "end_time", 0)
        if run_name not in (None, ""):
            values["name"] = validation.text(run_name, "run_name", validation.MAX_ENTITY_KEY_LENGTH)
        with self.db.write() as conn:
            self._run_for_write(conn, caller, rid, "update_run")
            if values:
                conn.execute(update(t.runs).where(t.runs.c.run_id == rid).values(**values))
            if "name" in values:
                writes.set_tags(conn, rid, [(writes.RUN_NAME_TAG, values["name"])])
            self.audit.record(caller.name, "update_run", "run", rid, conn=conn,
                              detail={k: v for k, v in values.items() if k != "name"} or None)
            return {"run_info": render.run_info(self._run(conn, rid), self._root_uri)}

    def _set_run_stage(self, caller: Caller, run_id: str, stage: str, action: str) -> dict:
        rid = validation.run_id(run_id)
        with self.db.write() as conn:
            self._run_for_write(conn, caller, rid, action, MANAGE, active=False)
            conn.execute(update(t.runs).where(t.runs.c.run_id == rid).values(
                lifecycle_stage=stage, deleted_time=now_ms() if stage == "deleted" else None))
            self.audit.record(caller.name, action, "run", rid, conn=conn)
        return {}

    def delete_run(self, caller: Caller, run_id: str) -> dict:
        """Mark a run deleted (MANAGE on its experiment); restorable."""
        return self._set_run_stage(caller, run_id, "deleted", "delete_run")

    def restore_run(self, caller: Caller, run_id: str) -> dict:
        """Restore a deleted run (MANAGE on its experiment)."""
        return self._set_run_stage(caller, run_id, "active", "restore_run")

    def log_metric(self, caller: Caller, run_id: str | None = None, key: str | None = None,
                   value: float | None = None, timestamp: int | None = None, step: int | None = None,
                   run_uuid: str | None = None, model_id: str | None = None, dataset_name: str | None = None,
                   dataset_digest: str | None = None) -> dict:
        """Log one metric point (EDIT). Logging an identical point again changes nothing."""
        rid = _run_id(run_id, run_uuid)
        point = validation.metric({"key": key, "value": value, "timestamp": timestamp, "step": step,
                                   "model_id": model_id, "dataset_name": dataset_name,
                                   "dataset_digest": dataset_digest})
        with self.db.write() as conn:
            run = self._run_for_write(conn, caller, rid, "log_metric")
            writes.log_metrics(conn, rid, run.experiment_id, [point])
            self.audit.record(caller.name, "log_metric", "run", rid, conn=conn, detail={"key": point.key})
        return {}

    def log_param(self, caller: Caller, run_id: str | None = None, key: str | None = None,
                  value: str | None = None, run_uuid: str | None = None) -> dict:
        """Log a param (EDIT). Params are immutable: the same value again is accepted, another
        value is an InvalidArgument."""
        rid = _run_id(run_id, run_uuid)
        name, text = validation.param({"key": key, "value": value})
        with self.db.write() as conn:
            self._run_for_write(conn, caller, rid, "log_param")
            writes.log_params(conn, rid, {name: text})
            self.audit.record(caller.name, "log_param", "run", rid, conn=conn, detail={"key": name})
        return {}

    def set_tag(self, caller: Caller, run_id: str | None = None, key: str | None = None,
                value: str | None = None, run_uuid: str | None = None) -> dict:
        """Set (or replace) a run tag (EDIT); ``mlflow.runName`` renames the run."""
        rid = _run_id(run_id, run_uuid)
        pair = validation.tag({"key": key, "value": value})
        with self.db.write() as conn:
            self._run_for_write(conn, caller, rid, "set_tag")
            writes.set_tags(conn, rid, [pair])
            self.audit.record(caller.name, "set_tag", "run", rid, conn=conn, detail={"key": pair[0]})
        return {}

    def delete_tag(self, caller: Caller, run_id: str, key: str) -> dict:
        """Delete a run tag (EDIT); NotFound if the run has none by that key."""
        rid = validation.run_id(run_id)
        name = validation.text(key, "key", validation.MAX_ENTITY_KEY_LENGTH)
        rt = t.run_tags
        with self.db.write() as conn:
            self._run_for_write(conn, caller, rid, "delete_tag")
            if not conn.execute(rt.delete().where(rt.c.run_id == rid, rt.c.key == name)).rowcount:
                raise NotFound(f"No tag with name: {name} in run with id {rid}")
            self.audit.record(caller.name, "delete_tag", "run", rid, conn=conn, detail={"key": name})
        return {}

    def log_batch(self, caller: Caller, run_id: str, metrics: list[dict] | None = None,
                  params: list[dict] | None = None, tags: list[dict] | None = None) -> dict:
        """Log up to 1,000 metrics, 100 params and 100 tags (1,000 in all) in one transaction
        (EDIT): all of it is applied or none. Replaying the same batch changes nothing."""
        rid = validation.run_id(run_id)
        points, param_map, tag_pairs = validation.batch(metrics, params, tags)
        with self.db.write() as conn:
            run = self._run_for_write(conn, caller, rid, "log_batch")
            writes.log_params(conn, rid, param_map)
            writes.log_metrics(conn, rid, run.experiment_id, points)
            writes.set_tags(conn, rid, tag_pairs)
            self.audit.record(caller.name, "log_batch", "run", rid, conn=conn,
                              detail={"metrics": len(points), "params": len(param_map), "tags": len(tag_pairs)})
        return {}

    def log_inputs(self, caller: Caller, run_id: str, datasets: list[dict] | None = None,
                   models: list[dict] | None = None) -> dict:
        """Record datasets (``[{"dataset": {name, digest, source_type, source, schema?,
        profile?}, "tags": [...]}]``) and logged models (``[{"model_id"}]``) as inputs of a
        run (EDIT)."""
        rid = validation.run_id(run_id)
        inputs = validation.dataset_inputs(datasets)
        model_refs = validation.model_refs(models, "models")
        with self.db.write() as conn:
            run = self._run_for_write(conn, caller, rid, "log_inputs")
            writes.log_dataset_inputs(conn, run.experiment_id, rid, inputs)
            if model_refs:
                writes.log_model_edges(conn, rid, model_refs, output=False)
            self.audit.record(caller.name, "log_inputs", "run", rid, conn=conn,
                              detail={"datasets": len(inputs), "models": len(model_refs)})
        return {}

    def log_outputs(self, caller: Caller, run_id: str, models: list[dict] | None = None) -> dict:
        """Record logged models (``[{"model_id", "step"}]``) as outputs of a run (EDIT)."""
        rid = validation.run_id(run_id)
        model_refs = validation.model_refs(models, "models", with_step=True)
        with self.db.write() as conn:
            self._run_for_write(conn, caller, rid, "log_outputs")
            writes.log_model_edges(conn, rid, model_refs, output=True)
            self.audit.record(caller.name, "log_outputs", "run", rid, conn=conn,
                              detail={"models": [m for m, _ in model_refs]})
        return {}

    def get_metric_history(self, caller: Caller, run_id: str | None = None, metric_key: str | None = None,
                           max_results: int | None = None, page_token: str | None = None,
                           run_uuid: str | None = None) -> dict:
        """``{"metrics": [...], "next_page_token"?}``: every point of one metric, ordered by
        timestamp, step and value; all of them unless ``max_results`` pages them."""
        rid = _run_id(run_id, run_uuid)
        name = validation.key(metric_key, "metric_key")
        size = None
        if max_results not in (None, 0):
            size = search.max_results(max_results, MAX_HISTORY_PAGE, MAX_HISTORY_PAGE)
        digest = search.query_digest("history", rid, name)
        offset = search.page_offset(page_token, digest)
        m = t.run_metrics
        query = (select(m.c.value, m.c.timestamp, m.c.step, m.c.is_nan)
                 .where(m.c.run_id == rid, m.c.key == name)
                 .order_by(m.c.timestamp, m.c.step, m.c.value).offset(offset))
        if size is not None:
            query = query.limit(size + 1)
        with self.db.read() as conn:
            self._run(conn, rid)
            rows = plain_rows(conn, query)  # a history has thousands of points
        more = size is not None and len(rows) > size
        out: dict = {"metrics": [{"key": name, "value": render.NAN if is_nan else value, "timestamp": timestamp,
                                  "step": step} for value, timestamp, step, is_nan in rows[:size]]}
        if more:
            out["next_page_token"] = search.page_token(offset + size, digest)
        return out

    def search_runs(self, caller: Caller, experiment_ids: list[str] | None = None, filter: str | None = None,
                    run_view_type: str | None = None, max_results: int | None = None,
                    order_by: list[str] | None = None, page_token: str | None = None) -> dict:
        """``{"runs": [...], "next_page_token"?}``: runs of the experiments named that match
        MLflow's filter grammar, ordered by ``order_by`` then ``start_time DESC, run_id``."""
        ids = self._search_experiment_ids(experiment_ids)
        comparisons = search.parse_filter(search.RUNS, filter)
        orders = search.parse_order_by(search.RUNS, order_by)
        stages = validation.view_type(run_view_type)
        size = search.max_results(max_results, SEARCH_DEFAULT, SEARCH_LIMIT)
        digest = search.query_digest("runs", ids, filter, order_by, stages)
        offset = search.page_offset(page_token, digest)
        runs = t.runs
        source, order = filters.run_order(orders)
        query = (select(runs).select_from(source)
                 .where(runs.c.experiment_id.in_(ids), runs.c.lifecycle_stage.in_(stages),
                        *filters.run_conditions(comparisons, self.db.dialect))
                 .order_by(*order).offset(offset).limit(size + 1))
        with self.db.read() as conn:
            rows = plain_rows(conn, query) if ids else []
            out: dict = {"runs": render.runs(conn, rows[:size], self._root_uri)}
        if len(rows) > size:
            out["next_page_token"] = search.page_token(offset + size, digest)
        return out

    @staticmethod
    def _search_experiment_ids(experiment_ids: object) -> list[int]:
        """Experiment ids to search; ids of no experiment simply match nothing."""
        out = []
        for value in _items(experiment_ids, "experiment_ids"):
            try:
                out.append(validation.experiment_id(value))
            except NotFound:
                continue
        return sorted(set(out))
