"""Rows -> the JSON shapes of MLflow's REST API (``/api/2.0/mlflow/...``).

Field names and nesting are MLflow's proto messages as its server renders them: ids are
strings, times are integer milliseconds, an unset optional field (``end_time`` of a
running run) is left out. Lists are always present (possibly empty) so callers can
iterate without guards; MLflow's client reads both forms. NaN metric values come back as
``float('nan')`` (JSON encoders must spell them ``"NaN"``, as MLflow's server does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from lakeray.tracking import tables as t

NAN = float("nan")
#: stored logged model status -> proto enum name.
MODEL_STATUS = {"PENDING": "LOGGED_MODEL_PENDING", "READY": "LOGGED_MODEL_READY",
                "FAILED": "LOGGED_MODEL_UPLOAD_FAILED", "UNSPECIFIED": "LOGGED_MODEL_STATUS_UNSPECIFIED"}
#: how many ids go into one ``IN (...)`` (SQLite allows 32,766 parameters per statement).
CHUNK = 500


def chunks(ids: list, size: int = CHUNK) -> Iterable[list]:
    """``ids`` in slices small enough for one IN list."""
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _pairs(rows) -> list[dict]:
    return [{"key": k, "value": v} for k, v in rows]


def metric_value(value: float, is_nan: bool) -> float:
    """A stored metric value as MLflow returns it (NaN restored from its flag)."""
    return NAN if is_nan else value


def experiments(conn: Connection, rows: list) -> list[dict]:
    """Experiment JSON for experiment rows (tags fetched in one query per chunk)."""
    ids = [r.experiment_id for r in rows]
    tags: dict[int, list] = defaultdict(list)
    et = t.experiment_tags
    for part in chunks(ids):
        for row in conn.execute(select(et.c.experiment_id, et.c.key, et.c.value)
                                .where(et.c.experiment_id.in_(part)).order_by(et.c.experiment_id, et.c.key)):
            tags[row.experiment_id].append((row.key, row.value))
    return [{
        "experiment_id": str(r.experiment_id),
        "name": r.name,
        "artifact_location": r.artifact_location,
        "lifecycle_stage": r.lifecycle_stage,
        "last_update_time": r.last_update_time,
        "creation_time": r.creation_time,
        "tags": _pairs(tags[r.experiment_id]),
    } for r in rows]


def run_info(r) -> dict:
    """RunInfo JSON of a ``runs`` row."""
    info = {
        "run_id": r.run_id,
        "run_uuid": r.run_id,
        "run_name": r.name,
        "experiment_id": str(r.experiment_id),
        "user_id": r.user_id,
        "status": r.status,
        "start_time": r.start_time,
        "artifact_uri": r.artifact_uri,
        "lifecycle_stage": r.lifecycle_stage,
    }
    if r.end_time is not None:
        info["end_time"] = r.end_time
    return info


def runs(conn: Connection, rows: list) -> list[dict]:
    """Run JSON (info, data, inputs, outputs) for run rows, in a fixed number of queries."""
    ids = [r.run_id for r in rows]
    metrics: dict[str, list] = defaultdict(list)
    params: dict[str, list] = defaultdict(list)
    tags: dict[str, list] = defaultdict(list)
    lm, rp, rt = t.run_latest_metrics, t.run_params, t.run_tags
    # Plain tuples from .all(): a 1,000-run page has tens of thousands of these rows, and
    # fetching them one by one with attribute access costs several times more.
    for part in chunks(ids):
        for run_id, key, value, timestamp, step, is_nan in conn.execute(
                select(lm.c.run_id, lm.c.key, lm.c.value, lm.c.timestamp, lm.c.step, lm.c.is_nan)
                .where(lm.c.run_id.in_(part)).order_by(lm.c.run_id, lm.c.key)).all():
            metrics[run_id].append({"key": key, "value": NAN if is_nan else value, "timestamp": timestamp,
                                    "step": step})
        for table, into in ((rp, params), (rt, tags)):
            for run_id, key, value in conn.execute(select(table.c.run_id, table.c.key, table.c.value)
                                                   .where(table.c.run_id.in_(part))
                                                   .order_by(table.c.run_id, table.c.key)).all():
                into[run_id].append({"key": key, "value": value})
    inputs, model_inputs, model_outputs = _run_edges(conn, ids)
    return [_run(r, metrics[r.run_id], params[r.run_id], tags[r.run_id], inputs[r.run_id], model_inputs[r.run_id],
                 model_outputs[r.run_id]) for r in rows]


def new_run(row, tags: dict[str, str]) -> dict:
    """Run JSON of a run just created with ``tags`` and nothing else (no read back needed)."""
    return _run(row, [], [], [{"key": k, "value": tags[k]} for k in sorted(tags)], [], [], [])


def _run(r, metrics: list, params: list, tags: list, inputs: list, model_inputs: list, model_outputs: list) -> dict:
    return {
        "info": run_info(r),
        "data": {"metrics": metrics, "params": params, "tags": tags},
        "inputs": {"dataset_inputs": inputs, "model_inputs": model_inputs},
        "outputs": {"model_outputs": model_outputs},
    }


def _run_edges(conn: Connection, ids: list[str]):
    """Dataset inputs, model inputs and model outputs of runs."""
    inp, ds, it = t.tracking_inputs, t.tracking_datasets, t.tracking_input_tags
    datasets: dict[str, list] = defaultdict(list)
    model_inputs: dict[str, list] = defaultdict(list)
    model_outputs: dict[str, list] = defaultdict(list)
    for part in chunks(ids):
        edges = conn.execute(
            select(inp.c.input_uuid, inp.c.destination_id, ds)
            .join(ds, ds.c.dataset_uuid == inp.c.source_id)
            .where(inp.c.source_type == "DATASET", inp.c.destination_type == "RUN",
                   inp.c.destination_id.in_(part))
            .order_by(inp.c.destination_id, ds.c.name, ds.c.digest)).all()
        input_tags: dict[str, list] = defaultdict(list)
        for tpart in chunks([e.input_uuid for e in edges]):
            for row in conn.execute(select(it).where(it.c.input_uuid.in_(tpart)).order_by(it.c.name)):
                input_tags[row.input_uuid].append((row.name, row.value))
        for e in edges:
            dataset = {"name": e.name, "digest": e.digest, "source_type": e.source_type, "source": e.source}
            if e.schema is not None:
                dataset["schema"] = e.schema
            if e.profile is not None:
                dataset["profile"] = e.profile
            datasets[e.destination_id].append({"tags": _pairs(input_tags[e.input_uuid]), "dataset": dataset})
        for row in conn.execute(select(inp.c.source_id, inp.c.destination_id)
                                .where(inp.c.source_type == "RUN_INPUT", inp.c.destination_type == "MODEL_INPUT",
                                       inp.c.source_id.in_(part)).order_by(inp.c.destination_id)):
            model_inputs[row.source_id].append({"model_id": row.destination_id})
        for row in conn.execute(select(inp.c.source_id, inp.c.destination_id, inp.c.step)
                                .where(inp.c.source_type == "RUN_OUTPUT", inp.c.destination_type == "MODEL_OUTPUT",
                                       inp.c.source_id.in_(part)).order_by(inp.c.step, inp.c.destination_id)):
            model_outputs[row.source_id].append({"model_id": row.destination_id, "step": row.step})
    return datasets, model_inputs, model_outputs


def logged_models(conn: Connection, rows: list) -> list[dict]:
    """LoggedModel JSON (info with tags, data with params and every logged metric)."""
    ids = [r.model_id for r in rows]
    params: dict[str, list] = defaultdict(list)
    tags: dict[str, list] = defaultdict(list)
    metrics: dict[str, list] = defaultdict(list)
    mp, mt, mm = t.logged_model_params, t.logged_model_tags, t.logged_model_metrics
    for part in chunks(ids):
        for p in conn.execute(select(mp).where(mp.c.model_id.in_(part)).order_by(mp.c.param_key)):
            params[p.model_id].append((p.param_key, p.param_value))
        for g in conn.execute(select(mt).where(mt.c.model_id.in_(part)).order_by(mt.c.tag_key)):
            tags[g.model_id].append((g.tag_key, g.tag_value))
        for m in conn.execute(select(mm).where(mm.c.model_id.in_(part))
                              .order_by(mm.c.metric_name, mm.c.metric_timestamp_ms, mm.c.metric_step)):
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
            "artifact_uri": r.artifact_location,
            "status": MODEL_STATUS[r.status],
            "tags": _pairs(tags[r.model_id]),
        }
        for name in ("model_type", "source_run_id", "status_message"):
            if getattr(r, name) is not None:
                info[name] = getattr(r, name)
        out.append({"info": info, "data": {"params": _pairs(params[r.model_id]), "metrics": metrics[r.model_id]}})
    return out
