"""The registry: every catalog, principal, audit and lineage operation behind one ``call``.

:class:`Registry` assembles the plain-Python services on one metadata DB and exposes them
as named operations taking a token. The registry actor is a thin shell around it, the HTTP
routes and the Python client both end up here, and unit tests use it without Ray.

A mutating call may carry a ``request_id``: its result is stored, and a retry with the same
id (after an actor restart, say) returns the stored result instead of acting twice.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from lakeray.catalog.audit import AuditLog
from lakeray.catalog.functions import FunctionService
from lakeray.catalog.lineage import NODE_TYPES, LineageService
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.catalog.service import CatalogService
from lakeray.catalog.tables import TableService
from lakeray.catalog.volumes import VolumeService
from lakeray.errors import InvalidArgument, LakerayError, PermissionDenied
from lakeray.ids import now_ms
from lakeray.principals.service import Caller, PrincipalService
from lakeray.settings import Settings
from lakeray.storage.db import Database
from lakeray.storage.models import idempotency

ST = SecurableType


@dataclass(frozen=True)
class Operation:
    """One callable operation: the function (caller first) and whether it writes."""

    fn: Callable
    mutating: bool


def _securable_types() -> set[str]:
    return {t.value for t in SecurableType} - {"metastore", "serving_endpoint"}


class Registry:
    """All registry services on one database, addressed by operation name."""

    def __init__(self, settings: Settings, function_runner=None):
        settings.ensure_dirs()
        self.settings = settings
        self.db = Database(settings.db_url)
        self.audit = AuditLog(self.db)
        self.principals = PrincipalService(self.db, self.audit)
        self.catalog = CatalogService(self.db, self.audit)
        self.lineage = LineageService(self.db, self.audit)
        self.tables = TableService(self.catalog, self.audit, self.lineage, settings.table_root)
        self.volumes = VolumeService(self.catalog, self.audit, settings.volume_root)
        self.functions = FunctionService(self.catalog, function_runner)
        self.ops: dict[str, Operation] = self._operations()

    # -- bootstrap -------------------------------------------------------------------------
    def bootstrap(self, admin: str = "admin") -> None:
        """Create the first admin and the default catalogs (idempotent)."""
        self.principals.ensure_admin(admin)
        self.catalog.bootstrap(admin)

    # -- dispatch --------------------------------------------------------------------------
    def call(self, op: str, token: str | None, request_id: str | None = None, **kwargs):
        """Authenticate ``token`` and run operation ``op`` with ``kwargs``."""
        caller = self.principals.authenticate(token)
        return self.call_as(caller, op, request_id=request_id, **kwargs)

    def call_as(self, caller: Caller, op: str, request_id: str | None = None, **kwargs):
        """Run ``op`` for an already authenticated caller."""
        operation = self.ops.get(op)
        if operation is None:
            raise InvalidArgument(f"unknown operation {op!r}")
        if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= 128
                                       or "\x00" in request_id):
            raise InvalidArgument("request_id must be a string of 1-128 characters without NUL")
        if operation.mutating and request_id:
            prior = self._replay(request_id, op, caller)
            if prior is not None:
                return prior
            if op in ("append_table", "overwrite_table", "delete_rows"):
                kwargs["request_id"] = request_id  # tables keep their own, atomic, record
        try:
            inspect.signature(operation.fn).bind(caller, **kwargs)
        except TypeError as e:  # a wrong or missing keyword is the caller's mistake
            raise InvalidArgument(f"bad arguments to {op}: {e}") from None
        try:
            result = operation.fn(caller, **kwargs)
        except PermissionDenied as e:
            action, stype, name = getattr(e, "audit", (op, None, None))
            self.audit.record(caller.name, action, stype, name, "denied", {"reason": e.message})
            raise
        if operation.mutating and request_id and op not in ("append_table", "overwrite_table", "delete_rows"):
            self._remember(request_id, op, caller, result)
        return result

    def _replay(self, request_id: str, op: str, caller: Caller):
        with self.db.read() as conn:
            row = conn.execute(select(idempotency).where(idempotency.c.request_id == request_id)).first()
        if row is None:
            return None
        if row.operation != op or row.principal != caller.name:
            raise InvalidArgument(f"request_id {request_id!r} was already used for another call")
        return json.loads(row.result)

    def _remember(self, request_id: str, op: str, caller: Caller, result) -> None:
        try:
            text = json.dumps(result)
        except TypeError:
            return  # results that are not JSON (Arrow, bytes) are not replayable
        with self.db.write() as conn:
            if conn.execute(select(idempotency.c.request_id)
                            .where(idempotency.c.request_id == request_id)).first() is None:
                conn.execute(idempotency.insert().values(request_id=request_id, operation=op,
                                                         principal=caller.name, result=text,
                                                         created_at=now_ms()))

    # -- operations ------------------------------------------------------------------------
    def _audit_query(self, caller: Caller, **filters) -> dict:
        if not caller.is_admin:
            raise PermissionDenied("only metastore admins may read the audit log")
        return self.audit.query(**filters)

    def _record_lineage(self, caller: Caller, source_type: str, source_name: str, target_type: str,
                        target_name: str, run_id: str | None = None, job_id: str | None = None) -> dict:
        # Writing an edge into a catalog object's lineage needs MODIFY-level rights on it.
        if target_type in _securable_types():
            need = {"table": Privilege.MODIFY, "vector_index": Privilege.MODIFY,
                    "volume": Privilege.WRITE_VOLUME}.get(target_type, Privilege.MANAGE)
            self.catalog.resolve(caller, target_type, target_name, need, action="record_lineage")
        return self.lineage.record(caller, source_type, source_name, target_type, target_name,
                                   run_id=run_id, job_id=job_id)

    def _walk_lineage(self, caller: Caller, node_type: str, name: str, direction: str = "upstream",
                      depth: int = 1) -> dict:
        if node_type in _securable_types():
            self.catalog.resolve(caller, node_type, name, action="read_lineage")
        elif node_type not in NODE_TYPES:
            raise InvalidArgument(f"unknown lineage node type {node_type!r}")
        return self.lineage.walk(caller, node_type, name, direction=direction, depth=depth)

    def _whoami(self, caller: Caller) -> dict:
        return {"name": caller.name, "kind": caller.kind, "is_admin": caller.is_admin,
                "groups": sorted(caller.groups)}

    def _operations(self) -> dict[str, Operation]:
        c, t, v, f, p = self.catalog, self.tables, self.volumes, self.functions, self.principals

        def typed(fn, stype):
            # keeps fn's signature (minus the type) so bad keywords are caught before the call
            return functools.partial(fn, stype=stype)

        def create_catalog(caller, name, comment=None, properties=None):
            return c.create(caller, ST.CATALOG, name, comment=comment, properties=properties)

        def create_schema(caller, catalog_name, name, comment=None, properties=None):
            return c.create(caller, ST.SCHEMA, f"{catalog_name}.{name}", comment=comment, properties=properties)

        def lister(stype):
            def list_in_catalog(caller, max_results=None, page_token=None):
                return c.list(caller, stype, None, max_results, page_token)

            def list_in_parent(caller, catalog_name, max_results=None, page_token=None):
                return c.list(caller, stype, catalog_name, max_results, page_token)

            def list_in_schema(caller, catalog_name, schema_name, max_results=None, page_token=None):
                return c.list(caller, stype, f"{catalog_name}.{schema_name}", max_results, page_token)

            if stype == ST.CATALOG:
                return list_in_catalog
            return list_in_parent if stype == ST.SCHEMA else list_in_schema

        read, write = False, True
        table = {
            "whoami": (self._whoami, read),
            # catalogs and schemas
            "create_catalog": (create_catalog, write),
            "get_catalog": (typed(c.get, ST.CATALOG), read),
            "list_catalogs": (lister(ST.CATALOG), read),
            "update_catalog": (typed(c.update, ST.CATALOG), write),
            "delete_catalog": (typed(c.delete, ST.CATALOG), write),
            "create_schema": (create_schema, write),
            "get_schema": (typed(c.get, ST.SCHEMA), read),
            "list_schemas": (lister(ST.SCHEMA), read),
            "update_schema": (typed(c.update, ST.SCHEMA), write),
            "delete_schema": (typed(c.delete, ST.SCHEMA), write),
            # tables
            "create_table": (t.create_table, write),
            "create_table_from_columns": (t.create_table_from_columns, write),
            "get_table": (typed(c.get, ST.TABLE), read),
            "list_tables": (lister(ST.TABLE), read),
            "update_table": (typed(c.update, ST.TABLE), write),
            "delete_table": (typed(c.delete, ST.TABLE), write),
            "append_table": (t.append, write),
            "overwrite_table": (t.overwrite, write),
            "delete_rows": (t.delete_rows, write),
            "read_table": (t.read, read),
            "read_table_page": (t.read_page, read),
            "table_versions": (t.versions, read),
            "describe_table": (t.describe, read),
            "table_location": (t.data_location, read),
            # volumes
            "create_volume": (v.create_volume, write),
            "get_volume": (typed(c.get, ST.VOLUME), read),
            "list_volumes": (lister(ST.VOLUME), read),
            "update_volume": (typed(c.update, ST.VOLUME), write),
            "delete_volume": (typed(c.delete, ST.VOLUME), write),
            "upload_file": (v.upload, write),
            "download_file": (v.download, read),
            "list_directory": (v.list_directory, read),
            "create_directory": (v.create_directory, write),
            "delete_file": (v.delete_file, write),
            "delete_directory": (v.delete_directory, write),
            "file_metadata": (v.get_metadata, read),
            # functions
            "create_function": (f.create_function, write),
            "get_function": (typed(c.get, ST.FUNCTION), read),
            "list_functions": (lister(ST.FUNCTION), read),
            "delete_function": (typed(c.delete, ST.FUNCTION), write),
            "execute_function": (f.execute, write),
            # permissions
            "get_permissions": (c.get_permissions, read),
            "update_permissions": (c.update_permissions, write),
            "effective_permissions": (c.effective_permissions, read),
            # principals and tokens
            "create_principal": (p.create_principal, write),
            "get_principal": (p.get_principal, read),
            "list_principals": (p.list_principals, read),
            "update_principal": (p.update_principal, write),
            "add_group_member": (p.add_member, write),
            "remove_group_member": (p.remove_member, write),
            "create_token": (p.create_token, write),
            "list_tokens": (p.list_tokens, read),
            "revoke_token": (p.revoke_token, write),
            # audit and lineage
            "query_audit": (self._audit_query, read),
            "record_lineage": (self._record_lineage, write),
            "get_lineage": (self._walk_lineage, read),
        }
        return {name: Operation(fn, mut) for name, (fn, mut) in table.items()}


def describe_error(error: Exception) -> LakerayError:
    """Any exception as a LakerayError (unexpected ones become a generic 500 without details)."""
    if isinstance(error, LakerayError):
        return error
    return LakerayError(f"internal error ({type(error).__name__})")
