"""SQL table of secrets (migration 6): one encrypted value per scope and key.

A scope is a top-level ``secret_scope`` securable (owner, grants READ < WRITE < MANAGE); its
secrets are rows here, deleted with it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, String, Table

from lakeray.storage.models import metadata

secrets = Table(
    "secrets",
    metadata,
    Column("scope_id", String(36), primary_key=True),  # the scope securable's id
    Column("key", String(128), primary_key=True),
    Column("value", LargeBinary, nullable=False),  # Fernet token (see lakeray.secrets.vault)
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(255), nullable=False),
)

SECRET_TABLES = [secrets]
