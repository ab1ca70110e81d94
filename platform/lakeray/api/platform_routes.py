"""lakeray's own platform routes: who am I, audit log, lineage."""

from __future__ import annotations

from fastapi import Query, Request

from lakeray.api.app import call
from lakeray.api.routing import PrefixRouter
from lakeray.schemas.platform import LineageEdge

router = PrefixRouter(prefix="/api/lakeray/v1", tags=["platform"])


@router.get("/whoami")
async def whoami(request: Request) -> dict:
    """The caller's principal, admin flag and groups."""
    return await call(request, "whoami")


@router.get("/audit")
async def query_audit(request: Request, principal: str | None = None, action: str | None = None,
                      securable: str | None = None, result: str | None = None,
                      since_ms: int | None = None, until_ms: int | None = None,
                      limit: int = Query(100, ge=1, le=10000), page_token: str | None = None) -> dict:
    """Audit events, newest first (admins only)."""
    before = int(page_token) if page_token and page_token.isdigit() else None
    return await call(request, "query_audit", principal=principal, action=action, securable=securable,
                      result=result, since_ms=since_ms, until_ms=until_ms, limit=limit, before_id=before)


@router.post("/lineage")
async def record_lineage(body: LineageEdge, request: Request) -> dict:
    """Record an edge source -> target made by a run or job."""
    return await call(request, "record_lineage", **body.model_dump())


@router.get("/lineage/{node_type}/{name:path}")  # a model version is <model>/<n>
async def get_lineage(node_type: str, name: str, request: Request,
                      direction: str = Query("upstream", pattern="^(upstream|downstream)$"),
                      depth: int = Query(1, ge=1, le=10)) -> dict:
    """Edges upstream or downstream of a node."""
    return await call(request, "get_lineage", node_type=node_type, name=name, direction=direction,
                      depth=depth)
