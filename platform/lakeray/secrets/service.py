"""Secret scopes and secrets, the Databricks Secrets API over the catalog.

A scope is a top-level ``secret_scope`` securable: its creator owns it (MANAGE); others get
READ (list keys, use the secrets, e.g. as an external model's key), WRITE (put and delete
secrets) or MANAGE (ACLs, delete the scope) through the secret ACL API or the ordinary
permissions API. Values are encrypted at rest (:mod:`lakeray.secrets.vault`) and are never
returned by any API: they are read only inside the platform, by :meth:`SecretService.value`
(e.g. when the serving deployer starts an external model). Puts and deletes are audited without
their values.

A secret is referred to as ``{{secrets/<scope>/<key>}}`` (Databricks' syntax).
"""

from __future__ import annotations

import base64
import binascii
import re

from sqlalchemy import select
from sqlalchemy.engine import Connection

from lakeray.catalog import authz, names
from lakeray.catalog import securables as rows
from lakeray.catalog.audit import AuditLog, denial
from lakeray.catalog.privileges import Privilege as P
from lakeray.catalog.privileges import SecurableType as ST
from lakeray.catalog.securables import Securable
from lakeray.catalog.service import CatalogService
from lakeray.errors import InvalidArgument, NotFound, PermissionDenied
from lakeray.ids import now_ms
from lakeray.principals.service import Caller
from lakeray.secrets.tables import secrets
from lakeray.secrets.vault import Vault
from lakeray.storage.db import Database

MAX_VALUE_BYTES = 128 * 1024  # Databricks' limit
LEVELS = (P.READ, P.WRITE, P.MANAGE)
REFERENCE = re.compile(r"\{\{\s*secrets/([^/\s}]+)/([^/\s}]+)\s*\}\}")


def parse_reference(value: object, where: str) -> tuple[str, str]:
    """``(scope, key)`` of a ``{{secrets/<scope>/<key>}}`` reference; InvalidArgument naming
    ``where`` otherwise (a plain key is refused: keys are kept as secrets, never in configs)."""
    match = REFERENCE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidArgument(f"{where}: expected a secret reference {{{{secrets/<scope>/<key>}}}}; "
                              "put the key in a secret scope first (POST /api/2.0/secrets/put)")
    return names.secret(match.group(1), f"{where} scope").lower(), names.secret(match.group(2), f"{where} key")


class SecretService:
    """Scopes, secrets and their ACLs."""

    def __init__(self, db: Database, catalog: CatalogService, audit: AuditLog, vault: Vault):
        self.db, self.catalog, self.audit, self.vault = db, catalog, audit, vault
        catalog.purge.append(self._purge)

    # -- helpers ---------------------------------------------------------------------------
    def _level(self, conn: Connection, caller: Caller, obj: Securable) -> int:
        """0 none, 1 READ, 2 WRITE, 3 MANAGE (owners and admins manage)."""
        if caller.is_admin:
            return 3
        held = authz.effective(conn, caller, obj)
        return max((i + 1 for i, p in enumerate(LEVELS) if p in held), default=0)

    def _scope(self, conn: Connection, caller: Caller, scope: object, need: P, action: str) -> Securable:
        _, name = self.catalog.parse(ST.SECRET_SCOPE, scope)
        obj = rows.find(conn, ST.SECRET_SCOPE, name)
        if obj is None:
            raise NotFound(f"secret scope '{name}' does not exist")
        level = self._level(conn, caller, obj)
        if level < LEVELS.index(need) + 1:
            error = PermissionDenied(f"{caller.name} lacks {need.value} on secret scope '{name}'")
            raise denial(error, action, ST.SECRET_SCOPE.value, name) from None
        return obj

    # -- scopes ----------------------------------------------------------------------------
    def create_scope(self, caller: Caller, scope: object, initial_manage_principal: object = None,
                     scope_backend_type: object = None, backend_azure_keyvault: object = None) -> dict:
        """Create a scope; the caller owns it (MANAGE)."""
        if initial_manage_principal not in (None, caller.name):
            raise InvalidArgument("initial_manage_principal: only the creator manages a new scope; grant others "
                                  "with POST /api/2.0/secrets/acls/put")
        if scope_backend_type not in (None, "DATABRICKS") or backend_azure_keyvault is not None:
            raise InvalidArgument("scope_backend_type: only DATABRICKS (lakeray-managed) scopes are supported")
        self.catalog.create(caller, ST.SECRET_SCOPE, scope)
        return {}

    def list_scopes(self, caller: Caller) -> dict:
        """The scopes the caller holds some permission on."""
        with self.db.read() as conn:
            found = [o for o in rows.top_level(conn, ST.SECRET_SCOPE) if self._level(conn, caller, o)]
        return {"scopes": [{"name": o.name, "backend_type": "DATABRICKS"} for o in found]}

    def delete_scope(self, caller: Caller, scope: object) -> dict:
        """Drop a scope with its secrets and ACLs (MANAGE)."""
        with self.db.write() as conn:
            obj = self._scope(conn, caller, scope, P.MANAGE, "delete_secret_scope")
            rows.delete_tree(conn, obj)
            self._purge(conn, [obj])
            self.audit.record(caller.name, "delete_secret_scope", ST.SECRET_SCOPE.value, obj.name, conn=conn)
        return {}

    # -- secrets ---------------------------------------------------------------------------
    def put_secret(self, caller: Caller, scope: object, key: object, string_value: object = None,
                   bytes_value: object = None) -> dict:
        """Create or replace a secret (WRITE): exactly one of ``string_value`` or ``bytes_value``
        (base64)."""
        key = names.secret(key, "key")
        if (string_value is None) == (bytes_value is None):
            raise InvalidArgument("give exactly one of string_value or bytes_value")
        if string_value is not None:
            if not isinstance(string_value, str):
                raise InvalidArgument("string_value: expected a string")
            value = string_value.encode("utf-8")
        else:
            try:
                value = base64.b64decode(bytes_value, validate=True) if isinstance(bytes_value, str) else None
            except (binascii.Error, ValueError):
                value = None
            if value is None:
                raise InvalidArgument("bytes_value: expected base64 text")
        if len(value) > MAX_VALUE_BYTES:
            raise InvalidArgument(f"the value is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}")
        sealed = self.vault.seal(value)
        with self.db.write() as conn:
            obj = self._scope(conn, caller, scope, P.WRITE, "put_secret")
            where = (secrets.c.scope_id == obj.id) & (secrets.c.key == key)
            values = {"value": sealed, "updated_at": now_ms(), "updated_by": caller.name}
            if conn.execute(select(secrets.c.key).where(where)).first():
                conn.execute(secrets.update().where(where).values(**values))
            else:
                conn.execute(secrets.insert().values(scope_id=obj.id, key=key, **values))
            self.audit.record(caller.name, "put_secret", ST.SECRET_SCOPE.value, obj.name, conn=conn,
                              detail={"key": key})
        return {}

    def delete_secret(self, caller: Caller, scope: object, key: object) -> dict:
        """Delete one secret (WRITE)."""
        key = names.secret(key, "key")
        with self.db.write() as conn:
            obj = self._scope(conn, caller, scope, P.WRITE, "delete_secret")
            gone = conn.execute(secrets.delete().where((secrets.c.scope_id == obj.id) & (secrets.c.key == key)))
            if not gone.rowcount:
                raise NotFound(f"secret '{key}' does not exist in scope '{obj.name}'")
            self.audit.record(caller.name, "delete_secret", ST.SECRET_SCOPE.value, obj.name, conn=conn,
                              detail={"key": key})
        return {}

    def list_secrets(self, caller: Caller, scope: object) -> dict:
        """The keys of a scope and when each was last put (READ); never the values."""
        with self.db.read() as conn:
            obj = self._scope(conn, caller, scope, P.READ, "list_secrets")
            found = conn.execute(select(secrets.c.key, secrets.c.updated_at).where(secrets.c.scope_id == obj.id)
                                 .order_by(secrets.c.key)).all()
        return {"secrets": [{"key": k, "last_updated_timestamp": t} for k, t in found]}

    def value(self, caller: Caller, scope: object, key: object) -> str:
        """A secret's value, for the platform's own use (READ); no API returns it."""
        key = names.secret(key, "key")
        with self.db.read() as conn:
            obj = self._scope(conn, caller, scope, P.READ, "read_secret")
            token = conn.execute(select(secrets.c.value).where((secrets.c.scope_id == obj.id)
                                                               & (secrets.c.key == key))).scalar()
        if token is None:
            raise NotFound(f"secret '{key}' does not exist in scope '{obj.name}'")
        return self.vault.open(token).decode("utf-8")

    def check_readable(self, caller: Caller, scope: str, key: str) -> None:
        """That the secret exists and the caller may use it (READ)."""
        key = names.secret(key, "key")
        with self.db.read() as conn:
            obj = self._scope(conn, caller, scope, P.READ, "read_secret")
            if conn.execute(select(secrets.c.key).where((secrets.c.scope_id == obj.id)
                                                        & (secrets.c.key == key))).first() is None:
                raise NotFound(f"secret '{key}' does not exist in scope '{obj.name}'")

    # -- ACLs ------------------------------------------------------------------------------
    def put_acl(self, caller: Caller, scope: object, principal: object, permission: object) -> dict:
        """Give ``principal`` exactly ``permission`` (READ, WRITE or MANAGE) on the scope (MANAGE)."""
        if permission not in ("READ", "WRITE", "MANAGE"):
            raise InvalidArgument(f"permission: expected READ, WRITE or MANAGE, got {permission!r}")
        others = [p.value for p in LEVELS if p.value != permission]
        self.catalog.update_permissions(caller, ST.SECRET_SCOPE, scope, [
            {"principal": principal, "add": [permission], "remove": others}])
        return {}

    def delete_acl(self, caller: Caller, scope: object, principal: object) -> dict:
        """Remove ``principal``'s permission on the scope (MANAGE)."""
        if not self.get_acl(caller, scope, principal):
            raise NotFound(f"no ACL for {principal!r} on secret scope '{scope}'")
        self.catalog.update_permissions(caller, ST.SECRET_SCOPE, scope, [
            {"principal": principal, "remove": [p.value for p in LEVELS]}])
        return {}

    def list_acls(self, caller: Caller, scope: object) -> dict:
        """Every ACL of the scope, the owner's MANAGE included (MANAGE)."""
        with self.db.read() as conn:
            obj = self._scope(conn, caller, scope, P.MANAGE, "list_secret_acls")
        granted = self.catalog.get_permissions(caller, ST.SECRET_SCOPE, obj.name)["privilege_assignments"]
        items = {obj.owner: "MANAGE"}
        for g in granted:
            best = max(g["privileges"], key=lambda p: [lv.value for lv in LEVELS].index(p))
            items.setdefault(g["principal"], best)
        return {"items": [{"principal": p, "permission": v} for p, v in sorted(items.items())]}

    def get_acl(self, caller: Caller, scope: object, principal: object) -> dict:
        """One principal's ACL on the scope (MANAGE); empty if it has none."""
        who = names.principal(principal)
        found = [i for i in self.list_acls(caller, scope)["items"] if i["principal"] == who]
        return found[0] if found else {}

    @staticmethod
    def _purge(conn: Connection, doomed: list[Securable]) -> None:
        ids = [o.id for o in doomed if o.type == ST.SECRET_SCOPE]
        if ids:
            conn.execute(secrets.delete().where(secrets.c.scope_id.in_(ids)))
