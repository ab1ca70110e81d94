"""Parsed searches (:mod:`lakeray.tracking.search`) compiled into SQLAlchemy clauses.

Every value travels as a bound parameter. Conditions on params, tags, metrics and
datasets are correlated ``EXISTS`` subqueries; orderings on them are outer joins on the
table's primary key (so a run appears once) or, for logged models, a correlated scalar
subquery of the latest value. ``NULL``s sort last in both directions, as in MLflow.

``LIKE`` is case-sensitive on both backends, with ``%`` and ``_`` as the only wildcards
(SQLite's own ``LIKE`` ignores case, so it is rendered as an equivalent ``GLOB`` there);
``ILIKE`` ignores case.
"""

from __future__ import annotations

from sqlalchemy import and_, case, exists, false, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from lakeray.errors import InvalidArgument
from lakeray.tracking import tables as t
from lakeray.tracking.search import Comparison, OrderBy
from lakeray.tracking.validation import MAX_INT32

DATASET_CONTEXT_TAG = "mlflow.data.context"

RUN_ATTRIBUTES = {
    "run_id": t.runs.c.run_id,
    "run_name": t.runs.c.name,
    "status": t.runs.c.status,
    "user_id": t.runs.c.user_id,
    "artifact_uri": t.runs.c.artifact_uri,
    "start_time": t.runs.c.start_time,
    "end_time": t.runs.c.end_time,
}
EXPERIMENT_ATTRIBUTES = {
    "name": t.experiments.c.name,
    "experiment_id": t.experiments.c.experiment_id,
    "creation_time": t.experiments.c.creation_time,
    "last_update_time": t.experiments.c.last_update_time,
}
MODEL_ATTRIBUTES = {
    "name": t.logged_models.c.name,
    "model_id": t.logged_models.c.model_id,
    "experiment_id": t.logged_models.c.experiment_id,
    "status": t.logged_models.c.status,
    "model_type": t.logged_models.c.model_type,
    "source_run_id": t.logged_models.c.source_run_id,
    "creation_timestamp": t.logged_models.c.creation_timestamp_ms,
    "last_updated_timestamp": t.logged_models.c.last_updated_timestamp_ms,
}
#: proto names of logged model statuses -> stored names (filters may use either).
MODEL_STATUS_NAMES = {"LOGGED_MODEL_PENDING": "PENDING", "LOGGED_MODEL_READY": "READY",
                      "LOGGED_MODEL_UPLOAD_FAILED": "FAILED", "LOGGED_MODEL_STATUS_UNSPECIFIED": "UNSPECIFIED"}


def _glob(pattern: str) -> str:
    """A SQL LIKE pattern as an SQLite GLOB pattern (GLOB is case-sensitive)."""
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")  # a GLOB metacharacter taken literally
        else:
            out.append(ch)
    return "".join(out)


def compare(column, op: str, value: object, dialect: str) -> ColumnElement:
    """``column <op> value`` with a bound value."""
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    if op == "LIKE":
        if dialect == "sqlite":
            return column.op("GLOB")(_glob(value))
        # PostgreSQL's LIKE treats backslash as an escape; MLflow's patterns have none.
        return column.like(value.replace("\\", "\\\\"))
    if op == "ILIKE":
        if dialect == "sqlite":
            return column.ilike(value)  # lower(x) LIKE lower(y); SQLite's LIKE has no escape
        return column.ilike(value.replace("\\", "\\\\"))
    raise InvalidArgument(f"unsupported comparator {op!r}")


def _metric_condition(value_col, is_nan_col, comp: Comparison, dialect: str) -> ColumnElement:
    cond = compare(value_col, comp.op, comp.value, dialect)
    # NaN is stored as 0 with is_nan set: every comparison with NaN is false except "!=".
    if comp.op == "!=":
        return or_(cond, is_nan_col == true())
    return and_(cond, is_nan_col == false())


def _experiment_ids(comp: Comparison) -> object:
    if comp.op not in ("=", "!=", "IN", "NOT IN"):
        raise InvalidArgument(f"invalid clause {comp.text!r}: experiment_id takes =, !=, IN or NOT IN")
    values = comp.value if isinstance(comp.value, tuple) else (comp.value,)
    ids = []
    for value in values:
        if not value.isdigit() or int(value) > MAX_INT32:
            raise InvalidArgument(f"invalid clause {comp.text!r}: {value!r} is not an experiment ID")
        ids.append(int(value))
    return tuple(ids) if isinstance(comp.value, tuple) else ids[0]


def _key_value(table, owner_col, owner, comp: Comparison, dialect: str) -> ColumnElement:
    """A param/tag condition: EXISTS a row of ``table`` for the owner with that key (and value)."""
    match = [owner_col == owner, table.c.key == comp.key]
    if comp.op == "IS NULL":
        return ~exists().where(*match)
    if comp.op == "IS NOT NULL":
        return exists().where(*match)
    return exists().where(*match, compare(table.c.value, comp.op, comp.value, dialect))


# -- runs -------------------------------------------------------------------------------------
def run_conditions(comparisons: list[Comparison], dialect: str) -> list[ColumnElement]:
    """WHERE conditions on ``runs`` for parsed run filters, cheapest and likeliest to fail first
    (see :func:`_test_order`)."""
    runs, out = t.runs, []
    for comp in sorted(comparisons, key=_test_order):
        if comp.entity == "attribute":
            out.append(compare(RUN_ATTRIBUTES[comp.key], comp.op, comp.value, dialect))
        elif comp.entity == "metric":
            lm = t.run_latest_metrics
            out.append(exists().where(lm.c.run_id == runs.c.run_id, lm.c.key == comp.key,
                                      _metric_condition(lm.c.value, lm.c.is_nan, comp, dialect)))
        elif comp.entity == "param":
            out.append(_key_value(t.run_params, t.run_params.c.run_id, runs.c.run_id, comp, dialect))
        elif comp.entity == "tag":
            out.append(_key_value(t.run_tags, t.run_tags.c.run_id, runs.c.run_id, comp, dialect))
        elif comp.entity == "dataset":
            out.append(_dataset_condition(comp, dialect))
        else:  # the grammar admits nothing else
            raise InvalidArgument(f"invalid clause {comp.text!r}")
    return out


def _test_order(comp: Comparison) -> int:
    """Where a run condition goes among the others. SQLite tests a page's candidate runs against
    the conditions in the order written and stops at the first that fails, so a run's own
    columns go first, then equalities on its params and tags (usually few runs match one), then
    the rest (ranges, LIKE, metrics), each group in the filter's order. A filter of
    ``metrics.score > 0.5 and params.model = 'a'`` where a quarter of the runs has model 'a':
    the page query ~19 -> ~14 ms over 10,000 runs (no change when half of them has it, as in
    benchmarks/tracking.py's corpus). PostgreSQL plans the order itself."""
    if comp.entity == "attribute":
        return 0
    if comp.entity in ("param", "tag") and comp.op in ("=", "IN"):
        return 1
    return 2


def _dataset_condition(comp: Comparison, dialect: str) -> ColumnElement:
    inp, ds = t.tracking_inputs, t.tracking_datasets
    edge = [inp.c.destination_type == "RUN", inp.c.destination_id == t.runs.c.run_id,
            inp.c.source_type == "DATASET", ds.c.dataset_uuid == inp.c.source_id]
    if comp.key == "context":
        it = t.tracking_input_tags
        return exists().where(*edge, it.c.input_uuid == inp.c.input_uuid, it.c.name == DATASET_CONTEXT_TAG,
                              compare(it.c.value, comp.op, comp.value, dialect))
    return exists().where(*edge, compare(ds.c[comp.key], comp.op, comp.value, dialect))


def _nulls_last(col) -> ColumnElement:
    return case((col.is_(None), 1), else_=0)


def run_order(order_by: list[OrderBy]):
    """``(from clause, ORDER BY clauses)`` for run orderings; MLflow's default tail is
    ``start_time DESC, run_id``."""
    runs = t.runs
    source, clauses = runs, []
    for i, item in enumerate(order_by):
        if item.entity == "attribute":
            col = RUN_ATTRIBUTES[item.key]
            clauses.append(_nulls_last(col))
        else:
            table = {"metric": t.run_latest_metrics, "param": t.run_params, "tag": t.run_tags}[item.entity]
            joined = table.alias(f"order_{i}")
            # (run_id, key) is the primary key: the join adds at most one row per run.
            source = source.outerjoin(joined, and_(joined.c.run_id == runs.c.run_id, joined.c.key == item.key))
            col = joined.c.value
            if item.entity == "metric":  # NaN after numbers, missing values last
                clauses.append(case((joined.c.is_nan == true(), 1), (col.is_(None), 2), else_=0))
            else:
                clauses.append(_nulls_last(col))
        clauses.append(col.asc() if item.ascending else col.desc())
    if not any(o.entity == "attribute" and o.key == "start_time" for o in order_by):
        clauses.append(runs.c.start_time.desc())
    clauses.append(runs.c.run_id.asc())
    return source, clauses


# -- experiments ------------------------------------------------------------------------------------
def experiment_conditions(comparisons: list[Comparison], dialect: str) -> list[ColumnElement]:
    """WHERE conditions on ``experiments`` for parsed experiment filters."""
    exps, out = t.experiments, []
    for comp in comparisons:
        if comp.entity == "attribute":
            if comp.key == "experiment_id":
                out.append(compare(exps.c.experiment_id, comp.op, _experiment_ids(comp), dialect))
            else:
                out.append(compare(EXPERIMENT_ATTRIBUTES[comp.key], comp.op, comp.value, dialect))
        elif comp.entity == "tag":
            if comp.op in ("IN", "NOT IN"):
                raise InvalidArgument(f"invalid clause {comp.text!r}: experiment tags take =, !=, LIKE, ILIKE, "
                                      "IS NULL or IS NOT NULL")
            out.append(_key_value(t.experiment_tags, t.experiment_tags.c.experiment_id, exps.c.experiment_id,
                                  comp, dialect))
        else:
            raise InvalidArgument(f"invalid clause {comp.text!r}")
    return out


def experiment_order(order_by: list[OrderBy]) -> list[ColumnElement]:
    """ORDER BY clauses for experiments: default ``creation_time DESC, experiment_id ASC``."""
    exps = t.experiments
    if not order_by:
        return [exps.c.creation_time.desc(), exps.c.experiment_id.asc()]
    clauses = []
    for item in order_by:
        col = EXPERIMENT_ATTRIBUTES[item.key]
        clauses.append(col.asc() if item.ascending else col.desc())
    if not any(o.key == "experiment_id" for o in order_by):
        clauses.append(exps.c.experiment_id.desc())  # MLflow's tie-breaker
    return clauses


# -- logged models ------------------------------------------------------------------------------
def _dataset_match(datasets: list[dict]) -> ColumnElement | None:
    lmm = t.logged_model_metrics
    options = []
    for ds in datasets:
        cond = lmm.c.dataset_name == ds["dataset_name"]
        if ds.get("dataset_digest"):
            cond = and_(cond, lmm.c.dataset_digest == ds["dataset_digest"])
        options.append(cond)
    return or_(*options) if options else None


def model_conditions(comparisons: list[Comparison], datasets: list[dict], dialect: str) -> list[ColumnElement]:
    """WHERE conditions on ``logged_models``; ``datasets`` ({dataset_name, dataset_digest})
    restricts metric conditions to metrics on those datasets, or, without metric
    conditions, keeps models having any metric on them."""
    models, lmm, out = t.logged_models, t.logged_model_metrics, []
    on_datasets = _dataset_match(datasets)
    has_metric = False
    for comp in comparisons:
        if comp.entity == "attribute":
            value = comp.value
            if comp.key == "experiment_id":
                value = _experiment_ids(comp)
            elif comp.key == "status" and comp.op in ("=", "!=", "IN", "NOT IN"):
                value = (tuple(MODEL_STATUS_NAMES.get(v, v) for v in value) if isinstance(value, tuple)
                         else MODEL_STATUS_NAMES.get(value, value))
            out.append(compare(MODEL_ATTRIBUTES[comp.key], comp.op, value, dialect))
        elif comp.entity == "metric":
            has_metric = True
            match = [lmm.c.model_id == models.c.model_id, lmm.c.metric_name == comp.key,
                     _metric_condition(lmm.c.metric_value, lmm.c.is_nan, comp, dialect)]
            if on_datasets is not None:
                match.append(on_datasets)
            out.append(exists().where(*match))
        elif comp.entity == "param":
            p = t.logged_model_params
            out.append(_model_key_value(p, p.c.param_key, p.c.param_value, comp, dialect))
        elif comp.entity == "tag":
            g = t.logged_model_tags
            out.append(_model_key_value(g, g.c.tag_key, g.c.tag_value, comp, dialect))
        else:
            raise InvalidArgument(f"invalid clause {comp.text!r}")
    if on_datasets is not None and not has_metric:
        out.append(exists().where(lmm.c.model_id == models.c.model_id, on_datasets))
    return out


def _model_key_value(table, key_col, value_col, comp: Comparison, dialect: str) -> ColumnElement:
    match = [table.c.model_id == t.logged_models.c.model_id, key_col == comp.key]
    if comp.op == "IS NULL":
        return ~exists().where(*match)
    if comp.op == "IS NOT NULL":
        return exists().where(*match)
    return exists().where(*match, compare(value_col, comp.op, comp.value, dialect))


def model_order(order_by: list[OrderBy]) -> list[ColumnElement]:
    """ORDER BY clauses for logged models: attributes or ``metrics.<name>`` (the latest
    value, optionally on one dataset), then ``creation_timestamp DESC, model_id ASC``."""
    models, lmm = t.logged_models, t.logged_model_metrics
    clauses = []
    for item in order_by:
        if item.entity == "attribute":
            col = MODEL_ATTRIBUTES[item.key]
        else:
            latest = select(lmm.c.metric_value).where(lmm.c.model_id == models.c.model_id,
                                                      lmm.c.metric_name == item.key)
            if item.dataset_name:
                latest = latest.where(lmm.c.dataset_name == item.dataset_name)
            if item.dataset_digest:
                latest = latest.where(lmm.c.dataset_digest == item.dataset_digest)
            col = (latest.order_by(lmm.c.metric_timestamp_ms.desc(), lmm.c.metric_step.desc(), lmm.c.run_id.asc())
                   .limit(1).scalar_subquery())
        clauses.append(_nulls_last(col))
        clauses.append(col.asc() if item.ascending else col.desc())
    if not any(o.entity == "attribute" and o.key == "creation_timestamp" for o in order_by):
        clauses.append(models.c.creation_timestamp_ms.desc())
    if not any(o.entity == "attribute" and o.key == "model_id" for o in order_by):
        clauses.append(models.c.model_id.asc())
    return clauses
