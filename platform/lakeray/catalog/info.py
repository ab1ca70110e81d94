"""Securable rows rendered in the Unity Catalog REST JSON shapes (CatalogInfo, TableInfo...)."""

from __future__ import annotations

from lakeray.catalog.privileges import SecurableType
from lakeray.catalog.securables import Securable


def _common(obj: Securable) -> dict:
    out = {
        "name": obj.name,
        "comment": obj.comment,
        "properties": obj.properties,
        "owner": obj.owner,
        "created_at": obj.created_at,
        "created_by": obj.created_by,
        "updated_at": obj.updated_at,
        "updated_by": obj.updated_by,
        "full_name": obj.full_name,
    }
    if obj.tags:
        out["tags"] = obj.tags
    return out


def _place(obj: Securable) -> dict:
    catalog, schema = obj.full_name.split(".")[:2]
    return {"catalog_name": catalog, "schema_name": schema}


def render(obj: Securable) -> dict:
    """The UC-shaped JSON dict of ``obj``; ``None`` values are dropped."""
    out = _common(obj)
    t = obj.type
    if t == SecurableType.CATALOG:
        out.update(id=obj.id, storage_location=obj.storage_location)
        out.pop("full_name")
    elif t == SecurableType.SCHEMA:
        out.update(catalog_name=obj.full_name.split(".")[0], schema_id=obj.id,
                   storage_location=obj.storage_location)
    elif t == SecurableType.TABLE:
        out.update(_place(obj), table_id=obj.id, table_type="MANAGED",
                   storage_location=obj.storage_location, columns=obj.spec.get("columns", []))
        out["properties"] = {**obj.properties, "lakeray.format": "lance"}
    elif t == SecurableType.VOLUME:
        out.update(_place(obj), volume_id=obj.id, volume_type="MANAGED",
                   storage_location=obj.storage_location)
    elif t == SecurableType.FUNCTION:
        out.update(_place(obj), function_id=obj.id, **obj.spec)
        out["properties"] = obj.spec.get("properties")
    elif t == SecurableType.REGISTERED_MODEL:
        out.update(_place(obj), id=obj.id, storage_location=obj.storage_location)
    else:
        out.update(id=obj.id, storage_location=obj.storage_location, **obj.spec)
    return {k: v for k, v in out.items() if v is not None}
