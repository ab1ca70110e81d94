"""The catalog service: catalogs, schemas and the objects in them, with grants and audit.

Plain Python over the metadata DB; the registry actor wraps it and the REST routes call it.
Every method takes the :class:`~lakeray.principals.service.Caller` first, checks its
privileges (see :mod:`lakeray.catalog.authz`), audits mutations and denials, and returns
Unity-Catalog-shaped dicts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from sqlalchemy.engine import Connection

from lakeray.catalog import authz, names
from lakeray.catalog import securables as rows
from lakeray.catalog.audit import AuditLog, denial
from lakeray.catalog.info import render
from lakeray.catalog.privileges import (
    APPLICABLE,
    NAME_PARTS,
    TOP_LEVEL,
    Privilege,
    SecurableType,
    check_applicable,
    privilege,
    securable_type,
)
from lakeray.catalog.securables import METASTORE_ID, METASTORE_NAME, Securable
from lakeray.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from lakeray.ids import now_ms
from lakeray.principals.service import Caller
from lakeray.storage.db import Database
from lakeray.storage.models import grants, principals

P = Privilege
ST = SecurableType
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_COMMENT = 65536
MAX_PROPERTIES = 100
SYSTEM_CATALOG = "system"

#: privilege needed on the parent to create each kind of child.
CREATE_PRIVILEGE: dict[SecurableType, Privilege] = {
    ST.CATALOG: P.CREATE_CATALOG,
    ST.SCHEMA: P.CREATE_SCHEMA,
    ST.TABLE: P.CREATE_TABLE,
    ST.VOLUME: P.CREATE_VOLUME,
    ST.FUNCTION: P.CREATE_FUNCTION,
    ST.REGISTERED_MODEL: P.CREATE_MODEL,
    ST.VECTOR_INDEX: P.CREATE_TABLE,
}


def _comment(value: object) -> str | None:
    return None if value is None else names.text(value, "comment", MAX_COMMENT)


def _string_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_PROPERTIES:
        raise InvalidArgument(f"{what} must be an object of at most {MAX_PROPERTIES} string entries")
    for key, val in value.items():
        if not isinstance(key, str) or not isinstance(val, str) or not key:
            raise InvalidArgument(f"{what} entries must be strings (keys 1-255, values up to 4096 characters)")
        names.text(key, f"{what} key", 255)
        names.text(val, f"{what} value {key!r}", 4096)
    return dict(value)


def _page(max_results: object, page_token: object) -> tuple[int, str | None]:
    if max_results is None or max_results == 0:
        size = DEFAULT_PAGE
    elif isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 0:
        raise InvalidArgument("max_results must be a non-negative integer")
    else:
        size = min(max_results, MAX_PAGE)
    after = None
    if page_token:
        try:
            after = base64.urlsafe_b64decode(str(page_token).encode()).decode()
            names.identifier(after, "page_token")
        except (ValueError, InvalidArgument):
            raise InvalidArgument("invalid page_token") from None
    return size, after


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


class CatalogService:
    """Securables, grants and their audit trail."""

    def __init__(self, db: Database, audit: AuditLog):
        self.db = db
        self.audit = audit
        #: called with the deleted objects after a drop commits (tables, volumes free storage).
        self.on_drop: list[Callable[[list[Securable]], None]] = []
        #: called with a new object inside the create transaction to assign its storage.
        self.locate: dict[SecurableType, Callable[[Securable], str]] = {}
        #: called inside a drop's transaction with the doomed objects, to delete rows that
        #: belong to them in other tables (model versions...).
        self.purge: list[Callable[[Connection, list[Securable]], None]] = []
        #: whether an object of a type holds contents that are not child securables (a
        #: registered model's versions): such an object drops only with ``force``.
        self.has_contents: dict[SecurableType, Callable[[Connection, Securable], bool]] = {}

    # -- bootstrap -------------------------------------------------------------------------
    def bootstrap(self, admin: str) -> None:
        """Create the metastore, catalog ``main`` with schema ``default``, and ``system``."""
        with self.db.write() as conn:
            if rows.find(conn, ST.METASTORE, METASTORE_NAME) is not None:
                return
            # Catalogs are not children of the metastore row: UC lists them at the top level.
            rows.insert(conn, ST.METASTORE, METASTORE_NAME, METASTORE_NAME, None, admin, "system",
                        comment="the lakeray metastore", obj_id=METASTORE_ID)
            main = rows.insert(conn, ST.CATALOG, "main", "main", None, admin, "system",
                               comment="Main catalog (created by default)")
            rows.insert(conn, ST.SCHEMA, "main.default", "default", main, admin, "system",
                        comment="Default schema (created by default)")
            system = rows.insert(conn, ST.CATALOG, SYSTEM_CATALOG, SYSTEM_CATALOG, None, admin, "system",
                                 comment="Platform-owned assets")
            for schema in ("ai", "access", "serving"):
                rows.insert(conn, ST.SCHEMA, f"{SYSTEM_CATALOG}.{schema}", schema, system, admin, "system")
            self.audit.record("system", "bootstrap", "metastore", METASTORE_NAME, conn=conn)

    # -- name helpers ----------------------------------------------------------------------
    @staticmethod
    def parse(stype: object, full_name: object) -> tuple[SecurableType, str]:
        """Validate a securable type and full name; returns them normalised."""
        t = securable_type(stype)
        if t == ST.SERVING_ENDPOINT:
            return t, names.endpoint(full_name)
        if t == ST.SECRET_SCOPE:
            return t, names.secret(full_name, "secret scope name").lower()
        parts = names.full_name(full_name, NAME_PARTS[t], f"{t.value.replace('_', ' ')} name")
        return t, ".".join(parts)

    @staticmethod
    def _denied(caller: Caller, action: str, stype: SecurableType, name: str,
                error: PermissionDenied) -> PermissionDenied:
        return denial(error, action, stype.value, name)

    def resolve(self, caller: Caller, stype: object, full_name: object, *needed: Privilege,
                action: str = "read") -> Securable:
        """Fetch an object after checking traversal and ``needed`` privileges (or visibility).

        This is what tables, volumes, functions and later domains call before touching data.
        Denials are audited under ``action``.
        """
        t, name = self.parse(stype, full_name)
        with self.db.read() as conn:
            obj = rows.get(conn, t, name)
            try:
                if needed:
                    authz.require(conn, caller, obj, *needed)
                else:
                    authz.require_visible(conn, caller, obj)
            except PermissionDenied as e:
                raise self._denied(caller, action, t, name, e) from None
        return obj

    # -- generic create / get / list / update / delete ------------------------------------
    def create(self, caller: Caller, stype: object, full_name: object, comment: object = None,
               properties: object = None, spec: dict | None = None, owner: str | None = None,
               tags: object = None) -> dict:
        """Create a catalog, schema or leaf object; the caller becomes its owner."""
        t, name = self.parse(stype, full_name)
        tags = _string_map(tags, "tags")
        if t in (ST.METASTORE,):
            raise InvalidArgument("the metastore cannot be created")
        comment, props = _comment(comment), _string_map(properties, "properties")
        parent_name = name.rsplit(".", 1)[0] if "." in name else None
        with self.db.write() as conn:
            if t in TOP_LEVEL:
                parent = None
                gate = rows.metastore(conn)
                if t == ST.CATALOG and not caller.is_admin \
                        and P.CREATE_CATALOG not in authz.effective(conn, caller, gate):
                    raise self._denied(caller, f"create_{t.value}", t, name, PermissionDenied(
                        f"{caller.name} lacks CREATE CATALOG on the metastore"))
            else:
                parent_type = ST.CATALOG if t == ST.SCHEMA else ST.SCHEMA
                parent = rows.find(conn, parent_type, parent_name)
                if parent is None:
                    raise NotFound(f"{parent_type.value} '{parent_name}' does not exist")
                if parent.full_name.split(".")[0] == SYSTEM_CATALOG and not caller.is_admin:
                    raise self._denied(caller, f"create_{t.value}", t, name, PermissionDenied(
                        "the system catalog is managed by the platform"))
                try:
                    authz.require(conn, caller, parent, CREATE_PRIVILEGE[t])
                except PermissionDenied as e:
                    raise self._denied(caller, f"create_{t.value}", t, name, e) from None
            if rows.find(conn, t, name) is not None:
                raise AlreadyExists(f"{t.value.replace('_', ' ')} '{name}' already exists")
            new_owner = names.principal(owner) if owner else caller.name
            obj = rows.insert(conn, t, name, name.rsplit(".", 1)[-1], parent, new_owner, caller.name,
                              comment=comment, properties=props, spec=spec, tags=tags)
            if t in self.locate:
                rows.save(conn, obj, caller.name, storage_location=self.locate[t](obj))
            self.audit.record(caller.name, f"create_{t.value}", t.value, name, conn=conn)
        return render(obj)

    def get(self, caller: Caller, stype: object, full_name: object) -> dict:
        """Metadata of one object: needs traversal and some privilege on it."""
        return render(self.resolve(caller, stype, full_name))

    def list(self, caller: Caller, stype: object, parent_name: object = None,
             max_results: object = None, page_token: object = None) -> dict:
        """A page of the objects of a type under a parent that the caller may see."""
        t = securable_type(stype)
        size, after = _page(max_results, page_token)
        plural = {ST.CATALOG: "catalogs", ST.SCHEMA: "schemas", ST.TABLE: "tables", ST.VOLUME: "volumes",
                  ST.FUNCTION: "functions", ST.REGISTERED_MODEL: "registered_models"}.get(t, f"{t.value}s")
        found: list[Securable] = []
        with self.db.read() as conn:
            if t in TOP_LEVEL:
                fetch = lambda after_: rows.top_level(conn, t, after_, size)  # noqa: E731
            else:
                parent_type = ST.CATALOG if t == ST.SCHEMA else ST.SCHEMA
                parent_name = ".".join(names.full_name(parent_name, NAME_PARTS[parent_type],
                                                       f"{parent_type.value} name"))
                parent = rows.get(conn, parent_type, parent_name)
                try:
                    needs = P.USE_CATALOG if parent_type == ST.CATALOG else P.USE_SCHEMA
                    authz.require(conn, caller, parent, needs)
                except PermissionDenied as e:
                    raise self._denied(caller, f"list_{plural}", parent_type, parent_name, e) from None
                fetch = lambda after_: rows.children(conn, parent, t, after_, size)  # noqa: E731
            cursor, more = after, True
            while more and len(found) < size:
                batch = fetch(cursor)
                more = len(batch) == size
                for obj in batch:
                    cursor = obj.name
                    if authz.visible(conn, caller, obj):
                        found.append(obj)
                        if len(found) == size:
                            break
        out: dict = {plural: [render(o) for o in found]}
        if len(found) == size:  # a full page: there may be more (the next page may be empty)
            out["next_page_token"] = _token(found[-1].name)
        return out

    def update(self, caller: Caller, stype: object, full_name: object, comment: object = None,
               properties: object = None, new_name: object = None, owner: object = None,
               tags: object = None) -> dict:
        """Change comment, properties or tags (MODIFY-level: owner/MANAGE), rename or transfer owner."""
        t, name = self.parse(stype, full_name)
        changes: dict = {}
        if comment is not None:
            changes["comment"] = _comment(comment)
        if properties is not None:
            changes["properties"] = _string_map(properties, "properties")
        if tags is not None:
            changes["tags"] = _string_map(tags, "tags")
        new = names.identifier(new_name, "new_name") if new_name is not None else None
        new_owner = names.principal(owner) if owner is not None else None
        if not changes and new is None and new_owner is None:
            raise InvalidArgument("nothing to update: give comment, properties, tags, new_name or owner")
        with self.db.write() as conn:
            obj = rows.get(conn, t, name)
            if name == SYSTEM_CATALOG and t == ST.CATALOG and new is not None:
                raise InvalidArgument("the system catalog cannot be renamed")
            try:
                authz.require_manage(conn, caller, obj)
            except PermissionDenied as e:
                raise self._denied(caller, f"update_{t.value}", t, name, e) from None
            if new_owner is not None:
                if conn.execute(principals.select().where(principals.c.name == new_owner)).first() is None:
                    raise NotFound(f"principal {new_owner!r} does not exist")
                changes["owner"] = new_owner
            if changes:
                rows.save(conn, obj, caller.name, **changes)
            if new is not None and new != obj.name:
                target = new if "." not in name else name.rsplit(".", 1)[0] + "." + new
                if rows.find(conn, t, target) is not None:
                    raise AlreadyExists(f"{t.value.replace('_', ' ')} '{target}' already exists")
                rows.rename(conn, obj, new, caller.name)
            self.audit.record(caller.name, f"update_{t.value}", t.value, name, conn=conn,
                              detail={k: v for k, v in (("new_name", new), ("owner", new_owner)) if v}
                              or None)
        return render(obj)

    def delete(self, caller: Caller, stype: object, full_name: object, force: bool = False) -> None:
        """Drop an object (and with ``force`` everything in it) with all their grants."""
        t, name = self.parse(stype, full_name)
        if t == ST.CATALOG and name == SYSTEM_CATALOG:
            raise InvalidArgument("the system catalog cannot be dropped")
        if not isinstance(force, bool):
            raise InvalidArgument("force must be a boolean")
        with self.db.write() as conn:
            obj = rows.get(conn, t, name)
            try:
                authz.require_manage(conn, caller, obj)
            except PermissionDenied as e:
                raise self._denied(caller, f"delete_{t.value}", t, name, e) from None
            contents = self.has_contents.get(t)
            if not force and (rows.children(conn, obj, limit=1) or (contents and contents(conn, obj))):
                raise Conflict(f"{t.value.replace('_', ' ')} '{name}' is not empty; pass force=true to drop "
                               "it with its contents")
            doomed = rows.delete_tree(conn, obj)
            for hook in self.purge:
                hook(conn, doomed)
            self.audit.record(caller.name, f"delete_{t.value}", t.value, name, conn=conn,
                              detail={"dropped": len(doomed)} if len(doomed) > 1 else None)
        for hook in self.on_drop:
            hook(doomed)

    # -- permissions -----------------------------------------------------------------------
    def _securable(self, conn, t: SecurableType, name: str) -> Securable:
        if t == ST.METASTORE:
            return rows.metastore(conn)
        return rows.get(conn, t, name)

    def get_permissions(self, caller: Caller, stype: object, full_name: object,
                        principal: object = None) -> dict:
        """Grants on an object: all of them for managers, the caller's own for others."""
        t = securable_type(stype)
        name = METASTORE_NAME if t == ST.METASTORE else self.parse(t, full_name)[1]
        who = names.principal(principal) if principal is not None else None
        with self.db.read() as conn:
            obj = self._securable(conn, t, name)
            try:
                authz.require_manage(conn, caller, obj)
                allowed = None
            except PermissionDenied:
                if t != ST.METASTORE:
                    try:
                        authz.require_visible(conn, caller, obj)
                    except PermissionDenied as e:
                        raise self._denied(caller, "get_permissions", t, name, e) from None
                allowed = caller.identities
            q = grants.select().where(grants.c.securable_id == obj.id)
            found = conn.execute(q).mappings().all()
        by_principal: dict[str, list[str]] = {}
        for g in found:
            if (who is None or g["principal"] == who) and (allowed is None or g["principal"] in allowed):
                by_principal.setdefault(g["principal"], []).append(g["privilege"])
        order = [p.value for p in Privilege]
        return {"privilege_assignments": [
            {"principal": p, "privileges": sorted(privs, key=order.index)}
            for p, privs in sorted(by_principal.items())]}

    def update_permissions(self, caller: Caller, stype: object, full_name: object, changes: object) -> dict:
        """Apply ``[{principal, add: [...], remove: [...]}]``; owners, MANAGE holders and admins only."""
        t = securable_type(stype)
        name = METASTORE_NAME if t == ST.METASTORE else self.parse(t, full_name)[1]
        if not isinstance(changes, list) or not changes or len(changes) > 100:
            raise InvalidArgument("changes must be a list of 1-100 {principal, add, remove} objects")
        parsed = []
        for change in changes:
            if not isinstance(change, dict) or set(change) - {"principal", "add", "remove"}:
                raise InvalidArgument("each change must be an object with principal, add and remove")
            who = names.principal(change.get("principal"))
            add, remove = change.get("add") or [], change.get("remove") or []
            if not isinstance(add, list) or not isinstance(remove, list):
                raise InvalidArgument("add and remove must be lists of privileges")
            add_p = [privilege(p) for p in add]
            remove_p = [privilege(p) for p in remove]
            for p in add_p:
                check_applicable(p, t)
            parsed.append((who, add_p, remove_p))
        with self.db.write() as conn:
            obj = self._securable(conn, t, name)
            if t == ST.METASTORE and not caller.is_admin:
                raise self._denied(caller, "update_permissions", t, name,
                                   PermissionDenied("only metastore admins may grant on the metastore"))
            try:
                authz.require_manage(conn, caller, obj)
            except PermissionDenied as e:
                raise self._denied(caller, "update_permissions", t, name, e) from None
            for who, add_p, remove_p in parsed:
                if conn.execute(principals.select().where(principals.c.name == who)).first() is None:
                    raise NotFound(f"principal {who!r} does not exist")
                for p in remove_p:
                    conn.execute(grants.delete().where(grants.c.securable_id == obj.id,
                                                       grants.c.principal == who,
                                                       grants.c.privilege == p.value))
                for p in add_p:
                    exists = conn.execute(grants.select().where(
                        grants.c.securable_id == obj.id, grants.c.principal == who,
                        grants.c.privilege == p.value)).first()
                    if not exists:
                        conn.execute(grants.insert().values(
                            securable_id=obj.id, principal=who, privilege=p.value,
                            granted_by=caller.name, granted_at=now_ms()))
            self.audit.record(caller.name, "update_permissions", t.value, name, conn=conn, detail={
                "changes": [{"principal": w, "add": [p.value for p in a], "remove": [p.value for p in r]}
                            for w, a, r in parsed]})
        return self.get_permissions(caller, t, full_name)

    def effective_permissions(self, caller: Caller, stype: object, full_name: object) -> dict:
        """The privileges the caller holds on an object, inherited ones included."""
        t, name = self.parse(stype, full_name)
        with self.db.read() as conn:
            obj = rows.get(conn, t, name)
            held = authz.effective(conn, caller, obj)
        applicable = sorted(p.value for p in held if p in APPLICABLE[t] and p != P.ALL_PRIVILEGES)
        return {"principal": caller.name, "securable_type": t.value, "full_name": name,
                "privileges": applicable}

