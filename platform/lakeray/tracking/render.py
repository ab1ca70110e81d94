"""Rows -> the JSON shapes of MLflow's REST API (``/api/2.0/mlflow/...``).

Field names and nesting are MLflow's proto messages as its server renders them: ids are
strings, times are integer milliseconds, an unset optional field (``end_time`` of a
running run) is left out. Lists are always present (possibly empty) so callers can
iterate without guards; MLflow's client reads both forms. A NaN metric value is the string
``"NaN"`` (protobuf's JSON spelling, which MLflow's server sends and its client parses), and
artifact locations are the ``mlflow-artifacts:/`` URIs clients use: the ``file://`` URIs
under the artifact root stay inside the server (``root_uri`` is the root's).

The values are rendered in their final form here, as the rows are read, rather than by a
second pass over the answer: a walk of a 1,000-run search answer cost a fifth of the call.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from typing import NamedTuple

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from lakeray.storage.sql import among, among_param, listed, plain_rows
from lakeray.tracking import tables as t
from lakeray.tracking.artifacts import proxied

#: a NaN metric value in MLflow's JSON.
NAN = "NaN"
#: stored logged model status -> proto enum name.
MODEL_STATUS = {"PENDING": "LOGGED_MODEL_PENDING", "READY": "LOGGED_MODEL_READY",
                "FAILED": "LOGGED_MODEL_UPLOAD_FAILED", "UNSPECIFIED": "LOGGED_MODEL_STATUS_UNSPECIFIED"}


def _pairs(rows) -> list[dict]:
    return [{"key": k, "value": v} for k, v in rows]


def metric_value(value: float, is_nan: bool) -> float | str:
    """A stored metric value as MLflow returns it (NaN, from its flag, as ``"NaN"``)."""
    return NAN if is_nan else value


@cache
def _experiment_tags(dialect: str) -> Select:
    """The tags of the experiments listed in ``ids``, in order (built once per dialect)."""
    et = t.experiment_tags
    return (select(et.c.experiment_id, et.c.key, et.c.value).where(among_param(dialect, et.c.experiment_id, "ids"))
            .order_by(et.c.experiment_id, et.c.key))


def experiments(conn: Connection, rows: list, root_uri: str) -> list[dict]:
    """Experiment JSON for experiment rows (tags fetched in one query)."""
    if not rows:
        return []  # an empty page costs no query
    tags: dict[int, list] = defaultdict(list)
    dialect = conn.dialect.name
    for exp_id, key, value in conn.execute(_experiment_tags(dialect),
                                           {"ids": listed(dialect, [r.experiment_id for r in rows])}):
        tags[exp_id].append((key, value))
    return [{
        "experiment_id": str(r.experiment_id),
        "name": r.name,
        "artifact_location": proxied(r.artifact_location, root_uri),
        "lifecycle_stage": r.lifecycle_stage,
        "last_update_time": r.last_update_time,
        "creation_time": r.creation_time,
        "tags": _pairs(tags[r.experiment_id]),
    } for r in rows]


def run_info(r, root_uri: str) -> dict:
    """RunInfo JSON of a ``runs`` row (a row of ``select(runs)``, or a tuple in its column order).

    The row is unpacked by position: a 1,000-run search page renders 1,000 of these, and
    attribute access on SQLAlchemy rows cost ten times more than the dict it fills.
    """
    run_id, experiment_id, name, user_id, status, start_time, end_time, _deleted, stage, artifact_uri = r
    info = {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": name,
        "experiment_id": str(experiment_id),
        "user_id": user_id,
        "status": status,
        "start_time": start_time,
        "artifact_uri": proxied(artifact_uri, root_uri),
        "lifecycle_stage": stage,
    }
    if end_time is not None:
        info["end_time"] = end_time
    return info


class _PageQueries(NamedTuple):
    metrics: Select
    params: Select
    tags: Select
    datasets: Select
    model_inputs: Select
    model_outputs: Select


@cache
def _page_queries(dialect: str) -> _PageQueries:
    """The queries a page of runs is rendered with, built once per dialect: building and
    caching a statement cost about half of running it on a 1,000-run page. Each takes the
    page's run ids as the parameter ``ids`` (see :func:`lakeray.storage.sql.listed`)."""
    lm, rp, rt = t.run_latest_metrics, t.run_params, t.run_tags
    inp, ds = t.tracking_inputs, t.tracking_datasets

    def of_page(column):
        return among_param(dialect, column, "ids")

    def pairs(table):
        return (select(table.c.run_id, table.c.key, table.c.value)
                .where(of_page(table.c.run_id)).order_by(table.c.run_id, table.c.key))

    return _PageQueries(
        metrics=(select(lm.c.run_id, lm.c.key, lm.c.value, lm.c.timestamp, lm.c.step, lm.c.is_nan)
                 .where(of_page(lm.c.run_id)).order_by(lm.c.run_id, lm.c.key)),
        params=pairs(rp),
        tags=pairs(rt),
        datasets=(select(inp.c.input_uuid, inp.c.destination_id, ds)
                  .join(ds, ds.c.dataset_uuid == inp.c.source_id)
                  .where(inp.c.source_type == "DATASET", inp.c.destination_type == "RUN",
                         of_page(inp.c.destination_id))
                  .order_by(inp.c.destination_id, ds.c.name, ds.c.digest)),
        model_inputs=(select(inp.c.source_id, inp.c.destination_id)
                      .where(inp.c.source_type == "RUN_INPUT", inp.c.destination_type == "MODEL_INPUT",
                             of_page(inp.c.source_id)).order_by(inp.c.destination_id)),
        model_outputs=(select(inp.c.source_id, inp.c.destination_id, inp.c.step)
                       .where(inp.c.source_type == "RUN_OUTPUT", inp.c.destination_type == "MODEL_OUTPUT",
                              of_page(inp.c.source_id)).order_by(inp.c.step, inp.c.destination_id)),
    )


def runs(conn: Connection, rows: list, root_uri: str) -> list[dict]:
    """Run JSON (info, data, inputs, outputs) for ``runs`` rows, in a fixed number of queries."""
    if not rows:
        return []  # an empty page costs no query
    queries = _page_queries(conn.dialect.name)
    # r[0] is run_id: rows are indexed, not read by attribute (see run_info)
    page = {"ids": listed(conn.dialect.name, [r[0] for r in rows])}
    # A 1,000-run page has thousands of these rows: they are fetched in one call, as plain
    # tuples, and come ordered by run, so each run's list is looked up once, not once per row.
    metrics: dict[str, list] = {}
    run = None
    for run_id, key, value, timestamp, step, is_nan in plain_rows(conn, queries.metrics, page):
        if run_id != run:
            run, into = run_id, metrics.setdefault(run_id, [])
        into.append({"key": key, "value": NAN if is_nan else value, "timestamp": timestamp, "step": step})
    params = _pairs_by_run(plain_rows(conn, queries.params, page))
    tags = _pairs_by_run(plain_rows(conn, queries.tags, page))
    inputs, model_inputs, model_outputs = _run_edges(conn, queries, page)
    return [_run(run_info(r, root_uri), metrics.get(r[0], []), params.get(r[0], []), tags.get(r[0], []),
                 inputs.get(r[0], []), model_inputs.get(r[0], []), model_outputs.get(r[0], [])) for r in rows]


def _pairs_by_run(rows) -> dict[str, list]:
    """``(run_id, key, value)`` rows ordered by run -> run id -> ``[{"key", "value"}]``."""
    out: dict[str, list] = {}
    run = None
    for run_id, key, value in rows:
        if run_id != run:
            run, into = run_id, out.setdefault(run_id, [])
        into.append({"key": key, "value": value})
    return out


def new_run(row: tuple, tags: dict[str, str], root_uri: str) -> dict:
    """Run JSON of a run just created (``row`` in ``runs`` column order) with ``tags`` and
    nothing else (no read back needed)."""
    return _run(run_info(row, root_uri), [], [], [{"key": k, "value": tags[k]} for k in sorted(tags)], [], [], [])


def _run(info: dict, metrics: list, params: list, tags: list, inputs: list, model_inputs: list, model_outputs: list) -> dict:
    return {
        "info": info,
        "data": {"metrics": metrics, "params": params, "tags": tags},
        "inputs": {"dataset_inputs": inputs, "model_inputs": model_inputs},
        "outputs": {"model_outputs": model_outputs},
    }


def _run_edges(conn: Connection, queries: _PageQueries, page: dict):
    """Dataset inputs, model inputs and model outputs of a page of runs."""
    it = t.tracking_input_tags
    datasets: dict[str, list] = defaultdict(list)
    model_inputs: dict[str, list] = defaultdict(list)
    model_outputs: dict[str, list] = defaultdict(list)
    edges = conn.execute(queries.datasets, page).all()
    input_tags: dict[str, list] = defaultdict(list)
    if edges:
        for row in conn.execute(select(it).where(among(conn, it.c.input_uuid, [e.input_uuid for e in edges]))
                                .order_by(it.c.name)):
            input_tags[row.input_uuid].append((row.name, row.value))
    for e in edges:
        dataset = {"name": e.name, "digest": e.digest, "source_type": e.source_type, "source": e.source}
        if e.schema is not None:
            dataset["schema"] = e.schema
        if e.profile is not None:
            dataset["profile"] = e.profile
        datasets[e.destination_id].append({"tags": _pairs(input_tags[e.input_uuid]), "dataset": dataset})
    for source_id, destination_id in conn.execute(queries.model_inputs, page):
        model_inputs[source_id].append({"model_id": destination_id})
    for source_id, destination_id, step in conn.execute(queries.model_outputs, page):
        model_outputs[source_id].append({"model_id": destination_id, "step": step})
    return datasets, model_inputs, model_outputs


def logged_models(conn: Connection, rows: list, root_uri: str) -> list[dict]:
    """LoggedModel JSON (info with tags, data with params and every logged metric)."""
    if not rows:
        return []  # an empty page costs no query
    ids = [r.model_id for r in rows]
    params: dict[str, list] = defaultdict(list)
    tags: dict[str, list] = defaultdict(list)
    metrics: dict[str, list] = defaultdict(list)
    mp, mt, mm = t.logged_model_params, t.logged_model_tags, t.logged_model_metrics
    for p in conn.execute(select(mp).where(among(conn, mp.c.model_id, ids)).order_by(mp.c.param_key)).all():
        params[p.model_id].append((p.param_key, p.param_value))
    for g in conn.execute(select(mt).where(among(conn, mt.c.model_id, ids)).order_by(mt.c.tag_key)).all():
        tags[g.model_id].append((g.tag_key, g.tag_value))
    for m in conn.execute(select(mm).where(among(conn, mm.c.model_id, ids))
                          .order_by(mm.c.metric_name, mm.c.metric_timestamp_ms, mm.c.metric_step)).all():
        metric = {"key": m.metric_name, "value": metric_value(m.metric_value, m.is_nan),
                  "timestamp": m.metric_timestamp_ms, "step": m.metric_step, "run_id": m.run_id,
                  "model_id": m.model_id}
        if m.dataset_name is not None:
            metric["dataset_name"] = m.dataset_name
        if m.dataset_digest is not None:
            metric["dataset_digest"] = m.dataset_digest
        metrics[m.model_id].append(metric)
    out = []
    for r in rows:
        info = {
            "model_id": r.model_id,
            "experiment_id": str(r.experiment_id),
            "name": r.name,
            "creation_timestamp_ms": r.creation_timestamp_ms,
            "last_updated_timestamp_ms": r.last_updated_timestamp_ms,
            "artifact_uri": proxied(r.artifact_location, root_uri),
            "status": MODEL_STATUS[r.status],
            "tags": _pairs(tags[r.model_id]),
        }
        for name in ("model_type", "source_run_id", "status_message"):
            if getattr(r, name) is not None:
                info[name] = getattr(r, name)
        out.append({"info": info, "data": {"params": _pairs(params[r.model_id]), "metrics": metrics[r.model_id]}})
    return out
