"""What the AI gateway records about each query: usage rows and inference-table rows, appended to
catalog tables in batches.

- Usage tracking (``usage_tracking_config``): one row per call in the platform-owned table
  ``system.serving.endpoint_usage`` (caller, served entity, status, tokens in and out, latency).
- Inference tables (``inference_table_config``): one row per call in
  ``<catalog>.<schema>.<prefix>_payload`` (request, response, status, latency, caller, served
  entity, trace id). The table is created by whoever configures it, as that principal (so it
  needs CREATE TABLE there and owns it), and is governed like any other table.

Rows are buffered in the gateway actor and appended once a second (or every
:data:`FLUSH_ROWS` rows), one Lance commit per table per batch, so logging never sits on the
query path. A killed gateway actor loses at most the batch it had not flushed yet.
"""

from __future__ import annotations

import logging
import threading

import pyarrow as pa

from lakeray.errors import AlreadyExists, InvalidArgument, LakerayError, NotFound

log = logging.getLogger("lakeray.gateway")

USAGE_TABLE = "system.serving.endpoint_usage"
FLUSH_INTERVAL_S = 1.0
FLUSH_ROWS = 500
#: the most rows held for one table while its appends fail (older ones are dropped first)
MAX_BUFFERED = 50_000

USAGE_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("endpoint_name", pa.string()), ("served_entity_name", pa.string()),
    ("requester", pa.string()), ("requester_kind", pa.string()), ("api", pa.string()),
    ("request_time_ms", pa.int64()), ("status_code", pa.int32()), ("request_streaming", pa.bool_()),
    ("input_token_count", pa.int64()), ("output_token_count", pa.int64()), ("latency_ms", pa.int64()),
])

INFERENCE_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("client_request_id", pa.string()), ("trace_id", pa.string()),
    ("endpoint_name", pa.string()), ("served_entity_name", pa.string()), ("requester", pa.string()),
    ("api", pa.string()), ("timestamp_ms", pa.int64()), ("status_code", pa.int32()),
    ("execution_duration_ms", pa.int64()), ("request", pa.string()), ("response", pa.string()),
])


def inference_table(config: dict) -> str:
    """The full name of an inference table config's payload table."""
    return f"{config['catalog_name']}.{config['schema_name']}.{config['table_name_prefix']}_payload"


def ensure_table(tables, caller, full_name: str, schema: pa.Schema, comment: str) -> None:
    """Create ``full_name`` with ``schema`` as ``caller`` unless it exists; an existing table must
    have exactly these columns (it may be one an earlier config created)."""
    try:
        tables.create_table(caller, full_name, schema=schema, comment=comment)
        return
    except AlreadyExists:
        pass
    have = tables.describe(caller, full_name)
    if [c["name"] for c in have["columns"]] != schema.names:
        raise InvalidArgument(f"inference_table_config: table {full_name} exists with other columns; "
                              "choose another table_name_prefix")


class BatchWriter:
    """Rows per table, appended in batches by a background thread (see the module docstring)."""

    def __init__(self, tables, caller, interval_s: float = FLUSH_INTERVAL_S):
        self.tables, self.caller, self.interval_s = tables, caller, interval_s
        self._lock = threading.Lock()
        self._rows: dict[str, list[dict]] = {}
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="gateway-log", daemon=True)
        self._thread.start()

    def add(self, full_name: str, rows: list[dict]) -> None:
        """Queue rows for ``full_name`` (the next flush appends them)."""
        with self._lock:
            held = self._rows.setdefault(full_name, [])
            held.extend(rows)
            if len(held) > MAX_BUFFERED:
                del held[:len(held) - MAX_BUFFERED]
            full = len(held) >= FLUSH_ROWS
        if full:
            self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the rows stay queued for the next pass
                log.exception("a gateway log flush failed")

    def flush(self) -> int:
        """Append everything queued, one commit per table; returns the rows written."""
        with self._flushing:
            with self._lock:
                batches, self._rows = self._rows, {}
            written = 0
            for full_name, rows in batches.items():
                schema = USAGE_SCHEMA if full_name == USAGE_TABLE else INFERENCE_SCHEMA
                data = pa.Table.from_pylist(rows, schema=schema)
                try:
                    try:
                        self.tables.append(self.caller, full_name, data)
                    except NotFound:
                        if full_name != USAGE_TABLE:
                            raise
                        # the platform's own table: made again if someone dropped it
                        ensure_table(self.tables, self.caller, USAGE_TABLE, USAGE_SCHEMA,
                                     "Serving endpoint usage: one row per call (lakeray AI gateway)")
                        self.tables.append(self.caller, full_name, data)
                    written += len(rows)
                except NotFound:
                    # an inference table its owner dropped: its rows have nowhere to go
                    log.warning("inference table %s is gone; %d rows dropped", full_name, len(rows))
                except (LakerayError, OSError):
                    log.exception("appending %d rows to %s failed; kept for the next flush", len(rows), full_name)
                    with self._lock:
                        self._rows[full_name] = rows + self._rows.get(full_name, [])
            return written
