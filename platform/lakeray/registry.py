"""The registry: every catalog, principal, audit and lineage operation behind one ``call``.

:class:`Registry` assembles the plain-Python services on one metadata DB and exposes them
as named operations taking a token (see :mod:`lakeray.dispatch`). The registry actor is a
thin shell around it, the HTTP routes and the Python client both end up here, and unit
tests use it without Ray.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from lakeray.catalog.audit import AuditLog
from lakeray.catalog.functions import FunctionService
from lakeray.catalog.lineage import NODE_TYPES, LineageService
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.catalog.service import CatalogService
from lakeray.catalog.tables import TableService
from lakeray.catalog.volumes import VolumeService
from lakeray.dispatch import Dispatcher, Operation
from lakeray.errors import InvalidArgument, PermissionDenied
from lakeray.model_registry.operations import mlflow_operations, uc_operations
from lakeray.model_registry.service import ModelRegistry
from lakeray.principals.service import Caller, PrincipalService
from lakeray.secrets.service import SecretService
from lakeray.secrets.vault import Vault
from lakeray.serving.service import ServingService
from lakeray.settings import Settings
from lakeray.storage.db import Database
from lakeray.tracking.artifacts import ArtifactStore

ST = SecurableType
#: table writes: idempotent through the request id stored in their Lance commit.
TABLE_WRITES = frozenset({"append_table", "overwrite_table", "delete_rows"})
#: writes whose result holds a secret, which must not be stored for replay: a retry makes a
#: new token (the lost one is listed and can be revoked).
UNCLAIMED = frozenset({"create_token"})


def _function_name(kw: dict) -> str:
    info = kw.get("function_info") or {}
    return f"{info.get('catalog_name')}.{info.get('schema_name')}.{info.get('name')}".lower()


#: how to rebuild the result of an applied write whose result was lost: (read op, its args).
REREAD: dict[str, Callable[[dict], tuple[str, dict]]] = {
    "create_catalog": lambda kw: ("get_catalog", {"full_name": kw["name"]}),
    "update_catalog": lambda kw: ("get_catalog", {"full_name": kw.get("new_name") or kw["full_name"]}),
    "create_schema": lambda kw: ("get_schema", {"full_name": f"{kw['catalog_name']}.{kw['name']}"}),
    "update_schema": lambda kw: ("get_schema", {"full_name": kw["full_name"]}),
    "create_table_from_columns": lambda kw: (
        "get_table", {"full_name": f"{kw['catalog_name']}.{kw['schema_name']}.{kw['name']}"}),
    "update_table": lambda kw: ("get_table", {"full_name": kw["full_name"]}),
    "create_volume": lambda kw: (
        "get_volume", {"full_name": f"{kw['catalog_name']}.{kw['schema_name']}.{kw['name']}"}),
    "update_volume": lambda kw: ("get_volume", {"full_name": kw["full_name"]}),
    "create_function": lambda kw: ("get_function", {"full_name": _function_name(kw)}),
    "update_permissions": lambda kw: ("get_permissions", {"stype": kw["stype"], "full_name": kw["full_name"]}),
    "create_principal": lambda kw: ("get_principal", {"name": kw["name"]}),
    "update_principal": lambda kw: ("get_principal", {"name": kw["name"]}),
    "add_group_member": lambda kw: ("get_principal", {"name": kw["group"]}),
    "remove_group_member": lambda kw: ("get_principal", {"name": kw["group"]}),
    "create_registered_model": lambda kw: (
        "get_registered_model", {"full_name": f"{kw['catalog_name']}.{kw['schema_name']}.{kw['name']}"}),
    "create_serving_endpoint": lambda kw: ("get_serving_endpoint", {"name": kw["name"]}),
    "update_serving_endpoint_config": lambda kw: ("get_serving_endpoint", {"name": kw["name"]}),
    "mlflow_create_registered_model": lambda kw: ("mlflow_get_registered_model", {"name": kw.get("name")}),
}


def _securable_types() -> set[str]:
    return {t.value for t in SecurableType} - {"metastore", "serving_endpoint"}


class Registry(Dispatcher):
    """All registry services on one database, addressed by operation name."""

    reread = REREAD
    self_idempotent = TABLE_WRITES
    unclaimed = UNCLAIMED

    def __init__(self, settings: Settings, function_runner=None):
        settings.ensure_dirs()
        self.settings = settings
        self.db = Database(settings.db_url, sync=settings.sync_writes)
        self.audit = AuditLog(self.db)
        self.principals = PrincipalService(self.db, self.audit)
        self.catalog = CatalogService(self.db, self.audit)
        self.lineage = LineageService(self.db, self.audit)
        self.tables = TableService(self.catalog, self.audit, self.lineage, settings.table_root)
        self.volumes = VolumeService(self.catalog, self.audit, settings.volume_root, sync=settings.sync_writes)
        self.functions = FunctionService(self.catalog, function_runner)
        self.store = ArtifactStore(settings.artifact_root, max_bytes=settings.max_artifact_bytes,
                                   sync=settings.sync_writes)
        self.models = ModelRegistry(self.catalog, self.audit, self.store, settings.default_model_schema)
        self.secrets = SecretService(self.db, self.catalog, self.audit, Vault(settings.home))
        self.serving = ServingService(self.db, self.catalog, self.audit, self.models, self.tables, self.secrets)
        self.ops = self._operations()

    # -- bootstrap -------------------------------------------------------------------------
    def writes_in_replica(self, op: str) -> bool:
        # Model registry writes are database rows plus files copied under a fresh version
        # directory, so API replicas run them too. Catalog writes stay in the actor: it owns the
        # per-table write order of Lance tables (and is the one writer of the catalog tree).
        return op in self._model_ops

    def bootstrap(self, admin: str = "admin") -> None:
        """Create the first admin and the default catalogs (idempotent)."""
        self.principals.ensure_admin(admin)
        self.catalog.bootstrap(admin)

    # -- dispatch --------------------------------------------------------------------------
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
            # serving endpoints (what runs is the deployer's, in the serving actor)
            "create_serving_endpoint": (self.serving.create_endpoint, write),
            "get_serving_endpoint": (self.serving.get_endpoint, read),
            "list_serving_endpoints": (self.serving.list_endpoints, read),
            "update_serving_endpoint_config": (self.serving.update_config, write),
            "update_serving_endpoint_tags": (self.serving.update_tags, write),
            "delete_serving_endpoint": (self.serving.delete_endpoint, write),
            "get_serving_routes": (self.serving.query_routes, read),
            "put_ai_gateway": (self.serving.put_ai_gateway, write),
            # secrets (values go in, never out)
            "create_secret_scope": (self.secrets.create_scope, write),
            "list_secret_scopes": (self.secrets.list_scopes, read),
            "delete_secret_scope": (self.secrets.delete_scope, write),
            "put_secret": (self.secrets.put_secret, write),
            "delete_secret": (self.secrets.delete_secret, write),
            "list_secrets": (self.secrets.list_secrets, read),
            "put_secret_acl": (self.secrets.put_acl, write),
            "delete_secret_acl": (self.secrets.delete_acl, write),
            "list_secret_acls": (self.secrets.list_acls, read),
            "get_secret_acl": (self.secrets.get_acl, read),
        }
        ops = {name: Operation(fn, mut) for name, (fn, mut) in table.items()}
        # the model registry: Unity Catalog's shapes, and MLflow's under mlflow_* names
        model_ops = {**uc_operations(self.models), **mlflow_operations(self.models, self.store.root.as_uri())}
        self._model_ops = frozenset(model_ops)
        ops.update(model_ops)
        return ops
