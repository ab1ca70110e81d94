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

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from lakeray.catalog.privileges import APPLICABLE, Privilege, SecurableType, expand
from lakeray.catalog.securables import Securable
from lakeray.errors import PermissionDenied
from lakeray.principals.service import Caller
from lakeray.storage.models import grants

P = Privilege


# One statement, built once: every grant to the caller's identities on the objects of a chain.
_GRANTS = select(grants.c.securable_id, grants.c.privilege).where(
    grants.c.securable_id.in_(bindparam("ids", expanding=True)),
    grants.c.principal.in_(bindparam("who", expanding=True)))

Grants = dict[str, set[Privilege]]


def chain_grants(conn: Connection, caller: Caller, obj: Securable) -> Grants:
    """The caller's direct grants on ``obj`` and each ancestor, by object id (one query)."""
    out: Grants = {node.id: set() for node in obj.chain}
    for securable_id, priv in conn.execute(_GRANTS, {"ids": list(out), "who": list(caller.identities)}):
        out[securable_id].add(Privilege(priv))
    return out


def effective(conn: Connection, caller: Caller, obj: Securable, known: Grants | None = None) -> set[Privilege]:
    """Every privilege ``caller`` holds on ``obj`` (inherited ones included).

    ``known`` is a :func:`chain_grants` result covering ``obj``'s chain, to save the query.
    """
    if caller.is_admin:
        return set(Privilege)
    if known is None or any(node.id not in known for node in obj.chain):
        known = chain_grants(conn, caller, obj)
    ids = caller.identities
    held: set[Privilege] = set()
    for node in obj.chain:
        if node.owner in ids:
            held |= {P.ALL_PRIVILEGES, P.MANAGE, P.CAN_MANAGE}
        held |= known[node.id]
    return expand(held)


def _label(obj: Securable) -> str:
    return f"{obj.type.value.replace('_', ' ')} '{obj.full_name}'"


def check_traversal(conn: Connection, caller: Caller, obj: Securable, known: Grants | None = None) -> None:
    """USE CATALOG on the enclosing catalog and USE SCHEMA on the enclosing schema."""
    if caller.is_admin:
        return
    known = known if known is not None else chain_grants(conn, caller, obj)
    for parent in reversed(obj.parents):  # outermost first: catalog, then schema
        need = {SecurableType.CATALOG: P.USE_CATALOG, SecurableType.SCHEMA: P.USE_SCHEMA}.get(parent.type)
        if need is not None and need not in effective(conn, caller, parent, known):
            raise PermissionDenied(f"{caller.name} lacks {need.value} on {_label(parent)}")


def require(conn: Connection, caller: Caller, obj: Securable, *needed: Privilege,
            traverse: bool = True) -> set[Privilege]:
    """Raise PermissionDenied unless ``caller`` holds every ``needed`` privilege on ``obj``."""
    known = None if caller.is_admin else chain_grants(conn, caller, obj)
    if traverse:
        check_traversal(conn, caller, obj, known)
    held = effective(conn, caller, obj, known)
    for need in needed:
        if need not in held:
            raise PermissionDenied(f"{caller.name} lacks {need.value} on {_label(obj)}")
    return held


def visible(conn: Connection, caller: Caller, obj: Securable, known: Grants | None = None) -> bool:
    """Whether ``obj`` shows up for ``caller`` in lists and gets (some privilege applies to it)."""
    if caller.is_admin:
        return True
    return bool(effective(conn, caller, obj, known) & APPLICABLE[obj.type])


def require_visible(conn: Connection, caller: Caller, obj: Securable) -> None:
    """Traversal plus some privilege on ``obj`` itself: what a metadata read needs."""
    known = None if caller.is_admin else chain_grants(conn, caller, obj)
    check_traversal(conn, caller, obj, known)
    if not visible(conn, caller, obj, known):
        raise PermissionDenied(f"{caller.name} has no privilege on {_label(obj)}")


def require_manage(conn: Connection, caller: Caller, obj: Securable) -> None:
    """Owner, MANAGE holder or admin; owners of an enclosing object skip the traversal check."""
    if caller.is_admin:
        return
    known = chain_grants(conn, caller, obj)
    owns_parent = any(p.owner in caller.identities for p in obj.parents)
    if not owns_parent:
        check_traversal(conn, caller, obj, known)
    if P.MANAGE not in effective(conn, caller, obj, known):
        raise PermissionDenied(f"{caller.name} is not the owner of {_label(obj)} and lacks MANAGE on it")
