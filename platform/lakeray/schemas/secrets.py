"""Request bodies of the Databricks Secrets API (``/api/2.0/secrets``)."""

from __future__ import annotations

from pydantic import Field

from lakeray.schemas.catalog import Body


class SecretScope(Body):
    scope: str = Field(description="Letters, digits, '-', '_' and '.', at most 128 characters.")
    initial_manage_principal: str | None = None
    scope_backend_type: str | None = None
    backend_azure_keyvault: dict | None = None


class ScopeRef(Body):
    scope: str


class PutSecret(Body):
    scope: str
    key: str
    string_value: str | None = None
    bytes_value: str | None = Field(None, description="base64")


class DeleteSecret(Body):
    scope: str
    key: str


class AclChange(Body):
    scope: str
    principal: str
    permission: str = Field(description="READ, WRITE or MANAGE")


class DeleteAcl(Body):
    scope: str
    principal: str
