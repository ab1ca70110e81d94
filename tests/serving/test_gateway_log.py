"""The gateway's batched log writer without Ray: rows queue and land in one append per table per
flush; the usage table is made (again) by the platform when missing; rows for an inference table
its owner dropped are dropped, not retried forever (SQLite and PostgreSQL)."""

from __future__ import annotations

from lakeray.serving.gateway_log import INFERENCE_SCHEMA, USAGE_TABLE, BatchWriter, ensure_table
from lakeray.serving.service import SYSTEM


def usage_row(i: int) -> dict:
    return {"request_id": f"r{i}", "endpoint_name": "ep", "served_entity_name": "a", "requester": "admin",
            "requester_kind": "user", "api": "invocations", "request_time_ms": i, "status_code": 200,
            "request_streaming": False, "input_token_count": 0, "output_token_count": 0, "latency_ms": 3}


def test_rows_are_appended_in_one_commit_per_table_per_flush(registry, admin):
    writer = BatchWriter(registry.tables, SYSTEM, interval_s=3600)
    writer.add(USAGE_TABLE, [usage_row(1), usage_row(2)])
    writer.add(USAGE_TABLE, [usage_row(3)])
    assert writer.flush() == 3  # the usage table did not exist: made by the platform, then appended
    assert registry.tables.describe(admin, USAGE_TABLE)["num_rows"] == 3
    versions = len(registry.tables.versions(admin, USAGE_TABLE))
    writer.add(USAGE_TABLE, [usage_row(i) for i in range(4, 14)])
    assert writer.flush() == 10
    assert len(registry.tables.versions(admin, USAGE_TABLE)) == versions + 1
    assert writer.flush() == 0


def test_rows_of_a_dropped_inference_table_are_dropped(registry, admin):
    table = "main.default.ep_payload"
    ensure_table(registry.tables, admin, table, INFERENCE_SCHEMA, "inference table")
    writer = BatchWriter(registry.tables, SYSTEM, interval_s=3600)
    row = {name: None for name in INFERENCE_SCHEMA.names} | {"request_id": "r1", "status_code": 200}
    writer.add(table, [row])
    assert writer.flush() == 1
    registry.catalog.delete(admin, "table", table)
    writer.add(table, [row])
    assert writer.flush() == 0 and writer.flush() == 0  # nowhere to go: not kept for ever
