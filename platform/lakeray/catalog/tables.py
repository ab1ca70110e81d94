"""Managed tables: Lance datasets governed by the catalog.

Every write is one Lance commit (a new version); reads can name any earlier version (time
travel). A write may carry a ``request_id``: it is stored in the commit's transaction
properties, and a retried write with the same id finds it and returns the first result, so
a write retried after an actor restart lands exactly once.
"""

from __future__ import annotations

import base64
import math
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import lance
import pyarrow as pa

from lakeray.catalog import names
from lakeray.catalog.audit import AuditLog
from lakeray.catalog.lineage import LineageService, check_edge_args
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.catalog.securables import Securable
from lakeray.catalog.service import CatalogService
from lakeray.catalog.table_types import arrow_from_columns, columns_from_arrow
from lakeray.errors import InvalidArgument, NotFound
from lakeray.principals.service import Caller

P = Privilege
ST = SecurableType
REQUEST_PROPERTY = "lakeray.request_id"
MAX_PAGE_ROWS = 10_000
# How many recent commits a retried write searches for its request id.
RETRY_WINDOW = 200
_OPS = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
        "in": "IN", "not in": "NOT IN", "is null": "IS NULL", "is not null": "IS NOT NULL"}


def _literal(value: object) -> str:
    """A SQL literal for a predicate value; only plain scalars are accepted."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument("predicate values must be finite numbers")
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidArgument("predicate strings may not contain NUL")
        return "'" + value.replace("'", "''") + "'"
    raise InvalidArgument(f"unsupported predicate value {value!r}: use numbers, strings, booleans or null")


def predicate_sql(predicate: object, schema: pa.Schema) -> str:
    """Turn a structured predicate into a Lance filter string.

    ``predicate`` is a list of ``[column, op, value]`` conditions that must all hold (the
    pyarrow/Ray ``filters`` shape), e.g. ``[["year", ">=", 2020], ["lang", "in", ["en", "de"]]]``.
    Column names must exist in the table; values are rendered as escaped literals, so no
    user text ever becomes SQL.
    """
    if not isinstance(predicate, list) or not predicate:
        raise InvalidArgument("predicate must be a non-empty list of [column, op, value] conditions")
    if len(predicate) > 100:
        raise InvalidArgument("a predicate may have at most 100 conditions")
    parts = []
    for cond in predicate:
        if not isinstance(cond, (list, tuple)) or len(cond) not in (2, 3):
            raise InvalidArgument(f"condition {cond!r} must be [column, op, value]")
        column, op = cond[0], cond[1]
        if not isinstance(column, str) or column not in schema.names:
            raise InvalidArgument(f"predicate column {column!r} is not in the table")
        if not isinstance(op, str) or op.lower() not in _OPS:
            raise InvalidArgument(f"unknown predicate operator {op!r}; use one of {', '.join(_OPS)}")
        sql_op = _OPS[op.lower()]
        col = f"`{column}`"
        if sql_op in ("IS NULL", "IS NOT NULL"):
            parts.append(f"{col} {sql_op}")
            continue
        if len(cond) != 3:
            raise InvalidArgument(f"operator {op!r} needs a value")
        value = cond[2]
        if sql_op in ("IN", "NOT IN"):
            if not isinstance(value, list) or not value or len(value) > 10_000:
                raise InvalidArgument(f"operator {op!r} needs a non-empty list value")
            parts.append(f"{col} {sql_op} ({', '.join(_literal(v) for v in value)})")
        else:
            if value is None:
                raise InvalidArgument("compare with null using 'is null' / 'is not null'")
            parts.append(f"{col} {sql_op} {_literal(value)}")
    return " AND ".join(parts)


def _path(obj: Securable) -> str:
    return unquote(urlparse(obj.storage_location).path)


def encode_schema(schema: pa.Schema) -> str:
    """An Arrow schema as base64 IPC, for storing in the securable spec."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


class TableService:
    """Create, write, read and time-travel managed Lance tables."""

    def __init__(self, catalog: CatalogService, audit: AuditLog, lineage: LineageService, root: Path):
        self.catalog = catalog
        self.audit = audit
        self.lineage = lineage
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        catalog.locate[ST.TABLE] = lambda obj: (self.root / f"{obj.id}.lance").as_uri()
        catalog.on_drop.append(self._drop_data)

    def _lock(self, table_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(table_id, threading.Lock())

    def _drop_data(self, dropped: list[Securable]) -> None:
        import shutil

        for obj in dropped:
            if obj.type == ST.TABLE and obj.storage_location:
                shutil.rmtree(_path(obj), ignore_errors=True)

    # -- create ----------------------------------------------------------------------------
    def create_table(self, caller: Caller, full_name: str, schema: pa.Schema | None = None,
                     data: pa.Table | None = None, comment: str | None = None,
                     properties: dict | None = None, sources: list[str] | None = None,
                     job_id: str | None = None, run_id: str | None = None) -> dict:
        """Create a managed table from an Arrow schema, or from data (its schema is taken)."""
        if data is not None:
            if not isinstance(data, pa.Table):
                raise InvalidArgument("data must be an Arrow table")
            schema = data.schema if schema is None else schema
            data = self._conform(data, schema)
        if not isinstance(schema, pa.Schema) or len(schema) == 0:
            raise InvalidArgument("a table needs a schema with at least one column (or data)")
        _check_schema(schema)
        check_edge_args(sources, run_id, job_id)
        spec = {"columns": columns_from_arrow(schema), "arrow_schema": encode_schema(schema)}
        info = self.catalog.create(caller, ST.TABLE, full_name, comment=comment, properties=properties,
                                   spec=spec)
        obj = self.catalog.resolve(caller, ST.TABLE, info["full_name"], P.MODIFY, action="create_table")
        try:
            lance.write_dataset(data if data is not None else schema.empty_table(), _path(obj),
                                schema=schema, mode="create")
        except Exception:
            # The catalog row must not outlive a failed first write.
            self.catalog.delete(caller, ST.TABLE, info["full_name"], force=True)
            raise
        self._record_lineage(caller, obj, sources, job_id, run_id)
        return self.catalog.get(caller, ST.TABLE, info["full_name"])

    def create_table_from_columns(self, caller: Caller, catalog_name: str, schema_name: str, name: str,
                                  columns: list, table_type: str = "MANAGED",
                                  data_source_format: str | None = None,
                                  storage_location: str | None = None, comment: str | None = None,
                                  properties: dict | None = None) -> dict:
        """The Unity Catalog ``POST /tables`` shape: columns as ColumnInfo dicts."""
        if table_type != "MANAGED" or storage_location:
            raise InvalidArgument("only MANAGED tables are supported; omit storage_location")
        # Managed tables are always stored as Lance (see the table's "lakeray.format" property);
        # the UC client insists on sending a format, so the table formats it knows are accepted.
        if data_source_format not in (None, "DELTA", "PARQUET", "LANCE"):
            raise InvalidArgument("data_source_format must be DELTA, PARQUET or omitted: managed tables "
                                  "are stored as Lance")
        full = ".".join(names.identifier(p, w) for p, w in ((catalog_name, "catalog_name"),
                                                              (schema_name, "schema_name"), (name, "name")))
        return self.create_table(caller, full, schema=arrow_from_columns(columns), comment=comment,
                                 properties=properties)

    # -- writes ----------------------------------------------------------------------------
    def _dataset(self, obj: Securable, version: int | None = None) -> lance.LanceDataset:
        try:
            return lance.dataset(_path(obj), version=version)
        except ValueError as e:
            raise NotFound(f"table '{obj.full_name}' has no version {version}") from e
        except Exception as e:  # a missing or unreadable dataset is a platform error, not a 4xx
            raise RuntimeError(f"table '{obj.full_name}' data cannot be opened: {e}") from e

    def _conform(self, data: pa.Table, schema: pa.Schema) -> pa.Table:
        """Reorder and safely cast ``data`` to ``schema``; mismatches name the column."""
        missing = [f.name for f in schema if f.name not in data.column_names]
        extra = [c for c in data.column_names if c not in schema.names]
        if extra:
            raise InvalidArgument(f"columns not in the table: {', '.join(extra)}")
        if missing:
            nullable = [m for m in missing if schema.field(m).nullable]
            if len(nullable) != len(missing):
                raise InvalidArgument(f"missing required columns: {', '.join(missing)}")
            for m in missing:
                data = data.append_column(schema.field(m), pa.nulls(len(data), schema.field(m).type))
        cols = []
        for field in schema:
            col = data.column(field.name)
            if not col.type.equals(field.type):
                try:
                    col = col.cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise InvalidArgument(
                        f"column {field.name!r} has type {col.type}, the table expects {field.type}") from None
            if not field.nullable and col.null_count:
                raise InvalidArgument(f"column {field.name!r} does not accept nulls")
            cols.append(col)
        return pa.Table.from_arrays(cols, schema=schema)

    def _replayed(self, ds: lance.LanceDataset, request_id: str | None) -> dict | None:
        if not request_id:
            return None
        for version, tx in _recent_transactions(ds):
            if tx is not None and (tx.transaction_properties or {}).get(REQUEST_PROPERTY) == request_id:
                return {"version": version, "replayed": True}
        return None

    def _write(self, caller: Caller, full_name: str, action: str, request_id: str | None,
               sources: list[str] | None, job_id: str | None, run_id: str | None, write) -> dict:
        check_edge_args(sources, run_id, job_id)
        obj = self.catalog.resolve(caller, ST.TABLE, full_name, P.MODIFY, action=action)
        if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= 128):
            raise InvalidArgument("request_id must be a string of 1-128 characters")
        props = {REQUEST_PROPERTY: request_id} if request_id else None
        with self._lock(obj.id):
            ds = self._dataset(obj)
            prior = self._replayed(ds, request_id)
            if prior is not None:
                return prior
            detail = write(obj, ds, props)
            version = lance.dataset(_path(obj)).version
        self.audit.record(caller.name, action, "table", obj.full_name, detail={**detail, "version": version})
        self._record_lineage(caller, obj, sources, job_id, run_id)
        return {"version": version, **detail}

    def append(self, caller: Caller, full_name: str, data: pa.Table, request_id: str | None = None,
               sources: list[str] | None = None, job_id: str | None = None,
               run_id: str | None = None) -> dict:
        """Append rows (MODIFY). Returns the new version and row count written."""
        def write(obj, ds, props):
            rows = self._conform(_as_table(data), ds.schema)
            lance.write_dataset(rows, _path(obj), mode="append", transaction_properties=props)
            return {"num_rows": rows.num_rows}
        return self._write(caller, full_name, "append_table", request_id, sources, job_id, run_id, write)

    def overwrite(self, caller: Caller, full_name: str, data: pa.Table, request_id: str | None = None,
                  sources: list[str] | None = None, job_id: str | None = None,
                  run_id: str | None = None) -> dict:
        """Replace all rows (MODIFY); the schema stays the table's. Older versions remain readable."""
        def write(obj, ds, props):
            rows = self._conform(_as_table(data), ds.schema)
            lance.write_dataset(rows, _path(obj), mode="overwrite", transaction_properties=props)
            return {"num_rows": rows.num_rows}
        return self._write(caller, full_name, "overwrite_table", request_id, sources, job_id, run_id, write)

    def delete_rows(self, caller: Caller, full_name: str, predicate: list,
                    request_id: str | None = None) -> dict:
        """Delete the rows matching a structured predicate (MODIFY)."""
        def write(obj, ds, props):
            where = predicate_sql(predicate, ds.schema)
            before = ds.count_rows()
            # Lance's delete takes no transaction properties: tag the deletion with an
            # empty append, committed first, so a retry can still find its request id.
            ds.delete(where)
            after = lance.dataset(_path(obj))
            if props:
                lance.write_dataset(after.schema.empty_table(), _path(obj), mode="append",
                                    transaction_properties=props)
            return {"num_deleted": before - after.count_rows()}
        return self._write(caller, full_name, "delete_rows", request_id, None, None, None, write)

    # -- reads -----------------------------------------------------------------------------
    def read(self, caller: Caller, full_name: str, version: int | None = None,
             columns: list[str] | None = None, predicate: list | None = None,
             limit: int | None = None, offset: int = 0) -> pa.Table:
        """Rows as Arrow (SELECT), optionally at a version, projected, filtered and sliced."""
        obj = self.catalog.resolve(caller, ST.TABLE, full_name, P.SELECT, action="read_table")
        version = _version_arg(version)
        ds = self._dataset(obj, version)
        if columns is not None:
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise InvalidArgument("columns must be a list of column names")
            unknown = [c for c in columns if c not in ds.schema.names]
            if unknown:
                raise InvalidArgument(f"unknown columns: {', '.join(unknown)}")
        for what, value in (("limit", limit), ("offset", offset)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidArgument(f"{what} must be a non-negative integer")
        where = predicate_sql(predicate, ds.schema) if predicate is not None else None
        return ds.to_table(columns=columns, filter=where, limit=limit, offset=offset or None)

    def read_page(self, caller: Caller, full_name: str, version: int | None = None,
                  page_token: str | None = None, max_rows: int = 1000,
                  columns: list[str] | None = None, predicate: list | None = None) -> dict:
        """One page of rows pinned to a version: ``{"table": Arrow, "version", "next_page_token"}``."""
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or not 0 < max_rows <= MAX_PAGE_ROWS:
            raise InvalidArgument(f"max_rows must be between 1 and {MAX_PAGE_ROWS}")
        offset = 0
        if page_token:
            try:
                v_text, o_text = base64.urlsafe_b64decode(page_token.encode()).decode().split(":")
                version, offset = int(v_text), int(o_text)
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument("invalid page_token") from None
        if version is None:
            obj = self.catalog.resolve(caller, ST.TABLE, full_name, P.SELECT, action="read_table")
            version = self._dataset(obj).version  # pin the pages to one snapshot
        table = self.read(caller, full_name, version=version, columns=columns, predicate=predicate,
                          limit=max_rows + 1, offset=offset)
        out = {"table": table.slice(0, max_rows), "version": version}
        if table.num_rows > max_rows:
            out["next_page_token"] = base64.urlsafe_b64encode(
                f"{version}:{offset + max_rows}".encode()).decode()
        return out

    def versions(self, caller: Caller, full_name: str) -> list[dict]:
        """Every version of a table: number, time, row count, operation (SELECT)."""
        obj = self.catalog.resolve(caller, ST.TABLE, full_name, P.SELECT, action="read_table")
        ds = self._dataset(obj)
        ops = {v: tx for v, tx in _recent_transactions(ds, len(ds.versions()))}
        out = []
        for v in ds.versions():
            tx = ops.get(v["version"])
            op = type(tx.operation).__name__.lower() if tx is not None else None
            out.append({"version": v["version"], "timestamp": int(v["timestamp"].timestamp() * 1000),
                        "num_rows": int(v["metadata"].get("total_rows", 0)), "operation": op})
        return out

    def describe(self, caller: Caller, full_name: str, version: int | None = None) -> dict:
        """Schema, row count and version of a table (SELECT)."""
        obj = self.catalog.resolve(caller, ST.TABLE, full_name, P.SELECT, action="read_table")
        ds = self._dataset(obj, _version_arg(version))
        return {"full_name": obj.full_name, "version": ds.version, "num_rows": ds.count_rows(),
                "columns": columns_from_arrow(ds.schema), "arrow_schema": encode_schema(ds.schema)}

    def data_location(self, caller: Caller, full_name: str, version: int | None = None) -> dict:
        """Where an in-cluster reader finds the data (SELECT): for ``ray.data.read_lance``."""
        obj = self.catalog.resolve(caller, ST.TABLE, full_name, P.SELECT, action="read_table")
        ds = self._dataset(obj, _version_arg(version))
        return {"uri": _path(obj), "version": ds.version}

    def _record_lineage(self, caller: Caller, obj: Securable, sources: list[str] | None,
                        job_id: str | None, run_id: str | None) -> None:
        for source in sources or []:
            stype, _, name = source.rpartition(":") if ":" in source else ("table", ":", source)
            self.lineage.record(caller, stype or "table", name, "table", obj.full_name,
                                job_id=job_id, run_id=run_id)


def _as_table(data: object) -> pa.Table:
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        raise InvalidArgument("data must be an Arrow table")
    if data.num_rows == 0:
        raise InvalidArgument("data has no rows")
    return data


def _version_arg(version: object) -> int | None:
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgument("version must be a positive integer")
    return version


def _check_schema(schema: pa.Schema) -> None:
    seen = set()
    for field in schema:
        names.identifier(field.name, "column name")
        if field.name.lower() in seen:
            raise InvalidArgument(f"duplicate column {field.name!r}")
        seen.add(field.name.lower())


def _recent_transactions(ds: lance.LanceDataset, count: int = RETRY_WINDOW):
    """``(version, transaction)`` pairs for the newest ``count`` versions, newest first."""
    latest = ds.version
    txs = ds.get_transactions(recent_transactions=count)
    return [(latest - i, tx) for i, tx in enumerate(txs)]
