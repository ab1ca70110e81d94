"""SQL table of serving (migration 5): what the deployer has made of each endpoint.

The endpoint itself is a ``serving_endpoint`` row of ``securables`` whose ``spec`` holds the
config the user asked for (``config``, ``config_version``). Its row here is what runs: the
config version the routes serve, the routes (served entity -> Serve application, share of
traffic), readiness, the state of an update and each served entity's deployment state. Only
the deployer writes it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table, Text

from lakeray.storage.models import metadata

serving_state = Table(
    "serving_state",
    metadata,
    Column("endpoint_id", String(36), primary_key=True),  # the securable's id
    Column("state", Text, nullable=False),  # JSON, see lakeray.serving.service.initial_state
    Column("updated_at", BigInteger, nullable=False),
)

SERVING_TABLES = [serving_state]
