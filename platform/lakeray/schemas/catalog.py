"""Request bodies of the Unity Catalog REST API (the OSS ``api/all.yaml`` shapes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class CreateCatalog(Body):
    name: str = Field(description="Name of catalog.")
    comment: str | None = None
    properties: dict[str, str] | None = None
    storage_root: str | None = Field(None, description="Not supported: managed storage is the platform's.")


class UpdateSecurable(Body):
    """PATCH body for catalogs, schemas, tables and volumes (UC fields plus owner and tags)."""

    comment: str | None = None
    properties: dict[str, str] | None = None
    new_name: str | None = None
    owner: str | None = None
    tags: dict[str, str] | None = None


class CreateSchema(Body):
    name: str
    catalog_name: str
    comment: str | None = None
    properties: dict[str, str] | None = None
    storage_root: str | None = None


class ColumnInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type_name: str
    type_text: str | None = None
    type_json: str | None = None
    position: int | None = None
    nullable: bool | None = True
    comment: str | None = None


class CreateTable(Body):
    name: str
    catalog_name: str
    schema_name: str
    table_type: str = "MANAGED"
    data_source_format: str | None = None
    columns: list[ColumnInfo]
    storage_location: str | None = None
    comment: str | None = None
    properties: dict[str, str] | None = None


class CreateVolume(Body):
    catalog_name: str
    schema_name: str
    name: str
    volume_type: str = "MANAGED"
    comment: str | None = None
    storage_location: str | None = None


class UpdateVolume(Body):
    comment: str | None = None
    new_name: str | None = None
    owner: str | None = None


class CreateFunctionRequest(Body):
    function_info: dict


class PermissionsChange(Body):
    principal: str
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class UpdatePermissions(Body):
    changes: list[PermissionsChange]


class CreateRegisteredModel(Body):
    catalog_name: str
    schema_name: str
    name: str
    comment: str | None = None
    storage_location: str | None = Field(None, description="Not supported: managed storage is the platform's.")


class UpdateRegisteredModel(Body):
    comment: str | None = None
    new_name: str | None = None
    owner: str | None = None


class CreateModelVersion(Body):
    catalog_name: str
    schema_name: str
    model_name: str
    source: str = Field(description="runs:/<run_id>/<path>, models:/m-<id>, or a platform artifact URI.")
    run_id: str | None = None
    comment: str | None = None


class UpdateModelVersion(Body):
    comment: str | None = None


class SetRegisteredModelAlias(Body):
    version_num: int
    alias: str | None = Field(None, description="Optional; the alias in the path wins.")
    full_name: str | None = Field(None, description="Optional; the name in the path wins.")
