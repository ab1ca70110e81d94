"""SQL tables of experiment tracking (SQLAlchemy Core, on the shared metadata).

The layout follows MLflow's SQL store, so the semantics it relies on carry over:

- ``run_metrics`` is keyed by (run, key, timestamp, step, value, is_nan): logging the very
  same metric twice is a no-op, which makes a client's retry after a crash idempotent;
- ``run_latest_metrics`` holds the newest value per key (by step, then timestamp, then
  value) so searches and ``get_run`` never scan the history;
- NaN is stored as value 0 with ``is_nan`` set, +/-Inf as +/-1.7976931348623157e308
  (SQL has neither);
- datasets are per experiment and reach runs through ``tracking_inputs`` edges, which also
  carry MLflow 3's model inputs and outputs.

Strings that searches order by get the byte-wise "C" collation on PostgreSQL, so ordering
and ``LIKE`` behave as on SQLite. :data:`TRACKING_TABLES` is what migration 3 creates.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lakeray.storage.models import metadata


def bytes_string(length: int) -> String:
    # Byte-wise comparison on PostgreSQL (its default collation follows the locale and
    # ignores punctuation); SQLite compares bytes already.
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _bytes_text() -> Text:
    return Text().with_variant(Text(collation="C"), "postgresql")


def _double() -> Float:
    """An IEEE double on both backends (FLOAT(53) is DOUBLE PRECISION on PostgreSQL)."""
    return Float(precision=53)


experiments = Table(
    "experiments",
    metadata,
    # Integer ids as MLflow's SQL store has them; "0" is the Default experiment.
    Column("experiment_id", Integer, primary_key=True, autoincrement=False),
    Column("name", bytes_string(500), nullable=False, unique=True),
    Column("artifact_location", Text, nullable=False),  # under the artifact root, any length
    Column("lifecycle_stage", String(32), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("owner", String(255), nullable=False),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), primary_key=True),
    Column("key", bytes_string(250), primary_key=True),
    Column("value", _bytes_text(), nullable=False),
)

# Who may do what on an experiment besides its owner and the metastore admins.
experiment_permissions = Table(
    "experiment_permissions",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), primary_key=True),
    Column("principal", String(255), primary_key=True),
    Column("permission", String(16), nullable=False),  # READ | EDIT | MANAGE
    Column("granted_by", String(255), nullable=False),
    Column("granted_at", BigInteger, nullable=False),
)
Index("ix_experiment_permissions_principal", experiment_permissions.c.principal)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", bytes_string(250), nullable=False),
    Column("user_id", bytes_string(255), nullable=False),
    Column("status", bytes_string(20), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("deleted_time", BigInteger, nullable=True),
    Column("lifecycle_stage", String(20), nullable=False),
    Column("artifact_uri", _bytes_text(), nullable=False),
)
# search_runs: the experiments named in its default order (start_time DESC, run_id), with
# what its filters need of a run before reading the row (run_id for the per-run lookups, the
# lifecycle stage): a page is read from this index in order, stops after its last match and
# fetches only the matching rows. Migration 8 puts it in place of (experiment_id, start_time).
Index("ix_runs_experiment_page", runs.c.experiment_id, runs.c.start_time.desc(), runs.c.run_id,
      runs.c.lifecycle_stage)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", bytes_string(250), primary_key=True),
    Column("value", _bytes_text(), nullable=False),
    sqlite_with_rowid=False,  # see run_latest_metrics
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", bytes_string(250), primary_key=True),
    Column("value", _bytes_text(), nullable=False),
    sqlite_with_rowid=False,  # see run_latest_metrics
)

# The full history. The whole row is the key (as in MLflow's SQL store): re-logging an
# identical point changes nothing, so a retried log_batch cannot duplicate a metric.
run_metrics = Table(
    "run_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", bytes_string(250), primary_key=True),
    Column("timestamp", BigInteger, primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("value", _double(), primary_key=True),
    Column("is_nan", Boolean, primary_key=True),
    # On SQLite the key is the table (no rowid beside it): one B-tree to insert into instead
    # of two, ~30% of a 1,000-metric log_batch's insert. Migration 7 rebuilds older tables.
    sqlite_with_rowid=False,
)

run_latest_metrics = Table(
    "run_latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", bytes_string(250), primary_key=True),
    Column("value", _double(), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("is_nan", Boolean, nullable=False),
    # On SQLite the rows are stored in (run_id, key) order with no rowid: a search's
    # per-run lookups (filters, the page's metrics) are one B-tree search each instead of
    # an index search plus a table fetch. Migration 8 rebuilds older tables; run_params and
    # run_tags are the same.
    sqlite_with_rowid=False,
)

# Datasets belong to an experiment; one row per (name, digest) as MLflow keeps them.
tracking_datasets = Table(
    "tracking_datasets",
    metadata,
    Column("dataset_uuid", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", bytes_string(500), nullable=False),
    Column("digest", bytes_string(36), nullable=False),
    Column("source_type", String(36), nullable=False),
    Column("source", Text, nullable=False),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    UniqueConstraint("experiment_id", "name", "digest", name="uq_tracking_dataset"),
)

# Edges: DATASET -> RUN (dataset inputs), RUN_INPUT -> MODEL_INPUT (a run used a logged
# model), RUN_OUTPUT -> MODEL_OUTPUT (a run produced a logged model, at a step).
tracking_inputs = Table(
    "tracking_inputs",
    metadata,
    Column("input_uuid", String(36), primary_key=True),
    Column("source_type", String(36), nullable=False),
    Column("source_id", String(36), nullable=False),
    Column("destination_type", String(36), nullable=False),
    Column("destination_id", String(36), nullable=False),
    Column("step", BigInteger, nullable=False, default=0),
    UniqueConstraint("source_type", "source_id", "destination_type", "destination_id",
                     name="uq_tracking_input_edge"),
)
Index("ix_tracking_inputs_destination", tracking_inputs.c.destination_id)
Index("ix_tracking_inputs_source", tracking_inputs.c.source_id)

tracking_input_tags = Table(
    "tracking_input_tags",
    metadata,
    Column("input_uuid", String(36), ForeignKey("tracking_inputs.input_uuid"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", String(500), nullable=False),
)

# MLflow 3 logged models.
logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", bytes_string(500), nullable=False),
    Column("artifact_location", Text, nullable=False),
    Column("creation_timestamp_ms", BigInteger, nullable=False),
    Column("last_updated_timestamp_ms", BigInteger, nullable=False),
    Column("status", bytes_string(16), nullable=False),  # PENDING | READY | FAILED
    Column("lifecycle_stage", String(32), nullable=False),
    Column("model_type", bytes_string(500), nullable=True),
    Column("source_run_id", bytes_string(32), nullable=True),
    Column("status_message", String(1000), nullable=True),
    Column("creator", String(255), nullable=False),
)
Index("ix_logged_models_experiment", logged_models.c.experiment_id, logged_models.c.creation_timestamp_ms)

logged_model_params = Table(
    "logged_model_params",
    metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id"), primary_key=True),
    Column("param_key", bytes_string(255), primary_key=True),
    Column("param_value", _bytes_text(), nullable=False),
)

logged_model_tags = Table(
    "logged_model_tags",
    metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id"), primary_key=True),
    Column("tag_key", bytes_string(255), primary_key=True),
    Column("tag_value", _bytes_text(), nullable=False),
)

logged_model_metrics = Table(
    "logged_model_metrics",
    metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id"), primary_key=True),
    Column("metric_name", bytes_string(500), primary_key=True),
    Column("metric_timestamp_ms", BigInteger, primary_key=True),
    Column("metric_step", BigInteger, primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("metric_value", _double(), nullable=False),
    Column("is_nan", Boolean, nullable=False),
    Column("experiment_id", Integer, nullable=False),
    Column("dataset_uuid", String(36), nullable=True),
    Column("dataset_name", String(500), nullable=True),
    Column("dataset_digest", String(36), nullable=True),
)

#: Every tracking table, in creation order (migration 3).
TRACKING_TABLES = [
    experiments,
    experiment_tags,
    experiment_permissions,
    runs,
    run_tags,
    run_params,
    run_metrics,
    run_latest_metrics,
    tracking_datasets,
    tracking_inputs,
    tracking_input_tags,
    logged_models,
    logged_model_params,
    logged_model_tags,
    logged_model_metrics,
]
