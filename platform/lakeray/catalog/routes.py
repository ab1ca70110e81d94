"""Unity Catalog OSS REST routes (``/api/2.1/unity-catalog``): thin shells over registry operations."""

from __future__ import annotations

from fastapi import Query, Request

from lakeray.api.app import call
from lakeray.api.routing import PrefixRouter
from lakeray.schemas.catalog import (
    CreateCatalog,
    CreateFunctionRequest,
    CreateSchema,
    CreateTable,
    CreateVolume,
    UpdatePermissions,
    UpdateSecurable,
    UpdateVolume,
)

router = PrefixRouter(prefix="/api/2.1/unity-catalog", tags=["unity-catalog"])
MaxResults = Query(None, ge=0, le=10000)


def _no_storage(value: str | None, what: str) -> None:
    if value:
        from lakeray.errors import InvalidArgument

        raise InvalidArgument(f"{what} is not supported: lakeray manages storage for every object")


# -- catalogs ------------------------------------------------------------------------------
@router.post("/catalogs")
async def create_catalog(body: CreateCatalog, request: Request) -> dict:
    """Create a catalog (CREATE CATALOG on the metastore)."""
    _no_storage(body.storage_root, "storage_root")
    return await call(request, "create_catalog", name=body.name, comment=body.comment,
                      properties=body.properties)


@router.get("/catalogs")
async def list_catalogs(request: Request, max_results: int | None = MaxResults,
                        page_token: str | None = None) -> dict:
    """The catalogs the caller may see."""
    return await call(request, "list_catalogs", max_results=max_results, page_token=page_token)


@router.get("/catalogs/{name}")
async def get_catalog(name: str, request: Request) -> dict:
    return await call(request, "get_catalog", full_name=name)


@router.patch("/catalogs/{name}")
async def update_catalog(name: str, body: UpdateSecurable, request: Request) -> dict:
    return await call(request, "update_catalog", full_name=name, **body.model_dump(exclude_none=True))


@router.delete("/catalogs/{name}")
async def delete_catalog(name: str, request: Request, force: bool = False) -> dict:
    await call(request, "delete_catalog", full_name=name, force=force)
    return {}


# -- schemas -------------------------------------------------------------------------------
@router.post("/schemas")
async def create_schema(body: CreateSchema, request: Request) -> dict:
    """Create a schema (USE CATALOG and CREATE SCHEMA on the catalog)."""
    _no_storage(body.storage_root, "storage_root")
    return await call(request, "create_schema", catalog_name=body.catalog_name, name=body.name,
                      comment=body.comment, properties=body.properties)


@router.get("/schemas")
async def list_schemas(request: Request, catalog_name: str, max_results: int | None = MaxResults,
                       page_token: str | None = None) -> dict:
    return await call(request, "list_schemas", catalog_name=catalog_name, max_results=max_results,
                      page_token=page_token)


@router.get("/schemas/{full_name}")
async def get_schema(full_name: str, request: Request) -> dict:
    return await call(request, "get_schema", full_name=full_name)


@router.patch("/schemas/{full_name}")
async def update_schema(full_name: str, body: UpdateSecurable, request: Request) -> dict:
    return await call(request, "update_schema", full_name=full_name, **body.model_dump(exclude_none=True))


@router.delete("/schemas/{full_name}")
async def delete_schema(full_name: str, request: Request, force: bool = False) -> dict:
    await call(request, "delete_schema", full_name=full_name, force=force)
    return {}


# -- tables --------------------------------------------------------------------------------
@router.post("/tables")
async def create_table(body: CreateTable, request: Request) -> dict:
    """Create a managed (Lance) table from UC column definitions."""
    return await call(request, "create_table_from_columns", catalog_name=body.catalog_name,
                      schema_name=body.schema_name, name=body.name,
                      columns=[c.model_dump(exclude_none=True) for c in body.columns],
                      table_type=body.table_type, data_source_format=body.data_source_format,
                      storage_location=body.storage_location, comment=body.comment,
                      properties=body.properties)


@router.get("/tables")
async def list_tables(request: Request, catalog_name: str, schema_name: str,
                      max_results: int | None = MaxResults, page_token: str | None = None) -> dict:
    return await call(request, "list_tables", catalog_name=catalog_name, schema_name=schema_name,
                      max_results=max_results, page_token=page_token)


@router.get("/tables/{full_name}")
async def get_table(full_name: str, request: Request) -> dict:
    return await call(request, "get_table", full_name=full_name)


@router.patch("/tables/{full_name}")
async def update_table(full_name: str, body: UpdateSecurable, request: Request) -> dict:
    """Comment, properties, tags, owner or name of a table (lakeray extension of the UC API)."""
    return await call(request, "update_table", full_name=full_name, **body.model_dump(exclude_none=True))


@router.delete("/tables/{full_name}")
async def delete_table(full_name: str, request: Request) -> dict:
    await call(request, "delete_table", full_name=full_name)
    return {}


# -- volumes -------------------------------------------------------------------------------
@router.post("/volumes")
async def create_volume(body: CreateVolume, request: Request) -> dict:
    return await call(request, "create_volume", **body.model_dump(exclude_none=True))


@router.get("/volumes")
async def list_volumes(request: Request, catalog_name: str, schema_name: str,
                       max_results: int | None = MaxResults, page_token: str | None = None) -> dict:
    return await call(request, "list_volumes", catalog_name=catalog_name, schema_name=schema_name,
                      max_results=max_results, page_token=page_token)


@router.get("/volumes/{name}")
async def get_volume(name: str, request: Request) -> dict:
    return await call(request, "get_volume", full_name=name)


@router.patch("/volumes/{name}")
async def update_volume(name: str, body: UpdateVolume, request: Request) -> dict:
    return await call(request, "update_volume", full_name=name, **body.model_dump(exclude_none=True))


@router.delete("/volumes/{name}")
async def delete_volume(name: str, request: Request) -> dict:
    await call(request, "delete_volume", full_name=name, force=True)
    return {}


# -- functions -----------------------------------------------------------------------------
@router.post("/functions")
async def create_function(body: CreateFunctionRequest, request: Request) -> dict:
    """Create a Python function (routine_body EXTERNAL, external_language PYTHON)."""
    return await call(request, "create_function", function_info=body.function_info)


@router.get("/functions")
async def list_functions(request: Request, catalog_name: str, schema_name: str,
                         max_results: int | None = MaxResults, page_token: str | None = None) -> dict:
    return await call(request, "list_functions", catalog_name=catalog_name, schema_name=schema_name,
                      max_results=max_results, page_token=page_token)


@router.get("/functions/{name}")
async def get_function(name: str, request: Request) -> dict:
    return await call(request, "get_function", full_name=name)


@router.delete("/functions/{name}")
async def delete_function(name: str, request: Request) -> dict:
    await call(request, "delete_function", full_name=name)
    return {}


# -- permissions ---------------------------------------------------------------------------
@router.get("/permissions/{securable_type}/{full_name}")
async def get_permissions(securable_type: str, full_name: str, request: Request,
                          principal: str | None = None) -> dict:
    """Grants on a securable (all for its managers, the caller's own otherwise)."""
    return await call(request, "get_permissions", stype=securable_type, full_name=full_name,
                      principal=principal)


@router.patch("/permissions/{securable_type}/{full_name}")
async def update_permissions(securable_type: str, full_name: str, body: UpdatePermissions,
                             request: Request) -> dict:
    """Grant and revoke: ``{"changes": [{"principal", "add": [...], "remove": [...]}]}``."""
    return await call(request, "update_permissions", stype=securable_type, full_name=full_name,
                      changes=[c.model_dump() for c in body.changes])


@router.get("/effective-permissions/{securable_type}/{full_name}")
async def effective_permissions(securable_type: str, full_name: str, request: Request) -> dict:
    """The privileges the caller holds on a securable, inherited ones included."""
    return await call(request, "effective_permissions", stype=securable_type, full_name=full_name)


@router.get("/metastore_summary")
async def metastore_summary(request: Request) -> dict:
    who = await call(request, "whoami")
    from lakeray.catalog.securables import METASTORE_ID, METASTORE_NAME

    return {"metastore_id": METASTORE_ID, "name": METASTORE_NAME, "caller": who["name"]}
