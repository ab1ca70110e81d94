"""Bulk writes of metrics, params, tags and inputs inside a caller's write transaction.

Each function takes the open write connection and issues a fixed number of statements
however many items it writes (``executemany`` of one prepared statement), so a
``log_batch`` of 1,000 metrics is a handful of round trips, not a thousand. Inserts that
must be idempotent use ``ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL both have it).
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from operator import itemgetter

from sqlalchemy import Boolean, Float, Integer, String, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from lakeray.errors import InvalidArgument, NotFound
from lakeray.storage.sql import among, among_param, listed
from lakeray.tracking import tables as t
from lakeray.tracking.validation import MetricPoint

RUN_NAME_TAG = "mlflow.runName"


def _insert(dialect_name: str, table):
    """The dialect's INSERT construct, which knows ON CONFLICT."""
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)


# The statements of metric, param and tag writes are built once (per dialect where it matters):
# for the one point of an MLflow ``log_metric``, building them cost more than running them.
@lru_cache(maxsize=32)
def _insert_or_skip(dialect_name: str, table):
    """INSERT ... ON CONFLICT DO NOTHING into ``table`` on the dialect."""
    return _insert(dialect_name, table).on_conflict_do_nothing()


@lru_cache(maxsize=4)
def _latest_metrics(dialect_name: str):
    """A run's (``run_id``) latest values of the metrics named in ``keys`` (see ``listed``)."""
    lm = t.run_latest_metrics
    return select(lm).where(lm.c.run_id == bindparam("run_id"), among_param(dialect_name, lm.c.key, "keys"))


@lru_cache(maxsize=4)
def _params_named(dialect_name: str):
    """A run's (``run_id``) params named in ``keys`` (see ``listed``): (key, value) rows."""
    rp = t.run_params
    return select(rp.c.key, rp.c.value).where(rp.c.run_id == bindparam("run_id"),
                                              among_param(dialect_name, rp.c.key, "keys"))


_NEW_LATEST = t.run_latest_metrics.insert()
_MOVE_LATEST = (update(t.run_latest_metrics)
                .where(t.run_latest_metrics.c.run_id == bindparam("b_run"),
                       t.run_latest_metrics.c.key == bindparam("b_key"))
                .values(value=bindparam("b_value"), timestamp=bindparam("b_ts"), step=bindparam("b_step"),
                        is_nan=bindparam("b_nan")))


#: from this many rows on, SQLite inserts skip SQLAlchemy's per-row parameter handling.
BULK_ROWS = 64


def insert_ignoring_duplicates(conn: Connection, table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples of the named ``columns``' values); a row whose key already exists
    is skipped (a retry, a repeat, the same row twice in ``rows``)."""
    if not rows:
        return
    if conn.dialect.name != "sqlite" or len(rows) < BULK_ROWS or not _plain_columns(table):
        conn.execute(_insert_or_skip(conn.dialect.name, table),
                     [dict(zip(columns, row, strict=True)) for row in rows])
        return
    # On a 1,000-metric batch SQLAlchemy's per-row parameter processing costs more than
    # SQLite's own insert. Columns of text, integers, doubles and booleans need no bind
    # processing on SQLite, so the statement SQLAlchemy renders runs with the plain tuples.
    sql, order = _bulk_insert(conn.dialect, table, columns)
    conn.exec_driver_sql(sql, rows if order is None else [order(row) for row in rows])


@lru_cache(maxsize=64)
def _bulk_insert(dialect, table, columns: tuple[str, ...]):
    """(SQL, row -> parameter tuple, or None when a row is already in the SQL's order) of an
    insert-or-skip of ``columns`` (rendered once)."""
    compiled = _insert_or_skip(dialect.name, table).compile(dialect=dialect, column_keys=list(columns))
    positions = [columns.index(name) for name in compiled.positiontup]
    # A single column is always in order, so itemgetter here picks two or more (a tuple).
    return str(compiled), None if positions == list(range(len(columns))) else itemgetter(*positions)


def _plain_columns(table) -> bool:
    """Whether every column of ``table`` is text, an integer, a float or a boolean (types whose
    values sqlite3 takes as they are)."""
    return all(isinstance(c.type, String | Integer | Float | Boolean) for c in table.columns)


def upsert(conn: Connection, table, key: list[str], rows: list[dict]) -> None:
    """Insert ``rows``, replacing the other columns of rows whose ``key`` exists."""
    if not rows:
        return
    conn.execute(_upsert(conn.dialect.name, table, tuple(key)), rows)


@lru_cache(maxsize=32)
def _upsert(dialect_name: str, table, key: tuple[str, ...]):
    """INSERT ... ON CONFLICT (key) DO UPDATE of the other columns, on the dialect."""
    stmt = _insert(dialect_name, table)
    others = [c.name for c in table.columns if c.name not in key]
    return stmt.on_conflict_do_update(index_elements=list(key), set_={c: stmt.excluded[c] for c in others})


def check_params(existing: dict[str, str], new: dict[str, str], owner: str) -> None:
    """Params are immutable: the same value again is fine, another value is an error."""
    changed = [(k, existing[k], v) for k, v in new.items() if k in existing and existing[k] != v]
    if len(changed) == 1:
        k, old, v = changed[0]
        raise InvalidArgument(f"Changing param values is not allowed. Param with key='{k}' was already logged "
                              f"with value='{old}' for {owner}. Attempted logging new value '{v}'.")
    if changed:
        shown = [{"key": k, "old_value": old, "new_value": v} for k, old, v in changed]
        raise InvalidArgument(f"Changing param values is not allowed. Params were already logged='{shown}' "
                              f"for {owner}.")


def log_params(conn: Connection, run_id: str, params: dict[str, str]) -> None:
    """Add params to a run (immutable: see :func:`check_params`)."""
    if not params:
        return
    dialect = conn.dialect.name
    existing: dict[str, str] = dict(conn.execute(_params_named(dialect),
                                                 {"run_id": run_id, "keys": listed(dialect, params)}).all())
    check_params(existing, params, f"run ID='{run_id}'")
    insert_ignoring_duplicates(conn, t.run_params, ("run_id", "key", "value"),
                               [(run_id, k, v) for k, v in params.items() if k not in existing])


#: the columns of a run_metrics row, in the table's order (see :func:`log_metrics`)
_METRIC_COLUMNS = ("run_id", "key", "timestamp", "step", "value", "is_nan")


def log_metrics(conn: Connection, run_id: str, experiment_id: int, points: list[MetricPoint]) -> None:
    """Append metric points to a run's history and move its latest values forward.

    A point identical to a stored one, or to an earlier one of ``points`` (key, timestamp,
    step, value, NaN flag: the table's key), is skipped by the insert, so replaying a batch
    is a no-op. Points naming a ``model_id`` are also recorded as that logged model's metrics.
    """
    if not points:
        return
    # Rows are tuples, not dicts: on a 1,000-point batch, building dicts (and dropping repeats
    # the insert skips anyway) cost ~18% of the write, ~5.7 M of ~31 M instructions.
    insert_ignoring_duplicates(conn, t.run_metrics, _METRIC_COLUMNS,
                               [(run_id, p.key, p.timestamp, p.step, p.value, p.is_nan) for p in points])

    dialect = conn.dialect.name
    # MLflow's rule for the latest value: larger step, then timestamp, then value. The batch's
    # best point per key, then that against the stored one.
    best: dict[str, tuple[tuple, MetricPoint]] = {}
    for p in points:
        rank = (p.step, p.timestamp, p.value)
        held = best.get(p.key)
        if held is None or rank > held[0]:
            best[p.key] = (rank, p)
    current: dict[str, object] = {row.key: row for row in conn.execute(
        _latest_metrics(dialect), {"run_id": run_id, "keys": listed(dialect, best)})}
    fresh, moved = [], []
    for k, (rank, p) in best.items():
        row = current.get(k)
        if row is None:
            fresh.append(p)
        elif rank > (row.step, row.timestamp, row.value):
            moved.append(p)
    if fresh:
        conn.execute(_NEW_LATEST, [{"run_id": run_id, "key": p.key, "value": p.value, "timestamp": p.timestamp,
                                    "step": p.step, "is_nan": p.is_nan} for p in fresh])
    if moved:
        conn.execute(_MOVE_LATEST, [{"b_run": run_id, "b_key": p.key, "b_value": p.value, "b_ts": p.timestamp,
                                     "b_step": p.step, "b_nan": p.is_nan} for p in moved])
    _log_model_metrics(conn, run_id, experiment_id, [p for p in points if p.model_id])


_MODEL_METRIC_COLUMNS = ("model_id", "metric_name", "metric_timestamp_ms", "metric_step", "run_id",
                         "metric_value", "is_nan", "experiment_id", "dataset_uuid", "dataset_name",
                         "dataset_digest")


def _log_model_metrics(conn: Connection, run_id: str, experiment_id: int, points: list[MetricPoint]) -> None:
    if not points:
        return
    check_models_exist(conn, [p.model_id for p in points])
    rows, seen = [], set()
    for p in points:
        identity = (p.model_id, p.key, p.timestamp, p.step)
        if identity in seen:
            continue  # the key of logged model metrics has no value: the first point wins
        seen.add(identity)
        rows.append((p.model_id, p.key, p.timestamp, p.step, run_id, p.value, p.is_nan, experiment_id,
                     None, p.dataset_name, p.dataset_digest))
    insert_ignoring_duplicates(conn, t.logged_model_metrics, _MODEL_METRIC_COLUMNS, rows)


def set_tags(conn: Connection, run_id: str, tags: list[tuple[str, str]]) -> None:
    """Set run tags (the last value of a repeated key wins); ``mlflow.runName`` also renames
    the run, as in MLflow."""
    if not tags:
        return
    latest = dict(tags)
    upsert(conn, t.run_tags, ["run_id", "key"], [{"run_id": run_id, "key": k, "value": v} for k, v in latest.items()])
    if RUN_NAME_TAG in latest:
        conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(name=latest[RUN_NAME_TAG]))


def log_dataset_inputs(conn: Connection, experiment_id: int, run_id: str,
                       inputs: list[tuple[dict, list[tuple[str, str]]]]) -> None:
    """Record datasets (one row per experiment, name and digest) as inputs of a run; an
    input already recorded keeps its first tags, as in MLflow."""
    ds, inp = t.tracking_datasets, t.tracking_inputs
    for dataset, tags in inputs:
        dataset_uuid = conn.execute(select(ds.c.dataset_uuid).where(
            ds.c.experiment_id == experiment_id, ds.c.name == dataset["name"],
            ds.c.digest == dataset["digest"])).scalar()
        if dataset_uuid is None:
            dataset_uuid = uuid.uuid4().hex
            conn.execute(ds.insert().values(dataset_uuid=dataset_uuid, experiment_id=experiment_id, **dataset))
        edge = conn.execute(select(inp.c.input_uuid).where(
            inp.c.source_type == "DATASET", inp.c.source_id == dataset_uuid,
            inp.c.destination_type == "RUN", inp.c.destination_id == run_id)).scalar()
        if edge is not None:
            continue
        input_uuid = uuid.uuid4().hex
        conn.execute(inp.insert().values(input_uuid=input_uuid, source_type="DATASET", source_id=dataset_uuid,
                                         destination_type="RUN", destination_id=run_id, step=0))
        rows = [{"input_uuid": input_uuid, "name": k, "value": v} for k, v in dict(tags).items()]
        if rows:
            conn.execute(t.tracking_input_tags.insert(), rows)


def check_models_exist(conn: Connection, model_ids: list[str]) -> None:
    """NotFound unless every id names a logged model that is not deleted."""
    lms = t.logged_models
    wanted = sorted(set(model_ids))
    found = set(conn.execute(select(lms.c.model_id).where(
        among(conn, lms.c.model_id, wanted), lms.c.lifecycle_stage == "active")).scalars())
    for model in wanted:
        if model not in found:
            raise NotFound(f"Logged model with ID '{model}' not found.")


def log_model_edges(conn: Connection, run_id: str, models: list[tuple[str, int]], output: bool) -> None:
    """Record logged models a run used (inputs) or produced at a step (outputs)."""
    check_models_exist(conn, [m for m, _ in models])
    source, destination = ("RUN_OUTPUT", "MODEL_OUTPUT") if output else ("RUN_INPUT", "MODEL_INPUT")
    insert_ignoring_duplicates(
        conn, t.tracking_inputs, ("input_uuid", "source_type", "source_id", "destination_type", "destination_id",
                                  "step"),
        [(uuid.uuid4().hex, source, run_id, destination, model, step) for model, step in models])
