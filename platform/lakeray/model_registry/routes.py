"""Unity Catalog's model routes (``/api/2.1/unity-catalog/models``), plus Databricks' aliases."""

from __future__ import annotations

from fastapi import Query, Request

from lakeray.api.app import call
from lakeray.api.routing import PrefixRouter
from lakeray.errors import InvalidArgument
from lakeray.schemas.catalog import (
    CreateModelVersion,
    CreateRegisteredModel,
    SetRegisteredModelAlias,
    UpdateModelVersion,
    UpdateRegisteredModel,
)

router = PrefixRouter(prefix="/api/2.1/unity-catalog", tags=["unity-catalog"],
                      prefixes=("/api/2.1/unity-catalog/models",))
MaxResults = Query(None, ge=0, le=10000)


@router.post("/models")
async def create_registered_model(body: CreateRegisteredModel, request: Request) -> dict:
    """Create a registered model (USE CATALOG, USE SCHEMA and CREATE MODEL on the schema)."""
    if body.storage_location:
        raise InvalidArgument("storage_location is not supported: lakeray manages model storage")
    return await call(request, "create_registered_model", catalog_name=body.catalog_name,
                      schema_name=body.schema_name, name=body.name, comment=body.comment)


@router.get("/models")
async def list_registered_models(request: Request, catalog_name: str | None = None, schema_name: str | None = None,
                                 max_results: int | None = MaxResults, page_token: str | None = None) -> dict:
    """Registered models the caller may read, in one schema or everywhere."""
    return await call(request, "list_registered_models", catalog_name=catalog_name, schema_name=schema_name,
                      max_results=max_results, page_token=page_token)


@router.get("/models/{full_name}")
async def get_registered_model(full_name: str, request: Request) -> dict:
    return await call(request, "get_registered_model", full_name=full_name)


@router.patch("/models/{full_name}")
async def update_registered_model(full_name: str, body: UpdateRegisteredModel, request: Request) -> dict:
    """Change the comment or owner, or rename within the schema (owner or MANAGE)."""
    return await call(request, "update_registered_model", full_name=full_name, **body.model_dump(exclude_none=True))


@router.delete("/models/{full_name}")
async def delete_registered_model(full_name: str, request: Request, force: bool = False) -> dict:
    """Drop a model; one with versions needs ``force=true``."""
    await call(request, "delete_registered_model", full_name=full_name, force=force)
    return {}


@router.post("/models/versions")
async def create_model_version(body: CreateModelVersion, request: Request) -> dict:
    """Register ``source``'s artifacts as the next version (copied into managed storage)."""
    return await call(request, "create_model_version", **body.model_dump(exclude_none=True))


@router.get("/models/{full_name}/versions")
async def list_model_versions(full_name: str, request: Request, max_results: int | None = MaxResults,
                              page_token: str | None = None) -> dict:
    return await call(request, "list_model_versions", full_name=full_name, max_results=max_results,
                      page_token=page_token)


@router.get("/models/{full_name}/versions/{version}")
async def get_model_version(full_name: str, version: int, request: Request) -> dict:
    return await call(request, "get_model_version", full_name=full_name, version=version)


@router.patch("/models/{full_name}/versions/{version}")
async def update_model_version(full_name: str, version: int, body: UpdateModelVersion, request: Request) -> dict:
    return await call(request, "update_model_version", full_name=full_name, version=version, comment=body.comment)


@router.delete("/models/{full_name}/versions/{version}")
async def delete_model_version(full_name: str, version: int, request: Request) -> dict:
    await call(request, "delete_model_version", full_name=full_name, version=version)
    return {}


@router.patch("/models/{full_name}/versions/{version}/finalize")
async def finalize_model_version(full_name: str, version: int, request: Request) -> dict:
    """Versions are READY once created (artifacts are copied server-side); returns the version."""
    return await call(request, "finalize_model_version", full_name=full_name, version=version)


@router.put("/models/{full_name}/aliases/{alias}")
async def set_registered_model_alias(full_name: str, alias: str, body: SetRegisteredModelAlias,
                                     request: Request) -> dict:
    """Point an alias at a version, moving it if it exists (owner or MANAGE)."""
    return await call(request, "set_registered_model_alias", full_name=full_name, alias=alias,
                      version_num=body.version_num)


@router.delete("/models/{full_name}/aliases/{alias}")
async def delete_registered_model_alias(full_name: str, alias: str, request: Request) -> dict:
    await call(request, "delete_registered_model_alias", full_name=full_name, alias=alias)
    return {}


@router.get("/models/{full_name}/aliases/{alias}")
async def get_model_version_by_alias(full_name: str, alias: str, request: Request) -> dict:
    """The version an alias points at."""
    return await call(request, "get_model_version_by_alias", full_name=full_name, alias=alias)
