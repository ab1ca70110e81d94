"""Arrow tables on the wire: IPC stream bytes and JSON rows, with clear errors for bad input."""

from __future__ import annotations

import base64
import datetime
import decimal

import pyarrow as pa

from lakeray.errors import InvalidArgument

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def to_ipc(table: pa.Table) -> bytes:
    """Serialise a table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    """Read an Arrow IPC stream; anything unreadable is an InvalidArgument."""
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        raise InvalidArgument(f"body is not a readable Arrow IPC stream: {e}") from None


def from_rows(rows: list[dict]) -> pa.Table:
    """Rows (list of objects) as an Arrow table; mixed or unsupported values are an InvalidArgument."""
    if not rows:
        raise InvalidArgument("rows must not be empty")
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        raise InvalidArgument(f"rows cannot be read as a table: {e}") from None


def _json_value(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def to_rows(table: pa.Table) -> list[dict]:
    """JSON-ready rows of a table (bytes as base64, times as ISO 8601, decimals as strings)."""
    return [_json_value(row) for row in table.to_pylist()]
