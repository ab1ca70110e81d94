"""MLflow 3 logged models: create, finalize, tags, params, delete, search.

A logged model belongs to an experiment (permissions are the experiment's: EDIT to create
and change, MANAGE to delete), optionally names the run that produced it, starts PENDING
and is finalized READY or FAILED once its artifacts are uploaded. Its metrics arrive
through ``log_metric``/``log_batch`` with a ``model_id``. Mixed into
:class:`~lakeray.tracking.service.TrackingService`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from lakeray.catalog.audit import AuditLog
from lakeray.errors import InvalidArgument, NotFound
from lakeray.ids import now_ms
from lakeray.principals.service import Caller
from lakeray.storage.db import Database
from lakeray.tracking import filters, render, search, validation, writes
from lakeray.tracking import tables as t
from lakeray.tracking.permissions import EDIT, MANAGE, require
from lakeray.tracking.run_names import random_name

MODEL_SEARCH_DEFAULT, MODEL_SEARCH_LIMIT = 100, 50000
#: statuses a model may be finalized with (proto names, their numbers, plain names).
FINAL_STATUSES = {"LOGGED_MODEL_READY": "READY", "LOGGED_MODEL_UPLOAD_FAILED": "FAILED", "READY": "READY",
                  "FAILED": "FAILED", 2: "READY", 3: "FAILED"}


class LoggedModels:
    """Logged model methods; the host class provides ``db``, ``audit`` and the helpers."""

    db: Database
    audit: AuditLog
    _root_uri: str  # the artifact root's file:// URI (see render)

    # Provided by TrackingService, which mixes this class in (declared for readers and checkers).
    _experiment_for_write: Callable[..., Any]
    _experiment: Callable[..., Any]
    _run: Callable[..., Any]
    _check_active: Callable[[Any], None]

    def _model(self, conn: Connection, model_id: str):
        row = conn.execute(select(t.logged_models).where(t.logged_models.c.model_id == model_id)).first()
        if row is None or row.lifecycle_stage != "active":
            raise NotFound(f"Logged model with ID '{model_id}' not found.")
        return row

    def _model_for_write(self, conn: Connection, caller: Caller, model_id: str, action: str, level: str = EDIT):
        model = self._model(conn, model_id)
        require(conn, caller, self._experiment(conn, model.experiment_id), level, action, "logged_model", model_id)
        return model

    def logged_model_artifact_location(self, model_id: str) -> str:
        """A logged model's artifact location inside the server (a ``file://`` URI under the
        artifact root; answers show the ``mlflow-artifacts:/`` form)."""
        mid = validation.model_id(model_id)
        with self.db.read() as conn:
            return self._model(conn, mid).artifact_location

    def _render_model(self, conn: Connection, model_id: str) -> dict:
        return {"model": render.logged_models(conn, [self._model(conn, model_id)], self._root_uri)[0]}

    def create_logged_model(self, caller: Caller, experiment_id: str, name: str | None = None,
                            model_type: str | None = None, source_run_id: str | None = None,
                            params: list[dict] | None = None, tags: list[dict] | None = None) -> dict:
        """Create a PENDING logged model in an active experiment (EDIT); ``{"model"}``."""
        exp_id = validation.experiment_id(experiment_id if experiment_id not in (None, "") else "0")
        name = validation.model_name(name) if name not in (None, "") else None
        if model_type not in (None, ""):
            model_type = validation.text(model_type, "model_type", validation.MAX_MODEL_TYPE_LENGTH)
        source = validation.run_id(source_run_id, "source_run_id") if source_run_id not in (None, "") else None
        param_map = validation.unique_pairs(
            [validation.model_param(p, f"params[{i}]") for i, p in enumerate(_list(params, "params"))], "param")
        tag_map = dict(validation.model_tag(g, f"tags[{i}]") for i, g in enumerate(_list(tags, "tags")))
        model_id = f"m-{uuid.uuid4().hex}"
        now = now_ms()
        with self.db.write() as conn:
            experiment = self._experiment_for_write(conn, exp_id)
            require(conn, caller, experiment, EDIT, "create_logged_model", "logged_model", model_id)
            self._check_active(experiment)
            if source is not None:
                self._run(conn, source)
            conn.execute(t.logged_models.insert().values(
                model_id=model_id, experiment_id=exp_id, name=name or random_name(),
                artifact_location=f"{experiment.artifact_location}/models/{model_id}/artifacts",
                creation_timestamp_ms=now, last_updated_timestamp_ms=now, status="PENDING",
                lifecycle_stage="active", model_type=model_type or None, source_run_id=source,
                status_message=None, creator=caller.name))
            if param_map:
                conn.execute(t.logged_model_params.insert(), [
                    {"model_id": model_id, "param_key": k, "param_value": v} for k, v in param_map.items()])
            if tag_map:
                conn.execute(t.logged_model_tags.insert(), [
                    {"model_id": model_id, "tag_key": k, "tag_value": v} for k, v in tag_map.items()])
            self.audit.record(caller.name, "create_logged_model", "logged_model", model_id, conn=conn,
                              detail={"experiment_id": str(exp_id), "source_run_id": source})
            return self._render_model(conn, model_id)

    def get_logged_model(self, caller: Caller, model_id: str) -> dict:
        """``{"model": {info, data}}``; deleted models are NotFound, as in MLflow."""
        mid = validation.model_id(model_id)
        with self.db.read() as conn:
            return self._render_model(conn, mid)

    def finalize_logged_model(self, caller: Caller, model_id: str, status: str) -> dict:
        """Set a model READY or FAILED (``LOGGED_MODEL_READY``/``LOGGED_MODEL_UPLOAD_FAILED``)
        (EDIT); ``{"model"}``."""
        mid = validation.model_id(model_id)
        final = FINAL_STATUSES.get(status) if isinstance(status, (str, int)) and not isinstance(status, bool) else None
        if final is None:
            raise InvalidArgument(f"Invalid status {status!r}: a logged model is finalized as LOGGED_MODEL_READY "
                                  "or LOGGED_MODEL_UPLOAD_FAILED")
        with self.db.write() as conn:
            self._model_for_write(conn, caller, mid, "finalize_logged_model")
            conn.execute(update(t.logged_models).where(t.logged_models.c.model_id == mid)
                         .values(status=final, last_updated_timestamp_ms=now_ms()))
            self.audit.record(caller.name, "finalize_logged_model", "logged_model", mid, conn=conn,
                              detail={"status": final})
            return self._render_model(conn, mid)

    def delete_logged_model(self, caller: Caller, model_id: str) -> dict:
        """Mark a logged model deleted (MANAGE on its experiment)."""
        mid = validation.model_id(model_id)
        with self.db.write() as conn:
            self._model_for_write(conn, caller, mid, "delete_logged_model", MANAGE)
            conn.execute(update(t.logged_models).where(t.logged_models.c.model_id == mid)
                         .values(lifecycle_stage="deleted", last_updated_timestamp_ms=now_ms()))
            self.audit.record(caller.name, "delete_logged_model", "logged_model", mid, conn=conn)
        return {}

    def set_logged_model_tags(self, caller: Caller, model_id: str, tags: list[dict] | None = None) -> dict:
        """Set (or replace) tags of a logged model (EDIT); a repeated key keeps its last value."""
        mid = validation.model_id(model_id)
        tag_map = dict(validation.model_tag(g, f"tags[{i}]") for i, g in enumerate(_list(tags, "tags")))
        with self.db.write() as conn:
            self._model_for_write(conn, caller, mid, "set_logged_model_tags")
            writes.upsert(conn, t.logged_model_tags, ["model_id", "tag_key"],
                          [{"model_id": mid, "tag_key": k, "tag_value": v} for k, v in tag_map.items()])
            conn.execute(update(t.logged_models).where(t.logged_models.c.model_id == mid)
                         .values(last_updated_timestamp_ms=now_ms()))
            self.audit.record(caller.name, "set_logged_model_tags", "logged_model", mid, conn=conn,
                              detail={"keys": sorted(tag_map)})
        return {}

    def delete_logged_model_tag(self, caller: Caller, model_id: str, tag_key: str) -> dict:
        """Delete a tag of a logged model (EDIT); NotFound if it has none by that key."""
        mid = validation.model_id(model_id)
        key = validation.text(tag_key, "tag_key", validation.MAX_MODEL_TAG_KEY_LENGTH)
        mt = t.logged_model_tags
        with self.db.write() as conn:
            self._model_for_write(conn, caller, mid, "delete_logged_model_tag")
            if not conn.execute(mt.delete().where(mt.c.model_id == mid, mt.c.tag_key == key)).rowcount:
                raise NotFound(f"No tag with key {key!r} found for model with ID {mid!r}.")
            self.audit.record(caller.name, "delete_logged_model_tag", "logged_model", mid, conn=conn,
                              detail={"key": key})
        return {}

    def log_logged_model_params(self, caller: Caller, model_id: str, params: list[dict] | None = None) -> dict:
        """Add params to a logged model (EDIT); like run params they cannot change value."""
        mid = validation.model_id(model_id)
        param_map = validation.unique_pairs(
            [validation.model_param(p, f"params[{i}]") for i, p in enumerate(_list(params, "params"))], "param")
        mp = t.logged_model_params
        with self.db.write() as conn:
            self._model_for_write(conn, caller, mid, "log_logged_model_params")
            existing = dict(conn.execute(select(mp.c.param_key, mp.c.param_value)
                                         .where(mp.c.model_id == mid)).all())
            writes.check_params(existing, param_map, f"logged model ID='{mid}'")
            writes.insert_ignoring_duplicates(conn, mp, ("model_id", "param_key", "param_value"),
                                              [(mid, k, v) for k, v in param_map.items() if k not in existing])
            self.audit.record(caller.name, "log_logged_model_params", "logged_model", mid, conn=conn,
                              detail={"keys": sorted(param_map)})
        return {}

    def search_logged_models(self, caller: Caller, experiment_ids: list[str] | None = None,
                             filter: str | None = None, datasets: list[dict] | None = None,
                             max_results: int | None = None, order_by: list | None = None,
                             page_token: str | None = None) -> dict:
        """``{"models": [...], "next_page_token"?}``: active logged models of the experiments
        named matching the filter (``name``, ``metrics.``, ``params.``, ``tags.``, ``model_id``,
        ``status``, ``creation_timestamp``...). ``datasets`` (``[{"dataset_name",
        "dataset_digest"?}]``) limits metric conditions to metrics on those datasets;
        ``order_by`` takes ``{"field_name", "ascending", "dataset_name", "dataset_digest"}``."""
        ids = []
        for value in _list(experiment_ids, "experiment_ids"):
            try:
                ids.append(validation.experiment_id(value))
            except NotFound:
                continue
        wanted = _datasets(datasets)
        comparisons = search.parse_filter(search.LOGGED_MODELS, filter)
        orders = search.parse_order_by(search.LOGGED_MODELS, order_by)
        size = search.max_results(max_results, MODEL_SEARCH_DEFAULT, MODEL_SEARCH_LIMIT)
        digest = search.query_digest("logged_models", sorted(set(ids)), filter, wanted, order_by)
        offset = search.page_offset(page_token, digest)
        lms = t.logged_models
        query = (select(lms).where(lms.c.experiment_id.in_(sorted(set(ids))), lms.c.lifecycle_stage == "active",
                                   *filters.model_conditions(comparisons, wanted, self.db.dialect))
                 .order_by(*filters.model_order(orders)).offset(offset).limit(size + 1))
        with self.db.read() as conn:
            rows = conn.execute(query).all() if ids else []
            out: dict = {"models": render.logged_models(conn, rows[:size], self._root_uri)}
        if len(rows) > size:
            out["next_page_token"] = search.page_token(offset + size, digest)
        return out


def _list(value: object, what: str, limit: int = validation.MAX_ENTITIES_PER_BATCH) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or len(value) > limit:
        raise InvalidArgument(f"{what} must be a list of at most {limit} entries")
    return list(value)


def _datasets(value: object) -> list[dict]:
    out = []
    for i, item in enumerate(_list(value, "datasets", 100)):
        if not isinstance(item, dict) or set(item) - {"dataset_name", "dataset_digest"}:
            raise InvalidArgument(f"datasets[{i}] must be an object with dataset_name and optional dataset_digest")
        if not item.get("dataset_name"):
            raise InvalidArgument("`dataset_name` in the `datasets` clause must be specified.")
        entry = {"dataset_name": validation.text(item["dataset_name"], f"datasets[{i}].dataset_name",
                                                 validation.MAX_DATASET_NAME_SIZE)}
        if item.get("dataset_digest"):
            entry["dataset_digest"] = validation.text(item["dataset_digest"], f"datasets[{i}].dataset_digest",
                                                      validation.MAX_DATASET_DIGEST_SIZE)
        out.append(entry)
    return out
