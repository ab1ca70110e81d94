"""Principals, group membership and tokens over HTTP.

Tokens follow the Databricks Token API (``/api/2.0/token/*``) and, for admins minting
tokens for others, the token-management API.
"""

from __future__ import annotations

from fastapi import Request

from lakeray.api.app import call
from lakeray.api.routing import PrefixRouter
from lakeray.schemas.platform import (
    CreatePrincipal,
    CreateToken,
    CreateTokenOnBehalf,
    GroupMember,
    RevokeToken,
    UpdatePrincipal,
)

router = PrefixRouter(tags=["principals and tokens"], prefixes=("/api/lakeray/v1/principals", "/api/2.0/token"))
PRINCIPALS = "/api/lakeray/v1/principals"


@router.post(PRINCIPALS)
async def create_principal(body: CreatePrincipal, request: Request) -> dict:
    """Create a user, group or service principal (admins only)."""
    return await call(request, "create_principal", **body.model_dump())


@router.get(PRINCIPALS)
async def list_principals(request: Request, kind: str | None = None) -> dict:
    return {"principals": await call(request, "list_principals", kind=kind)}


@router.get(PRINCIPALS + "/{name}")
async def get_principal(name: str, request: Request) -> dict:
    return await call(request, "get_principal", name=name)


@router.patch(PRINCIPALS + "/{name}")
async def update_principal(name: str, body: UpdatePrincipal, request: Request) -> dict:
    return await call(request, "update_principal", name=name, **body.model_dump(exclude_none=True))


@router.post(PRINCIPALS + "/{group}/members")
async def add_member(group: str, body: GroupMember, request: Request) -> dict:
    return await call(request, "add_group_member", group=group, member=body.member)


@router.delete(PRINCIPALS + "/{group}/members/{member}")
async def remove_member(group: str, member: str, request: Request) -> dict:
    return await call(request, "remove_group_member", group=group, member=member)


@router.post("/api/2.0/token/create")
async def create_token(body: CreateToken, request: Request) -> dict:
    """A personal access token for the caller; the value is shown only in this response."""
    return await call(request, "create_token", **body.model_dump(exclude_none=True))


@router.get("/api/2.0/token/list")
async def list_tokens(request: Request) -> dict:
    return {"token_infos": await call(request, "list_tokens")}


@router.post("/api/2.0/token/delete")
async def revoke_token(body: RevokeToken, request: Request) -> dict:
    await call(request, "revoke_token", token_id=body.token_id)
    return {}


@router.post("/api/2.0/token-management/on-behalf-of/tokens")
async def create_token_on_behalf(body: CreateTokenOnBehalf, request: Request) -> dict:
    """Admins mint a token for another principal (e.g. a service principal)."""
    return await call(request, "create_token", principal=body.application_id,
                      lifetime_seconds=body.lifetime_seconds, comment=body.comment)


@router.get("/api/2.0/token-management/tokens")
async def list_tokens_of(request: Request, created_by_username: str | None = None) -> dict:
    return {"token_infos": await call(request, "list_tokens", principal=created_by_username)}
