"""Rows of the ``securables`` table: lookup by name, the ancestor chain, subtree deletion."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.engine import Connection

from lakeray.catalog.privileges import TOP_LEVEL, SecurableType
from lakeray.errors import NotFound
from lakeray.ids import new_id, now_ms
from lakeray.storage.models import grants, securables

METASTORE_ID = "00000000-0000-0000-0000-000000000000"
METASTORE_NAME = "lakeray"


@dataclass
class Securable:
    """One catalog object as stored."""

    id: str
    type: SecurableType
    full_name: str
    name: str
    parent_id: str | None
    owner: str
    comment: str | None
    properties: dict[str, str]
    tags: dict[str, str]
    storage_location: str | None
    spec: dict
    created_at: int
    created_by: str
    updated_at: int
    updated_by: str
    parents: list[Securable] = field(default_factory=list)  # nearest first

    @property
    def chain(self) -> list[Securable]:
        """This object followed by its ancestors, nearest first."""
        return [self, *self.parents]

    def parent_of_type(self, stype: SecurableType) -> Securable | None:
        return next((p for p in self.parents if p.type == stype), None)


def _from_row(row) -> Securable:
    return Securable(
        id=row["id"], type=SecurableType(row["type"]), full_name=row["full_name"], name=row["name"],
        parent_id=row["parent_id"], owner=row["owner"], comment=row["comment"],
        properties=json.loads(row["properties"] or "{}"), tags=json.loads(row["tags"] or "{}"),
        storage_location=row["storage_location"], spec=json.loads(row["spec"] or "{}"),
        created_at=row["created_at"], created_by=row["created_by"], updated_at=row["updated_at"],
        updated_by=row["updated_by"])


def _with_parents(conn: Connection, obj: Securable) -> Securable:
    chain: list[Securable] = []
    parent_id = obj.parent_id
    while parent_id is not None:
        row = conn.execute(select(securables).where(securables.c.id == parent_id)).mappings().first()
        chain.append(_from_row(row))
        parent_id = chain[-1].parent_id
    obj.parents = chain
    for i, parent in enumerate(chain):  # each ancestor knows its own ancestors too
        parent.parents = chain[i + 1:]
    return obj


# One statement, built once: an object and its enclosing catalog and schema, found by name.
_CHAIN = select(securables).where(or_(
    and_(securables.c.type == bindparam("type"), securables.c.full_name == bindparam("name")),
    and_(securables.c.type == "schema", securables.c.full_name == bindparam("schema")),
    and_(securables.c.type == "catalog", securables.c.full_name == bindparam("catalog"))))


def find(conn: Connection, stype: SecurableType, full_name: str) -> Securable | None:
    """The object of that type and name with its ancestors, or None (one query)."""
    parts = full_name.split(".")
    nested = stype not in TOP_LEVEL and stype != SecurableType.METASTORE
    params = {"type": stype.value, "name": full_name,
              "schema": ".".join(parts[:2]) if nested and len(parts) == 3 else "",
              "catalog": parts[0] if nested else ""}
    found = {(r["type"], r["full_name"]): _from_row(r) for r in conn.execute(_CHAIN, params).mappings()}
    obj = found.get((stype.value, full_name))
    if obj is None:
        return None
    chain = [c for c in (found.get(("schema", params["schema"])), found.get(("catalog", params["catalog"])))
             if c is not None]
    # The names must agree with the parent links; if they ever do not, walk the links.
    links = [obj.parent_id] + [c.parent_id for c in chain]
    if [c.id for c in chain] + [None] != links:
        return _with_parents(conn, obj)
    obj.parents = chain
    for i, parent in enumerate(chain):
        parent.parents = chain[i + 1:]
    return obj


def get(conn: Connection, stype: SecurableType, full_name: str) -> Securable:
    """Like :func:`find` but raises NotFound naming what is missing."""
    obj = find(conn, stype, full_name)
    if obj is None:
        raise NotFound(f"{stype.value.replace('_', ' ')} '{full_name}' does not exist")
    return obj


def find_by_id(conn: Connection, obj_id: str) -> Securable | None:
    """The object with that id and its ancestors, or None."""
    row = conn.execute(select(securables).where(securables.c.id == obj_id)).mappings().first()
    return None if row is None else _with_parents(conn, _from_row(row))


def children(conn: Connection, parent: Securable, stype: SecurableType | None = None,
             after: str | None = None, limit: int | None = None) -> list[Securable]:
    """Direct children of ``parent`` ordered by name (optionally after a name, at most ``limit``)."""
    q = select(securables).where(securables.c.parent_id == parent.id).order_by(securables.c.name)
    if stype is not None:
        q = q.where(securables.c.type == stype.value)
    if after is not None:
        q = q.where(securables.c.name > after)
    if limit is not None:
        q = q.limit(limit)
    out = []
    for row in conn.execute(q).mappings():
        obj = _from_row(row)
        obj.parents = parent.chain
        out.append(obj)
    return out


def top_level(conn: Connection, stype: SecurableType, after: str | None = None,
              limit: int | None = None) -> list[Securable]:
    """Objects without a parent (catalogs, serving endpoints), ordered by name."""
    q = select(securables).where(securables.c.type == stype.value, securables.c.parent_id.is_(None)) \
        .order_by(securables.c.name)
    if after is not None:
        q = q.where(securables.c.name > after)
    if limit is not None:
        q = q.limit(limit)
    return [_from_row(r) for r in conn.execute(q).mappings()]


def insert(conn: Connection, stype: SecurableType, full_name: str, name: str,
           parent: Securable | None, owner: str, created_by: str, comment: str | None = None,
           properties: dict | None = None, storage_location: str | None = None,
           spec: dict | None = None, obj_id: str | None = None, tags: dict | None = None) -> Securable:
    """Insert a new object row and return it (with ancestors)."""
    now = now_ms()
    values = dict(
        id=obj_id or new_id(), type=stype.value, full_name=full_name, name=name,
        parent_id=None if parent is None else parent.id, owner=owner, comment=comment,
        properties=json.dumps(properties or {}), tags=json.dumps(tags or {}), storage_location=storage_location,
        spec=json.dumps(spec or {}), created_at=now, created_by=created_by, updated_at=now,
        updated_by=created_by)
    conn.execute(securables.insert().values(**values))
    obj = _from_row(values)
    obj.parents = [] if parent is None else parent.chain
    return obj


_SAVE = update(securables).where(securables.c.id == bindparam("b_id"))


def save(conn: Connection, obj: Securable, updated_by: str, **changes) -> None:
    """Write changed columns of ``obj`` (comment, properties, tags, owner, spec...)."""
    values = {}
    for key, value in changes.items():
        setattr(obj, key, value)
        values[key] = json.dumps(value) if key in ("properties", "tags", "spec") else value
    obj.updated_at, obj.updated_by = now_ms(), updated_by
    values.update(updated_at=obj.updated_at, updated_by=updated_by)
    # The values as parameters (not .values()), so the compiled UPDATE is cached per column set.
    conn.execute(_SAVE, {**values, "b_id": obj.id})


def rename(conn: Connection, obj: Securable, new_name: str, updated_by: str) -> None:
    """Rename ``obj`` and rewrite the full names of all its descendants."""
    old_prefix = obj.full_name
    new_full = new_name if "." not in old_prefix else old_prefix.rsplit(".", 1)[0] + "." + new_name
    save(conn, obj, updated_by, name=new_name, full_name=new_full)
    for child in descendants(conn, obj):
        conn.execute(update(securables).where(securables.c.id == child.id).values(
            full_name=new_full + child.full_name[len(old_prefix):]))


def descendants(conn: Connection, obj: Securable) -> list[Securable]:
    """Every object below ``obj``, parents before children."""
    out: list[Securable] = []
    frontier = [obj]
    while frontier:
        nxt: list[Securable] = []
        for parent in frontier:
            nxt.extend(children(conn, parent))
        out.extend(nxt)
        frontier = nxt
    return out


def delete_tree(conn: Connection, obj: Securable) -> list[Securable]:
    """Delete ``obj``, its descendants and every grant on them; returns what was deleted."""
    doomed = [obj, *descendants(conn, obj)]
    ids = [o.id for o in doomed]
    conn.execute(delete(grants).where(grants.c.securable_id.in_(ids)))
    for victim in reversed(doomed):  # children first, for the parent foreign key
        conn.execute(delete(securables).where(securables.c.id == victim.id))
    return doomed


def metastore(conn: Connection) -> Securable:
    """The single metastore row (created by the first migration run of the registry)."""
    row = conn.execute(select(securables).where(securables.c.id == METASTORE_ID)).mappings().first()
    if row is None:
        raise NotFound("the metastore has not been initialised")
    return _from_row(row)
