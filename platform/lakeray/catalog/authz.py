"""Who may do what: effective privileges from grants, ownership and inheritance.

Rules (Unity Catalog's, see ARCHITECTURE.md):
- metastore admins may do everything;
- the owner of an object holds ALL PRIVILEGES and MANAGE on it, and like any grant on a
  catalog or schema this reaches every current and future child;
- a grant on an object applies to the object and everything below it;
- reaching anything inside a catalog needs USE CATALOG on it, inside a schema USE SCHEMA;
- granting, revoking, renaming and dropping need MANAGE (owners have it).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from lakeray.catalog.privileges import APPLICABLE, Privilege, SecurableType, expand
from lakeray.catalog.securables import Securable
from lakeray.errors import PermissionDenied
from lakeray.principals.service import Caller
from lakeray.storage.models import grants

P = Privilege


def effective(conn: Connection, caller: Caller, obj: Securable) -> set[Privilege]:
    """Every privilege ``caller`` holds on ``obj`` (inherited ones included)."""
    if caller.is_admin:
        return set(Privilege)
    ids = caller.identities
    chain = obj.chain
    held: set[Privilege] = set()
    for node in chain:
        if node.owner in ids:
            held |= {P.ALL_PRIVILEGES, P.MANAGE, P.CAN_MANAGE}
    rows = conn.execute(select(grants.c.privilege).where(
        grants.c.securable_id.in_([n.id for n in chain]), grants.c.principal.in_(ids))).scalars()
    held |= {Privilege(p) for p in rows}
    return expand(held)


def _label(obj: Securable) -> str:
    return f"{obj.type.value.replace('_', ' ')} '{obj.full_name}'"


def check_traversal(conn: Connection, caller: Caller, obj: Securable) -> None:
    """USE CATALOG on the enclosing catalog and USE SCHEMA on the enclosing schema."""
    if caller.is_admin:
        return
    for parent in reversed(obj.parents):  # outermost first: catalog, then schema
        need = {SecurableType.CATALOG: P.USE_CATALOG, SecurableType.SCHEMA: P.USE_SCHEMA}.get(parent.type)
        if need is not None and need not in effective(conn, caller, parent):
            raise PermissionDenied(f"{caller.name} lacks {need.value} on {_label(parent)}")


def require(conn: Connection, caller: Caller, obj: Securable, *needed: Privilege,
            traverse: bool = True) -> set[Privilege]:
    """Raise PermissionDenied unless ``caller`` holds every ``needed`` privilege on ``obj``."""
    if traverse:
        check_traversal(conn, caller, obj)
    held = effective(conn, caller, obj)
    for need in needed:
        if need not in held:
            raise PermissionDenied(f"{caller.name} lacks {need.value} on {_label(obj)}")
    return held


def visible(conn: Connection, caller: Caller, obj: Securable) -> bool:
    """Whether ``obj`` shows up for ``caller`` in lists and gets (some privilege applies to it)."""
    if caller.is_admin:
        return True
    return bool(effective(conn, caller, obj) & APPLICABLE[obj.type])


def require_visible(conn: Connection, caller: Caller, obj: Securable) -> None:
    """Traversal plus some privilege on ``obj`` itself: what a metadata read needs."""
    check_traversal(conn, caller, obj)
    if not visible(conn, caller, obj):
        raise PermissionDenied(f"{caller.name} has no privilege on {_label(obj)}")


def require_manage(conn: Connection, caller: Caller, obj: Securable) -> None:
    """Owner, MANAGE holder or admin; owners of an enclosing object skip the traversal check."""
    if caller.is_admin:
        return
    owns_parent = any(p.owner in caller.identities for p in obj.parents)
    if not owns_parent:
        check_traversal(conn, caller, obj)
    if P.MANAGE not in effective(conn, caller, obj):
        raise PermissionDenied(f"{caller.name} is not the owner of {_label(obj)} and lacks MANAGE on it")
