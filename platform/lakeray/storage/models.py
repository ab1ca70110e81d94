"""SQL table definitions of the metadata DB (SQLAlchemy Core).

Tables only grow through a new migration in :mod:`lakeray.storage.db`; each migration
creates the tables it introduces by name, so old migrations keep meaning what they meant.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", BigInteger, nullable=False),
)

# One row per catalog object. ``spec`` holds the type-specific JSON (table columns, function
# signature and body, volume type...); the hierarchy is ``parent_id``.
securables = Table(
    "securables",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("full_name", String(800), nullable=False),
    Column("name", String(255), nullable=False),  # COLLATE "C" on PostgreSQL (migration 2)
    Column("parent_id", String(36), ForeignKey("securables.id"), nullable=True),
    Column("owner", String(255), nullable=False),
    Column("comment", Text, nullable=True),
    Column("properties", Text, nullable=False, default="{}"),
    Column("tags", Text, nullable=False, default="{}"),
    Column("storage_location", Text, nullable=True),
    Column("spec", Text, nullable=False, default="{}"),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(255), nullable=False),
    UniqueConstraint("type", "full_name", name="uq_securable_type_name"),
)
Index("ix_securables_parent", securables.c.parent_id)

grants = Table(
    "grants",
    metadata,
    Column("securable_id", String(36), ForeignKey("securables.id"), primary_key=True),
    Column("principal", String(255), primary_key=True),
    Column("privilege", String(64), primary_key=True),
    Column("granted_by", String(255), nullable=False),
    Column("granted_at", BigInteger, nullable=False),
)
Index("ix_grants_principal", grants.c.principal)

principals = Table(
    "principals",
    metadata,
    Column("name", String(255), primary_key=True),  # COLLATE "C" on PostgreSQL (migration 2)
    Column("kind", String(32), nullable=False),  # user | group | service_principal
    Column("display_name", String(255), nullable=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(255), nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_name", String(255), ForeignKey("principals.name"), primary_key=True),
    Column("member", String(255), ForeignKey("principals.name"), primary_key=True),
)
Index("ix_group_members_member", group_members.c.member)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("principal", String(255), ForeignKey("principals.name"), nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("created_by", String(255), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("principal", String(255), nullable=False),
    Column("action", String(128), nullable=False),
    Column("securable_type", String(32), nullable=True),
    Column("securable", String(800), nullable=True),
    Column("result", String(16), nullable=False),  # ok | denied | error
    Column("detail", Text, nullable=True),
)
Index("ix_audit_ts", audit_log.c.ts)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_type", String(32), nullable=False),
    Column("source_name", String(800), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_name", String(800), nullable=False),
    Column("run_id", String(128), nullable=True),
    Column("job_id", String(128), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(255), nullable=False),
)
Index("ix_lineage_source", lineage_edges.c.source_type, lineage_edges.c.source_name)
Index("ix_lineage_target", lineage_edges.c.target_type, lineage_edges.c.target_name)

# A mutating call carrying a request id records its result here in the same transaction as
# the write, so a retried call (after an actor restart) returns the first result instead of
# writing twice.
idempotency = Table(
    "idempotency",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("operation", String(128), nullable=False),
    Column("principal", String(255), nullable=False),
    Column("result", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

V1_TABLES = [
    securables,
    grants,
    principals,
    group_members,
    tokens,
    audit_log,
    lineage_edges,
    idempotency,
]
