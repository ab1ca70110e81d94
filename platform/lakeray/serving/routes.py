"""The serving-endpoints REST API (Databricks' shapes) and the query route.

Control plane: ``/api/2.0/serving-endpoints[/{name}[/config|/tags]]``. Queries:
``POST /serving-endpoints/{name}/invocations`` picks a served entity by the traffic split and
forwards the body to its Serve application through a deployment handle (no HTTP hop).
"""

from __future__ import annotations

import asyncio
import random

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lakeray.api.app import call
from lakeray.errors import DeadlineExceeded, LakerayError, Unavailable
from lakeray.schemas.serving import (
    CreateServingEndpoint,
    PatchServingEndpointTags,
    ReplaceServingEndpoint,
    UpdateServingEndpointConfig,
)

router = APIRouter(tags=["serving"])
API = "/api/2.0/serving-endpoints"
#: the response header naming the served entity that answered
SERVED_ENTITY_HEADER = "x-lakeray-served-entity"


def _poke() -> None:
    """Ask the serving actor for a deployer pass now (it runs one every second anyway)."""
    try:
        import ray

        if not ray.is_initialized():
            return
        from lakeray.actors.base import named
        from lakeray.settings import SERVING_ACTOR

        named(SERVING_ACTOR).poke.remote()
    except Exception:  # noqa: BLE001 - the next pass comes within a second
        pass


@router.post(API)
async def create_serving_endpoint(body: CreateServingEndpoint, request: Request) -> dict:
    """Create an endpoint; its served entities start deploying at once (see ``state``)."""
    out = await call(request, "create_serving_endpoint", **body.model_dump(exclude_none=True))
    _poke()
    return out


@router.get(API)
async def list_serving_endpoints(request: Request) -> dict:
    """Every endpoint the caller may view."""
    return await call(request, "list_serving_endpoints")


@router.get(API + "/{name}")
async def get_serving_endpoint(name: str, request: Request) -> dict:
    """One endpoint: running config, pending config, state (CAN_VIEW)."""
    return await call(request, "get_serving_endpoint", name=name)


@router.put(API + "/{name}/config")
async def update_serving_endpoint_config(name: str, body: UpdateServingEndpointConfig, request: Request) -> dict:
    """Replace the config; it rolls out beside the running one (CAN_MANAGE)."""
    out = await call(request, "update_serving_endpoint_config", name=name, **body.model_dump(exclude_none=True))
    _poke()
    return out


@router.put(API + "/{name}")
async def replace_serving_endpoint(name: str, body: ReplaceServingEndpoint, request: Request) -> dict:
    """The same as ``PUT .../config`` with the config under ``config``."""
    out = await call(request, "update_serving_endpoint_config", name=name, **body.config)
    _poke()
    return out


@router.patch(API + "/{name}/tags")
async def patch_serving_endpoint_tags(name: str, body: PatchServingEndpointTags, request: Request) -> list:
    """Add or replace tags, delete tags by key (CAN_MANAGE)."""
    return await call(request, "update_serving_endpoint_tags", name=name, **body.model_dump(exclude_none=True))


@router.delete(API + "/{name}")
async def delete_serving_endpoint(name: str, request: Request) -> dict:
    """Drop the endpoint; its Serve applications are removed after in-flight requests end."""
    await call(request, "delete_serving_endpoint", name=name)
    _poke()
    return {}


def pick_route(routes: list[dict], draw: float | None = None) -> dict:
    """The route a query takes: a draw in [0, 100) against the cumulative traffic percentages."""
    draw = random.uniform(0, 100) if draw is None else draw
    total = 0
    for route in routes:
        total += route["percent"]
        if draw < total:
            return route
    return next(r for r in reversed(routes) if r["percent"] > 0)


@router.post("/serving-endpoints/{name}/invocations")
async def invocations(name: str, request: Request):
    """Score the body with the endpoint's model (``dataframe_split``, ``dataframe_records``,
    ``instances`` or ``inputs``); needs CAN_QUERY."""
    body = await request.json()
    target = await call(request, "get_serving_routes", name=name)
    routes = [r for r in target["routes"] if r["percent"] > 0]
    if not routes:
        raise Unavailable(f"serving endpoint '{target['name']}' is not ready yet"
                          + (f": {target['message']}" if target["message"] else ""))
    route = pick_route(routes)
    result = await forward(request, route, {"kind": "invocations", "body": body})
    return JSONResponse(result, headers={SERVED_ENTITY_HEADER: route["served_name"]})


async def forward(request: Request, route: dict, payload: dict):
    """Send ``payload`` to the route's Serve application; its errors as LakerayErrors."""
    import ray.exceptions as rex
    from ray import serve
    from ray.serve.exceptions import BackPressureError

    handles = request.app.state.__dict__.setdefault("serve_handles", {})
    handle = handles.get(route["app"])
    if handle is None:
        handle = handles[route["app"]] = serve.get_app_handle(route["app"])
    try:
        return await asyncio.wait_for(handle.remote(payload), timeout=route["timeout_s"])
    except TimeoutError:
        raise DeadlineExceeded(f"the model did not answer within {route['timeout_s']:g} s") from None
    except BackPressureError:
        busy = Unavailable(f"served entity {route['served_name']} is at capacity (its queue is full); retry shortly")
        busy.retry_after_s = 1
        raise busy from None
    except rex.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, LakerayError):
            raise type(cause)(cause.message) from None
        raise LakerayError("the served model failed") from None
    except (rex.ActorDiedError, rex.ActorUnavailableError) as e:
        raise Unavailable(f"served entity {route['served_name']} is restarting: {type(e).__name__}") from None
