"""SQL tables of the model registry (migration 4).

A registered model is a ``registered_model`` row of ``securables`` (name, owner, comment,
grants, storage location); what MLflow and Unity Catalog add to it lives here, keyed by the
securable's id so a rename touches nothing. Version numbers are never reused: the last
number handed out is kept in the securable's ``spec`` (``last_version``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from lakeray.storage.models import metadata
from lakeray.tracking.tables import bytes_string

model_versions = Table(
    "model_versions",
    metadata,
    # No foreign key to securables: a drop removes these rows in its own transaction.
    Column("model_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("source", Text, nullable=False),  # as the client gave it
    Column("run_id", bytes_string(32), nullable=True),
    Column("run_link", Text, nullable=True),
    Column("logged_model_id", String(36), nullable=True),
    Column("status", String(32), nullable=False),  # PENDING_REGISTRATION | READY | FAILED_REGISTRATION
    Column("status_message", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("storage_location", Text, nullable=False),
    Column("signature", Text, nullable=True),  # the MLmodel file's signature, JSON
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(255), nullable=False),
)
Index("ix_model_versions_run", model_versions.c.run_id)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("model_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("key", bytes_string(250), primary_key=True),
    Column("value", Text, nullable=False),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("model_id", String(36), primary_key=True),
    Column("key", bytes_string(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", String(36), primary_key=True),
    Column("alias", bytes_string(255), primary_key=True),
    Column("version", Integer, nullable=False),
)

REGISTRY_TABLES = [model_versions, model_version_tags, registered_model_tags, model_aliases]
