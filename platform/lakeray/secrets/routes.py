"""The Databricks Secrets API: ``/api/2.0/secrets/...`` (scopes, secrets, ACLs).

There is no route that returns a secret's value: values go in and are used inside the platform
(e.g. as an external model's API key), never handed back.
"""

from __future__ import annotations

from fastapi import Request

from lakeray.api.app import call
from lakeray.api.routing import PrefixRouter
from lakeray.schemas.secrets import AclChange, DeleteAcl, DeleteSecret, PutSecret, ScopeRef, SecretScope

router = PrefixRouter(tags=["secrets"], prefixes=("/api/2.0/secrets/",))
API = "/api/2.0/secrets"


@router.post(API + "/scopes/create")
async def create_scope(body: SecretScope, request: Request) -> dict:
    """Create a secret scope; the caller manages it."""
    return await call(request, "create_secret_scope", **body.model_dump(exclude_none=True))


@router.get(API + "/scopes/list")
async def list_scopes(request: Request) -> dict:
    """The scopes the caller holds a permission on."""
    return await call(request, "list_secret_scopes")


@router.post(API + "/scopes/delete")
async def delete_scope(body: ScopeRef, request: Request) -> dict:
    """Drop a scope with its secrets (MANAGE)."""
    return await call(request, "delete_secret_scope", scope=body.scope)


@router.post(API + "/put")
async def put_secret(body: PutSecret, request: Request) -> dict:
    """Create or replace a secret (WRITE); ``string_value`` or base64 ``bytes_value``."""
    return await call(request, "put_secret", **body.model_dump(exclude_none=True))


@router.post(API + "/delete")
async def delete_secret(body: DeleteSecret, request: Request) -> dict:
    """Delete a secret (WRITE)."""
    return await call(request, "delete_secret", scope=body.scope, key=body.key)


@router.get(API + "/list")
async def list_secrets(scope: str, request: Request) -> dict:
    """The keys of a scope with their last update times (READ); never the values."""
    return await call(request, "list_secrets", scope=scope)


@router.post(API + "/acls/put")
async def put_acl(body: AclChange, request: Request) -> dict:
    """Give a principal READ, WRITE or MANAGE on a scope (MANAGE)."""
    return await call(request, "put_secret_acl", **body.model_dump())


@router.post(API + "/acls/delete")
async def delete_acl(body: DeleteAcl, request: Request) -> dict:
    """Remove a principal's permission on a scope (MANAGE)."""
    return await call(request, "delete_secret_acl", scope=body.scope, principal=body.principal)


@router.get(API + "/acls/list")
async def list_acls(scope: str, request: Request) -> dict:
    """Every permission on a scope (MANAGE)."""
    return await call(request, "list_secret_acls", scope=scope)


@router.get(API + "/acls/get")
async def get_acl(scope: str, principal: str, request: Request) -> dict:
    """One principal's permission on a scope (MANAGE)."""
    return await call(request, "get_secret_acl", scope=scope, principal=principal)
